// region_poison.cc -- emulated poison: the badblocks list beside an image, honoured by reads.
#include <cinttypes>
#include <cstdio>
#include <csignal>

#include "fs/region/region.h"
#include "notify/badblock_list.h"

namespace udax {
namespace {

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%#" PRIx64, v);
  return buf;
}

// The list's sectors as byte ranges, clipped to a region of `size` bytes: a list written
// for a larger image (reformatted smaller with mkfs -s) must not poison what is not there.
std::vector<RegionRange> ToRegionRanges(const BadblockList& list, uint64_t size) {
  std::vector<RegionRange> out;
  for (const BadblockRange& r : list.ranges()) {
    const uint64_t off = r.byte_offset();
    if (off >= size) break;
    out.push_back({off, std::min(r.byte_length(), size - off)});
  }
  return out;
}

}  // namespace

void Region::SetEmulatedPoison(const BadblockList& list) {
  poison_.Set(ToRegionRanges(list, size_));
}

Status Region::LoadEmulatedPoison(const std::string& list_path) {
  UDAX_ASSIGN_OR_RETURN(BadblockList list, ReadBadblockListFile(list_path));
  badblocks_path_ = list_path;
  SetEmulatedPoison(list);
  return Status::Ok();
}

Status Region::ReloadEmulatedPoison() {
  if (badblocks_path_.empty()) return Status::Ok();
  UDAX_ASSIGN_OR_RETURN(BadblockList list, ReadBadblockListFile(badblocks_path_));
  SetEmulatedPoison(list);
  return Status::Ok();
}

Status Region::ClearEmulatedPoison(uint64_t off, uint64_t n, BadblockList* cleared) {
  UDAX_RETURN_IF_ERROR(CheckRange("clear poison", off, n));
  if (badblocks_path_.empty()) {
    return Status::Error(EOPNOTSUPP, path_ + ": poison on a device is cleared by the kernel, "
                                             "not through the region");
  }
  if (read_only_) return Status::Error(EROFS, path_ + ": clear poison: region is open read-only");
  const uint64_t first = (off + kBadblockSectorSize - 1) / kBadblockSectorSize;
  const uint64_t last = (off + n) / kBadblockSectorSize;
  BadblockList before, after;
  if (first < last) {
    UDAX_RETURN_IF_ERROR(UpdateBadblockListFile(
        badblocks_path_,
        [&](BadblockList* list) {
          before = *list;
          list->Remove(first, last - first);
          return Status::Ok();
        },
        &after));
    // Everything the file holds now, including what others added meanwhile.
    SetEmulatedPoison(after);
  }
  if (cleared != nullptr) *cleared = before.Minus(after);
  return Status::Ok();
}

Status Region::EmulatedPoisonFault(const char* op, uint64_t off, uint64_t n,
                                   MediaFault* fault) const {
  const std::optional<RegionRange> bad = poison_.FirstOverlap(off, n);
  if (!bad) return Status::Ok();
  MediaFault f;
  f.offset = bad->offset;
  f.length = bad->length;
  f.si_code = BUS_MCEERR_AR;
  if (fault != nullptr) *fault = f;
  ReportFault(f);
  return Status::IoError(path_ + ": " + op + ": media fault (emulated poison, BUS_MCEERR_AR) at region offset " +
                         Hex(f.offset) + ", " + Hex(f.length) + " bytes");
}

}  // namespace udax
