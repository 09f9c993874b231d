// fs_data.cc -- open files: open/create/release, read, write, setattr, fsync.
//
// Data lives in place in the region. Reads copy out through the machine-check-safe
// routine; writes copy in with non-temporal stores. A write that needs new allocation
// units (or raises the size) writes and persists its data first, then commits one
// transaction with the allocation, the extents and the new size, so a crash can never
// expose a block whose contents were not written by this file.
#include <fcntl.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "fs/core/filesystem.h"

namespace udax {
namespace {

}  // namespace

// Largest file size: 2^32 allocation units (the reverse map records file offsets in AUs
// in 32 bits), capped at 2^50 bytes. 16 TiB with 4 KiB AUs, as ext4.
uint64_t Filesystem::MaxFileSize() const {
  // File AUs from kXattrFileAu up hold the attribute blob; the reverse map records file
  // AUs in 32 bits.
  return std::min<uint64_t>(uint64_t{sb_.au_size} * kXattrFileAu, 1ull << 50);
}

namespace {

void NowInto(int64_t* sec, uint32_t* nsec) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  *sec = ts.tv_sec;
  *nsec = static_cast<uint32_t>(ts.tv_nsec);
}

}  // namespace

Result<Inode*> Filesystem::Open(uint64_t ino, int flags) {
  MetaLock lock(this);
  UDAX_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  const bool for_write = (flags & O_ACCMODE) != O_RDONLY;
  if (for_write) UDAX_RETURN_IF_ERROR(CheckWritable());
  // may_open(): an immutable file opens for reading only; an append-only one for writing
  // only with O_APPEND, and never with O_TRUNC.
  if (for_write || (flags & O_TRUNC)) UDAX_RETURN_IF_ERROR(RefuseImmutable(*inode));
  if ((inode->d.attr_flags & kAttrAppend) &&
      ((for_write && !(flags & O_APPEND)) || (flags & O_TRUNC))) {
    return Status::Error(EPERM, "append-only file: open for writing needs O_APPEND");
  }
  UDAX_RETURN_IF_ERROR(LoadExtents(inode));
  inode->nopen++;
  return inode;
}

Result<std::pair<EntryOut, Inode*>> Filesystem::Create(uint64_t parent, std::string_view name,
                                                       uint32_t mode, int flags,
                                                       const Caller& caller) {
  (void)flags;
  UDAX_ASSIGN_OR_RETURN(EntryOut entry, Mknod(parent, name, S_IFREG | (mode & 07777), 0, caller));
  MetaLock lock(this);
  UDAX_ASSIGN_OR_RETURN(Inode * inode, Get(entry.ino));
  inode->nopen++;
  return std::make_pair(entry, inode);
}

void Filesystem::Release(Inode* inode) {
  MetaLock lock(this);
  if (inode->nopen > 0) inode->nopen--;
  if (shutdown_ || options_.read_only) return;
  if (inode->nopen == 0 && inode->nlookup == 0 && inode->d.nlink == 0 && !inode->freed) {
    if (FreeInode(inode).ok()) (void)Commit();
  } else if (inode->dirty && inode->nopen == 0) {
    StageInode(inode);
    (void)Commit();
  }
  MaybeEvict(inode);
}

Result<size_t> Filesystem::Read(Inode* inode, uint64_t off, size_t n, char* buf) {
  if (shutdown_) return Status::IoError("filesystem is shut down");
  {
    ReaderLock rw(&inode->rw);
    // Writable views store into the file without its lock: a copy that overlapped one of
    // their stores is done again (the write page's seqlock). A file written so hard that
    // copies keep losing is read once more with the views revoked (below).
    Result<size_t> r = ReadLocked(inode, off, n, buf, /*check_writers=*/true);
    if (!r.ok() || r.value() != kContended) {
      if (r.ok()) TouchAtime(inode);
      return r;
    }
  }
  WriterLock rw(&inode->rw);
  UDAX_RETURN_IF_ERROR(RevokeViews(inode));  // their holders stop storing before this returns
  Result<size_t> r = ReadLocked(inode, off, n, buf, /*check_writers=*/false);
  if (r.ok()) TouchAtime(inode);
  return r;
}

// Read's copy, REQUIRES inode->rw. With `check_writers`, kContended when stores of
// writable views kept overlapping it.
Result<size_t> Filesystem::ReadLocked(Inode* inode, uint64_t off, size_t n, char* buf,
                                      bool check_writers) {
  const uint64_t size = ViewSize(*inode);  // with what writable views stored past EOF
  if (off >= size || n == 0) return size_t{0};
  n = static_cast<size_t>(std::min<uint64_t>(n, size - off));
  const uint64_t au = sb_.au_size;
  constexpr int kCopyTries = 64;
  ViewPage* writers = check_writers && inode->view_writers.load() > 0 ? inode->view_page.get() : nullptr;
  for (int tries = 1;; ++tries) {
    uint64_t begin = 0;
    if (writers != nullptr && !writers->ReadBegin(&begin)) {
      if (tries == kCopyTries) return kContended;
      sched_yield();  // let the writer finish its store
      continue;
    }
    size_t done = 0;
    while (done < n) {
      const uint64_t pos = off + done;
      const uint64_t inner = pos % au;
      uint64_t run_aus;
      const uint64_t phys = MapAu(*inode, pos / au, (n - done + inner + au - 1) / au, &run_aus);
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n - done, run_aus * au - inner));
      if (phys == 0) {
        std::memset(buf + done, 0, chunk);  // a hole
      } else {
        Status st = region_->ReadSafe(phys * au + inner, buf + done, chunk);
        if (!st.ok()) return st;
      }
      done += chunk;
    }
    if (writers == nullptr || !writers->ReadRetry(begin)) return n;
    if (tries == kCopyTries) return kContended;
  }
}

