// region_poison.cc -- emulated poison: an image's badblocks list (state directory), honoured by reads.
#include <cerrno>
#include <chrono>
#include <csignal>

#include "fs/base/hex.h"
#include "fs/region/region.h"
#include "fs/format/badblock_list.h"
#include "fs/format/state_dir.h"

namespace udax {
namespace {

// The list's sectors as byte ranges, clipped to a region of `size` bytes: a list written
// for a larger image (reformatted smaller with mkfs -s) must not poison what is not there.
// ClearEmulatedPoison runs under the filesystem mutex in the daemon: it may wait for the
// list's lock this long, no more. Only root's own tools take that lock (it lives in the
// root-only state directory), for one read-modify-rename each.
constexpr std::chrono::milliseconds kClearLockWait{200};

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

Status Region::AttachEmulatedPoison() {
  Result<TargetState> state = LocateTargetState(fd_, path_, /*prepare=*/true);
  // Not ours to create (a user opening their own image while /var/lib/udaxfs is missing
  // or read-only): look without creating anything.
  if (!state.ok() && (state.status().code() == EACCES || state.status().code() == EROFS)) {
    state = LocateTargetState(fd_, path_, /*prepare=*/false);
    // No state directory at all: no list, and nothing for a watcher to watch.
    if (state.ok() && CheckStateDir(state->dir).code() == ENOENT) return Status::Ok();
  }
  if (!state.ok()) {
    // No superblock yet (mkfs, a raw file): nothing keys a list, so there is none.
    if (state.status().code() == ENODATA) return Status::Ok();
    return state.status();
  }
  Status st = LoadEmulatedPoison(state->badblocks);
  // The state directory is root's (0700): a user opening an image they may read cannot
  // see root's injected poison, and must not be refused the image for it.
  if (st.code() == EACCES) return Status::Ok();
  return st;
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
        &after, kClearLockWait));
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
