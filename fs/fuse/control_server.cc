// control_server.cc -- the control socket's server side (see control_server.h).
#include "fs/fuse/control_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "fs/base/control_packet.h"
#include "fs/base/poll_loop.h"
#include "include/udaxfs/control.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; bookworm's headers predate it
#endif

namespace udax {
namespace {

using Clock = std::chrono::steady_clock;

nlohmann::json Fail(int err, const std::string& why) {
  return nlohmann::json{{"ok", false}, {"errno", err}, {"error", why}};
}

// The peer's process as a pidfd: SO_PEERPIDFD names the process that connected even if
// it has exited since (a kill then fails, ESRCH, instead of hitting a reused pid). Older
// kernels: pidfd_open of the SO_PEERCRED pid, the best they allow.
std::shared_ptr<const UniqueFd> PeerPidfd(int sock, pid_t pid) {
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0 || pidfd < 0) {
    pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  }
  if (pidfd < 0) return nullptr;
  return std::make_shared<const UniqueFd>(pidfd);
}

std::vector<gid_t> PeerGroups(int sock) {
  std::vector<gid_t> groups(64);
  socklen_t len = groups.size() * sizeof(gid_t);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0) {
    if (errno != ERANGE) return {};
    groups.resize(len / sizeof(gid_t));
    if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) != 0) return {};
  }
  groups.resize(len / sizeof(gid_t));
  return groups;
}

}  // namespace

std::string ControlServer::SocketPath(dev_t dev) {
  return std::string(UDAX_CONTROL_DIR) + "/" + std::to_string(major(dev)) + ":" +
         std::to_string(minor(dev)) + ".sock";
}

bool ControlServer::MayAccess(const struct stat& st, const Peer& peer, bool write) {
  if (peer.uid == 0) return true;
  const mode_t owner = write ? S_IWUSR : S_IRUSR, group = write ? S_IWGRP : S_IRGRP,
               other = write ? S_IWOTH : S_IROTH;
  // As the kernel's acl_permission_check: the first class that matches decides.
  if (st.st_uid == peer.uid) return st.st_mode & owner;
  if (st.st_gid == peer.gid ||
      std::find(peer.groups.begin(), peer.groups.end(), st.st_gid) != peer.groups.end()) {
    return st.st_mode & group;
  }
  return st.st_mode & other;
}

ControlServer::Info::Device ControlServer::DeviceNow(size_t i) const {
  Info::Device out = info_.devices[i];
  // The device in place i now: replace-device, or add-device with a path, maps another
  // descriptor there while the filesystem serves (the old object lives on, unused, so a
  // descriptor read during the swap is still open).
  if (info_.fs != nullptr) {
    const Region* dev = info_.fs->region()->device(i);
    out.fd = dev->fd();
    out.kind = RegionKindName(dev->kind());
    out.map_align = std::max<uint64_t>(dev->alignment(), 4096);
  }
  return out;
}

bool ControlServer::MayUseRegion(const Peer& peer, bool write) const {
  struct stat st;
  if (info_.region_fd < 0) {
    if (info_.devices.empty()) return false;
    for (size_t i = 0; i < info_.devices.size(); ++i) {
      // A lost device (maybe absent: no descriptor) grants nothing and refuses nothing.
      if (info_.fs != nullptr && info_.fs->region()->device_lost(i)) continue;
      const Info::Device d = DeviceNow(i);
      if (fstat(d.fd, &st) != 0 || !MayAccess(st, peer, write)) return false;
    }
    return true;
  }
  if (fstat(info_.region_fd, &st) != 0) return false;
  return MayAccess(st, peer, write);
}

