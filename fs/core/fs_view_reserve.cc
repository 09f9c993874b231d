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

#include "fs/core/filesystem.h"

namespace udax {

namespace {

// The largest reservation a view gets at once: the shim doubles its asks as a file grows.
constexpr uint64_t kMaxViewReserve = uint64_t{1} << 30;

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
}

Status Filesystem::ReserveForViews(Inode* inode, uint64_t bytes) {
  const uint64_t au = sb_.au_size;
  FoldViewSize(inode);
  bytes = std::min(bytes, kMaxViewReserve);
  {
    MetaLock lock(this);
    UDAX_RETURN_IF_ERROR(CheckWritable());
    if (!S_ISREG(inode->d.mode)) return Status::InvalidArgument("not a regular file");
    // Live writable views with about that much room past EOF already: share it.
    if (inode->view_writers.load() > 0 && inode->view_limit > inode->d.size &&
        inode->view_limit - inode->d.size >= bytes / 2) {
      return Status::Ok();
    }
    if (inode->d.size >= MaxFileSize() || bytes == 0) return Status::Ok();
  }
  // What past EOF changes (zeroed, allocated) must not be under a live view's store.
  UDAX_RETURN_IF_ERROR(RevokeViews(inode));
  uint64_t alloc_end = 0;
  {
    MetaLock lock(this);
    UDAX_RETURN_IF_ERROR(CheckWritable());
    UDAX_RETURN_IF_ERROR(LoadExtents(inode));
    alloc_end = inode->d.size;
    if (!inode->extents.by_file.empty()) {
      const auto& [key, e] = *inode->extents.by_file.rbegin();
      alloc_end = std::max(alloc_end, (key + e.len) * au);
    }
  }
  if (!inode->past_eof_clean) {
    // Stores a crash or a dead holder left past EOF, the tail of a shrunk file: a view
    // shows every byte up to its limit, and one past the old EOF must read zero. Without
    // mu_ (it may be a large preallocation): the extent map changes only under rw
    // exclusive, which we hold.
    UDAX_RETURN_IF_ERROR(ZeroMapped(*inode, inode->d.size, alloc_end));
    inode->past_eof_clean = true;
  }
  MetaLock lock(this);
  UDAX_RETURN_IF_ERROR(CheckWritable());
  const uint64_t size = inode->d.size;
  const uint64_t start = (size + au - 1) / au * au;
  const uint64_t end = std::min((start + bytes + au - 1) / au * au, MaxFileSize() / au * au);
  if (end > start) {
    // Past EOF: no mtime (nothing the file shows changed), as fallocate KEEP_SIZE of
    // XFS's speculative preallocation does not.
    Status st = AllocateHoles(inode, start / au, end / au);
    Status committed = CommitStep(inode);
    if (st.ok()) st = committed;
    if (st.code() == ENOSPC) st = Status::Ok();  // what fitted stays; the rest goes to FUSE
    UDAX_RETURN_IF_ERROR(st);
    inode->reserve_from = std::min(inode->reserve_from, start);
    inode->reserve_to = std::max(inode->reserve_to, end);
  }
  // The views reach as far as the allocation runs on from the size, without a hole.
  uint64_t limit = size;
  for (uint64_t a = size / au;;) {
    uint64_t run;
    if (a * au >= MaxFileSize() || MapAu(*inode, a, UINT64_MAX / 2, &run) == 0) break;
    a += run;
    limit = std::min(a * au, MaxFileSize());
  }
  inode->view_limit = std::max(limit, size);
  return Status::Ok();
}

void Filesystem::TrimViewReserve(Inode* inode) {
  const uint64_t au = sb_.au_size;
  MetaLock lock(this);
  const uint64_t from = std::max(inode->reserve_from, (inode->d.size + au - 1) / au * au);
  const uint64_t to = inode->reserve_to;
  inode->reserve_from = UINT64_MAX;
  inode->reserve_to = 0;
  inode->view_limit = 0;
  if (from >= to || shutdown_ || options_.read_only) return;
  // Nothing maps these bytes: no writable view is left, read views and direct maps end
  // at the size. A failure leaves them allocated past EOF, as a preallocation.
  if (!LoadExtents(inode).ok()) return;
  Status st = PunchHole(inode, from, to - from);
  Status committed = CommitStep(inode);
  (void)st;
  (void)committed;
}

}  // namespace udax
