// attr_test.cc -- chattr flags in the core (ext4's rules and errors, enforcement on every
// path, persistence), the volume label (both superblock copies, a torn update) and FITRIM.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/xattr.h>

#include <cstring>
#include <string>

#include "fs/core/core_test_util.h"
#include "fs/format/layout.h"
#include "fs/region/region.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};
const Caller kUser{1000, 1000};

TEST(AttrFlags, RulesAsExt4) {
  TestImage img;
  auto fs = img.Mount();
  const uint64_t f = Must(fs->Mknod(kRootIno, "f", S_IFREG | 0644, 0, kUser)).ino;
  const uint64_t d = Must(fs->Mkdir(kRootIno, "d", 0755, kUser)).ino;
  EXPECT_EQ(Must(fs->GetFlags(f)), 0u);
  EXPECT_EQ(fs->SetFlags(f, FS_COMPR_FL, kRoot).code(), EOPNOTSUPP);
  EXPECT_EQ(fs->SetFlags(f, FS_DIRSYNC_FL, kRoot).code(), EOPNOTSUPP);
  ASSERT_OK(fs->SetFlags(d, FS_DIRSYNC_FL, kRoot));
  EXPECT_EQ(fs->SetFlags(f, FS_NODUMP_FL, Caller{2000, 2000}).code(), EPERM);  // not the owner
  ASSERT_OK(fs->SetFlags(f, FS_NODUMP_FL | FS_NOATIME_FL | FS_SYNC_FL, kUser));
  EXPECT_EQ(fs->SetFlags(f, FS_IMMUTABLE_FL, kUser).code(), EPERM);  // CAP_LINUX_IMMUTABLE
  EXPECT_EQ(fs->SetFlags(f, FS_APPEND_FL, kUser).code(), EPERM);
  ASSERT_OK(fs->SetFlags(f, FS_IMMUTABLE_FL | FS_NODUMP_FL, kRoot));
  EXPECT_EQ(fs->SetFlags(f, FS_IMMUTABLE_FL, kRoot).code(), EPERM);  // others stay frozen
  EXPECT_EQ(fs->SetFlags(f, FS_NODUMP_FL, kUser).code(), EPERM);
  ASSERT_OK(fs->SetFlags(f, FS_NODUMP_FL, kRoot));
  ASSERT_OK(fs->Unmount());
  fs.reset();
  fs = img.Mount();
  EXPECT_EQ(Must(fs->GetFlags(f)), static_cast<uint32_t>(FS_NODUMP_FL));
  EXPECT_EQ(Must(fs->GetFlags(d)), static_cast<uint32_t>(FS_DIRSYNC_FL));
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
}

TEST(AttrFlags, ImmutableRefusesEveryChange) {
  TestImage img;
  auto fs = img.Mount();
  auto [entry, open] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
  const uint64_t f = entry.ino;
  ASSERT_EQ(Must(fs->Write(open, 0, "data", 4)), 4u);
  const uint64_t d = Must(fs->Mkdir(kRootIno, "d", 0755, kRoot)).ino;
  ASSERT_TRUE(fs->Mknod(d, "in", S_IFREG | 0644, 0, kRoot).ok());
  ASSERT_OK(fs->SetFlags(f, FS_IMMUTABLE_FL, kRoot));
  ASSERT_OK(fs->SetFlags(d, FS_IMMUTABLE_FL, kRoot));
  EXPECT_EQ(fs->Open(f, O_WRONLY).status().code(), EPERM);
  EXPECT_EQ(fs->Open(f, O_RDONLY | O_TRUNC).status().code(), EPERM);
  Inode* ro = Must(fs->Open(f, O_RDONLY));
  fs->Release(ro);
  EXPECT_EQ(fs->Write(open, 4, "x", 1).status().code(), EPERM);  // a handle from before
  EXPECT_EQ(fs->Fallocate(open, FALLOC_FL_KEEP_SIZE, 0, 8192).code(), EPERM);
  SetAttrIn size;
  size.size = true;
  EXPECT_EQ(fs->SetAttr(f, size).status().code(), EPERM);
  SetAttrIn touch;
  touch.atime = touch.atime_now = touch.mtime = touch.mtime_now = true;
  EXPECT_EQ(fs->SetAttr(f, touch).status().code(), EPERM);
  EXPECT_EQ(fs->SetXattr(f, "user.a", "1", 0, kRoot).code(), EPERM);
  EXPECT_EQ(fs->RemoveXattr(f, "user.a").code(), EPERM);
  EXPECT_EQ(fs->Link(f, kRootIno, "f2").status().code(), EPERM);
  EXPECT_EQ(fs->Unlink(kRootIno, "f").code(), EPERM);
  EXPECT_EQ(fs->Rename(kRootIno, "f", kRootIno, "g", 0).code(), EPERM);
  EXPECT_EQ(fs->Mknod(d, "new", S_IFREG | 0644, 0, kRoot).status().code(), EPERM);
  EXPECT_EQ(fs->Mknod(d, "in", S_IFREG | 0644, 0, kRoot).status().code(), EEXIST);
  EXPECT_EQ(fs->Unlink(d, "in").code(), EPERM);
  EXPECT_EQ(fs->Rename(d, "in", kRootIno, "out", 0).code(), EPERM);
  ASSERT_OK(fs->SetFlags(f, 0, kRoot));
  EXPECT_EQ(Must(fs->Write(open, 4, "x", 1)), 1u);
  fs->Release(open);
}

