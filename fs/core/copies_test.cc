// copies_test.cc -- metadata copies: where the second copy lives, that every change
// reaches both, that a bad copy (poisoned or failing its checksum) costs nothing, and that
// fsck finds and mends it.
#include <fcntl.h>

#include <cstring>
#include <fstream>
#include <string>

#include "fs/core/core_test_util.h"
#include "fs/core/repair.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};
constexpr uint64_t kAu = kAuSize4K;

void Poison(Filesystem* fs, std::vector<RegionRange> ranges) {
  std::ofstream out(fs->region()->badblocks_path(), std::ios::trunc);
  out << "# udaxfs badblocks v1\n";
  for (const RegionRange& r : ranges) out << r.offset / 512 << " " << r.length / 512 << "\n";
  out.close();
  ASSERT_OK(fs->region()->ReloadEmulatedPoison());
}

// A first copy (copy2 false) of `kind` owned by `ino`: its region offset, or 0.
uint64_t FirstCopyOf(Filesystem* fs, OwnerKind kind, uint64_t ino) {
  const DiskSuperblock& sb = fs->superblock();
  for (const OwnerRange& r : Must(fs->Owners(sb.data_off, LastDataAu(sb) * sb.au_size - sb.data_off))) {
    if (r.owner.kind == kind && r.owner.ino == ino && !r.owner.copy2) return r.phys;
  }
  return 0;
}

// Both copies of [off, off+n) hold the same bytes.
void ExpectSameCopies(Filesystem* fs, uint64_t off, uint64_t n) {
  const uint64_t copy = CopyOffset(fs->superblock(), off);
  ASSERT_NE(copy, 0u);
  std::string a(n, '\0'), b(n, '\0');
  ASSERT_OK(fs->region()->ReadSafe(off, a.data(), n));
  ASSERT_OK(fs->region()->ReadSafe(copy, b.data(), n));
  EXPECT_EQ(a, b) << "copies of " << off << " differ";
}

void Corrupt(Filesystem* fs, uint64_t off) {
  uint8_t byte;
  ASSERT_OK(fs->region()->ReadSafe(off, &byte, 1));
  byte ^= 0x5a;
  ASSERT_OK(fs->region()->WriteSafe(off, &byte, 1, true));
}

TEST(Copies, EveryCopiedRecordHasItsSecondCopyInItsPartner) {
  TestImage img;
  auto fs = img.Mount();
  const CopiedKindsTree t = PopulateCopiedKinds(fs.get());
  const DiskSuperblock& sb = fs->superblock();
  ASSERT_TRUE(HasMetaCopies(sb));
  for (auto [kind, ino] : {std::pair{OwnerKind::kDirectory, t.dir},
                           std::pair{OwnerKind::kExtentBlock, t.frag},
                           std::pair{OwnerKind::kXattr, t.frag},
                           std::pair{OwnerKind::kSymlink, t.sym}}) {
    const uint64_t first = FirstCopyOf(fs.get(), kind, ino);
    ASSERT_NE(first, 0u) << OwnerKindName(kind);
    const uint64_t partner = CopyAu(sb, first / kAu);
    ASSERT_NE(partner, 0u);
    // Half the data area away, and the reverse map names it as the second copy.
    EXPECT_EQ(partner > first / kAu ? partner - first / kAu : first / kAu - partner, CopyHalf(sb));
    auto owner = Must(fs->Owners(partner * kAu, kAu));
    ASSERT_EQ(owner.size(), 1u);
    EXPECT_EQ(owner[0].owner.kind, kind);
    EXPECT_EQ(owner[0].owner.ino, ino);
    EXPECT_TRUE(owner[0].owner.copy2);
    ExpectSameCopies(fs.get(), first, kBlockSize);
  }
  ExpectSameCopies(fs.get(), InodeOffset(sb, t.dir), sizeof(DiskInode));
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
  EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
  // Deleting frees both copies.
  const uint64_t xattr_au = FirstCopyOf(fs.get(), OwnerKind::kXattr, t.frag) / kAu;
  ASSERT_OK(fs->Unlink(kRootIno, "frag"));
  fs->Forget(t.frag, 1);  // Create's lookup
  EXPECT_EQ(Must(fs->Owners(CopyAu(sb, xattr_au) * kAu, kAu))[0].owner.kind, OwnerKind::kFree);
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
}

