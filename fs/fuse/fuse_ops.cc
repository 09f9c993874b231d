// fuse_ops.cc -- each FUSE request: one call into the core, exactly one reply.
//
// Wrappers catch everything (no exception may unwind into libfuse) and map a Status to
// its errno. Nothing is locked here; the core releases its locks before we reply.
#include "fs/fuse/fuse_ops.h"

#include "fs/fuse/fuse_request.h"
#include "fs/fuse/killpriv_v2.h"
#include "fs/fuse/uring_transport.h"

#include "include/udaxfs/ioctl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <syslog.h>

#include <cstring>
#include <memory>
#include <new>
#include <vector>

namespace udax {
namespace {

// How long the kernel may keep an inode's attributes: not at all while writable views
// store into it behind the kernel's back (their mtime moves at our next GetAttr, and
// FUSE_CAP_AUTO_INVAL_DATA then drops the pages the kernel cached).
double AttrTimeout(fuse_req_t req, uint64_t ino) {
  const double t = Ctx(req).config.timeout();
  return t > 0 && Fs(req).HasViewWriters(ino) ? 0.0 : t;
}

fuse_entry_param EntryParam(fuse_req_t req, const EntryOut& e) {
  fuse_entry_param p{};
  p.ino = e.ino;
  p.generation = e.generation;
  p.attr = e.attr;
  p.attr_timeout = AttrTimeout(req, e.ino);
  p.entry_timeout = Ctx(req).config.timeout();
  return p;
}

void ReplyEntry(fuse_req_t req, const EntryOut& e) {
  const fuse_entry_param p = EntryParam(req, e);
  if (fuse_reply_entry(req, &p) == -ENOENT) {
    Fs(req).Forget(e.ino, 1);  // the kernel dropped the request: undo its reference
  }
}

void ReplyEntryResult(fuse_req_t req, const Result<EntryOut>& r) {
  if (r.ok()) {
    ReplyEntry(req, r.value());
  } else {
    fuse_reply_err(req, r.status().code());
  }
}


// Per-handle directory snapshot: readdir offsets are indexes into it, so entries never
// repeat or vanish while a directory is being read, whatever happens to it meanwhile.
struct DirHandle {
  std::vector<DirListEntry> entries;
};

void OpInit(void* userdata, fuse_conn_info* conn) {
  auto* ctx = static_cast<FuseContext*>(userdata);
  conn->max_write = 1u << 20;
  conn->max_read = 0;
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  // The write-back cache only when asked for (-o writeback_cache): a write then returns
  // once it is in the page cache, and reaches the region at write-back, fsync or
  // unmount -- not the default promise that a returned write is on media.
  if (ctx->config.writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) {
    conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  } else {
    if (ctx->config.writeback_cache) syslog(LOG_WARNING, "the kernel offers no write-back cache: writes go through");
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  }
  // No asynchronous direct I/O: for an async O_DIRECT write the kernel drops the page
  // cache only before sending it, never after it completes (generic_file_direct_write
  // returns -EIOCBQUEUED and skips the post-write invalidation; FUSE has no completion
  // hook that does it), so a buffered read racing the write can cache the old bytes for
  // good (generic/451: "get stale data from buffer read"). Synchronous, the invalidation
  // after the write runs. io_submit of direct I/O then waits per request.
  conn->want &= ~FUSE_CAP_ASYNC_DIO;
  // Requests are read with read(2) through the custom I/O of killpriv_v2.cc, which notes
  // each request's kill-suid/sgid bit; a splice read would go around it.
  conn->want &= ~FUSE_CAP_SPLICE_READ;
  if (conn->capable & FUSE_CAP_IOCTL_DIR) conn->want |= FUSE_CAP_IOCTL_DIR;
  if (ctx->config.posix_acl && (conn->capable & FUSE_CAP_POSIX_ACL) &&
      (conn->capable & FUSE_CAP_DONT_MASK)) {
    // We apply the umask or the parent's default ACL ourselves (InheritAttrs): without
    // DONT_MASK the kernel would apply the umask on top and spoil ACL inheritance.
    conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
  }
  if (!ctx->config.cache_auto) conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

void OpDestroy(void* userdata) {
  auto* ctx = static_cast<FuseContext*>(userdata);
  Status st = ctx->fs->Unmount();
  if (!st.ok()) fprintf(stderr, "udaxfs: unmount: %s\n", st.ToString().c_str());
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Guard(req, [&] { ReplyEntryResult(req, Fs(req).Lookup(parent, name)); });
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  try {
    Fs(req).Forget(ino, nlookup);
  } catch (...) {
  }
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  try {
    for (size_t i = 0; i < count; ++i) Fs(req).Forget(forgets[i].ino, forgets[i].nlookup);
  } catch (...) {
  }
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Guard(req, [&] {
    auto st = Fs(req).GetAttr(ino);
    if (!st.ok()) return (void)fuse_reply_err(req, st.status().code());
    fuse_reply_attr(req, &st.value(), AttrTimeout(req, ino));
  });
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  Guard(req, [&] {
    SetAttrIn in;
    in.attr = *attr;
    in.mode = to_set & FUSE_SET_ATTR_MODE;
    in.uid = to_set & FUSE_SET_ATTR_UID;
    in.gid = to_set & FUSE_SET_ATTR_GID;
    in.size = to_set & FUSE_SET_ATTR_SIZE;
    in.atime = to_set & FUSE_SET_ATTR_ATIME;
    in.atime_now = to_set & FUSE_SET_ATTR_ATIME_NOW;
    in.mtime = to_set & FUSE_SET_ATTR_MTIME;
    in.mtime_now = to_set & FUSE_SET_ATTR_MTIME_NOW;
    in.ctime = to_set & FUSE_SET_ATTR_CTIME;
    // A truncate kills as the kernel says; a chown always (chown_common). In the same
    // transaction, so the attributes replied already show it.
    std::optional<PrivDrop> drop;
    if (in.size || in.uid || in.gid) {
      drop = KillPrivsFor(req, in.uid || in.gid || RequestKillsSuidgid(),
                          in.uid || in.gid ? PrivChange::kOwner : PrivChange::kData);
    }
    if (drop) in.drop = &*drop;
    auto st = Fs(req).SetAttr(ino, in);
    if (!st.ok()) return (void)fuse_reply_err(req, st.status().code());
    fuse_reply_attr(req, &st.value(), AttrTimeout(req, ino));
  });
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  Guard(req, [&] {
    auto target = Fs(req).ReadLink(ino);
    if (!target.ok()) return (void)fuse_reply_err(req, target.status().code());
    fuse_reply_readlink(req, target->c_str());
  });
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Guard(req, [&] { ReplyEntryResult(req, Fs(req).Mknod(parent, name, mode, rdev, CallerOf(req))); });
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Guard(req, [&] { ReplyEntryResult(req, Fs(req).Mkdir(parent, name, mode, CallerOf(req))); });
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  Guard(req, [&] { ReplyEntryResult(req, Fs(req).Symlink(parent, name, link, CallerOf(req))); });
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
  Guard(req, [&] { ReplyEntryResult(req, Fs(req).Link(ino, new_parent, new_name)); });
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Guard(req, [&] { ReplyStatus(req, Fs(req).Unlink(parent, name)); });
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Guard(req, [&] { ReplyStatus(req, Fs(req).Rmdir(parent, name)); });
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
              const char* new_name, unsigned int flags) {
  Guard(req, [&] { ReplyStatus(req, Fs(req).Rename(parent, name, new_parent, new_name, flags, CallerOf(req))); });
}

void SetOpenFlags(fuse_req_t req, fuse_file_info* fi, Inode* inode) {
  // No FLUSH at close (FOPEN_NOFLUSH): every write is on media when its reply goes out,
  // locks are the kernel's, so a flush has nothing to do, yet cost a round trip on every
  // close: one of five requests of a create (bench/README.md). Dirty pages of a shared
  // mapping are still written back when the mapping goes (fuse_vma_close) and at fsync.
  fi->noflush = 1;
  if (!Ctx(req).config.cache_auto) {
    fi->direct_io = 1;
  } else {
    // The kernel's pages stay valid (every write goes through it), unless
    // - a read is due to update atime: cached reads never reach us, so this opener starts
    //   from a clean cache and its first read comes here (strictatime, relatime after a
    //   change);
    // - an O_DIRECT write landed since the last opener that dropped the cache: direct
    //   writes bypass the cache, and a buffered reader racing with one (async DIO above
    //   all) may have cached the old bytes (xfstests generic/451). The flag is set after
    //   the write is on media, so this invalidation drops every page read before it.
    //   (Invalidating from the write handler instead deadlocks against writeback:
    //   generic/095.)
    const bool direct_written = inode->direct_written.exchange(false);
    fi->keep_cache = (direct_written || Fs(req).AtimeDue(inode)) ? 0 : 1;
  }
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Guard(req, [&] {
    auto inode = Fs(req).Open(ino, fi->flags);
    if (!inode.ok()) return (void)fuse_reply_err(req, inode.status().code());
    if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
      // libfuse negotiates atomic O_TRUNC: the truncation (and its mtime) is ours to do.
      SetAttrIn in;
      in.size = true;
      in.attr.st_size = 0;
      std::optional<PrivDrop> drop = KillPrivsFor(req, RequestKillsSuidgid());
      if (drop) in.drop = &*drop;
      auto st = Fs(req).SetAttr(ino, in);
      if (!st.ok()) {
        Fs(req).Release(*inode);
        return (void)fuse_reply_err(req, st.status().code());
      }
      AfterPrivDrop(req, ino, in.drop);
    }
    auto handle = std::make_unique<OpenFile>(OpenFile{*inode, fi->flags});
    fi->fh = reinterpret_cast<uint64_t>(handle.get());
    SetOpenFlags(req, fi, *inode);
    if (fuse_reply_open(req, fi) == -ENOENT) {
      Fs(req).Release(*inode);
    } else {
      handle.release();  // OpRelease deletes it
    }
  });
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  Guard(req, [&] {
    auto r = Fs(req).Create(parent, name, mode, fi->flags, CallerOf(req));
    if (!r.ok()) return (void)fuse_reply_err(req, r.status().code());
    auto& [entry, inode] = r.value();
    auto handle = std::make_unique<OpenFile>(OpenFile{inode, fi->flags});
    fi->fh = reinterpret_cast<uint64_t>(handle.get());
    SetOpenFlags(req, fi, inode);
    const fuse_entry_param p = EntryParam(req, entry);
    if (fuse_reply_create(req, &p, fi) == -ENOENT) {
      Fs(req).Release(inode);
      Fs(req).Forget(entry.ino, 1);
    } else {
      handle.release();  // OpRelease deletes it
    }
  });
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  Guard(req, [&] {
    // Straight from the region where that is safe: the kernel copies the reply out of our
    // mapping, one copy fewer than through a buffer (bench/README.md, sequential read).
    // On a ring entry: straight into the entry's payload, which the kernel copies from.
    size_t ring_size = 0;
    if (char* ring = UringReplyBuffer(&ring_size); ring != nullptr && size <= ring_size) {
      auto n = Fs(req).Read(FileOf(fi), static_cast<uint64_t>(off), size, ring);
      if (!n.ok()) return (void)fuse_reply_err(req, n.status().code());
      return (void)fuse_reply_buf(req, ring, *n);
    }
    auto reply = [req](const char* p, size_t n) { fuse_reply_buf(req, p, n); };
    auto in_place = Fs(req).ReadInPlace(FileOf(fi), static_cast<uint64_t>(off), size, reply);
    if (!in_place.ok()) return (void)fuse_reply_err(req, in_place.status().code());
    if (*in_place) return;
    // One buffer per thread, grown to the largest request seen (max_read is 1 MiB).
    thread_local std::vector<char> buf;
    if (buf.size() < size) buf.resize(size);
    auto n = Fs(req).Read(FileOf(fi), static_cast<uint64_t>(off), size, buf.data());
    if (!n.ok()) return (void)fuse_reply_err(req, n.status().code());
    fuse_reply_buf(req, buf.data(), *n);
  });
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi) {
  Guard(req, [&] {
    // write(2), not the writeback of mmap'd pages (which file_remove_privs never covered).
    std::optional<PrivDrop> drop;
    if (!fi->writepage) drop = KillPrivsFor(req, RequestKillsSuidgid());
    // O_APPEND (the kernel sends the description's flags with each write, F_SETFL too):
    // at the daemon's end of the file, not the kernel's, which may be behind what the
    // preload shim appended without it (Filesystem::Write).
    const bool append = (fi->flags & O_APPEND) && !fi->writepage;
    uint64_t written_at = static_cast<uint64_t>(off);
    auto n = Fs(req).Write(FileOf(fi), static_cast<uint64_t>(off), buf, size,
                           drop ? &*drop : nullptr, append, &written_at);
    if (!n.ok()) return (void)fuse_reply_err(req, n.status().code());
    // Not where the kernel put it: its size (and, through the size and mtime, the pages
    // it cached at its offset) is asked for again at the next stat or read. Attributes
    // only: dropping pages from here deadlocks against the write (see SetOpenFlags).
    if (written_at != static_cast<uint64_t>(off) && Ctx(req).session) {
      fuse_lowlevel_notify_inval_inode(Ctx(req).session, ino, -1, 0);
    }
    AfterPrivDrop(req, ino, drop ? &*drop : nullptr);
    if ((HandleOf(fi)->flags & O_DIRECT) && !fi->writepage) {
      FileOf(fi)->direct_written.store(true);  // see SetOpenFlags
    }
    fuse_reply_write(req, *n);
  });
}

// Only for kernels without FOPEN_NOFLUSH (before 5.17): see SetOpenFlags.
void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  std::unique_ptr<OpenFile> handle(HandleOf(fi));
  try {
    Fs(req).Release(handle->inode);
  } catch (...) {
  }
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  Guard(req, [&] { ReplyStatus(req, Fs(req).Fsync(FileOf(fi), datasync != 0)); });
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Guard(req, [&] {
    auto entries = Fs(req).ListDir(ino);
    if (!entries.ok()) return (void)fuse_reply_err(req, entries.status().code());
    auto handle = std::make_unique<DirHandle>();
    handle->entries = std::move(entries).value();
    fi->fh = reinterpret_cast<uint64_t>(handle.get());
    if (fuse_reply_open(req, fi) == 0) handle.release();
  });
}

void DoReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
               bool plus) {
  Guard(req, [&] {
    auto* handle = reinterpret_cast<DirHandle*>(fi->fh);
    if (off == 0) {
      // rewinddir: a fresh snapshot, so a reader that starts over sees the present.
      auto entries = Fs(req).ListDir(ino);
      if (entries.ok()) handle->entries = std::move(entries).value();
    }
    std::vector<char> buf(size);
    size_t used = 0;
    for (size_t i = static_cast<size_t>(off); i < handle->entries.size(); ++i) {
      const DirListEntry& e = handle->entries[i];
      size_t need;
      if (plus) {
        fuse_entry_param p{};
        const bool dot = e.name == "." || e.name == "..";
        if (!dot) {
          auto r = Fs(req).Lookup(ino, e.name);
          if (!r.ok()) continue;  // removed since the snapshot
          p = EntryParam(req, *r);
        } else {
          p.attr.st_ino = e.ino;
          p.attr.st_mode = S_IFDIR;
        }
        need = fuse_add_direntry_plus(req, buf.data() + used, size - used, e.name.c_str(), &p,
                                      static_cast<off_t>(i + 1));
        if (need > size - used) {
          if (!dot) Fs(req).Forget(p.ino, 1);  // not sent: give the reference back
          break;
        }
      } else {
        struct stat st {};
        st.st_ino = e.ino;
        st.st_mode = static_cast<mode_t>(DTTOIF(e.type));
        need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                                 static_cast<off_t>(i + 1));
        if (need > size - used) break;
      }
      used += need;
    }
    fuse_reply_buf(req, buf.data(), used);
  });
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  Guard(req, [&] { ReplyStatus(req, Fs(req).FsyncDir(ino)); });
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  Guard(req, [&] {
    struct statvfs s = Fs(req).StatFs();
    fuse_reply_statfs(req, &s);
  });
}

void OpAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
  // Only reached without default_permissions (we always set it); answer honestly anyway.
  Guard(req, [&] {
    auto st = Fs(req).GetAttr(ino);
    if (!st.ok()) return (void)fuse_reply_err(req, st.status().code());
    const fuse_ctx* c = fuse_req_ctx(req);
    if (c->uid == 0 || mask == F_OK) return (void)fuse_reply_err(req, 0);
    const mode_t m = st->st_mode;
    int granted = c->uid == st->st_uid ? (m >> 6) & 7 : c->gid == st->st_gid ? (m >> 3) & 7 : m & 7;
    fuse_reply_err(req, (mask & ~granted) ? EACCES : 0);
  });
}

void IoctlBmap(fuse_req_t req, fuse_ino_t ino, const void* in_buf, size_t in_size) {
  udax_ioc_bmap out{};
  if (in_size >= sizeof(out.start)) std::memcpy(&out.start, in_buf, sizeof(out.start));
  auto extents = Fs(req).Bmap(ino);
  if (!extents.ok()) return (void)fuse_reply_err(req, extents.status().code());
  out.total = static_cast<uint32_t>(extents->size());
  out.au_size = Fs(req).superblock().au_size;
  for (uint64_t i = out.start; i < extents->size() && out.count < UDAX_BMAP_MAX; ++i) {
    const BmapExtent& e = (*extents)[i];
    out.ext[out.count++] = {e.file_offset, e.phys_offset, e.length};
  }
  fuse_reply_ioctl(req, 0, &out, sizeof(out));
}