Result<std::vector<ControlServer::MapTarget>> ControlServer::DevicesOf(
    std::vector<BmapExtent>* extents, bool many, std::vector<size_t>* device_of) const {
  device_of->assign(extents->size(), 0);
  if (info_.region_fd >= 0) {
    return std::vector<MapTarget>{{info_.region_fd, info_.region_kind, info_.map_align}};
  }
  std::vector<size_t> listed;  // device numbers, in the order the extents name them
  for (size_t i = 0; i < extents->size(); ++i) {
    const BmapExtent& e = (*extents)[i];
    size_t d = 0;
    while (d < info_.devices.size() &&
           !(e.phys_offset >= info_.devices[d].start &&
             e.phys_offset + e.length <= info_.devices[d].start + info_.devices[d].length)) {
      ++d;
    }
    if (d == info_.devices.size()) {
      return Status::Error(EXDEV, "an extent of the file crosses a device's end: read it through FUSE");
    }
    auto at = std::find(listed.begin(), listed.end(), d);
    if (at == listed.end()) {
      if (!listed.empty() && !many) {
        return Status::Error(EXDEV, "the file lies on more than one device: read it through FUSE");
      }
      at = listed.insert(listed.end(), d);
    }
    (*device_of)[i] = static_cast<size_t>(at - listed.begin());
  }
  // No extents (an empty file's view): device 0's descriptor, which a view still carries.
  if (listed.empty()) listed.push_back(0);
  std::vector<MapTarget> out;
  for (size_t d : listed) {
    if (info_.fs != nullptr && info_.fs->region()->device_lost(d)) {
      return Status::Error(EIO, "the file's data was on a device that is gone");
    }
    const Info::Device dev = DeviceNow(d);
    if (dev.kind == "devdax" && info_.au_size % dev.map_align != 0) {
      return Status::InvalidArgument("allocation units are smaller than the device's alignment (" +
                                     std::to_string(dev.map_align) + "): no direct maps there");
    }
    // One reply says how the client maps: every device must map the same way.
    if (!out.empty() && (dev.kind != out[0].kind || dev.map_align != out[0].map_align)) {
      return Status::Error(EXDEV, "the file lies on devices of different kinds: read it through FUSE");
    }
    out.push_back({dev.fd, dev.kind, dev.map_align});
  }
  for (size_t i = 0; i < extents->size(); ++i) {
    (*extents)[i].phys_offset -= info_.devices[listed[(*device_of)[i]]].start;
  }
  return out;
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
      chmod(path.c_str(), 0666) != 0 || listen(fd.get(), 64) != 0) {
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    clients_.clear();
  }
  ReleaseUnpinned();
  unlink(path_.c_str());
}

void ControlServer::ReleaseUnpinned() {
  if (info_.leases == nullptr || info_.fs == nullptr) return;
  std::vector<LeaseTable::EndedView> views_ended;
  std::vector<Inode*> pins = info_.leases->TakeUnpinned(&views_ended);
  for (const auto& v : views_ended) {  // before its pin goes
    if (v.map) {
      info_.fs->EndMapWriter(v.pin);
    } else {
      info_.fs->EndReadView(v.pin, v.writable);
    }
  }
  for (Inode* pin : pins) info_.fs->Release(pin);
}

int ControlServer::ExpireIdleLocked() {
  const auto now = Clock::now();
  int timeout = -1;
  for (auto it = clients_.begin(); it != clients_.end();) {
    const Client& c = **it;
    const auto deadline = c.last_active + info_.limits.idle;
    if (c.subscribed || deadline > now) {
      if (!c.subscribed) {
        const int ms = static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1);
        timeout = timeout < 0 ? ms : std::min(timeout, ms);
      }
      ++it;
    } else {
      it = clients_.erase(it);  // idle: its slot goes back (libudax reconnects)
    }
  }
  return timeout;
}

