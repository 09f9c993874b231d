// stored_pages.cc -- one bit per image page, set and cleared with atomic word operations.
#include "fs/region/stored_pages.h"

#include <algorithm>

namespace udax {

void StoredPages::Reset(uint64_t bytes) {
  pages_ = (bytes + kPage - 1) / kPage;
  const uint64_t words = (pages_ + 63) / 64;
  words_ = std::make_unique<std::atomic<uint64_t>[]>(words);
  for (uint64_t w = 0; w < words; ++w) words_[w].store(0, std::memory_order_relaxed);
}

bool StoredPages::All(uint64_t off, uint64_t n) const {
  if (n == 0) return true;
  const uint64_t first = off / kPage, last = (off + n - 1) / kPage;
  if (last >= pages_) return false;
  for (uint64_t p = first; p <= last; ++p) {
    if (!(words_[p / 64].load(std::memory_order_relaxed) >> (p % 64) & 1)) return false;
  }
  return true;
}

void StoredPages::Mark(uint64_t off, uint64_t n) {
  if (n == 0 || pages_ == 0) return;
  const uint64_t first = off / kPage;
  const uint64_t last = std::min((off + n - 1) / kPage, pages_ - 1);
  for (uint64_t p = first; p <= last; ++p) {
    words_[p / 64].fetch_or(uint64_t{1} << (p % 64), std::memory_order_relaxed);
  }
}

void StoredPages::Clear(uint64_t off, uint64_t n) {
  const uint64_t first = (off + kPage - 1) / kPage;
  const uint64_t end = std::min((off + n) / kPage, pages_);
  for (uint64_t p = first; p < end; ++p) {
    words_[p / 64].fetch_and(~(uint64_t{1} << (p % 64)), std::memory_order_relaxed);
  }
}

}  // namespace udax
