// lease_table.cc -- leases, revocation with acknowledgement, kill on timeout.
#include "fs/fuse/lease_table.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace udax {
namespace {

bool Overlaps(const Lease& l, uint64_t ino, uint64_t from, uint64_t to) {
  if (ino == 0) return true;
  return l.ino == ino && l.offset < to && from < l.offset + l.length;
}

bool SendJson(int fd, const nlohmann::json& j) {
  const std::string s = j.dump();
  return send(fd, s.data(), s.size(), MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(s.size());
}

}  // namespace

uint64_t LeaseTable::Add(std::unique_ptr<Lease> lease) {
  std::lock_guard<std::mutex> lock(mu_);
  lease->id = next_id_++;
  const uint64_t id = lease->id;
  leases_.push_back(std::move(lease));
  return id;
}

void LeaseTable::SetExtents(uint64_t id, std::vector<BmapExtent> extents) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& l : leases_) {
    if (l->id == id) l->extents = std::move(extents);
  }
}

bool LeaseTable::Remove(uint64_t id, pid_t pid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(leases_.begin(), leases_.end(),
                         [&](const auto& l) { return l->id == id && l->pid == pid; });
  if (it == leases_.end()) return false;
  leases_.erase(it);
  return true;
}

size_t LeaseTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return leases_.size();
}

std::vector<LeaseTable::HolderAction> LeaseTable::Revoke(uint64_t ino, uint64_t from, uint64_t to) {
  std::vector<std::unique_ptr<Lease>> taken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (Overlaps(**it, ino, from, to)) {
        taken.push_back(std::move(*it));
        it = leases_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // All revokes first, then the waits: clients answer in parallel.
  for (auto& l : taken) SendJson(l->sock.get(), {{"revoke", l->id}});
  std::vector<HolderAction> done;
  for (auto& l : taken) {
    const bool given_back = RevokeOne(l.get());
    done.push_back({l->pid, l->comm,
                    given_back ? "revoked" : "killed: no acknowledgement in time", !given_back});
  }
  return done;
}

bool LeaseTable::RevokeOne(Lease* l) {
  const auto end = std::chrono::steady_clock::now() + deadline_;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{l->sock.get(), POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    char buf[512];
    const ssize_t r = recv(l->sock.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (r == 0) return true;  // hung up: the client (and so its mapping) is gone
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return true;  // ECONNRESET: gone too
    }
    auto j = nlohmann::json::parse(std::string(buf, r), nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.value("ack", uint64_t{0}) == l->id) return true;
  }
  KillAndWait(l);
  return false;
}

void LeaseTable::KillAndWait(Lease* l) {
  if (l->pidfd.get() >= 0) {
    syscall(SYS_pidfd_send_signal, l->pidfd.get(), SIGKILL, nullptr, 0);
    // The pidfd turns readable when the process has exited, after its address space is
    // gone: only then may the blocks be reused.
    pollfd p{l->pidfd.get(), POLLIN, 0};
    poll(&p, 1, 5000);
  }
}

std::vector<LeaseTable::MceResult> LeaseTable::MediaError(uint64_t ino, uint64_t off,
                                                          uint64_t len,
                                                          const std::string& policy) {
  std::vector<MceResult> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& l : leases_) {
    if (!Overlaps(*l, ino, off, off + len)) continue;
    MceResult r{l->pid, l->comm, ""};
    if (policy == "kill") {
      r.action = syscall(SYS_pidfd_send_signal, l->pidfd.get(), SIGKILL, nullptr, 0) == 0
                     ? "killed (direct map)"
                     : std::string("kill failed: ") + strerror(errno);
    } else if (policy == "notify") {
      const bool sent = SendJson(l->sock.get(), {{"mce", {{"lease", l->id}, {"offset", off}, {"length", len}}}});
      r.action = sent ? "notified (direct map: BUS_MCEERR_AO)" : "notify failed (client not reading)";
    } else {
      r.action = "ignored (direct map)";
    }
    out.push_back(std::move(r));
  }
  return out;
}

nlohmann::json LeaseTable::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& l : leases_) {
    out.push_back({{"lease", l->id},
                   {"pid", l->pid},
                   {"uid", l->uid},
                   {"comm", l->comm},
                   {"ino", l->ino},
                   {"offset", l->offset},
                   {"length", l->length},
                   {"prot", l->writable ? "rw" : "r"},
                   {"extents", [&] {
                      nlohmann::json e = nlohmann::json::array();
                      for (const BmapExtent& x : l->extents) {
                        e.push_back({{"file_offset", x.file_offset}, {"phys", x.phys_offset}, {"length", x.length}});
                      }
                      return e;
                    }()}});
  }
  return out;
}

}  // namespace udax
