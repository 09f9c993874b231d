// region.cc -- what every Region implementation shares: kind names and range checks.
#include "fs/region/region.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>

namespace udax {

const char* RegionKindName(RegionKind kind) {
  switch (kind) {
    case RegionKind::kEmulated:
      return "emulated";
    case RegionKind::kFsdax:
      return "fsdax";
    case RegionKind::kDevdax:
      return "devdax";
  }
  return "unknown";
}

Status Region::CheckRange(const char* op, uint64_t off, uint64_t n) const {
  // Written as two comparisons so that off + n cannot wrap around.
  if (off <= size_ && n <= size_ - off) return Status::Ok();
  char range[96];
  std::snprintf(range, sizeof(range), "[%#" PRIx64 ", +%#" PRIx64 ")", off, n);
  char limit[32];
  std::snprintf(limit, sizeof(limit), "%#" PRIx64, size_);
  return Status::InvalidArgument(path_ + ": " + op + " " + range +
                                 " is out of bounds (region size " + limit + ")");
}

void Region::Prefault(uint64_t off, uint64_t n) {
  if (read_only_ || n == 0 || kind_ == RegionKind::kEmulated) return;
  if (!CheckRange("prefault", off, n).ok()) return;
  PopulateWrite(off, n);
}

bool Region::PopulateWrite(uint64_t off, uint64_t n) {
#ifdef MADV_POPULATE_WRITE
  if (prefault_unsupported_.load(std::memory_order_relaxed)) return false;
  const uint64_t page = 4096;
  const uint64_t start = off / page * page, end = (off + n + page - 1) / page * page;
  if (madvise(base_ + start, std::min(end, size_) - start, MADV_POPULATE_WRITE) == 0) return true;
  if (errno == EINVAL) prefault_unsupported_.store(true, std::memory_order_relaxed);
#else
  (void)off;
  (void)n;
#endif
  return false;
}

}  // namespace udax
