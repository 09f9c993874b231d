// media.h -- the media part of the core: owners of bad media, and what is done to each.
//
// A part of Filesystem (filesystem.h), as Space is, with a lock of its own. Every media
// event's byte range comes here (notify/media_resolver); the reverse map names its owners
// at once, and each owner kind has its own answer (media.cc): EIO for file ranges,
// quarantine for free AUs, a rewrite from the healthy copy for replicated metadata, a
// clean shutdown for the rest (G3-G6). Writes that cover every bad byte of an AU move it
// to fresh media (RelocateBadAus).
//
// Locking: mu_ below takes one media event at a time. It comes after an inode's rw and
// before the filesystem's metadata lock (the order is written once, at Filesystem::mu_).
// The relocation listener has a leaf lock of its own and is called with no other lock of
// the filesystem held, so a writer that relocates waits neither for a media event being
// handled nor for metadata.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fs/base/mutex.h"
#include "fs/base/status.h"
#include "rmap/rmap.h"

namespace udax {

class Filesystem;
struct Inode;

// What the filesystem did about one owner of a bad range.
enum class MediaAction : uint8_t {
  kNone,         // nothing could be done (e.g. read-only)
  kFileEio,      // file data, xattrs or a symlink target: that range now fails with EIO
  kQuarantined,  // a free AU taken out of use for good (or one already quarantined)
  kRepaired,     // metadata rewritten from a healthy copy, poison cleared
  kShutdown,     // metadata with no healthy copy: the filesystem shut down (G6)
  kSick,         // both copies of an inode's metadata bad: that inode fails with EIO
  kOtherCopy,    // one copy of metadata lost with its device: the other serves
};
const char* MediaActionName(MediaAction action);  // "eio", "quarantined", ...

struct MediaOwner {
  OwnerRange range;  // who owns which bad bytes, at which offset in the owner
  std::string path;  // the owning inode's path when it has one
  MediaAction action = MediaAction::kNone;
  std::string detail;  // what was done, in words (event log)
};

// A write over every bad byte of an AU moved it to healthy media.
struct MediaRelocation {
  uint64_t ino = 0;
  uint64_t file_offset = 0;
  uint64_t old_phys = 0;  // now quarantined
  uint64_t new_phys = 0;
  uint64_t length = 0;
};

class Media {
 public:
  explicit Media(Filesystem* fs) : fs_(fs) {}
  Media(const Media&) = delete;
  Media& operator=(const Media&) = delete;

  // Resolves the bad region bytes [phys, phys+len) to their owners through the reverse
  // map and acts on each. Marks the range known bad in the Region. Errors only for a
  // range the filesystem cannot look at; an owner that could not be helped is reported
  // with its action. One event at a time.
  Result<std::vector<MediaOwner>> HandleError(uint64_t phys, uint64_t len) EXCLUDES(mu_);
  // Told of each relocation, with no filesystem lock held; it must not call back into
  // the filesystem. Empty: nobody is told; once this returns, the old listener is not
  // running and will not be called again.
  void set_relocation_listener(std::function<void(const MediaRelocation&)> listener)
      EXCLUDES(listener_mu_);

  // Before a write of file bytes [off, off+n): moves each mapped AU whose bad bytes the
  // write covers whole to a fresh AU (EIO if the write covers a bad block only in part).
  // REQUIRES inode->rw exclusive; takes the filesystem's metadata lock, then this one.
  Status RelocateBadAus(Inode* inode, uint64_t off, uint64_t n) EXCLUDES(mu_);

  // For the lock order (Filesystem::mu_ names it).
  Mutex* order_mutex() RETURN_CAPABILITY(mu_) { return &mu_; }

 private:
  // Acts on one owner of a bad range. REQUIRES the filesystem's metadata lock (each
  // says so to the analysis, which cannot name it here, where Filesystem is incomplete).
  void ActOnOwner(MediaOwner* m);
  // Rewrites the whole 512-byte blocks around [phys, phys+len) from `fill` (zeros where
  // it writes nothing) and clears their emulated poison. Under the metadata lock, with
  // no transaction open.
  // Metadata with a second copy: rewrites the bad blocks of [phys, phys+len) from the
  // other copy's bytes. EOPNOTSUPP when the other copy does not read either.
  Status RewriteFromCopy(uint64_t phys, uint64_t len);
  Status RewriteBlocks(uint64_t phys, uint64_t len,
                       const std::function<void(uint64_t off, uint64_t n, uint8_t* dst)>& fill);
  // Moves file AU `file_au` (at `old_phys`) to a fresh AU, keeping the healthy bytes a
  // write of [off, end) does not cover. REQUIRES inode->rw exclusive.
  Status RelocateAu(Inode* inode, uint64_t file_au, uint64_t old_phys, uint64_t off,
                    uint64_t end) EXCLUDES(mu_, listener_mu_);

  Filesystem* const fs_;
  Mutex mu_;
  Mutex listener_mu_;  // a leaf: taken with an inode's rw at most
  std::function<void(const MediaRelocation&)> listener_ GUARDED_BY(listener_mu_);
};

}  // namespace udax
