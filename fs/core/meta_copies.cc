// meta_copies.cc -- reading metadata that has two copies, and mending the bad one.
//
// On an image with copies (kFeatureIncompatMetaCopies) the inode table and every AU of a
// directory, extent block, attribute blob or symlink target has a second copy that every
// transaction changes with the first (journal.h). A read takes the first copy through the
// machine-check-safe path; when that copy does not read (poison) or its checksum fails,
// the read takes the second copy instead and, on a writable filesystem, writes the good
// bytes over the bad copy at once and clears its poison. A poisoned read is also told to
// the fault listener as any other, so the media handler logs the repair as an event.
#include <algorithm>
#include <cstring>

#include "fs/core/filesystem.h"

namespace udax {

Status Filesystem::ReadMeta(uint64_t off, void* dst, size_t n, const MetaCheck& valid) {
  Status first = txn_.Read(*region_, off, dst, n);
  if (first.ok() && valid) first = valid(dst);
  if (first.ok()) return first;
  if (!InCopiedArea(sb_, off, n) || !IsPairedCopy(off)) return first;
  const uint64_t copy = CopyOffset(sb_, off);
  Status second = txn_.ReadFrom(*region_, copy, off, dst, n);
  if (second.ok() && valid) second = valid(dst);
  if (!second.ok()) {
    return Status::Error(first.code(), first.message() + "; its second copy: " + second.message());
  }
  if (!options_.read_only && mend_copies_ && !shutdown_) {
    // Best effort: a mend that fails leaves the bad copy for the media handler or fsck.
    // A first copy that read (only its checksum failed) gets exactly the record back,
    // not its neighbours: their own copies may be the bad ones.
    (void)MendCopy(copy, off, n, /*whole_blocks=*/first.code() == EIO);
  }
  copies_served_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

bool Filesystem::IsPairedCopy(uint64_t off) const {
  if (!HasMetaCopies(sb_)) return false;
  if ((off >= sb_.itable_off && off - sb_.itable_off < sb_.itable_len) ||
      (off >= sb_.itable2_off && off - sb_.itable2_off < sb_.itable2_len)) {
    return true;  // the inode tables are static: always each other's copy
  }
  // A data AU and its partner: both in use, the reverse map naming one owner, once as
  // the second copy. A damaged image could pair metadata with another file's data; a
  // copy is never read from, nor written over, such a partner.
  const uint64_t au = off / sb_.au_size, partner = CopyAu(sb_, au);
  if (partner == 0 || !space_.AuAllocated(au) || !space_.AuAllocated(partner)) return false;
  auto mine = space_.ReadOwner(au);
  auto other = space_.ReadOwner(partner);
  return mine.ok() && other.ok() && mine->kind != OwnerKind::kQuarantined &&
         SameOwner(OtherCopy(*mine), *other);
}

Status Filesystem::MendCopy(uint64_t good, uint64_t bad, uint64_t n, bool whole_blocks) {
  if (options_.read_only) return Status::Error(EROFS, "read-only mount");
  if (!IsPairedCopy(bad)) return Status::Error(EOPNOTSUPP, "not a pair of copies");
  // Whole 512-byte blocks where poison is cleared (per block), inside the AU or table.
  const uint64_t au = sb_.au_size;
  uint64_t lo = whole_blocks ? bad / 512 * 512 : bad;
  uint64_t hi = whole_blocks ? (bad + n + 511) / 512 * 512 : bad + n;
  uint64_t area_lo = bad / au * au, area_hi = area_lo + au;
  for (auto [o, len] : {std::pair{sb_.itable_off, sb_.itable_len}, std::pair{sb_.itable2_off, sb_.itable2_len}}) {
    if (len != 0 && bad >= o && bad < o + len) {
      area_lo = o;
      area_hi = o + len;
    }
  }
  lo = std::max(lo, area_lo);
  hi = std::min(hi, area_hi);
  const uint64_t from = good - (bad - lo);
  std::vector<uint8_t> bytes(hi - lo);
  // The media bytes of the good copy (not the transaction's staged ones: those reach
  // both copies when it commits).
  UDAX_RETURN_IF_ERROR(region_->ReadSafe(from, bytes.data(), bytes.size()));
  UDAX_RETURN_IF_ERROR(region_->WriteSafe(lo, bytes.data(), bytes.size(), true));
  return whole_blocks ? region_->ClearRewrittenPoison(lo, bytes.size()) : Status::Ok();
}

void Filesystem::MarkSickLocked(uint64_t ino, std::string why) {
  sick_.emplace(ino, std::move(why));
  auto it = inodes_.find(ino);
  if (it != inodes_.end()) it->second->dirty = false;  // nothing more is written for it
}

std::vector<std::pair<uint64_t, std::string>> Filesystem::SickInodes() {
  MetaLock lock(this);
  return {sick_.begin(), sick_.end()};
}

Status Filesystem::WriteFreshMeta(uint64_t off, const void* data, size_t n) {
  UDAX_RETURN_IF_ERROR(region_->WriteSafe(off, data, n, true));
  if (!InCopiedArea(sb_, off, n)) return Status::Ok();
  return region_->WriteSafe(CopyOffset(sb_, off), data, n, true);
}

}  // namespace udax
