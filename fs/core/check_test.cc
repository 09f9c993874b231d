// check_test.cc -- the consistency checks find what is wrong, and nothing when all is well.
#include <fcntl.h>

#include <cstring>

#include "fs/core/core_test_util.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

// Rewrites inode `ino` on media with `edit` applied (CRC resealed: a logical, not a
// checksum, error).
template <typename F>
void EditInode(const std::string& path, uint64_t ino, F edit) {
  auto region = Must(Region::Open(path, RegionOptions{}));
  DiskSuperblock sb;
  ASSERT_OK(region->ReadSafe(0, &sb, sizeof(sb)));
  DiskInode d;
  ASSERT_OK(region->ReadSafe(InodeOffset(sb, ino), &d, sizeof(d)));
  edit(&d);
  InodeSeal(&d);
  ASSERT_OK(region->WriteSafe(InodeOffset(sb, ino), &d, sizeof(d), true));
}

uint64_t Problems(Filesystem* fs) {
  return Must(fs->checker().CrossCheckMaps()).problems + Must(fs->checker().CheckNamespace()).problems;
}

TEST(Check, CleanTreeHasNoProblems) {
  TestImage img;
  auto fs = img.Mount();
  auto d = Must(fs->Mkdir(kRootIno, "d", 0755, kRoot));
  auto f = Must(fs->Mknod(d.ino, "f", S_IFREG | 0644, 0, kRoot));
  Must(fs->Link(f.ino, kRootIno, "f2"));
  Must(fs->Symlink(d.ino, "s", std::string(500, 'x'), kRoot));
  EXPECT_EQ(Problems(fs.get()), 0u);
}

TEST(Check, FindsWrongLinkCountLeakAndBadParent) {
  TestImage img;
  uint64_t file_ino, dir_ino;
  {
    auto fs = img.Mount();
    auto d = Must(fs->Mkdir(kRootIno, "d", 0755, kRoot));
    auto f = Must(fs->Mknod(kRootIno, "f", S_IFREG | 0644, 0, kRoot));
    Inode* fi = Must(fs->Open(f.ino, O_RDWR));
    Must(fs->Write(fi, 0, "data", 4));
    fs->Release(fi);
    file_ino = f.ino;
    dir_ino = d.ino;
    ASSERT_OK(fs->Unmount());
  }
  EditInode(img.path(), file_ino, [](DiskInode* d) { d->nlink = 3; });
  EditInode(img.path(), dir_ino, [](DiskInode* d) { d->parent = 77; });
  auto fs = img.Mount();
  auto names = Must(fs->checker().CheckNamespace());
  ASSERT_EQ(names.problems, 2u);
  EXPECT_NE(names.messages[0].find("'..'"), std::string::npos) << names.messages[0];
  EXPECT_NE(names.messages[1].find("link count 3, should be 1"), std::string::npos)
      << names.messages[1];
  fs.reset();
  // Drop the file's extents without freeing them: the AU leaks.
  EditInode(img.path(), file_ino, [](DiskInode* d) {
    d->nlink = 1;
    d->ext_count = 0;
    d->au_blocks = 0;
  });
  fs = img.Mount();
  auto maps = Must(fs->checker().CrossCheckMaps());
  ASSERT_EQ(maps.problems, 1u);
  EXPECT_NE(maps.messages[0].find("leak"), std::string::npos) << maps.messages[0];
}

TEST(Check, RebuildReverseMapRepairsDamagedRecords) {
  TestImage img;
  uint64_t phys;
  {
    auto fs = img.Mount();
    auto [e, f] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
    std::string data(40000, 'd');
    Must(fs->Write(f, 0, data.data(), data.size()));
    fs->Release(f);
    phys = Must(fs->Bmap(e.ino))[0].phys_offset;
    ASSERT_OK(fs->Unmount());
  }
  {
    auto region = Must(Region::Open(img.path(), RegionOptions{}));
    DiskSuperblock sb;
    ASSERT_OK(region->ReadSafe(0, &sb, sizeof(sb)));
    // One record garbled, one pointing at the wrong file offset (valid CRC).
    const uint64_t au = phys / sb.au_size;
    ASSERT_OK(region->WriteSafe(sb.rmap_off + au * 16, "garbage!", 8, true));
    DiskRmapRecord wrong = ReverseMap::Encode(au + 1, Owner{OwnerKind::kFileData, 2, 1, 7});
    ASSERT_OK(region->WriteSafe(sb.rmap_off + (au + 1) * 16, &wrong, sizeof(wrong), true));
  }
  auto fs = img.Mount();
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 2u);
  EXPECT_EQ(Must(fs->checker().RebuildReverseMap()), 2u);
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
  EXPECT_EQ(Must(fs->checker().RebuildReverseMap()), 0u);
}

}  // namespace
}  // namespace udax