void IoctlRmap(fuse_req_t req, const void* in_buf, size_t in_size) {
  if (fuse_req_ctx(req)->uid != 0) return (void)fuse_reply_err(req, EPERM);
  auto out = std::make_unique<udax_ioc_rmap>();
  if (in_size < offsetof(udax_ioc_rmap, count)) return (void)fuse_reply_err(req, EINVAL);
  std::memcpy(out.get(), in_buf, offsetof(udax_ioc_rmap, count));
  auto owners = Fs(req).Owners(out->phys, out->length);
  if (!owners.ok()) return (void)fuse_reply_err(req, owners.status().code());
  out->total = static_cast<uint32_t>(owners->size());
  for (uint64_t i = out->start; i < owners->size() && out->count < UDAX_RMAP_MAX; ++i) {
    const OwnerRange& r = (*owners)[i];
    udax_rmap_owner& o = out->owner[out->count++];
    o.phys = r.phys;
    o.length = r.len;
    o.offset = r.offset;
    o.ino = r.owner.ino;
    o.generation = r.owner.generation;
    o.kind = static_cast<uint8_t>(r.owner.kind);
  }
  fuse_reply_ioctl(req, 0, out.get(), sizeof(*out));
}

void IoctlDevices(fuse_req_t req) {
  auto out = std::make_unique<udax_ioc_devices>();
  std::memset(out.get(), 0, sizeof(*out));
  Filesystem& fs = Fs(req);
  const DiskSuperblock sb = fs.SuperblockSnapshot();
  out->count = DeviceCount(sb);
  for (uint32_t d = 0; d < out->count && d < UDAX_DEVICES_MAX; ++d) {
    udax_device_info& info = out->dev[d];
    if (IsMultiDevice(sb)) {
      info.start = sb.devices[d].start;
      info.length = sb.devices[d].length;
      std::memcpy(info.uuid, sb.devices[d].uuid, sizeof(info.uuid));
    } else {
      info.length = sb.region_size;
      std::memcpy(info.uuid, sb.uuid, sizeof(info.uuid));
    }
    // Where the filesystem lives is root's to know (as UDAX_IOC_PATH, and the control
    // socket's "target" for who may read the region).
    if (fuse_req_ctx(req)->uid == 0) {
      snprintf(info.path, sizeof(info.path), "%s", fs.region()->device(d)->path().c_str());
    }
  }
  fuse_reply_ioctl(req, 0, out.get(), sizeof(*out));
}

