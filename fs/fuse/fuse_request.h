// fuse_request.h -- what every operation handler needs from its request: the context,
// the caller, and the one-reply discipline (Guard) that keeps exceptions out of libfuse.
#pragma once

#include <new>

#include "fs/fuse/fuse_ops.h"

namespace udax {

inline FuseContext& Ctx(fuse_req_t req) {
  return *static_cast<FuseContext*>(fuse_req_userdata(req));
}
inline Filesystem& Fs(fuse_req_t req) { return *Ctx(req).fs; }

inline Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return Caller{c->uid, c->gid, c->umask};
}

// Whether the caller is in group `gid`: its own gid or a supplementary group (read from
// /proc by libfuse, so asked only when a rule needs it).
inline bool CallerInGroup(fuse_req_t req, gid_t gid) {
  if (fuse_req_ctx(req)->gid == gid) return true;
  gid_t groups[256];
  const int n = fuse_req_getgroups(req, 256, groups);
  for (int i = 0; i < n && i < 256; ++i) {
    if (groups[i] == gid) return true;
  }
  return false;
}

// What an open file's handle (fi->fh) carries: the inode, and the open flags, which
// libfuse does not repeat on later requests (an ioctl must know the fd is writable).
// Directories carry their listing instead (fuse_ops.cc).
struct OpenFile {
  Inode* inode = nullptr;
  int flags = 0;
};
inline OpenFile* HandleOf(fuse_file_info* fi) { return reinterpret_cast<OpenFile*>(fi->fh); }
inline Inode* FileOf(fuse_file_info* fi) { return HandleOf(fi)->inode; }

inline void ReplyStatus(fuse_req_t req, const Status& st) {
  fuse_reply_err(req, st.ok() ? 0 : st.code());
}

// Runs `body`, turning any escaping exception into EIO (or ENOMEM) for this request.
template <typename F>
void Guard(fuse_req_t req, F&& body) {
  try {
    body();
  } catch (const std::bad_alloc&) {
    fuse_reply_err(req, ENOMEM);
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

}  // namespace udax
