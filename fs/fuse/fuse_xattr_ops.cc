// fuse_xattr_ops.cc -- setxattr, getxattr, listxattr, removexattr.
//
// The size protocol is FUSE's: size 0 asks for the length; a buffer too small is ERANGE.
// POSIX ACLs arrive here too ("system.posix_acl_*") when FUSE_CAP_POSIX_ACL is on.
// trusted.* is CAP_SYS_ADMIN's (xattr_access.h): hidden from other callers' listings, and
// refused to them as xattr_permission() does (the kernel already refuses get and set
// before we see them; answering the same here keeps that true whatever the kernel).
#include <sys/xattr.h>

#include <string>
#include <vector>

#include "fs/format/posix_acl.h"
#include "fs/fuse/fuse_request.h"
#include "fs/fuse/xattr_access.h"

namespace udax {
namespace {

// Setting an access ACL may drop setgid unless the caller is in the file's group: that
// needs the supplementary groups, which FUSE only gives on demand.
Caller CallerWithGroups(fuse_req_t req, std::string_view name) {
  Caller caller = CallerOf(req);
  if (caller.uid == 0 || name != kAclAccessXattr) return caller;
  std::vector<gid_t> groups(64);
  int n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
  if (n > static_cast<int>(groups.size())) {
    groups.resize(static_cast<size_t>(n));
    n = fuse_req_getgroups(req, n, groups.data());
  }
  for (int i = 0; i < n && i < static_cast<int>(groups.size()); ++i) {
    caller.groups.push_back(groups[static_cast<size_t>(i)]);
  }
  return caller;
}

bool MayUseTrusted(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return CallerMayUseTrustedXattrs(c->pid, c->uid);
}

// Linux's answer to a trusted.* request without CAP_SYS_ADMIN: EPERM to change, ENODATA
// to read (as if there were nothing); 0 when the request may go on.
int RefuseTrusted(fuse_req_t req, std::string_view name, bool write) {
  if (!IsTrustedXattr(name) || MayUseTrusted(req)) return 0;
  return write ? EPERM : ENODATA;
}

void ReplySized(fuse_req_t req, const Result<std::string>& r, size_t size) {
  if (!r.ok()) return (void)fuse_reply_err(req, r.status().code());
  if (size == 0) return (void)fuse_reply_xattr(req, r->size());
  if (r->size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, r->data(), r->size());
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                size_t size, int flags) {
  Guard(req, [&] {
    if (const int e = RefuseTrusted(req, name, /*write=*/true)) return (void)fuse_reply_err(req, e);
    ReplyStatus(req, Fs(req).SetXattr(ino, name, std::string_view(value, size), flags,
                                      CallerWithGroups(req, name)));
  });
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Guard(req, [&] {
    if (const int e = RefuseTrusted(req, name, /*write=*/false)) return (void)fuse_reply_err(req, e);
    ReplySized(req, Fs(req).GetXattr(ino, name), size);
  });
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Guard(req, [&] {
    Result<std::string> names = Fs(req).ListXattr(ino);
    // /proc is read only when there is something to hide.
    if (names.ok() && HasTrustedXattr(*names) && !MayUseTrusted(req)) {
      names = WithoutTrustedXattrs(*names);
    }
    ReplySized(req, names, size);
  });
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Guard(req, [&] {
    if (const int e = RefuseTrusted(req, name, /*write=*/true)) return (void)fuse_reply_err(req, e);
    ReplyStatus(req, Fs(req).RemoveXattr(ino, name));
  });
}

}  // namespace

void AssignXattrOperations(fuse_lowlevel_ops* ops) {
  ops->setxattr = OpSetxattr;
  ops->getxattr = OpGetxattr;
  ops->listxattr = OpListxattr;
  ops->removexattr = OpRemovexattr;
}

}  // namespace udax
