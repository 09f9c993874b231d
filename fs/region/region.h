// region.h -- the persistent-memory region udaxfs lives on, and every access to it.
//
// A Region maps a whole target through libpmem2 and is the only code that touches pmem:
//   * devdax (/dev/daxX.Y): mapped whole, honouring the device alignment;
//   * a file on a DAX-mounted filesystem: MAP_SYNC mapping (byte/cache-line granularity);
//   * a plain file (the emulated region): page granularity, persist = msync.
// Reads of pmem go through ReadSafe, which catches SIGBUS (machine check, truncated
// backing file, removed device) and returns EIO plus a MediaFault describing what was hit,
// instead of killing the daemon. Writes go through WriteSafe / ZeroSafe for the same reason.
//
// A regular-file target can also carry emulated poison: its badblocks list file in the
// state directory (/var/lib/udaxfs/uuid-HEX.badblocks, keyed by the superblock UUID:
// fs/format/state_dir.h; written by `udaxctl inject-error`, format in
// fs/format/badblock_list.h; never a file beside the image, which others may plant) is
// loaded at Open, and ReadSafe of a listed range fails exactly as a poisoned read of
// real pmem does: EIO, and a MediaFault (BUS_MCEERR_AR) to *fault and the fault listener.
// Its latent list (uuid-HEX.latent, `udaxctl inject-error --no-notify`, as ndctl's
// --no-notify asks firmware not to tell the OS) fails reads the same way, but no watcher
// announces it: like poison the platform never reported, it is found by the read that
// consumes it (a user's, or the media patrol's), and from then on it is known bad.
//
// Thread-safety: all methods are safe to call concurrently; ranges are the caller's concern.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fs/base/mutex.h"
#include "fs/base/status.h"
#include "fs/region/poison_map.h"

namespace udax {

class BadblockList;

enum class RegionKind { kEmulated, kFsdax, kDevdax };
const char* RegionKindName(RegionKind kind);

// What a caught SIGBUS told us: the region offset of the faulting address (rounded down to
// the poison granule) and its length, and the raw si_code (BUS_MCEERR_AR, BUS_ADRERR, ...).
// A machine check the kernel could not attribute to an address (SI_KERNEL) covers the
// whole range the access was reading or writing. Emulated poison reports the poisoned
// list range the access touched first, with BUS_MCEERR_AR.
struct MediaFault {
  uint64_t offset = 0;
  uint64_t length = 0;
  int si_code = 0;
  // What the faulting thread was doing, when it said so (FaultOrigin): "media patrol".
  const char* origin = nullptr;
};

// Names what this thread's region accesses are for, while it lives: a fault they catch
// carries it (MediaFault::origin), so the event log can say who found the poison.
class FaultOrigin {
 public:
  explicit FaultOrigin(const char* what) : outer_(current_) { current_ = what; }
  ~FaultOrigin() { current_ = outer_; }
  FaultOrigin(const FaultOrigin&) = delete;
  FaultOrigin& operator=(const FaultOrigin&) = delete;
  static const char* current() { return current_; }

 private:
  static inline thread_local const char* current_ = nullptr;
  const char* const outer_;
};

struct RegionOptions {
  bool read_only = false;
  // Create the file (0600) and size it to create_size bytes if it does not exist.
  // Only for plain files (the emulated region); ignored for devices.
  uint64_t create_size = 0;
  // Take an exclusive flock on the target; fail with EBUSY if someone else holds it.
  bool lock = true;
  // Load the emulated poison of a regular-file target (its list in the state directory;
  // an unformatted image has none, and a user who may not read the state directory gets
  // none; an unsafe state directory fails Open with EPERM). Tools that
  // must see through it to report on it (udaxctl list --media-errors naming the owners
  // of a poisoned metadata block) turn this off; everything else keeps it.
  bool emulate_poison = true;
  // A device list (SpanRegion) may leave out devices the superblocks do not call lost:
  // they are opened as absent and lost (mount -o degraded: a device that died while the
  // filesystem was not mounted). Device 0 is never left out.
  bool allow_missing = false;
  // The name the region goes by (path(): messages, udaxctl) when it is opened through
  // another one: a target checked once and opened again as /proc/self/fd/N, so the file
  // mapped is the file checked (fs_devices.cc, CheckDeviceTarget). Empty: the path.
  std::string display_path;
};

class Region {
 public:
  // Opens and maps `path`. Errors (each with a message naming path and cause):
  // ENOENT no such target; EBUSY locked by another udaxfs; EINVAL not a regular file or a
  // dax character device, or an empty file; EIO/other errno from the system calls or
  // libpmem2 (pmem2_errormsg is included in the message).
  static Result<std::unique_ptr<Region>> Open(const std::string& path,
                                              const RegionOptions& options);
  virtual ~Region() = default;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  RegionKind kind() const { return kind_; }
  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Device alignment: 2 MiB (usually) on devdax, the page size otherwise.
  uint64_t alignment() const { return alignment_; }
  bool read_only() const { return read_only_; }
  // An emulated region whose image lives in memory (tmpfs, ramfs): the page cache is all
  // the storage there is, so msync has nothing to reach and Persist/Flush skip it. What
  // a store leaves in the mapping is as durable as it will ever be.
  bool volatile_backing() const { return volatile_backing_; }
  // The descriptor of the open target (for handing to direct-map clients later).
  int fd() const { return fd_; }
  // Base of the mapping. Only Region and code holding a MediaFault-safe path may
  // dereference it directly; everyone else uses the *Safe calls below.
  uint8_t* base() const { return base_; }

