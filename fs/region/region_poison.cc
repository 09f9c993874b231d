// region_poison.cc -- emulated poison: an image's badblocks list (state directory), honoured by reads.
#include <algorithm>
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
  MutexLock l(&known_mu_);
  announced_ = ToRegionRanges(list, size_);
  // On a file on fsdax the list is replaced whole, marks included: the kernel reports
  // its own poison again (region.h, MarkKnownBad).
  marked_.clear();
  RecomputeKnownLocked();
}

void Region::SetLatentPoison(const BadblockList& list) {
  MutexLock l(&known_mu_);
  latent_.Set(ToRegionRanges(list, size_));
  // What was found stays known while the list still holds it; an uninjected range is
  // healthy again.
  std::vector<RegionRange> still;
  for (const RegionRange& r : latent_found_) {
    for (const RegionRange& o : latent_.Overlaps(r.offset, r.length)) still.push_back(o);
  }
  latent_found_ = std::move(still);
  RecomputeKnownLocked();
}

std::vector<RegionRange> Region::LatentPoison() const {
  std::vector<RegionRange> out;
  for (const RegionRange& r : latent_.ranges()) {
    uint64_t at = r.offset;
    for (const RegionRange& k : poison_.Overlaps(r.offset, r.length)) {
      if (k.offset > at) out.push_back({at, k.offset - at});
      at = k.end();
    }
    if (at < r.end()) out.push_back({at, r.end() - at});
  }
  return out;
}

void Region::MarkKnownBad(RegionRange range) {
  if (range.length == 0) return;
  MutexLock l(&known_mu_);
  // Latent poison a read has just found is known from now on (any target with a list).
  const std::vector<RegionRange> hit = latent_.Overlaps(range.offset, range.length);
  latent_found_.insert(latent_found_.end(), hit.begin(), hit.end());
  // An image's list file is the whole truth for what it announces; a device (or a file
  // on fsdax) remembers what the kernel or a machine check said.
  if (kind_ != RegionKind::kEmulated) marked_.push_back(range);
  if (hit.empty() && kind_ == RegionKind::kEmulated) return;
  RecomputeKnownLocked();
}

namespace {

// Sorts and merges overlapping or touching ranges in place.
void Merge(std::vector<RegionRange>* v) {
  std::sort(v->begin(), v->end(), [](const RegionRange& a, const RegionRange& b) { return a.offset < b.offset; });
  std::vector<RegionRange> out;
  for (const RegionRange& r : *v) {
    if (!out.empty() && r.offset <= out.back().end()) {
      out.back().length = std::max(out.back().end(), r.end()) - out.back().offset;
    } else {
      out.push_back(r);
    }
  }
  *v = std::move(out);
}

}  // namespace

void Region::RecomputeKnownLocked() {
  // Kept merged, so that repeated marks of one range do not pile up.
  Merge(&latent_found_);
  Merge(&marked_);
  std::vector<RegionRange> all = announced_;
  all.insert(all.end(), latent_found_.begin(), latent_found_.end());
  all.insert(all.end(), marked_.begin(), marked_.end());
  poison_.Set(std::move(all));
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
  Status st = LoadEmulatedPoison(state->badblocks, state->latent);
  // The state directory is root's (0700): a user opening an image they may read cannot
  // see root's injected poison, and must not be refused the image for it.
  if (st.code() == EACCES) return Status::Ok();
  return st;
}

Status Region::LoadEmulatedPoison(const std::string& list_path, const std::string& latent_path) {
  UDAX_ASSIGN_OR_RETURN(BadblockList list, ReadBadblockListFile(list_path));
  UDAX_ASSIGN_OR_RETURN(BadblockList latent, ReadBadblockListFile(latent_path));
  badblocks_path_ = list_path;
  latent_path_ = latent_path;
  SetEmulatedPoison(list);
  SetLatentPoison(latent);
  return Status::Ok();
}

Status Region::ReloadEmulatedPoison() {
  if (badblocks_path_.empty()) return Status::Ok();
  UDAX_ASSIGN_OR_RETURN(BadblockList list, ReadBadblockListFile(badblocks_path_));
  UDAX_ASSIGN_OR_RETURN(BadblockList latent, ReadBadblockListFile(latent_path_));
  SetEmulatedPoison(list);
  SetLatentPoison(latent);
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
    // Latent poison under the rewrite is cleared the same way (it was found, or the
    // rewrite would not be here).
    BadblockList latent_before, latent_after;
    const Status latent = UpdateBadblockListFile(
        latent_path_,
        [&](BadblockList* list) {
          latent_before = *list;
          // Nothing latent here (the common case): leave the file alone.
          if (!list->Overlaps(first, last - first)) return Status::Error(EALREADY, "");
          list->Remove(first, last - first);
          return Status::Ok();
        },
        &latent_after, kClearLockWait);
    if (!latent.ok() && latent.code() != EALREADY) return latent;
    if (latent.ok()) {
      SetLatentPoison(latent_after);
      const BadblockList healed = latent_before.Minus(latent_after);
      for (const BadblockRange& r : healed.ranges()) {
        before.Add(r.sector, r.count);
      }
    }
  }
  if (cleared != nullptr) *cleared = before.Minus(after);
  return Status::Ok();
}

Status Region::ClearRewrittenPoison(uint64_t off, uint64_t n) {
  if (badblocks_path_.empty()) return Status::Ok();
  const uint64_t first = off / kBadblockSectorSize * kBadblockSectorSize;
  const uint64_t end = (off + n + kBadblockSectorSize - 1) / kBadblockSectorSize * kBadblockSectorSize;
  return ClearEmulatedPoison(first, end - first);
}

Status Region::EmulatedPoisonFault(const char* op, uint64_t off, uint64_t n,
                                   MediaFault* fault) const {
  // The first bad range the access meets, known or latent: a verify pass steps over
  // what the fault names, and must not step over latent poison before it.
  std::optional<RegionRange> bad = poison_.FirstOverlap(off, n);
  const std::optional<RegionRange> latent = latent_.FirstOverlap(off, n);
  if (!bad || (latent && std::max(latent->offset, off) < std::max(bad->offset, off))) bad = latent;
  if (!bad) return Status::Ok();
  MediaFault f;
  f.offset = bad->offset;
  f.length = bad->length;
  f.si_code = BUS_MCEERR_AR;
  ReportFault(f);  // fills in the origin
  if (fault != nullptr) *fault = f;
  return Status::IoError(path_ + ": " + op + ": media fault (emulated poison, BUS_MCEERR_AR) at region offset " +
                         Hex(f.offset) + ", " + Hex(f.length) + " bytes");
}

}  // namespace udax
