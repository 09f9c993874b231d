// control_server.h -- the daemon's end of the control socket (include/udaxfs/control.h).
//
// One thread polls the listening socket, every client, the daemon's ends of the lease
// sockets (for hang-ups) and the lease table's unpinned signal. Each request is one
// packet and gets one reply. Subscribers get every published event; a subscriber that
// does not read (its socket buffer is full) loses events rather than stalling the
// daemon, and the next event it gets says how many it missed ("lost").
//
// Who may do what (README "Security model"; issue 19):
//   * Peers are known by what the kernel says of the connection at connect time:
//     SO_PEERCRED (uid, gid), SO_PEERGROUPS (supplementary groups) and SO_PEERPIDFD (the
//     process itself, so a kill can never hit a reused pid; pidfd_open of the pid, checked
//     against SO_PEERCRED again, on kernels before 6.5).
//   * A direct map needs a descriptor of the file opened for reading (O_PATH does not
//     count), O_RDWR for a writable map, and read (or write) permission on the region as
//     fstat(2) of the daemon's own descriptor of it says: the region was opened once, at
//     mount, and no path is looked up again. The client gets a fresh open of that
//     descriptor (/proc/self/fd), never the daemon's own open file description.
//   * A read-only map changes nothing (no holes filled).
//   * subscribe (events name paths) needs read permission on the region; the hello names
//     the target only to those; leases, verify (start a media patrol pass) and status
//     (the patrol's progress and last pass, the journal's counters) need root.
//   * Limits: a non-root uid keeps at most Limits::conns_per_user connections and all
//     non-root users together Limits::conns_total; root always finds a slot (up to
//     Limits::conns_root more), so a flood cannot lock the administrator out. A
//     connection that sends nothing for Limits::idle (and has not subscribed) is closed;
//     libudax reconnects. Leases have their own per-user limits (lease_table.h).
//
// Thread-safety: Publish from any thread; Start/Stop from the owner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/base/status.h"
#include "fs/fuse/control_request.h"
#include "fs/fuse/lease_table.h"
#include "notify/media_patrol.h"
#include "fs/base/unique_fd.h"
#include "fs/base/stop_signal.h"

namespace udax {

class ControlServer {
 public:
  struct Limits {
    size_t conns_per_user = 32;
    size_t conns_total = 224;  // all non-root connections
    size_t conns_root = 32;    // on top, for root alone
    std::chrono::milliseconds idle{std::chrono::seconds(60)};
  };
  struct Info {
    std::string target;  // the image or device, as mounted (told only to who may read it)
    int region_fd = -1;  // the daemon's descriptor of it: authorization and client opens
    // A multi-device filesystem (region_fd -1): each device's descriptor and where it
    // starts in the region. A direct map or view is of one device: its file's extents
    // must all lie there, and the client gets that device and offsets on it.
    struct Device {
      int fd = -1;  // at mount: DeviceNow has the one mapped now
      uint64_t start = 0;
      uint64_t length = 0;
      std::string kind;        // as region_kind, for this device
      uint64_t map_align = 4096;
    };
    std::vector<Device> devices;
    // `udaxctl remove-device`: hands the loss of one device to the media machinery (as a
    // device-removed event for its whole range). Null: refused.
    std::function<Status(uint32_t device)> remove_device;
    // Whether a remove_device of `device` is still being acted on (status: "removing").
    std::function<bool(uint32_t device)> removing_device;
    // `udaxctl add-device`: device `device`, lost, is back (mapped afresh from `path`
    // unless it is empty); resynchronised before the reply (Filesystem::RestoreDevice),
    // its media sources started, the event logged.
    std::function<Result<DeviceResync>(uint32_t device, const std::string& path)> add_device;
    // `udaxctl replace-device`: device `device`, lost, gives its place to the blank one at
    // `path` (Filesystem::ReplaceDevice), its media sources moved over.
    std::function<Result<DeviceReplacement>(uint32_t device, const std::string& path)>
        replace_device;
    uint64_t au_size = 0;
    uint64_t region_size = 0;
    std::string mce_policy;
    std::string region_kind;  // "emulated", "fsdax", "devdax": how clients persist
    uint64_t map_align = 4096;  // alignment a client's mapping must have (devdax: 2 MiB)
    dev_t mount_dev = 0;        // a map request's file must be on this mount
    Filesystem* fs = nullptr;   // for map requests (null: maps refused)
    LeaseTable* leases = nullptr;
    MediaPatrol* patrol = nullptr;  // verify and patrol requests (null: refused)
    bool direct_access = true;  // false: maps and views refused (-o writeback_cache)
    // Drops the kernel's cached attributes of an inode (a writable view was granted).
    std::function<void(uint64_t ino)> invalidate_attributes;
    Limits limits;
  };
  // The socket path for a mount whose device number is `dev`.
  static std::string SocketPath(dev_t dev);
  // Binds `path` (replacing a stale socket; creating its directory) and starts the thread.
  static Result<std::unique_ptr<ControlServer>> Start(const std::string& path, Info info);
  ~ControlServer() { Stop(); }
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Sends {"event": event} to every subscriber.
  void Publish(const nlohmann::json& event);
  // Stops the thread, closes every client, releases the pins of ended leases, removes
  // the socket file. Idempotent.
  void Stop();
  const std::string& path() const { return path_; }