void ControlServer::Run() {
  while (true) {
    std::vector<pollfd> fds = {{listener_.get(), POLLIN, 0}};
    const int unpinned = info_.leases ? info_.leases->unpinned_fd() : -1;
    fds.push_back({unpinned, POLLIN, 0});  // a negative fd is skipped by poll
    int timeout;
    size_t nclients;
    {
      std::lock_guard<std::mutex> lock(mu_);
      timeout = ExpireIdleLocked();
      for (const auto& c : clients_) fds.push_back({c->fd.get(), POLLIN, 0});
      nclients = clients_.size();
    }
    // Lease sockets, for the hang-up of a client that died or dropped a map without an
    // unmap: events 0 asks for POLLHUP/POLLERR only, so acks stay for Revoke to read.
    const auto lease_socks = info_.leases ? info_.leases->Sockets()
                                          : std::vector<std::pair<uint64_t, int>>{};
    for (const auto& [id, fd] : lease_socks) fds.push_back({fd, 0, 0});
    Result<Wake> wake = PollOrStop(stop_, fds, timeout);
    if (!wake.ok() || *wake == Wake::kStopped) return;
    if (fds[1].revents) ReleaseUnpinned();
    std::vector<uint64_t> hung_up;
    for (size_t i = 0; i < lease_socks.size(); ++i) {
      if (fds[2 + nclients + i].revents & (POLLHUP | POLLERR)) hung_up.push_back(lease_socks[i].first);
    }
    if (!hung_up.empty()) info_.leases->ReapHungUp(hung_up);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 2; i < 2 + nclients; ++i) {
        if (fds[i].revents == 0) continue;
        for (auto it = clients_.begin(); it != clients_.end(); ++it) {
          if ((*it)->fd.get() != fds[i].fd) continue;
          if (!Serve(it->get())) clients_.erase(it);
          break;
        }
      }
    }
    // New connections last: the slots of clients that hung up in this round are free.
    if (fds[0].revents & POLLIN) Accept();
  }
}

bool ControlServer::HasRoomLocked(uid_t uid) const {
  size_t mine = 0, nonroot = 0;
  for (const auto& c : clients_) {
    mine += c->peer.uid == uid;
    nonroot += c->peer.uid != 0;
  }
  if (uid == 0) return clients_.size() < info_.limits.conns_total + info_.limits.conns_root;
  return mine < info_.limits.conns_per_user && nonroot < info_.limits.conns_total;
}

void ControlServer::Accept() {
  while (true) {
    UniqueFd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (fd.get() < 0) return;  // EAGAIN: all taken; anything else: try at the next wake
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) continue;
    auto c = std::make_unique<Client>();
    c->peer = Peer{cred.pid, cred.uid, cred.gid, PeerGroups(fd.get())};
    c->pidfd = PeerPidfd(fd.get(), cred.pid);
    c->last_active = Clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    if (!HasRoomLocked(cred.uid)) {
      // Said once, then closed: the client's first request reads this as its reply.
      const std::string no = Fail(EUSERS, "too many control connections from this user").dump();
      send(fd.get(), no.data(), no.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      continue;
    }
    c->fd = std::move(fd);
    clients_.push_back(std::move(c));
  }
}