  // Copies size()-bounded [off, off+n) into dst. A SIGBUS during the copy returns EIO and
  // fills *fault (if non-null) instead of crashing. EINVAL if the range is out of bounds.
  virtual Status ReadSafe(uint64_t off, void* dst, size_t n, MediaFault* fault = nullptr) const = 0;
  // Copies src into [off, off+n) with non-temporal stores. With persist, the range is
  // durable on return (drain, or msync on emulated regions); without, call Persist or
  // Drain later. EROFS on a read-only region.
  virtual Status WriteSafe(uint64_t off, const void* src, size_t n, bool persist,
                           MediaFault* fault = nullptr) = 0;
  virtual Status ZeroSafe(uint64_t off, size_t n, bool persist, MediaFault* fault = nullptr) = 0;
  // Makes [off, off+n) durable (flush + drain; msync on emulated regions).
  virtual Status Persist(uint64_t off, size_t n) = 0;
  // Flush without drain, and the drain that completes earlier flushes (for batching).
  virtual Status Flush(uint64_t off, size_t n) = 0;
  virtual void Drain() = 0;
  // A hint before writing [off, off+n) for the first time: maps its pages in one system
  // call (MADV_POPULATE_WRITE) instead of one page fault per 4 KiB inside the copy. A
  // no-op on an emulated image, whose WriteSafe decides for itself (region_pmem2.cc).
  // Best effort: errors (an older kernel, a device mapping that refuses it, poison) are
  // ignored, and the copy that follows handles them as it always has.
  void Prefault(uint64_t off, uint64_t n);

  // Called (from the faulting thread, after the copy has been abandoned) for every caught
  // media fault, real or emulated. notify/ turns it into a MediaEvent
  // (MediaEventFromFault) and pushes it on the EventQueue. Set once before use.
  void set_fault_listener(std::function<void(const MediaFault&)> listener) {
    fault_listener_ = std::move(listener);
  }

  // Where [off, off+n) may hold anything but zeros, clipped to it: all of it, but on an
  // emulated image only its data (SEEK_DATA): a punched-out page reads zeros without
  // being read -- which would allocate it in the image. Ascending.
  virtual std::vector<RegionRange> MaybeNonZeroIn(uint64_t off, uint64_t n) const { return {{off, n}}; }

