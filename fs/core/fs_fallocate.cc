// fs_fallocate.cc -- ranges of a file: fallocate(2) modes, SEEK_DATA / SEEK_HOLE, and
// copy_file_range(2).
//
// Every mode keeps the AU bitmap, the extent slots and the reverse map exact in the same
// transactions. Work too big for one transaction (TxnBudget) is committed in steps, the
// way XFS shifts extent by extent; every step leaves a consistent filesystem (fsck finds
// nothing), and a crash between two steps leaves the file as follows:
//   allocation (mode 0, KEEP_SIZE, ZERO_RANGE): some holes of the range mapped to zeroed
//     AUs (they read zeros either way) and the old size; the size moves in the last step.
//   PUNCH_HOLE: the AUs of the top part of the range unmapped (RemoveExtents works down).
//   COLLAPSE_RANGE [off, off+len): first the punch, as above; then the extents above the
//     range move down by len, lowest first, and the last step lowers the size. In between
//     the size is unchanged and the file reads: [0, off) as before, the old bytes of
//     [off+len, b) at [off, b-len), zeros at [b-len, b), [b, size) as before, for some
//     AU boundary b >= off+len (old bytes past EOF read as zeros).
//   INSERT_RANGE [off, off+len): the first step raises the size by len (as XFS does, so
//     that the extents moved up stay inside EOF), then the extents at or above off move
//     up by len, highest first. In between the file reads: [0, b) as before (zeros past
//     the old EOF), zeros at [b, b+len), the old bytes of [b, size) at [b+len, size+len),
//     for some AU boundary b >= off.
//   Both first zero the stale bytes past EOF in the last AU (truncation keeps them), which
//   the states in between would otherwise show inside the file.
//   tests/crash checks every cut against exactly these states.
// An operation that fits in one transaction (any small file) is all or nothing. Data
// bytes zeroed in place (partial AUs of PUNCH_HOLE and ZERO_RANGE, ZERO_RANGE over data)
// are persisted before the transactions, like a write's bytes: an interrupted call may
// leave each of them old or zero.
#include <fcntl.h>
#include <linux/falloc.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "fs/core/filesystem.h"

namespace udax {
namespace {

constexpr int kKnownModes = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE |
                            FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE;
// Log bytes one allocated AU may cost in the worst case (a run of its own: reverse-map
// record, bitmap word, extent slot, record headers), to size allocation steps.
constexpr uint64_t kAllocBytesPerAu = 128;
// Room kept in a transaction for the slot, inode and extent-block records of one move.
constexpr uint64_t kMoveReserve = 1024;
// Longest extent a slot holds (as InsertExtent).
constexpr uint64_t kMaxExtentAus = 1u << 30;
// Largest bounce buffer of copy_file_range.
constexpr uint64_t kCopyChunk = 1u << 20;

// The checks vfs_fallocate makes before a filesystem sees the call, in its order, so that
// callers get the errno Linux gives.
Status CheckMode(int mode) {
  if (mode & ~kKnownModes) return Status::Error(EOPNOTSUPP, "fallocate mode not supported");
  if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE)) {
    return Status::Error(EOPNOTSUPP, "punch hole and zero range are exclusive");
  }
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) {
    return Status::Error(EOPNOTSUPP, "punch hole needs keep size");
  }
  if ((mode & FALLOC_FL_COLLAPSE_RANGE) && (mode & ~FALLOC_FL_COLLAPSE_RANGE)) {
    return Status::InvalidArgument("collapse range takes no other flag");
  }
  if ((mode & FALLOC_FL_INSERT_RANGE) && (mode & ~FALLOC_FL_INSERT_RANGE)) {
    return Status::InvalidArgument("insert range takes no other flag");
  }
  return Status::Ok();
}

void TouchModified(DiskInode* d) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  d->mtime_sec = d->ctime_sec = ts.tv_sec;
  d->mtime_nsec = d->ctime_nsec = static_cast<uint32_t>(ts.tv_nsec);
}

