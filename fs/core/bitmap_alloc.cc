// bitmap_alloc.cc -- next-fit bitmap allocation with reservations.
#include "fs/core/bitmap_alloc.h"

#include <bit>

namespace udax {

Status BitmapAllocator::Load(const Region& region, uint64_t off, uint64_t nbits, uint64_t lo,
                             uint64_t hi) {
  off_ = off;
  nbits_ = nbits;
  lo_ = lo;
  hi_ = hi;
  const uint64_t words = (nbits + 63) / 64;
  used_.assign(words, 0);
  reserved_.assign(words, 0);
  UDAX_RETURN_IF_ERROR(region.ReadSafe(off, used_.data(), words * 8));
  free_ = 0;
  for (uint64_t b = lo; b < hi; ++b) {
    if (b % 64 == 0 && b + 64 <= hi) {
      free_ += 64 - std::popcount(used_[b / 64]);
      b += 63;
      continue;
    }
    if (!Get(used_, b)) ++free_;
  }
  cursor_ = lo;
  return Status::Ok();
}

Result<std::vector<Run>> BitmapAllocator::Reserve(uint64_t count, uint64_t goal,
                                                  bool partial_ok, bool wrap) {
  if (count == 0) return std::vector<Run>{};
  if (free_ == 0 || (!partial_ok && free_ < count)) return Status::NoSpace("no free space");
  std::vector<Run> runs;
  uint64_t want = count;
  uint64_t b = (goal >= lo_ && goal < hi_) ? goal : cursor_;
  uint64_t scanned = 0;
  const uint64_t span = hi_ - lo_;
  while (want > 0 && scanned < span) {
    if (b >= hi_) {
      if (!wrap) break;
      b = lo_;
    }
    // Skip fully busy words quickly.
    if (b % 64 == 0 && b + 64 <= hi_ && (used_[b / 64] | reserved_[b / 64]) == ~0ull) {
      b += 64;
      scanned += 64;
      continue;
    }
    if (Busy(b)) {
      ++b;
      ++scanned;
      continue;
    }
    Run r{b, 0};
    while (b < hi_ && want > 0 && !Busy(b)) {
      Set(&reserved_, b, true);
      ++r.len;
      ++b;
      --want;
      ++scanned;
    }
    free_ -= r.len;
    runs.push_back(r);
  }
  cursor_ = b;
  if (want > 0 && !partial_ok) {
    Unreserve(runs);
    return Status::NoSpace("no free space");
  }
  return runs;
}

void BitmapAllocator::Unreserve(const std::vector<Run>& runs) {
  for (const Run& r : runs) {
    for (uint64_t b = r.start; b < r.end(); ++b) {
      if (Get(reserved_, b)) {
        Set(&reserved_, b, false);
        ++free_;
      }
    }
  }
}

void BitmapAllocator::StageAlloc(Txn* txn, const Run& run) {
  for (uint64_t b = run.start; b < run.end(); ++b) {
    if (Get(reserved_, b)) {
      Set(&reserved_, b, false);
    } else if (!Get(used_, b)) {
      --free_;  // allocated without a reservation (mkfs-time or repair paths)
    }
    Set(&used_, b, true);
  }
  StageWords(txn, run);
}

bool BitmapAllocator::ReserveExact(uint64_t bit) {
  if (bit < lo_ || bit >= hi_ || Busy(bit)) return false;
  Set(&reserved_, bit, true);
  --free_;
  return true;
}

void BitmapAllocator::StageFree(Txn* txn, const Run& run) {
  for (uint64_t b = run.start; b < run.end(); ++b) {
    if (Get(used_, b) && b >= lo_ && b < hi_) ++free_;
    Set(&used_, b, false);
  }
  StageWords(txn, run);
}

void BitmapAllocator::StageWords(Txn* txn, const Run& run) const {
  if (run.len == 0) return;
  const uint64_t w0 = run.start / 64, w1 = (run.end() - 1) / 64;
  txn->Write(off_ + w0 * 8, &used_[w0], (w1 - w0 + 1) * 8);
}

}  // namespace udax
