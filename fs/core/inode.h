// inode.h -- the in-core inode: a DRAM copy of the media inode, its extent map, and the
// reference counts the kernel and open files hold on it.
//
// Locking (see filesystem.h for the order): `rw` guards the data path (size and extents
// for reads: shared; writes and truncation: exclusive). Every change to `d` or `extents`
// also holds the filesystem's metadata mutex, so metadata code may read them under it.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "fs/base/mutex.h"
#include "fs/core/view_page.h"
#include "fs/format/disk_format.h"
#include "fs/format/xattr_blob.h"

namespace udax {

// One mapping of the in-core extent map: file AUs [key, key+len) -> phys AUs.
struct Extent {
  uint64_t phys_au = 0;
  uint32_t len = 0;
  uint32_t slot = 0;  // index of the media slot holding it
};

struct ExtentMap {
  bool loaded = false;
  std::map<uint64_t, Extent> by_file;   // file_au -> extent
  std::vector<uint64_t> slot_key;       // slot index -> file_au of the extent in it
  std::vector<uint64_t> blocks;         // AUs of the extent-block chain, in order
};

struct Inode {
  explicit Inode(uint64_t number) : ino(number) {}
  Inode(const Inode&) = delete;
  Inode& operator=(const Inode&) = delete;

  const uint64_t ino;
  DiskInode d{};
  ExtentMap extents;
  std::optional<XattrMap> xattrs;  // loaded on first use (fs_xattr.cc)
  SharedMutex rw;
  uint64_t nlookup = 0;   // kernel references (lookup/create replies minus forgets)
  uint32_t nopen = 0;     // open file handles
  // An O_DIRECT write bypassed the kernel's page cache since an opener last dropped it
  // (the FUSE layer's cache policy, fs/fuse/fuse_ops.cc).
  std::atomic<bool> direct_written{false};
  // The words this file's read views check (view_page.h): made by the first view, under
  // rw shared and mu_; used under rw exclusive; dropped (after a last Invalidate) when
  // the last view ends (Filesystem::EndReadView), so a file costs the daemon a memfd
  // only while views of it live.
  std::unique_ptr<ViewPage> view_page;
  uint32_t view_holders = 0;  // views granted and not ended (under mu_)
  // Of those, the writable ones. Changed with rw exclusive and mu_ both held; read under
  // either, or alone as a hint. While it is not 0, view_page exists and stays.
  std::atomic<uint32_t> view_writers{0};
  // Writable direct maps (libudax): their stores are not counted, so while they live
  // every GetAttr stamps mtime, and the kernel caches no attributes (under mu_).
  std::atomic<uint32_t> map_writers{0};
  // Set when a writable view or map is granted; cleared by an Fsync that flushed the
  // file's extents once none is left. Their stores bypass the daemon and sit in CPU
  // caches on devdax and fsdax, where a flush from any mapping of the line makes them
  // durable: an fsync by anyone (another descriptor, another process) must do it, also
  // after the view or map has ended (Filesystem::Fsync).
  std::atomic<bool> direct_stores_unflushed{false};
  // Space past EOF that writable views may store into (appends served in the program,
  // issue 21; fs_view_reserve.cc). Changed with rw exclusive and mu_ both held; read
  // under either (past_eof_clean: changed under rw exclusive, with or without mu_, so an
  // atomic).
  //  - view_limit: how far live writable views' extents reach; the size they publish on
  //    the write page is taken only up to it. At most the size when none may extend.
  //  - reserved: the file byte ranges reservations allocated (holes they filled), freed
  //    past EOF when the last writable view ends (XFS trims its speculative
  //    preallocation at close so); forgotten by the program's own fallocate.
  //  - filled: the file byte ranges fills allocated below the size (holes the shim wrote
  //    into, FillForViews), and reservations past a gap ("at"); their AUs that read all
  //    zeros when the last writable view ends are punched again (the file stays as
  //    sparse as what was written); the program's own fallocate takes its range out.
  //  - past_eof_clean: every allocated AU past the one holding EOF is known to be zero,
  //    so a view may show it as such (the tail of the AU holding EOF is zeroed by whoever
  //    grows the file or reserves). False after a load (a crash may have left
  //    unannounced stores there), a shrinking truncate or collapse, and a store
  //    abandoned by a dead or killed holder; made true by zeroing them, or by finding
  //    none allocated (ZeroPastEof).
  uint64_t view_limit = 0;
  // A reservation was made since the inode was loaded: the kernel's size of it may lag
  // (O_APPEND writes go at the daemon's end: Filesystem::Write).
  bool views_appended = false;
  std::vector<std::pair<uint64_t, uint64_t>> reserved;
  std::vector<std::pair<uint64_t, uint64_t>> filled;
  std::atomic<bool> past_eof_clean{false};
  bool dirty = false;     // `d` has changes (times) not yet on media
  bool orphan = false;    // on the media orphan list (unlinked, still referenced)
  bool freed = false;     // released on media; drop from the cache when unreferenced
  // The name in d.parent's directory was removed while another name remains: the hint may
  // be stale, and the next lookup that finds the inode makes its directory the hint.
  bool parent_stale = false;
};

}  // namespace udax