void IoctlPath(fuse_req_t req, const void* in_buf, size_t in_size) {
  if (fuse_req_ctx(req)->uid != 0) return (void)fuse_reply_err(req, EPERM);
  auto out = std::make_unique<udax_ioc_path>();
  if (in_size < sizeof(out->ino)) return (void)fuse_reply_err(req, EINVAL);
  std::memcpy(&out->ino, in_buf, sizeof(out->ino));
  auto path = Fs(req).PathOf(out->ino);
  if (!path.ok()) return (void)fuse_reply_err(req, path.status().code());
  if (path->size() >= sizeof(out->path)) return (void)fuse_reply_err(req, ENAMETOOLONG);
  std::memcpy(out->path, path->c_str(), path->size() + 1);
  fuse_reply_ioctl(req, 0, out.get(), sizeof(*out));
}

void IoctlScrub(fuse_req_t req) {
  if (fuse_req_ctx(req)->uid != 0) return (void)fuse_reply_err(req, EPERM);
  auto report = Fs(req).checker().Scrub();
  if (!report.ok()) return (void)fuse_reply_err(req, report.status().code());
  auto out = std::make_unique<udax_ioc_scrub>();
  std::memset(out.get(), 0, sizeof(*out));
  out->inodes = report->inodes;
  out->allocated_aus = report->allocated_aus;
  out->problems = report->problems;
  for (size_t i = 0; i < report->messages.size() && i < UDAX_SCRUB_MESSAGES; ++i) {
    snprintf(out->messages[i], sizeof(out->messages[i]), "%s", report->messages[i].c_str());
  }
  fuse_reply_ioctl(req, 0, out.get(), sizeof(*out));
}

