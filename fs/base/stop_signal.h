// stop_signal.h -- an eventfd that a source thread polls beside its real descriptor.
//
// Every event source of notify/ runs one thread that sleeps in poll(2) on what it watches
// (a sysfs file, an inotify or netlink socket) plus this descriptor, so that Stop() and
// Rescan() wake it at once instead of waiting for a timeout. The wait itself is
// PollOrStop (poll_loop.h); SourceThread (source_thread.h) pairs a signal with its thread.
// Thread-safety: Notify and Drain may be called from any thread; Notify is also
// async-signal-safe (one write(2)).
#pragma once

#include "fs/base/status.h"
#include "fs/base/unique_fd.h"

namespace udax {

class StopSignal {
 public:
  // EMFILE/ENFILE/ENOMEM from eventfd(2).
  static Result<StopSignal> Create();
  StopSignal(StopSignal&&) = default;
  StopSignal& operator=(StopSignal&&) = default;

  int fd() const { return fd_.get(); }
  // Makes fd() readable until Drain.
  void Notify() const;
  // Consumes the pending notifications; returns how many there were.
  uint64_t Drain() const;

 private:
  explicit StopSignal(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace udax
