// fuse_fs_ioctls.cc -- the generic Linux filesystem ioctls: inode flags (FS_IOC_GETFLAGS
// / SETFLAGS and FS_IOC_FSGETXATTR / FSSETXATTR), FITRIM, FS_IOC_GETFSLABEL / SETFSLABEL;
// and udaxfs' UDAX_IOC_MAKE_WRITABLE (a read-only daemon going read-write).
//
// The kernel's FUSE client turns chattr/lsattr (the VFS's fileattr_get/set) into
// FUSE_IOCTL requests with these commands on a handle it opens for the purpose (a file's,
// or a directory's with FUSE_CAP_IOCTL_DIR), after checking ownership and
// CAP_LINUX_IMMUTABLE itself; the rest reach us as restricted ioctls with their fixed-size
// argument. None of them uses the handle: a directory's carries its listing instead.
#include <linux/fs.h>
#include <syslog.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "fs/fuse/fuse_request.h"
#include "include/udaxfs/ioctl.h"

namespace udax {
namespace {

// FS_XFLAG_* <-> FS_*_FL for the flags udaxfs keeps (fileattr_fill_xflags and
// fileattr_fill_flags). DIRSYNC has no xflag: an FSSETXATTR leaves it as it is.
struct XflagMap {
  uint32_t xflag;
  uint32_t flag;
};
constexpr XflagMap kXflags[] = {
    {FS_XFLAG_SYNC, FS_SYNC_FL},     {FS_XFLAG_IMMUTABLE, FS_IMMUTABLE_FL},
    {FS_XFLAG_APPEND, FS_APPEND_FL}, {FS_XFLAG_NODUMP, FS_NODUMP_FL},
    {FS_XFLAG_NOATIME, FS_NOATIME_FL},
};

void GetFlags(fuse_req_t req, fuse_ino_t ino) {
  auto flags = Fs(req).GetFlags(ino);
  if (!flags.ok()) return (void)fuse_reply_err(req, flags.status().code());
  const uint32_t out = *flags;
  fuse_reply_ioctl(req, 0, &out, sizeof(out));
}

// The ctime changed: the kernel's cached attributes must go (attributes only, no pages,
// so this takes none of the locks the waiting ioctl holds).
void ReplySetFlags(fuse_req_t req, fuse_ino_t ino, const Status& st) {
  if (!st.ok()) return (void)fuse_reply_err(req, st.code());
  if (Ctx(req).session) fuse_lowlevel_notify_inval_inode(Ctx(req).session, ino, -1, 0);
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

void SetFlags(fuse_req_t req, fuse_ino_t ino, const void* in_buf, size_t in_size) {
  uint32_t flags = 0;
  if (in_size < sizeof(flags)) return (void)fuse_reply_err(req, EINVAL);
  std::memcpy(&flags, in_buf, sizeof(flags));
  ReplySetFlags(req, ino, Fs(req).SetFlags(ino, flags, CallerOf(req)));
}

void GetXattr(fuse_req_t req, fuse_ino_t ino) {
  auto flags = Fs(req).GetFlags(ino);
  if (!flags.ok()) return (void)fuse_reply_err(req, flags.status().code());
  fsxattr fa{};
  for (const XflagMap& m : kXflags) {
    if (*flags & m.flag) fa.fsx_xflags |= m.xflag;
  }
  fuse_reply_ioctl(req, 0, &fa, sizeof(fa));
}

void SetXattr(fuse_req_t req, fuse_ino_t ino, const void* in_buf, size_t in_size) {
  fsxattr fa{};
  if (in_size < sizeof(fa)) return (void)fuse_reply_err(req, EINVAL);
  std::memcpy(&fa, in_buf, sizeof(fa));
  uint32_t known = 0;
  for (const XflagMap& m : kXflags) known |= m.xflag;
  // No project quotas, extent size hints, DAX toggling or realtime here (ext4 without the
  // project feature refuses a project id the same way).
  if ((fa.fsx_xflags & ~known) || fa.fsx_projid != 0) {
    return (void)fuse_reply_err(req, EOPNOTSUPP);
  }
  auto old = Fs(req).GetFlags(ino);
  if (!old.ok()) return (void)fuse_reply_err(req, old.status().code());
  uint32_t flags = *old;
  for (const XflagMap& m : kXflags) {
    flags = (fa.fsx_xflags & m.xflag) ? (flags | m.flag) : (flags & ~m.flag);
  }
  ReplySetFlags(req, ino, Fs(req).SetFlags(ino, flags, CallerOf(req)));
}

// FITRIM: CAP_SYS_ADMIN in ext4 (root here); the range comes back with the bytes trimmed.
void Trim(fuse_req_t req, const void* in_buf, size_t in_size) {
  if (fuse_req_ctx(req)->uid != 0) return (void)fuse_reply_err(req, EPERM);
  fstrim_range range{};
  if (in_size < sizeof(range)) return (void)fuse_reply_err(req, EINVAL);
  std::memcpy(&range, in_buf, sizeof(range));
  auto trimmed = Fs(req).Trim(range.start, range.len, range.minlen);
  if (!trimmed.ok()) return (void)fuse_reply_err(req, trimmed.status().code());
  range.len = *trimmed;
  fuse_reply_ioctl(req, 0, &range, sizeof(range));
}

void GetLabel(fuse_req_t req) {
  char label[FSLABEL_MAX] = {};
  const std::string l = Fs(req).Label();
  std::memcpy(label, l.data(), std::min(l.size(), sizeof(label) - 1));
  fuse_reply_ioctl(req, 0, label, sizeof(label));
}

// As ext4_ioctl_setlabel: CAP_SYS_ADMIN, and EINVAL for a label without its NUL in
// FSLABEL_MAX bytes or longer than the superblock holds.
void SetLabel(fuse_req_t req, const void* in_buf, size_t in_size) {
  if (fuse_req_ctx(req)->uid != 0) return (void)fuse_reply_err(req, EPERM);
  if (in_size < FSLABEL_MAX) return (void)fuse_reply_err(req, EINVAL);
  const char* label = static_cast<const char*>(in_buf);
  const size_t len = strnlen(label, FSLABEL_MAX);
  if (len == FSLABEL_MAX) return (void)fuse_reply_err(req, EINVAL);
  Status st = Fs(req).SetLabel(std::string_view(label, len));
  if (!st.ok()) return (void)fuse_reply_err(req, st.code());
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

// mount -o remount,rw of a daemon started read-only (mount.udaxfs asks before the kernel
// remount).
void MakeWritable(fuse_req_t req) {
  if (fuse_req_ctx(req)->uid != 0) return (void)fuse_reply_err(req, EPERM);
  Status st = Fs(req).MakeWritable();
  if (!st.ok()) {
    syslog(LOG_WARNING, "remount read-write refused: %s", st.message().c_str());
    return (void)fuse_reply_err(req, st.code());
  }
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

}  // namespace

bool FsIoctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, const void* in_buf,
             size_t in_size) {
  switch (cmd) {
    case FS_IOC_GETFLAGS:
      GetFlags(req, ino);
      return true;
    case FS_IOC_SETFLAGS:
      SetFlags(req, ino, in_buf, in_size);
      return true;
    case FS_IOC_FSGETXATTR:
      GetXattr(req, ino);
      return true;
    case FS_IOC_FSSETXATTR:
      SetXattr(req, ino, in_buf, in_size);
      return true;
    case FITRIM:
      Trim(req, in_buf, in_size);
      return true;
    case FS_IOC_GETFSLABEL:
      GetLabel(req);
      return true;
    case FS_IOC_SETFSLABEL:
      SetLabel(req, in_buf, in_size);
      return true;
    case UDAX_IOC_MAKE_WRITABLE:
      MakeWritable(req);
      return true;
    default:
      return false;
  }
}

}  // namespace udax