Result<bool> Filesystem::ReadInPlace(Inode* inode, uint64_t off, size_t n,
                                     const std::function<void(const char*, size_t)>& send) {
  if (shutdown_) return Status::IoError("filesystem is shut down");
  if (region_->kind() != RegionKind::kEmulated || !region_->volatile_backing()) return false;
  // The reply completes the request: the kernel may then release the file and forget the
  // inode on another thread while we still hold its lock. A pin (as an open takes) keeps
  // the inode; our Release below then does what theirs would have.
  {
    MetaLock lock(this);
    inode->nopen++;
  }
  bool sent = false;
  {
    ReaderLock rw(&inode->rw);
    const uint64_t size = inode->d.size;
    const uint64_t au = sb_.au_size, inner = off % au;
    // A writable view may store under the reply, which cannot be taken back: Read copies
    // (the count changes only under rw exclusive).
    const bool writers = inode->view_writers.load() > 0;
    if (off < size && n > 0 && !writers) {
      n = static_cast<size_t>(std::min<uint64_t>(n, size - off));
      uint64_t run_aus;
      const uint64_t phys = MapAu(*inode, off / au, (n + inner + au - 1) / au, &run_aus);
      const uint64_t at = phys * au + inner;
      // Not a hole, one run, no poison (latent poison too: only ReadSafe emulates its
      // fault): otherwise Read does it.
      if (phys != 0 && run_aus * au - inner >= n && at + n <= region_->size() &&
          !region_->HasEmulatedPoison(at, n)) {
        TouchAtime(inode);  // before the reply, as Read does
        // The rule of the in-place reply (filesystem.h): rw stays held, so no truncate
        // frees these bytes while the kernel copies them, and `send` takes no lock.
        NoLocksScope no_locks("the in-place read reply (Filesystem::ReadInPlace)");
        send(reinterpret_cast<const char*>(region_->base() + at), n);
        sent = true;
      }
    }
  }
  Release(inode);
  return sent;
}

Result<size_t> Filesystem::Write(Inode* inode, uint64_t off, const char* buf, size_t n,
                                 PrivDrop* drop, bool append, uint64_t* written_at) {
  {
    Status st = CheckWritable();
    if (!st.ok()) return st;
  }
  if (n == 0) return size_t{0};
  WriterLock rw(&inode->rw);
  FoldViewSize(inode);  // what writable views stored past EOF is part of the file
  if (append && inode->views_appended) {
    // Views that may still store past EOF stop first: the end is where they left it.
    if (inode->view_limit > inode->d.size) UDAX_RETURN_IF_ERROR(RevokeViews(inode));
    off = inode->d.size;
  }
  if (written_at != nullptr) *written_at = off;
  if (off >= MaxFileSize() || n > MaxFileSize() - off) return Status::Error(EFBIG, "file too large");
  UDAX_RETURN_IF_ERROR(CheckWriteFlags(*inode, off));
  return WriteLocked(inode, off, buf, n, drop);
}

// The kernel refuses writes to an immutable file and non-O_APPEND opens of an append-only
// one only for filesystems whose inodes carry S_IMMUTABLE / S_APPEND, which FUSE inodes
// never do: a handle opened before the flag was set, fcntl(F_SETFL) dropping O_APPEND and
// mmap write-back all reach us. So: EPERM for any write to an immutable file, and for a
// write below EOF of an append-only one. REQUIRES inode->rw.
Status Filesystem::CheckWriteFlags(const Inode& inode, uint64_t off) {
  UDAX_RETURN_IF_ERROR(RefuseImmutable(inode));
  if ((inode.d.attr_flags & kAttrAppend) && off < inode.d.size) {
    return Status::Error(EPERM, "append-only file: write below the end");
  }
  return Status::Ok();
}

