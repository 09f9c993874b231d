// remount_test.cc -- a read-only mount made read-write in place (mount -o remount,rw).
#include <fcntl.h>

#include "fs/core/core_test_util.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

TEST(MakeWritable, DoesWhatAReadWriteMountDoes) {
  TestImage img;
  uint64_t orphan_ino;
  {
    auto fs = img.Mount();
    auto [entry, open] = Must(fs->Create(kRootIno, "gone", 0644, O_RDWR, kRoot));
    orphan_ino = entry.ino;
    ASSERT_EQ(Must(fs->Write(open, 0, "data", 4)), 4u);
    ASSERT_OK(fs->Unlink(kRootIno, "gone"));  // still open: on the orphan list
    ASSERT_OK(fs->Unmount());                // the daemon stops with it open
  }
  MountOptions ro;
  ro.read_only = true;
  ro.upgradable = true;
  {
    auto fs = img.Mount(ro);
    EXPECT_EQ(fs->Mkdir(kRootIno, "d", 0755, kRoot).status().code(), EROFS);
    const uint64_t free_before = fs->StatFs().f_ffree;
    ASSERT_OK(fs->MakeWritable());
    EXPECT_EQ(fs->StatFs().f_ffree, free_before + 1);  // the orphan is freed
    EXPECT_EQ(fs->GetAttr(orphan_ino).status().code(), ESTALE);
    ASSERT_OK(fs->MakeWritable());                     // already writable: nothing to do
    ASSERT_TRUE(fs->Mkdir(kRootIno, "d", 0755, kRoot).ok());
    ASSERT_OK(fs->Unmount());
  }
  auto fs = img.Mount();
  EXPECT_TRUE(fs->Lookup(kRootIno, "d").ok());
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
  EXPECT_EQ(Must(fs->checker().CheckNamespace()).problems, 0u);
}

TEST(MakeWritable, RefusedWithoutAWritableTarget) {
  TestImage img;
  MountOptions ro;
  ro.read_only = true;  // not upgradable: the target is opened read-only
  auto fs = img.Mount(ro);
  EXPECT_EQ(fs->MakeWritable().code(), EROFS);
  EXPECT_EQ(fs->Mkdir(kRootIno, "d", 0755, kRoot).status().code(), EROFS);
}

}  // namespace
}  // namespace udax
