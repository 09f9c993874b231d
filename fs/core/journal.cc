// journal.cc -- single-slot physical redo journal (see journal.h for the protocol).
#include "fs/core/journal.h"

#include <algorithm>
#include <cstring>

#include "fs/format/crc32c.h"
#include "fs/format/layout.h"

namespace udax {
namespace {

uint64_t Pad8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

uint32_t TxnCrc(const uint8_t* slot, uint64_t bytes) {
  DiskTxnHeader h;
  std::memcpy(&h, slot, sizeof(h));
  h.crc = 0;
  const size_t from = offsetof(DiskTxnHeader, magic);
  uint32_t crc = Crc32c(reinterpret_cast<const uint8_t*>(&h) + from, sizeof(h) - from);
  return Crc32c(slot + sizeof(h), bytes, crc);
}

}  // namespace

void Txn::Write(uint64_t off, const void* data, size_t n) {
  if (n == 0) return;
  uint64_t begin = off, end = off + n;
  // Merge every staged range that overlaps or touches [begin, end).
  auto it = staged_.upper_bound(off);
  if (it != staged_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.size() >= off) it = prev;
  }
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> merged;
  while (it != staged_.end() && it->first <= end) {
    begin = std::min(begin, it->first);
    end = std::max(end, it->first + it->second.size());
    merged.emplace_back(it->first, std::move(it->second));
    it = staged_.erase(it);
  }
  std::vector<uint8_t> bytes(end - begin);
  for (auto& [o, b] : merged) std::memcpy(bytes.data() + (o - begin), b.data(), b.size());
  std::memcpy(bytes.data() + (off - begin), data, n);
  staged_.emplace(begin, std::move(bytes));
}

Status Txn::Read(const Region& region, uint64_t off, void* dst, size_t n) const {
  return ReadFrom(region, off, off, dst, n);
}

Status Txn::ReadFrom(const Region& region, uint64_t media_off, uint64_t off, void* dst,
                     size_t n) const {
  UDAX_RETURN_IF_ERROR(region.ReadSafe(media_off, dst, n));
  const uint64_t end = off + n;
  auto it = staged_.upper_bound(off);
  if (it != staged_.begin()) --it;
  for (; it != staged_.end() && it->first < end; ++it) {
    const uint64_t s = std::max(off, it->first);
    const uint64_t e = std::min(end, it->first + it->second.size());
    if (s < e) {
      std::memcpy(static_cast<uint8_t*>(dst) + (s - off), it->second.data() + (s - it->first),
                  e - s);
    }
  }
  return Status::Ok();
}

uint64_t Txn::log_bytes() const {
  uint64_t n = sizeof(DiskTxnHeader);
  for (const auto& [off, b] : staged_) n += sizeof(DiskTxnRecord) + Pad8(b.size());
  return n;
}

Journal::Journal(Region* region, const DiskSuperblock& sb)
    : region_(region),
      sb_(sb),
      slot_off_(sb.journal_off + kBlockSize),
      slot_len_(sb.journal_len - kBlockSize) {}

Result<std::optional<std::vector<Journal::SlotRecord>>> Journal::LoadCommitted() {
  using Records = std::optional<std::vector<SlotRecord>>;
  DiskTxnHeader h;
  UDAX_RETURN_IF_ERROR(region_->ReadSafe(slot_off_, &h, sizeof(h)));
  seq_ = h.seq;
  if (h.magic != kTxnMagic || h.commit != h.seq || h.seq == 0) return Records();
  if (h.bytes > slot_len_ - sizeof(h)) return Records();
  buf_.resize(sizeof(h) + h.bytes);
  UDAX_RETURN_IF_ERROR(region_->ReadSafe(slot_off_, buf_.data(), buf_.size()));
  if (TxnCrc(buf_.data(), h.bytes) != h.crc) return Records();  // torn: never committed
  // A committed transaction must be entirely sane before any of it is applied.
  std::vector<SlotRecord> records;
  uint64_t pos = sizeof(h);
  for (uint32_t i = 0; i < h.nrec; ++i) {
    DiskTxnRecord r;
    if (pos + sizeof(r) > buf_.size()) return Status::Corruption("journal: record overrun");
    std::memcpy(&r, buf_.data() + pos, sizeof(r));
    pos += sizeof(r);
    // Transactions change the metadata areas and data AUs (directories, extent blocks):
    // never the superblock's AU or the replica's.
    const uint64_t end = (sb_.au_count - 1) * sb_.au_size;
    if (r.len > buf_.size() - pos || r.off + r.len > end || r.off + r.len < r.off ||
        r.off < sb_.journal_off) {
      return Status::Corruption("journal: record outside the metadata areas");
    }
    records.push_back({r.off, r.len, buf_.data() + pos});
    pos += Pad8(r.len);
  }
  return Records(std::move(records));
}

