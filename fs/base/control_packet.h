// control_packet.h -- one datagram of the control protocol (include/udaxfs/control.h) with
// the descriptors riding on it (SCM_RIGHTS). libudax and the daemon's control server both
// send and receive through these two calls, so the ancillary-data handling exists once.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace udax {

// At most this many descriptors travel with one packet: a map reply carries the lease
// socket and one descriptor per device the file lies on (at most 16, the format's
// limit); a view reply four.
inline constexpr size_t kMaxPacketFds = 1 + 16;

// Sends `data` as one packet with `fds` attached (none when empty; at most kMaxPacketFds,
// EINVAL beyond). `flags` go to sendmsg, with MSG_NOSIGNAL added: a peer that went away is
// an EPIPE, not a signal. Returns what sendmsg returns.
ssize_t SendPacket(int sock, std::string_view data, const std::vector<int>& fds, int flags);

struct ReceivedPacket {
  std::string data;       // the bytes received (at most UDAX_CONTROL_MAX_PACKET)
  std::vector<int> fds;   // descriptors received, close-on-exec; the caller owns them
  bool truncated = false; // longer than UDAX_CONTROL_MAX_PACKET, or descriptors were cut off
};

// Receives one packet into *out. `flags` go to recvmsg (with MSG_TRUNC and
// MSG_CMSG_CLOEXEC added). Returns recvmsg's result: the packet's real length (which may
// exceed what `data` holds: see `truncated`), 0 at end of stream, -1 with errno set.
// Descriptors that arrive are in out->fds even when the packet was truncated.
ssize_t RecvPacket(int sock, int flags, ReceivedPacket* out);

}  // namespace udax
