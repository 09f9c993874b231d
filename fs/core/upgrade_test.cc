// upgrade_test.cc -- metadata copies turned on in an image made without them: what stands
// in the way moves, every file reads back the same, fsck is clean, and the copies work.
#include "fs/core/upgrade.h"

#include <fcntl.h>

#include <fstream>
#include <map>
#include <string>

#include "fs/core/core_test_util.h"
#include "fs/core/repair.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

std::string Pattern(int seed, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((seed * 131 + i * 7 + i / 4096) & 0xff);
  return s;
}

// Every regular file of the root and of "d" by name, with its bytes.
std::map<std::string, std::string> Contents(Filesystem* fs) {
  std::map<std::string, std::string> out;
  for (uint64_t dir : {kRootIno, Must(fs->Lookup(kRootIno, "d")).ino}) {
    for (const auto& e : Must(fs->ListDir(dir))) {
      if (e.name == "." || e.name == "..") continue;
      const EntryOut entry = Must(fs->Lookup(dir, e.name));
      if (!S_ISREG(entry.attr.st_mode)) continue;
      Inode* f = Must(fs->Open(entry.ino, O_RDONLY));
      std::string bytes(static_cast<size_t>(entry.attr.st_size), '\0');
      EXPECT_EQ(Must(fs->Read(f, 0, bytes.size(), bytes.data())), bytes.size());
      fs->Release(f);
      out[std::to_string(dir) + "/" + e.name] = bytes;
    }
  }
  return out;
}

void ExpectClean(const std::string& path) {
  FsckOptions check;
  check.read_only = true;
  FsckOutcome r = Must(Repairer::Run(path, check));
  EXPECT_EQ(r.ExitCode(), kFsckClean) << (r.found.messages.empty() ? "" : r.found.messages[0]);
}

// An image without copies, made awkward for the upgrade: the metadata of the copied
// kinds low in the region, files filling it up to the far end (the second inode table's
// place) and the partners of that metadata, then every other one deleted, so there is
// room, but in the middle.
std::map<std::string, std::string> FillAwkwardly(TestImage* img, size_t bytes) {
  auto fs = img->Mount();
  PopulateCopiedKinds(fs.get());
  int files = 0;
  for (bool full = false; !full; ++files) {
    auto created = fs->Create(kRootIno, "fill-" + std::to_string(files), 0644, O_RDWR, kRoot);
    if (!created.ok()) {  // full before the file's data: no room for its name
      EXPECT_EQ(created.status().code(), ENOSPC) << created.status().ToString();
      break;
    }
    Inode* f = created->second;
    const std::string data = Pattern(files, bytes);
    auto n = fs->Write(f, 0, data.data(), data.size());
    full = !n.ok() || *n < data.size();
    fs->Release(f);
  }
  for (int i = 0; i < files; i += 2) EXPECT_OK(fs->Unlink(kRootIno, "fill-" + std::to_string(i)));
  auto contents = Contents(fs.get());
  EXPECT_OK(fs->Unmount());
  return contents;
}

TEST(Upgrade, MovesWhatStandsInTheWayAndEveryFileReadsBack) {
  TestImage img(64ull << 20, kAuSize4K, 0, /*meta_copies=*/false);
  const auto before = FillAwkwardly(&img, 1ull << 20);
  uint64_t free_before;
  {
    auto fs = img.Mount();
    ASSERT_FALSE(HasMetaCopies(fs->superblock()));
    free_before = fs->FreeAuCount();
    ASSERT_OK(fs->Unmount());
  }
  const UpgradeReport r = Must(Upgrader::Run(img.path()));
  EXPECT_FALSE(r.already);
  RecordProperty("moved_data_aus", std::to_string(r.moved_data_aus));
  RecordProperty("moved_meta_aus", std::to_string(r.moved_meta_aus));
  RecordProperty("rounds", std::to_string(r.rounds));
  // The fence held file data, and metadata partners held file data too.
  EXPECT_GT(r.moved_data_aus, 0u);
  EXPECT_GT(r.metadata_aus, 10u);  // directory, extent blocks, xattr, symlink
  EXPECT_GT(r.itable2_aus, 0u);
  ExpectClean(img.path());
  auto fs = img.Mount();
  const DiskSuperblock& sb = fs->superblock();
  ASSERT_TRUE(HasMetaCopies(sb));
  // What the copies cost: the second table and one partner per metadata AU (and the
  // extent blocks that split extents needed, and the pair pool).
  EXPECT_GE(free_before - fs->FreeAuCount(), r.itable2_aus + r.metadata_aus);
  EXPECT_EQ(Contents(fs.get()), before);
  const uint64_t dir = Must(fs->Lookup(kRootIno, "d")).ino;
  EXPECT_EQ(Must(fs->ListDir(dir)).size(), 302u);
  const uint64_t frag = Must(fs->Lookup(kRootIno, "frag")).ino;
  EXPECT_EQ(Must(fs->GetXattr(frag, "user.big")), std::string(6000, 'x'));
  EXPECT_EQ(Must(fs->ReadLink(Must(fs->Lookup(kRootIno, "sym")).ino)), std::string(500, 's'));
  // Every copied record has its copy now: the scrub compares them.
  EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
  // And the copies serve: the directory's first copy destroyed, it still lists.
  uint64_t dir_block = 0;
  for (const OwnerRange& o : Must(fs->Owners(sb.data_off, LastDataAu(sb) * sb.au_size - sb.data_off))) {
    if (o.owner.kind == OwnerKind::kDirectory && o.owner.ino == dir && !o.owner.copy2) dir_block = o.phys;
  }
  ASSERT_NE(dir_block, 0u);
  const std::string junk(kBlockSize, '\x5a');
  ASSERT_OK(fs->region()->WriteSafe(dir_block, junk.data(), junk.size(), true));
  EXPECT_EQ(Must(fs->ListDir(dir)).size(), 302u);
  // New metadata gets its copies as on an image made with them.
  Must(fs->Mkdir(kRootIno, "after", 0755, kRoot));
  ASSERT_OK(fs->Unmount());
  fs.reset();
  ExpectClean(img.path());
}