// XFS_IOC_GOINGDOWN (xfstests' godown, `udaxctl shutdown`): every metadata operation is
// already durable when it returns, so whichever flag the caller meant (FUSE does not pass
// it), the filesystem stops here with its journal consistent.
void IoctlGoingDown(fuse_req_t req, fuse_ino_t ino) {
  if (fuse_req_ctx(req)->uid != 0) return (void)fuse_reply_err(req, EPERM);
  Fs(req).Shutdown("shut down on request (XFS_IOC_GOINGDOWN)");
  // The caller's next stat of this file must reach us (and fail), not the kernel's
  // attribute cache. Attributes only: no page lock is involved.
  fuse_lowlevel_notify_inval_inode(Ctx(req).session, ino, -1, 0);
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

void OpIoctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void*, fuse_file_info* fi,
             unsigned flags, const void* in_buf, size_t in_size, size_t) {
  Guard(req, [&] {
    if (flags & FUSE_IOCTL_COMPAT) return (void)fuse_reply_err(req, ENOSYS);
    switch (cmd) {
      case UDAX_IOC_BMAP:
        return IoctlBmap(req, ino, in_buf, in_size);
      case UDAX_IOC_RMAP:
        return IoctlRmap(req, in_buf, in_size);
      case UDAX_IOC_PATH:
        return IoctlPath(req, in_buf, in_size);
      case UDAX_IOC_SCRUB:
        return IoctlScrub(req);
      case UDAX_IOC_DEVICES:
        return IoctlDevices(req);
      case UDAX_IOC_GOINGDOWN:
        return IoctlGoingDown(req, ino);
      case UDAX_IOC_FALLOCATE:
        return IoctlFallocate(req, ino, fi, in_buf, in_size);
      default:
        if (FsIoctl(req, ino, cmd, in_buf, in_size)) return;
        return (void)fuse_reply_err(req, ENOTTY);
    }
  });
}

}  // namespace

