// safe_copy_test.cc -- the SIGBUS handler itself: caught when armed, untouched otherwise.
#include "fs/region/safe_copy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace udax {
namespace {

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));

// Four shared pages of a tmpfs file, of which the last two lie beyond EOF after the file
// is shrunk: touching them raises a genuine SIGBUS (BUS_ADRERR).
class TruncatedMapping {
 public:
  TruncatedMapping() {
    char tmpl[] = "/dev/shm/udax_safe_copy_test.XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd < 0) std::abort();
    unlink(tmpl);
    if (ftruncate(fd, static_cast<off_t>(4 * kPage)) != 0) std::abort();
    void* p = mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) std::abort();
    if (ftruncate(fd, static_cast<off_t>(2 * kPage)) != 0) std::abort();
    close(fd);
    base_ = static_cast<uint8_t*>(p);
  }
  ~TruncatedMapping() { munmap(base_, 4 * kPage); }
  TruncatedMapping(const TruncatedMapping&) = delete;
  TruncatedMapping& operator=(const TruncatedMapping&) = delete;

  uint8_t* good() const { return base_; }             // pages 0 and 1
  uint8_t* bad() const { return base_ + 2 * kPage; }  // pages 2 and 3

 private:
  uint8_t* base_ = nullptr;
};

void TouchVolatile(const uint8_t* p) {
  const volatile uint8_t* v = p;
  (void)*v;
}

TEST(SafeCopyTest, CopyFromGoodMemorySucceeds) {
  TruncatedMapping m;
  std::memset(m.good(), 0x5a, kPage);
  std::vector<uint8_t> buf(kPage);
  CaughtSigbus caught;
  ASSERT_TRUE(SafeCopyFromPmem(buf.data(), m.good(), kPage, &caught));
  EXPECT_EQ(buf, std::vector<uint8_t>(kPage, 0x5a));
  EXPECT_EQ(caught.si_code, 0);
}

TEST(SafeCopyTest, CatchesFaultInGuardedRange) {
  TruncatedMapping m;
  std::vector<uint8_t> buf(2 * kPage);
  CaughtSigbus caught;
  // Starts in good memory and runs into the hole: the fault is the first bad page.
  ASSERT_FALSE(SafeCopyFromPmem(buf.data(), m.good() + kPage, 2 * kPage, &caught));
  EXPECT_EQ(caught.si_code, BUS_ADRERR);
  EXPECT_GE(caught.addr, reinterpret_cast<uintptr_t>(m.bad()));
  EXPECT_LT(caught.addr, reinterpret_cast<uintptr_t>(m.bad()) + kPage);
  EXPECT_EQ(caught.granule, kPage);
}

TEST(SafeCopyTest, ManyFaultsInARowLeaveSigbusUnblocked) {
  TruncatedMapping m;
  uint8_t buf[64];
  for (int i = 0; i < 1000; ++i) {
    ASSERT_FALSE(SafeCopyFromPmem(buf, m.bad() + (i % 2) * kPage, sizeof(buf), nullptr));
  }
  sigset_t mask;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, nullptr, &mask), 0);
  EXPECT_FALSE(sigismember(&mask, SIGBUS));
}

TEST(SafeCopyTest, WriteAndSetFaultsAreCaught) {
  TruncatedMapping m;
  // Plain memcpy/memset stand in for libpmem2's functions (same signatures).
  auto copy = [](void* d, const void* s, size_t n, unsigned) { return std::memcpy(d, s, n); };
  auto set = [](void* d, int c, size_t n, unsigned) { return std::memset(d, c, n); };
  auto flush = [](const void* p, size_t n) {
    const volatile uint8_t* v = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; i += 64) (void)v[i];
  };
  uint8_t src[128] = {1, 2, 3};
  CaughtSigbus caught;
  EXPECT_TRUE(SafeCopyToPmem(copy, m.good(), src, sizeof(src), 0, &caught));
  EXPECT_EQ(m.good()[2], 3);
  EXPECT_FALSE(SafeCopyToPmem(copy, m.bad(), src, sizeof(src), 0, &caught));
  EXPECT_EQ(caught.si_code, BUS_ADRERR);
  EXPECT_FALSE(SafeSetPmem(set, m.bad() + kPage, 0, 16, 0, &caught));
  EXPECT_EQ(caught.addr & ~(kPage - 1), reinterpret_cast<uintptr_t>(m.bad() + kPage));
  EXPECT_TRUE(SafeFlushPmem(flush, m.good(), kPage, &caught));
  EXPECT_FALSE(SafeFlushPmem(flush, m.bad(), kPage, &caught));
}