Result<size_t> Filesystem::WriteLocked(Inode* inode, uint64_t off, const char* buf, size_t n,
                                       PrivDrop* drop) {
  const uint64_t au = sb_.au_size;
  const uint64_t end = off + n;
  const uint64_t first_au = off / au, last_au = (end - 1) / au;
  const uint64_t old_size = inode->d.size;
  const bool sync = options_.sync || (inode->d.attr_flags & kAttrSync);  // chattr +S
  // A device lost while this write runs may drop its bytes there: EIO then (below).
  const uint64_t epoch = region_->loss_epoch();
  // Bad media under the range: moved away first when the write covers it (G4).
  if (region_->AnyKnownBad()) UDAX_RETURN_IF_ERROR(media_.RelocateBadAus(inode, off, n));

  // How many AUs of the range are holes? (extent map changes only under rw exclusive.)
  uint64_t hole_aus = 0;
  for (uint64_t a = first_au; a <= last_au;) {
    uint64_t run;
    if (MapAu(*inode, a, last_au - a + 1, &run) == 0) hole_aus += run;
    a += run;
  }
  const bool has_hole = hole_aus > 0;
  // Read views know the holes (zeros) and the size: they go before either changes, with
  // rw held so that no new view sees the file half-changed.
  if (has_hole || end > old_size) UDAX_RETURN_IF_ERROR(RevokeViews(inode));
  if (!has_hole && end <= old_size) {
    // Overwrite in place: no metadata but the times, which persist lazily (at fsync,
    // release or unmount), as DAX filesystems do. A privilege drop has no transaction of
    // the data to ride in, so it commits before the first byte is stored
    // (file_remove_privs runs before the copy, too).
    if (drop != nullptr) {
      MetaLock lock(this);  // chmod changes the mode under mu_ alone
      if (PrivDropPending(*inode, drop)) {
        UDAX_RETURN_IF_ERROR(CheckWritable());
        UDAX_RETURN_IF_ERROR(StagePrivDrop(inode, drop));
        UDAX_RETURN_IF_ERROR(Commit());
      }
    }
    {
      // Read views copy without the file's lock: they retry a copy that overlapped this.
      ViewWriteScope in_place(inode->view_page.get());
      for (size_t done = 0; done < n;) {
        const uint64_t pos = off + done;
        uint64_t run;
        const uint64_t phys = MapAu(*inode, pos / au, (n - done + pos % au + au - 1) / au, &run);
        const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n - done, run * au - pos % au));
        UDAX_RETURN_IF_ERROR(region_->RequireLive(phys * au + pos % au, chunk));
        UDAX_RETURN_IF_ERROR(region_->WriteSafe(phys * au + pos % au, buf + done, chunk, sync));
        done += chunk;
      }
      // Inside the scope: non-temporal stores are ordered before the even count by this
      // fence, not by the count's own atomic add.
      if (!sync) region_->Drain();
    }
    if (region_->loss_epoch() != epoch) return LostDuringWrite();
    MetaLock lock(this);
    NowInto(&inode->d.mtime_sec, &inode->d.mtime_nsec);
    inode->d.ctime_sec = inode->d.mtime_sec;
    inode->d.ctime_nsec = inode->d.mtime_nsec;
    inode->dirty = true;
    return n;
  }

  // Allocating or extending write, in three steps, so that the data copy (the long part)
  // holds no lock that metadata or other writers need:
  //   1. under the space lock alone (space.h): reserve AUs for the holes, in DRAM only
  //      (nothing on media points at them, so a crash leaves them free);
  //   2. with only inode->rw (exclusive, the caller's): zero and fill the reserved AUs,
  //      write the mapped parts, make it all durable;
  //   3. under mu_: map the AUs, the size and the times, in one transaction.
  // Until 3 commits nobody sees the new AUs: readers and bmap wait on inode->rw, and the
  // reverse map and checks see reserved AUs as neither allocated nor free.
  std::vector<HoleFill> fills;
  std::vector<Run> slot_blocks;  // the extent blocks the new extents may need
  uint64_t fits_end = end;
  UDAX_RETURN_IF_ERROR(CheckWritable());
  // Room for the holes and the extent blocks they may need, checked before any change.
  // Another writer may take the room between the check and the reservation: then this
  // write comes out short (or ENOSPC), as it would have a moment later.
  if (hole_aus + MetaAusFor(ExtentBlocksNeeded(*inode, hole_aus)) > space_.free_aus()) {
    fits_end = WritableEnd(*inode, off, end, hole_aus);
  } else {
    auto reserved = ReserveHoles(*inode, first_au, last_au);
    if (reserved.ok()) {
      fills = std::move(*reserved);
      // The extent blocks too, before a byte is stored: the write may fail for want of
      // them only while it has changed nothing (the bytes it stores over mapped AUs are
      // in the file at once).
      auto blocks = space_.ReserveCopied(ExtentBlocksNeeded(*inode, fills.size()), 0, inode->ino);
      if (blocks.ok()) {
        slot_blocks = std::move(*blocks);
      } else {
        // No room for the extent blocks (with copies: no free pair): the write stops
        // after its first new run, which needs the fewest; with one run, ENOSPC.
        const uint64_t first_run_end = (fills[0].file_au + fills[0].phys.len) * au;
        for (const HoleFill& f : fills) space_.UnreserveAus({f.phys});
        if (blocks.status().code() != ENOSPC) return blocks.status();
        fits_end = fills.size() > 1 ? std::min(end, first_run_end) : off;
        fills.clear();
      }
    } else if (reserved.status().code() == ENOSPC) {
      fits_end = WritableEnd(*inode, off, end, hole_aus);
    } else {
      return reserved.status();
    }
  }
  if (fits_end <= off) return Status::NoSpace("no space");
  // Shorter each time, so this ends.
  if (fits_end < end) return WriteLocked(inode, off, buf, fits_end - off, drop);
  Status st = FillAndPersist(inode, off, buf, n, fills);
  MetaLock lock(this);
  // The extent blocks reserved in step 1 become this critical section's hold.
  for (const Run& r : slot_blocks) {
    held_.push_back(r);
    held_count_ += r.len;
  }
  if (st.ok()) st = CheckWritable();
  // AUs reserved before a loss may lie on the lost device: their bytes were dropped.
  if (st.ok() && region_->loss_epoch() != epoch) st = LostDuringWrite();
  if (!st.ok()) {
    for (const HoleFill& f : fills) space_.UnreserveAus({f.phys});
    return st;
  }
  for (size_t i = 0; i < fills.size(); ++i) {
    const HoleFill& f = fills[i];
    StageAllocAus(f.phys, DataOwner(*inode, f.file_au));
    inode->d.au_blocks += f.phys.len;
    st = InsertExtent(inode, f.file_au, f.phys.start, f.phys.len);
    if (!st.ok()) {
      for (size_t j = i + 1; j < fills.size(); ++j) space_.UnreserveAus({fills[j].phys});
      return st;
    }
  }
  if (end > inode->d.size) inode->d.size = end;
  NowInto(&inode->d.mtime_sec, &inode->d.mtime_nsec);
  inode->d.ctime_sec = inode->d.mtime_sec;
  inode->d.ctime_nsec = inode->d.mtime_nsec;
  UDAX_RETURN_IF_ERROR(StagePrivDrop(inode, drop));  // the same transaction as the data
  StageInode(inode);
  UDAX_RETURN_IF_ERROR(Commit());
  return n;
}

