// lease_table.cc -- leases, revocation with one deadline, kill and wait, per-user limits.
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

using Clock = std::chrono::steady_clock;

bool Overlaps(const Lease& l, uint64_t ino, uint64_t from, uint64_t to) {
  if (ino == 0) return true;
  if (l.view) return l.ino == ino;  // a view depends on the whole file
  return l.ino == ino && l.offset < to && from < l.offset + l.length;
}

bool SendJson(int fd, const nlohmann::json& j) {
  const std::string s = j.dump();
  return send(fd, s.data(), s.size(), MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(s.size());
}

// Rounded up: a holder gets its whole deadline (rounded down, poll woke up to a
// millisecond early and the revoke killed before the deadline).
int MsLeft(Clock::time_point end) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(end - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Reads what a revoked client sent on its lease socket: true once it acknowledged `id` or
// hung up (either way its map is gone), false while it has said nothing that counts. A
// bounded number of packets per call: a client that writes as fast as we read must not
// keep us here past the deadline.
bool GaveBack(const Lease& l) {
  for (int packets = 0; packets < 64; ++packets) {
    char buf[512];
    const ssize_t r = recv(l.sock.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (r == 0) return true;  // hung up: the client (and so its mapping) is gone
    if (r < 0) return errno != EAGAIN && errno != EINTR;  // ECONNRESET: gone too
    auto j = nlohmann::json::parse(std::string(buf, r), nullptr, false);
    // Typed checks, not j.value(): a client's {"ack": "x"} must not throw in a revoke.
    if (j.is_object() && j.contains("ack") && j["ack"].is_number_unsigned() &&
        j["ack"].get<uint64_t>() == l.id) {
      return true;
    }
  }
  return false;
}

bool Kill(const Lease& l) {
  return l.pidfd && l.pidfd->get() >= 0 &&
         syscall(SYS_pidfd_send_signal, l.pidfd->get(), SIGKILL, nullptr, 0) == 0;
}

// Waits, until `end`, for the holders of `*alive` to exit (a pidfd turns readable once
// the process is gone, after its address space is). Moves those that did to the result.
std::vector<std::unique_ptr<Lease>> WaitForExit(std::vector<std::unique_ptr<Lease>>* alive,
                                                Clock::time_point end) {
  std::vector<std::unique_ptr<Lease>> exited;
  while (!alive->empty()) {
    std::vector<pollfd> fds;
    for (const auto& l : *alive) fds.push_back({l->pidfd ? l->pidfd->get() : -1, POLLIN, 0});
    const int n = poll(fds.data(), fds.size(), MsLeft(end));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::vector<std::unique_ptr<Lease>> still;
    for (size_t i = 0; i < alive->size(); ++i) {
      auto& l = (*alive)[i];
      (fds[i].revents & (POLLIN | POLLHUP | POLLERR) ? exited : still).push_back(std::move(l));
    }
    *alive = std::move(still);
  }
  return exited;
}

}  // namespace

LeaseTable::LeaseTable(std::chrono::milliseconds ack_deadline, Limits limits)
    : ack_deadline_(ack_deadline), limits_(limits) {
  auto signal = StopSignal::Create();
  if (signal.ok()) unpinned_signal_ = std::make_unique<StopSignal>(std::move(signal).value());
}

Result<uint64_t> LeaseTable::Add(std::unique_ptr<Lease> lease, std::unique_ptr<Lease>* refused) {
  std::lock_guard<std::mutex> lock(mu_);
  if (lease->uid != 0) {
    if (per_uid_[lease->uid] >= limits_.per_user) {
      *refused = std::move(lease);
      return Status::Error(EMFILE, "this user holds " + std::to_string(limits_.per_user) +
                                       " direct maps already (unmap some first)");
    }
    if (nonroot_ >= limits_.total) {
      *refused = std::move(lease);
      return Status::Error(ENFILE, "the daemon holds " + std::to_string(limits_.total) +
                                       " direct maps of users already");
    }
    ++per_uid_[lease->uid];
    ++nonroot_;
  }
  lease->id = next_id_++;
  const uint64_t id = lease->id;
  leases_.push_back(std::move(lease));
  return id;
}

void LeaseTable::ForgetLocked(const Lease& l) {
  if (l.uid == 0) return;
  auto it = per_uid_.find(l.uid);
  if (it != per_uid_.end() && --it->second == 0) per_uid_.erase(it);
  --nonroot_;
}

void LeaseTable::RetireLocked(std::unique_ptr<Lease> lease) {
  if (lease->pin == nullptr) return;
  if (lease->holds_view) views_ended_.push_back({lease->pin, lease->writable, false});
  if (lease->holds_writer) views_ended_.push_back({lease->pin, true, true});
  unpinned_.push_back(lease->pin);
  if (unpinned_signal_) unpinned_signal_->Notify();
}

void LeaseTable::Retire(std::unique_ptr<Lease> lease) {
  std::lock_guard<std::mutex> lock(mu_);
  ForgetLocked(*lease);
  RetireLocked(std::move(lease));
}

std::vector<Inode*> LeaseTable::TakeUnpinned(std::vector<EndedView>* views_ended) {
  std::lock_guard<std::mutex> lock(mu_);
  if (unpinned_signal_) unpinned_signal_->Drain();
  std::vector<EndedView> ended = std::exchange(views_ended_, {});
  if (views_ended != nullptr) *views_ended = std::move(ended);
  return std::exchange(unpinned_, {});
}

bool LeaseTable::Grant(uint64_t id, std::vector<BmapExtent> extents, bool holds_view,
                       bool holds_writer) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(leases_.begin(), leases_.end(), [&](const auto& l) { return l->id == id; });
  if (it == leases_.end()) return false;
  if ((*it)->cancelled) {
    std::unique_ptr<Lease> gone = std::move(*it);
    leases_.erase(it);
    ForgetLocked(*gone);
    RetireLocked(std::move(gone));
    return false;
  }
  (*it)->extents = std::move(extents);
  (*it)->granted = true;
  (*it)->holds_view = holds_view;
  (*it)->holds_writer = holds_writer;
  return true;
}

bool LeaseTable::Remove(uint64_t id, pid_t pid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(leases_.begin(), leases_.end(),
                         [&](const auto& l) { return l->id == id && l->pid == pid; });
  if (it == leases_.end()) return false;
  std::unique_ptr<Lease> gone = std::move(*it);
  leases_.erase(it);
  ForgetLocked(*gone);
  RetireLocked(std::move(gone));
  return true;
}

std::vector<std::pair<uint64_t, int>> LeaseTable::Sockets() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<uint64_t, int>> out;
  for (const auto& l : leases_) {
    if (l->granted) out.emplace_back(l->id, l->sock.get());
  }
  return out;
}

