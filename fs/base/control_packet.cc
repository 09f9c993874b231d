// control_packet.cc -- see control_packet.h.
#include "fs/base/control_packet.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "include/udaxfs/control.h"

namespace udax {

ssize_t SendPacket(int sock, std::string_view data, const std::vector<int>& fds, int flags) {
  if (fds.size() > kMaxPacketFds) {
    errno = EINVAL;
    return -1;
  }
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxPacketFds * sizeof(int))];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(cm), fds.data(), fds.size() * sizeof(int));
  }
  // The system call itself, not the C library's name: in the preload shim that name is
  // the shim's own sendmsg, which takes a descriptor sent along as shared with another
  // process (its file position, client/preload.cc) -- and a view request sends the
  // file's descriptor to the daemon, which only fstats it.
  return syscall(SYS_sendmsg, sock, &msg, flags | MSG_NOSIGNAL);
}

ssize_t RecvPacket(int sock, int flags, ReceivedPacket* out) {
  out->data.assign(UDAX_CONTROL_MAX_PACKET, '\0');
  out->fds.clear();
  out->truncated = false;
  iovec iov{out->data.data(), out->data.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxPacketFds * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = recvmsg(sock, &msg, flags | MSG_TRUNC | MSG_CMSG_CLOEXEC);
  if (n < 0) {
    out->data.clear();
    return n;
  }
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
      out->fds.push_back(fd);
    }
  }
  out->truncated = static_cast<size_t>(n) > out->data.size() || (msg.msg_flags & MSG_CTRUNC) != 0;
  out->data.resize(std::min(static_cast<size_t>(n), out->data.size()));
  return n;
}

}  // namespace udax