// Out of space for all of it: write what fits (a short write), as POSIX asks; ENOSPC only
// when not one byte fits. The margin covers extent blocks the new extents may need (at
// worst one extent per AU, if free space is that fragmented).
uint64_t Filesystem::WritableEnd(const Inode& inode, uint64_t off, uint64_t end,
                                 uint64_t hole_aus) {
  const uint64_t au = sb_.au_size;
  const uint64_t first_au = off / au, last_au = (end - 1) / au;
  const uint64_t free = space_.free_aus();
  const uint64_t margin = MetaAusFor(ExtentBlocksNeeded(inode, std::min(hole_aus, free)));
  uint64_t budget = free > margin ? free - margin : 0;
  uint64_t fits_end = off;
  for (uint64_t a = first_au; a <= last_au;) {
    uint64_t run;
    const bool hole = MapAu(inode, a, last_au - a + 1, &run) == 0;
    if (hole && run > budget) return std::max(off, std::min(end, (a + budget) * au));
    if (hole) budget -= run;
    a += run;
    fits_end = std::min(end, a * au);
  }
  return fits_end;
}

Result<std::vector<Filesystem::HoleFill>> Filesystem::ReserveHoles(const Inode& inode,
                                                                  uint64_t first_au,
                                                                  uint64_t last_au) {
  std::vector<HoleFill> fills;
  uint64_t prev_phys_end = 0;  // where the AU before the next hole lives, + 1
  for (uint64_t a = first_au; a <= last_au;) {
    uint64_t run;
    const uint64_t phys = MapAu(inode, a, last_au - a + 1, &run);
    if (phys != 0) {
      prev_phys_end = phys + run;
      a += run;
      continue;
    }
    // Stay contiguous with what precedes the hole, in the file or in this write.
    uint64_t goal = prev_phys_end;
    if (goal == 0 && a > 0) {
      uint64_t prev_run;
      const uint64_t prev = MapAu(inode, a - 1, 1, &prev_run);
      if (prev != 0) goal = prev + 1;
    }
    if (goal == 0) goal = FirstDataGoal(inode, a, run);
    auto runs = space_.ReserveAus(run, goal, inode.ino);
    if (!runs.ok()) {
      for (const HoleFill& f : fills) space_.UnreserveAus({f.phys});
      return runs.status();
    }
    uint64_t file_au = a;
    for (const Run& r : *runs) {
      fills.push_back(HoleFill{file_au, r});
      file_au += r.len;
      prev_phys_end = r.end();
    }
    a += run;
  }
  return fills;
}

