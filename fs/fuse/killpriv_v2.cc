// killpriv_v2.cc -- see killpriv_v2.h.
#include "fs/fuse/killpriv_v2.h"

#include <linux/fuse.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>

#include "fs/fuse/fuse_request.h"
#include "fs/fuse/uring_transport.h"

namespace udax {
namespace {

// The INIT request's unique id and the kernel's offer, from the read hook to the writev
// hook that carries the reply (one INIT per connection, before any other request).
std::atomic<uint64_t> g_init_unique{0};
std::atomic<bool> g_kernel_offers{false};
std::atomic<bool> g_active{false};
// FUSE over io_uring: asked for by the mount (-o uring), offered by the kernel's INIT.
std::atomic<bool> g_uring_wanted{false};
std::atomic<bool> g_uring_offered{false};
fuse_session* g_session = nullptr;
thread_local bool t_kill_suidgid = false;

// The request's argument struct, when all of it arrived.
template <typename T>
std::optional<T> ArgOf(const char* arg, size_t len) {
  if (len < sizeof(T)) return std::nullopt;
  T t;
  std::memcpy(&t, arg, sizeof(t));
  return t;
}

// What a request asks, read from its raw bytes (header, then the opcode's struct).
void NoteRequest(const char* buf, size_t len) {
  t_kill_suidgid = false;
  auto in = ArgOf<fuse_in_header>(buf, len);
  if (!in) return;
  const char* arg = buf + sizeof(*in);
  const size_t arg_len = len - sizeof(*in);
  switch (in->opcode) {
    case FUSE_INIT: {
      fuse_init_in init{};  // an older kernel sends a shorter struct: the rest reads as 0
      std::memcpy(&init, arg, std::min(arg_len, sizeof(init)));
      g_kernel_offers = (init.flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
      const uint64_t flags2 = (init.flags & FUSE_INIT_EXT) ? uint64_t{init.flags2} << 32 : 0;
      g_uring_offered = (flags2 & kFuseOverIoUring) != 0;
      g_init_unique = in->unique;
      break;
    }
    case FUSE_WRITE:
      if (auto w = ArgOf<fuse_write_in>(arg, arg_len))
        t_kill_suidgid = w->write_flags & FUSE_WRITE_KILL_SUIDGID;
      break;
    case FUSE_SETATTR:
      if (auto a = ArgOf<fuse_setattr_in>(arg, arg_len))
        t_kill_suidgid = a->valid & FATTR_KILL_SUIDGID;
      break;
    case FUSE_OPEN:
      if (auto o = ArgOf<fuse_open_in>(arg, arg_len))
        t_kill_suidgid = o->open_flags & FUSE_OPEN_KILL_SUIDGID;
      break;
    case FUSE_CREATE:
      if (auto c = ArgOf<fuse_create_in>(arg, arg_len))
        t_kill_suidgid = c->open_flags & FUSE_OPEN_KILL_SUIDGID;
      break;
    default:
      break;
  }
}

ssize_t HookedRead(int fd, void* buf, size_t len, void* /*userdata*/) {
  const ssize_t n = read(fd, buf, len);
  if (n > 0) NoteRequest(static_cast<const char*>(buf), static_cast<size_t>(n));
  return n;
}

ssize_t HookedWritev(int fd, struct iovec* iov, int count, void* /*userdata*/) {
  ssize_t written;
  if (UringTakeReply(iov, count, &written)) return written;  // a ring request's reply
  // libfuse sends the INIT reply as the header and the fuse_init_out, each its own iovec.
  const uint64_t init = g_init_unique.load();
  size_t uring_payload = 0;
  if (init != 0 && count >= 2 && iov[0].iov_len >= sizeof(fuse_out_header) &&
      iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(uint32_t)) {
    fuse_out_header out;
    std::memcpy(&out, iov[0].iov_base, sizeof(out));
    if (out.unique == init && out.error == 0) {
      g_init_unique = 0;
      auto* reply = static_cast<fuse_init_out*>(iov[1].iov_base);
      if (g_kernel_offers) {
        reply->flags |= FUSE_HANDLE_KILLPRIV_V2;
        g_active = true;
      }
      if (g_uring_wanted && g_uring_offered && iov[1].iov_len >= sizeof(fuse_init_out)) {
        reply->flags |= FUSE_INIT_EXT;
        reply->flags2 |= static_cast<uint32_t>(kFuseOverIoUring >> 32);
        // Every entry's payload must hold the largest request and reply of the connection.
        uring_payload = std::max<size_t>({reply->max_write, size_t{reply->max_pages} * 4096, 8192});
      }
    }
  }
  const ssize_t n = writev(fd, iov, count);
  // The kernel took the INIT reply in that writev: the queues may register now.
  if (uring_payload != 0 && n > 0 && g_session != nullptr) StartUringTransport(g_session, fd, uring_payload);
  return n;
}

}  // namespace

void NoteRawRequest(const char* buf, size_t len) { NoteRequest(buf, len); }

void RequestUringWhenOffered() { g_uring_wanted = true; }

int InstallKillprivV2(fuse_session* se) {
  g_session = se;
  static const fuse_custom_io io = {HookedWritev, HookedRead, nullptr, nullptr};
  return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

bool KillprivV2Active() { return g_active.load(std::memory_order_relaxed); }

bool RequestKillsSuidgid() { return t_kill_suidgid; }

PrivDrop PrivDropFor(fuse_req_t req, bool suidgid, PrivChange change) {
  PrivDrop drop;
  drop.suidgid = suidgid;
  drop.change = change;
  // CAP_FSETID is taken as uid 0 (the kernel only tells us through the flag).
  drop.exempt_from_sgid = [req](uint32_t gid) {
    return fuse_req_ctx(req)->uid == 0 || CallerInGroup(req, gid);
  };
  return drop;
}

std::optional<PrivDrop> KillPrivsFor(fuse_req_t req, bool suidgid, PrivChange change) {
  if (!KillprivV2Active()) return std::nullopt;
  return PrivDropFor(req, suidgid, change);
}

void AfterPrivDrop(fuse_req_t req, fuse_ino_t ino, const PrivDrop* drop) {
  if (drop != nullptr && drop->changed) fuse_lowlevel_notify_inval_inode(Ctx(req).session, ino, -1, 0);
}

}  // namespace udax