size_t LeaseTable::ReapHungUp(const std::vector<uint64_t>& ids) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t reaped = 0;
  for (auto it = leases_.begin(); it != leases_.end();) {
    const Lease& l = **it;
    pollfd p{l.sock.get(), 0, 0};
    if (!l.granted || std::find(ids.begin(), ids.end(), l.id) == ids.end() ||
        poll(&p, 1, 0) != 1 || !(p.revents & (POLLHUP | POLLERR))) {
      ++it;
      continue;
    }
    std::unique_ptr<Lease> gone = std::move(*it);
    it = leases_.erase(it);
    ForgetLocked(*gone);
    RetireLocked(std::move(gone));
    ++reaped;
  }
  return reaped;
}

size_t LeaseTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return leases_.size();
}

size_t LeaseTable::CountFor(uid_t uid) const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& l : leases_) n += l->uid == uid;
  return n;
}

namespace {
thread_local uint64_t preparing_here = 0;  // PreparingOnThisThread (0: none)
}  // namespace

LeaseTable::PreparingOnThisThread::PreparingOnThisThread(uint64_t id) : saved_(preparing_here) {
  preparing_here = id;
}
LeaseTable::PreparingOnThisThread::~PreparingOnThisThread() { preparing_here = saved_; }

LeaseTable::RevokeResult LeaseTable::Revoke(uint64_t ino, uint64_t from, uint64_t to,
                                            bool views_only) {
  std::vector<std::unique_ptr<Lease>> taken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (!Overlaps(**it, ino, from, to) || (views_only && !(*it)->view)) {
        ++it;
      } else if (!(*it)->granted) {
        // The client never saw its extents: nothing to wait for.
        if ((*it)->id != preparing_here) (*it)->cancelled = true;
        ++it;
      } else {
        taken.push_back(std::move(*it));
        it = leases_.erase(it);
      }
    }
  }
  RevokeResult result;
  if (taken.empty()) return result;
  // All revokes first, then one wait for all of them: clients answer in parallel, and a
  // slow one costs the deadline once, not once per lease. Read views are not waited for:
  // their generation word moved before this call (fs/core/view_page.h), so a copy from
  // one is discarded whether or not its holder has heard; the message only lets it unmap.
  // Writable views are: their stores must have stopped.
  std::vector<std::unique_ptr<Lease>> waiting;
  for (auto& l : taken) {
    SendJson(l->sock.get(), {{"revoke", l->id}});
    if (l->view && !l->writable) {
      result.holders.push_back({l->pid, l->comm, "revoked (read view)", false});
      Retire(std::move(l));
    } else {
      waiting.push_back(std::move(l));
    }
  }
  const auto ack_end = Clock::now() + ack_deadline_;
  while (!waiting.empty()) {
    std::vector<pollfd> fds;
    for (const auto& l : waiting) fds.push_back({l->sock.get(), POLLIN, 0});
    const int n = poll(fds.data(), fds.size(), MsLeft(ack_end));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::vector<std::unique_ptr<Lease>> still;
    for (size_t i = 0; i < waiting.size(); ++i) {
      if (fds[i].revents != 0 && GaveBack(*waiting[i])) {
        result.holders.push_back({waiting[i]->pid, waiting[i]->comm, "revoked", false});
        Retire(std::move(waiting[i]));
      } else {
        still.push_back(std::move(waiting[i]));
      }
    }
    waiting = std::move(still);
  }
  // Whoever did not answer is killed, and waited for, before the blocks may be reused.
  for (auto& l : waiting) Kill(*l);
  std::vector<std::unique_ptr<Lease>> exited = WaitForExit(&waiting, Clock::now() + kExitDeadline);
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& l : exited) {
    result.holders.push_back({l->pid, l->comm, "killed: no acknowledgement in time", true});
    ForgetLocked(*l);
    RetireLocked(std::move(l));
  }
  for (auto& l : waiting) {
    result.holders.push_back({l->pid, l->comm, "killed, but still alive: its blocks stay", true});
    result.status = Status::Error(EBUSY, "pid " + std::to_string(l->pid) + " (" + l->comm +
                                             ") kept a direct map and outlived its SIGKILL");
    leases_.push_back(std::move(l));  // still counted against its uid: it still maps
  }
  return result;
}