bool ControlServer::Serve(Client* c) {
  ReceivedPacket packet;
  const ssize_t n = RecvPacket(c->fd.get(), MSG_DONTWAIT, &packet);
  if (n == 0) return false;
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  c->last_active = Clock::now();
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
  Result<ControlRequest> req = ParseControlRequest(packet);
  if (!req.ok()) return {{"ok", false}, {"error", req.status().message()}};
  switch (req->op) {
    case ControlOp::kHello: {
      nlohmann::json out = {{"ok", true},
                            {"version", UDAX_CONTROL_VERSION},
                            {"au_size", info_.au_size},
                            {"region_size", info_.region_size},
                            {"mce_policy", info_.mce_policy}};
      // Where the filesystem lives is for those who may read it.
      if (MayUseRegion(c->peer, false)) out["target"] = info_.target;
      return out;
    }
    case ControlOp::kSubscribe:
      if (!MayUseRegion(c->peer, false)) {
        return {{"ok", false}, {"error", "permission denied: subscribing needs read permission on the region"}};
      }
      c->subscribed = true;
      return {{"ok", true}};
    case ControlOp::kMap:
      return Map(c, *req, fds, out_fds);
    case ControlOp::kView:
      return View(c, *req, fds, out_fds);
    case ControlOp::kUnmap:
      if (info_.leases == nullptr || !info_.leases->Remove(req->lease, c->peer.pid)) {
        return {{"ok", false}, {"error", "no such lease of this process"}};
      }
      return {{"ok", true}};
    case ControlOp::kVerify:
    case ControlOp::kStatus:
      if (c->peer.uid != 0) {
        return {{"ok", false}, {"error", "permission denied: the media patrol answers root only"}};
      }
      if (info_.patrol == nullptr) return Fail(EOPNOTSUPP, "this mount runs no media patrol");
      if (req->op == ControlOp::kVerify) return {{"ok", true}, {"pass", info_.patrol->Request(req->rate)}};
      {
        nlohmann::json out{{"ok", true}, {"patrol", info_.patrol->State()}};
        if (info_.fs != nullptr) {
          const JournalStats js = info_.fs->journal_stats();
          out["journal"] = {{"commits", js.commits},
                            {"log_bytes", js.log_bytes},
                            {"applied_bytes", js.applied_bytes},
                            {"slot_bytes", info_.fs->SuperblockSnapshot().journal_len},
                            {"replayed_at_mount", info_.fs->replayed_at_mount()}};
          nlohmann::json sick = nlohmann::json::array();
          for (const auto& [ino, why] : info_.fs->SickInodes()) {
            sick.push_back({{"ino", ino}, {"why", why}});
          }
          out["sick"] = sick;
          // Several devices: which are gone (the filesystem serves, degraded).
          if (info_.fs->region()->device_count() > 1) {
            nlohmann::json devices = nlohmann::json::array();
            for (size_t d = 0; d < info_.fs->region()->device_count(); ++d) {
              devices.push_back({{"device", d},
                                 {"path", info_.fs->region()->device(d)->path()},
                                 {"lost", info_.fs->region()->device_lost(d)},
                                 {"removing", info_.removing_device &&
                                                  info_.removing_device(static_cast<uint32_t>(d))}});
            }
            out["devices"] = devices;
            // File data a replaced device took with it (udaxctl replace-device).
            if (auto lost = info_.fs->LostDataSummary(); lost.ok() && !lost->files.empty()) {
              out["lost_data"] = {{"files", lost->files.size()}, {"bytes", lost->bytes}};
            }
          }
          if (const auto scrub = info_.fs->checker().last_scrub()) {
            out["scrub"] = {{"finished", std::chrono::duration<double>(
                                             scrub->finished.time_since_epoch()).count()},
                            {"inodes", scrub->inodes},
                            {"problems", scrub->problems}};
            if (!scrub->error.empty()) out["scrub"]["error"] = scrub->error;
          }
        }
        return out;
      }
    case ControlOp::kRemoveDevice: {
      if (c->peer.uid != 0) return {{"ok", false}, {"error", "permission denied: removing a device needs root"}};
      if (!info_.remove_device) return Fail(EOPNOTSUPP, "this mount cannot lose a device");
      Status st = info_.remove_device(static_cast<uint32_t>(req->device));
      if (!st.ok()) return Fail(st.code(), st.message());
      return {{"ok", true}};
    }
    case ControlOp::kAddDevice: {
      if (c->peer.uid != 0) return {{"ok", false}, {"error", "permission denied: adding a device needs root"}};
      if (!info_.add_device) return Fail(EOPNOTSUPP, "this mount cannot take a device back");
      Result<DeviceResync> done = info_.add_device(static_cast<uint32_t>(req->device), req->path);
      if (!done.ok()) return Fail(done.status().code(), done.status().message());
      return {{"ok", true},
              {"metadata_aus", done->metadata_aus},
              {"quarantined_aus", done->quarantined_aus},
              {"file_bytes", done->file_bytes}};
    }
    case ControlOp::kReplaceDevice: {
      if (c->peer.uid != 0) {
        return {{"ok", false}, {"error", "permission denied: replacing a device needs root"}};
      }
      if (!info_.replace_device) return Fail(EOPNOTSUPP, "this mount cannot replace a device");
      Result<DeviceReplacement> done =
          info_.replace_device(static_cast<uint32_t>(req->device), req->path);
      if (!done.ok()) return Fail(done.status().code(), done.status().message());
      return {{"ok", true},
              {"metadata_aus", done->metadata_aus},
              {"quarantined_aus", done->quarantined_aus},
              {"lost_files", done->lost_files},
              {"lost_file_bytes", done->lost_file_bytes}};
    }
    case ControlOp::kLeases:
      if (c->peer.uid != 0) return {{"ok", false}, {"error", "permission denied: listing leases needs root"}};
    {
      // One packet must hold the reply: the first kLeasesShown, and how many there are.
      constexpr size_t kLeasesShown = 200;
      nlohmann::json all = info_.leases ? info_.leases->List() : nlohmann::json::array();
      const size_t total = all.size();
      if (total > kLeasesShown) all.erase(all.begin() + kLeasesShown, all.end());
      return {{"ok", true}, {"leases", std::move(all)}, {"total", total}};
    }
  }
  return {{"ok", false}, {"error", "unknown op"}};
}

