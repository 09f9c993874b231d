// uevent_test.cc -- uevent parsing on recorded messages, the removal rule, the listener.
#include "notify/uevent.h"

#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "notify/test_util.h"
#include "notify/uevent_listener.h"

namespace udax {
namespace {

using namespace std::string_literals;

// Recorded in the lab guest (Linux 6.1, QEMU nvdimm) by `daxctl disable-device dax0.0`
// and `ndctl disable-namespace namespace0.0`.
const std::string kDax = "/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0/dax0.1/dax0.0";
const std::string kUnbindDax =
    "unbind@" + kDax + "\0ACTION=unbind\0DEVPATH="s + kDax +
    "\0SUBSYSTEM=dax\0DRIVER=device_dax\0MODALIAS=dax:t0\0SEQNUM=3141\0"s;
const std::string kRemoveNdDax =
    "remove@/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0/dax0.1\0"
    "ACTION=remove\0DEVPATH=/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0/dax0.1\0"
    "SUBSYSTEM=nd\0DEVTYPE=nd_dax\0MODALIAS=nd:t7\0SEQNUM=3145\0"s;
const std::string kAddDax = "add@" + kDax + "\0ACTION=add\0DEVPATH="s + kDax +
                            "\0SUBSYSTEM=dax\0SEQNUM=3150\0"s;

TEST(UeventTest, ParsesKernelMessages) {
  auto ev = ParseUevent(kUnbindDax);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->action, "unbind");
  EXPECT_EQ(ev->devpath, kDax);
  EXPECT_EQ(ev->subsystem, "dax");
  EXPECT_EQ(ev->devtype, "");
  EXPECT_EQ(ev->env.at("DRIVER"), "device_dax");
  EXPECT_EQ(ev->env.at("SEQNUM"), "3141");
  auto nd = ParseUevent(kRemoveNdDax);
  ASSERT_TRUE(nd);
  EXPECT_EQ(nd->subsystem, "nd");
  EXPECT_EQ(nd->devtype, "nd_dax");
  // No final NUL, odd fields without '=': tolerated.
  auto loose = ParseUevent("remove@/devices/x\0garbage\0SUBSYSTEM=block"s);
  ASSERT_TRUE(loose);
  EXPECT_EQ(loose->subsystem, "block");
}

TEST(UeventTest, RejectsWhatIsNotAKernelUevent) {
  EXPECT_FALSE(ParseUevent(""));
  EXPECT_FALSE(ParseUevent("\0\0"s));
  EXPECT_FALSE(ParseUevent("no header here\0ACTION=remove\0"s));
  EXPECT_FALSE(ParseUevent("@/devices/x\0"s));
  EXPECT_FALSE(ParseUevent("remove@\0"s));
  // udevd's re-broadcast on group 2 starts with a binary "libudev" header.
  EXPECT_FALSE(ParseUevent("libudev\0\xfe\xed\xca\xfe"s));
  // Header and keys disagree.
  EXPECT_FALSE(ParseUevent("remove@/devices/x\0ACTION=add\0"s));
  EXPECT_FALSE(ParseUevent("remove@/devices/x\0DEVPATH=/devices/y\0"s));
}

TEST(UeventTest, RemovalOfTheDeviceOrAnAncestor) {
  EXPECT_TRUE(IsRemovalOf(*ParseUevent(kUnbindDax), kDax));
  EXPECT_TRUE(IsRemovalOf(*ParseUevent(kRemoveNdDax), kDax));  // nd parent
  EXPECT_FALSE(IsRemovalOf(*ParseUevent(kAddDax), kDax));      // not a removal
  Uevent ev;
  ev.action = "remove";
  ev.devpath = "/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0";
  EXPECT_TRUE(IsRemovalOf(ev, kDax));
  ev.devpath = "/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region";  // not a component
  EXPECT_FALSE(IsRemovalOf(ev, kDax));
  ev.devpath = "/devices/a/region1";
  EXPECT_FALSE(IsRemovalOf(ev, "/devices/a/region10/dax10.0"));
  ev.devpath = kDax + "/power";  // a child of ours going away is not our removal
  EXPECT_FALSE(IsRemovalOf(ev, kDax));
  ev.action = "change";
  ev.devpath = kDax;
  EXPECT_FALSE(IsRemovalOf(ev, kDax));
  ev.action = "remove";
  EXPECT_FALSE(IsRemovalOf(ev, ""));
  // The pmem disk's own removal, as fsdax shows it.
  const std::string pmem = "/devices/platform/e820_pmem/ndbus0/region0/namespace0.0/block/pmem0";
  auto blk = ParseUevent("remove@" + pmem + "\0ACTION=remove\0DEVPATH="s + pmem +
                         "\0SUBSYSTEM=block\0DEVNAME=pmem0\0DEVTYPE=disk\0"s);
  ASSERT_TRUE(blk);
  EXPECT_TRUE(IsRemovalOf(*blk, pmem));
}

// The listener's loop, fed through a datagram socketpair (no netlink, no system-wide
// uevents sent): kernel messages about other devices are ignored, ours make one event.
TEST(UeventListenerTest, RemovalBecomesADeviceRemovedEvent) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd ours(sv[0]), theirs(sv[1]);
  EventQueue q;
  std::atomic<int> observed{0};
  UeventListener::Options o;
  o.region_size = 1 << 30;
  o.observer = [&](const Uevent&) { observed++; };
  auto l = UeventListener::StartOnSocket(std::move(ours), {kDax}, &q, o);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  auto send_msg = [&](const std::string& m) {
    ASSERT_EQ(send(theirs.get(), m.data(), m.size(), 0), static_cast<ssize_t>(m.size()));
  };
  send_msg(kAddDax);
  send_msg("not a uevent");
  send_msg("remove@/devices/virtual/block/loop7\0ACTION=remove\0SUBSYSTEM=block\0"s);
  MediaEvent e;
  EXPECT_FALSE(q.Pop(&e, std::chrono::milliseconds(100)));
  send_msg(kUnbindDax);
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.source, MediaEventSource::kDeviceRemoved);
  EXPECT_EQ(e.offset, 0u);
  EXPECT_EQ(e.length, 1u << 30);
  EXPECT_EQ(e.detail, "unbind@" + kDax);
  send_msg(kRemoveNdDax);
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.detail.substr(0, 7), "remove@");
  (*l)->Stop();
  EXPECT_EQ((*l)->received(), 5u);
  EXPECT_EQ((*l)->rejected(), 1u);
  EXPECT_EQ((*l)->removals(), 2u);
  EXPECT_EQ(observed.load(), 4);
}