// The locks of a copy: the source shared and the destination exclusive, taken in inode
// number order so that copies a->b and b->a cannot deadlock; one exclusive lock when the
// two are the same file.
class CopyLocks {
 public:
  // The analysis cannot follow locks taken in an order decided at run time; the two
  // inodes' rw locks are not named in annotations, so nothing relies on it here.
  // The source's lock is shared unless `exclusive_in` (to revoke its writable views).
  CopyLocks(Inode* in, Inode* out, bool exclusive_in) NO_THREAD_SAFETY_ANALYSIS
      : in_(in), out_(out), exclusive_in_(exclusive_in) {
    if (in == out) {
      out->rw.Lock();
      in_ = nullptr;
      return;
    }
    if (in->ino < out->ino) {
      LockIn();
      out->rw.Lock();
    } else {
      out->rw.Lock();
      LockIn();
    }
  }
  ~CopyLocks() NO_THREAD_SAFETY_ANALYSIS {
    if (in_ != nullptr && exclusive_in_) in_->rw.Unlock();
    if (in_ != nullptr && !exclusive_in_) in_->rw.UnlockShared();
    out_->rw.Unlock();
  }
  CopyLocks(const CopyLocks&) = delete;
  CopyLocks& operator=(const CopyLocks&) = delete;

 private:
  void LockIn() NO_THREAD_SAFETY_ANALYSIS {
    if (exclusive_in_) {
      in_->rw.Lock();
    } else {
      in_->rw.LockShared();
    }
  }

  Inode* in_;   // null when the copy is within one file
  Inode* out_;  // held exclusive
  bool exclusive_in_;
};

// Takes file bytes [from, to) out of a list of byte ranges.
void RemoveRange(std::vector<std::pair<uint64_t, uint64_t>>* ranges, uint64_t from, uint64_t to) {
  std::vector<std::pair<uint64_t, uint64_t>> kept;
  for (const auto& [s, e] : *ranges) {
    if (s < from) kept.emplace_back(s, std::min(e, from));
    if (e > to) kept.emplace_back(std::max(s, to), e);
  }
  *ranges = std::move(kept);
}

}  // namespace

Status Filesystem::Fallocate(Inode* inode, int mode, uint64_t off, uint64_t len,
                             PrivDrop* drop) {
  UDAX_RETURN_IF_ERROR(CheckWritable());
  if (len == 0 || off > INT64_MAX || len > INT64_MAX) {
    return Status::InvalidArgument("fallocate range is empty or negative");
  }
  UDAX_RETURN_IF_ERROR(CheckMode(mode));
  if (S_ISDIR(inode->d.mode)) return Status::Error(EISDIR, "fallocate on a directory");
  if (!S_ISREG(inode->d.mode)) return Status::Error(ENODEV, "fallocate on a special file");
  if (len > MaxFileSize() || off > MaxFileSize() - len) {
    return Status::Error(EFBIG, "fallocate range past the largest file size");
  }
  WriterLock rw(&inode->rw);
  // Blocks freed (punch, zero) or moved to other offsets (collapse, insert): direct maps
  // of them go first, before mu_, so that a slow client stalls this file only.
  if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) {
    UDAX_RETURN_IF_ERROR(Revoke(inode, off, UINT64_MAX));
  } else if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
    UDAX_RETURN_IF_ERROR(Revoke(inode, off, off + len));
  } else {
    // Allocation (and maybe a new size): only read views depend on that.
    UDAX_RETURN_IF_ERROR(RevokeViews(inode));
  }
  MetaLock lock(this);
  UDAX_RETURN_IF_ERROR(CheckWritable());
  // vfs_fallocate(): only plain preallocation on an append-only file; nothing on an
  // immutable one.
  if (mode & ~FALLOC_FL_KEEP_SIZE) UDAX_RETURN_IF_ERROR(RefuseImmutableOrAppend(*inode));
  UDAX_RETURN_IF_ERROR(RefuseImmutable(*inode));
  UDAX_RETURN_IF_ERROR(LoadExtents(inode));
  // In the first transaction of the change, as ext4_fallocate calls file_modified before
  // it allocates (so a fallocate that then runs out of space has dropped them, too).
  UDAX_RETURN_IF_ERROR(StagePrivDrop(inode, drop));
  const bool keep_size = mode & FALLOC_FL_KEEP_SIZE;
  // A preallocation the program asked for is kept: what writable views reserved past EOF
  // is not freed at their end any more (fs_view_reserve.cc). (A punch frees it anyway.)
  // So is a fill's space under the range (and, when offsets move, all of it).
  if (!(mode & FALLOC_FL_PUNCH_HOLE)) {
    inode->reserved.clear();
    if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) {
      inode->filled.clear();
    } else {
      const uint64_t au = sb_.au_size;
      RemoveRange(&inode->filled, off / au * au, (off + len + au - 1) / au * au);
    }
  }
  Status st;
  if (mode & FALLOC_FL_PUNCH_HOLE) {
    st = PunchHole(inode, off, len);
  } else if (mode & FALLOC_FL_ZERO_RANGE) {
    st = ZeroRange(inode, off, len, keep_size);
  } else if (mode & FALLOC_FL_COLLAPSE_RANGE) {
    st = CollapseRange(inode, off, len);
  } else if (mode & FALLOC_FL_INSERT_RANGE) {
    st = InsertRange(inode, off, len);
  } else {
    st = AllocateSpace(inode, off, len, keep_size);
  }
  return FinishRange(inode, std::move(st));
}

