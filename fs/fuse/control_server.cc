// control_server.cc -- the control socket's server side (see control_server.h).
#include "fs/fuse/control_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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
  std::string packet(UDAX_CONTROL_MAX_PACKET, '\0');
  const ssize_t n = recv(c->fd.get(), packet.data(), packet.size(), MSG_TRUNC);
  if (n == 0) return false;
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  nlohmann::json reply;
  if (static_cast<size_t>(n) > packet.size()) {
    reply = {{"ok", false}, {"error", "request larger than " + std::to_string(UDAX_CONTROL_MAX_PACKET) + " bytes"}};
  } else {
    packet.resize(static_cast<size_t>(n));
    reply = Reply(c, packet);
  }
  const std::string out = reply.dump();
  return send(c->fd.get(), out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0 ||
         errno == EAGAIN;
}

nlohmann::json ControlServer::Reply(Client* c, const std::string& packet) {
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
  return {{"ok", false}, {"error", "unknown op '" + op + "'"}};
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