// A poisoned block in either copy of a directory, an extent block or the inode table is
// rewritten from the other copy, online; nothing shuts down and nothing is lost.
TEST(Copies, PoisonInEitherCopyIsRepairedOnline) {
  TestImage img;
  auto fs = img.Mount();
  const CopiedKindsTree t = PopulateCopiedKinds(fs.get());
  const DiskSuperblock& sb = fs->superblock();
  const uint64_t dir_block = FirstCopyOf(fs.get(), OwnerKind::kDirectory, t.dir);
  const uint64_t ext_block = FirstCopyOf(fs.get(), OwnerKind::kExtentBlock, t.frag);
  const uint64_t inode = InodeOffset(sb, t.dir) / 512 * 512;
  for (uint64_t first : {dir_block, ext_block, inode}) {
    for (uint64_t hit : {first, CopyOffset(sb, first)}) {
      SCOPED_TRACE("hit at " + std::to_string(hit));
      Poison(fs.get(), {{hit, 512}});
      // A read meets the poison first: it is served from the other copy.
      EXPECT_EQ(Must(fs->ListDir(t.dir)).size(), 302u);
      auto owners = Must(fs->media().HandleError(hit, 512));
      ASSERT_EQ(owners.size(), 1u);
      EXPECT_EQ(owners[0].action, MediaAction::kRepaired) << owners[0].detail;
      EXPECT_FALSE(fs->shut_down());
      EXPECT_TRUE(fs->region()->EmulatedPoison().empty());
      ExpectSameCopies(fs.get(), hit, 512);
    }
  }
  Must(fs->Mknod(t.dir, "after", S_IFREG | 0644, 0, kRoot));
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
  EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
}

// Both copies of one directory block bad (two independent hits): only that directory
// fails; everything else serves, health lists it, and fsck names what was lost.
TEST(Copies, BothCopiesOfADirectoryBlockBadCostOnlyThatDirectory) {
  TestImage img;
  CopiedKindsTree t;
  uint64_t other_file;
  {
    auto fs = img.Mount();
    t = PopulateCopiedKinds(fs.get());
    const uint64_t other = Must(fs->Mkdir(kRootIno, "other", 0755, kRoot)).ino;
    other_file = Must(fs->Mknod(other, "f", S_IFREG | 0644, 0, kRoot)).ino;
    ASSERT_OK(fs->Unmount());
  }
  auto fs = img.Mount();
  const uint64_t block = FirstCopyOf(fs.get(), OwnerKind::kDirectory, t.dir);
  const uint64_t copy = CopyOffset(fs->superblock(), block);
  Poison(fs.get(), {{block, 512}, {copy, 512}});
  for (uint64_t hit : {block, copy}) {
    auto owners = Must(fs->media().HandleError(hit, 512));
    ASSERT_EQ(owners.size(), 1u);
    EXPECT_EQ(owners[0].action, MediaAction::kSick) << owners[0].detail;
  }
  EXPECT_FALSE(fs->shut_down());
  EXPECT_EQ(fs->ListDir(t.dir).status().code(), EIO);
  auto sick = fs->SickInodes();
  ASSERT_EQ(sick.size(), 1u);
  EXPECT_EQ(sick[0].first, t.dir);
  // The rest serves.
  const uint64_t other = Must(fs->Lookup(kRootIno, "other")).ino;
  EXPECT_EQ(Must(fs->Lookup(other, "f")).ino, other_file);
  EXPECT_EQ(Must(fs->ReadLink(t.sym)), std::string(500, 's'));
  Must(fs->Mknod(kRootIno, "after", S_IFREG | 0644, 0, kRoot));
  ASSERT_OK(fs->Unmount());
  fs.reset();
  FsckOptions check;
  check.read_only = true;
  FsckOutcome found = Must(Repairer::Run(img.path(), check));
  EXPECT_EQ(found.ExitCode(), kFsckUncorrected);
  bool named = false;
  for (const std::string& m : found.found.messages) {
    named = named || m.find("directory " + std::to_string(t.dir)) != std::string::npos;
  }
  EXPECT_TRUE(named) << (found.found.messages.empty() ? "" : found.found.messages[0]);
}