Status Filesystem::FinishRange(Inode* inode, Status st) {
  // Every error comes back between two consistent steps (space is checked before a step
  // starts), so what is staged belongs on media: DRAM already holds it.
  if (st.ok()) TouchModified(&inode->d);
  Status committed = CommitStep(inode);
  return st.ok() ? committed : st;
}

Status Filesystem::CommitStep(Inode* inode) {
  StageInode(inode);  // inline extent slots live in the inode
  return Commit();
}

Status Filesystem::AllocateSpace(Inode* inode, uint64_t off, uint64_t len, bool keep_size) {
  const uint64_t au = sb_.au_size, end = off + len;
  UDAX_RETURN_IF_ERROR(AllocateHoles(inode, off / au, (end + au - 1) / au));
  if (!keep_size && end > inode->d.size) return GrowSize(inode, end);
  return Status::Ok();
}

Status Filesystem::PunchHole(Inode* inode, uint64_t off, uint64_t len) {
  const uint64_t au = sb_.au_size, end = off + len;
  // Whole AUs [first, last) are unmapped; the bytes of partly covered AUs are zeroed.
  const uint64_t first = (off + au - 1) / au, last = end / au;
  if (first >= last) {  // no whole AU: only zeros (a hole reads zeros already)
    return ZeroMapped(*inode, off, end);
  }
  if (SplitsExtent(*inode, first, last) && !HoldAus(ExtentBlocksNeeded(*inode, 1), 0, inode->ino)) {
    return Status::NoSpace("no space for the extent a punched hole splits");
  }
  UDAX_RETURN_IF_ERROR(ZeroMapped(*inode, off, first * au));
  UDAX_RETURN_IF_ERROR(ZeroMapped(*inode, last * au, end));
  return RemoveExtents(inode, first, std::min(last, kXattrFileAu));
}

Status Filesystem::ZeroRange(Inode* inode, uint64_t off, uint64_t len, bool keep_size) {
  const uint64_t au = sb_.au_size, end = off + len;
  // The bytes mapped now are zeroed in place; the holes get fresh AUs, zeroed when
  // allocated. Note the first before the second changes the map.
  std::vector<std::pair<uint64_t, uint64_t>> mapped;  // file byte ranges
  for (uint64_t pos = off; pos < end;) {
    uint64_t run;
    const bool data = MapAu(*inode, pos / au, (end - pos + pos % au + au - 1) / au, &run) != 0;
    const uint64_t next = std::min(end, (pos / au + run) * au);
    if (data) mapped.emplace_back(pos, next);
    pos = next;
  }
  UDAX_RETURN_IF_ERROR(AllocateHoles(inode, off / au, (end + au - 1) / au));
  for (const auto& [from, to] : mapped) UDAX_RETURN_IF_ERROR(ZeroMapped(*inode, from, to));
  if (!keep_size && end > inode->d.size) return GrowSize(inode, end);
  return Status::Ok();
}

Status Filesystem::CollapseRange(Inode* inode, uint64_t off, uint64_t len) {
  const uint64_t au = sb_.au_size;
  if (off % au != 0 || len % au != 0) {
    return Status::InvalidArgument("collapse range not aligned to the allocation unit");
  }
  if (off + len >= inode->d.size) {
    return Status::InvalidArgument("collapse range reaches the end of the file");
  }
  // One slot for a punch inside an extent, one for a piece of an extent too large to move
  // in one transaction: checked before anything changes.
  if (!HoldAus(ExtentBlocksNeeded(*inode, 2), 0, inode->ino)) {
    return Status::NoSpace("no space for extent slots");
  }
  UDAX_RETURN_IF_ERROR(ZeroStaleTail(*inode));
  const uint64_t first = off / au, count = len / au;
  UDAX_RETURN_IF_ERROR(RemoveExtents(inode, first, first + count));
  UDAX_RETURN_IF_ERROR(ShiftDown(inode, first + count, count));
  inode->past_eof_clean = false;  // the bytes shifted out past the new EOF stay there
  inode->d.size -= len;  // in the last step: until then the shifted data stays inside EOF
  return Status::Ok();
}

