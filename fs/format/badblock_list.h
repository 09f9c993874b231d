// badblock_list.h -- bad 512-byte blocks of a region: the list, its text form, its file.
//
// One format serves two readers: the kernel's sysfs `badblocks` attributes
// (/sys/block/pmemN/badblocks, /sys/bus/nd/devices/regionN/badblocks) and the list file
// that `udaxctl inject-error` keeps for an emulated image. Both are lines "SECTOR COUNT":
// the first bad 512-byte sector and how many follow, decimal.
//
// The list file, version 1, lives in the state directory (fs/format/state_dir.h):
// /var/lib/udaxfs/uuid-HEX.badblocks, keyed by the image's superblock UUID. Images made
// before kept it beside the image (IMAGE.badblocks); it is migrated once, with checks
// (fs/format/legacy_state.h).
//   # udaxfs badblocks v1: SECTOR COUNT per line, 512-byte sectors from the region start
//   16 8
//   4096 1
//   * SECTOR and COUNT are decimal, COUNT >= 1, separated by blanks; SECTOR is relative to
//     the start of the region (the image file), as `ndctl inject-error -B` is to the start
//     of a namespace.
//   * Blank lines and lines starting with '#' are ignored; anything else is an error that
//     names the file and line (a list we cannot read must not silently mean "no poison").
//   * Readers accept ranges in any order, overlapping or not; writers always write them
//     sorted and merged. A missing file is an empty list, and a list that becomes empty
//     is removed.
//   * The file is trusted only as fs/base/safe_file.h says: opened O_NOFOLLOW|O_NONBLOCK,
//     a regular file owned by root (or our euid), not writable by group or others, at
//     most kMaxBadblockListBytes. Anything else is refused with a Status naming it.
//   * Writers replace the file atomically (a fresh O_EXCL temporary in the same
//     directory, fsync, rename, fsync the directory) while holding an flock on
//     KEY.badblocks.lock, so concurrent updaters never lose each other's changes and
//     readers never see half a file. The flock is taken with LOCK_NB and retried for a
//     bounded time (lock_wait), never waited on without end: the daemon clears poison
//     while it holds the filesystem mutex (a repaired metadata block), and a blocking
//     flock there would let whoever holds the lock freeze the mount. The lock lives in
//     the root-only state directory, so only root's own tools (holding it for one
//     read-modify-rename, milliseconds) can contend for it at all.
//
// Thread-safety: BadblockList is a value type (no internal locking); the file functions
// may be called concurrently from any threads and processes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "fs/base/status.h"

namespace udax {

constexpr uint64_t kBadblockSectorSize = 512;
// A list file larger than this is refused: a real one is a few lines.
constexpr size_t kMaxBadblockListBytes = 1u << 20;
// Sectors beyond this would overflow a byte offset (sector * 512 must fit in 64 bits).
constexpr uint64_t kMaxBadblockSector = UINT64_MAX / kBadblockSectorSize;

struct BadblockRange {
  uint64_t sector = 0;  // first bad 512-byte sector
  uint64_t count = 0;   // number of sectors, >= 1
  uint64_t end() const { return sector + count; }
  uint64_t byte_offset() const { return sector * kBadblockSectorSize; }
  uint64_t byte_length() const { return count * kBadblockSectorSize; }
  bool operator==(const BadblockRange&) const = default;
};

// A set of bad sectors, kept as sorted, disjoint, non-adjacent ranges.
class BadblockList {
 public:
  BadblockList() = default;

  // Parses "SECTOR COUNT" lines (see the file comment). `what` names the source in
  // errors ("IMAGE.badblocks", "/sys/block/pmem0/badblocks"). EINVAL with
  // "what:LINE: reason" on a malformed line, a zero count or a range past kMaxBadblockSector.
  static Result<BadblockList> Parse(std::string_view text, const std::string& what);
  // The file form: the header comment, then one sorted, merged range per line.
  std::string ToText() const;

  // REQUIRES: count >= 1 and sector + count <= kMaxBadblockSector (checked by callers
  // that take user input: ValidateRange).
  void Add(uint64_t sector, uint64_t count);
  // Removes the sectors [sector, sector+count) wherever they are bad (splitting ranges).
  void Remove(uint64_t sector, uint64_t count);
  // The sectors of this list that `other` does not have (what is new since `other`).
  BadblockList Minus(const BadblockList& other) const;
  // Does any bad sector lie in [sector, sector+count)?
  bool Overlaps(uint64_t sector, uint64_t count) const;

  const std::vector<BadblockRange>& ranges() const { return ranges_; }
  bool empty() const { return ranges_.empty(); }
  // Total bad sectors (ndctl's "badblock_count").
  uint64_t sector_count() const;
  bool operator==(const BadblockList&) const = default;

  // OK if [sector, sector+count) is a valid range: count >= 1, no overflow.
  static Status ValidateRange(uint64_t sector, uint64_t count);

 private:
  std::vector<BadblockRange> ranges_;
};

// How long UpdateBadblockListFile retries a busy lock: long enough for any other
// writer's read-modify-rename, short enough to hold up nothing.
constexpr std::chrono::milliseconds kBadblockLockWait{2000};

// Reads a list file (checked as the file comment says). A missing file is an empty
// list; a malformed one is EINVAL naming file and line; a refused one (symlink: ELOOP,
// FIFO: EINVAL, wrong owner or mode: EPERM, oversize: EFBIG) and other read errors
// carry their errno.
Result<BadblockList> ReadBadblockListFile(const std::string& path);

// Read-modify-write of a list file under its lock (path + ".lock"): reads the current
// list, calls edit(&list), and if edit returns OK, replaces the file atomically with the
// result (removing it when the list became empty). If edit fails, nothing is written
// and its Status is returned. *after, when non-null, receives the list as written.
// Errors: EPERM if the file's directory is a symlink, not ours or writable by others;
// EBUSY if the lock stayed taken for lock_wait; EINVAL if the current file is
// malformed; the refusals of ReadBadblockListFile; the errno of a failed open, write,
// fsync or rename (the old file is then left as it was).
Status UpdateBadblockListFile(const std::string& path,
                              const std::function<Status(BadblockList*)>& edit,
                              BadblockList* after = nullptr,
                              std::chrono::milliseconds lock_wait = kBadblockLockWait);

}  // namespace udax
