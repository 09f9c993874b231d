// poison_map.cc -- sorted disjoint poisoned ranges behind a shared lock.
#include "fs/region/poison_map.h"

#include <algorithm>
#include <mutex>

namespace udax {

void PoisonMap::Set(std::vector<RegionRange> ranges) {
  std::erase_if(ranges, [](const RegionRange& r) { return r.length == 0; });
  std::sort(ranges.begin(), ranges.end(),
            [](const RegionRange& a, const RegionRange& b) { return a.offset < b.offset; });
  std::vector<RegionRange> merged;
  for (const RegionRange& r : ranges) {
    if (!merged.empty() && r.offset <= merged.back().end()) {
      merged.back().length = std::max(merged.back().end(), r.end()) - merged.back().offset;
    } else {
      merged.push_back(r);
    }
  }
  std::unique_lock<std::shared_mutex> lock(mu_);
  ranges_ = std::move(merged);
  count_.store(ranges_.size(), std::memory_order_release);
}

std::optional<RegionRange> PoisonMap::FirstOverlapSlow(uint64_t off, uint64_t n) const {
  if (n == 0) return std::nullopt;
  std::shared_lock<std::shared_mutex> lock(mu_);
  // The first range ending after off; it overlaps if it starts before off + n.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), off,
                             [](uint64_t o, const RegionRange& r) { return o < r.end(); });
  if (it == ranges_.end()) return std::nullopt;
  // Written without off + n, which could wrap.
  if (it->offset <= off || it->offset - off < n) return *it;
  return std::nullopt;
}

std::vector<RegionRange> PoisonMap::Overlaps(uint64_t off, uint64_t n) const {
  std::vector<RegionRange> out;
  if (n == 0 || empty()) return out;
  const uint64_t end = n > UINT64_MAX - off ? UINT64_MAX : off + n;
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), off,
                             [](uint64_t o, const RegionRange& r) { return o < r.end(); });
  for (; it != ranges_.end() && it->offset < end; ++it) {
    const uint64_t s = std::max(off, it->offset), e = std::min(end, it->end());
    out.push_back({s, e - s});
  }
  return out;
}

void PoisonMap::Add(RegionRange range) {
  if (range.length == 0) return;
  std::vector<RegionRange> all = ranges();
  all.push_back(range);
  Set(std::move(all));  // a rare event: the copy does not matter
}

std::vector<RegionRange> PoisonMap::ranges() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return ranges_;
}

}  // namespace udax