Status Filesystem::InsertRange(Inode* inode, uint64_t off, uint64_t len) {
  const uint64_t au = sb_.au_size;
  if (off % au != 0 || len % au != 0) {
    return Status::InvalidArgument("insert range not aligned to the allocation unit");
  }
  if (len > MaxFileSize() - inode->d.size) {
    return Status::Error(EFBIG, "insert range would pass the largest file size");
  }
  if (off >= inode->d.size) return Status::InvalidArgument("insert range at or past EOF");
  // AUs preallocated past EOF move too, and may not reach the attribute blob's file AUs.
  const uint64_t count = len / au;
  const auto& map = inode->extents.by_file;
  auto top = map.lower_bound(kXattrFileAu);
  if (top != map.begin()) {
    --top;
    if (top->first + top->second.len + count > MaxFileSize() / au) {
      return Status::Error(EFBIG, "insert range would move data past the largest file size");
    }
  }
  if (!HoldAus(ExtentBlocksNeeded(*inode, 2), 0, inode->ino)) {
    return Status::NoSpace("no space for extent slots");
  }
  UDAX_RETURN_IF_ERROR(ZeroStaleTail(*inode));
  UDAX_RETURN_IF_ERROR(SplitExtentAt(inode, off / au));
  inode->d.size += len;  // in the first step, with the split (staged with the inode)
  return ShiftUp(inode, off / au, count);
}

uint64_t Filesystem::CountHoleAus(const Inode& inode, uint64_t from, uint64_t to) const {
  uint64_t holes = 0;
  for (uint64_t a = from; a < to;) {
    uint64_t run;
    if (MapAu(inode, a, to - a, &run) == 0) holes += run;
    a += run;
  }
  return holes;
}

std::vector<std::pair<uint64_t, uint64_t>> Filesystem::HoleRanges(const Inode& inode, uint64_t from,
                                                                  uint64_t to) const {
  const uint64_t au = sb_.au_size;
  std::vector<std::pair<uint64_t, uint64_t>> holes;
  for (uint64_t a = from; a < to;) {
    uint64_t run;
    if (MapAu(inode, a, to - a, &run) == 0) holes.emplace_back(a * au, (a + run) * au);
    a += run;
  }
  return holes;
}

Status Filesystem::AllocateHoles(Inode* inode, uint64_t from, uint64_t to) {
  to = std::min(to, kXattrFileAu);
  // ENOSPC before any change when the holes outnumber the free AUs. Extent blocks may
  // still take the last ones part way: then what is mapped stays (it reads as zeros, and
  // nothing leaks), as ext4 and XFS leave a partial preallocation.
  // (Several devices: the range is taken in steps, each going on from the last, and the
  // first starts on a device with room for all of it when the home has not: in_all.)
  const uint64_t holes = CountHoleAus(*inode, from, to);
  if (holes > FreeAus()) return Status::NoSpace("not enough free space for the range");
  const uint64_t step_aus = std::max<uint64_t>(1, TxnBudget() / kAllocBytesPerAu);
  for (uint64_t a = from; a < to;) {
    uint64_t run;
    if (MapAu(*inode, a, to - a, &run) != 0) {
      a += run;
      continue;
    }
    const uint64_t free = FreeAus();
    uint64_t n = std::min({run, step_aus, free});
    // AllocateRange refuses, changing nothing, when the runs it found need more extent
    // blocks than are left; then ask only for what fits with one extent per AU, the worst
    // fragmentation.
    Status st = n > 0 ? AllocateRange(inode, a, n, /*zero=*/true, holes) : Status::NoSpace("full");
    if (st.code() == ENOSPC) {
      const uint64_t margin = ExtentBlocksNeeded(*inode, n);
      n = std::min(n, free > margin ? free - margin : 0);
      if (n == 0) return Status::NoSpace("no space for the range and its extent blocks");
      st = AllocateRange(inode, a, n, /*zero=*/true, holes);
    }
    UDAX_RETURN_IF_ERROR(st);
    a += n;
    if (txn_.log_bytes() > TxnBudget()) UDAX_RETURN_IF_ERROR(CommitStep(inode));
  }
  return Status::Ok();
}

