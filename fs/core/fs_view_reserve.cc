// fs_view_reserve.cc -- space past EOF for writable views: appends served in the program
// (issue 21).
//
// A writable view (the preload shim's write(2), fs/fuse/control_server.cc) stores into
// the file's extents without a request per write. To serve appends and writes past EOF
// the same way, a view may ask for a reservation: the daemon allocates zeroed space past
// EOF (as fallocate KEEP_SIZE does, growing with the file in the shim's requests), the
// view's extents reach that far (`view_limit`), and a store that ends past the size
// raises the write page's size word (view_page.h) to its end. The daemon never trusts
// the word beyond the limit it granted, and folds it into the size:
//  - lazily, where the size is read: stat and FUSE reads see ViewSize (no change);
//  - for real (FoldViewSize, rw exclusive) at fsync, at the view's end, and once every
//    view has been revoked (ViewsRevoked) -- which any change of the file's blocks or
//    size does first, so no change works from a stale size, and the word starts afresh
//    for the views granted after it.
// What makes showing reserved bytes safe is `past_eof_clean` (inode.h): a reservation
// zeroes whatever lies allocated past EOF unless it is known to be zero, so a gap the
// shim skips reads as zeros, as after any write past EOF. The space left past EOF when
// the last writable view ends is freed (TrimViewReserve).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "fs/core/filesystem.h"

namespace udax {

namespace {

// The largest reservation a view gets at once: the shim doubles its asks as a file grows.
constexpr uint64_t kMaxViewReserve = uint64_t{1} << 30;
// The most a file's fills may hold at once (until the last writable view's end trims
// them): a program writing sparsely over a huge file gets no more zeroed space than
// this before its writes into holes go to FUSE.
constexpr uint64_t kMaxViewFill = uint64_t{1} << 30;

bool AllZero(const char* p, size_t n) { return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0); }

}  // namespace

uint64_t Filesystem::ViewSize(const Inode& inode) const {
  const uint64_t size = inode.d.size;
  if (inode.view_limit <= size || !inode.view_page) return size;
  return std::max(size, std::min(inode.view_page->published_size(), inode.view_limit));
}

void Filesystem::FoldViewSize(Inode* inode) {
  if (!inode->view_page) return;
  MetaLock lock(this);
  FoldViewSizeLocked(inode);
}

void Filesystem::FoldViewSizeLocked(Inode* inode) {
  const uint64_t size = ViewSize(*inode);
  if (size <= inode->d.size) return;
  inode->d.size = size;
  inode->dirty = true;  // the blocks are the file's already (the reservation committed them)
}

void Filesystem::ViewsRevoked(Inode* inode) {
  MetaLock lock(this);
  FoldViewSizeLocked(inode);
  inode->view_page->ResetPublishedSize();
  inode->view_limit = 0;
  // Every writable view has stopped storing or is dead (and the daemon's stores take rw,
  // which the caller holds): a store left open was cut short by a killed holder, and may
  // have left bytes past EOF it never announced.
  if (inode->view_page->CloseAbandonedStores()) inode->past_eof_clean = false;
}

uint64_t Filesystem::FileDataEnd(const Inode& inode) const {
  // The attribute blob lives at file AU kXattrFileAu, past the largest file: not data.
  const auto& map = inode.extents.by_file;
  auto it = map.lower_bound(MaxFileSize() / sb_.au_size);
  if (it == map.begin()) return 0;
  --it;
  return (it->first + it->second.len) * sb_.au_size;
}

