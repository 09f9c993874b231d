// safe_copy_test.cc -- SafeCopy survives the SIGBUS of its source, and every other SIGBUS
// still reaches the program's own action.
#include "client/safe_copy.h"

#include <gtest/gtest.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

namespace udax_client {
namespace {

constexpr size_t kPage = 4096;

// Three pages of a memfd one page long: the first reads 'x', the others raise SIGBUS
// (BUS_ADRERR), as a revoked direct map does.
struct ShortMap {
  ShortMap() {
    fd = static_cast<int>(syscall(SYS_memfd_create, "safe-copy-test", 0));
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, kPage), 0);
    base = static_cast<char*>(mmap(nullptr, 3 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    EXPECT_NE(base, MAP_FAILED);
    std::memset(base, 'x', kPage);
  }
  ~ShortMap() {
    munmap(base, 3 * kPage);
    close(fd);
  }
  int fd = -1;
  char* base = nullptr;
};

sigjmp_buf program_env;
void* program_saw = nullptr;
void ProgramHandler(int, siginfo_t* si, void*) {
  program_saw = si->si_addr;
  siglongjmp(program_env, 1);
}

class ClientSafeCopyTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(InstallSigbusGuard()); }
};

TEST_F(ClientSafeCopyTest, CopiesWhatDoesNotFault) {
  ShortMap m;
  std::vector<char> out(kPage);
  CopyResult r = SafeCopy(out.data(), m.base, kPage);
  EXPECT_FALSE(r.faulted);
  EXPECT_EQ(std::string(out.begin(), out.end()), std::string(kPage, 'x'));
}

TEST_F(ClientSafeCopyTest, AFaultingSourceIsAValue) {
  ShortMap m;
  std::vector<char> out(3 * kPage);
  for (int i = 0; i < 3; ++i) {  // and again: the guard is re-armed (SIGBUS unblocked)
    CopyResult r = SafeCopy(out.data(), m.base, 3 * kPage);
    ASSERT_TRUE(r.faulted);
    EXPECT_GE(r.fault_offset, kPage);
    EXPECT_LT(r.fault_offset, 3 * kPage);
    EXPECT_EQ(r.si_code, BUS_ADRERR);
  }
  CopyResult r = SafeCopy(out.data(), m.base + 2 * kPage, 16);
  ASSERT_TRUE(r.faulted);
  EXPECT_EQ(r.fault_offset, 0u);
}

TEST_F(ClientSafeCopyTest, OtherFaultsGoToTheProgramsAction) {
  ShortMap m;
  struct sigaction act {}, old{};
  act.sa_sigaction = ProgramHandler;
  act.sa_flags = SA_SIGINFO;
  SetProgramFaultAction(SIGBUS, &act, &old);
  program_saw = nullptr;
  // A load outside any guarded copy.
  if (sigsetjmp(program_env, 1) == 0) {
    volatile char c = m.base[kPage + 5];
    (void)c;
    ADD_FAILURE() << "no SIGBUS";
  }
  EXPECT_EQ(program_saw, m.base + kPage + 5);
  SetProgramFaultAction(SIGBUS, &old, nullptr);
  // SIGSEGV the same way: the program's own handler gets its own faults.
  struct sigaction old_segv {};
  SetProgramFaultAction(SIGSEGV, &act, &old_segv);
  char* none = static_cast<char*>(mmap(nullptr, kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(none, MAP_FAILED);
  program_saw = nullptr;
  if (sigsetjmp(program_env, 1) == 0) {
    volatile char c = none[7];
    (void)c;
    ADD_FAILURE() << "no SIGSEGV";
  }
  EXPECT_EQ(program_saw, none + 7);
  SetProgramFaultAction(SIGSEGV, &old_segv, nullptr);
  munmap(none, kPage);
}

// The program's side of a copy -- SafeCopy's destination, SafeStore's source, a probed
// buffer -- unmapped, read-only or past a file's end: a value (the kernel's EFAULT), never
// the program's crash.
TEST_F(ClientSafeCopyTest, FaultsOnTheProgramsBufferAreValues) {
  ShortMap m;
  char* none = static_cast<char*>(mmap(nullptr, 2 * kPage, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(none, MAP_FAILED);
  ASSERT_EQ(mprotect(none + kPage, kPage, PROT_NONE), 0);
  std::vector<char> out(kPage);
  // A read into an unmapped buffer (SIGSEGV), and into a read-only one.
  CopyResult r = SafeCopy(none + kPage - 100, m.base, 200);
  ASSERT_TRUE(r.faulted);
  EXPECT_TRUE(r.program_fault);
  EXPECT_GE(r.fault_offset, 100u);  // in the unmapped page (memcpy's order is its own)
  EXPECT_LT(r.fault_offset, 200u);
  r = SafeCopy(reinterpret_cast<void*>(uintptr_t{8}), m.base, 16);
  ASSERT_TRUE(r.faulted);
  EXPECT_TRUE(r.program_fault);
  // A store whose source faults: SIGSEGV, and SIGBUS (a file map past its end).
  r = SafeStore(out.data(), none + kPage, 64);
  ASSERT_TRUE(r.faulted);
  EXPECT_TRUE(r.program_fault);
  r = SafeStore(out.data(), m.base + 2 * kPage, 64);
  ASSERT_TRUE(r.faulted);
  EXPECT_TRUE(r.program_fault);
  EXPECT_EQ(r.si_code, BUS_ADRERR);
  // The map's own SIGBUS is still the map's.
  r = SafeCopy(out.data(), m.base + kPage, 64);
  ASSERT_TRUE(r.faulted);
  EXPECT_FALSE(r.program_fault);
  EXPECT_TRUE(ProbeReadable(none, kPage));
  EXPECT_FALSE(ProbeReadable(none, kPage + 1));
  EXPECT_FALSE(ProbeReadable(m.base, 2 * kPage));
  EXPECT_FALSE(ProbeReadable(nullptr, 1));
  EXPECT_TRUE(ProbeReadable(nullptr, 0));
  for (int i = 0; i < 3; ++i) {  // re-armed each time (both signals unblocked)
    EXPECT_FALSE(ProbeReadable(none + kPage, 1));
    EXPECT_TRUE(SafeCopy(none + kPage, m.base, 1).program_fault);
  }
  munmap(none, 2 * kPage);
}

TEST_F(ClientSafeCopyTest, ThreadsFaultIndependently) {
  ShortMap m;
  std::vector<std::thread> threads;
  std::vector<int> faults(4, 0), clean(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<char> out(2 * kPage);
      for (int i = 0; i < 200; ++i) {
        const bool bad = (i + t) % 2 == 0;
        CopyResult r = SafeCopy(out.data(), m.base + (bad ? kPage : 0), bad ? 2 * kPage : kPage);
        (r.faulted ? faults : clean)[t] += r.faulted == bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(faults[t], 100) << t;
    EXPECT_EQ(clean[t], 100) << t;
  }
}

}  // namespace
}  // namespace udax_client
