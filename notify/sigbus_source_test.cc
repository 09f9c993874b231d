// sigbus_source_test.cc -- siginfo translation, the early-kill opt-in, the AO receiver.
#include "notify/sigbus_source.h"

#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "notify/test_util.h"

// As in fs/region's tests: leave SIGBUS to our handler, not ASan's.
extern "C" __attribute__((used, visibility("default"))) const char* __asan_default_options() {
  return "handle_sigbus=0";
}

namespace udax {
namespace {

constexpr uint64_t kMiB = 1 << 20;
alignas(2 * 1024 * 1024) uint8_t g_mapping[4 * 1024 * 1024];

siginfo_t Info(int code, const void* addr, int lsb) {
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  info.si_signo = SIGBUS;
  info.si_code = code;
  info.si_addr = const_cast<void*>(addr);
  info.si_addr_lsb = static_cast<short>(lsb);
  return info;
}

TEST(SigbusSourceTest, MachineCheckActionRequiredOnDevdaxAndFsdax) {
  const uint8_t* base = g_mapping;
  // lsb 21 on devdax: the whole 2 MiB page around the address.
  auto e = MediaEventFromSiginfo(Info(BUS_MCEERR_AR, base + 3 * kMiB + 77, 21), base, 4 * kMiB);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->source, MediaEventSource::kSigbusAr);
  EXPECT_EQ(e->offset, 2 * kMiB);
  EXPECT_EQ(e->length, 2 * kMiB);
  EXPECT_EQ(e->si_code, BUS_MCEERR_AR);
  // lsb 12 on fsdax.
  e = MediaEventFromSiginfo(Info(BUS_MCEERR_AR, base + 8192 + 5, 12), base, 4 * kMiB);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->offset, 8192u);
  EXPECT_EQ(e->length, 4096u);
}

TEST(SigbusSourceTest, GranuleIsClippedToTheMapping) {
  const uint8_t* base = g_mapping + 4096;  // a mapping that starts mid-granule
  auto e = MediaEventFromSiginfo(Info(BUS_MCEERR_AO, base + 100, 21), base, 8192);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->source, MediaEventSource::kSigbusAo);
  EXPECT_EQ(e->offset, 0u);
  EXPECT_EQ(e->length, 8192u);
}

TEST(SigbusSourceTest, AddressErrorsAndUnattributedChecks) {
  const uint8_t* base = g_mapping;
  // fsdax badblocks and removed devices: BUS_ADRERR with lsb 0 -> one page.
  auto e = MediaEventFromSiginfo(Info(BUS_ADRERR, base + 5000, 0), base, kMiB);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->source, MediaEventSource::kSigbusAr);
  EXPECT_EQ(e->offset, 4096u);
  EXPECT_EQ(e->length, static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
  // SI_KERNEL: a machine check with no address: the whole mapping.
  e = MediaEventFromSiginfo(Info(SI_KERNEL, nullptr, 0), base, kMiB);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->offset, 0u);
  EXPECT_EQ(e->length, kMiB);
  EXPECT_EQ(e->si_code, SI_KERNEL);
}

TEST(SigbusSourceTest, NotMediaErrorsOrNotOurs) {
  const uint8_t* base = g_mapping + kMiB;
  EXPECT_FALSE(MediaEventFromSiginfo(Info(BUS_MCEERR_AR, base + 2 * kMiB, 12), base, kMiB));
  EXPECT_FALSE(MediaEventFromSiginfo(Info(BUS_MCEERR_AR, base - 4096, 12), base, kMiB));
  EXPECT_FALSE(MediaEventFromSiginfo(Info(BUS_ADRALN, base, 0), base, kMiB));
  EXPECT_FALSE(MediaEventFromSiginfo(Info(SI_USER, base, 0), base, kMiB));
  EXPECT_FALSE(MediaEventFromSiginfo(Info(SI_TKILL, base, 0), base, kMiB));
  siginfo_t segv = Info(BUS_MCEERR_AR, base, 12);
  segv.si_signo = SIGSEGV;
  EXPECT_FALSE(MediaEventFromSiginfo(segv, base, kMiB));
}

TEST(SigbusSourceTest, EarlyKillOptIn) {
  // In a child, so the test process keeps its policy.
  EXPECT_EXIT(
      {
        if (!EnableEarlyMceKill().ok()) std::_Exit(1);
        auto p = MceKillPolicy();
        std::_Exit(p.ok() && p.value() == PR_MCE_KILL_EARLY ? 0 : 2);
      },
      ::testing::ExitedWithCode(0), "");
}

void QueueToSelf(const siginfo_t& info) {
  siginfo_t copy = info;
  ASSERT_EQ(syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGBUS, &copy), 0)
      << strerror(errno);
}

// The whole asynchronous path: BUS_MCEERR_AO queued to this thread the way the kernel
// delivers it, the handler records it, the receiver's thread pushes the event.
TEST(SigbusAoReceiverTest, AoSignalsBecomeEvents) {
  EventQueue q;
  auto r = SigbusAoReceiver::Start(g_mapping, 4 * kMiB, &q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto again = SigbusAoReceiver::Start(g_mapping, 4 * kMiB, &q);
  EXPECT_EQ(again.status().code(), EBUSY);

  QueueToSelf(Info(BUS_MCEERR_AO, g_mapping + kMiB + 10, 12));
  MediaEvent e;
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.source, MediaEventSource::kSigbusAo);
  EXPECT_EQ(e.offset, kMiB);
  EXPECT_EQ(e.length, 4096u);
  EXPECT_EQ(e.si_code, BUS_MCEERR_AO);

  // Poison in some other mapping of the process: counted, no event.
  static uint8_t elsewhere[64];
  QueueToSelf(Info(BUS_MCEERR_AO, elsewhere, 12));
  for (int i = 0; i < 500 && (*r)->foreign() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ((*r)->foreign(), 1u);
  EXPECT_FALSE(q.TryPop(&e));

  // A burst larger than the ring: some are lost, and the loss is reported as a
  // whole-mapping event rather than silently.
  for (int i = 0; i < 300; ++i) QueueToSelf(Info(BUS_MCEERR_AO, g_mapping + i * 8192, 12));
  (*r)->Stop();
  EXPECT_EQ((*r)->received() + (*r)->lost(), 301u);
  bool whole = (*r)->lost() == 0;
  int events = 0;
  while (q.TryPop(&e)) {
    ++events;
    if (e.offset == 0 && e.length == 4 * kMiB) whole = true;
  }
  EXPECT_TRUE(whole);
  EXPECT_GT(events, 0);

  // Stopped: a new receiver may start.
  auto next = SigbusAoReceiver::Start(g_mapping, 4 * kMiB, &q);
  EXPECT_TRUE(next.ok());
}

}  // namespace
}  // namespace udax
