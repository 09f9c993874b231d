// poison_map.h -- the emulated poison of a region: byte ranges that every read must fail on.
//
// An emulated region (a plain image file) has no real machine checks; `udaxctl
// inject-error` lists bad blocks in the image's state (fs/format/state_dir.h) instead, and
// the Region consults this
// map on every machine-check-safe read so the daemon sees exactly what poisoned pmem
// would show it. The common case is no poison at all, so the check is one atomic load
// until something is poisoned; only then does a read take a shared lock and search.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <vector>

namespace udax {

// A byte range of the region.
struct RegionRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t end() const { return offset + length; }
  bool operator==(const RegionRange&) const = default;
};

class PoisonMap {
 public:
  PoisonMap() = default;
  PoisonMap(const PoisonMap&) = delete;
  PoisonMap& operator=(const PoisonMap&) = delete;

  // Replaces the poisoned ranges. They may come in any order and overlap; empty ones
  // are dropped.
  void Set(std::vector<RegionRange> ranges);
  // The first poisoned range (whole, as set) that overlaps [off, off+n), if any.
  std::optional<RegionRange> FirstOverlap(uint64_t off, uint64_t n) const {
    if (count_.load(std::memory_order_acquire) == 0) return std::nullopt;
    return FirstOverlapSlow(off, n);
  }
  std::vector<RegionRange> ranges() const;
  // Every poisoned range that overlaps [off, off+n), clipped to it, in order.
  std::vector<RegionRange> Overlaps(uint64_t off, uint64_t n) const;
  // Adds one range to the set (merging), keeping the others.
  void Add(RegionRange range);
  bool empty() const { return count_.load(std::memory_order_acquire) == 0; }

 private:
  std::optional<RegionRange> FirstOverlapSlow(uint64_t off, uint64_t n) const;

  std::atomic<size_t> count_{0};  // ranges_.size(), readable without the lock
  mutable std::shared_mutex mu_;
  std::vector<RegionRange> ranges_;  // sorted, disjoint; GUARDED_BY(mu_)
};

}  // namespace udax
