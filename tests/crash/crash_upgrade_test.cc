// crash_upgrade_test.cc -- power cuts at every persist point of `udaxctl upgrade` (metadata
// copies turned on in place, fs/core/upgrade.h).
//
// The upgrade changes where things live, never what the tree holds. So at each cut the
// image a power cut would leave must: mount (replaying the journal), read as the same
// tree, and check clean -- at once, or after fsck.udaxfs --repair has freed what the
// upgrade had allocated for the copies before its commit point (the documented leaks).
// After the cut the tree is the same again, with copies or without.
#include <fcntl.h>

#include <random>

#include "fs/core/core_test_util.h"
#include "fs/core/repair.h"
#include "fs/core/upgrade.h"
#include "tests/crash/crash_harness.h"
#include "tests/crash/shadow_region.h"

namespace udax::crash {
namespace {

// The awkward image of upgrade_test.cc, smaller: metadata low, files to the far end,
// every other one deleted.
void Fill(Filesystem* fs) {
  PopulateCopiedKinds(fs);
  const std::string chunk(256 * 1024, 'f');
  int files = 0;
  for (bool full = false; !full; ++files) {
    auto [e, f] = Must(fs->Create(kRootIno, "fill-" + std::to_string(files), 0644, O_RDWR, kRoot));
    std::string data = chunk;
    data[0] = static_cast<char>(files);
    auto n = fs->Write(f, 0, data.data(), data.size());
    full = !n.ok() || *n < data.size();
    fs->Release(f);
  }
  for (int i = 0; i < files; i += 2) EXPECT_OK(fs->Unlink(kRootIno, "fill-" + std::to_string(i)));
}

TEST(Crash, EveryPersistPointOfAnUpgrade) {
  TestImage img(16ull << 20, kAuSize4K, 0, /*meta_copies=*/false);
  Tree before;
  {
    auto fs = img.Mount();
    Fill(fs.get());
    ASSERT_OK(ReadTree(fs.get(), kRootIno, "", &before));
    ASSERT_OK(fs->Unmount());
  }
  auto inner = Region::Open(img.path(), RegionOptions{});
  ASSERT_TRUE(inner.ok()) << inner.status().ToString();
  auto shadow_owned = std::make_unique<ShadowRegion>(std::move(inner).value());
  ShadowRegion* shadow = shadow_owned.get();
  auto image = std::make_shared<MemImage>(shadow->size());
  shadow->StartCrashImage(image.get());

  std::mt19937_64 rng(79);
  constexpr uint64_t kStride = 3;
  uint64_t cuts = 0, with_copies = 0, repaired = 0;
  std::string first_failure;
  shadow->set_on_point([&](uint64_t point) {
    if (point % kStride != 0) return;
    ++cuts;
    const double keep = (point / kStride) % 3 == 0 ? 0.0 : ((point / kStride) % 3 == 1 ? 0.5 : 1.0);
    std::vector<uint64_t> kept;
    shadow->SyncCrashImage(image.get(), &rng, keep, &kept);
    std::string why;
    FsckOptions fix;
    fix.repair = true;
    auto fsck = Repairer::RunOnRegion(std::make_unique<MemRegion>(image), fix);
    if (!fsck.ok()) {
      why = "fsck: " + fsck.status().ToString();
    } else if (fsck->ExitCode() != kFsckClean && fsck->ExitCode() != kFsckFixed) {
      why = "fsck --repair left problems: " +
            (fsck->found.messages.empty() ? std::string("?") : fsck->found.messages[0]);
    } else {
      if (fsck->ExitCode() == kFsckFixed) ++repaired;
      auto cfs = Filesystem::MountRegion(std::make_unique<MemRegion>(image), {});
      Tree actual;
      if (!cfs.ok()) {
        why = "mount: " + cfs.status().ToString();
      } else if (Status st = ReadTree(cfs->get(), kRootIno, "", &actual); !st.ok()) {
        why = "reading the tree: " + st.ToString();
      } else if (actual != before) {
        why = "tree differs: " + FirstDifference(actual, before);
      } else if (auto maps = (*cfs)->checker().CrossCheckMaps(); !maps.ok() || maps->problems) {
        why = "maps after repair: " + (maps.ok() ? maps->messages[0] : maps.status().ToString());
      } else if (HasMetaCopies((*cfs)->superblock())) {
        ++with_copies;
      }
    }
    image->Undo();
    if (!why.empty() && first_failure.empty()) first_failure = "point " + std::to_string(point) + ": " + why;
  });
  auto report = Upgrader::RunOnRegion(std::move(shadow_owned));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(first_failure, "");
  EXPECT_GT(report->moved_data_aus, 0u);
  EXPECT_GT(cuts, 50u);
  EXPECT_GT(repaired, 0u);  // cuts before the commit point left leaks to free
  RecordProperty("cuts", std::to_string(cuts));
  RecordProperty("repaired", std::to_string(repaired));
  RecordProperty("with_copies", std::to_string(with_copies));
}

}  // namespace
}  // namespace udax::crash
