// repair.h -- fsck.udaxfs: open a possibly damaged udaxfs, check it, repair it.
//
// Opening for a check tolerates what a mount refuses (a damaged primary superblock or
// replica, a damaged journal transaction or journal state block) and reports it. The
// check is the cross-check of the maps, the namespace walk and the checksum scrub, merged.
// The repair runs in passes, each a series of journal transactions (so a crash during a
// repair leaves a filesystem that the next fsck --repair finishes):
//   1. superblock from its replica (or the replica from the primary), the journal replayed
//      or a damaged transaction discarded, the journal state block rewritten; on an image
//      with metadata copies, every bad copy rewritten from its good one;
//   2. the maps: inodes salvaged or cleared, damaged extent slots and blocks dropped, data
//      AUs a damaged inode lost restored from the reverse map where its records still name
//      the inode, offset and generation, doubly claimed AUs given to the owner the reverse
//      map names; then the AU bitmap, the inode bitmap and the reverse map rewritten from
//      the forward maps;
//   3. the namespace: damaged directories rebuilt from the entries that survive, entries
//      naming free inodes cleared, the orphan list processed, unreachable inodes moved to
//      /lost+found as #INO, '..' and link counts set.
// Then the filesystem is opened afresh and checked again: what that finds is left over.
//
// Thread-safety: none; the filesystem must not be mounted (the region lock sees to it).
// Owning it outright stands in for its metadata lock: each pass says so to the
// analysis with Filesystem::AssumeUnshared().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "fs/core/filesystem.h"

namespace udax {

// Progress of a long run: pass `pass` (1-based) of `passes`, `fraction` of it done.
using ProgressFn = std::function<void(int pass, int passes, double fraction)>;

struct FsckOptions {
  bool read_only = false;  // -n: write nothing at all (not even a journal replay)
  bool repair = false;     // --repair / -y / -p
  ProgressFn progress;     // may be empty
};

// e2fsck's exit codes.
inline constexpr int kFsckClean = 0;
inline constexpr int kFsckFixed = 1;
inline constexpr int kFsckUncorrected = 4;
inline constexpr int kFsckOperational = 8;

struct FsckOutcome {
  CheckReport found;               // problems before any repair
  std::vector<std::string> fixed;  // what the repair changed, one line each
  CheckReport remaining;           // problems a fresh check finds at the end
  std::vector<std::string> notes;  // not problems: journal replayed, orphans freed...
  bool repaired = false;           // a repair ran (so `remaining` is a second check)
  // A multi-device filesystem that lost devices: one line per lost device, with what it
  // costs (Filesystem::DegradedSummary). Not a problem a repair fixes, but the filesystem
  // is not whole: exit 4 when nothing worse is found.
  std::vector<std::string> degraded;
  int ExitCode() const;
};

class Repairer {
 public:
  // Checks (and with options.repair, repairs) the unmounted filesystem on `target`.
  // Errors are operational: the target cannot be opened, no superblock copy is valid,
  // a read failed. Problems in the filesystem are in the outcome, never errors.
  static Result<FsckOutcome> Run(const std::string& target, const FsckOptions& options);
  // The same on a region the caller opened (tests, fuzzers).
  static Result<FsckOutcome> RunOnRegion(std::unique_ptr<Region> region,
                                         const FsckOptions& options);
  // The merged check on a mounted (or opened) filesystem: CrossCheckMaps, CheckNamespace
  // and Scrub, each message once.
  static Result<CheckReport> CheckAll(Filesystem* fs);

 private:
  explicit Repairer(const FsckOptions& options) : options_(options) {}
  Result<FsckOutcome> RunOn(std::unique_ptr<Region> region);

  // --- opening (fs_repair.cc) ---
  // Opens the region as a Filesystem without the checks a mount makes, reporting (and
  // when `fix`, repairing) superblock, journal and journal-state damage into *found.
  Result<std::unique_ptr<Filesystem>> Open(std::unique_ptr<Region> region, bool fix,
                                           CheckReport* found);
  Result<DiskSuperblock> OpenSuperblock(Region* region, bool fix, CheckReport* found);
  Status OpenJournal(Filesystem* fs, bool fix, CheckReport* found);
  Result<CheckReport> CheckWithProgress(Filesystem* fs, int first_pass);
  void Progress(int pass, uint64_t done, uint64_t total);
  void Fixed(std::string what);
  // Commits when the transaction has grown to a quarter of the journal.
  Status CommitIfLarge();

  // --- pass 1b: metadata copies (fs_repair.cc) ---
  // Mends every bad copy from its good one (images with copies).
  Status RepairCopies();

  // --- pass 2: the maps (repair_maps.cc) ---
  struct InodeScan;
  // Whether the attribute blob of a scanned inode reads and decodes through its kept extents.
  bool XattrBlobReadable(const InodeScan& s);
  Status RepairMaps();
  Status ScanInodes(std::vector<InodeScan>* inodes);
  Status LoadSlots(InodeScan* s, std::vector<Owner>* owner);
  Status ClaimData(std::vector<InodeScan>* inodes, std::vector<Owner>* owner);
  Status RestoreFromRmap(std::vector<InodeScan>* inodes, std::vector<Owner>* owner,
                         const std::vector<uint64_t>& au_bits);
  Status RewriteExtentMap(InodeScan* s, std::vector<Owner>* owner,
                          const std::vector<uint64_t>& au_bits);
  Status WriteBitmaps(const std::vector<InodeScan>& inodes, const std::vector<Owner>& owner);
  Status WriteReverseMap(const std::vector<Owner>& owner);
  bool RmapSays(uint64_t au, const Owner& want) const;
  // With metadata copies: gives the partner of metadata AU `au` (owned by `o`) to o's
  // second copy, or says why it cannot; ReleasePartner undoes it.
  // False (the caller drops the metadata AU) when another owner keeps the partner.
  bool ClaimPartner(std::vector<Owner>* owner, uint64_t au, const Owner& o);
  void ReleasePartner(std::vector<Owner>* owner, uint64_t au, const Owner& o);

  // --- pass 3: the namespace (repair_names.cc) ---
  Status RepairNamespace();
  Status TakeOrphans(std::vector<bool>* orphan);
  Status EnsureRoot();
  Status ReadDirectory(Inode* dir);
  Status SalvageDirectory(Inode* dir, std::vector<DirListEntry>* entries);
  Status RebuildDirectory(Inode* dir, const std::vector<DirListEntry>& entries);
  Status CheckEntries(Inode* dir);
  Status Walk(uint64_t from, std::vector<bool>* reached);
  Result<Inode*> LostAndFound();
  Status LinkIntoLostAndFound(uint64_t ino);
  Status Rescue(uint64_t ino, std::vector<bool>* reached);
  Status FixLinkCounts(const std::vector<bool>& reached);

  FsckOptions options_;
  FsckOutcome out_;
  Filesystem* fs_ = nullptr;
  int passes_ = 3;
  bool journal_damaged_ = false;  // a committed transaction that cannot be replayed
  // Directory contents as pass 3 knows them (kept in step with every change it makes).
  std::unordered_map<uint64_t, std::vector<DirListEntry>> dirs_;
  std::vector<uint64_t> parent_;  // directory -> the directory that names it (pass 3)
  uint64_t lost_found_ = 0;
};

}  // namespace udax