// A first copy that reads but fails its checksum: reads take the second and mend the first.
TEST(Copies, AChecksumFailureIsServedFromTheOtherCopyAndMended) {
  TestImage img;
  uint64_t dir, dir_block;
  {
    auto fs = img.Mount();
    const CopiedKindsTree t = PopulateCopiedKinds(fs.get());
    dir = t.dir;
    dir_block = FirstCopyOf(fs.get(), OwnerKind::kDirectory, dir);
    ASSERT_OK(fs->Unmount());
  }
  {
    auto fs = img.Mount();
    Corrupt(fs.get(), dir_block + 100);
    Corrupt(fs.get(), InodeOffset(fs->superblock(), dir) + 40);
    EXPECT_EQ(Must(fs->ListDir(dir)).size(), 302u);
    ExpectSameCopies(fs.get(), dir_block, kBlockSize);
    EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
    ASSERT_OK(fs->Unmount());
  }
  FsckOptions check;
  check.read_only = true;
  EXPECT_EQ(Must(Repairer::Run(img.path(), check)).ExitCode(), kFsckClean);
}

// fsck names a bad copy without mending it (-n, or no --repair), and --repair mends it.
TEST(Copies, FsckFindsABadCopyAndRepairMendsIt) {
  TestImage img;
  uint64_t ext_block;
  {
    auto fs = img.Mount();
    const CopiedKindsTree t = PopulateCopiedKinds(fs.get());
    ext_block = FirstCopyOf(fs.get(), OwnerKind::kExtentBlock, t.frag);
    ASSERT_OK(fs->Unmount());
  }
  {
    auto region = Must(Region::Open(img.path(), RegionOptions{}));
    DiskSuperblock sb;
    ASSERT_OK(region->ReadSafe(0, &sb, sizeof(sb)));
    uint8_t byte = 0xee;
    ASSERT_OK(region->WriteSafe(CopyOffset(sb, ext_block) + 8, &byte, 1, true));
  }
  FsckOptions check;
  check.read_only = true;
  FsckOutcome found = Must(Repairer::Run(img.path(), check));
  EXPECT_EQ(found.ExitCode(), kFsckUncorrected);
  ASSERT_FALSE(found.found.messages.empty());
  EXPECT_NE(found.found.messages[0].find("second copy of extent block 0"), std::string::npos)
      << found.found.messages[0];
  FsckOptions fix;
  fix.repair = true;
  FsckOutcome fixed = Must(Repairer::Run(img.path(), fix));
  EXPECT_EQ(fixed.ExitCode(), kFsckFixed);
  EXPECT_EQ(Must(Repairer::Run(img.path(), check)).ExitCode(), kFsckClean);
}

