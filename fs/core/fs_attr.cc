// fs_attr.cc -- chattr flags (FS_IOC_GETFLAGS / SETFLAGS), the volume label and FITRIM.
//
// The kernel's FUSE client never sets S_IMMUTABLE or S_APPEND on its inodes, so none of
// the VFS's own checks of those flags (inode_permission, may_delete, notify_change,
// vfs_fallocate, xattr_permission, may_open) fire for a FUSE file: the core makes them
// itself, in the same order and with the same errors (see RefuseImmutable and its
// callers). The flags' values are <linux/fs.h>'s, so they are stored as they come.
#include <linux/fs.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "fs/core/filesystem.h"

namespace udax {

static_assert(kAttrSync == FS_SYNC_FL && kAttrImmutable == FS_IMMUTABLE_FL &&
              kAttrAppend == FS_APPEND_FL && kAttrNoDump == FS_NODUMP_FL &&
              kAttrNoAtime == FS_NOATIME_FL && kAttrDirSync == FS_DIRSYNC_FL);

namespace {

// The flags a file of this type may carry (ext4_mask_flags): DIRSYNC only on directories;
// special files only NODUMP and NOATIME.
uint32_t FlagsFor(uint32_t mode) {
  if (S_ISDIR(mode)) return kInodeAttrFlagsKnown;
  if (S_ISREG(mode)) return kInodeAttrFlagsKnown & ~kAttrDirSync;
  return kAttrNoDump | kAttrNoAtime;
}

}  // namespace

Status Filesystem::RefuseImmutable(const Inode& inode) {
  if (inode.d.attr_flags & kAttrImmutable) return Status::Error(EPERM, "inode is immutable");
  return Status::Ok();
}

Status Filesystem::RefuseImmutableOrAppend(const Inode& inode) {
  if (inode.d.attr_flags & (kAttrImmutable | kAttrAppend)) {
    return Status::Error(EPERM, "inode is immutable or append-only");
  }
  return Status::Ok();
}

Result<uint32_t> Filesystem::GetFlags(uint64_t ino) {
  MetaLock lock(this);
  UDAX_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  return inode->d.attr_flags & kInodeAttrFlagsKnown;
}

Status Filesystem::SetFlags(uint64_t ino, uint32_t flags, const Caller& caller) {
  Inode* inode;
  {
    MetaLock lock(this);
    UDAX_RETURN_IF_ERROR(CheckWritable());
    UDAX_ASSIGN_OR_RETURN(inode, Get(ino));
    inode->nopen++;  // pinned while mu_ is dropped to take rw first (lock order)
  }
  // The data path reads the flags under rw alone (append-only writes, sync writes).
  WriterLock rw(&inode->rw);
  // Writable views were granted under the old flags (not immutable or append-only, their
  // sync or not): they end, and are asked for again under the new ones.
  if (inode->view_writers.load() > 0) {
    Status st = RevokeViews(inode);
    if (!st.ok()) {
      MetaLock lock(this);
      inode->nopen--;  // the pin taken above (Unpin below is not armed yet)
      return st;
    }
  }
  MetaLock lock(this);
  struct Unpin {
    Inode* i;
    ~Unpin() { i->nopen--; }
  } unpin{inode};
  UDAX_RETURN_IF_ERROR(CheckWritable());
  DiskInode& d = inode->d;
  // In ext4_fileattr_set's order: flags udaxfs does not keep, then flags this type of
  // file cannot carry (EOPNOTSUPP); then the VFS's and ext4's permission rules (EPERM).
  if (flags & ~kInodeAttrFlagsKnown) {
    return Status::Error(EOPNOTSUPP, "inode flags not supported by udaxfs");
  }
  if (flags & ~FlagsFor(d.mode)) {
    return Status::Error(EOPNOTSUPP, "inode flags not supported on this file type");
  }
  if (caller.uid != 0 && caller.uid != d.uid) {
    return Status::Error(EPERM, "only the owner may change inode flags");
  }
  const uint32_t old = d.attr_flags & kInodeAttrFlagsKnown;
  // ext4_ioctl_check_immutable: while the inode stays immutable nothing else may change.
  if ((old & kAttrImmutable) && (flags & kAttrImmutable) && old != flags) {
    return Status::Error(EPERM, "inode is immutable");
  }
  // CAP_LINUX_IMMUTABLE (the kernel has checked the capability; we see only the uid).
  if (((old ^ flags) & (kAttrImmutable | kAttrAppend)) && caller.uid != 0) {
    return Status::Error(EPERM, "changing immutable or append-only needs CAP_LINUX_IMMUTABLE");
  }
  d.attr_flags = flags;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  d.ctime_sec = ts.tv_sec;
  d.ctime_nsec = static_cast<uint32_t>(ts.tv_nsec);
  StageInode(inode);
  return Commit();
}

std::string Filesystem::Label() {
  MetaLock lock(this);
  return std::string(sb_.label, strnlen(sb_.label, sizeof(sb_.label)));
}

// The journal never writes a superblock AU (replay refuses such records), so the label
// goes to the two copies in turn, each persisted before the next: primary, then replica.
// A cut in the middle of a copy leaves that copy's checksum bad and the other copy whole
// (the mount takes the replica and restores the primary); a cut between the two leaves
// the new label in the primary, which the next read-write mount copies to the replica.
Status Filesystem::SetLabel(std::string_view label) {
  if (label.size() >= sizeof(sb_.label)) {
    return Status::InvalidArgument("label longer than " + std::to_string(sizeof(sb_.label) - 1) +
                                   " bytes");
  }
  MetaLock lock(this);
  UDAX_RETURN_IF_ERROR(CheckWritable());
  DiskSuperblock sb = sb_;
  std::memset(sb.label, 0, sizeof(sb.label));
  std::memcpy(sb.label, label.data(), label.size());
  SuperblockSeal(&sb);
  Status st = region_->WriteSafe(0, &sb, sizeof(sb), true);
  if (st.ok()) st = region_->WriteSafe(sb.replica_off, &sb, sizeof(sb), true);
  // The other devices' copies (a multi-device filesystem): what fsck compares them with.
  for (uint32_t d = 1; st.ok() && d < sb.device_count; ++d) {
    const DiskSuperblock copy = DeviceCopy(sb, d);
    st = region_->WriteSafe(sb.devices[d].start, &copy, sizeof(copy), true);
  }
  if (!st.ok()) {
    ShutdownLocked("superblock write failed: " + st.message());
    return Status::IoError(st.message());
  }
  sb_ = sb;
  return Status::Ok();
}

// FITRIM as ext4_trim_fs validates it: EINVAL for a start at or past the end, a length
// below one AU, or a minimum extent longer than the filesystem. Persistent memory has
// nothing to discard (no FTL to tell, and an emulated region is a plain file whose
// pages we keep mapped), so the free space in range is reported as trimmed, counting
// free runs of at least `minlen` bytes, clipped to the range.
Result<uint64_t> Filesystem::Trim(uint64_t start, uint64_t len, uint64_t minlen) {
  MetaLock lock(this);
  if (shutdown_) return Status::IoError("filesystem is shut down: " + shutdown_reason_);
  // A read-only mount may not have replayed the journal (XFS's norecovery rule).
  if (options_.read_only) return Status::Error(EROFS, "read-only mount");
  const uint64_t au = sb_.au_size;
  if (start >= sb_.region_size || len < au || minlen > sb_.region_size) {
    return Status::InvalidArgument("FITRIM range outside the filesystem");
  }
  const uint64_t first = std::max(start / au, FirstDataAu(sb_));
  const uint64_t end_byte = len > sb_.region_size - start ? sb_.region_size : start + len;
  const uint64_t last = std::min(end_byte / au, LastDataAu(sb_));  // exclusive
  const uint64_t min_aus = std::max<uint64_t>(1, (minlen + au - 1) / au);
  uint64_t trimmed = 0;
  for (uint64_t a = first; a < last;) {
    if (space_.AuAllocated(a)) {
      ++a;
      continue;
    }
    uint64_t run_end = a + 1;
    while (run_end < last && !space_.AuAllocated(run_end)) ++run_end;
    if (run_end - a >= min_aus) trimmed += (run_end - a) * au;
    a = run_end;
  }
  return trimmed;
}

}  // namespace udax
