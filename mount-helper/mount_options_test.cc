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

TEST(MountOptions, WritebackCacheGoesToTheDaemon) {
  const MountRequest req = Parse("rw,writeback_cache,noatime");
  EXPECT_TRUE(req.unknown.empty());
  EXPECT_TRUE(req.bad.empty());
  EXPECT_EQ(req.daemon_options, std::vector<std::string>{"writeback_cache"});
  EXPECT_EQ(Parse("nowriteback_cache").daemon_options, std::vector<std::string>{"nowriteback_cache"});
  EXPECT_EQ(Parse("degraded").daemon_options, std::vector<std::string>{"degraded"});
}

TEST(MountOptions, NorecoveryIsWhatReadOnlyDoes) {
  const MountRequest req = Parse("ro,norecovery");
  EXPECT_TRUE(req.unknown.empty());
  EXPECT_TRUE(req.norecovery);
  EXPECT_EQ(DaemonOptionString(req), "ro,nosuid,nodev");
  EXPECT_TRUE(Parse("noload").norecovery);
}

TEST(MountOptions, LibfuseNeverSeesWhatItRejects) {
  const MountRequest req = Parse("rw,relatime,strictatime,lazytime,nodiratime,dax,sync");
  EXPECT_EQ(DaemonOptionString(req), "nosuid,nodev,sync");
  EXPECT_TRUE(NeedsKernelRemount(req));
  EXPECT_EQ(KernelRemountFlags(req), MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_STRICTATIME |
                                         MS_LAZYTIME | MS_NODIRATIME);
}

TEST(MountOptions, PlainMountNeedsNoRemount) {
  const MountRequest req = Parse("rw,relatime");
  EXPECT_FALSE(NeedsKernelRemount(req));
  EXPECT_EQ(DaemonOptionString(req), "nosuid,nodev");
}

// Root's mounts too: a setuid-root binary or a device node on an image from anyone must
// not work unless the administrator says so.
TEST(MountOptions, NosuidNodevUnlessAskedFor) {
  EXPECT_EQ(KernelRemountFlags(Parse("rw")), MS_REMOUNT | MS_NOSUID | MS_NODEV);
  EXPECT_EQ(DaemonOptionString(Parse("suid")), "suid,nodev");
  EXPECT_EQ(DaemonOptionString(Parse("dev")), "nosuid,dev");
  EXPECT_EQ(DaemonOptionString(Parse("nosuid,suid,dev")), "suid,dev");
  EXPECT_EQ(DaemonOptionString(Parse("suid,dev,nosuid,nodev")), "nosuid,nodev");
  EXPECT_EQ(KernelRemountFlags(Parse("suid,dev")), static_cast<unsigned long>(MS_REMOUNT));
}

// mount(8) never passes "suid" or "dev" to a helper; these spellings get through it.
TEST(MountOptions, AllowSuidAndDevAreTheOptInThroughMount8) {
  const MountRequest req = Parse("rw,allow_suid,allow_dev,noatime");
  EXPECT_TRUE(req.unknown.empty());
  EXPECT_EQ(DaemonOptionString(req), "suid,dev");
  EXPECT_EQ(KernelRemountFlags(req), MS_REMOUNT | MS_NOATIME);
  EXPECT_EQ(DaemonOptionString(Parse("allow_suid,nosuid")), "nosuid,nodev");
}

// A remount changes only what it names: mount(8) lists a suid mount's options without
// "nosuid", and the helper may be run with no current options at all.
TEST(MountOptions, RemountKeepsCurrentSuidAndDev) {
  MountRequest req = Parse("remount,ro");
  KeepCurrentFlags("rw,relatime", &req);  // a mount made with -o suid,dev
  EXPECT_EQ(KernelRemountFlags(req), static_cast<unsigned long>(MS_REMOUNT | MS_RDONLY));
  req = Parse("remount,ro");
  KeepCurrentFlags("rw,nosuid,nodev,relatime", &req);
  EXPECT_EQ(KernelRemountFlags(req), MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV);
  req = Parse("remount,suid");  // what the options say wins over the current state
  KeepCurrentFlags("rw,nosuid,nodev", &req);
  EXPECT_EQ(KernelRemountFlags(req), MS_REMOUNT | MS_NODEV);
}

TEST(MountOptions, RemountLaterOptionsWin) {
  // What mount(8) passes for `mount -t fuse.udaxfs -o remount,ro,noatime DIR`: the current
  // options, then the new ones.
  MountRequest req = Parse(
      "rw,nosuid,relatime,remount,ro,noatime,user_id=0,group_id=0,default_permissions,"
      "allow_other");
  EXPECT_TRUE(req.remount);
  EXPECT_TRUE(req.unknown.empty());
  KeepCurrentFlags("rw,nosuid,relatime", &req);  // the mount had dev
  EXPECT_EQ(KernelRemountFlags(req), MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOATIME);
  EXPECT_EQ(DescribeRemountFlags(KernelRemountFlags(req)), "ro,nosuid,noatime");
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