Status Filesystem::FillAndPersist(Inode* inode, uint64_t off, const char* buf, size_t n,
                                  const std::vector<HoleFill>& fills) {
  const uint64_t au = sb_.au_size;
  const uint64_t end = off + n;
  // Stale bytes past the old EOF inside its last AU must read as zeros once the size grows.
  UDAX_RETURN_IF_ERROR(ZeroPastEof(inode, off));
  // Where file AU `a` lives: a reserved run of this write, else the extent map; `*run` AUs
  // from there on are contiguous.
  auto locate = [&](uint64_t a, uint64_t max, uint64_t* run) -> uint64_t {
    for (const HoleFill& f : fills) {
      if (a >= f.file_au && a < f.file_au + f.phys.len) {
        *run = std::min(max, f.file_au + f.phys.len - a);
        return f.phys.start + (a - f.file_au);
      }
    }
    return MapAu(*inode, a, max, run);
  };
  // The parts of new AUs this write does not cover read as zeros.
  for (const HoleFill& f : fills) {
    const uint64_t s = f.file_au * au, e = (f.file_au + f.phys.len) * au;
    const uint64_t base = f.phys.start * au;
    region_->Prefault(base, f.phys.len * au);  // all of it is written below
    if (s < off) UDAX_RETURN_IF_ERROR(region_->ZeroSafe(base, std::min(off, e) - s, false));
    if (e > end) {
      const uint64_t zs = std::max(end, s);
      UDAX_RETURN_IF_ERROR(region_->ZeroSafe(base + (zs - s), e - zs, false));
    }
  }
  // The data, persisted before the transaction that makes it part of the file.
  for (size_t done = 0; done < n;) {
    const uint64_t pos = off + done;
    uint64_t run;
    const uint64_t phys = locate(pos / au, (n - done + pos % au + au - 1) / au, &run);
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n - done, run * au - pos % au));
    UDAX_RETURN_IF_ERROR(region_->RequireLive(phys * au + pos % au, chunk));
    UDAX_RETURN_IF_ERROR(region_->WriteSafe(phys * au + pos % au, buf + done, chunk, false));
    done += chunk;
  }
  const uint64_t first_au = off / au, last_au = (end - 1) / au;
  for (uint64_t a = first_au; a <= last_au;) {
    uint64_t run;
    const uint64_t phys = locate(a, last_au - a + 1, &run);
    UDAX_RETURN_IF_ERROR(region_->Flush(phys * au, run * au));
    a += run;
  }
  region_->Drain();
  return Status::Ok();
}

Status Filesystem::LostDuringWrite() {
  return Status::IoError("a device was lost while the write ran: part of it may not be stored");
}

Status Filesystem::ZeroPastEof(Inode* inode, uint64_t new_size) {
  const uint64_t au = sb_.au_size, size = inode->d.size;
  if (new_size <= size) return Status::Ok();
  // Whole AUs past EOF may hold what a crash or a dead writable view left there
  // (fs_view_reserve.cc): zero every allocated byte of the gap, unless known clean --
  // or there is none past the AU holding EOF.
  if (!inode->past_eof_clean) {
    if (FileDataEnd(*inode) > (size + au - 1) / au * au) return ZeroMapped(*inode, size, new_size);
    inode->past_eof_clean = true;
  }
  if (size % au == 0) return Status::Ok();
  uint64_t run;
  const uint64_t phys = MapAu(*inode, size / au, 1, &run);
  if (phys == 0) return Status::Ok();
  const uint64_t zero_end = std::min<uint64_t>(new_size, (size / au + 1) * au);
  return region_->ZeroSafe(phys * au + size % au, zero_end - size, true);
}

Result<struct stat> Filesystem::SetAttr(uint64_t ino, const SetAttrIn& in) {
  Inode* inode;
  {
    MetaLock lock(this);
    UDAX_RETURN_IF_ERROR(CheckWritable());
    UDAX_ASSIGN_OR_RETURN(inode, Get(ino));
    inode->nopen++;  // pin it while we drop mu_ to take rw first (lock order)
  }
  struct Unpin {
    Filesystem* fs;
    Inode* i;
    ~Unpin() {
      MetaLock lock(fs);
      i->nopen--;
    }
  } unpin{this, inode};
  // A privilege drop may remove the capability attribute, which changes the extent map:
  // that needs the rw lock as a truncate does.
  // A mode that makes the file set-user/group-ID ends writable views (PrepareReadView
  // refuses them on such a file): their stores could not drop the bits.
  // (Decided under rw: a writable view granted after a check without it would survive.)
  const bool end_writers = in.mode && (in.attr.st_mode & (S_ISUID | S_ISGID));
  if (!in.size && in.drop == nullptr && !end_writers) return SetAttrPinned(inode, in);
  WriterLock rw(&inode->rw);
  if (end_writers && inode->view_writers.load() > 0) UDAX_RETURN_IF_ERROR(RevokeViews(inode));
  // Direct maps past the new end go before mu_ is taken: a slow client stalls this file
  // only. Nothing past the old end is mapped, so growing revokes nothing.
  const uint64_t au = sb_.au_size, new_size = static_cast<uint64_t>(in.attr.st_size);
  if (in.size && new_size <= MaxFileSize()) {
    UDAX_RETURN_IF_ERROR(Revoke(inode, (new_size + au - 1) / au * au, UINT64_MAX));
  }
  return SetAttrPinned(inode, in);
}

