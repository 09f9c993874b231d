// checker.h -- the check part of the core: walks that compare the maps with each other.
//
// A part of Filesystem (filesystem.h), as Space and Media are, with a lock of its own.
// The forward maps (every in-use inode's extents and extent blocks, plus the static areas
// of the layout) determine who must own each AU; the bitmap must say exactly those AUs
// are in use and the reverse map must name exactly those owners; the names must agree
// with the inodes; every record must pass its checksum. fsck.udaxfs (repair.h), `udaxctl
// scrub` on a live mount and the property tests run these walks. They visit every inode,
// so they are for checking, never for answering an owner query.
//
// Locking: mu_ below takes one walk at a time and guards the progress callback; a walk
// then holds the filesystem's metadata lock throughout, so it sees one consistent state.
// The order is written once, at Filesystem::mu_.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fs/base/mutex.h"
#include "fs/base/status.h"
#include "rmap/rmap.h"

namespace udax {

class Filesystem;
struct Inode;
struct DiskSuperblock;

// What a check found (fsck and the property tests read it).
struct CheckReport {
  uint64_t inodes = 0;           // inodes in use
  uint64_t allocated_aus = 0;    // AUs the bitmap says are in use
  uint64_t problems = 0;         // every disagreement found
  std::vector<std::string> messages;  // the first ones, for humans
  void Add(std::string msg);
};

// A walk's progress: inodes done, and the inode count.
using WalkProgress = std::function<void(uint64_t done, uint64_t total)>;

class Checker {
 public:
  explicit Checker(Filesystem* fs) : fs_(fs) {}
  Checker(const Checker&) = delete;
  Checker& operator=(const Checker&) = delete;

  // Rebuilds the owner of every AU from the forward maps (inodes, extents, extent blocks,
  // static areas) and compares it with the allocation bitmap and the reverse map.
  Result<CheckReport> CrossCheckMaps() EXCLUDES(mu_);
  // Rewrites every reverse-map record that disagrees with the forward maps (which must
  // themselves be consistent); returns how many were rewritten.
  Result<uint64_t> RebuildReverseMap() EXCLUDES(mu_);
  // Walks the directory tree from the root and checks names against inodes: entries
  // naming free inodes, wrong types, ".." links, link counts, unreachable inodes.
  Result<CheckReport> CheckNamespace() EXCLUDES(mu_);
  // Verifies the checksum of every metadata record in use (superblock and replica,
  // journal state, inodes, extent slots and blocks, directory buckets, reverse-map
  // records) without cross-checking them; reports each failure.
  Result<CheckReport> Scrub() EXCLUDES(mu_, record_mu_);

  // The last Scrub since mount, for `udaxctl health`: when it ended and what it found
  // (or why it could not run). Answered without waiting for a walk in progress.
  struct ScrubRecord {
    std::chrono::system_clock::time_point finished;
    uint64_t inodes = 0;
    uint64_t problems = 0;
    std::string error;  // the scrub could not run
  };
  std::optional<ScrubRecord> last_scrub() const EXCLUDES(record_mu_);

  // fsck's progress line: the walks call it now and then. Empty: no progress is told.
  void set_progress(WalkProgress progress) EXCLUDES(mu_);

  // The owners of AUs [first_au, first_au + count) (clipped to the filesystem) as the
  // forward maps and the layout say, with quarantine for AUs the bitmap holds and no map
  // claims: what the reverse-map records must say. For when the records cannot be read
  // (the reverse map is derived data). Walks every inode in use, so it is for a bad
  // block, not for every query. Corruption when the maps cannot say (an inode or extent
  // block that does not read). REQUIRES the filesystem's metadata lock (asserted inside,
  // as for DeriveOwners); takes no lock of this part, so the media part may call it.
  Result<std::vector<Owner>> ForwardOwners(uint64_t first_au, uint64_t count);

  // For the lock order (Filesystem::mu_ names it).
  Mutex* order_mutex() RETURN_CAPABILITY(mu_) { return &mu_; }

 private:
  // Who must own each AU of [lo, hi) according to the forward maps and the layout
  // (expected[a - lo]); what disagrees goes to *report. `progress` may be null. REQUIRES
  // the filesystem's metadata lock (said to the analysis inside: it cannot name that
  // lock here, where Filesystem is incomplete).
  Status DeriveOwners(uint64_t lo, uint64_t hi, std::vector<Owner>* expected,
                      CheckReport* report, const WalkProgress* progress);
  // Calls `progress` (may be null or empty) now and then: every 4096 inodes.
  static void Tell(const WalkProgress* progress, uint64_t ino, uint64_t total);
  // Runs one walk: this part's lock, then the filesystem's metadata lock, for the whole
  // of it. The walks REQUIRE both (each asserts the second: see DeriveOwners).
  template <typename R>
  R Walk(R (Checker::*walk)(Filesystem* fs, const DiskSuperblock& sb)) EXCLUDES(mu_);
  Result<CheckReport> CrossCheckMapsLocked(Filesystem* fs, const DiskSuperblock& sb) REQUIRES(mu_);
  Result<uint64_t> RebuildReverseMapLocked(Filesystem* fs, const DiskSuperblock& sb) REQUIRES(mu_);
  Result<CheckReport> CheckNamespaceLocked(Filesystem* fs, const DiskSuperblock& sb) REQUIRES(mu_);
  Result<CheckReport> ScrubLocked(Filesystem* fs, const DiskSuperblock& sb) REQUIRES(mu_);
  // --- metadata copies (check_copies.cc); REQUIRE the filesystem's metadata lock ---
  // Whether one copy's bytes pass the record's checks.
  using CopyCheck = std::function<bool(const uint8_t* bytes)>;
  // Reads both copies of metadata bytes [off, off+n) (first-copy offset); when they
  // differ, reports which copy is bad (does not read, or fails `valid`) and, where the
  // filesystem mends copies, rewrites it from the good one.
  void CompareCopies(Filesystem* fs, const std::string& what, uint64_t off, uint64_t n,
                     const CopyCheck& valid, CheckReport* report);
  // CompareCopies over every copied record of `inode` in use: its extent blocks and
  // slots, directory blocks, symlink target and attribute blob.
  void CheckCopiesOf(Filesystem* fs, const DiskSuperblock& sb, Inode* inode,
                     CheckReport* report);

  Filesystem* const fs_;
  Mutex mu_;
  WalkProgress progress_ GUARDED_BY(mu_);
  mutable Mutex record_mu_;  // a leaf
  std::optional<ScrubRecord> last_scrub_ GUARDED_BY(record_mu_);
};

}  // namespace udax
