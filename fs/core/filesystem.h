// filesystem.h -- the udaxfs core: a POSIX filesystem on a Region, independent of FUSE.
//
// The FUSE layer (fs/fuse) and the tests drive this API. Every method returns a Status or
// Result; nothing throws. Metadata operations are atomic and durable when they return (one
// journal transaction each); file data is written in place with non-temporal stores and is
// durable when Write returns with the sync option, or after Fsync.
//
// Locking (the rules are annotations that clang's -Wthread-safety checks; fs/base/mutex.h):
//  - The parts: Space (space.h: bitmaps, reverse map, quarantine), Media (media.h: owners
//    of bad media and the actions) and Checker (checker.h: the check walks) each have a
//    lock of their own; what Filesystem keeps is the namespace, the inodes and their maps.
//  - Order: an inode's rw (data path), then the check or media lock (one walk, one media
//    event at a time), then mu_ (metadata), then the space lock (a leaf). Written once,
//    at mu_'s declaration below (ACQUIRED_AFTER / ACQUIRED_BEFORE), and checked there.
//    mu_ guards the inode cache, the journal and its transaction (GUARDED_BY below), and
//    every change to an inode's `d` and extent map; the private helpers that touch them
//    REQUIRE it. Space guards itself: an allocating write reserves AUs without mu_.
//  - So a free-space check under mu_ promises nothing a moment later: an operation holds
//    the AUs it counts on (HoldAus), allocates from the hold (TakeAus), and MetaLock, the
//    form of mu_ every operation takes, gives back the rest when it releases mu_.
//  - A direct-map revoke (set_revoke_hook) waits on clients: it runs with the file's rw
//    held and never under mu_, so a slow client stalls that file only.
//  - Data copies of allocating writes run with the file's rw held and not mu_ (Write).
//  - One call back into FUSE happens with a lock held: ReadInPlace's `send` (the reply),
//    under the inode's rw shared so the bytes cannot be freed while the kernel copies
//    them. `send` must take no lock at all: a NoLocksScope around it aborts on any lock
//    taken inside (fs_data.cc; checked by FilesystemTest.InPlaceReplyTakesNoLocks).
//  - Code that owns the Filesystem outright (mount, fsck) says so with AssumeUnshared().
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fs/base/mutex.h"
#include "fs/core/bitmap_alloc.h"
#include "fs/core/checker.h"
#include "fs/core/inode.h"
#include "fs/core/journal.h"
#include "fs/core/media.h"
#include "fs/core/space.h"
#include "fs/format/layout.h"
#include "fs/region/region.h"
#include "rmap/rmap.h"

namespace udax {

struct MountOptions {
  bool read_only = false;
  // With read_only: open the target writable when it can be, so MakeWritable can work.
  bool upgradable = false;
  bool sync = false;  // every write durable on return
  // Several devices: mount without devices the superblocks do not call lost (they died
  // while the filesystem was not mounted); they are lost from then on (-o degraded).
  bool degraded = false;
};

// When reads and listings update atime (the mount's relatime / strictatime / noatime
// and nodiratime flags, which the FUSE layer follows).
enum class AtimeUpdate : uint8_t { kRelative, kAlways, kNever };
struct AtimePolicy {
  AtimeUpdate mode = AtimeUpdate::kRelative;
  bool dirs = true;  // false: nodiratime
};

// Who is asking (from the FUSE request).
struct Caller {
  Caller() = default;
  Caller(uint32_t u, uint32_t g, uint32_t mask = 0) : uid(u), gid(g), umask(mask) {}
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t umask = 0;  // applied to new inodes unless the parent has a default ACL
  std::vector<uint32_t> groups;  // supplementary groups, where a decision needs them
  bool InGroup(uint32_t g) const;
};

struct EntryOut {
  uint64_t ino = 0;
  uint64_t generation = 0;
  struct stat attr {};
};

// The one privilege-drop path: what file_remove_privs does when a file's data changes
// (write, truncate, fallocate, copy_file_range: regular files only) and what chown_common
// does when its owner or group changes (kOwner: every file type but directories).
enum class PrivChange : uint8_t { kData, kOwner };

// A privilege drop that rides in the transaction of the change it belongs to, so that no
// crash and no reader ever sees the new data or owner with the old setuid bit. The FUSE
// layer fills it from the request; the core stages it once, in the first transaction of
// the change (for an overwrite in place, which has none, in one committed before the
// data is stored, as file_remove_privs runs before the copy).
//   suidgid: the caller lacks CAP_FSETID (chown: always): drop setuid, and setgid when
//            group-exec is set or exempt_from_sgid(file's gid) says no
//            (setattr_should_drop_sgid; asked only then, with the filesystem lock held,
//            so it must be quick and take no filesystem lock);
//   security.capability goes in every case.
// After the change, `changed` says whether the inode changed (the kernel's cached
// attributes are stale then).
struct PrivDrop {
  bool suidgid = false;
  std::function<bool(uint32_t gid)> exempt_from_sgid;
  PrivChange change = PrivChange::kData;
  bool staged = false;   // set by the core: the drop is in a transaction (or needed none)
  bool changed = false;  // set by the core: the inode's mode or capabilities changed
};

// setattr fields (matches FUSE_SET_ATTR_* meaning; values set by the FUSE layer).
struct SetAttrIn {
  bool mode = false, uid = false, gid = false, size = false;
  bool atime = false, atime_now = false, mtime = false, mtime_now = false, ctime = false;
  struct stat attr {};
  PrivDrop* drop = nullptr;  // for a truncate or chown: staged with the change
};

// One extent of a file as `udaxctl bmap` shows it.
struct BmapExtent {
  uint64_t file_offset = 0;  // bytes
  uint64_t phys_offset = 0;  // bytes from the start of the region
  uint64_t length = 0;       // bytes
};

struct DirListEntry {
  uint64_t ino;
  uint8_t type;  // DT_*
  std::string name;
};

// What Filesystem::RestoreDevice did (udaxctl add-device, the event log).
struct DeviceResync {
  uint64_t metadata_aus = 0;  // metadata copies rewritten onto the device, in AUs
  uint64_t quarantined_aus = 0;  // AUs freed there while it was gone: kept quarantined
  uint64_t file_bytes = 0;    // file data on it, readable again
};

// What Filesystem::ReplaceDevice did (udaxctl replace-device, the event log).
struct DeviceReplacement {
  uint64_t metadata_aus = 0;     // metadata copies written onto the new device, in AUs
  uint64_t lost_files = 0;       // files that had data on the old device
  uint64_t lost_file_bytes = 0;  // their bytes there: EIO from now on (the lost runs)
  uint64_t quarantined_aus = 0;  // AUs freed there while it was gone: kept quarantined
};

class Filesystem {
 public:
  // Opens the target, verifies the superblock (falling back to the replica), replays the
  // journal and loads the allocators. Errors name what is wrong with the target.
  static Result<std::unique_ptr<Filesystem>> Mount(const std::string& target,
                                                   const MountOptions& options);
  // The same on a region the caller opened (crash harness, fault injection).
  static Result<std::unique_ptr<Filesystem>> MountRegion(std::unique_ptr<Region> region,
                                                         const MountOptions& options);
  // Formats an open region (mkfs). Writes everything, then the superblock last.
  static Status Format(Region* region, const MkfsParams& params);
  ~Filesystem();

