// badblocks_poller.h -- wakes on the kernel's badblocks changes and emits the new ranges.
//
// The kernel signals a changed badblocks list only by sysfs_notify on the attribute
// (no uevent): a reader must read the file once, then poll(POLLPRI|POLLERR) on it, and
// after each wake-up seek to 0 and read again (which also re-arms the notification).
// The poller does that on its own thread. After every wake-up (and at Start) it asks its
// Reader for the whole list in target offsets, passes the list to on_change, and pushes a
// `badblocks` MediaEvent for every range that is new since the last read. Rescan() forces
// a reread without a notification (after the daemon asked for a scrub, or in tests where
// there is no real sysfs file).
//
// Thread-safety: Start and Stop from the owner; Rescan, current, last_error and reads
// from any thread; the Reader and on_change run on the poller's thread (and once in Start).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "fs/format/badblock_list.h"
#include "notify/badblock_set.h"
#include "notify/event_queue.h"
#include "fs/base/source_thread.h"
#include "fs/base/stop_signal.h"
#include "notify/kernel_badblocks.h"

namespace udax {

class BadblocksPoller {
 public:
  // The whole list now, in 512-byte sectors of the target.
  using Reader = std::function<Result<BadblockList>()>;
  struct Options {
    // Push the ranges listed at Start (a mount must act on errors it did not see arrive).
    bool emit_initial = true;
    // Called with the whole list after every successful read.
    std::function<void(const BadblockList&)> on_change;
    // The device starts here in the region (a multi-device filesystem).
    uint64_t base = 0;
  };

  // Opens `poll_file` (the sysfs attribute; "" to rely on Rescan alone), reads the list
  // once and starts the thread. Errors: the file cannot be opened or read (errno), the
  // Reader's first error.
  static Result<std::unique_ptr<BadblocksPoller>> Start(const std::string& poll_file,
                                                        Reader reader, EventQueue* queue,
                                                        Options options);
  // For a located target: polls where.badblocks_file, reads with ReadKernelBadblocks.
  static Result<std::unique_ptr<BadblocksPoller>> StartFor(const KernelBadblocks& where,
                                                           EventQueue* queue, Options options);
  ~BadblocksPoller() { Stop(); }
  BadblocksPoller(const BadblocksPoller&) = delete;
  BadblocksPoller& operator=(const BadblocksPoller&) = delete;

  void Rescan() { rescan_.Notify(); }
  void Stop() { thread_.Stop(); }

  BadblockList current() const { return set_.current(); }
  Status last_error() const { return set_.last_error(); }
  // How many times the sysfs file woke the thread (for tests and the event log).
  uint64_t notifications() const { return notifications_.load(); }
  // How many rereads completed, successful or not (Start's included).
  uint64_t reads() const { return reads_.load(); }

 private:
  BadblocksPoller(std::string poll_file, UniqueFd file, Reader reader, EventQueue* queue,
                  Options options, SourceThread thread, StopSignal rescan);
  Status Reload(bool emit);
  // Reads the polled file to its end from the start, which re-arms sysfs_notify.
  void Rearm();
  void Run();

  const std::string poll_file_;
  UniqueFd file_;
  const Reader reader_;
  const Options options_;
  StopSignal rescan_;
  BadblockSet set_;
  std::atomic<uint64_t> notifications_{0};
  std::atomic<uint64_t> reads_{0};
  SourceThread thread_;  // last: stopped before the members it reads go away
};

}  // namespace udax