// What a granted lease sends back with its reply (the region's descriptor and the
// client's end of the lease socket), or the failure reply.
struct ControlServer::NewLease {
  uint64_t id = 0;
  Inode* pin = nullptr;
  UniqueFd client_end;
  nlohmann::json failure;  // set when there is no lease
};

ControlServer::NewLease ControlServer::StartLease(Client* c, std::vector<UniqueFd>* fds,
                                                  uint64_t offset, uint64_t length,
                                                  bool writable, bool view) {
  NewLease out;
  if (info_.fs == nullptr || info_.leases == nullptr ||
      (info_.region_fd < 0 && info_.devices.empty())) {
    out.failure = Fail(EOPNOTSUPP, "direct maps are off");
    return out;
  }
  if (!info_.direct_access) {
    out.failure = Fail(EOPNOTSUPP, "mounted with writeback_cache: the kernel's dirty pages hold the "
                                   "newest bytes, so no direct maps or views (use mmap and read)");
    return out;
  }
  if (fds->size() != 1) {
    out.failure = Fail(EINVAL, "the request needs the file's descriptor (SCM_RIGHTS)");
    return out;
  }
  // A devdax device maps whole units of its alignment, so libudax rounds a map out to
  // them: that only shows this file's bytes when an allocation unit is at least as large.
  if (info_.region_kind == "devdax" && info_.au_size < info_.map_align) {
    out.failure = Fail(EINVAL, "the allocation units (" + std::to_string(info_.au_size) +
                                   " bytes) are smaller than the device's alignment (" +
                                   std::to_string(info_.map_align) + "): no direct maps here");
    return out;
  }
  // The peer shows it may use the file in this mode by the descriptor it opened (O_PATH
  // opens grant nothing), and it may use the raw region as the mode bits of the region
  // the daemon holds open say (root may always).
  const int fd = (*fds)[0].get();
  struct stat st;
  if (fstat(fd, &st) != 0) {
    out.failure = Fail(errno, std::string("fstat: ") + strerror(errno));
    return out;
  }
  if (st.st_dev != info_.mount_dev) {
    out.failure = Fail(EXDEV, "the file is not on this udaxfs mount");
    return out;
  }
  if (!S_ISREG(st.st_mode)) {
    out.failure = Fail(EINVAL, "not a regular file");
    return out;
  }
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || (flags & O_PATH)) {
    out.failure = Fail(EBADF, "an O_PATH descriptor grants no access");
    return out;
  }
  const int acc = flags & O_ACCMODE;
  if (writable && acc != O_RDWR) {
    out.failure = Fail(EACCES, "a writable map needs a descriptor open O_RDWR");
    return out;
  }
  if (acc == O_WRONLY) {
    out.failure = Fail(EACCES, "the descriptor is write-only");
    return out;
  }
  if (!MayUseRegion(c->peer, writable)) {
    out.failure = Fail(EACCES, std::string("permission denied: a direct map needs ") +
                                   (writable ? "write" : "read") +
                                   " permission on the region; use an ordinary mmap");
    return out;
  }
  if (!c->pidfd) {
    out.failure = Fail(EPERM, "the daemon cannot track this process (no pidfd)");
    return out;
  }
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    out.failure = Fail(errno, std::string("socketpair: ") + strerror(errno));
    return out;
  }
  UniqueFd daemon_end(pair[0]), client_end(pair[1]);
  // The lease holds the file open, like the client's descriptor did: the inode cannot be
  // freed under the map.
  auto pin = info_.fs->Open(st.st_ino, writable ? O_RDWR : O_RDONLY);
  if (!pin.ok()) {
    out.failure = Fail(pin.status().code(), pin.status().message());
    return out;
  }
  auto lease = std::make_unique<Lease>();
  lease->sock = std::move(daemon_end);
  lease->pid = c->peer.pid;
  lease->uid = c->peer.uid;
  lease->pidfd = c->pidfd;
  {
    std::ifstream comm("/proc/" + std::to_string(c->peer.pid) + "/comm");
    std::getline(comm, lease->comm);
  }
  lease->ino = st.st_ino;
  lease->offset = offset;
  lease->length = length;
  lease->writable = writable;
  lease->view = view;
  lease->pin = pin.value();
  // In the table before the extents are looked up: a truncate from now on cancels it (or,
  // once granted, revokes it), so the extents we send cannot be freed behind its back.
  std::unique_ptr<Lease> refused;
  Result<uint64_t> id = info_.leases->Add(std::move(lease), &refused);
  if (!id.ok()) {
    info_.fs->Release(refused->pin);
    out.failure = Fail(id.status().code(), id.status().message());
    return out;
  }
  out.id = *id;
  out.pin = pin.value();
  out.client_end = std::move(client_end);
  return out;
}