  // --- known-bad media (every target) ---
  // The bad byte ranges overlapping [off, off+n), clipped to it: the announced emulated
  // poison of an image and the latent poison found since, or on a device what
  // MarkKnownBad was told. One atomic load when nothing is bad.
  // (Virtual, as every call below that names a range: a SpanRegion answers from the
  // devices the range lies on.)
  virtual std::vector<RegionRange> KnownBadIn(uint64_t off, uint64_t n) const { return poison_.Overlaps(off, n); }
  virtual bool HasKnownBad(uint64_t off, uint64_t n) const { return poison_.FirstOverlap(off, n).has_value(); }
  virtual bool AnyKnownBad() const { return !poison_.empty(); }
  // Whether a read of [off, off+n) would fault on emulated poison, known or latent: what
  // a path that reads the mapping without ReadSafe (the in-place read reply) must ask.
  virtual bool HasEmulatedPoison(uint64_t off, uint64_t n) const {
    return HasKnownBad(off, n) || latent_.FirstOverlap(off, n).has_value();
  }
  // The ranges of [off, off+n) a read would fail on, known or latent (a shim's read view
  // must fail on them as the daemon's reads do). Clipped to [off, off+n), may overlap.
  virtual std::vector<RegionRange> EmulatedPoisonIn(uint64_t off, uint64_t n) const {
    std::vector<RegionRange> out = poison_.Overlaps(off, n);
    for (const RegionRange& r : latent_.Overlaps(off, n)) out.push_back(r);
    for (RegionRange& r : out) {
      const uint64_t s = std::max(r.offset, off), e = std::min(r.end(), off + n);
      r = {s, e - s};
    }
    return out;
  }
  // A device's bad range as the kernel (badblocks) or a caught machine check reported
  // it: later reads of it fail with EIO at once instead of consuming the poison again.
  // The kernel may clear the range later (ndctl clear-errors zeroes it), but its old
  // contents are gone, so it stays bad here until the daemon restarts. No effect on an
  // emulated image, whose list file is the whole truth (SetEmulatedPoison replaces the set;
  // on a file on fsdax it also drops what was marked, which the kernel then reports again).
  // On an image, marking latent poison (found by a read) makes it known bad the same way.
  virtual void MarkKnownBad(RegionRange range);

