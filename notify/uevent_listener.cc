// uevent_listener.cc -- the NETLINK_KOBJECT_UEVENT socket and its thread.
#include "notify/uevent_listener.h"

#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

namespace udax {
namespace {

constexpr uint32_t kKernelGroup = 1;
// The kernel's uevents are at most UEVENT_BUFFER_SIZE (2 KiB); room to spare.
constexpr size_t kDatagramMax = 8192;

}  // namespace

UeventListener::UeventListener(UniqueFd sock, std::vector<std::string> devpaths,
                               EventQueue* queue, Options options, SourceThread thread)
    : sock_(std::move(sock)),
      devpaths_(std::move(devpaths)),
      queue_(queue),
      options_(std::move(options)),
      thread_(std::move(thread)) {}

Result<std::unique_ptr<UeventListener>> UeventListener::Start(std::vector<std::string> devpaths,
                                                              EventQueue* queue,
                                                              Options options) {
  UniqueFd sock(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                       NETLINK_KOBJECT_UEVENT));
  if (!sock.valid()) return Status::FromErrno("socket(NETLINK_KOBJECT_UEVENT)");
  // A roomy buffer makes ENOBUFS unlikely during a storm of uevents (a region with many
  // namespaces going away); FORCE needs CAP_NET_ADMIN, the plain one is the fallback.
  const int rcvbuf = 1 << 20;
  if (setsockopt(sock.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0) {
    (void)setsockopt(sock.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  }
  struct sockaddr_nl addr {};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = kKernelGroup;
  if (bind(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Status::FromErrno("bind(NETLINK_KOBJECT_UEVENT, group 1)");
  }
  return StartOnSocket(std::move(sock), std::move(devpaths), queue, std::move(options));
}

Result<std::unique_ptr<UeventListener>> UeventListener::StartOnSocket(
    UniqueFd sock, std::vector<std::string> devpaths, EventQueue* queue, Options options) {
  struct sockaddr_storage ss {};
  socklen_t len = sizeof(ss);
  if (getsockname(sock.get(), reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) {
    return Status::FromErrno("getsockname");
  }
  UDAX_ASSIGN_OR_RETURN(SourceThread thread, SourceThread::Create());
  std::unique_ptr<UeventListener> l(new UeventListener(std::move(sock), std::move(devpaths),
                                                       queue, std::move(options), std::move(thread)));
  l->netlink_ = ss.ss_family == AF_NETLINK;
  l->thread_.Start([raw = l.get()] { raw->Run(); });
  return l;
}

void UeventListener::PushRemoved(const std::string& why) {
  MediaEvent e;
  e.source = MediaEventSource::kDeviceRemoved;
  e.offset = options_.base;
  e.length = options_.region_size;
  e.time = std::chrono::system_clock::now();
  e.detail = why;
  removals_.fetch_add(1);
  queue_->Push(std::move(e));
}

void UeventListener::CheckStillPresent() {
  for (const std::string& p : devpaths_) {
    struct stat st;
    const std::string dir = options_.sysfs_root + p;
    if (stat(dir.c_str(), &st) != 0 && errno == ENOENT) {
      PushRemoved("uevents lost (ENOBUFS) and " + p + " is gone from sysfs");
    }
  }
}

void UeventListener::Handle(const char* buf, size_t n) {
  std::optional<Uevent> ev = ParseUevent(std::string_view(buf, n));
  if (!ev) {
    rejected_.fetch_add(1);
    return;
  }
  if (options_.observer) options_.observer(*ev);
  for (const std::string& p : devpaths_) {
    if (IsRemovalOf(*ev, p)) {
      PushRemoved(ev->action + "@" + ev->devpath);
      return;
    }
  }
}

void UeventListener::Run() {
  std::vector<char> buf(kDatagramMax);
  for (;;) {
    struct pollfd fds[1] = {{sock_.get(), POLLIN, 0}};
    Result<Wake> wake = thread_.Wait(fds);
    if (!wake.ok() || *wake == Wake::kStopped) return;
    if (fds[0].revents == 0) continue;
    for (;;) {
      struct sockaddr_nl from {};
      struct iovec iov = {buf.data(), buf.size()};
      struct msghdr msg {};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof(from);
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      const ssize_t n = recvmsg(sock_.get(), &msg, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {
          CheckStillPresent();
          continue;
        }
        break;  // EAGAIN: drained
      }
      received_.fetch_add(1);
      // Only the kernel sends from port id 0; anyone else could forge a removal.
      if (netlink_ && (msg.msg_namelen < sizeof(from) || from.nl_pid != 0)) {
        rejected_.fetch_add(1);
        continue;
      }
      if ((msg.msg_flags & MSG_TRUNC) != 0) {
        rejected_.fetch_add(1);
        continue;
      }
      Handle(buf.data(), static_cast<size_t>(n));
    }
    if ((fds[0].revents & (POLLHUP | POLLERR | POLLNVAL)) != 0 && !netlink_) {
      // The test's peer went away: nothing more will come.
      if ((fds[0].revents & POLLIN) == 0) return;
    }
  }
}

}  // namespace udax