namespace {

// A fresh open file description of a region (or device) the daemon holds (never our own,
// whose lock the client could drop), reached through the descriptor: no path lookup.
Result<UniqueFd> Reopen(int fd, bool writable) {
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  UniqueFd region(open(self.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC));
  if (region.get() < 0) return Status::Error(errno, std::string("reopening the region: ") + strerror(errno));
  return region;
}

nlohmann::json ExtentsJson(const std::vector<BmapExtent>& extents) {
  nlohmann::json ext = nlohmann::json::array();
  for (const BmapExtent& e : extents) {
    ext.push_back({{"file_offset", e.file_offset}, {"phys", e.phys_offset}, {"length", e.length}});
  }
  return ext;
}

}  // namespace

nlohmann::json ControlServer::Map(Client* c, const ControlRequest& req, std::vector<UniqueFd>* fds,
                                  std::vector<UniqueFd>* out_fds) {
  if (req.offset % info_.map_align != 0) {
    return Fail(EINVAL, "offset must be a multiple of " + std::to_string(info_.map_align));
  }
  NewLease lease = StartLease(c, fds, req.offset, req.length, req.writable, /*view=*/false);
  if (lease.pin == nullptr) return lease.failure;
  auto extents = info_.fs->PrepareDirectMap(lease.pin, req.offset, req.length, req.writable);
  if (!extents.ok()) {
    info_.leases->Remove(lease.id, c->peer.pid);
    return Fail(extents.status().code(), extents.status().message());
  }
  // Stores through a writable map change the file behind the kernel's back: counted
  // before the client can store, so stat and FUSE reads see them (HasViewWriters).
  // The lease keeps the region's offsets (revokes and media errors name those); the
  // client gets its device's.
  std::vector<BmapExtent> sent = extents.value();
  std::vector<size_t> device_of;
  Result<std::vector<MapTarget>> devices = DevicesOf(&sent, req.many_devices, &device_of);
  std::vector<UniqueFd> regions;
  Status opened = devices.status();
  for (size_t i = 0; opened.ok() && i < devices->size(); ++i) {
    Result<UniqueFd> region = Reopen((*devices)[i].fd, req.writable);
    if (region.ok()) {
      regions.push_back(std::move(region).value());
    } else {
      opened = region.status();
    }
  }
  if (!opened.ok()) {
    info_.leases->Remove(lease.id, c->peer.pid);
    return Fail(opened.code(), opened.message());
  }
  nlohmann::json ext = ExtentsJson(sent);
  if (req.many_devices) {
    for (size_t i = 0; i < sent.size(); ++i) ext[i]["descriptor"] = device_of[i];
  }
  nlohmann::json reply = {{"ok", true}, {"lease", lease.id}, {"extents", std::move(ext)},
                          {"region_kind", (*devices)[0].kind}, {"map_align", (*devices)[0].map_align}};
  if (req.many_devices) reply["devices"] = regions.size();
  // One packet holds the reply (UDAX_CONTROL_MAX_PACKET), with room for the envelope.
  if (reply.dump().size() > UDAX_CONTROL_MAX_PACKET - 1024) {
    info_.leases->Remove(lease.id, c->peer.pid);
    return Fail(E2BIG, "the range has too many extents for one reply: map less of it at a time");
  }
  if (req.writable) info_.fs->StartMapWriter(lease.pin);
  if (!info_.leases->Grant(lease.id, extents.value(), /*holds_view=*/false, req.writable)) {
    if (req.writable) info_.fs->EndMapWriter(lease.pin);  // the lease is gone, its pin not yet released
    return Fail(EAGAIN, "the file changed while the map was prepared: try again");
  }
  if (req.writable && info_.invalidate_attributes) info_.invalidate_attributes(lease.pin->ino);
  // The first device's descriptor, the lease socket, then the other devices' (an older
  // client, which never asks for several, gets the two it always got).
  out_fds->push_back(std::move(regions[0]));
  out_fds->push_back(std::move(lease.client_end));
  for (size_t i = 1; i < regions.size(); ++i) out_fds->push_back(std::move(regions[i]));
  return reply;
}

