// poll_loop.cc -- poll(2) with EINTR retried and a stop signal beside the watched descriptors.
#include "fs/base/poll_loop.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <vector>

namespace udax {

Result<int> PollRetrying(std::span<pollfd> fds, int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int wait_ms = timeout_ms;
  for (;;) {
    const int n = poll(fds.data(), fds.size(), wait_ms);
    if (n >= 0) return n;
    if (errno != EINTR) return Status::FromErrno("poll");
    if (timeout_ms >= 0) {
      // Rounded up: a retry must not end the wait before the deadline.
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      wait_ms = static_cast<int>(std::max<int64_t>(left.count(), 0));
    }
  }
}

Result<Wake> PollOrStop(const StopSignal& stop, std::span<pollfd> fds, int timeout_ms) {
  // The stop signal goes first; the caller's set is copied around it so that its indices
  // stay the caller's own.
  std::vector<pollfd> all;
  all.reserve(fds.size() + 1);
  all.push_back({stop.fd(), POLLIN, 0});
  all.insert(all.end(), fds.begin(), fds.end());
  UDAX_ASSIGN_OR_RETURN(const int ready, PollRetrying(all, timeout_ms));
  for (size_t i = 0; i < fds.size(); ++i) fds[i].revents = all[i + 1].revents;
  if (all[0].revents != 0) return Wake::kStopped;
  return ready == 0 ? Wake::kTimeout : Wake::kReady;
}

}  // namespace udax