void AssignOperations(fuse_lowlevel_ops* ops) {
  std::memset(ops, 0, sizeof(*ops));
  ops->init = OpInit;
  ops->destroy = OpDestroy;
  ops->lookup = OpLookup;
  ops->forget = OpForget;
  ops->forget_multi = OpForgetMulti;
  ops->getattr = OpGetattr;
  ops->setattr = OpSetattr;
  ops->readlink = OpReadlink;
  ops->mknod = OpMknod;
  ops->mkdir = OpMkdir;
  ops->symlink = OpSymlink;
  ops->link = OpLink;
  ops->unlink = OpUnlink;
  ops->rmdir = OpRmdir;
  ops->rename = OpRename;
  ops->open = OpOpen;
  ops->create = OpCreate;
  ops->read = OpRead;
  ops->write = OpWrite;
  ops->flush = OpFlush;
  ops->release = OpRelease;
  ops->fsync = OpFsync;
  ops->opendir = OpOpendir;
  ops->readdir = OpReaddir;
  ops->readdirplus = OpReaddirplus;
  ops->releasedir = OpReleasedir;
  ops->fsyncdir = OpFsyncdir;
  ops->statfs = OpStatfs;
  ops->access = OpAccess;
  ops->ioctl = OpIoctl;
  AssignXattrOperations(ops);
  AssignRangeOperations(ops);
}

}  // namespace udax