nlohmann::json ControlServer::View(Client* c, const ControlRequest& req, std::vector<UniqueFd>* fds,
                                   std::vector<UniqueFd>* out_fds) {
  // The reply is one packet: about 70 bytes an extent (35 in the compact table), well
  // inside it at this count. A file more fragmented than that is read through FUSE.
  const size_t kMaxViewExtents = req.compact_extents ? 1536 : 512;
  // Views copy whole pages out of the region: allocation units must be whole pages, or a
  // page would show a neighbour's bytes.
  if (info_.au_size % static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) != 0 ||
      (info_.region_kind == "devdax" && info_.au_size % info_.map_align != 0)) {
    return Fail(EINVAL, "allocation units are not whole pages (or device units): no read views here");
  }
  NewLease lease = StartLease(c, fds, 0, UINT64_MAX, req.writable, /*view=*/true);
  if (lease.pin == nullptr) return lease.failure;
  auto view = [&] {
    // A reservation or fill revokes the file's views (this one's extents are read after it).
    LeaseTable::PreparingOnThisThread preparing(lease.id);
    return info_.fs->PrepareReadView(lease.pin, kMaxViewExtents, req.writable, req.reserve,
                                     {req.reserve_at, req.fill_offset, req.fill_length});
  }();
  if (!view.ok()) {
    info_.leases->Remove(lease.id, c->peer.pid);
    return Fail(view.status().code(), view.status().message());
  }
  // From here each failure ends the view the filesystem counted (the pin is still ours:
  // a dropped lease's pin is released by this thread, later).
  auto refuse = [&](int err, const std::string& why) {
    info_.fs->EndReadView(lease.pin, req.writable);
    info_.leases->Remove(lease.id, c->peer.pid);
    return Fail(err, why);
  };
  if (view->bad.size() > kMaxViewExtents) return refuse(E2BIG, "the file has too many bad ranges for a read view");
  std::vector<BmapExtent> sent = view->extents;  // the lease keeps the region's offsets
  std::vector<size_t> device_of;
  Result<std::vector<MapTarget>> devices = DevicesOf(&sent, /*many=*/false, &device_of);
  if (!devices.ok()) return refuse(devices.status().code(), devices.status().message());
  const MapTarget* device = &(*devices)[0];
  Result<UniqueFd> region = Reopen(device->fd, req.writable);
  if (!region.ok()) return refuse(region.status().code(), region.status().message());
  // The holder gets the view page read-only (a fresh open file description): it must not
  // be able to move the words other holders trust. The write page read-write only for a
  // writable view (its mode keeps anyone else from reopening it so).
  auto reopen = [](int fd, int flags) {
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    return UniqueFd(open(path.c_str(), flags | O_CLOEXEC));
  };
  UniqueFd page = reopen(view->page_fd, O_RDONLY);
  UniqueFd write_page = reopen(view->write_page_fd, req.writable ? O_RDWR : O_RDONLY);
  if (page.get() < 0 || write_page.get() < 0) {
    const int err = errno;
    return refuse(err, std::string("reopening the view's pages: ") + strerror(err));
  }
  nlohmann::json bad = nlohmann::json::array();
  for (const BmapExtent& b : view->bad) bad.push_back({{"offset", b.file_offset}, {"length", b.length}});
  nlohmann::json reply = {{"ok", true}, {"lease", lease.id}, {"size", view->size}, {"limit", view->limit},
                          {"gen", view->gen},
                          {"bad", std::move(bad)},
                          {"region_kind", device->kind}, {"map_align", device->map_align},
                          {"prot", req.writable ? "rw" : "r"}, {"sync", view->sync}};
  if (req.compact_extents) {
    nlohmann::json table = nlohmann::json::array();
    for (const BmapExtent& e : sent) table.push_back({e.file_offset, e.phys_offset, e.length});
    reply["extent_table"] = std::move(table);
  } else {
    reply["extents"] = ExtentsJson(sent);
  }
  // One packet holds the reply (UDAX_CONTROL_MAX_PACKET), with room for the envelope.
  if (reply.dump().size() > UDAX_CONTROL_MAX_PACKET - 1024) {
    return refuse(E2BIG, "the file's extents do not fit one reply: read it through FUSE");
  }
  if (!info_.leases->Grant(lease.id, view->extents, /*holds_view=*/true)) {
    info_.fs->EndReadView(lease.pin, req.writable);  // the lease is gone, its pin not yet released
    return Fail(EAGAIN, "the file changed while the view was prepared: try again");
  }
  // The kernel may hold the file's attributes (and, through them, its pages) for the
  // attribute timeout: from now on stores change the file behind its back, so it asks
  // again at the next stat or read (FUSE_CAP_AUTO_INVAL_DATA then drops stale pages when
  // the mtime moved; fuse_ops.cc gives such a file's attributes no timeout).
  if (req.writable && info_.invalidate_attributes) info_.invalidate_attributes(lease.pin->ino);
  out_fds->push_back(std::move(region).value());
  out_fds->push_back(std::move(lease.client_end));
  out_fds->push_back(std::move(page));
  out_fds->push_back(std::move(write_page));
  return reply;
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