  // --- the devices under the region ---
  // A region over several devices (SpanRegion, a multi-device filesystem) is their
  // concatenation; every other region is one device, itself. Per-device things (a list
  // file to watch, the kernel's badblocks, a path to name) are asked of device(i), whose
  // offsets start at device_start(i) of this region.
  virtual size_t device_count() const { return 1; }
  virtual Region* device(size_t i) {
    (void)i;
    return this;
  }
  virtual uint64_t device_start(size_t i) const {
    (void)i;
    return 0;
  }
  // Device i is gone (pulled, failed, removed on request): from now on reads of its bytes
  // fail with EIO at once -- no fault is reported, nothing touches its mapping, whose
  // pages may be gone with it -- writes to it are dropped (a copy there is lost anyway;
  // the other copy is what counts), and all of it is known bad. EOPNOTSUPP on a region
  // that is one device (losing it is a shutdown, G7); EINVAL for device 0, whose fixed
  // metadata (journal, bitmaps, reverse map) has no second copy.
  virtual Status LoseDevice(size_t i) {
    (void)i;
    return Status::Error(EOPNOTSUPP, path_ + ": one device: losing it ends the filesystem");
  }
  // Device i, lost, is back in service (Filesystem::RestoreDevice, once its stale parts
  // are rewritten): accesses reach it again. EOPNOTSUPP on one device; EINVAL when i is not
  // lost, or was not named when the region was opened (nothing of it is mapped).
  virtual Status RestoreDevice(size_t i) {
    (void)i;
    return Status::Error(EOPNOTSUPP, path_ + ": one device: nothing to restore");
  }
  // Device i, lost, gives its place to the target at `path` (udaxctl replace-device):
  // mapped where device i was, the old one's mapping deleted. It stays lost (nothing
  // reaches it) until RestoreDevice, so the caller writes what it must hold first,
  // straight onto device(i). The old device's object is kept, never accessed again, so
  // a pointer to it stays valid. EOPNOTSUPP on one device; EINVAL for device 0 or one not
  // lost; the target's own errors (not mappable, too short, locked), after which nothing
  // is mapped in the place (device_mapped false) until another ReplaceDevice.
  // `display`: the name it goes by when `path` is another name for it (/proc/self/fd/N).
  virtual Status ReplaceDevice(size_t i, const std::string& path, const std::string& display = {}) {
    (void)i;
    (void)path;
    (void)display;
    return Status::Error(EOPNOTSUPP, path_ + ": one device: nothing to replace");
  }
  // Device i, lost, is mapped afresh from `path` (udaxctl add-device MOUNT DEV PATH): the
  // device pulled for real and back under a new node, whose old mapping is dead, or one
  // not named at mount. As ReplaceDevice, but the device is the same one (the caller has
  // checked its first block): it stays lost until RestoreDevice. EOPNOTSUPP on one
  // device; EINVAL for device 0 or one not lost; the target's own errors, after which
  // nothing is mapped in the place (device_mapped false) until another RemapDevice.
  virtual Status RemapDevice(size_t i, const std::string& path, const std::string& display = {}) {
    (void)i;
    (void)path;
    (void)display;
    return Status::Error(EOPNOTSUPP, path_ + ": one device: nothing to remap");
  }
  // Device i, lost, is gone for real (the kernel removed it): its mapping and descriptor
  // are let go (Pmem2Region::Release), so that the kernel can free it and a node made
  // again for it works. Nothing of it is mapped from then on (device_mapped false): it
  // comes back by RemapDevice. EOPNOTSUPP on one device; EINVAL for one not lost.
  virtual Status ReleaseDevice(size_t i) {
    (void)i;
    return Status::Error(EOPNOTSUPP, path_ + ": one device: nothing to release");
  }
  // Whether the region, when it opened, found device i an older copy of itself (its
  // superblock copy's generation behind device 0's word for it: a restored backup) and
  // lost it for that.
  virtual bool device_stale(size_t i) const {
    (void)i;
    return false;
  }
  // The bytes of `range` are gone for good (file data of a replaced device: the
  // superblock's lost runs): reads of them fail with EIO, and they are known bad, as a
  // lost device is, so a write over a whole AU moves it. Nothing on a region that is one
  // device (which has no lost runs).
  virtual void MarkDataLost(RegionRange range) { (void)range; }
  // Whether any byte of [off, off+n) was marked lost (MarkDataLost). Only software knows
  // it (the media would serve the new device's bytes): a direct map of it is refused.
  virtual bool DataLostIn(uint64_t off, uint64_t n) const {
    (void)off;
    (void)n;
    return false;
  }
  // Changes each time a device is lost (before the device reads as lost). File-data
  // writers read it before and after: a write that overlapped a loss may have been
  // dropped on the lost device (whose bytes would come back stale with it), so it fails
  // with EIO -- even one wholly on another device, which cannot tell.
  virtual uint64_t loss_epoch() const { return 0; }
  // EIO when [off, off+n) touches a lost device: what file-data writes check first (a
  // metadata copy there may be dropped, a file's bytes may not).
  virtual Status RequireLive(uint64_t off, uint64_t n) const {
    (void)off;
    (void)n;
    return Status::Ok();
  }
  // Whether device i has a mapping (false: lost, and not named when the region opened).
  virtual bool device_mapped(size_t i) const { return i < device_count(); }
  // When another file last took place i (RemapDevice, ReplaceDevice): an event raised
  // before it (a removal queued while add-device ran) speaks of the file that was there
  // then, not of this one. The epoch when nothing did since the region opened.
  virtual std::chrono::system_clock::time_point device_placed_at(size_t i) const {
    (void)i;
    return {};
  }
  virtual bool device_lost(size_t i) const {
    (void)i;
    return false;
  }

  // --- emulated poison (regular-file targets; see the file comment) ---
  // (badblocks_path, latent_path and the Set* calls are one device's: on a SpanRegion
  // they are empty and do nothing; ask device(i).)
  // The list file that emulates poison on this region: STATE_DIR/uuid-HEX.badblocks for
  // a formatted image, "" for a device (whose poison is real and reported by the kernel)
  // or an image without state (unformatted, or a state directory we may not read).
  const std::string& badblocks_path() const { return badblocks_path_; }
  // Replaces the emulated poison with `list` (512-byte sectors from the region start;
  // sectors past the region end are ignored). For the list-file watcher's callback.
  void SetEmulatedPoison(const BadblockList& list);
  // The latent list file of this region (STATE_DIR/uuid-HEX.latent), "" when it has none.
  const std::string& latent_path() const { return latent_path_; }
  // Replaces the latent poison with `list` (the latent list watcher's callback). Latent
  // ranges found earlier stay known bad while the list still holds them.
  void SetLatentPoison(const BadblockList& list);
  // The latent poison no read has found yet.
  virtual std::vector<RegionRange> LatentPoison() const;
  // Rereads badblocks_path() and applies it. EINVAL (naming file and line) on a
  // malformed list, which leaves the poison in force unchanged; OK and nothing to do on
  // a device.
  virtual Status ReloadEmulatedPoison();
  // The known poisoned byte ranges (announced, or latent and found), sorted and merged.
  virtual std::vector<RegionRange> EmulatedPoison() const { return poison_.ranges(); }
  // What a write that clears pmem poison does (ndctl clear-errors semantics): removes the
  // whole 512-byte blocks inside [off, off+n) from the emulated poison and from the list
  // files (announced and latent). Partial blocks at either end stay poisoned. The daemon calls this with the
  // filesystem mutex held, so the list's lock is waited for at most 200 ms
  // (kClearLockWait; EBUSY after that; see fs/format/badblock_list.h), never without bound. *cleared (if non-null) receives the
  // sectors that were poisoned and are now clear. Errors: EINVAL out of bounds, EROFS on a
  // read-only region, EOPNOTSUPP on a device, the list file's errors (then nothing changed).
  virtual Status ClearEmulatedPoison(uint64_t off, uint64_t n, BadblockList* cleared = nullptr);
  // After a rewrite of [off, off+n) (a repair from a healthy copy): the emulated poison of
  // the 512-byte blocks under it is gone, the partial blocks at either end included, as
  // ndctl clear-errors leaves them. OK and nothing to do on a target without a list (a
  // device, whose poison is the kernel's to clear). ClearEmulatedPoison's errors.
  virtual Status ClearRewrittenPoison(uint64_t off, uint64_t n);