// SetAttr with the inode pinned, and with its rw lock held exclusive for a truncate.
Result<struct stat> Filesystem::SetAttrPinned(Inode* inode, const SetAttrIn& in) {
  MetaLock lock(this);
  DiskInode& d = inode->d;
  // notify_change() and setattr_prepare(): nothing changes on an immutable inode; an
  // append-only one keeps its size, mode, owner and explicit times (touch-now is allowed).
  UDAX_RETURN_IF_ERROR(RefuseImmutable(*inode));
  if (in.size || in.mode || in.uid || in.gid || (in.atime && !in.atime_now) ||
      (in.mtime && !in.mtime_now)) {
    UDAX_RETURN_IF_ERROR(RefuseImmutableOrAppend(*inode));
  }
  if (in.mode) UDAX_RETURN_IF_ERROR(LoadXattrs(inode));  // before any change: see ChmodAcl
  if (in.size) {
    if (S_ISDIR(d.mode)) return Status::Error(EISDIR, "truncate of a directory");
    if (!S_ISREG(d.mode)) return Status::InvalidArgument("truncate of a special file");
    const uint64_t new_size = static_cast<uint64_t>(in.attr.st_size);
    if (new_size > MaxFileSize()) return Status::Error(EFBIG, "file too large");
    UDAX_RETURN_IF_ERROR(LoadExtents(inode));
    UDAX_RETURN_IF_ERROR(ZeroPastEof(inode, new_size));
    // In the change's first transaction: a shrinking truncate commits in steps.
    UDAX_RETURN_IF_ERROR(StagePrivDrop(inode, in.drop));
    const uint64_t old_size = d.size;
    d.size = new_size;
    if (new_size < old_size) {
      inode->past_eof_clean = false;  // the tail of the last AU keeps its old bytes
      StageInode(inode);  // the size first: every later chunk frees blocks past EOF
      UDAX_RETURN_IF_ERROR(TruncateBlocks(inode, new_size));
    }
    NowInto(&d.mtime_sec, &d.mtime_nsec);
  }
  // A chown's drop (notify_change never sends it with an explicit mode).
  UDAX_RETURN_IF_ERROR(StagePrivDrop(inode, in.drop));
  if (in.mode) {
    d.mode = (d.mode & S_IFMT) | (in.attr.st_mode & 07777);
    UDAX_RETURN_IF_ERROR(ChmodAcl(inode));  // an access ACL follows the new mode
  }
  if (in.uid) d.uid = in.attr.st_uid;
  if (in.gid) d.gid = in.attr.st_gid;
  if (in.atime_now) {
    NowInto(&d.atime_sec, &d.atime_nsec);
  } else if (in.atime) {
    d.atime_sec = in.attr.st_atim.tv_sec;
    d.atime_nsec = static_cast<uint32_t>(in.attr.st_atim.tv_nsec);
  }
  if (in.mtime_now) {
    NowInto(&d.mtime_sec, &d.mtime_nsec);
  } else if (in.mtime) {
    d.mtime_sec = in.attr.st_mtim.tv_sec;
    d.mtime_nsec = static_cast<uint32_t>(in.attr.st_mtim.tv_nsec);
  }
  if (in.ctime) {
    d.ctime_sec = in.attr.st_ctim.tv_sec;
    d.ctime_nsec = static_cast<uint32_t>(in.attr.st_ctim.tv_nsec);
  } else {
    NowInto(&d.ctime_sec, &d.ctime_nsec);
  }
  StageInode(inode);
  UDAX_RETURN_IF_ERROR(Commit());
  struct stat st;
  FillStat(*inode, &st);
  return st;
}

Status Filesystem::Fsync(Inode* inode, bool datasync) {
  (void)datasync;  // the times are tiny: one transaction either way
  if (shutdown_) return Status::IoError("filesystem is shut down");
  if (inode->view_writers.load() > 0) {
    WriterLock rw(&inode->rw);
    FoldViewSize(inode);  // the size writable views' appends reached is made durable below
  }
  {
    ReaderLock rw(&inode->rw);
    // Stores the daemon never saw: writable views (the shim's write(2)) and writable
    // direct maps (libudax) store straight into the file's extents, through cached lines
    // on devdax and fsdax. POSIX asks fsync to make every write of the file durable,
    // whoever made it and through whichever descriptor: so the daemon flushes the
    // extents itself (a cache-line flush reaches the line from any mapping of it).
    // Cleared first and set again if writers remain: a grant racing this sets it after
    // its count, so it is never lost.
    // (A writer that stores after the sweep and ends sets it again at its end.)
    const bool direct_stores = inode->direct_stores_unflushed.exchange(false);
    if (region_->kind() == RegionKind::kEmulated || direct_stores) {
      // Page-granular region (msync), or direct stores to flush: every extent of the file
      // that can be -- bytes on a lost device cannot be made durable, which is said (EIO)
      // once the others are (Persist skips them).
      Status lost = Status::Ok(), failed = Status::Ok();
      // Up to the size: space reserved past EOF holds nothing of the file's (yet).
      const uint64_t end_au = (inode->d.size + sb_.au_size - 1) / sb_.au_size;
      for (const auto& [k, e] : inode->extents.by_file) {
        if (k >= end_au) break;
        const uint64_t len = std::min<uint64_t>(e.len, end_au - k) * sb_.au_size;
        Status live = region_->RequireLive(e.phys_au * sb_.au_size, len);
        if (!live.ok()) {
          if (lost.ok()) lost = live;
          continue;
        }
        failed = region_->Persist(e.phys_au * sb_.au_size, len);
        if (!failed.ok()) break;
      }
      if (direct_stores && (!failed.ok() || inode->view_writers.load() > 0 ||
                            inode->map_writers.load() > 0)) {
        inode->direct_stores_unflushed.store(true);
      }
      UDAX_RETURN_IF_ERROR(failed);
      UDAX_RETURN_IF_ERROR(lost);
    }
    region_->Drain();  // the daemon's own data went in with non-temporal stores
  }
  MetaLock lock(this);
  StampViewWrites(inode);  // the writable views' stores are on media now: their mtime too
  if (inode->dirty && !options_.read_only) {
    StageInode(inode);
    return Commit();
  }
  return Status::Ok();
}