  // Who is asking, as the kernel told us at connect time.
  struct Peer {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // supplementary
  };
  // Whether `peer` may read (write) a file whose fstat(2) is `st`: root always, else the
  // mode bits of the owner, group (primary or supplementary) or others class.
  static bool MayAccess(const struct stat& st, const Peer& peer, bool write);

 private:
  struct Client {
    UniqueFd fd;
    Peer peer;
    std::shared_ptr<const UniqueFd> pidfd;
    bool subscribed = false;
    uint64_t lost = 0;
    std::chrono::steady_clock::time_point last_active;
  };
  ControlServer(std::string path, Info info, UniqueFd listener, StopSignal stop)
      : path_(std::move(path)), info_(std::move(info)), listener_(std::move(listener)),
        stop_(std::move(stop)) {}
  void Run();
  void Accept();
  // Whether a connection from `uid` fits the limits (REQUIRES mu_).
  bool HasRoomLocked(uid_t uid) const;
  // Closes connections idle past the limit; returns the poll timeout until the next one
  // may expire (ms, -1 for none). REQUIRES mu_
  int ExpireIdleLocked();
  // Handles one packet from `c`; false when the client is gone.
  bool Serve(Client* c);
  // The reply to one request; `fds` are the descriptors that came with it (owned here),
  // `out_fds` those to send with the reply.
  nlohmann::json Reply(Client* c, const std::string& packet, std::vector<UniqueFd>* fds,
                       std::vector<UniqueFd>* out_fds);
  // The checks and set-up a map and a read view share: the descriptor, the caller's
  // rights, a fresh region descriptor, the lease socket, the pin, the table entry.
  struct NewLease;
  NewLease StartLease(Client* c, std::vector<UniqueFd>* fds, uint64_t offset, uint64_t length,
                      bool writable, bool view);
  nlohmann::json View(Client* c, const ControlRequest& req, std::vector<UniqueFd>* fds,
                      std::vector<UniqueFd>* out_fds);
  nlohmann::json Map(Client* c, const ControlRequest& req, std::vector<UniqueFd>* fds,
                     std::vector<UniqueFd>* out_fds);
  // Whether `peer` may read (write) the region, by fstat of our descriptor of it (of
  // every device's in service, on several).
  bool MayUseRegion(const Peer& peer, bool write) const;
  // Device i of several as it is now: its place from the mount, its descriptor, kind and
  // alignment from whatever is mapped there (replaced or mapped afresh since, maybe).
  Info::Device DeviceNow(size_t i) const;
  // What clients map `extents` through: the region, or on several devices the devices
  // they lie on, in the order the extents first name them, each extent's phys_offset made
  // relative to its device and its place in that list put in (*device_of)[i]. EXDEV when
  // they lie on more than one and `many` is false (a client that maps one descriptor
  // only), or on devices of different kinds or alignments; EIO on a lost device.
  struct MapTarget {
    int fd = -1;
    std::string kind;
    uint64_t map_align = 4096;
  };
  Result<std::vector<MapTarget>> DevicesOf(std::vector<BmapExtent>* extents, bool many,
                                           std::vector<size_t>* device_of) const;
  // Releases the pins of leases that ended (Filesystem::Release).
  void ReleaseUnpinned();

  const std::string path_;
  const Info info_;
  UniqueFd listener_;
  StopSignal stop_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Client>> clients_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace udax
