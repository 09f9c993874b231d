// control_server.cc -- the control socket's server side (see control_server.h).
#include "fs/fuse/control_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "client/control_packet.h"
#include "include/udaxfs/control.h"

namespace udax {

std::string ControlServer::SocketPath(dev_t dev) {
  return std::string(UDAX_CONTROL_DIR) + "/" + std::to_string(major(dev)) + ":" +
         std::to_string(minor(dev)) + ".sock";
}

bool ControlServer::MayRead(const std::string& target, uid_t uid, gid_t gid) {
  if (uid == 0) return true;
  struct stat st;
  if (stat(target.c_str(), &st) != 0) return false;
  if (st.st_uid == uid) return st.st_mode & S_IRUSR;
  if (st.st_gid == gid) return st.st_mode & S_IRGRP;
  return st.st_mode & S_IROTH;
}

bool ControlServer::MayWrite(const std::string& target, uid_t uid, gid_t gid) {
  if (uid == 0) return true;
  struct stat st;
  if (stat(target.c_str(), &st) != 0) return false;
  if (st.st_uid == uid) return st.st_mode & S_IWUSR;
  if (st.st_gid == gid) return st.st_mode & S_IWGRP;
  return st.st_mode & S_IWOTH;
}

Result<std::unique_ptr<ControlServer>> ControlServer::Start(const std::string& path, Info info) {
  const std::string dir = path.substr(0, path.find_last_of('/'));
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::Error(errno, dir + ": " + strerror(errno));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return Status::InvalidArgument(path + ": path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return Status::Error(errno, std::string("socket: ") + strerror(errno));
  // A socket left by a daemon that died: the mount it served is gone, the name is ours.
  unlink(path.c_str());
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      chmod(path.c_str(), 0666) != 0 || listen(fd.get(), 16) != 0) {
    return Status::Error(errno, path + ": " + strerror(errno));
  }
  UDAX_ASSIGN_OR_RETURN(StopSignal stop, StopSignal::Create());
  std::unique_ptr<ControlServer> s(
      new ControlServer(path, std::move(info), std::move(fd), std::move(stop)));
  ControlServer* self = s.get();
  s->thread_ = std::thread([self] { self->Run(); });
  return s;
}

void ControlServer::Stop() {
  if (!thread_.joinable()) return;
  stop_.Notify();
  thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  clients_.clear();
  unlink(path_.c_str());
}

void ControlServer::Run() {
  while (true) {
    std::vector<pollfd> fds = {{stop_.fd(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& c : clients_) fds.push_back({c->fd.get(), POLLIN, 0});
    }
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents) return;
    if (fds[1].revents & POLLIN) Accept();
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      for (auto it = clients_.begin(); it != clients_.end(); ++it) {
        if ((*it)->fd.get() != fds[i].fd) continue;
        if (!Serve(it->get())) clients_.erase(it);
        break;
      }
    }
  }
}

void ControlServer::Accept() {
  UniqueFd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (fd.get() < 0) return;
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return;
  auto c = std::make_unique<Client>();
  c->fd = std::move(fd);
  c->pid = cred.pid;
  c->uid = cred.uid;
  c->gid = cred.gid;
  std::lock_guard<std::mutex> lock(mu_);
  if (clients_.size() >= 256) return;  // closes it: a sane daemon has few clients
  clients_.push_back(std::move(c));
}

bool ControlServer::Serve(Client* c) {
  ReceivedPacket packet;
  const ssize_t n = RecvPacket(c->fd.get(), MSG_DONTWAIT, &packet);
  if (n == 0) return false;
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  std::vector<UniqueFd> fds;  // closed on every path unless a handler keeps them
  for (int fd : packet.fds) fds.emplace_back(fd);
  nlohmann::json reply;
  std::vector<UniqueFd> out_fds;
  if (packet.truncated) {
    reply = {{"ok", false}, {"error", "request larger than " + std::to_string(UDAX_CONTROL_MAX_PACKET) +
                                          " bytes or with too many descriptors"}};
  } else {
    reply = Reply(c, packet.data, &fds, &out_fds);
  }
  std::vector<int> raw_out;
  for (const UniqueFd& fd : out_fds) raw_out.push_back(fd.get());
  return SendPacket(c->fd.get(), reply.dump(), raw_out, MSG_DONTWAIT) >= 0 || errno == EAGAIN;
}

nlohmann::json ControlServer::Reply(Client* c, const std::string& packet,
                                    std::vector<UniqueFd>* fds, std::vector<UniqueFd>* out_fds) {
  auto req = nlohmann::json::parse(packet, nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded() || !req.is_object() || !req.contains("op") || !req["op"].is_string()) {
    return {{"ok", false}, {"error", "malformed request: expected a JSON object with \"op\""}};
  }
  const std::string op = req["op"].get<std::string>();
  if (op == "hello") {
    return {{"ok", true},
            {"version", UDAX_CONTROL_VERSION},
            {"target", info_.target},
            {"au_size", info_.au_size},
            {"region_size", info_.region_size},
            {"mce_policy", info_.mce_policy}};
  }
  if (op == "subscribe") {
    if (!MayRead(info_.target, c->uid, c->gid)) {
      return {{"ok", false}, {"error", "permission denied: subscribing needs read permission on " + info_.target}};
    }
    c->subscribed = true;
    return {{"ok", true}};
  }
  if (op == "map") return Map(c, req, fds, out_fds);
  if (op == "unmap") {
    if (info_.leases == nullptr || !req.contains("lease") || !req["lease"].is_number_unsigned()) {
      return {{"ok", false}, {"error", "unmap needs a lease number"}};
    }
    if (!info_.leases->Remove(req["lease"].get<uint64_t>(), c->pid)) {
      return {{"ok", false}, {"error", "no such lease of this process"}};
    }
    return {{"ok", true}};
  }
  if (op == "leases") {
    if (c->uid != 0) return {{"ok", false}, {"error", "permission denied: listing leases needs root"}};
    return {{"ok", true}, {"leases", info_.leases ? info_.leases->List() : nlohmann::json::array()}};
  }
  return {{"ok", false}, {"error", "unknown op '" + op + "'"}};
}