TEST(SafeCopyTest, CodeNames) {
  EXPECT_STREQ(SigbusCodeName(BUS_MCEERR_AR), "BUS_MCEERR_AR");
  EXPECT_STREQ(SigbusCodeName(BUS_MCEERR_AO), "BUS_MCEERR_AO");
  EXPECT_STREQ(SigbusCodeName(BUS_ADRERR), "BUS_ADRERR");
  EXPECT_STREQ(SigbusCodeName(SI_USER), "SIGBUS");
}

// Outside an armed section the handler must be invisible: the process dies of SIGBUS as
// if we had never installed anything.
TEST(SafeCopyDeathTest, UnarmedFaultKillsWithSigbus) {
  TruncatedMapping m;
  EXPECT_EXIT(
      {
        InstallSigbusHandler();
        uint8_t buf[8];
        // One caught fault first, to show that catching leaves nothing armed behind.
        if (SafeCopyFromPmem(buf, m.bad(), sizeof(buf), nullptr)) std::_Exit(3);
        TouchVolatile(m.bad());
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

// A fault that is not in the guarded range is a bug elsewhere, not bad media: not caught.
TEST(SafeCopyDeathTest, FaultOutsideGuardedRangeIsNotCaught) {
  TruncatedMapping m;
  EXPECT_EXIT(
      {
        uint8_t unrelated[64] = {};
        const uint8_t* bad = m.bad();
        RunSigbusGuarded(
            unrelated, sizeof(unrelated),
            [](void* arg) { TouchVolatile(static_cast<const uint8_t*>(arg)); },
            const_cast<uint8_t*>(bad), nullptr);
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

// The tests below need a process in which our handler is installed after theirs: the
// "threadsafe" style re-executes the binary for the death test, so nothing has been
// installed yet when the statement runs.
int g_foreign_calls = 0;
int g_foreign_code = 0;
void ForeignHandler(int, siginfo_t* info, void*) {
  ++g_foreign_calls;
  g_foreign_code = info->si_code;
}
void ExitingForeignHandler(int, siginfo_t*, void*) { std::_Exit(42); }

void InstallForeign(void (*fn)(int, siginfo_t*, void*)) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = fn;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, nullptr) != 0) std::abort();
}

TEST(SafeCopyDeathTest, ChainsToPreviouslyInstalledHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TruncatedMapping m;
  EXPECT_EXIT(
      {
        InstallForeign(ExitingForeignHandler);
        InstallSigbusHandler();
        uint8_t buf[8];
        if (SafeCopyFromPmem(buf, m.bad(), sizeof(buf), nullptr)) std::_Exit(3);
        TouchVolatile(m.bad());  // not armed: goes to the foreign handler, which exits 42
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(42), "");
}

// Asynchronous SIGBUS (kill(), or BUS_MCEERR_AO for poison found elsewhere) did not come
// from the copy, so an armed section must not abandon the copy for it.
TEST(SafeCopyDeathTest, AsynchronousSigbusWhileArmedIsPassedOn) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        InstallForeign(ForeignHandler);
        InstallSigbusHandler();
        static uint8_t guarded[4096];
        const bool done_raise = RunSigbusGuarded(
            guarded, sizeof(guarded), [](void*) { raise(SIGBUS); }, nullptr, nullptr);
        if (!done_raise || g_foreign_calls != 1 || g_foreign_code != SI_TKILL) std::_Exit(1);
        // BUS_MCEERR_AO pointing into the guarded range, queued the way libudax re-raises
        // revokes to its own process.
        const bool done_ao = RunSigbusGuarded(
            guarded, sizeof(guarded),
            [](void*) {
              siginfo_t info;
              std::memset(&info, 0, sizeof(info));
              info.si_signo = SIGBUS;
              info.si_code = BUS_MCEERR_AO;
              info.si_addr = guarded;
              info.si_addr_lsb = 12;
              syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGBUS, &info);
            },
            nullptr, nullptr);
        if (!done_ao || g_foreign_calls != 2 || g_foreign_code != BUS_MCEERR_AO) std::_Exit(2);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// SI_KERNEL is the machine check the kernel could not tie to an address; raised while armed
// it came from the armed access, which is abandoned with the whole guarded range as bad.
TEST(SafeCopyTest, UnattributedMachineCheckWhileArmedIsCaught) {
  static uint8_t guarded[3 * 4096];
  CaughtSigbus caught;
  const bool done = RunSigbusGuarded(
      guarded + 100, 5000,
      [](void*) {
        siginfo_t info;
        std::memset(&info, 0, sizeof(info));
        info.si_signo = SIGBUS;
        info.si_code = SI_KERNEL;
        syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGBUS, &info);
      },
      nullptr, &caught);
  EXPECT_FALSE(done);
  EXPECT_EQ(caught.si_code, SI_KERNEL);
  EXPECT_EQ(caught.addr, 0u);
  EXPECT_EQ(caught.first, reinterpret_cast<uintptr_t>(guarded + 100));
  EXPECT_EQ(caught.last, reinterpret_cast<uintptr_t>(guarded + 5100));
  EXPECT_STREQ(SigbusCodeName(SI_KERNEL), "SI_KERNEL");
}

TEST(SafeCopyTest, CaughtRangeIsTheGranuleAroundTheAddress) {
  TruncatedMapping m;
  CaughtSigbus caught;
  std::vector<uint8_t> dst(kPage);
  ASSERT_FALSE(SafeCopyFromPmem(dst.data(), m.bad() + 10, 100, &caught));
  EXPECT_EQ(caught.first, reinterpret_cast<uintptr_t>(m.bad()));
  EXPECT_EQ(caught.last, reinterpret_cast<uintptr_t>(m.bad()) + kPage);
}

// With a sink set, BUS_MCEERR_AO goes to the sink (inside the handler) instead of the
// default action; clearing the sink passes AO on again.
std::atomic<int> g_sink_calls{0};
std::atomic<uintptr_t> g_sink_addr{0};
std::atomic<int> g_sink_lsb{0};
void TestSink(const siginfo_t* info) {
  g_sink_calls.fetch_add(1);
  g_sink_addr.store(reinterpret_cast<uintptr_t>(info->si_addr));
  g_sink_lsb.store(info->si_addr_lsb);
}

void QueueAo(void* addr, int lsb) {
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  info.si_signo = SIGBUS;
  info.si_code = BUS_MCEERR_AO;
  info.si_addr = addr;
  info.si_addr_lsb = static_cast<short>(lsb);
  syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGBUS, &info);
}

TEST(SafeCopyTest, AsyncSinkReceivesActionOptionalSignals) {
  static uint8_t where[64];
  g_sink_calls = 0;
  SetAsyncSigbusSink(TestSink);
  QueueAo(where, 21);
  SetAsyncSigbusSink(nullptr);
  EXPECT_EQ(g_sink_calls.load(), 1);
  EXPECT_EQ(g_sink_addr.load(), reinterpret_cast<uintptr_t>(where));
  EXPECT_EQ(g_sink_lsb.load(), 21);
}

TEST(SafeCopyDeathTest, AsyncSinkClearedPassesAoOnAgain) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        static uint8_t where[64];
        SetAsyncSigbusSink(TestSink);
        SetAsyncSigbusSink(nullptr);
        QueueAo(where, 12);
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

}  // namespace
}  // namespace udax