Status Filesystem::ZeroMapped(const Inode& inode, uint64_t from, uint64_t to) {
  const uint64_t au = sb_.au_size;
  for (uint64_t pos = from; pos < to;) {
    uint64_t run;
    const uint64_t phys = MapAu(inode, pos / au, (to - pos + pos % au + au - 1) / au, &run);
    const uint64_t chunk = std::min(to - pos, run * au - pos % au);
    if (phys != 0) UDAX_RETURN_IF_ERROR(region_->ZeroSafe(phys * au + pos % au, chunk, true));
    pos += chunk;
  }
  return Status::Ok();
}

Status Filesystem::ZeroStaleTail(const Inode& inode) {
  const uint64_t au = sb_.au_size, size = inode.d.size;
  return ZeroMapped(inode, size, (size + au - 1) / au * au);
}

Status Filesystem::GrowSize(Inode* inode, uint64_t new_size) {
  UDAX_RETURN_IF_ERROR(ZeroPastEof(inode, new_size));
  inode->d.size = new_size;
  return Status::Ok();
}

bool Filesystem::SplitsExtent(const Inode& inode, uint64_t from, uint64_t to) const {
  if (from == 0) return false;
  const auto& map = inode.extents.by_file;
  auto it = map.upper_bound(from - 1);
  if (it == map.begin()) return false;
  --it;
  return it->first + it->second.len > to;
}

Status Filesystem::SplitExtentAt(Inode* inode, uint64_t au) {
  const auto& map = inode->extents.by_file;
  auto it = map.upper_bound(au);
  if (it == map.begin()) return Status::Ok();
  --it;
  const uint64_t key = it->first;
  const Extent e = it->second;
  if (au <= key || au >= key + e.len) return Status::Ok();  // already a boundary
  // The tail first: if its slot cannot be had, nothing has changed.
  UDAX_RETURN_IF_ERROR(AddExtentSlot(inode, au, e.phys_au + (au - key),
                                     static_cast<uint32_t>(key + e.len - au)));
  return SetExtent(inode, key, key, Extent{e.phys_au, static_cast<uint32_t>(au - key)});
}

Status Filesystem::ShiftDown(Inode* inode, uint64_t from, uint64_t delta) {
  const auto& map = inode->extents.by_file;
  for (uint64_t next = from;;) {
    auto it = map.lower_bound(next);
    if (it == map.end() || it->first >= kXattrFileAu) return Status::Ok();
    const uint64_t key = it->first;
    UDAX_ASSIGN_OR_RETURN(uint64_t moved, MoveExtent(inode, key, delta, /*up=*/false));
    next = key + moved;  // the rest of a piecewise-moved extent starts there
  }
}

Status Filesystem::ShiftUp(Inode* inode, uint64_t from, uint64_t delta) {
  const auto& map = inode->extents.by_file;
  // Everything at or above `limit` has moved already.
  for (uint64_t limit = kXattrFileAu;;) {
    auto it = map.lower_bound(limit);
    if (it == map.begin()) return Status::Ok();
    --it;
    if (it->first < from) return Status::Ok();
    const uint64_t key = it->first, len = it->second.len;
    UDAX_ASSIGN_OR_RETURN(uint64_t moved, MoveExtent(inode, key, delta, /*up=*/true));
    limit = key + len - moved;  // what is left of the extent ends there
  }
}

uint64_t Filesystem::RmapRoom() const {
  const uint64_t used = txn_.log_bytes() + kMoveReserve;
  return used >= TxnBudget() ? 0 : (TxnBudget() - used) / sizeof(DiskRmapRecord);
}