Status Filesystem::ReserveForViews(Inode* inode, uint64_t bytes, uint64_t at) {
  const uint64_t au = sb_.au_size;
  FoldViewSize(inode);
  {
    MetaLock lock(this);
    UDAX_RETURN_IF_ERROR(CheckWritable());
    if (!S_ISREG(inode->d.mode)) return Status::InvalidArgument("not a regular file");
    // Never more than a sixteenth of the free space: reservations are not reclaimed when
    // the filesystem fills (XFS's are), so they must not be what fills it.
    bytes = std::min({bytes, kMaxViewReserve, FreeAus() / 16 * au});
    // From further on (a gap left a hole): within the fills' budget too, since the trim
    // reads what it allocated (an append's is all written, and is not read).
    if (at > inode->d.size) bytes = std::min(bytes, FillBudget(*inode));
    // Live writable views with that much room past EOF already: share it (an append; one
    // from further on wants its own). (The asker's own view, replaced, counts among them:
    // less room than asked for is what it had.)
    if (at <= inode->d.size && inode->view_writers.load() > 0 && inode->view_limit > inode->d.size &&
        inode->view_limit - inode->d.size >= bytes) {
      return Status::Ok();
    }
    if (std::max(at, inode->d.size) >= MaxFileSize() || bytes == 0) return Status::Ok();
  }
  // What past EOF changes (zeroed, allocated) must not be under a live view's store.
  UDAX_RETURN_IF_ERROR(RevokeViews(inode));
  uint64_t size = 0, data_end = 0;
  bool clean = false;
  {
    MetaLock lock(this);
    UDAX_RETURN_IF_ERROR(CheckWritable());
    UDAX_RETURN_IF_ERROR(LoadExtents(inode));
    size = inode->d.size;
    data_end = std::max(size, FileDataEnd(*inode));
    // (A writable direct map may store past EOF in its last page at any time.)
    clean = inode->past_eof_clean && inode->map_writers.load() == 0;
  }
  // A view shows every byte up to its limit, and one past the old EOF must read zero:
  // the tail of the AU holding EOF always (a shrink, a map's store left it), every
  // allocated byte past EOF unless known zero (what a crash or a dead holder left).
  // Without mu_ (it may be a large preallocation): the extent map changes only under rw
  // exclusive, which we hold.
  UDAX_RETURN_IF_ERROR(ZeroMapped(*inode, size, clean ? std::min(data_end, (size + au - 1) / au * au) : data_end));
  MetaLock lock(this);
  UDAX_RETURN_IF_ERROR(CheckWritable());
  inode->past_eof_clean = true;
  inode->views_appended = true;
  // From the AU holding EOF (a hole there, after a truncate up, would stop the views at
  // the size), or from the AU holding `at`: the gap before it stays a hole, which reads
  // zeros as one past EOF must, and is reserved in its turn if written into.
  const uint64_t base = std::max(size, at);
  const uint64_t start = base / au * au;
  const uint64_t end = std::min((base + bytes + au - 1) / au * au, MaxFileSize() / au * au);
  if (end > start) {
    // Past EOF: no mtime (nothing the file shows changed), as fallocate KEEP_SIZE of
    // XFS's speculative preallocation does not. All or nothing (AllocateHoles checks the
    // room first): without room the views get none, and FUSE writes past EOF.
    const std::vector<std::pair<uint64_t, uint64_t>> holes = HoleRanges(*inode, start / au, end / au);
    Status st = AllocateHoles(inode, start / au, end / au);
    Status committed = CommitStep(inode);
    if (st.ok()) st = committed;
    if (st.code() == ENOSPC) st = Status::Ok();
    UDAX_RETURN_IF_ERROR(st);
    // Freed at the last writer's end -- only the holes this filled: a preallocation of
    // the program's that was there already stays.
    // (Those it did not fill, out of room, are holes still: freeing them does nothing.)
    inode->reserved.insert(inode->reserved.end(), holes.begin(), holes.end());
    // One past a gap is written in scattered places, as a fill is: what the size comes to
    // cover and stays zeros is trimmed as a fill's.
    if (at > size) inode->filled.insert(inode->filled.end(), holes.begin(), holes.end());
  }
  // The views reach as far as the allocation runs on from where it started, without a
  // hole (holes before it read zeros in the views, and are not stored into).
  uint64_t limit = size;
  for (uint64_t a = start / au;;) {
    uint64_t run;
    if (a * au >= MaxFileSize() || MapAu(*inode, a, MaxFileSize() / au - a, &run) == 0) break;
    a += run;
    limit = std::min(a * au, MaxFileSize());
  }
  inode->view_limit = std::max(limit, size);
  return Status::Ok();
}

void Filesystem::TrimViewReserve(Inode* inode) {
  std::vector<std::pair<uint64_t, uint64_t>> filled;
  {
    MetaLock lock(this);
    filled = std::move(inode->filled);
    inode->filled.clear();
  }
  TrimReserved(inode);  // first: what lies past EOF is freed whatever it holds
  TrimViewFills(inode, std::move(filled));
}

