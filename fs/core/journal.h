// journal.h -- metadata transactions: stage bytes in DRAM, commit them atomically to pmem.
//
// A Txn collects the new bytes of every metadata range an operation changes. Journal::Commit
// writes them as one redo transaction (records, then an 8-byte commit word, each persisted
// in that order), applies them in place and persists them. Replay at mount re-applies the
// last committed transaction, which is idempotent, so a crash anywhere leaves either the
// whole operation or none of it.
//
// Metadata with two copies (kFeatureIncompatMetaCopies): a transaction stages the first
// copy's bytes only; the journal logs them once and applies them to both copies, so the
// copies change together and a replay rewrites both.
//
// Thread-safety: Txn is single-threaded. Journal::Commit and Replay REQUIRE that the caller
// serializes them (the filesystem's metadata mutex).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "fs/format/disk_format.h"
#include "fs/base/status.h"
#include "fs/region/region.h"

namespace udax {

class Txn {
 public:
  // Stages [off, off+n) := data; later writes to the same bytes win.
  void Write(uint64_t off, const void* data, size_t n);
  template <typename T>
  void WriteObj(uint64_t off, const T& obj) {
    Write(off, &obj, sizeof(obj));
  }
  // Reads [off, off+n) as the transaction would leave it: media bytes overlaid with staged
  // ones. EIO if the media read fails.
  Status Read(const Region& region, uint64_t off, void* dst, size_t n) const;
  // The same with the media bytes taken from `media_off` (the other copy of metadata
  // that has two): staged bytes are staged for the first copy's offsets.
  Status ReadFrom(const Region& region, uint64_t media_off, uint64_t off, void* dst,
                  size_t n) const;

  bool empty() const { return staged_.empty(); }
  size_t nrec() const { return staged_.size(); }
  // Bytes the transaction takes in the journal slot (headers included).
  uint64_t log_bytes() const;
  const std::map<uint64_t, std::vector<uint8_t>>& staged() const { return staged_; }
  void Clear() { staged_.clear(); }

 private:
  std::map<uint64_t, std::vector<uint8_t>> staged_;  // offset -> bytes, disjoint, merged
};

// What the journal has written since it was opened (for write-amplification reports).
struct JournalStats {
  uint64_t commits = 0;
  uint64_t log_bytes = 0;      // written to the slot, headers included
  uint64_t applied_bytes = 0;  // written in place
};

// Where a test wants Commit to stop, as if power failed right there.
enum class CrashPoint { kNone, kAfterLog, kAfterCommitWord };

class Journal {
 public:
  Journal(Region* region, const DiskSuperblock& sb);

  // Re-applies the last committed transaction, if the slot holds a valid one. Returns
  // whether it did (for the mount log and tests).
  Result<bool> Replay();
  // Whether the slot holds a committed transaction whose records differ from the media
  // (a crash between commit and apply): what a read-only mount cannot fix.
  Result<bool> NeedsReplay();
  // Commits the transaction (no-op for an empty one). On error the media may hold the
  // transaction partly applied only if it was already committed (replay finishes it);
  // the caller must stop using its DRAM state (shut down).
  Status Commit(const Txn& txn, CrashPoint crash = CrashPoint::kNone);
  // Marks the slot as holding nothing to replay (clean unmount): tools may then change
  // the media without the next mount replaying older bytes over their changes.
  Status Retire();
  // Largest transaction (log_bytes) that fits in the slot.
  uint64_t capacity() const { return slot_len_; }
  uint64_t state_offset() const { return sb_.journal_off; }
  uint64_t seq() const { return seq_; }
  const JournalStats& stats() const { return stats_; }

 private:
  struct SlotRecord {
    uint64_t off;
    uint32_t len;
    const uint8_t* data;  // points into buf_
  };
  // The slot's records if it holds a committed, intact transaction; nullopt if not.
  // Corruption if a committed transaction names bytes outside the metadata areas.
  Result<std::optional<std::vector<SlotRecord>>> LoadCommitted();
  // Writes and flushes one record in place, and into the other copy of what has two.
  Status Apply(uint64_t off, const uint8_t* data, uint64_t len);
  // Calls fn(at, copy_off, n) for each piece of [off, off+len) that has a second copy.
  template <typename Fn>
  Status ForEachCopy(uint64_t off, uint64_t len, Fn fn) const;

  Region* region_;
  DiskSuperblock sb_;
  uint64_t slot_off_;
  uint64_t slot_len_;
  uint64_t seq_ = 0;  // last committed sequence number
  std::vector<uint8_t> buf_;
  JournalStats stats_;
};

}  // namespace udax
