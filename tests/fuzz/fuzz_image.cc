// fuzz_image.cc -- a whole mutated image: mount, walk, check, repair, check again, use.
//
// Input: a sparse image (fuzz_common.h); the seeds are real small images. Properties:
//   * a mount either refuses, and then has written nothing, or serves every read without
//     crashing;
//   * fsck -n writes nothing;
//   * after fsck --repair a second check finds nothing, and the repaired image mounts,
//     takes changes, and still checks clean.
#include <cstring>

#include "fs/core/journal.h"
#include "fs/core/repair.h"
#include "tests/fuzz/fuzz_common.h"

using namespace udax;

namespace {

std::string First(const CheckReport& r) {
  return r.messages.empty() ? std::to_string(r.problems) + " problems" : r.messages.front();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint8_t flags = 0;
  auto image = fuzz::SparseToImage(data, size, &flags);
  if (!image) return 0;
  if (flags & fuzz::kReseal) fuzz::ResealAll(image.get());

  // fsck -n writes nothing; a mount that refuses writes nothing either, once the journal
  // is replayed (what every mount and fsck does first: it completes a committed
  // transaction). MemRegion records what is written.
  image->ClearDirty();
  FsckOptions check;
  check.read_only = true;
  (void)Repairer::RunOnRegion(std::make_unique<MemRegion>(image, true), check);
  if (image->AnyDirty()) fuzz::Violated("fsck -n wrote");
  if (auto sb = fuzz::ValidSuperblock(*image)) {
    MemRegion region(image);
    Journal journal(&region, *sb);
    (void)journal.Replay();
  }
  image->ClearDirty();
  {
    auto fs = Filesystem::MountRegion(std::make_unique<MemRegion>(image), MountOptions{});
    if (fs.ok()) {
      fuzz::ReadEverything(fs->get());
      (void)(*fs)->Unmount();
    } else if (image->Changed()) {
      fuzz::Violated("a refused mount wrote: " + fs.status().ToString());
    }
  }
  // The repair starts from the input as it was.
  image = fuzz::SparseToImage(data, size, &flags);
  if (flags & fuzz::kReseal) fuzz::ResealAll(image.get());

  fuzz::MaybeDump(*image);
  FsckOptions repair;
  repair.repair = true;
  auto outcome = Repairer::RunOnRegion(std::make_unique<MemRegion>(image), repair);
  if (!outcome.ok()) return 0;  // no superblock copy to trust: nothing to repair from
  if (outcome->remaining.problems) {
    fuzz::Violated("problems left after repair: " + First(outcome->remaining));
  }
  {
    auto fs = Filesystem::MountRegion(std::make_unique<MemRegion>(image), MountOptions{});
    if (!fs.ok()) fuzz::Violated("the repaired image does not mount: " + fs.status().ToString());
    fuzz::ReadEverything(fs->get());
    fuzz::ChangeSomething(fs->get());
    if (!(*fs)->Unmount().ok()) fuzz::Violated("the repaired image does not unmount");
  }
  auto again = Repairer::RunOnRegion(std::make_unique<MemRegion>(image), FsckOptions{});
  if (!again.ok() || again->found.problems) {
    fuzz::Violated("the repaired image, once used, checks " +
                   (again.ok() ? First(again->found) : again.status().ToString()));
  }
  return 0;
}
