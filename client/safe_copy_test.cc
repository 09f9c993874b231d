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
  SetProgramSigbusAction(&act, &old);
  program_saw = nullptr;
  // A load outside any guarded copy.
  if (sigsetjmp(program_env, 1) == 0) {
    volatile char c = m.base[kPage + 5];
    (void)c;
    ADD_FAILURE() << "no SIGBUS";
  }
  EXPECT_EQ(program_saw, m.base + kPage + 5);
  // A guarded copy whose destination faults: the destination is the program's.
  program_saw = nullptr;
  std::vector<char> src(64, 'y');
  if (sigsetjmp(program_env, 1) == 0) {
    SafeCopy(m.base + 2 * kPage, src.data(), src.size());
    ADD_FAILURE() << "no SIGBUS";
  }
  EXPECT_EQ(program_saw, m.base + 2 * kPage);
  SetProgramSigbusAction(&old, nullptr);
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