  // Persists lazily kept inode times and lets go of the region.
  Status Unmount();
  // A read-only mount becomes read-write (mount -o remount,rw), doing what a read-write
  // mount does first: superblock restored, orphans freed, mount count. EROFS when the
  // target was opened read-only; EBUSY when the journal holds a transaction this mount
  // has not applied (a fresh mount must replay it); EUCLEAN for the damage a read-write
  // mount refuses. A no-op on a read-write mount.
  Status MakeWritable();

  Result<EntryOut> Lookup(uint64_t parent, std::string_view name);  // +1 nlookup
  void Forget(uint64_t ino, uint64_t nlookup);
  Result<struct stat> GetAttr(uint64_t ino);
  Result<struct stat> SetAttr(uint64_t ino, const SetAttrIn& in);
  Result<EntryOut> Mknod(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                         const Caller& caller);
  Result<EntryOut> Mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                         const Caller& caller);
  Result<EntryOut> Symlink(uint64_t parent, std::string_view name, std::string_view target,
                           const Caller& caller);
  Result<EntryOut> Link(uint64_t ino, uint64_t new_parent, std::string_view new_name);
  Status Unlink(uint64_t parent, std::string_view name);
  Status Rmdir(uint64_t parent, std::string_view name);
  // flags: 0, RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT (with or without
  // NOREPLACE; the whiteout belongs to `caller`).
  Status Rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                std::string_view new_name, unsigned flags, const Caller& caller = Caller());
  Result<std::string> ReadLink(uint64_t ino);
  // A path of `ino` from the root ("/a/b"), for reports: one directory listing per level
  // through the parent hint every inode keeps; a file whose hint went stale (hard links)
  // is found by a bounded search (cost in fs_namespace.cc). NotFound for an unlinked
  // inode, or when no directory within the search names it.
  Result<std::string> PathOf(uint64_t ino);

  // Open files: the returned Inode* stays valid until Release.
  Result<Inode*> Open(uint64_t ino, int flags);
  Result<std::pair<EntryOut, Inode*>> Create(uint64_t parent, std::string_view name,
                                             uint32_t mode, int flags, const Caller& caller);
  void Release(Inode* inode);
  Result<size_t> Read(Inode* inode, uint64_t off, size_t n, char* buf);
  // A read served without a copy here: calls `send(ptr, len)` with the bytes of
  // [off, off+n) (clipped at EOF) where they lie in the region, while holding the inode
  // shared, so its blocks cannot be freed or reused while the kernel copies them out of
  // our mapping (FUSE's reply). Only where that is safe and simple: a region whose pages
  // cannot fail to read or carry real poison (an image on tmpfs or ramfs), nothing known
  // bad in the range, the range inside one extent run. Otherwise returns false having
  // sent nothing, and the caller uses Read. `send` must take no lock (see the top).
  Result<bool> ReadInPlace(Inode* inode, uint64_t off, size_t n,
                           const std::function<void(const char*, size_t)>& send);
  // `drop` (may be null): the privilege drop this write makes (see PrivDrop).
  // `append`: an O_APPEND write(2). On a file writable views have appended to since it
  // was loaded (Inode::views_appended) it goes at the end of the file as the daemon
  // knows it, not at `off`: the kernel's idea of the size may be behind their stores,
  // which it never saw (fs_view_reserve.cc). `written_at` (may be null): where it went.
  Result<size_t> Write(Inode* inode, uint64_t off, const char* buf, size_t n,
                       PrivDrop* drop = nullptr, bool append = false,
                       uint64_t* written_at = nullptr);
  Status Fsync(Inode* inode, bool datasync);

  // --- ranges of a file (fs_fallocate.cc) ---
  // fallocate(2): mode 0 or FALLOC_FL_KEEP_SIZE allocate zeroed AUs; PUNCH_HOLE (with
  // KEEP_SIZE) frees whole AUs and zeroes partial ones; ZERO_RANGE; COLLAPSE_RANGE and
  // INSERT_RANGE shift the extents (AU-aligned offsets and lengths, EINVAL otherwise).
  // Every change keeps the bitmap and the reverse map exact. Errors as ext4/XFS give them:
  // EINVAL (empty range, COLLAPSE/INSERT with another flag, unaligned COLLAPSE/INSERT,
  // COLLAPSE reaching EOF, INSERT at or past EOF), EOPNOTSUPP (unknown flags, PUNCH_HOLE
  // without KEEP_SIZE or with ZERO_RANGE), EFBIG (past MaxFileSize), EISDIR, ENODEV,
  // ENOSPC (nothing changed; or, if extent blocks took the last AUs, part of a
  // preallocation done), EROFS / EIO (read-only, shut down).
  // `drop` (may be null) is staged in the first transaction of the change.
  Status Fallocate(Inode* inode, int mode, uint64_t off, uint64_t len, PrivDrop* drop = nullptr);
  // lseek(2) SEEK_DATA / SEEK_HOLE: ENXIO past the end, as Linux filesystems return;
  // EINVAL for another whence. Allocated AUs count as data.
  Result<uint64_t> SeekDataHole(Inode* inode, uint64_t off, int whence);
  // copy_file_range(2) between two open files (may be the same file, ranges must not
  // overlap then: EINVAL); returns bytes copied, short at end of input, 0 at or past it.
  // EFBIG at or past MaxFileSize, EOVERFLOW if a range wraps, short (or ENOSPC) when
  // space runs out.
  // `drop` (may be null) is the destination's, staged with its first change.
  Result<size_t> CopyFileRange(Inode* in, uint64_t off_in, Inode* out, uint64_t off_out,
                               size_t len, PrivDrop* drop = nullptr);

  // --- extended attributes (fs_xattr.cc) ---
  // flags: 0, XATTR_CREATE, XATTR_REPLACE. Names carry their namespace prefix.
  // Setting an access ACL updates the mode (and drops setgid unless `caller` is in the
  // file's group or root), as posix_acl_update_mode does.
  Status SetXattr(uint64_t ino, std::string_view name, std::string_view value, int flags,
                  const Caller& caller);
  Result<std::string> GetXattr(uint64_t ino, std::string_view name);  // ENODATA if absent
  Result<std::string> ListXattr(uint64_t ino);  // names, each NUL-terminated
  Status RemoveXattr(uint64_t ino, std::string_view name);
  // A privilege drop on its own, in a transaction of its own (see PrivDrop; the changes
  // themselves take one and stage it with theirs). Returns whether the inode changed.
  Result<bool> KillPrivs(uint64_t ino, bool suidgid,
                         const std::function<bool(uint32_t gid)>& exempt_from_sgid,
                         PrivChange change = PrivChange::kData);

  // --- chattr flags, label, FITRIM (fs_attr.cc) ---
  // Inode flags as FS_IOC_GETFLAGS gives them (kAttr* = FS_*_FL). SetFlags follows
  // ext4_fileattr_set: EOPNOTSUPP for a flag udaxfs does not keep or this file type cannot
  // carry (DIRSYNC off directories); EPERM unless `caller` owns the inode or is root, for
  // any change but clearing FS_IMMUTABLE_FL while it is set, and for a change of
  // IMMUTABLE or APPEND by anyone but root. Updates ctime; one transaction.
  Result<uint32_t> GetFlags(uint64_t ino);
  Status SetFlags(uint64_t ino, uint32_t flags, const Caller& caller);
  // The volume label (mkfs -L); SetLabel writes both superblock copies, durably; EINVAL
  // past 31 bytes.
  std::string Label();
  Status SetLabel(std::string_view label);
  // FITRIM over region bytes [start, start+len): the free bytes in range, in free runs of
  // at least `minlen` (nothing needs discarding on pmem). EINVAL as ext4 (start past the
  // end, len below one AU, minlen beyond the filesystem), EROFS on a read-only mount.
  Result<uint64_t> Trim(uint64_t start, uint64_t len, uint64_t minlen);

  // Directory listing, including "." and "..", in a stable order for one snapshot.
  Result<std::vector<DirListEntry>> ListDir(uint64_t ino);
  Status FsyncDir(uint64_t ino);

  // The reverse question: every owner of the region bytes [phys, phys+len). From the
  // reverse map; where its records are bad, from the forward maps (OwnersLocked).
  Result<std::vector<OwnerRange>> Owners(uint64_t phys, uint64_t len);
  // The forward question: a file's extents in file order.
  Result<std::vector<BmapExtent>> Bmap(uint64_t ino);

  // --- devices (a multi-device filesystem; fs_devices.cc) ---
  // Device `d` is gone (pulled, failed, `udaxctl remove-device`): the filesystem goes on,
  // degraded. Reads of its bytes fail with EIO, writes to it are dropped, nothing is
  // allocated there again (Region::LoseDevice, Space::RetireDevice); file data there
  // fails with EIO until a write covers it (it then moves to another device), metadata
  // is served from its other copy. Returns every owner of what the device held (from
  // the reverse map, which lives on device 0), for the caller to revoke leases, drop
  // cached pages and log. EINVAL: one device, no such device, or device 0 (the journal,
  // bitmaps and reverse map have no copy elsewhere: losing it is a shutdown); EALREADY
  // when it is lost already.
  Result<std::vector<OwnerRange>> LoseDevice(uint32_t d);
  // Whether device `d` may be lost: the errors LoseDevice gives before it changes anything.
  Status CheckLosable(uint32_t d) EXCLUDES(mu_);
  Status CheckLosableLocked(uint32_t d) REQUIRES(mu_);
  // Device `d`, lost, is gone for real (the kernel's device-removed uevent, maybe after a
  // `udaxctl remove-device` already lost it): the daemon lets go of its mapping and
  // descriptor (Region::ReleaseDevice), so the kernel can free it and a node made again
  // for it works. add-device then needs its path. EINVAL when d is not lost.
  Status ReleaseLostDevice(uint32_t d) EXCLUDES(mu_);
  // Device `d`, lost, is back -- the same device, with its own superblock copy:
  // `udaxctl add-device`. With `path` empty, the device as it is mapped (named at mount,
  // or lost while mounted with its mapping alive). With a `path`, the device is mapped
  // afresh from there first, in its place: one pulled for real and back (its old mapping
  // is dead: daxctl disable-device, then enable-device), one that moved, or one not
  // named at mount. The target is checked as replace-device's is (symlinks resolved, not
  // on a FUSE filesystem, the daemon's own and not writable by others), and its first
  // block must name device d before the old mapping is let go. Then every metadata copy
  // on it is rewritten from its partner on another device, accesses and allocation reach
  // it again (the AUs freed there while it was gone stay quarantined: which of them are
  // bad is not known), and the superblocks no longer call it lost. Its file data was
  // never written while it was gone (a write over it moved it away), so it reads back.
  // EINVAL: one device, no such device, not lost, nothing mapped and no path, another
  // device at the path or in its place, or an older copy of it (its generation behind the
  // one last written to it); EIO when it does not read (pulled for real: give its path);
  // EPERM for a target others may write; the target's own errors (ENOENT); EROFS on a
  // read-only mount.
  Result<DeviceResync> RestoreDevice(uint32_t d, const std::string& path = {}) EXCLUDES(mu_);
  // Device `d`, lost, gives its place to the blank device or image at `path`, at least
  // as large as d's share: `udaxctl replace-device`. The new device gets a UUID of its
  // own; every metadata copy that lived on d is written onto it from its partner; the
  // file data that lived on d is gone for good, and its AUs are recorded in the
  // superblock's lost runs (DiskSuperblock::lost_runs): they read EIO, now and after any
  // remount, until a write over a whole AU moves it or the file lets it go. Then
  // allocation reaches the device again and the superblocks, device 0's last, name the
  // new device and no longer call d lost. EINVAL: one device, no such device, not lost,
  // device 0, a target that is a device of this filesystem (d itself: use RestoreDevice)
  // or of another one, or on a FUSE filesystem (resolving it could call back into this
  // daemon while the metadata lock is held: checked, symlinks resolved, before it is
  // taken); EPERM when another user owns the target or others may write it; ENOSPC when
  // the lost runs would not fit (kMaxLostRuns); EROFS on
  // a read-only mount; the target's own errors (not mappable, too short, in use).
  Result<DeviceReplacement> ReplaceDevice(uint32_t d, const std::string& path) EXCLUDES(mu_);
  // Writes the lost devices (`more`, and every device the region has lost) into the
  // superblocks on the devices that remain, when that changes them. Nothing on a
  // read-only or shut-down mount.
  Status RecordLostDevices(uint32_t more) REQUIRES(mu_);
  // Seals the superblock with `lost` as its lost devices and writes it to device 0, the
  // replica and every device's copy, skipping the devices `lost` names. Shuts down on
  // failure.
  Status WriteLostDevices(uint32_t lost) REQUIRES(mu_);
  // Moves the generation on (DiskSuperblock::generation), seals `next` and writes it to
  // every device's copy, the replica and device 0 (last: what a mount takes as the
  // truth), skipping the devices next.lost_devices names; then it is sb_. Shuts down on
  // failure (`why` says what was being recorded).
  Status WriteSuperblocks(DiskSuperblock next, const char* why) REQUIRES(mu_);
  // Writes every metadata copy that `owners` (the reverse map of device d's share) puts
  // on device d from its partner on another device, straight onto `dev` (device d's
  // Region, device-relative offsets: the span drops writes to a lost device). Returns
  // the AUs written.
  Result<uint64_t> RewriteCopiesOnto(uint32_t d, const std::vector<OwnerRange>& owners,
                                     Region* dev) REQUIRES(mu_);
  // The devices lost (since mount, or before it: the superblock says), ascending.
  std::vector<uint32_t> LostDevices() const;
  // One line per lost device: "device 1 (uuid ...) is gone: N files lose B bytes there;
  // M metadata AUs have one copy left" (from the reverse map). Empty when none is lost.
  Result<std::vector<std::string>> DegradedSummary();
  // The files that still hold bytes a replaced device took with it (the lost runs), and
  // how many bytes: they read EIO there until rewritten or deleted.
  struct LostData {
    std::set<uint64_t> files;
    uint64_t bytes = 0;
  };
  Result<LostData> LostDataSummary();

  // --- checks: the check part (checker.h) ---
  Checker& checker() { return checker_; }

  // --- media errors: the media part (media.h) ---
  Media& media() { return media_; }

  // --- direct maps (client leases, issues 7 and 19) ---
  // Called before the blocks behind file bytes [from, to) of `ino` are freed, moved to
  // other file offsets, or relocated, with that inode's rw lock held exclusive and NO
  // metadata lock (mu_) held, so that a slow client stalls only that file: it returns
  // OK once no client maps them any more (revoked and acknowledged, or the client killed
  // and gone), or an error (EBUSY) when a client still maps them, and then the change
  // does not happen. It must not call back into the filesystem. The one call under mu_
  // is ino 0 (every file) at shutdown, which ends the filesystem anyway. A lease pins
  // its inode open (fs/fuse/lease_table.h), so an inode is never freed under one. Set
  // once, before serving.
  //
  // Read views (a whole-file read-only lease the preload shim serves read(2) from) also
  // depend on what is NOT mapped -- holes read as zeros, the size bounds them -- so they
  // are revoked as well when a write, fallocate or truncate allocates or changes the size
  // (`views_only`: the leases of ordinary maps stay, nothing they map changes). The core
  // voids them first through the file's ViewPage (view_page.h), so the hook need not
  // wait for their holders.
  using RevokeHook = std::function<Status(uint64_t ino, uint64_t from, uint64_t to, bool views_only)>;
  void set_revoke_hook(RevokeHook hook) { revoke_hook_ = std::move(hook); }
  // Returns the extents of file bytes [off, off+len) (inside the size rounded up to the
  // AU) for a direct map. With `allocate` (a writable map) holes become zeroed blocks
  // first; without it (a read-only map, which must change nothing) a hole is ENODATA.
  // EINVAL outside the file.
  Result<std::vector<BmapExtent>> PrepareDirectMap(Inode* inode, uint64_t off, uint64_t len,
                                                   bool allocate);
  // What a view of the whole file needs, read under the file's rw lock: its size, the
  // extents of the allocated bytes below it (holes are absent and read as zeros), and the
  // file ranges a read fails on (bad media). E2BIG past `max_extents` (the shim then reads
  // through FUSE). Changes nothing on media.
  // `writable`: the holder will also store overwrites into those extents (the shim's
  // write(2)); refused (EPERM) for a set-user/group-ID file (a write must drop the bits)
  // and an immutable or append-only one, EROFS on a read-only mount. While such views
  // live, FUSE reads of the file check the write page (a store is never half seen), its
  // attributes are not cached by the kernel (has_view_writers), and the writes they count
  // stamp mtime/ctime at the next GetAttr, Fsync or view end.
  struct ReadView {
    uint64_t size = 0;
    uint64_t limit = 0;      // >= size: how far the extents reach (space past EOF to write)
    uint64_t gen = 0;        // the view page's generation the view is good for
    int page_fd = -1;        // the view page (the inode's; the caller sends a copy)
    int write_page_fd = -1;  // the write page (the inode's; the caller sends a copy)
    bool sync = false;       // every write must be durable when it returns (-o sync, chattr +S)
    std::vector<BmapExtent> extents;
    std::vector<BmapExtent> bad;  // file_offset, length (phys_offset: where on the region)
  };
  // `reserve` (writable only): bytes past EOF the holder wants to write into (appends):
  // allocated, zeroed, unless live writable views already have about that much there; the
  // view's extents then reach `limit`, and its stores past the size publish the new size
  // on the write page (fs_view_reserve.cc). Without room the view gets none (limit = size).
  // `ask` (writable only):
  //  - reserve_at: where past EOF the reservation starts (a write that leaves a gap past
  //    EOF: the gap stays a hole); 0 or at most the size: at the size;
  //  - [fill_offset, fill_offset+fill_length): file bytes below the size whose holes the
  //    holder wants to write into: allocated, zeroed, within a budget (FillForViews); the
  //    view then maps them.
  struct ViewAsk {  // (no member initializers: `= {}` below zeroes it)
    uint64_t reserve_at;
    uint64_t fill_offset;
    uint64_t fill_length;
  };
  Result<ReadView> PrepareReadView(Inode* inode, size_t max_extents, bool writable = false,
                                   uint64_t reserve = 0, ViewAsk ask = {});
  // Each successful PrepareReadView is ended by one call (with the same `writable`), when
  // that view's lease ends: the last one voids and drops the file's view page.
  void EndReadView(Inode* inode, bool writable = false);
  // Whether writable views or maps of inode `ino` live (its attributes must not be
  // cached).
  bool HasViewWriters(uint64_t ino);
  // A writable direct map of the file was granted / ended: from the first to the last,
  // every GetAttr stamps mtime (stores through it are not counted), and the end stamps it
  // once more.
  void StartMapWriter(Inode* inode);
  void EndMapWriter(Inode* inode);

  // The atime policy in force (changes with kernel remounts; see fs_atime.cc).
  void SetAtimePolicy(AtimePolicy policy);
  AtimePolicy atime_policy() const;
  // Whether a read of `inode` now would update its atime. The FUSE layer lets an opener
  // keep the kernel's cached pages only when not: a read served from the page cache never
  // reaches us.
  bool AtimeDue(Inode* inode);

  struct statvfs StatFs();
  uint64_t MaxFileSize() const;
  const DiskSuperblock& superblock() const { return sb_; }
  // A copy taken under the metadata lock, for threads that run beside operations which
  // rewrite the superblock (a label change): the media patrol, the control socket.
  DiskSuperblock SuperblockSnapshot() {
    MetaLock lock(this);
    return sb_;
  }
  JournalStats journal_stats() {
    MetaLock lock(this);
    return journal_->stats();
  }
  Region* region() { return region_.get(); }
  // For the media patrol (media_verify.h): whether data AU `au` holds something
  // (allocated or quarantined), and how many AUs are free, without the metadata lock.
  bool AuInUse(uint64_t au) const { return space_.AuAllocated(au); }
  uint64_t FreeAuCount() const { return space_.free_aus(); }
  // Checks one metadata record's bytes (its checksum): picks the good copy (ReadMeta).
  using MetaCheck = std::function<Status(const void* bytes)>;
  // Inodes marked sick (both copies of their metadata bad) and why: `udaxctl health`.
  std::vector<std::pair<uint64_t, std::string>> SickInodes() EXCLUDES(mu_);
  // Free AU pairs kept back for metadata copies (0 without copies).
  uint64_t PooledMetaPairs() const { return space_.pooled_pairs(); }
  bool shut_down() const { return shutdown_; }
  // Whether this mount found a committed transaction in the journal and applied it (the
  // last unmount was not clean). For `udaxctl health`.
  bool replayed_at_mount() const { return replayed_at_mount_; }
  // Enters the shut-down state: every later operation fails with EIO and nothing more is
  // written; what was acknowledged is on media, and the next mount replays the journal.
  void Shutdown(const std::string& why);

 private:
  Filesystem() = default;
  friend class DirOps;
  friend class Repairer;  // fsck --repair (fs_repair.cc)
  friend class UpgradeRun;  // upgrade.h: metadata copies turned on in place
  friend class Media;     // media.h: the media part
  friend class Checker;   // checker.h: the check part

  // What a read-write mount does before its first operation (fs_mount.cc): checks the
  // orphan list, restores the primary superblock, bumps the mount count, frees orphans.
  // Clears options_.read_only once every check has passed. REQUIRES mu_ (or no sharing)
  Status StartWriting(bool restore_primary) REQUIRES(mu_);
  // The damage a read-write mount refuses in the journal state block and the bitmaps'
  // fixed bits, one message per damaged structure (empty when sound). Asked by
  // MountRegion and again by MakeWritable, for a mount that started read-only.
  std::vector<std::string> FixedMetadataDamage() const REQUIRES(mu_);

  // --- inodes (fs_inode.cc) ---
  Result<Inode*> Get(uint64_t ino) REQUIRES(mu_);
  Result<Inode*> AllocInode(uint32_t mode, const Caller& caller, Inode* parent) REQUIRES(mu_);
  void StageInode(Inode* inode) REQUIRES(mu_);
  void FillStat(const Inode& inode, struct stat* st) const;
  EntryOut MakeEntry(Inode* inode);  // +1 nlookup
  void MaybeEvict(Inode* inode) REQUIRES(mu_);
  // Frees an inode whose last link and reference are gone (or puts it on the orphan
  // list while it is still open). REQUIRES mu_
  Status DropLink(Inode* inode) REQUIRES(mu_);
  Status FreeInode(Inode* inode) REQUIRES(mu_);
  Status RemoveOrphan(Inode* inode) REQUIRES(mu_);

  Result<Inode*> PrepareNewName(uint64_t parent, std::string_view name) REQUIRES(mu_);
  // For PathOf (fs_namespace.cc), REQUIRE mu_: the entries of `dino` if it is a live
  // directory (`evict`: drop it from the cache again if only this loaded it); and a name
  // of `inode` (its directory and the name), from its parent hint or, when the hint is
  // stale, by a search of at most `budget` directory entries. NotFound when none is found.
  Status ListForPath(uint64_t dino, std::vector<DirListEntry>* out, bool evict) REQUIRES(mu_);
  Result<std::pair<uint64_t, std::string>> NameOf(Inode* inode, uint64_t budget) REQUIRES(mu_);
  // AUs one namespace operation may need at most: an overflow block for the new entry and
  // an extent block to map it, a new directory's first bucket, a symlink's target. Bucket
  // splits are skipped when space is this short (see DirOps::Insert). Inherited ACLs
  // need their own AUs on top (InheritAttrs checks).
  static constexpr uint64_t kNamespaceOpAus = 4;

  // --- extended attributes (fs_xattr.cc); all REQUIRE mu_ unless noted ---
  Status LoadXattrs(Inode* inode) REQUIRES(mu_);
  // Looks up `ino` and pins it (nopen) so the caller can drop mu_ and take inode->rw
  // before mu_, as every change to an extent map must. Checks that we are writable.
  Result<Inode*> PinForExtentChange(uint64_t ino);  // takes mu_
  // Writes inode->xattrs to media in txn_: grows or shrinks the blob's AUs, stages the
  // blob and the inode. Callers check space first (XattrAusNeeded).
  Status StageXattrs(Inode* inode) REQUIRES(mu_);
  uint64_t XattrAus(size_t blob_bytes) const;
  // A symlink whose target is inline (in the extent slots' bytes) gets it moved to an AU,
  // so that it can map an attribute blob.
  Status MoveInlineTargetOut(Inode* inode) REQUIRES(mu_);
  // Largest blob this filesystem takes: kMaxXattrBytes, or less on a small journal.
  size_t XattrBlobLimit() const;
  // What a new inode under `dir` starts with: the mode after the umask or the parent's
  // default ACL, and the ACLs it inherits.
  struct NewInodeAttrs {
    uint32_t mode = 0;
    XattrMap xattrs;
  };
  Result<NewInodeAttrs> InheritAttrs(Inode* dir, uint32_t mode, const Caller& caller) REQUIRES(mu_);
  // Allocates an inode and gives it `attrs` (AllocInode + the inherited ACLs).
  Result<Inode*> AllocInodeWith(const NewInodeAttrs& attrs, const Caller& caller, Inode* dir) REQUIRES(mu_);
  // chmod of an inode with an access ACL: the ACL follows the new mode.
  Status ChmodAcl(Inode* inode) REQUIRES(mu_);

  // --- extents (fs_extent.cc) ---
  Status LoadExtents(Inode* inode) REQUIRES(mu_);
  // Maps file AU -> phys AU; *run = AUs mapped contiguously from there, or the hole length
  // (bounded by `limit`) with return 0 when unmapped.
  uint64_t MapAu(const Inode& inode, uint64_t file_au, uint64_t limit, uint64_t* run) const;
  Status InsertExtent(Inode* inode, uint64_t file_au, uint64_t phys_au, uint64_t len) REQUIRES(mu_);
  // Unmaps file AUs [from, to); frees their AUs. Commits finished chunks (each one
  // consistent) when the transaction outgrows TxnBudget; the caller commits the rest.
  Status RemoveExtents(Inode* inode, uint64_t from, uint64_t to) REQUIRES(mu_);
  // Replaces the extent at `old_key` by `e` at `new_key`, in the same slot (e.slot ignored).
  Status SetExtent(Inode* inode, uint64_t old_key, uint64_t new_key, Extent e) REQUIRES(mu_);
  // A new extent in a new slot (ENOSPC only if an extent block is needed and none is free).
  Status AddExtentSlot(Inode* inode, uint64_t file_au, uint64_t phys_au, uint32_t len) REQUIRES(mu_);
  // Forgets the extent at `file_au` and its slot; its AUs are the caller's business.
  Status DropExtentSlot(Inode* inode, uint64_t file_au) REQUIRES(mu_);
  // Log bytes a multi-step operation lets one transaction grow to before it commits a
  // step: a quarter of the journal slot, so a step may overshoot without overflowing it.
  uint64_t TxnBudget() const;
  Status WriteSlot(Inode* inode, uint32_t slot, uint64_t file_au, const Extent& e) REQUIRES(mu_);
  Status GrowSlots(Inode* inode) REQUIRES(mu_);
  // Extent blocks `new_extents` more extents would need (to reserve space for them).
  uint64_t ExtentBlocksNeeded(const Inode& inode, uint64_t new_extents) const;
  Status ShrinkSlots(Inode* inode) REQUIRES(mu_);
  Status TruncateBlocks(Inode* inode, uint64_t new_size) REQUIRES(mu_);
  // Several devices: where file data at file AU `from`, with nothing before it to go on
  // from, should start -- on a device with room for `count` AUs or for the rest of the
  // file's size, whichever is more (a file sized before it is written, ftruncate then
  // writes one request at a time, must not fill its home device and spill); 0 (the
  // owner's home) when the home has room or no device has more.
  // (Not under mu_: the write path reserves without it; reads the geometry alone.)
  uint64_t FirstDataGoal(const Inode& inode, uint64_t from, uint64_t count) const;
  // Data area helpers: allocate-and-zero AUs mapped at file AUs [from, from+count).
  // `in_all`: the AUs the caller allocates from `from` on in several calls (a range
  // taken in steps), for where the first call starts (FirstDataGoal).
  Status AllocateRange(Inode* inode, uint64_t from, uint64_t count, bool zero,
                       uint64_t in_all = 0) REQUIRES(mu_);

  // Allocates reserved AUs in txn_: the bitmap and the reverse map together, and the
  // partners of a copied metadata run (reserved with it by ReserveCopied).
  void StageAllocAus(const Run& run, const Owner& owner) REQUIRES(mu_);
  // Stages the reverse-map records naming `owner` for `run` in txn_.
  void StageOwner(const Run& run, const Owner& owner) REQUIRES(mu_);
  Owner DataOwner(const Inode& inode, uint64_t file_au) const;

  // Frees AUs in txn_, except bad ones, which become quarantined (media.h). `copied`:
  // a metadata run whose partners (the second copy) go too.
  void StageFreeAus(const Run& run, bool copied) REQUIRES(mu_);
  // Whether metadata of this kind has a second copy on this image (dynamic kinds only;
  // the inode table's copy is static).
  bool IsCopied(OwnerKind kind) const;
  // Owners under mu_: the reverse map's answer, or the forward maps' when its records
  // cannot be read or verified (Checker::ForwardOwners). EINVAL outside the filesystem;
  // EIO when neither can say.
  Result<std::vector<OwnerRange>> OwnersLocked(uint64_t phys, uint64_t len) REQUIRES(mu_);

  // EPERM when the inode's chattr flags forbid a change (fs_attr.cc): RefuseImmutable
  // for writes and new names in a directory; RefuseImmutableOrAppend for what may_delete,
  // vfs_link, notify_change and xattr_permission refuse on either flag.
  static Status RefuseImmutable(const Inode& inode);
  static Status RefuseImmutableOrAppend(const Inode& inode);

  // --- access times (fs_atime.cc) ---
  void TouchAtime(Inode* inode);
  void TouchAtimeLocked(Inode* inode) REQUIRES(mu_);
  // Writable views stored into the file since we last looked: mtime and ctime become now
  // (lazily persisted, as a FUSE overwrite's).
  void StampViewWrites(Inode* inode) REQUIRES(mu_);
  Result<ReadView> PrepareViewLocked(Inode* inode, size_t max_extents, bool writable);
  // Why no writable view (nor reservation) of `inode` may be had: a read-only mount, an
  // immutable or append-only file, a set-user/group-ID one (EPERM).
  Status RefuseViewWriter(const Inode& inode) REQUIRES(mu_);
  // --- space past EOF for writable views (fs_view_reserve.cc) ---
  // The size stat and reads see: the inode's, or further when writable views stored past
  // it (the end they published, never past view_limit). REQUIRES inode->rw or mu_.
  uint64_t ViewSize(const Inode& inode) const;
  // Makes that the inode's size (dirty: persisted as lazily as times, at fsync, release
  // or unmount). FoldViewSize: REQUIRES inode->rw exclusive, NOT mu_; the Locked one
  // both.
  void FoldViewSize(Inode* inode) EXCLUDES(mu_);
  void FoldViewSizeLocked(Inode* inode) REQUIRES(mu_);
  // Every view of the file was revoked and has stopped storing (rw exclusive, NOT mu_):
  // takes the size they published and starts the word afresh; none may extend any more.
  void ViewsRevoked(Inode* inode) EXCLUDES(mu_);
  // PrepareReadView's reservation: `bytes` from `at` (from the size when `at` is at most
  // the size). REQUIRES inode->rw exclusive, NOT mu_.
  Status ReserveForViews(Inode* inode, uint64_t bytes, uint64_t at = 0) EXCLUDES(mu_);
  // PrepareReadView's fill: the holes of file AUs under [offset, offset+length), clipped
  // to the size, allocated and zeroed. REQUIRES inode->rw exclusive, NOT mu_.
  Status FillForViews(Inode* inode, uint64_t offset, uint64_t length) EXCLUDES(mu_);
  // The last writable view ended (or none came of a reservation): frees what
  // reservations left past EOF, and the AUs fills allocated that are still all zeros.
  // REQUIRES inode->rw exclusive, NOT mu_.
  void TrimViewReserve(Inode* inode) EXCLUDES(mu_);
  // TrimViewReserve's part for reservations (REQUIRES inode->rw exclusive, NOT mu_).
  void TrimReserved(Inode* inode) EXCLUDES(mu_);
  // TrimViewReserve's part for fills: punches the AUs of `filled` that read all zeros.
  // REQUIRES inode->rw exclusive, NOT mu_.
  void TrimViewFills(Inode* inode, std::vector<std::pair<uint64_t, uint64_t>> filled) EXCLUDES(mu_);
  // Punches file byte ranges `ranges` (whole AUs) and commits, in steps; a failure leaves
  // the rest allocated, logged as `what`. REQUIRES mu_, inode->rw exclusive.
  void PunchTrimmed(Inode* inode, const std::vector<std::pair<uint64_t, uint64_t>>& ranges, const char* what)
      REQUIRES(mu_);
  // What fills may still allocate in `inode`: kMaxViewFill less what they hold, and at
  // most a sixteenth of the free space. REQUIRES mu_.
  uint64_t FillBudget(const Inode& inode) const REQUIRES(mu_);
  // Of the file AUs mapped under byte ranges `ranges`, those that read all zeros, as
  // byte ranges (a run of them is one); an AU that cannot be read is not among them.
  // REQUIRES inode->rw exclusive (the extents loaded), NOT mu_ (it reads them all).
  std::vector<std::pair<uint64_t, uint64_t>> ZeroAuRuns(const Inode& inode,
                                                        const std::vector<std::pair<uint64_t, uint64_t>>& ranges)
      EXCLUDES(mu_);
  // The end of the file's last data extent (its attribute blob is not data). REQUIRES
  // inode->rw or mu_.
  uint64_t FileDataEnd(const Inode& inode) const;
  static constexpr size_t kContended = SIZE_MAX;
  Result<size_t> ReadLocked(Inode* inode, uint64_t off, size_t n, char* buf, bool check_writers);
  Result<size_t> CopyFileRangeOnce(Inode* in, uint64_t off_in, Inode* out, uint64_t off_out, size_t len,
                                   PrivDrop* drop, bool revoke_in);
  bool AtimeDueLocked(const Inode& inode, const timespec& now) const REQUIRES(mu_);
  // --- data (fs_data.cc) ---
  // Write with inode->rw already held exclusive (copy_file_range holds two inodes' locks).
  Result<size_t> WriteLocked(Inode* inode, uint64_t off, const char* buf, size_t n,
                             PrivDrop* drop);
  // Stages `drop` into the open transaction unless it already was (see PrivDrop). Call
  // after the change's last failure point and before its Commit: what is staged is
  // committed by whoever commits next.
  Status StagePrivDrop(Inode* inode, PrivDrop* drop) REQUIRES(mu_);
  // Whether `drop` still has anything to do to `inode` (false quickly for nearly all).
  static bool PrivDropPending(const Inode& inode, const PrivDrop* drop);
  // SetAttr once the inode is pinned (and, for a size change, its rw held); takes mu_.
  Result<struct stat> SetAttrPinned(Inode* inode, const SetAttrIn& in) EXCLUDES(mu_);
  // AUs an allocating write reserved for a hole: file AUs [file_au, file_au + phys.len)
  // go to `phys`. Reserved in DRAM only until the write's transaction maps them.
  struct HoleFill {
    uint64_t file_au = 0;
    Run phys;
  };
  // Reserves AUs for every hole of file AUs [first_au, last_au]. REQUIRES inode.rw
  // exclusive (the extent map holds still), not mu_: the space lock is enough.
  Result<std::vector<HoleFill>> ReserveHoles(const Inode& inode, uint64_t first_au,
                                             uint64_t last_au);
  // Where a write of [off, end) with `hole_aus` AUs of holes must stop to fit the free
  // space (`off`: not one byte fits). REQUIRES inode.rw exclusive, as ReserveHoles.
  uint64_t WritableEnd(const Inode& inode, uint64_t off, uint64_t end, uint64_t hole_aus);
  // Writes [off, off+n) into the mapped AUs and the reserved `fills` (zeroing what the
  // write leaves of them) and persists it. REQUIRES inode->rw exclusive, NOT mu_: this
  // is the data copy, which must not stall metadata.
  Status FillAndPersist(Inode* inode, uint64_t off, const char* buf, size_t n,
                        const std::vector<HoleFill>& fills);
  // EPERM for a write at `off` the chattr flags forbid (fs_data.cc). REQUIRES inode.rw
  static Status CheckWriteFlags(const Inode& inode, uint64_t off);
  // Before the size grows to `new_size`: zeroes the stale bytes past the old EOF in its
  // last AU (truncation leaves them), durably. REQUIRES inode->rw exclusive.
  Status ZeroPastEof(Inode* inode, uint64_t new_size);
  // EIO for a file-data write that a device loss overlapped (Region::loss_epoch).
  static Status LostDuringWrite();

  // --- ranges (fs_fallocate.cc) --- REQUIRE inode->rw exclusive and mu_, unless noted.
  // One fallocate mode each, called with the arguments checked; the caller commits.
  Status AllocateSpace(Inode* inode, uint64_t off, uint64_t len, bool keep_size) REQUIRES(mu_);
  Status PunchHole(Inode* inode, uint64_t off, uint64_t len) REQUIRES(mu_);
  Status ZeroRange(Inode* inode, uint64_t off, uint64_t len, bool keep_size) REQUIRES(mu_);
  Status CollapseRange(Inode* inode, uint64_t off, uint64_t len) REQUIRES(mu_);
  Status InsertRange(Inode* inode, uint64_t off, uint64_t len) REQUIRES(mu_);
  // Times, inode and commit after a range operation, whether it succeeded or stopped
  // between two consistent steps; returns `st` (or the commit's error).
  Status FinishRange(Inode* inode, Status st) REQUIRES(mu_);
  // StageInode + Commit: ends one step of a multi-transaction operation.
  Status CommitStep(Inode* inode) REQUIRES(mu_);
  // Maps zeroed AUs into every hole of file AUs [from, to), in steps of TxnBudget.
  Status AllocateHoles(Inode* inode, uint64_t from, uint64_t to) REQUIRES(mu_);
  uint64_t CountHoleAus(const Inode& inode, uint64_t from, uint64_t to) const;
  // The holes among file AUs [from, to), as file byte ranges.
  std::vector<std::pair<uint64_t, uint64_t>> HoleRanges(const Inode& inode, uint64_t from, uint64_t to) const;
  // Zeroes, durably and in place, the mapped bytes of file bytes [from, to).
  Status ZeroMapped(const Inode& inode, uint64_t from, uint64_t to);
  // Zeroes the bytes past EOF in the last AU, which truncation leaves stale: a shift
  // interrupted between steps would show them inside the file.
  Status ZeroStaleTail(const Inode& inode);
  // Raises the size to `new_size` (staged with the inode), zeroing stale bytes first.
  Status GrowSize(Inode* inode, uint64_t new_size);
  // Whether unmapping file AUs [from, to) cuts one extent in two (needs one more slot).
  bool SplitsExtent(const Inode& inode, uint64_t from, uint64_t to) const;
  // Makes file AU `au` an extent boundary (splitting the extent across it).
  Status SplitExtentAt(Inode* inode, uint64_t au) REQUIRES(mu_);
  // Moves the extents of file AUs [from, kXattrFileAu) by `delta` AUs: down lowest first,
  // up highest first, so every move lands on unmapped file AUs.
  Status ShiftDown(Inode* inode, uint64_t from, uint64_t delta) REQUIRES(mu_);
  Status ShiftUp(Inode* inode, uint64_t from, uint64_t delta) REQUIRES(mu_);
  // Moves the extent at `file_au` by `delta` AUs, or the piece of it whose reverse-map
  // records still fit in the transaction; returns the AUs moved.
  Result<uint64_t> MoveExtent(Inode* inode, uint64_t file_au, uint64_t delta, bool up) REQUIRES(mu_);
  // AUs whose reverse-map records still fit in the transaction (with room for the slots).
  uint64_t RmapRoom() const REQUIRES(mu_);
  // The copy of a source hole into `out`: whole AUs punched, partial ones zeroed, size
  // grown over the range. REQUIRES out->rw exclusive (takes mu_).
  Status CopyHole(Inode* out, uint64_t pos, uint64_t n, PrivDrop* drop);

  // --- AUs a metadata operation counts on (fs_extent.cc) ---
  // Allocating writes reserve AUs without mu_ (Space's own locks), so a check of free
  // space under mu_ no longer promises that the AUs are still there a moment later.
  // Operations therefore hold what they count on: HoldAus makes sure at least `n` AUs
  // are reserved for this critical section (reserving the difference, near `goal`, in
  // `ino`'s group), or returns false having changed nothing; TakeAus, the allocation of
  // every metadata path, takes from the hold first. What is left goes back when mu_ is
  // released (MetaLock), so a hold never outlives its critical section.
  // On an image with metadata copies the hold is of AU pairs, and `copied` says whether
  // the AUs taken are metadata (first copies, each with its partner) or file data.
  bool HoldAus(uint64_t n, uint64_t goal, uint64_t ino) REQUIRES(mu_);
  Result<std::vector<Run>> TakeAus(uint64_t count, uint64_t goal, uint64_t ino, bool copied)
      REQUIRES(mu_);
  void ReturnHeldAus() REQUIRES(mu_);
  // Free AUs as this critical section sees them: Space's free count and its own hold.
  uint64_t FreeAus() const REQUIRES(mu_);
  // AUs `n` metadata AUs take: twice as many with copies.
  uint64_t MetaAusFor(uint64_t n) const { return HasMetaCopies(sb_) ? 2 * n : n; }
  // mu_ as every operation takes it: a MutexLock that also returns the critical section's
  // held AUs on release.
  class SCOPED_CAPABILITY MetaLock {
   public:
    explicit MetaLock(Filesystem* fs) ACQUIRE(fs->mu_) : fs_(fs) { fs_->mu_.Lock(); }
    ~MetaLock() RELEASE() {
      fs_->mu_.AssertHeld();
      fs_->ReturnHeldAus();
      fs_->mu_.Unlock();
    }
    MetaLock(const MetaLock&) = delete;
    MetaLock& operator=(const MetaLock&) = delete;

   private:
    Filesystem* const fs_;
  };
  // An inode pinned by PinForExtentChange, then held for the change: its rw lock
  // exclusive, then mu_ (the lock order), released as MetaLock releases it (the held AUs
  // go back). The pin kept the inode in the cache while the locks were taken; it is
  // dropped while mu_ is still held.
  class SCOPED_CAPABILITY ExclusiveInode {
   public:
    ExclusiveInode(Filesystem* fs, Inode* inode) ACQUIRE(fs->mu_) : fs_(fs), inode_(inode) {
      inode_->rw.Lock();
      fs_->mu_.Lock();
    }
    ~ExclusiveInode() RELEASE() {
      fs_->mu_.AssertHeld();
      inode_->nopen--;
      fs_->ReturnHeldAus();
      fs_->mu_.Unlock();
      inode_->rw.Unlock();
    }
    ExclusiveInode(const ExclusiveInode&) = delete;
    ExclusiveInode& operator=(const ExclusiveInode&) = delete;

   private:
    Filesystem* const fs_;
    Inode* const inode_;
  };

  // For code that owns the filesystem outright: a mount before it returns the object, and
  // fsck (repair.h), which runs on an unmounted region no one else can reach (the region
  // lock sees to it). Owning it is as good as holding mu_, and this tells the analysis so.
  // Never call it where another thread can reach the filesystem.
  void AssumeUnshared() const ASSERT_CAPABILITY(mu_) {}

  // --- metadata copies (meta_copies.cc) ---
  // Reads metadata bytes [off, off+n) (first-copy offsets) as the transaction would leave
  // them, from the first copy if it reads and `valid` (may be empty) accepts it, else
  // from the second, which then mends the first (MendCopy). The first copy's error
  // (with the second's) when neither serves, or when the bytes have no second copy.
  Status ReadMeta(uint64_t off, void* dst, size_t n, const MetaCheck& valid) REQUIRES(mu_);
  template <typename T>
  Status ReadMetaObj(uint64_t off, T* obj, const MetaCheck& valid) REQUIRES(mu_) {
    return ReadMeta(off, obj, sizeof(T), valid);
  }
  // Writes the media bytes of the good copy at `good` over the bad copy's [bad, bad+n):
  // with `whole_blocks` (a copy that does not read), over the whole 512-byte blocks
  // around it, and clears their poison. EOPNOTSUPP unless the two are a pair of copies.
  Status MendCopy(uint64_t good, uint64_t bad, uint64_t n, bool whole_blocks) REQUIRES(mu_);
  // Whether metadata byte `off` and its CopyOffset really are two copies of one record:
  // the inode tables, or a data AU whose partner the reverse map names as its copy.
  bool IsPairedCopy(uint64_t off) const;
  // Writes a new metadata AU's bytes (before the transaction that maps it) to both
  // copies, durably.
  Status WriteFreshMeta(uint64_t off, const void* data, size_t n);
  std::atomic<uint64_t> copies_served_{0};  // reads served from a second copy
  // Inodes whose own metadata lost both copies (Media): Get refuses them with EIO, and
  // `udaxctl health` lists them. Until unmount: the next mount finds the bad blocks again.
  void MarkSickLocked(uint64_t ino, std::string why) REQUIRES(mu_);
  std::map<uint64_t, std::string> sick_ GUARDED_BY(mu_);
  // Whether a read that finds a bad copy mends it: not during fsck's check without
  // --repair, which must change nothing it was not asked to (set before sharing).
  bool mend_copies_ GUARDED_BY(mu_) = true;

  // --- journal ---
  Status Commit() REQUIRES(mu_);  // commits txn_; shuts down on failure
  Status CheckWritable() const;
  void ShutdownLocked(const std::string& why) REQUIRES(mu_);
  std::unique_ptr<Region> region_;
  DiskSuperblock sb_{};
  MountOptions options_;
  std::unique_ptr<Journal> journal_;
  DiskJournalState state_{};
  // The lock order, written once: an inode's rw (data path) -> the check lock or the
  // media lock -> mu_ (metadata) -> the space lock (a leaf, inside Space). The analysis
  // checks every step after the first (an inode's rw is not a member it can name).
  Checker checker_{this};  // the checks: its own lock (checker.h)
  Media media_{this};      // owners of bad media and the actions: its own lock (media.h)
  Mutex mu_ ACQUIRED_AFTER(checker_.order_mutex(), media_.order_mutex())
      ACQUIRED_BEFORE(space_.order_mutex());
  Space space_;  // bitmaps, reverse map, quarantine: its own lock (space.h)
  std::vector<Run> held_ GUARDED_BY(mu_);  // HoldAus
  uint64_t held_count_ GUARDED_BY(mu_) = 0;
  Txn txn_ GUARDED_BY(mu_);  // the transaction being built
  std::unordered_map<uint64_t, std::unique_ptr<Inode>> inodes_ GUARDED_BY(mu_);
  std::atomic<bool> shutdown_{false};  // read without mu_ on the data path
  bool replayed_at_mount_ = false;     // set once in Mount, before sharing
  std::atomic<AtimeUpdate> atime_mode_{AtimeUpdate::kRelative};
  std::atomic<bool> atime_dirs_{true};
  std::string shutdown_reason_;
  RevokeHook revoke_hook_;  // set before serving
  // REQUIRES inode->rw exclusive for `ino` (or mu_ for ino 0 at shutdown), and NOT mu_
  // otherwise: see set_revoke_hook.
  // Read views of the file go void at once (its view page's generation moves), then every
  // lease is told.
  Status Revoke(Inode* inode, uint64_t from, uint64_t to) {
    if (!inode->view_page) return revoke_hook_ ? revoke_hook_(inode->ino, from, to, false) : Status::Ok();
    inode->view_page->Invalidate();
    Status st = revoke_hook_ ? revoke_hook_(inode->ino, from, to, false) : Status::Ok();
    if (st.ok()) ViewsRevoked(inode);  // views are whole-file leases: all of them went
    return st;
  }
  // Every lease of every file (shutdown; REQUIRES mu_, see above).
  Status RevokeAll() { return revoke_hook_ ? revoke_hook_(0, 0, UINT64_MAX, false) : Status::Ok(); }
  // The read views of `inode` alone, before an allocation or a size change (same locking).
  Status RevokeViews(Inode* inode) {
    if (!inode->view_page) return Status::Ok();  // no view was ever granted
    inode->view_page->Invalidate();
    Status st = revoke_hook_ ? revoke_hook_(inode->ino, 0, UINT64_MAX, true) : Status::Ok();
    if (st.ok()) ViewsRevoked(inode);
    return st;
  }
};

}  // namespace udax
