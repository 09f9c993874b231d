// mount_watch_test.cc -- mountinfo parsing for the atime policy.
#include "fs/fuse/mount_watch.h"

#include <gtest/gtest.h>

namespace udax {
namespace {

constexpr char kMountinfo[] =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "40 22 0:45 / /mnt/my\\040dir rw,nosuid,nodev,noatime - fuse /img rw,user_id=0\n"
    "41 22 0:46 / /mnt/x rw,nosuid,nodev,relatime - fuse /a rw\n"
    "42 41 0:47 / /mnt/x rw,nosuid,nodev - fuse /b rw\n";

TEST(MountWatch, FindsTheLastMountAtThePath) {
  EXPECT_EQ(MountOptionsOf(kMountinfo, "/mnt/x"), "rw,nosuid,nodev");  // stacked: the top one
  EXPECT_EQ(MountOptionsOf(kMountinfo, "/mnt/my dir"), "rw,nosuid,nodev,noatime");
  EXPECT_EQ(MountOptionsOf(kMountinfo, "/mnt/none"), "");
}

TEST(MountWatch, AtimePolicyFromOptions) {
  EXPECT_EQ(AtimePolicyFromOptions("rw,relatime").mode, AtimeUpdate::kRelative);
  EXPECT_EQ(AtimePolicyFromOptions("rw,nosuid").mode, AtimeUpdate::kAlways);  // strictatime
  EXPECT_EQ(AtimePolicyFromOptions("ro,noatime").mode, AtimeUpdate::kNever);
  EXPECT_TRUE(AtimePolicyFromOptions("rw,relatime").dirs);
  EXPECT_FALSE(AtimePolicyFromOptions("rw,nodiratime,relatime").dirs);
}

}  // namespace
}  // namespace udax
