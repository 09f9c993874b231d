// space.h -- where things live: the allocation-unit and inode-number bitmaps, the
// reverse map, and quarantine of bad AUs. One concern of the filesystem, split out of
// Filesystem with a lock of its own (issue 18).
//
// Locking: Space::mu_ guards both bitmaps' DRAM mirrors and their reservations. It is a
// leaf lock: taken only inside Space's methods, which call nothing outside Space that
// locks, so it is always the last lock taken (Filesystem::mu_ names the order with
// ACQUIRED_BEFORE). An allocating write reserves its AUs here without the metadata lock;
// the metadata lock is needed only to stage into a transaction.
//
// Transactions: the Stage* methods write bitmap words and reverse-map records into a
// transaction the caller builds under its own lock (Filesystem::txn_, GUARDED_BY the
// metadata mutex), so the forward map, the bitmap and the reverse map commit together.
#pragma once

#include <cstdint>
#include <vector>

#include "fs/base/mutex.h"
#include "fs/base/status.h"
#include "fs/core/bitmap_alloc.h"
#include "fs/core/journal.h"
#include "fs/format/disk_format.h"
#include "fs/region/region.h"
#include "rmap/rmap.h"

namespace udax {

class Space {
 public:
  // Loads both bitmaps from the region and opens the reverse map (mount, fsck, repair).
  Status Load(Region* region, const DiskSuperblock& sb) EXCLUDES(mu_);

  // --- allocation units ---
  // Reserves `count` AUs in DRAM only (nothing on media points at them, so a crash leaves
  // them free), starting at `goal` when it can and staying contiguous; fewer only with
  // `partial_ok`. ENOSPC when there are not enough.
  Result<std::vector<Run>> ReserveAus(uint64_t count, uint64_t goal, bool partial_ok)
      EXCLUDES(mu_);
  void UnreserveAus(const std::vector<Run>& runs) EXCLUDES(mu_);
  // Allocates reserved AUs in `txn`: the bitmap and the reverse map together.
  void StageAllocAus(Txn* txn, const Run& run, const Owner& owner) EXCLUDES(mu_);
  // Frees AUs in `txn`, except the ones the region knows bad: those stay allocated and
  // become owned by `quarantined` (G4), so no allocation hands them out again.
  void StageFreeAus(Txn* txn, const Run& run) EXCLUDES(mu_);
  // Takes every free AU of [run) out of use for good, in `txn` (a media error on free
  // space); AUs in use or reserved by an allocation in progress are left alone. Returns
  // how many it took.
  uint64_t StageQuarantineFree(Txn* txn, const Run& run) EXCLUDES(mu_);
  // Stages the reverse-map records naming `owner` for `run` (no bitmap change).
  void StageOwner(Txn* txn, const Run& run, const Owner& owner) const;
  bool AuAllocated(uint64_t au) const EXCLUDES(mu_);
  uint64_t free_aus() const EXCLUDES(mu_);

  // --- inode numbers ---
  // Reserves one inode number, near `goal` when it can. ENOSPC when none is left.
  Result<uint64_t> ReserveIno(uint64_t goal) EXCLUDES(mu_);
  void UnreserveIno(uint64_t ino) EXCLUDES(mu_);
  // Marks `ino` in use in `txn` (reserved or not: repair re-marks the root this way).
  void StageAllocIno(Txn* txn, uint64_t ino) EXCLUDES(mu_);
  void StageFreeIno(Txn* txn, uint64_t ino) EXCLUDES(mu_);
  bool InoAllocated(uint64_t ino) const EXCLUDES(mu_);
  uint64_t free_inos() const EXCLUDES(mu_);

  // --- the reverse map ---
  // Every owner of the region bytes [phys, phys+len) (see ReverseMap::Query).
  Result<std::vector<OwnerRange>> Owners(uint64_t phys, uint64_t len) const EXCLUDES(mu_);
  // One AU's record, verified.
  Result<Owner> ReadOwner(uint64_t au) const { return rmap_.Read(au); }

  // The bytes of a bitmap (kAuBitmap or kInodeBitmap) as they are on media between
  // transactions, copied where they overlap region bytes [off, off+n) into dst (which
  // holds those n bytes): the source a media repair rewrites a bad block from.
  void CopyBitmapBytes(OwnerKind which, uint64_t off, uint64_t n, uint8_t* dst) const
      EXCLUDES(mu_);

  // Only for naming the lock in another class's lock order (ACQUIRED_BEFORE): nobody
  // outside Space takes it.
  Mutex* order_mutex() RETURN_CAPABILITY(mu_) { return &mu_; }

 private:
  Region* region_ = nullptr;  // set by Load, then constant
  uint64_t au_size_ = 0;
  ReverseMap rmap_;           // set by Load; stateless between calls
  mutable Mutex mu_;
  BitmapAllocator aus_ GUARDED_BY(mu_);
  BitmapAllocator inos_ GUARDED_BY(mu_);
};

}  // namespace udax