 protected:
  Region() = default;
  void ReportFault(MediaFault& fault) const {
    fault.origin = FaultOrigin::current();
    if (fault_listener_) fault_listener_(fault);
  }
  // Finds this image's state (fs/format/state_dir.h: created and legacy side files migrated
  // when we may) and loads its list with LoadEmulatedPoison (Open, regular files only).
  // EPERM for an unsafe state directory or list file, EINVAL for a malformed list.
  Status AttachEmulatedPoison();
  // Loads the emulated poison from `list_path` and remembers the path. EINVAL on a
  // malformed list.
  Status LoadEmulatedPoison(const std::string& list_path, const std::string& latent_path);
  // OK when no emulated poison lies in [off, off+n). Otherwise fills *fault (if
  // non-null), reports the fault to the listener and returns EIO, as a real poisoned
  // read would. One atomic load when nothing is poisoned.
  Status CheckEmulatedPoison(const char* op, uint64_t off, uint64_t n, MediaFault* fault) const {
    if (poison_.empty() && latent_.empty()) return Status::Ok();
    return EmulatedPoisonFault(op, off, n, fault);
  }
  // OK when [off, off+n) lies inside the region (n == 0 at off == size() is fine);
  // EINVAL naming path, op ("read", "write", ...) and the range when it overflows or
  // reaches past size().
  Status CheckRange(const char* op, uint64_t off, uint64_t n) const;

  RegionKind kind_ = RegionKind::kEmulated;
  bool volatile_backing_ = false;
  std::string path_;
  uint64_t size_ = 0;
  uint64_t alignment_ = 4096;
  bool read_only_ = false;
  int fd_ = -1;
  uint8_t* base_ = nullptr;
  std::function<void(const MediaFault&)> fault_listener_;
  // MADV_POPULATE_WRITE over the pages of [off, off+n) (inside the region): whether the
  // kernel made their page-table entries. False once it has said EINVAL (older than
  // 5.14), without asking again.
  bool PopulateWrite(uint64_t off, uint64_t n);

 private:
  Status EmulatedPoisonFault(const char* op, uint64_t off, uint64_t n, MediaFault* fault) const;

  // poison_ = announced_ + latent_found_ + marked_: what reads fail on and KnownBadIn
  // tells. Recomputed under known_mu_ whenever one of them changes.
  void RecomputeKnownLocked() REQUIRES(known_mu_);

  std::string badblocks_path_;
  std::string latent_path_;
  PoisonMap poison_;
  PoisonMap latent_;  // latent poison not found yet: reads fail on it too
  Mutex known_mu_;
  std::vector<RegionRange> announced_ GUARDED_BY(known_mu_);     // the list file's
  std::vector<RegionRange> latent_found_ GUARDED_BY(known_mu_);  // latent, found by a read
  std::vector<RegionRange> marked_ GUARDED_BY(known_mu_);  // the kernel's, on a device or fsdax
  std::atomic<bool> prefault_unsupported_{false};  // the kernel said EINVAL once
};

}  // namespace udax
