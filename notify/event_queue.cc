// event_queue.cc -- a coalescing multi-producer, single-consumer queue of MediaEvents.
#include "notify/event_queue.h"

#include <algorithm>

namespace udax {
namespace {

bool Overlap(const MediaEvent& a, const MediaEvent& b) {
  // Empty ranges overlap only an identical empty range (a duplicate).
  if (a.length == 0 || b.length == 0) return a.offset == b.offset && a.length == b.length;
  return a.offset < b.end() && b.offset < a.end();
}

}  // namespace

bool EventQueue::MergeLocked(const MediaEvent& e) {
  for (MediaEvent& p : pending_) {
    if (p.source != e.source) continue;
    // Removals too merge only when they overlap: a uevent repeated for one device (or the
    // whole region) is one event, but two devices of a multi-device filesystem unplugged
    // together are two losses, never one range across both (which no device matches: a
    // shutdown).
    if (!Overlap(p, e)) continue;
    const uint64_t start = std::min(p.offset, e.offset);
    const uint64_t end = std::max(p.end(), e.end());
    p.offset = start;
    p.length = end - start;
    p.time = std::min(p.time, e.time);
    if (p.si_code == 0) p.si_code = e.si_code;
    if (p.detail.empty()) p.detail = e.detail;
    p.requested = p.requested && e.requested;  // the hardware's word wins
    ++coalesced_;
    return true;
  }
  return false;
}

bool EventQueue::Push(MediaEvent event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    if (MergeLocked(event)) return true;  // the consumer already has a wake-up pending
    pending_.push_back(std::move(event));
  }
  cv_.notify_one();
  return true;
}

bool EventQueue::Pop(MediaEvent* out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [this] { return !pending_.empty() || closed_; })) return false;
  if (pending_.empty()) return false;  // closed and drained
  *out = std::move(pending_.front());
  pending_.pop_front();
  return true;
}

bool EventQueue::TryPop(MediaEvent* out) { return Pop(out, std::chrono::milliseconds(0)); }

void EventQueue::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool EventQueue::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

size_t EventQueue::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size();
}

uint64_t EventQueue::coalesced() const {
  std::lock_guard<std::mutex> lock(mu_);
  return coalesced_;
}

}  // namespace udax
