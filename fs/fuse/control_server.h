// control_server.h -- the daemon's end of the control socket (include/udaxfs/control.h).
//
// One thread polls the listening socket and every client. Clients are authenticated by
// SO_PEERCRED at accept; each request is one packet and gets one reply. Subscribers get
// every published event; a subscriber that does not read (its socket buffer is full)
// loses events rather than stalling the daemon, and the next event it gets says how many
// it missed ("lost").
//
// Thread-safety: Publish from any thread; Start/Stop from the owner.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/status.h"
#include "fs/fuse/lease_table.h"
#include "fs/region/unique_fd.h"
#include "notify/stop_signal.h"

namespace udax {

class ControlServer {
 public:
  struct Info {
    std::string target;  // the image or device (authorization: read permission on it)
    uint64_t au_size = 0;
    uint64_t region_size = 0;
    std::string mce_policy;
    std::string region_kind;  // "emulated", "fsdax", "devdax": how clients persist
    uint64_t map_align = 4096;  // alignment a client's mapping must have (devdax: 2 MiB)
    dev_t mount_dev = 0;        // a map request's file must be on this mount
    Filesystem* fs = nullptr;   // for map requests (null: maps refused)
    LeaseTable* leases = nullptr;
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
  // Stops the thread, closes every client, removes the socket file. Idempotent.
  void Stop();
  const std::string& path() const { return path_; }

  // Whether a peer with these credentials may read `target` (root, or the mode bits).
  static bool MayRead(const std::string& target, uid_t uid, gid_t gid);
  static bool MayWrite(const std::string& target, uid_t uid, gid_t gid);

 private:
  struct Client {
    UniqueFd fd;
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    bool subscribed = false;
    uint64_t lost = 0;
  };
  ControlServer(std::string path, Info info, UniqueFd listener, StopSignal stop)
      : path_(std::move(path)), info_(std::move(info)), listener_(std::move(listener)),
        stop_(std::move(stop)) {}
  void Run();
  void Accept();
  // Handles one packet from `c`; false when the client is gone.
  bool Serve(Client* c);
  // The reply to one request; `fds` are the descriptors that came with it (owned here),
  // `out_fds` those to send with the reply.
  nlohmann::json Reply(Client* c, const std::string& packet, std::vector<UniqueFd>* fds,
                       std::vector<UniqueFd>* out_fds);
  nlohmann::json Map(Client* c, const nlohmann::json& req, std::vector<UniqueFd>* fds,
                     std::vector<UniqueFd>* out_fds);

  const std::string path_;
  const Info info_;
  UniqueFd listener_;
  StopSignal stop_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Client>> clients_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace udax
