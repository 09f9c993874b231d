// bitmap_alloc.h -- the one allocator: a persistent bitmap mirrored in DRAM, with
// reservations, used for allocation units and for inode numbers.
//
// Allocation is two-phase so that data can be written to new AUs before any metadata
// points at them: Reserve() takes bits in DRAM only (nothing on media), then StageAlloc()
// records them in a transaction (setting the on-media bits when it commits). Unreserve()
// gives back what was reserved but not staged. StageFree() clears bits in a transaction.
// Every future change of ownership (the reverse map) hooks into StageAlloc/StageFree.
//
// Thread-safety: none; its owner's lock guards every call (Space: one per allocation
// group, and one for the inode bitmap).
#pragma once

#include <cstdint>
#include <vector>

#include "fs/core/journal.h"
#include "fs/base/status.h"
#include "fs/region/region.h"

namespace udax {

struct Run {
  uint64_t start = 0;
  uint64_t len = 0;
  uint64_t end() const { return start + len; }
};

class BitmapAllocator {
 public:
  // Loads nbits bits stored at byte offset `off` of the region. Bits [lo, hi) are the
  // allocatable ones; bits outside are treated as permanently used.
  Status Load(const Region& region, uint64_t off, uint64_t nbits, uint64_t lo, uint64_t hi);

  // Reserves up to `count` bits as runs, trying to start at `goal` and stay contiguous
  // (a goal outside the allocatable bits: from the next-fit cursor), wrapping around to
  // the first allocatable bit unless `wrap` is false; returns fewer bits than asked only
  // if `partial_ok`. ENOSPC if nothing (or not enough).
  Result<std::vector<Run>> Reserve(uint64_t count, uint64_t goal, bool partial_ok,
                                   bool wrap = true);
  void Unreserve(const std::vector<Run>& runs);
  // Reserves exactly `bit` (quarantine of a bad free AU); false if it is busy or outside
  // the allocatable bits.
  bool ReserveExact(uint64_t bit);
  // Moves reserved bits to allocated in `txn` (and in the DRAM mirror).
  void StageAlloc(Txn* txn, const Run& run);
  // Clears allocated bits in `txn` (and in the DRAM mirror).
  void StageFree(Txn* txn, const Run& run);

  // A bit past the map (a damaged image's inode or AU number) is not allocated.
  bool IsAllocated(uint64_t bit) const { return bit < nbits_ && bit / 64 < used_.size() && Get(used_, bit); }
  // The bitmap as it is on media between transactions (to rewrite bad media from).
  uint64_t media_offset() const { return off_; }
  uint64_t media_bytes() const { return used_.size() * 8; }
  const uint64_t* words() const { return used_.data(); }
  uint64_t free_count() const { return free_; }
  uint64_t usable_count() const { return hi_ - lo_; }
  uint64_t nbits() const { return nbits_; }

 private:
  static bool Get(const std::vector<uint64_t>& v, uint64_t b) { return v[b / 64] >> (b % 64) & 1; }
  static void Set(std::vector<uint64_t>* v, uint64_t b, bool on) {
    if (on) (*v)[b / 64] |= 1ull << (b % 64); else (*v)[b / 64] &= ~(1ull << (b % 64));
  }
  bool Busy(uint64_t b) const { return Get(used_, b) || Get(reserved_, b); }
  void StageWords(Txn* txn, const Run& run) const;

  uint64_t off_ = 0;
  uint64_t nbits_ = 0, lo_ = 0, hi_ = 0;
  std::vector<uint64_t> used_;      // mirror of the media bitmap (as committed + staged)
  std::vector<uint64_t> reserved_;  // reserved, not yet on media
  uint64_t free_ = 0;               // bits in [lo, hi) neither used nor reserved
  uint64_t cursor_ = 0;             // next-fit start when there is no goal
};

}  // namespace udax
