// fuse_ops.h -- the libfuse low-level operation table over a udax::Filesystem.
#pragma once

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <fuse_lowlevel.h>

#include "fs/core/filesystem.h"

namespace udax {

struct FuseConfig {
  bool cache_auto = true;  // kernel page cache and attribute caching; false = direct I/O
  bool posix_acl = true;   // FUSE_CAP_POSIX_ACL: the kernel enforces the ACLs we store
  // FUSE_CAP_WRITEBACK_CACHE (opt-in): buffered writes stay in the kernel's page cache
  // until write-back or fsync, and the kernel keeps size and times meanwhile.
  bool writeback_cache = false;
  double timeout() const { return cache_auto ? 1.0 : 0.0; }
};

// The userdata libfuse hands back to every operation.
struct FuseContext {
  Filesystem* fs = nullptr;
  fuse_session* session = nullptr;  // for cache invalidation notices
  FuseConfig config;
};

// Fills the low-level operation table.
void AssignOperations(fuse_lowlevel_ops* ops);
// The extended-attribute operations (fuse_xattr_ops.cc).
void AssignXattrOperations(fuse_lowlevel_ops* ops);
// fallocate, lseek, copy_file_range (fuse_range_ops.cc), and the UDAX_IOC_FALLOCATE ioctl.
void AssignRangeOperations(fuse_lowlevel_ops* ops);
// FS_IOC_GETFLAGS/SETFLAGS, FS_IOC_FSGETXATTR/FSSETXATTR, FITRIM, FS_IOC_GETFSLABEL/
// SETFSLABEL (fuse_fs_ioctls.cc): replies and returns true when `cmd` is one of them.
bool FsIoctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, const void* in_buf,
             size_t in_size);
void IoctlFallocate(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, const void* in_buf,
                    size_t in_size);

}  // namespace udax