// Devdax's geometry: 2 MiB allocation units, so few of them that every one counts.
TEST(Upgrade, TwoMegabyteAllocationUnits) {
  TestImage img(192ull << 20, kAuSize2M, 0, /*meta_copies=*/false);
  const auto before = FillAwkwardly(&img, 2ull << 20);
  const UpgradeReport r = Must(Upgrader::Run(img.path()));
  EXPECT_GT(r.moved_data_aus + r.moved_meta_aus, 0u);
  ExpectClean(img.path());
  auto fs = img.Mount();
  ASSERT_TRUE(HasMetaCopies(fs->superblock()));
  EXPECT_EQ(Contents(fs.get()), before);
  EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
  ASSERT_OK(fs->Unmount());
}

TEST(Upgrade, AnUpgradedImageSaysSoAndMendsAStaleReplica) {
  TestImage img(32ull << 20, kAuSize4K, 0, /*meta_copies=*/false);
  { auto fs = img.Mount(); PopulateCopiedKinds(fs.get()); ASSERT_OK(fs->Unmount()); }
  EXPECT_FALSE(Must(Upgrader::Run(img.path())).already);
  // A cut between the two superblock writes: the replica still says "no copies".
  {
    auto fs = img.Mount();
    DiskSuperblock old = fs->superblock();
    old.feature_incompat &= ~kFeatureIncompatMetaCopies;
    old.itable2_off = old.itable2_len = 0;
    SuperblockSeal(&old);
    ASSERT_OK(fs->region()->WriteSafe(old.replica_off, &old, sizeof(old), true));
    ASSERT_OK(fs->Unmount());
  }
  EXPECT_TRUE(Must(Upgrader::Run(img.path())).already);
  auto fs = img.Mount();
  DiskSuperblock replica;
  ASSERT_OK(fs->region()->ReadSafe(fs->superblock().replica_off, &replica, sizeof(replica)));
  EXPECT_TRUE(HasMetaCopies(replica));
  ASSERT_OK(fs->Unmount());
}

TEST(Upgrade, TooFullIsENOSPCAndTheImageStaysAsItWas) {
  TestImage img(16ull << 20, kAuSize4K, 0, /*meta_copies=*/false);
  std::map<std::string, std::string> before;
  {
    auto fs = img.Mount();
    PopulateCopiedKinds(fs.get());
    // Full to the last AU.
    auto [e, f] = Must(fs->Create(kRootIno, "big", 0644, O_RDWR, kRoot));
    const std::string chunk = Pattern(7, 1 << 16);
    for (uint64_t off = 0;; off += chunk.size()) {
      auto n = fs->Write(f, off, chunk.data(), chunk.size());
      if (!n.ok() || *n < chunk.size()) break;
    }
    fs->Release(f);
    before = Contents(fs.get());
    ASSERT_OK(fs->Unmount());
  }
  auto r = Upgrader::Run(img.path());
  EXPECT_EQ(r.status().code(), ENOSPC) << r.status().ToString();
  ExpectClean(img.path());
  auto fs = img.Mount();
  EXPECT_FALSE(HasMetaCopies(fs->superblock()));
  EXPECT_EQ(Contents(fs.get()), before);
  ASSERT_OK(fs->Unmount());
}

TEST(Upgrade, AnImageThatDoesNotCheckCleanIsRefused) {
  TestImage img(32ull << 20, kAuSize4K, 0, /*meta_copies=*/false);
  {
    auto fs = img.Mount();
    PopulateCopiedKinds(fs.get());
    // A reverse-map record that disagrees with the forward maps.
    const DiskSuperblock& sb = fs->superblock();
    const uint64_t rec = sb.rmap_off + FirstDataAu(sb) * sizeof(DiskRmapRecord);
    uint8_t byte;
    ASSERT_OK(fs->region()->ReadSafe(rec, &byte, 1));
    byte ^= 0xff;
    ASSERT_OK(fs->region()->WriteSafe(rec, &byte, 1, true));
    ASSERT_OK(fs->Unmount());
  }
  auto r = Upgrader::Run(img.path());
  EXPECT_EQ(r.status().code(), EUCLEAN) << r.status().ToString();
  EXPECT_NE(r.status().message().find("fsck.udaxfs --repair"), std::string::npos);
  auto fs = img.Mount();
  EXPECT_FALSE(HasMetaCopies(fs->superblock()));
  ASSERT_OK(fs->Unmount());
}

TEST(Upgrade, AMountedImageIsBusy) {
  TestImage img(32ull << 20, kAuSize4K, 0, /*meta_copies=*/false);
  auto fs = img.Mount();
  EXPECT_EQ(Upgrader::Run(img.path()).status().code(), EBUSY);
  ASSERT_OK(fs->Unmount());
}

}  // namespace
}  // namespace udax