nlohmann::json ControlServer::Map(Client* c, const nlohmann::json& req, std::vector<UniqueFd>* fds,
                                  std::vector<UniqueFd>* out_fds) {
  auto fail = [](int err, const std::string& why) {
    return nlohmann::json{{"ok", false}, {"errno", err}, {"error", why}};
  };
  if (info_.fs == nullptr || info_.leases == nullptr) return fail(EOPNOTSUPP, "direct maps are off");
  if (fds->size() != 1) return fail(EINVAL, "map needs the file's descriptor (SCM_RIGHTS)");
  if (!req.contains("offset") || !req["offset"].is_number_unsigned() || !req.contains("length") ||
      !req["length"].is_number_unsigned() || !req.contains("prot") || !req["prot"].is_string()) {
    return fail(EINVAL, "map needs offset, length (unsigned) and prot (\"r\" or \"rw\")");
  }
  const std::string prot = req["prot"].get<std::string>();
  if (prot != "r" && prot != "rw") return fail(EINVAL, "prot must be \"r\" or \"rw\"");
  const bool writable = prot == "rw";
  const uint64_t offset = req["offset"].get<uint64_t>(), length = req["length"].get<uint64_t>();
  if (offset % info_.map_align != 0) {
    return fail(EINVAL, "offset must be a multiple of " + std::to_string(info_.map_align));
  }
  // A devdax device maps whole units of its alignment, so libudax rounds a map out to
  // them: that only shows this file's bytes when an allocation unit is at least as large.
  if (info_.region_kind == "devdax" && info_.au_size < info_.map_align) {
    return fail(EINVAL, "the allocation units (" + std::to_string(info_.au_size) +
                            " bytes) are smaller than the device's alignment (" +
                            std::to_string(info_.map_align) + "): no direct maps here");
  }
  // The peer shows it may use the file in this mode by the descriptor it opened, and it
  // may use the raw region as the mode bits of the target say (root may always).
  const int fd = (*fds)[0].get();
  struct stat st;
  if (fstat(fd, &st) != 0) return fail(errno, std::string("fstat: ") + strerror(errno));
  if (st.st_dev != info_.mount_dev) return fail(EXDEV, "the file is not on this udaxfs mount");
  if (!S_ISREG(st.st_mode)) return fail(EINVAL, "not a regular file");
  const int acc = fcntl(fd, F_GETFL) & O_ACCMODE;
  if (writable && acc != O_RDWR) return fail(EACCES, "a writable map needs a descriptor open O_RDWR");
  if (acc == O_WRONLY) return fail(EACCES, "the descriptor is write-only");
  if (!(writable ? MayWrite : MayRead)(info_.target, c->uid, c->gid)) {
    return fail(EACCES, "permission denied: a direct map needs " + std::string(writable ? "write" : "read") +
                            " permission on " + info_.target + "; use an ordinary mmap");
  }
  UniqueFd region(open(info_.target.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC));
  if (region.get() < 0) return fail(errno, info_.target + ": " + strerror(errno));
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return fail(errno, std::string("socketpair: ") + strerror(errno));
  }
  auto lease = std::make_unique<Lease>();
  lease->sock = UniqueFd(pair[0]);
  UniqueFd client_end(pair[1]);
  lease->pid = c->pid;
  lease->uid = c->uid;
  lease->pidfd = UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, c->pid, 0)));
  {
    std::ifstream comm("/proc/" + std::to_string(c->pid) + "/comm");
    std::getline(comm, lease->comm);
  }
  lease->ino = st.st_ino;
  lease->offset = offset;
  lease->length = length;
  lease->writable = writable;
  // In the table before the extents are looked up: a truncate from now on revokes it
  // (the revoke waits in the socket for the client), so the extents we send cannot be
  // freed behind its back.
  const uint64_t id = info_.leases->Add(std::move(lease));
  auto inode = info_.fs->Open(st.st_ino, writable ? O_RDWR : O_RDONLY);
  if (!inode.ok()) {
    info_.leases->Remove(id, c->pid);
    return fail(inode.status().code(), inode.status().message());
  }
  auto extents = info_.fs->PrepareDirectMap(inode.value(), offset, length);
  info_.fs->Release(inode.value());
  if (!extents.ok()) {
    info_.leases->Remove(id, c->pid);
    return fail(extents.status().code(), extents.status().message());
  }
  info_.leases->SetExtents(id, extents.value());
  nlohmann::json ext = nlohmann::json::array();
  for (const BmapExtent& e : extents.value()) {
    ext.push_back({{"file_offset", e.file_offset}, {"phys", e.phys_offset}, {"length", e.length}});
  }
  out_fds->push_back(std::move(region));
  out_fds->push_back(std::move(client_end));
  return {{"ok", true}, {"lease", id}, {"extents", ext}, {"region_kind", info_.region_kind},
          {"map_align", info_.map_align}};
}

void ControlServer::Publish(const nlohmann::json& event) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& c : clients_) {
    if (!c->subscribed) continue;
    nlohmann::json msg = {{"event", event}};
    if (c->lost > 0) msg["lost"] = c->lost;
    const std::string out = msg.dump();
    if (send(c->fd.get(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
      c->lost = 0;
    } else {
      ++c->lost;  // a full buffer (or a dead peer, which poll reports next)
    }
  }
}

}  // namespace udax
