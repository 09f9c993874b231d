// lease_table.h -- the direct maps clients hold, and taking them back (issue 7).
//
// A lease is one client mapping of file bytes [offset, offset+length) of an inode,
// granted over the control socket: the client got the region's descriptor and the
// extents and mapped them itself. Each lease has its own socketpair: the daemon's end
// stays here, the client's listener thread polls the other. Revoke writes {"revoke": ID}
// to every overlapping lease and waits, on that socket, for {"ack": ID}; a client that
// does not answer within the deadline (default 100 ms) is SIGKILLed through a pidfd and
// waited for (its mappings die with it), so the blocks are never reused while mapped.
// A hung-up lease socket means the client is gone (or dropped the lease): done.
// Memory errors go to lease holders as {"mce": {...}} (notify) or SIGKILL (kill).
//
// Thread-safety: every method may be called from any thread. Revoke blocks up to the
// deadline per unresponsive client; it never calls into the filesystem.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/region/unique_fd.h"

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
  std::vector<BmapExtent> extents;
  UniqueFd sock;   // the daemon's end of the lease socketpair
  UniqueFd pidfd;  // the holder, for a kill that cannot hit a reused pid
};

class LeaseTable {
 public:
  explicit LeaseTable(std::chrono::milliseconds deadline = std::chrono::milliseconds(100))
      : deadline_(deadline) {}

  // Records a lease; returns its id. `lease.id` is assigned here.
  uint64_t Add(std::unique_ptr<Lease> lease);
  // Records the physical extents a lease was granted (for listings).
  void SetExtents(uint64_t id, std::vector<BmapExtent> extents);
  // The client dropped it (udax_unmap). False if `pid` does not hold lease `id`.
  bool Remove(uint64_t id, pid_t pid);
  // What was done to one lease holder (event logs, syslog).
  struct HolderAction {
    pid_t pid = 0;
    std::string comm;
    std::string action;  // "revoked", "notified", "killed", ...
    bool killed = false;
  };
  // Takes back every lease overlapping file bytes [from, to) of `ino` (ino 0: all):
  // "revoked" for each holder that gave its map back, "killed" for one that did not in time.
  std::vector<HolderAction> Revoke(uint64_t ino, uint64_t from, uint64_t to);
  using MceResult = HolderAction;
  // A memory error in file bytes [off, off+len) of `ino`: per policy ("notify", "kill",
  // "ignore") tell or kill every holder whose lease covers it.
  std::vector<MceResult> MediaError(uint64_t ino, uint64_t off, uint64_t len,
                                    const std::string& policy);

  nlohmann::json List() const;
  size_t size() const;

 private:
  // Sends the revoke and waits for the ack; kills on timeout. REQUIRES the lease is out
  // of the table (only this thread holds it).
  bool RevokeOne(Lease* lease);
  static void KillAndWait(Lease* lease);

  const std::chrono::milliseconds deadline_;
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;                         // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<Lease>> leases_;   // GUARDED_BY(mu_)
};

}  // namespace udax