// A crash in the middle of a mend (the bad copy half rewritten): the copy that was good
// still is, and the next read mends again.
TEST(Copies, ACrashInTheMiddleOfAMendLosesNothing) {
  TestImage img;
  uint64_t dir, dir_block;
  {
    auto fs = img.Mount();
    const CopiedKindsTree t = PopulateCopiedKinds(fs.get());
    dir = t.dir;
    dir_block = FirstCopyOf(fs.get(), OwnerKind::kDirectory, dir);
    ASSERT_OK(fs->Unmount());
  }
  {
    // The first copy damaged, then its mend cut after one 512-byte block of eight.
    auto region = Must(Region::Open(img.path(), RegionOptions{}));
    DiskSuperblock sb;
    ASSERT_OK(region->ReadSafe(0, &sb, sizeof(sb)));
    std::string junk(kBlockSize, 'J');
    ASSERT_OK(region->WriteSafe(dir_block, junk.data(), junk.size(), true));
    std::string good(512, '\0');
    ASSERT_OK(region->ReadSafe(CopyOffset(sb, dir_block), good.data(), good.size()));
    ASSERT_OK(region->WriteSafe(dir_block, good.data(), good.size(), true));
  }
  auto fs = img.Mount();
  EXPECT_EQ(Must(fs->ListDir(dir)).size(), 302u);
  ExpectSameCopies(fs.get(), dir_block, kBlockSize);
  EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
}

// A transaction cut after its commit word, before it reached either copy: the replay at
// mount writes both.
TEST(Copies, ReplayWritesBothCopies) {
  TestImage img;
  uint64_t dir;
  {
    auto fs = img.Mount();
    dir = Must(fs->Mkdir(kRootIno, "d", 0755, kRoot)).ino;
    ASSERT_OK(fs->Unmount());
  }
  DiskInode changed;
  {
    auto region = Must(Region::Open(img.path(), RegionOptions{}));
    DiskSuperblock sb;
    ASSERT_OK(region->ReadSafe(0, &sb, sizeof(sb)));
    Journal journal(region.get(), sb);
    ASSERT_TRUE(Must(journal.Replay()) == false);
    ASSERT_OK(region->ReadSafe(InodeOffset(sb, dir), &changed, sizeof(changed)));
    changed.mode = S_IFDIR | 0700;
    InodeSeal(&changed);
    Txn txn;
    txn.WriteObj(InodeOffset(sb, dir), changed);
    ASSERT_OK(journal.Commit(txn, CrashPoint::kAfterCommitWord));
  }
  auto fs = img.Mount();
  EXPECT_EQ(Must(fs->GetAttr(dir)).st_mode, S_IFDIR | 0700u);
  ExpectSameCopies(fs.get(), InodeOffset(fs->superblock(), dir), sizeof(DiskInode));
  DiskInode second;
  ASSERT_OK(fs->region()->ReadSafe(CopyOffset(fs->superblock(), InodeOffset(fs->superblock(), dir)),
                                   &second, sizeof(second)));
  EXPECT_EQ(std::memcmp(&second, &changed, sizeof(second)), 0);
  EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
}

// An image made without copies (as every image before them) mounts and works.
TEST(Copies, AnImageWithoutCopiesWorksAsBefore) {
  TestImage img(64ull << 20, kAuSize4K, 0, /*meta_copies=*/false);
  auto fs = img.Mount();
  ASSERT_FALSE(HasMetaCopies(fs->superblock()));
  const CopiedKindsTree t = PopulateCopiedKinds(fs.get());
  const uint64_t dir_block = FirstCopyOf(fs.get(), OwnerKind::kDirectory, t.dir);
  ASSERT_NE(dir_block, 0u);
  EXPECT_EQ(CopyOffset(fs->superblock(), dir_block), 0u);
  EXPECT_EQ(fs->PooledMetaPairs(), 0u);
  EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
  // With one copy, a bad inode-table block has no way back: a clean shutdown.
  const uint64_t hit = InodeOffset(fs->superblock(), t.dir) / 512 * 512;
  Poison(fs.get(), {{hit, 512}});
  auto owners = Must(fs->media().HandleError(hit, 512));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].action, MediaAction::kShutdown) << owners[0].detail;
  EXPECT_TRUE(fs->shut_down());
  Poison(fs.get(), {});
}

}  // namespace
}  // namespace udax
