// source_thread.h -- a thread that sleeps on descriptors until its owner stops it.
//
// The event sources of notify/, the daemon's mount watch and libudax's subscriptions live
// the same life: a stop signal made first (so that the owner can still fail before it has
// started anything), one thread started last that sleeps in Wait, and a Stop that signals
// and joins, idempotent and also run by the destructor. SourceThread is that life, once.
//
// Thread-safety: Create, Start and Stop from the owner; Wait from the started thread.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <thread>

#include "fs/base/poll_loop.h"
#include "fs/base/status.h"
#include "fs/base/stop_signal.h"

namespace udax {

class SourceThread {
 public:
  // Makes the stop signal; the thread starts with Start. Errors: eventfd(2)'s.
  static Result<SourceThread> Create();
  // No stop signal and no thread: only for an owner that Creates one later (assignment).
  SourceThread() = default;
  SourceThread(SourceThread&&) = default;
  // Stops a thread running here before taking the other one's.
  SourceThread& operator=(SourceThread&& other) noexcept;
  SourceThread(const SourceThread&) = delete;
  SourceThread& operator=(const SourceThread&) = delete;
  ~SourceThread() { Stop(); }

  // Runs `body` on a new thread; body returns when Wait says kStopped (or fails).
  // REQUIRES: made by Create, not started.
  void Start(std::function<void()> body);
  // Signals the stop and joins the thread. Returns whether a thread was running (false
  // when never started or already stopped), so that an owner tears down only once.
  bool Stop();
  // PollOrStop on this thread's stop signal. REQUIRES: made by Create.
  Result<Wake> Wait(std::span<pollfd> fds, int timeout_ms = -1) const {
    return PollOrStop(*stop_, fds, timeout_ms);
  }

 private:
  explicit SourceThread(StopSignal stop) : stop_(std::move(stop)) {}

  std::optional<StopSignal> stop_;  // stays readable once signalled: every later Wait stops
  std::thread thread_;
};

}  // namespace udax