// A move rewrites the extent's slot and one reverse-map record per AU (the owner's file
// AU changes), in the same transaction. An extent with more AUs than fit moves in pieces,
// one per transaction: the head going down, the tail going up, so that every piece lands
// next to the one before it, and joins it (same physical run), and the extent ends whole.
Result<uint64_t> Filesystem::MoveExtent(Inode* inode, uint64_t key, uint64_t delta, bool up) {
  auto& map = inode->extents.by_file;
  uint64_t room = RmapRoom();
  if (room < map.at(key).len && !txn_.empty()) {
    UDAX_RETURN_IF_ERROR(CommitStep(inode));
    room = RmapRoom();
  }
  const Extent e = map.at(key);
  const uint64_t n = std::clamp<uint64_t>(room, 1, e.len);
  const uint64_t src = up ? key + e.len - n : key;  // file AU of the piece
  const uint64_t phys = e.phys_au + (src - key);
  const uint64_t dst = up ? src + delta : src - delta;

  // The neighbour the piece comes to touch, if its physical AUs continue the piece's.
  auto joined = map.end();
  if (up) {
    auto next = map.find(dst + n);
    if (next != map.end() && next->first < kXattrFileAu && next->second.phys_au == phys + n &&
        next->second.len + n <= kMaxExtentAus) {
      joined = next;
    }
  } else {
    auto next = map.lower_bound(dst);
    if (next != map.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second.len == dst && prev->second.phys_au + prev->second.len == phys &&
          prev->second.len + n <= kMaxExtentAus) {
        joined = prev;
      }
    }
  }

  if (joined != map.end()) {  // grow the neighbour over the piece
    const uint64_t jkey = joined->first;
    const Extent j = joined->second;
    const uint32_t jlen = static_cast<uint32_t>(j.len + n);
    UDAX_RETURN_IF_ERROR(up ? SetExtent(inode, jkey, dst, Extent{phys, jlen})
                            : SetExtent(inode, jkey, jkey, Extent{j.phys_au, jlen}));
  } else if (n == e.len) {  // the whole extent, in its own slot
    UDAX_RETURN_IF_ERROR(SetExtent(inode, key, dst, e));
  } else {  // a piece in a new slot (checked for space before the operation began)
    UDAX_RETURN_IF_ERROR(AddExtentSlot(inode, dst, phys, static_cast<uint32_t>(n)));
  }
  // Take the piece off what is left at `key` (unless it was re-keyed as a whole).
  if (n == e.len) {
    if (joined != map.end()) UDAX_RETURN_IF_ERROR(DropExtentSlot(inode, key));
  } else if (up) {
    UDAX_RETURN_IF_ERROR(SetExtent(inode, key, key, Extent{e.phys_au, static_cast<uint32_t>(e.len - n)}));
  } else {
    UDAX_RETURN_IF_ERROR(SetExtent(inode, key, key + n,
                                   Extent{e.phys_au + n, static_cast<uint32_t>(e.len - n)}));
  }
  StageOwner(Run{phys, n}, DataOwner(*inode, dst));
  return n;
}

Result<uint64_t> Filesystem::SeekDataHole(Inode* inode, uint64_t off, int whence) {
  if (shutdown_) return Status::IoError("filesystem is shut down");
  if (whence != SEEK_DATA && whence != SEEK_HOLE) {
    return Status::InvalidArgument("whence is neither SEEK_DATA nor SEEK_HOLE");
  }
  ReaderLock rw(&inode->rw);
  const uint64_t size = ViewSize(*inode), au = sb_.au_size;
  if (off >= size) return Status::Error(ENXIO, "offset at or past the end of the file");
  // Allocated AUs are data (zero-filled ones too, as without unwritten-extent tracking);
  // holes past EOF do not count, and EOF itself is a hole.
  const uint64_t end_au = (size + au - 1) / au;
  for (uint64_t a = off / au; a < end_au;) {
    uint64_t run;
    const bool data = MapAu(*inode, a, end_au - a, &run) != 0;
    if (data == (whence == SEEK_DATA)) return std::max(off, a * au);
    a += run;
  }
  if (whence == SEEK_HOLE) return size;
  return Status::Error(ENXIO, "no data past the offset");
}

Result<size_t> Filesystem::CopyFileRange(Inode* in, uint64_t off_in, Inode* out, uint64_t off_out,
                                         size_t len, PrivDrop* drop) {
  // The source is read as Read reads: a piece that overlapped a store of one of its
  // writable views is read again, and a source stored into so hard that its pieces keep
  // losing is copied once more with those views revoked (its lock exclusive for that).
  Result<size_t> r = CopyFileRangeOnce(in, off_in, out, off_out, len, drop, /*revoke_in=*/false);
  if (!r.ok() || r.value() != kContended) return r;
  r = CopyFileRangeOnce(in, off_in, out, off_out, len, drop, /*revoke_in=*/true);
  if (r.ok() && r.value() == kContended) return Status::Error(EAGAIN, "copy_file_range source kept changing");
  return r;
}

