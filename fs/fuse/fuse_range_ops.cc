// fuse_range_ops.cc -- operations on ranges of a file: fallocate, lseek (SEEK_DATA /
// SEEK_HOLE), copy_file_range, and the udaxfs fallocate ioctl.
//
// The kernel's FUSE client forwards only KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE; COLLAPSE_RANGE
// and INSERT_RANGE reach us through UDAX_IOC_FALLOCATE, and since the kernel does not know
// that file contents moved, we drop its page cache for the shifted range ourselves.
#include <fcntl.h>
#include <linux/falloc.h>

#include <cstring>

#include "fs/fuse/fuse_ops.h"
#include "fs/fuse/fuse_request.h"
#include "fs/fuse/killpriv_v2.h"
#include "include/udaxfs/ioctl.h"

namespace udax {
namespace {

// A data change by a caller without CAP_FSETID (taken as: not root) drops setuid, and
// setgid by setattr_should_drop_sgid's rule. The kernel's FUSE client drops setgid only
// with group-exec (fuse_do_setattr), and not at all for our ioctl, so the daemon does it
// (generic/683-685) through the one privilege-drop path, whether or not the kernel took
// KILLPRIV_V2.
PrivDrop RangeChangeDrop(fuse_req_t req) { return PrivDropFor(req, fuse_req_ctx(req)->uid != 0); }

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                 fuse_file_info* fi) {
  Guard(req, [&] {
    if (offset < 0 || length <= 0) return (void)fuse_reply_err(req, EINVAL);
    PrivDrop drop = RangeChangeDrop(req);
    Status st = Fs(req).Fallocate(FileOf(fi), mode, static_cast<uint64_t>(offset),
                                  static_cast<uint64_t>(length), &drop);
    AfterPrivDrop(req, ino, &drop);
    ReplyStatus(req, st);
  });
}

void OpLseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  Guard(req, [&] {
    if (whence != SEEK_DATA && whence != SEEK_HOLE) return (void)fuse_reply_err(req, EINVAL);
    if (off < 0) return (void)fuse_reply_err(req, ENXIO);
    auto pos = Fs(req).SeekDataHole(FileOf(fi), static_cast<uint64_t>(off), whence);
    if (!pos.ok()) return (void)fuse_reply_err(req, pos.status().code());
    fuse_reply_lseek(req, static_cast<off_t>(*pos));
  });
}

void OpCopyFileRange(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in,
                     fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len,
                     int flags) {
  Guard(req, [&] {
    if (flags != 0 || off_in < 0 || off_out < 0) return (void)fuse_reply_err(req, EINVAL);
    // The kernel's file_modified on the destination cannot drop setuid/setgid under
    // HANDLE_KILLPRIV_V2 (fuse_setattr leaves it to us, and no flag says so).
    PrivDrop drop = RangeChangeDrop(req);
    auto n = Fs(req).CopyFileRange(FileOf(fi_in), static_cast<uint64_t>(off_in),
                                   FileOf(fi_out), static_cast<uint64_t>(off_out), len, &drop);
    AfterPrivDrop(req, ino_out, &drop);
    if (!n.ok()) return (void)fuse_reply_err(req, n.status().code());
    fuse_reply_write(req, *n);
  });
}

}  // namespace

void IoctlFallocate(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, const void* in_buf,
                    size_t in_size) {
  udax_ioc_fallocate arg{};
  if (in_size < sizeof(arg)) return (void)fuse_reply_err(req, EINVAL);
  std::memcpy(&arg, in_buf, sizeof(arg));
  auto attr = Fs(req).GetAttr(ino);
  if (!attr.ok()) return (void)fuse_reply_err(req, attr.status().code());
  if (!S_ISREG(attr->st_mode)) return (void)fuse_reply_err(req, S_ISDIR(attr->st_mode) ? EISDIR : ENODEV);
  if (!fi || (HandleOf(fi)->flags & O_ACCMODE) == O_RDONLY) return (void)fuse_reply_err(req, EBADF);
  if (arg.reserved != 0 || static_cast<int64_t>(arg.offset) < 0 ||
      static_cast<int64_t>(arg.length) <= 0) {
    return (void)fuse_reply_err(req, EINVAL);
  }
  PrivDrop drop = RangeChangeDrop(req);  // contents changed: as fallocate(2) does
  Status st = Fs(req).Fallocate(FileOf(fi), static_cast<int>(arg.mode), arg.offset, arg.length,
                                &drop);
  AfterPrivDrop(req, ino, &drop);
  if (st.ok() && (arg.mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE |
                              FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))) {
    // File contents moved or vanished behind the kernel's back: from `offset` on, its
    // cached pages (and mappings) are stale. Before the reply, so the caller never sees them.
    fuse_lowlevel_notify_inval_inode(Ctx(req).session, ino, static_cast<off_t>(arg.offset), 0);
  }
  if (!st.ok()) return (void)fuse_reply_err(req, st.code());
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

void AssignRangeOperations(fuse_lowlevel_ops* ops) {
  ops->fallocate = OpFallocate;
  ops->lseek = OpLseek;
  ops->copy_file_range = OpCopyFileRange;
}

}  // namespace udax