Result<std::vector<BmapExtent>> Filesystem::PrepareDirectMap(Inode* inode, uint64_t off,
                                                              uint64_t len, bool allocate) {
  const uint64_t au = sb_.au_size;
  {
    ReaderLock rw(&inode->rw);
    const uint64_t limit = (ViewSize(*inode) + au - 1) / au * au;
    if (!S_ISREG(inode->d.mode)) return Status::InvalidArgument("not a regular file");
    if (len == 0 || off >= limit || len > limit - off) {
      return Status::InvalidArgument("direct map range outside the file (extend it first)");
    }
  }
  // Holes become zeroed blocks: a map points at real media or at nothing. A range without
  // holes needs no change, so a read-only mount can map every fully written file.
  bool has_hole = false;
  {
    ReaderLock rw(&inode->rw);
    MetaLock lock(this);
    for (uint64_t a = off / au; a * au < off + len && !has_hole;) {
      uint64_t run;
      has_hole = MapAu(*inode, a, (off + len - a * au + au - 1) / au, &run) == 0;
      a += run;
    }
  }
  if (has_hole && !allocate) {
    // A read-only map changes nothing: filling the holes would allocate space and change
    // the file's times for a caller who may only read it.
    return Status::Error(ENODATA, "the range has holes, which a read-only direct map does not "
                                  "fill: map it writable or use an ordinary mmap");
  }
  if (has_hole) {
    Status st = Fallocate(inode, FALLOC_FL_KEEP_SIZE, off, len);
    if (st.code() == EROFS) {
      return Status::Error(EROFS, "the range has holes, which a direct map cannot fill on a "
                                  "read-only filesystem: use an ordinary mmap");
    }
    UDAX_RETURN_IF_ERROR(st);
  }
  ReaderLock rw(&inode->rw);
  MetaLock lock(this);
  std::vector<BmapExtent> out;
  for (uint64_t a = off / au; a * au < off + len;) {
    uint64_t run;
    const uint64_t phys = MapAu(*inode, a, (off + len - a * au + au - 1) / au, &run);
    if (phys == 0) return Status::IoError("direct map: a block went missing");
    // Lost with a replaced device: the media under it would read as good (zeros, or an
    // older copy's bytes), and only a read through the mount fails as it must.
    if (region_->DataLostIn(phys * au, run * au)) {
      return Status::IoError("direct map: bytes at file offset " + std::to_string(a * au) +
                             " were lost with a replaced device (they read EIO until rewritten)");
    }
    out.push_back({a * au, phys * au, run * au});
    a += run;
  }
  return out;
}

Result<Filesystem::ReadView> Filesystem::PrepareReadView(Inode* inode, size_t max_extents,
                                                         bool writable, uint64_t reserve,
                                                         ViewAsk ask) {
  if (shutdown_) return Status::IoError("filesystem is shut down");
  // A writable view changes view_writers, which FUSE reads test under rw shared.
  if (writable) {
    WriterLock rw(&inode->rw);
    const bool allocates = reserve > 0 || ask.fill_length > 0;
    if (allocates) {
      {
        MetaLock lock(this);  // views PrepareViewLocked refuses reserve or fill nothing
        UDAX_RETURN_IF_ERROR(RefuseViewWriter(*inode));
      }
      Status st = ask.fill_length > 0 ? FillForViews(inode, ask.fill_offset, ask.fill_length) : Status::Ok();
      if (st.ok() && reserve > 0) st = ReserveForViews(inode, reserve, ask.reserve_at);
      if (!st.ok()) {
        if (inode->view_writers.load() == 0) TrimViewReserve(inode);
        return st;
      }
    }
    Result<ReadView> view = PrepareViewLocked(inode, max_extents, true);
    // A reservation or fill no view came of is not left for good (nor its limit).
    if (!view.ok() && allocates && inode->view_writers.load() == 0) TrimViewReserve(inode);
    return view;
  }
  ReaderLock rw(&inode->rw);
  return PrepareViewLocked(inode, max_extents, false);
}