uint64_t Filesystem::FillBudget(const Inode& inode) const {
  const uint64_t au = sb_.au_size;
  uint64_t outstanding = 0;
  for (const auto& [s, e] : inode.filled) outstanding += e - s;
  return std::min(kMaxViewFill - std::min(outstanding, kMaxViewFill), FreeAus() / 16 * au);
}

void Filesystem::TrimReserved(Inode* inode) {
  const uint64_t au = sb_.au_size;
  MetaLock lock(this);
  const uint64_t eof_au_end = (inode->d.size + au - 1) / au * au;
  std::vector<std::pair<uint64_t, uint64_t>> reserved = std::move(inode->reserved);
  inode->reserved.clear();
  inode->view_limit = 0;
  if (reserved.empty() || shutdown_ || options_.read_only) return;
  // An immutable or append-only file's blocks stay as they are (chattr revoked the views).
  if (!RefuseImmutableOrAppend(*inode).ok()) return;
  // Nothing maps these bytes: no writable view is left, read views and direct maps end
  // at the size. A failure leaves them allocated past EOF, as a preallocation (logged).
  for (auto& [from, to] : reserved) from = std::max(from, eof_au_end);
  PunchTrimmed(inode, reserved, "the space reserved past EOF");
}

void Filesystem::PunchTrimmed(Inode* inode, const std::vector<std::pair<uint64_t, uint64_t>>& ranges,
                              const char* what) {
  Status st = LoadExtents(inode);
  for (const auto& [from, to] : ranges) {
    if (!st.ok()) break;
    if (from < to) st = PunchHole(inode, from, to - from);
    if (st.ok() && txn_.log_bytes() > TxnBudget()) st = CommitStep(inode);
  }
  Status committed = CommitStep(inode);
  if (st.ok()) st = committed;
  if (!st.ok()) {
    fprintf(stderr, "udaxfs: inode %llu: %s stays allocated: %s\n", static_cast<unsigned long long>(inode->ino),
            what, st.message().c_str());
  }
}

Status Filesystem::FillForViews(Inode* inode, uint64_t offset, uint64_t length) {
  const uint64_t au = sb_.au_size;
  FoldViewSize(inode);
  uint64_t from = 0, to = 0;
  {
    MetaLock lock(this);
    UDAX_RETURN_IF_ERROR(CheckWritable());
    if (!S_ISREG(inode->d.mode)) return Status::InvalidArgument("not a regular file");
    UDAX_RETURN_IF_ERROR(LoadExtents(inode));
    // Below the size only (past it is a reservation's), in whole AUs.
    const uint64_t size = std::min(inode->d.size, MaxFileSize());
    if (offset >= size) return Status::Ok();
    const uint64_t end = offset + std::min(length, size - offset);
    from = offset / au;
    to = (end + au - 1) / au;
    // Within the file's budget and a sixteenth of the free space (as a reservation):
    // asked for more, the view gets none, and FUSE writes into those holes.
    const uint64_t holes = CountHoleAus(*inode, from, to);
    if (holes == 0 || holes > FillBudget(*inode) / au) return Status::Ok();
  }
  // Other views show these holes as anonymous zeros, which the holder's stores will not
  // reach: they go first (as for any allocation).
  UDAX_RETURN_IF_ERROR(RevokeViews(inode));
  MetaLock lock(this);
  UDAX_RETURN_IF_ERROR(CheckWritable());
  UDAX_RETURN_IF_ERROR(LoadExtents(inode));
  // No mtime: the file reads as before (zeros), as for a reservation.
  std::vector<std::pair<uint64_t, uint64_t>> holes = HoleRanges(*inode, from, std::min(to, kXattrFileAu));
  Status st = AllocateHoles(inode, from, to);
  Status committed = CommitStep(inode);
  if (st.ok()) st = committed;
  // Recorded whatever came of it: a partial allocation is trimmed like a whole one (a
  // hole it did not fill is not punched again).
  inode->filled.insert(inode->filled.end(), holes.begin(), holes.end());
  if (st.code() == ENOSPC) st = Status::Ok();  // the holes left go to FUSE
  return st;
}

