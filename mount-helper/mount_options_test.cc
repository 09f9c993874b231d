// mount_options_test.cc -- what mount.udaxfs makes of the -o strings mount(8) hands it.
#include "mount-helper/mount_options.h"

#include <gtest/gtest.h>
#include <sys/mount.h>

namespace udax {
namespace {

MountRequest Parse(const char* text) {
  MountRequest req;
  ParseMountOptions(text, &req);
  return req;
}

TEST(MountOptions, SplitKeepsQuotedCommas) {
  EXPECT_EQ(SplitOptions("rw,,context=\"u:r:t:s0:c0,c1\",noatime"),
            (std::vector<std::string>{"rw", "context=\"u:r:t:s0:c0,c1\"", "noatime"}));
}

TEST(MountOptions, EveryXfstestsOptionIsAccepted) {
  const MountRequest req = Parse(
      "rw,ro,dev,suid,nodev,nosuid,sync,dirsync,noatime,relatime,strictatime,lazytime,"
      "nodiratime,context=system_u:object_r:tmp_t:s0,dax,dax=always,cache=none,defaults,"
      "auto,noauto,user,nouser,_netdev,nofail,x-systemd.automount");
  EXPECT_TRUE(req.unknown.empty());
  EXPECT_TRUE(req.bad.empty());
  EXPECT_TRUE(req.read_only);
  EXPECT_EQ(req.nosuid, true);
  EXPECT_EQ(req.nodev, true);
  EXPECT_EQ(req.atime, AtimeMode::kStrictatime);
  EXPECT_EQ(req.daemon_options, std::vector<std::string>{"cache=none"});
}

TEST(MountOptions, NorecoveryIsWhatReadOnlyDoes) {
  const MountRequest req = Parse("ro,norecovery");
  EXPECT_TRUE(req.unknown.empty());
  EXPECT_TRUE(req.norecovery);
  EXPECT_EQ(DaemonOptionString(req, true), "ro");
  EXPECT_TRUE(Parse("noload").norecovery);
}

TEST(MountOptions, LibfuseNeverSeesWhatItRejects) {
  const MountRequest req = Parse("rw,relatime,strictatime,lazytime,nodiratime,dax,sync");
  EXPECT_EQ(DaemonOptionString(req, /*is_root=*/true), "sync");
  EXPECT_TRUE(NeedsKernelRemount(req));
  EXPECT_EQ(KernelRemountFlags(req, true),
            MS_REMOUNT | MS_STRICTATIME | MS_LAZYTIME | MS_NODIRATIME);
}

TEST(MountOptions, PlainMountNeedsNoRemount) {
  const MountRequest req = Parse("rw,relatime");
  EXPECT_FALSE(NeedsKernelRemount(req));
  EXPECT_EQ(DaemonOptionString(req, true), "");
  // libfuse's default for non-root mounts.
  EXPECT_EQ(DaemonOptionString(req, false), "nosuid,nodev");
}

TEST(MountOptions, RemountLaterOptionsWin) {
  // What mount(8) passes for `mount -t fuse.udaxfs -o remount,ro,noatime DIR`: the current
  // options, then the new ones.
  const MountRequest req = Parse(
      "rw,nosuid,relatime,remount,ro,noatime,user_id=0,group_id=0,default_permissions,"
      "allow_other");
  EXPECT_TRUE(req.remount);
  EXPECT_TRUE(req.unknown.empty());
  EXPECT_EQ(KernelRemountFlags(req, true), MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOATIME);
  EXPECT_EQ(DescribeRemountFlags(KernelRemountFlags(req, true)), "ro,nosuid,noatime");
}

TEST(MountOptions, UnknownAndBadValues) {
  const MountRequest req = Parse("rw,frobnicate,cache=sometimes,dax=never,max_read=x");
  EXPECT_EQ(req.unknown, std::vector<std::string>{"frobnicate"});
  EXPECT_EQ(req.bad.size(), 3u);
}

TEST(MountOptions, ReadaheadIsADaemonOptionInKiB) {
  const MountRequest good = Parse("readahead=2048,noatime");
  EXPECT_EQ(good.daemon_options, std::vector<std::string>{"readahead=2048"});
  EXPECT_TRUE(good.bad.empty());
  const MountRequest bad = Parse("readahead=1M,readahead=,readahead=99999999999");
  EXPECT_EQ(bad.bad.size(), 3u);
  EXPECT_TRUE(bad.daemon_options.empty());
}

TEST(MountOptions, UringChoosesTheTransport) {
  const MountRequest req = Parse("uring,noatime,nouring");
  EXPECT_EQ(req.daemon_options, (std::vector<std::string>{"uring", "nouring"}));
  EXPECT_TRUE(req.unknown.empty());
}

}  // namespace
}  // namespace udax