// PrepareReadView's work. REQUIRES inode->rw (exclusive when `writable`).
Result<Filesystem::ReadView> Filesystem::PrepareViewLocked(Inode* inode, size_t max_extents,
                                                           bool writable) {
  const uint64_t au = sb_.au_size;
  if (!S_ISREG(inode->d.mode)) return Status::InvalidArgument("not a regular file");
  MetaLock lock(this);
  if (writable) UDAX_RETURN_IF_ERROR(RefuseViewWriter(*inode));
  ReadView view;
  view.sync = options_.sync || (inode->d.attr_flags & kAttrSync);
  // A writable view reaches as far as the space reserved past EOF (fs_view_reserve.cc);
  // its stores there publish the size. A read view ends at the size.
  if (writable) FoldViewSizeLocked(inode);  // rw exclusive: the size is ours to change
  view.size = ViewSize(*inode);
  view.limit = writable ? std::max(view.size, inode->view_limit) : view.size;
  const uint64_t aus = (view.limit + au - 1) / au;
  for (const auto& [file_au, e] : inode->extents.by_file) {
    if (file_au >= aus) break;
    const uint64_t len = std::min<uint64_t>(e.len, aus - file_au);
    if (view.extents.size() == max_extents) {
      // Past EOF the view may stop short: it reaches less far.
      if (file_au * au >= view.size) {
        view.limit = std::max(view.size, file_au * au);
        break;
      }
      return Status::Error(E2BIG, "the file has more extents than a read view carries");
    }
    view.extents.push_back({file_au * au, e.phys_au * au, len * au});
    if (region_->AnyKnownBad() || region_->kind() == RegionKind::kEmulated) {
      for (const RegionRange& r : region_->EmulatedPoisonIn(e.phys_au * au, len * au)) {
        view.bad.push_back({file_au * au + (r.offset - e.phys_au * au), r.offset, r.length});
      }
    }
  }
  if (!inode->view_page) {
    auto page = ViewPage::Create();
    if (!page.ok()) return page.status();
    inode->view_page = std::move(*page);
  }
  view.gen = inode->view_page->gen();
  view.page_fd = inode->view_page->fd();
  view.write_page_fd = inode->view_page->write_fd();
  ++inode->view_holders;  // from here on the view counts: EndReadView, whatever follows
  if (writable) {
    inode->view_writers.fetch_add(1);
    inode->direct_stores_unflushed.store(true);  // after the count: see Fsync
  }
  return view;
}

Status Filesystem::RefuseViewWriter(const Inode& inode) {
  UDAX_RETURN_IF_ERROR(CheckWritable());
  UDAX_RETURN_IF_ERROR(RefuseImmutableOrAppend(inode));
  // A write by anyone but the owner drops these bits, in the write's transaction: the
  // FUSE path does that, stores in the holder's process cannot.
  const uint32_t mode = inode.d.mode;
  if ((mode & S_ISUID) || ((mode & S_ISGID) && (mode & S_IXGRP))) {
    return Status::Error(EPERM, "set-user/group-ID file: writes go through FUSE");
  }
  return Status::Ok();
}

void Filesystem::EndReadView(Inode* inode, bool writable) {
  WriterLock rw(&inode->rw);  // no write is inside a ViewWriteScope of the page
  bool last_writer = false;
  {
    MetaLock lock(this);
    if (inode->view_holders == 0) return;
    if (writable && inode->view_writers.load() > 0) {
      StampViewWrites(inode);  // its last stores, before the count that says so goes
      FoldViewSizeLocked(inode);  // and how far past EOF they went
      // They may have come after an fsync's sweep that saw this view alive: the next one
      // flushes again.
      inode->direct_stores_unflushed.store(true);
      last_writer = inode->view_writers.fetch_sub(1) == 1;
      // A holder that died inside a store may have left bytes past EOF it never announced.
      if (last_writer && inode->view_page && inode->view_page->CloseAbandonedStores()) {
        inode->past_eof_clean = false;
      }
    }
  }
  // The space reservations left past EOF, once no writable view may store there.
  if (last_writer) TrimViewReserve(inode);
  MetaLock lock(this);
  if (--inode->view_holders > 0) return;
  inode->view_page.reset();  // its destructor moves the generation one last time
}

void Filesystem::StampViewWrites(Inode* inode) {
  const bool counted = inode->view_page != nullptr && inode->view_page->TakeWrites();
  if (!counted && inode->map_writers.load() == 0) return;
  NowInto(&inode->d.mtime_sec, &inode->d.mtime_nsec);
  inode->d.ctime_sec = inode->d.mtime_sec;
  inode->d.ctime_nsec = inode->d.mtime_nsec;
  inode->dirty = true;
}

bool Filesystem::HasViewWriters(uint64_t ino) {
  MetaLock lock(this);
  auto it = inodes_.find(ino);
  return it != inodes_.end() && (it->second->view_writers.load() > 0 || it->second->map_writers.load() > 0);
}

void Filesystem::StartMapWriter(Inode* inode) {
  MetaLock lock(this);
  inode->map_writers.fetch_add(1);
  inode->direct_stores_unflushed.store(true);  // after the count: see Fsync
}

void Filesystem::EndMapWriter(Inode* inode) {
  MetaLock lock(this);
  if (inode->map_writers.load() == 0) return;
  StampViewWrites(inode);  // its last stores (the count still says there were some)
  inode->direct_stores_unflushed.store(true);  // for the next fsync (as EndReadView)
  inode->map_writers.fetch_sub(1);
}

}  // namespace udax