std::vector<std::pair<uint64_t, uint64_t>> Filesystem::ZeroAuRuns(
    const Inode& inode, const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  const uint64_t au = sb_.au_size;
  const uint64_t chunk_aus = std::max<uint64_t>(1, (uint64_t{1} << 20) / au);
  std::vector<char> buf(au);
  // Ascending and apart (fills come in the order of the writes, and may overlap), so the
  // runs come out ascending: the caller revokes from the first to the last.
  std::vector<std::pair<uint64_t, uint64_t>> merged = ranges;
  std::sort(merged.begin(), merged.end());
  size_t kept = 0;
  for (size_t i = 0; i < merged.size(); ++i) {
    if (kept > 0 && merged[i].first <= merged[kept - 1].second) {
      merged[kept - 1].second = std::max(merged[kept - 1].second, merged[i].second);
    } else {
      merged[kept++] = merged[i];
    }
  }
  merged.resize(kept);
  // An AU of data almost always differs from zeros in its first page: read that first.
  const uint64_t first = std::min<uint64_t>(au, 4096);
  auto zeros_at = [&](uint64_t at) {
    return region_->ReadSafe(at, buf.data(), first).ok() && AllZero(buf.data(), first) &&
           (first == au || (region_->ReadSafe(at + first, buf.data(), au - first).ok() &&
                            AllZero(buf.data(), au - first)));
  };
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  auto add = [&](uint64_t s) {
    if (!runs.empty() && runs.back().second == s) {
      runs.back().second = s + au;
    } else {
      runs.emplace_back(s, s + au);
    }
  };
  for (const auto& [from, to] : merged) {
    for (uint64_t a = from / au; a < to / au;) {
      uint64_t run;
      const uint64_t phys = MapAu(inode, a, to / au - a, &run);
      for (uint64_t i = 0; phys != 0 && i < run;) {
        const uint64_t k = std::min(run - i, chunk_aus);
        // Only what may hold data is read (an emulated image's holes are zeros); bad
        // media (or a device gone) fails the read: those AUs stay as they are.
        const std::vector<RegionRange> data = region_->MaybeNonZeroIn((phys + i) * au, k * au);
        auto d = data.begin();
        for (uint64_t j = 0; j < k; ++j) {
          const uint64_t at = (phys + i + j) * au;
          // Bad media stays where it is (and is not read: a machine check each time).
          if (region_->HasKnownBad(at, au) || region_->HasEmulatedPoison(at, au)) continue;
          while (d != data.end() && d->end() <= at) ++d;
          const bool maybe_data = d != data.end() && d->offset < at + au;
          if (!maybe_data || zeros_at(at)) add((a + i + j) * au);
        }
        i += k;
      }
      a += run;
    }
  }
  return runs;
}

void Filesystem::TrimViewFills(Inode* inode, std::vector<std::pair<uint64_t, uint64_t>> filled) {
  if (filled.empty()) return;
  auto trimmable = [&] {
    // A writable direct map may store into them at any time; an immutable or append-only
    // file's blocks stay as they are.
    return !shutdown_ && !options_.read_only && inode->map_writers.load() == 0 &&
           RefuseImmutableOrAppend(*inode).ok();
  };
  // Not now: kept for the next last writer's end (a crash or unmount leaves them
  // allocated, zeros, as a preallocation).
  auto later = [&] {  // (under mu_)
    if (!shutdown_ && !options_.read_only) {
      inode->filled.insert(inode->filled.end(), filled.begin(), filled.end());
    }
  };
  {
    MetaLock lock(this);
    if (!trimmable() || !LoadExtents(inode).ok()) return later();
  }
  // Without mu_ (at most the fills' budget, and written AUs in a page each): the extent
  // map changes only under rw exclusive, which we hold, and no writer is left to store
  // there.
  const std::vector<std::pair<uint64_t, uint64_t>> zero = ZeroAuRuns(*inode, filled);
  if (zero.empty()) return;
  // Read views and direct maps of them go first: the AUs are freed. (From the first run
  // to the last, ascending: maps of written AUs between are revoked too, and remap.)
  if (!Revoke(inode, zero.front().first, zero.back().second).ok()) {
    MetaLock lock(this);
    return later();
  }
  MetaLock lock(this);
  if (!trimmable()) return later();
  PunchTrimmed(inode, zero, "space filled for writes into holes");
}

}  // namespace udax
