// udaxctl_control.cc -- one request to a mount's daemon over its control socket.
//
// include/udaxfs/control.h: a SEQPACKET socket named after the mount's device number,
// one JSON object each way.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fs/base/unique_fd.h"
#include "include/udaxfs/control.h"
#include "mount-helper/udaxctl.h"
#include "notify/mapped_procs.h"

namespace udax {

std::optional<nlohmann::json> ControlCall(const std::string& mount, const nlohmann::json& request,
                                          const char* cmd) {
  // The mount's device number: from stat, or, when a shut-down filesystem answers stat
  // with EIO (after a device removal: the moment one asks which maps were taken back),
  // from its mountinfo line.
  struct stat st;
  dev_t dev = 0;
  if (stat(mount.c_str(), &st) == 0) {
    dev = st.st_dev;
  } else {
    const int err = errno;
    char* real = realpath(mount.c_str(), nullptr);
    auto from_table = real != nullptr ? MountDevice("/proc/self/mountinfo", real) : std::nullopt;
    free(real);
    if (!from_table) {
      fprintf(stderr, "udaxctl %s: %s: %s\n", cmd, mount.c_str(), strerror(err));
      return std::nullopt;
    }
    dev = *from_table;
  }
  const std::string path = std::string(UDAX_CONTROL_DIR) + "/" + std::to_string(major(dev)) +
                           ":" + std::to_string(minor(dev)) + ".sock";
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (fd.get() < 0 || connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    fprintf(stderr, "udaxctl %s: %s: not a udaxfs mount (no control socket %s)\n", cmd,
            mount.c_str(), path.c_str());
    return std::nullopt;
  }
  const std::string req = request.dump();
  std::string buf;
  ssize_t n = -1;
  if (send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
    // The whole packet, however long (MSG_TRUNC tells a SEQPACKET packet's real length).
    n = recv(fd.get(), nullptr, 0, MSG_PEEK | MSG_TRUNC);
    if (n > 0) {
      buf.resize(static_cast<size_t>(n));
      n = recv(fd.get(), buf.data(), buf.size(), 0);
    }
  }
  if (n <= 0) {
    fprintf(stderr, "udaxctl %s: %s: no answer from the daemon\n", cmd, mount.c_str());
    return std::nullopt;
  }
  buf.resize(static_cast<size_t>(n));
  auto reply = nlohmann::json::parse(buf, nullptr, false);
  if (reply.is_discarded() || !reply.is_object() || !reply.value("ok", false)) {
    fprintf(stderr, "udaxctl %s: %s: %s\n", cmd, mount.c_str(),
            reply.is_discarded() || !reply.is_object() ? "malformed answer"
                                                       : reply.value("error", "refused").c_str());
    return std::nullopt;
  }
  return reply;
}

}  // namespace udax
