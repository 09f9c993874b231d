// space.cc -- the bitmaps, the reverse map and quarantine, under the space lock.
#include "fs/core/space.h"

#include "fs/base/byte_overlap.h"
#include "fs/format/layout.h"

namespace udax {

Status Space::Load(Region* region, const DiskSuperblock& sb) {
  MutexLock lock(&mu_);
  region_ = region;
  au_size_ = sb.au_size;
  rmap_ = ReverseMap(region, sb);
  UDAX_RETURN_IF_ERROR(
      aus_.Load(*region, sb.abitmap_off, sb.au_count, FirstDataAu(sb), LastDataAu(sb)));
  // Inode 0 is never used and 1 is the root's: numbers from 2 are handed out.
  return inos_.Load(*region, sb.ibitmap_off, sb.inode_count, 2, sb.inode_count);
}

Result<std::vector<Run>> Space::ReserveAus(uint64_t count, uint64_t goal, bool partial_ok) {
  MutexLock lock(&mu_);
  return aus_.Reserve(count, goal, partial_ok);
}

void Space::UnreserveAus(const std::vector<Run>& runs) {
  MutexLock lock(&mu_);
  aus_.Unreserve(runs);
}

void Space::StageAllocAus(Txn* txn, const Run& run, const Owner& owner) {
  {
    MutexLock lock(&mu_);
    aus_.StageAlloc(txn, run);
  }
  StageOwner(txn, run, owner);
}

void Space::StageFreeAus(Txn* txn, const Run& run) {
  if (!region_->HasKnownBad(run.start * au_size_, run.len * au_size_)) {
    MutexLock lock(&mu_);
    aus_.StageFree(txn, run);
    return;
  }
  // Bad AUs leave their owner but stay allocated, owned by `quarantined` (G4).
  uint64_t start = run.start;
  for (uint64_t a = run.start; a <= run.end(); ++a) {
    if (a < run.end() && !region_->HasKnownBad(a * au_size_, au_size_)) continue;
    if (a > start) {
      MutexLock lock(&mu_);
      aus_.StageFree(txn, Run{start, a - start});
    }
    if (a < run.end()) StageOwner(txn, Run{a, 1}, Owner{OwnerKind::kQuarantined, 0, 0, 0});
    start = a + 1;
  }
}

uint64_t Space::StageQuarantineFree(Txn* txn, const Run& run) {
  uint64_t taken = 0;
  for (uint64_t a = run.start; a < run.end(); ++a) {
    {
      MutexLock lock(&mu_);
      if (aus_.IsAllocated(a) || !aus_.ReserveExact(a)) continue;
    }
    StageAllocAus(txn, Run{a, 1}, Owner{OwnerKind::kQuarantined, 0, 0, 0});
    ++taken;
  }
  return taken;
}

void Space::StageOwner(Txn* txn, const Run& run, const Owner& owner) const {
  if (run.len == 0) return;
  const RmapRecords recs = rmap_.Records(run.start, run.len, owner);
  txn->Write(recs.offset, recs.records.data(), recs.bytes());
}

bool Space::AuAllocated(uint64_t au) const {
  MutexLock lock(&mu_);
  return aus_.IsAllocated(au);
}

uint64_t Space::free_aus() const {
  MutexLock lock(&mu_);
  return aus_.free_count();
}

Result<uint64_t> Space::ReserveIno(uint64_t goal) {
  MutexLock lock(&mu_);
  UDAX_ASSIGN_OR_RETURN(std::vector<Run> runs, inos_.Reserve(1, goal, false));
  return runs[0].start;
}

void Space::UnreserveIno(uint64_t ino) {
  MutexLock lock(&mu_);
  inos_.Unreserve({Run{ino, 1}});
}

void Space::StageAllocIno(Txn* txn, uint64_t ino) {
  MutexLock lock(&mu_);
  inos_.StageAlloc(txn, Run{ino, 1});
}

void Space::StageFreeIno(Txn* txn, uint64_t ino) {
  MutexLock lock(&mu_);
  inos_.StageFree(txn, Run{ino, 1});
}

bool Space::InoAllocated(uint64_t ino) const {
  MutexLock lock(&mu_);
  return inos_.IsAllocated(ino);
}

uint64_t Space::free_inos() const {
  MutexLock lock(&mu_);
  return inos_.free_count();
}

Result<std::vector<OwnerRange>> Space::Owners(uint64_t phys, uint64_t len) const {
  MutexLock lock(&mu_);
  // The query calls back with mu_ held, which the analysis cannot see in a lambda.
  const BitmapAllocator* aus = &aus_;
  return rmap_.Query(phys, len, [aus](uint64_t au) { return aus->IsAllocated(au); });
}

void Space::CopyBitmapBytes(OwnerKind which, uint64_t off, uint64_t n, uint8_t* dst) const {
  MutexLock lock(&mu_);
  const BitmapAllocator& bm = which == OwnerKind::kAuBitmap ? aus_ : inos_;
  CopyOverlap(bm.media_offset(), bm.words(), bm.media_bytes(), off, n, dst);
}

}  // namespace udax
