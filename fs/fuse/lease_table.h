// lease_table.h -- the direct maps clients hold, and taking them back (issues 7 and 19).
//
// A lease is one client mapping of file bytes [offset, offset+length) of an inode,
// granted over the control socket: the client got a fresh descriptor of the region and
// the extents and mapped them itself. Each lease has its own socketpair: the daemon's end
// stays here, the client's listener thread polls the other.
//
// A lease is like an open file: it pins its inode (Filesystem::Open) from the map request
// until it ends, so an unlinked file with a live lease stays an orphan and no inode is
// ever freed under a client's map. Pins of ended leases are handed back through
// TakeUnpinned (the control server's thread releases them: Revoke may run where the
// filesystem's locks are held, so it never calls into the filesystem).
//
// Revoke writes {"revoke": ID} to every overlapping lease and waits, with ONE deadline
// for all of them (the ack deadline, default 100 ms), for {"ack": ID} or a hang-up. Every
// client that did not answer is SIGKILLed through the pidfd taken when it connected, and
// waited for (its mappings die with its address space), again with one deadline for all
// (kExitDeadline). Only then may the caller reuse the blocks. A holder still alive after
// that stays in the table and Revoke fails with EBUSY: the caller must not free the
// blocks (nothing has changed yet: every caller revokes before it changes the maps).
// A lease still being prepared (extents not yet sent) is cancelled without a wait; its
// map request then fails with EAGAIN.
//
// Limits (issue 19: one user must not exhaust the daemon's descriptors): a non-root uid
// holds at most LeaseLimits::per_user leases and all non-root users together
// LeaseLimits::total;
// root is not limited, so an administrator can always map. Leases whose client end hung
// up (the process died, or dropped the lease without an unmap) are reaped by
// ReapHungUp, which the control server calls when poll reports the hang-up.
//
// Memory errors go to lease holders as {"mce": {...}} (notify) or SIGKILL (kill).
//
// Thread-safety: every method may be called from any thread. Revoke blocks for at most
// ack deadline + kExitDeadline; it never calls into the filesystem.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/base/unique_fd.h"
#include "fs/base/stop_signal.h"

namespace udax {

struct Lease {
  uint64_t id = 0;
  pid_t pid = 0;
  uid_t uid = 0;
  std::string comm;
  uint64_t ino = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool writable = false;
  // A read view (the preload shim's read(2) path): the whole file, read-only, holes and
  // size included, so it is revoked by allocations and size changes too (views_only
  // revokes). Its revoke is sent and not waited for (never a kill): the file's view page
  // (fs/core/view_page.h) already voids the holder's copies. Bad media under it is sent
  // as {"bad": ...} whatever the mce_policy: the shim's reads of that range then fail
  // with EIO, as FUSE reads do. A writable view (`writable` too: the shim stores
  // overwrites through it) is revoked as a map is, waiting for its acknowledgement.
  bool view = false;
  bool holds_view = false;  // a granted view: its end is Filesystem::EndReadView's too
  bool holds_writer = false;  // a granted writable map: its end is EndMapWriter's too
  std::vector<BmapExtent> extents;
  bool granted = false;    // the extents went to the client
  bool cancelled = false;  // revoked before it was granted: the map request fails
  Inode* pin = nullptr;    // the open file this lease holds (released by the table's owner)
  UniqueFd sock;           // the daemon's end of the lease socketpair
  std::shared_ptr<const UniqueFd> pidfd;  // the holder, for a kill that cannot hit a reused pid
};

struct LeaseLimits {
  size_t per_user = 256;  // leases one non-root uid may hold
  size_t total = 4096;    // leases all non-root uids together may hold
};

class LeaseTable {
 public:
  using Limits = LeaseLimits;
  // How long killed holders get to exit, all together.
  static constexpr std::chrono::milliseconds kExitDeadline{1000};

  // The signal behind unpinned_fd() cannot fail to be created but for descriptor
  // exhaustion at start-up; then pins are only handed back when asked (TakeUnpinned).
  explicit LeaseTable(std::chrono::milliseconds ack_deadline = std::chrono::milliseconds(100),
                      Limits limits = Limits());

