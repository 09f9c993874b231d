// region.cc -- what every Region implementation shares: kind names and range checks.
#include "fs/region/region.h"

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

}  // namespace udax