// The real netlink socket: it opens where the kernel allows, and a "kernel" uevent sent
// by a userspace process straight to our port is refused (a forged removal would shut
// the filesystem down).
TEST(UeventListenerTest, NetlinkRefusesMessagesNotFromTheKernel) {
  EventQueue q;
  auto l = UeventListener::Start({kDax}, &q, {});
  if (!l.ok()) GTEST_SKIP() << "no NETLINK_KOBJECT_UEVENT here: " << l.status().ToString();
  // Our socket's port id, to send to it directly (unicast needs no privilege).
  UniqueFd sender(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT));
  ASSERT_TRUE(sender.valid());
  // Find the listener's port: the kernel gave it the process id (first socket) or a
  // unique negative number; try the pid first.
  struct sockaddr_nl to {};
  to.nl_family = AF_NETLINK;
  to.nl_pid = static_cast<uint32_t>(getpid());
  const std::string m = kUnbindDax;
  if (sendto(sender.get(), m.data(), m.size(), 0, reinterpret_cast<struct sockaddr*>(&to),
             sizeof(to)) < 0) {
    GTEST_SKIP() << "cannot unicast to the listener: " << strerror(errno);
  }
  // Real uevents of other devices may arrive meanwhile; they are received, not rejected.
  for (int i = 0; i < 200 && (*l)->rejected() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if ((*l)->rejected() == 0) GTEST_SKIP() << "the listener is not on port getpid()";
  EXPECT_EQ((*l)->rejected(), 1u);
  EXPECT_EQ((*l)->removals(), 0u);
  MediaEvent e;
  EXPECT_FALSE(q.TryPop(&e));
}

}  // namespace
}  // namespace udax