  // Records a lease; returns its id (`lease.id` is assigned here). EMFILE when its uid
  // holds its share already, ENFILE when the non-root users hold the total; the lease
  // (and its pin) are then handed back unchanged through *refused.
  Result<uint64_t> Add(std::unique_ptr<Lease> lease, std::unique_ptr<Lease>* refused);
  // The extents went out to the client: records them (for listings). False when a revoke
  // cancelled the lease first; it is dropped then (its pin handed back).
  // `holds_view`: the lease is a view the filesystem counted (PrepareReadView); its end
  // is then also handed back through TakeUnpinned's `views_ended`.
  // `holds_writer`: a writable map the filesystem counted (StartMapWriter), handed back
  // the same way.
  bool Grant(uint64_t id, std::vector<BmapExtent> extents, bool holds_view = false,
             bool holds_writer = false);
  // While one lives, revokes made by this thread do not cancel lease `id`, which it is
  // preparing: a writable view's reservation (Filesystem::ReserveForViews) revokes the
  // file's views under the file's lock, before this lease's extents are read under that
  // same hold, so the lease already shows the change. Revokes from other threads (after
  // the lock is let go) still cancel it.
  class PreparingOnThisThread {
   public:
    explicit PreparingOnThisThread(uint64_t id);
    ~PreparingOnThisThread();
    PreparingOnThisThread(const PreparingOnThisThread&) = delete;
    PreparingOnThisThread& operator=(const PreparingOnThisThread&) = delete;

   private:
    uint64_t saved_;
  };
  // The client dropped it (udax_unmap), or its map request failed. False if `pid` does
  // not hold lease `id`.
  bool Remove(uint64_t id, pid_t pid);
  // The daemon's ends of the granted leases, to poll for hang-ups (events 0: POLLHUP).
  std::vector<std::pair<uint64_t, int>> Sockets() const;
  // Drops those of `ids` whose client end has hung up (checked again here, under the
  // table's lock: a descriptor number from Sockets may have been reused since).
  size_t ReapHungUp(const std::vector<uint64_t>& ids);

  // What was done to one lease holder (event logs, syslog).
  struct HolderAction {
    pid_t pid = 0;
    std::string comm;
    std::string action;  // "revoked", "notified", "killed", ...
    bool killed = false;
  };
  struct RevokeResult {
    std::vector<HolderAction> holders;
    Status status;  // EBUSY: a holder outlived its SIGKILL; the blocks must stay
  };
  // Takes back every lease overlapping file bytes [from, to) of `ino` (ino 0: all); with
  // `views_only`, only the read views of `ino` (they cover the whole file).
  RevokeResult Revoke(uint64_t ino, uint64_t from, uint64_t to, bool views_only = false);
  using MceResult = HolderAction;
  // A memory error in file bytes [off, off+len) of `ino`: per policy ("notify", "kill",
  // "ignore") tell or kill every holder whose lease covers it; read views are told the
  // bad range whatever the policy.
  std::vector<MceResult> MediaError(uint64_t ino, uint64_t off, uint64_t len,
                                    const std::string& policy);

  // The pins of leases that ended since the last call; the caller releases them
  // (Filesystem::Release). unpinned_fd() is readable while there are some.
  // `views_ended` (if given) receives the pins of granted views among them, each to be
  // ended (Filesystem::EndReadView, writable or not) before the pin is released.
  struct EndedView {
    Inode* pin = nullptr;
    bool writable = false;
    bool map = false;  // a writable map (Filesystem::EndMapWriter), not a view
  };
  std::vector<Inode*> TakeUnpinned(std::vector<EndedView>* views_ended = nullptr);
  int unpinned_fd() const { return unpinned_signal_ ? unpinned_signal_->fd() : -1; }

  nlohmann::json List() const;
  size_t size() const;
  size_t CountFor(uid_t uid) const;

 private:
  // Ends a lease that is out of the table: its uid's count drops, its pin goes to the
  // unpinned list. RetireLocked leaves the count to the caller (ForgetLocked).
  void Retire(std::unique_ptr<Lease> lease);  // takes mu_
  void RetireLocked(std::unique_ptr<Lease> lease);  // REQUIRES mu_
  void ForgetLocked(const Lease& lease);             // REQUIRES mu_: the per-uid counts

  const std::chrono::milliseconds ack_deadline_;
  const Limits limits_;
  std::unique_ptr<StopSignal> unpinned_signal_;
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;                         // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<Lease>> leases_;   // GUARDED_BY(mu_)
  std::map<uid_t, size_t> per_uid_;              // GUARDED_BY(mu_): non-root only
  size_t nonroot_ = 0;                           // GUARDED_BY(mu_)
  std::vector<Inode*> unpinned_;                 // GUARDED_BY(mu_)
  std::vector<EndedView> views_ended_;           // GUARDED_BY(mu_)
};

}  // namespace udax