TEST(AttrFlags, AppendOnlyAllowsAppendingOnly) {
  TestImage img;
  auto fs = img.Mount();
  auto [entry, open] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
  const uint64_t f = entry.ino;
  ASSERT_EQ(Must(fs->Write(open, 0, "data", 4)), 4u);
  ASSERT_OK(fs->SetFlags(f, FS_APPEND_FL, kRoot));
  EXPECT_EQ(fs->Open(f, O_WRONLY).status().code(), EPERM);
  EXPECT_EQ(fs->Open(f, O_WRONLY | O_APPEND | O_TRUNC).status().code(), EPERM);
  Inode* app = Must(fs->Open(f, O_WRONLY | O_APPEND));
  EXPECT_EQ(fs->Write(app, 0, "x", 1).status().code(), EPERM);
  EXPECT_EQ(Must(fs->Write(app, 4, "more", 4)), 4u);
  ASSERT_OK(fs->Fallocate(app, FALLOC_FL_KEEP_SIZE, 0, 16384));
  EXPECT_EQ(fs->Fallocate(app, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, 4096).code(), EPERM);
  fs->Release(app);
  SetAttrIn touch;
  touch.atime = touch.atime_now = touch.mtime = touch.mtime_now = true;
  EXPECT_TRUE(fs->SetAttr(f, touch).ok());
  SetAttrIn chmod;
  chmod.mode = true;
  chmod.attr.st_mode = 0600;
  EXPECT_EQ(fs->SetAttr(f, chmod).status().code(), EPERM);
  EXPECT_EQ(fs->Unlink(kRootIno, "f").code(), EPERM);
  const uint64_t d = Must(fs->Mkdir(kRootIno, "d", 0755, kRoot)).ino;
  ASSERT_OK(fs->SetFlags(d, FS_APPEND_FL, kRoot));
  ASSERT_TRUE(fs->Mknod(d, "new", S_IFREG | 0644, 0, kRoot).ok());
  EXPECT_EQ(fs->Unlink(d, "new").code(), EPERM);
  char buf[8] = {};
  EXPECT_EQ(Must(fs->Read(open, 0, 8, buf)), 8u);
  EXPECT_EQ(std::string(buf, 8), "datamore");
  fs->Release(open);
}

TEST(Label, BothCopiesAndATornUpdate) {
  TestImage img;
  {
    auto fs = img.Mount();
    EXPECT_EQ(fs->Label(), "");
    EXPECT_EQ(fs->SetLabel(std::string(32, 'x')).code(), EINVAL);
    ASSERT_OK(fs->SetLabel(std::string(31, 'x')));
    ASSERT_OK(fs->SetLabel("vol"));
    ASSERT_OK(fs->Unmount());
  }
  auto region = Must(Region::Open(img.path(), RegionOptions{}));
  DiskSuperblock primary, replica;
  ASSERT_OK(region->ReadSafe(0, &primary, sizeof(primary)));
  ASSERT_OK(region->ReadSafe(primary.replica_off, &replica, sizeof(replica)));
  EXPECT_EQ(std::string(primary.label), "vol");
  EXPECT_EQ(std::memcmp(&primary, &replica, sizeof(primary)), 0);
  // A cut between the two writes: the primary has the new label, the replica the old.
  std::memcpy(primary.label, "new", 4);
  SuperblockSeal(&primary);
  ASSERT_OK(region->WriteSafe(0, &primary, sizeof(primary), true));
  region.reset();
  {
    auto fs = img.Mount();
    EXPECT_EQ(fs->Label(), "new");
    ASSERT_OK(fs->Unmount());
  }
  region = Must(Region::Open(img.path(), RegionOptions{}));
  ASSERT_OK(region->ReadSafe(primary.replica_off, &replica, sizeof(replica)));
  EXPECT_EQ(std::memcmp(&primary, &replica, sizeof(primary)), 0);
}

TEST(Trim, FreeBytesInRangeAndExt4Errors) {
  TestImage img;
  auto fs = img.Mount();
  const DiskSuperblock& sb = fs->superblock();
  const struct statvfs st = fs->StatFs();
  const uint64_t free_bytes = st.f_bfree * st.f_bsize;
  EXPECT_EQ(Must(fs->Trim(0, UINT64_MAX, 0)), free_bytes);
  EXPECT_EQ(Must(fs->Trim(0, sb.au_size, 0)), 0u);  // the superblock's AU
  EXPECT_EQ(Must(fs->Trim(sb.region_size - sb.au_size, sb.au_size, 0)), 0u);  // replica
  EXPECT_EQ(Must(fs->Trim(0, UINT64_MAX, sb.region_size)), 0u);
  EXPECT_EQ(fs->Trim(0, UINT64_MAX, sb.region_size + 1).status().code(), EINVAL);
  EXPECT_EQ(fs->Trim(sb.region_size, UINT64_MAX, 0).status().code(), EINVAL);
  EXPECT_EQ(fs->Trim(UINT64_MAX, 1 << 20, 0).status().code(), EINVAL);
  EXPECT_EQ(fs->Trim(0, sb.au_size - 1, 0).status().code(), EINVAL);
  // A 1 MiB range in the free data area is all free.
  const uint64_t mid = (sb.data_off + sb.region_size) / 2 / sb.au_size * sb.au_size;
  EXPECT_EQ(Must(fs->Trim(mid, 1 << 20, 0)), uint64_t{1} << 20);
  ASSERT_OK(fs->Unmount());
  fs.reset();
  MountOptions ro;
  ro.read_only = true;
  fs = img.Mount(ro);
  EXPECT_EQ(fs->Trim(0, UINT64_MAX, 0).status().code(), EROFS);
}

}  // namespace
}  // namespace udax
