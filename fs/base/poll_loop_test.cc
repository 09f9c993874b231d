// poll_loop_test.cc -- PollRetrying, PollOrStop and SourceThread.
#include "fs/base/poll_loop.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "fs/base/source_thread.h"
#include "fs/base/unique_fd.h"

namespace udax {
namespace {

using Clock = std::chrono::steady_clock;

struct Pipe {
  UniqueFd r, w;
  Pipe() {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    r = UniqueFd(fds[0]);
    w = UniqueFd(fds[1]);
  }
};

TEST(PollOrStopTest, ReportsTheReadyDescriptorAtItsOwnIndex) {
  auto stop = StopSignal::Create();
  ASSERT_TRUE(stop.ok());
  Pipe idle, busy;
  ASSERT_EQ(write(busy.w.get(), "x", 1), 1);
  pollfd fds[2] = {{idle.r.get(), POLLIN, 0}, {busy.r.get(), POLLIN, 0}};
  auto wake = PollOrStop(*stop, fds, 1000);
  ASSERT_TRUE(wake.ok());
  EXPECT_EQ(*wake, Wake::kReady);
  EXPECT_EQ(fds[0].revents, 0);
  EXPECT_NE(fds[1].revents & POLLIN, 0);
}

TEST(PollOrStopTest, StopWinsOverAReadyDescriptor) {
  auto stop = StopSignal::Create();
  ASSERT_TRUE(stop.ok());
  Pipe busy;
  ASSERT_EQ(write(busy.w.get(), "x", 1), 1);
  stop->Notify();
  pollfd fds[1] = {{busy.r.get(), POLLIN, 0}};
  auto wake = PollOrStop(*stop, fds);
  ASSERT_TRUE(wake.ok());
  EXPECT_EQ(*wake, Wake::kStopped);
}

TEST(PollOrStopTest, TimesOutWithNoEvents) {
  auto stop = StopSignal::Create();
  ASSERT_TRUE(stop.ok());
  Pipe idle;
  pollfd fds[1] = {{idle.r.get(), POLLIN, 0}};
  auto wake = PollOrStop(*stop, fds, 10);
  ASSERT_TRUE(wake.ok());
  EXPECT_EQ(*wake, Wake::kTimeout);
  EXPECT_EQ(fds[0].revents, 0);
}

void Ignore(int) {}

TEST(PollRetryingTest, AnInterruptedWaitLastsItsWholeTimeout) {
  struct sigaction sa {};
  sa.sa_handler = Ignore;  // no SA_RESTART: poll(2) would fail with EINTR
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  Pipe idle;
  pollfd fds[1] = {{idle.r.get(), POLLIN, 0}};
  const pthread_t self = pthread_self();
  std::thread kicker([self] {
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      pthread_kill(self, SIGUSR1);
    }
  });
  const Clock::time_point start = Clock::now();
  auto n = PollRetrying(fds, 300);
  const auto waited = Clock::now() - start;
  kicker.join();
  sigaction(SIGUSR1, &old, nullptr);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 0);
  EXPECT_GE(waited, std::chrono::milliseconds(300));
}

TEST(SourceThreadTest, StopWakesTheWaitAndJoinsOnce) {
  auto thread = SourceThread::Create();
  ASSERT_TRUE(thread.ok());
  SourceThread t = std::move(thread).value();
  Pipe idle;
  std::atomic<bool> returned{false};
  t.Start([&] {
    pollfd fds[1] = {{idle.r.get(), POLLIN, 0}};
    for (;;) {
      auto wake = t.Wait(fds);
      if (!wake.ok() || *wake == Wake::kStopped) break;
    }
    returned = true;
  });
  EXPECT_TRUE(t.Stop());
  EXPECT_TRUE(returned.load());
  EXPECT_FALSE(t.Stop());  // idempotent
}

TEST(SourceThreadTest, NeverStartedStopsAsANoOp) {
  SourceThread unmade;
  EXPECT_FALSE(unmade.Stop());
  auto made = SourceThread::Create();
  ASSERT_TRUE(made.ok());
  EXPECT_FALSE(made->Stop());
}

}  // namespace
}  // namespace udax