std::vector<LeaseTable::MceResult> LeaseTable::MediaError(uint64_t ino, uint64_t off,
                                                          uint64_t len,
                                                          const std::string& policy) {
  std::vector<MceResult> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& l : leases_) {
    if (!l->granted || !Overlaps(*l, ino, off, off + len)) continue;
    MceResult r{l->pid, l->comm, "", false};
    if (l->view) {
      // Not the application's memory: its reads of the range fail, as through FUSE.
      const bool sent = SendJson(l->sock.get(), {{"bad", {{"lease", l->id}, {"offset", off}, {"length", len}}}});
      r.action = !sent         ? "not told (view not reading)"
                 : l->writable ? "told (write view: its reads of the range fail with EIO, its writes go through FUSE)"
                               : "told (read view: its reads of the range fail with EIO)";
    } else if (policy == "kill") {
      r.killed = Kill(*l);
      r.action = r.killed ? "killed (direct map)" : std::string("kill failed: ") + strerror(errno);
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
    if (!l->granted) continue;
    nlohmann::json extents = nlohmann::json::array();
    for (const BmapExtent& x : l->extents) {
      extents.push_back({{"file_offset", x.file_offset}, {"phys", x.phys_offset}, {"length", x.length}});
    }
    out.push_back({{"lease", l->id},
                   {"pid", l->pid},
                   {"uid", l->uid},
                   {"comm", l->comm},
                   {"ino", l->ino},
                   {"offset", l->offset},
                   {"length", l->length},
                   {"prot", l->writable ? "rw" : "r"},
                   {"kind", l->view ? "view" : "map"},
                   {"extents", std::move(extents)}});
  }
  return out;
}

}  // namespace udax
