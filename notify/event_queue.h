// event_queue.h -- the one queue every event source feeds and the daemon's resolver drains.
//
// Many producers (the faulting threads through the Region's fault listener, the source
// threads of notify/), one consumer. Duplicates are coalesced while they wait: a pushed
// event whose range overlaps a pending event of the same source is merged into it (the
// range becomes the union, the earlier time is kept), and a device-removed event merges
// into any pending device-removed event. So a storm of SIGBUS on one page, or a badblocks
// list re-read after every scrub, costs the consumer one event, and the queue cannot grow
// beyond one entry per distinct bad range per source.
//
// Push must not be called from a signal handler (it takes a mutex): asynchronous SIGBUS
// goes through SigbusAoReceiver, which pushes from its own thread.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>

#include "notify/media_event.h"

namespace udax {

class EventQueue {
 public:
  EventQueue() = default;
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  // Queues (or coalesces) the event and wakes the consumer. Returns false, dropping the
  // event, once the queue is closed.
  bool Push(MediaEvent event);
  // Takes the oldest event into *out, waiting up to `timeout` for one. Returns false on
  // timeout, or when the queue is closed and empty (closed() tells which). Events
  // queued before Close are still handed out after it.
  bool Pop(MediaEvent* out, std::chrono::milliseconds timeout);
  // Pop without waiting.
  bool TryPop(MediaEvent* out);
  // Refuses further pushes and wakes every waiting Pop. Idempotent.
  void Close();

  bool closed() const;
  size_t size() const;
  // Pushes absorbed into a pending event so far (for the event log and tests).
  uint64_t coalesced() const;

 private:
  // REQUIRES mu_. True when `e` was merged into a pending event.
  bool MergeLocked(const MediaEvent& e);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<MediaEvent> pending_;  // GUARDED_BY(mu_)
  bool closed_ = false;             // GUARDED_BY(mu_)
  uint64_t coalesced_ = 0;          // GUARDED_BY(mu_)
};

}  // namespace udax