// CopyFileRange's work: the count, or kContended when nothing was copied yet and the
// source's writable views kept storing over the piece being read.
Result<size_t> Filesystem::CopyFileRangeOnce(Inode* in, uint64_t off_in, Inode* out, uint64_t off_out,
                                             size_t len, PrivDrop* drop, bool revoke_in) {
  UDAX_RETURN_IF_ERROR(CheckWritable());
  if (S_ISDIR(in->d.mode) || S_ISDIR(out->d.mode)) {
    return Status::Error(EISDIR, "copy_file_range on a directory");
  }
  if (!S_ISREG(in->d.mode) || !S_ISREG(out->d.mode)) {
    return Status::InvalidArgument("copy_file_range on a special file");
  }
  if (off_in > INT64_MAX || off_out > INT64_MAX) return Status::InvalidArgument("negative offset");
  if (off_in + len < off_in || off_out + len < off_out) {  // as Linux: only a true wrap
    return Status::Error(EOVERFLOW, "copy_file_range range wraps");
  }
  CopyLocks locks(in, out, revoke_in);
  if (revoke_in && in->view_writers.load() > 0) UDAX_RETURN_IF_ERROR(RevokeViews(in));
  FoldViewSize(out);  // held exclusive: what its writable views appended is part of it
  UDAX_RETURN_IF_ERROR(CheckWriteFlags(*out, off_out));
  // As generic_copy_file_checks: shorten to the end of the input, then to the size limit.
  const uint64_t size_in = ViewSize(*in);
  len = off_in >= size_in ? 0 : static_cast<size_t>(std::min<uint64_t>(len, size_in - off_in));
  if (off_out >= MaxFileSize()) return Status::Error(EFBIG, "copy_file_range past the size limit");
  len = static_cast<size_t>(std::min<uint64_t>(len, MaxFileSize() - off_out));
  if (in == out && off_out < off_in + len && off_in < off_out + len) {
    return Status::InvalidArgument("copy_file_range within a file with overlapping ranges");
  }
  if (len == 0) return size_t{0};

  const uint64_t au = sb_.au_size;
  std::vector<char> buf;  // grown to the largest data chunk, at most kCopyChunk
  size_t done = 0;
  while (done < len) {
    const uint64_t pos = off_in + done;
    uint64_t run;
    const uint64_t phys = MapAu(*in, pos / au, (len - done + pos % au + au - 1) / au, &run);
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(len - done, run * au - pos % au));
    if (phys == 0) {  // a hole stays a hole (as far as the destination's AUs allow)
      Status st = CopyHole(out, off_out + done, chunk, drop);
      if (!st.ok()) return done > 0 ? Result<size_t>(done) : st;
      done += chunk;
      continue;
    }
    const size_t piece = std::min<size_t>(chunk, kCopyChunk);
    if (buf.size() < piece) buf.resize(piece);
    // (A writable view is granted under the source's lock held exclusive, so none
    // appears while this runs; those there may store.)
    // With the views revoked nothing stores any more; a holder that died inside a store
    // leaves the bracket open until its view's end, which must not stop this copy.
    auto got = ReadLocked(in, pos, piece, buf.data(), /*check_writers=*/!revoke_in);
    if (!got.ok()) return done > 0 ? Result<size_t>(done) : got;
    if (*got == kContended) return done > 0 ? done : kContended;
    auto wrote = WriteLocked(out, off_out + done, buf.data(), *got, drop);
    if (!wrote.ok()) return done > 0 ? Result<size_t>(done) : wrote;
    done += *wrote;
    if (*wrote < piece) break;  // out of space (or the source's end): a short copy
  }
  return done;
}

Status Filesystem::CopyHole(Inode* out, uint64_t pos, uint64_t n, PrivDrop* drop) {
  // The punch frees blocks: direct maps of them go first (they were never asked back
  // here, so a client kept a map of blocks another file could be given).
  UDAX_RETURN_IF_ERROR(Revoke(out, pos, pos + n));
  MetaLock lock(this);
  UDAX_RETURN_IF_ERROR(CheckWritable());
  UDAX_RETURN_IF_ERROR(StagePrivDrop(out, drop));
  Status st = PunchHole(out, pos, n);
  if (st.ok() && pos + n > out->d.size) st = GrowSize(out, pos + n);
  return FinishRange(out, std::move(st));
}

}  // namespace udax
