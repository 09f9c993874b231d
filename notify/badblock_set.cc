// badblock_set.cc -- see badblock_set.h.
#include "notify/badblock_set.h"

#include <algorithm>
#include <chrono>

namespace udax {

Status BadblockSet::Apply(Result<BadblockList> read, const OnChange& on_change, bool emit) {
  BadblockList previous;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_error_ = read.status();
    if (!read.ok()) return read.status();
    previous = current_;
    current_ = read.value();
  }
  const BadblockList& list = read.value();
  if (on_change) on_change(list);
  if (!emit) return Status::Ok();
  const auto now = std::chrono::system_clock::now();
  const BadblockList added = list.Minus(previous);  // (a named list: ranges() is a reference)
  for (const BadblockRange& r : added.ranges()) {
    if (r.byte_offset() >= spec_.region_size) break;  // sorted: the rest lie past it too
    MediaEvent e;
    e.source = spec_.source;
    e.offset = r.byte_offset();
    e.length = std::min(r.byte_length(), spec_.region_size - e.offset);
    e.offset += spec_.base;
    e.time = now;
    e.detail = spec_.detail;
    queue_->Push(std::move(e));
  }
  return Status::Ok();
}

BadblockList BadblockSet::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

Status BadblockSet::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

}  // namespace udax