template <typename Fn>
Status Journal::ForEachCopy(uint64_t off, uint64_t len, Fn fn) const {
  if (!HasMetaCopies(sb_)) return Status::Ok();
  const uint64_t au = sb_.au_size;
  for (uint64_t at = off; at < off + len;) {
    const uint64_t n = std::min(off + len, (at / au + 1) * au) - at;  // to the AU's end
    const uint64_t copy = CopyOffset(sb_, at);
    if (copy != 0) UDAX_RETURN_IF_ERROR(fn(at, copy, n));
    at += n;
  }
  return Status::Ok();
}

Status Journal::Apply(uint64_t off, const uint8_t* data, uint64_t len) {
  UDAX_RETURN_IF_ERROR(region_->WriteSafe(off, data, len, false));
  UDAX_RETURN_IF_ERROR(region_->Flush(off, len));
  stats_.applied_bytes += len;
  // Metadata with a second copy (the inode table, paired data AUs): the same bytes go to
  // the other copy too, so both copies commit together, and a replay rewrites both.
  return ForEachCopy(off, len, [&](uint64_t at, uint64_t copy, uint64_t n) -> Status {
    UDAX_RETURN_IF_ERROR(region_->WriteSafe(copy, data + (at - off), n, false));
    UDAX_RETURN_IF_ERROR(region_->Flush(copy, n));
    stats_.applied_bytes += n;
    return Status::Ok();
  });
}

Result<bool> Journal::Replay() {
  UDAX_ASSIGN_OR_RETURN(auto records, LoadCommitted());
  if (!records) return false;
  for (const SlotRecord& r : *records) UDAX_RETURN_IF_ERROR(Apply(r.off, r.data, r.len));
  region_->Drain();
  return true;
}

Status Journal::Retire() {
  const uint64_t zero = 0;
  return region_->WriteSafe(slot_off_, &zero, sizeof(zero), true);
}

Result<bool> Journal::NeedsReplay() {
  UDAX_ASSIGN_OR_RETURN(auto records, LoadCommitted());
  if (!records) return false;
  std::vector<uint8_t> media;
  for (const SlotRecord& r : *records) {
    if (r.len == 0) continue;  // a damaged slot may carry empty records: nothing to compare
    media.resize(r.len);
    UDAX_RETURN_IF_ERROR(region_->ReadSafe(r.off, media.data(), r.len));
    if (std::memcmp(media.data(), r.data, r.len) != 0) return true;
    bool copy_differs = false;
    UDAX_RETURN_IF_ERROR(ForEachCopy(r.off, r.len, [&](uint64_t at, uint64_t copy, uint64_t n) {
      UDAX_RETURN_IF_ERROR(region_->ReadSafe(copy, media.data(), n));
      if (std::memcmp(media.data(), r.data + (at - r.off), n) != 0) copy_differs = true;
      return Status::Ok();
    }));
    if (copy_differs) return true;
  }
  return false;
}

Status Journal::Commit(const Txn& txn, CrashPoint crash) {
  if (txn.empty()) return Status::Ok();
  const uint64_t total = txn.log_bytes();
  if (total > slot_len_) {
    return Status::Error(EFBIG, "journal: transaction of " + std::to_string(total) +
                                    " bytes exceeds the slot of " + std::to_string(slot_len_));
  }
  buf_.assign(total, 0);
  DiskTxnHeader h{};
  h.commit = seq_;  // not equal to seq until the commit store below
  h.magic = kTxnMagic;
  h.seq = seq_ + 1;
  h.nrec = static_cast<uint32_t>(txn.nrec());
  h.bytes = total - sizeof(h);
  uint64_t pos = sizeof(h);
  for (const auto& [off, b] : txn.staged()) {
    DiskTxnRecord r{off, static_cast<uint32_t>(b.size()), 0};
    std::memcpy(buf_.data() + pos, &r, sizeof(r));
    pos += sizeof(r);
    std::memcpy(buf_.data() + pos, b.data(), b.size());
    pos += Pad8(b.size());
  }
  std::memcpy(buf_.data(), &h, sizeof(h));
  h.crc = TxnCrc(buf_.data(), h.bytes);
  std::memcpy(buf_.data(), &h, sizeof(h));
  // 1. the log, durable before the commit word can be.
  UDAX_RETURN_IF_ERROR(region_->WriteSafe(slot_off_, buf_.data(), total, true));
  if (crash == CrashPoint::kAfterLog) return Status::Ok();
  // 2. the commit word: from here on the transaction survives a crash.
  const uint64_t commit = h.seq;
  UDAX_RETURN_IF_ERROR(region_->WriteSafe(slot_off_, &commit, sizeof(commit), true));
  seq_ = h.seq;
  if (crash == CrashPoint::kAfterCommitWord) return Status::Ok();
  // 3. apply in place (both copies where there are two): flush each range, one drain.
  for (const auto& [off, b] : txn.staged()) UDAX_RETURN_IF_ERROR(Apply(off, b.data(), b.size()));
  region_->Drain();
  stats_.commits++;
  stats_.log_bytes += total;
  return Status::Ok();
}

}  // namespace udax
