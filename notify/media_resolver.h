// media_resolver.h -- the consumer of the event queue: narrows each event to its owners
// through the reverse map and acts on them (G3-G7).
//
// One thread drains the EventQueue. For a bad range it asks the filesystem to act on the
// owners (Media::HandleError, fs/core/media.h: EIO, quarantine, metadata repair or shutdown),
// then does what only the daemon can: drops the kernel's page cache for every bad file
// range (so FUSE mmap users fault again and get SIGBUS from the EIO, instead of reading
// stale pages), and applies the mce_policy to the processes that have the range mapped:
//   kill    SIGKILL, as the kernel's memory-failure kills the users of a poisoned page;
//   notify  (default) nothing more than the invalidation: the next touch faults and the
//           read's EIO becomes a SIGBUS in that process (the kernel's late kill). The
//           daemon cannot queue a BUS_MCEERR_AO for another process (rt_sigqueueinfo
//           refuses si_code >= 0 across processes); libudax clients raise it themselves;
//   ignore  no process is acted on (the log still names them).
// A device-removed event shuts the filesystem down (nothing is written after it) and calls
// the device_removed hook first (lease revocation). Relocations reported by the write
// path are logged from this thread too. Every event ends as one EventLog line.
//
// Thread-safety: Start/Stop from the owner; Handle from the resolver thread or tests.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fs/core/filesystem.h"
#include "notify/event_log.h"
#include "notify/event_queue.h"

namespace udax {


enum class McePolicy { kNotify, kKill, kIgnore };
const char* McePolicyName(McePolicy policy);
std::optional<McePolicy> McePolicyFromName(const std::string& name);

class MediaResolver {
 public:
  struct Hooks {
    // Drop the kernel's cached pages of file bytes [off, off+len) of `ino`.
    std::function<void(uint64_t ino, uint64_t off, uint64_t len)> invalidate;
    // The device is going away: revoke what clients hold before the shutdown; returns
    // what was done to whom.
    std::function<std::vector<ProcessAction>(const MediaEvent&)> device_removed;
    // Direct maps (client leases) of file bytes [off, off+len) of `ino` hit by a memory
    // error: tell or kill their holders per `policy`; returns what was done to whom.
    std::function<std::vector<ProcessAction>(uint64_t ino, uint64_t off, uint64_t len,
                                             McePolicy policy)>
        lease_media_error;
    // One device of several is gone: take back the direct maps of file bytes
    // [off, off+len) of `ino` (they map the device); returns what was done to whom.
    std::function<std::vector<ProcessAction>(uint64_t ino, uint64_t off, uint64_t len)> revoke;
    // Called after each event is logged (tests, benchmarks).
    std::function<void(const EventRecord&)> logged;
  };
  struct Options {
    McePolicy policy = McePolicy::kNotify;
    // The mount's device, to find FUSE mmap users in /proc/PID/maps; nullopt: no search.
    std::optional<dev_t> mount_dev;
    std::string proc_root = "/proc";
  };

  // Starts the thread. fs, queue and log (log may be null) must outlive the resolver.
  static std::unique_ptr<MediaResolver> Start(Filesystem* fs, EventQueue* queue, EventLog* log,
                                              Hooks hooks, Options options);
  ~MediaResolver() { Stop(); }
  MediaResolver(const MediaResolver&) = delete;
  MediaResolver& operator=(const MediaResolver&) = delete;

  // Lets the thread finish what is queued once the queue is closed, and joins it; a
  // queue left open is drained no further. Idempotent.
  void Stop();
  // Handles one event now, on the calling thread (the thread does the same).
  EventRecord Handle(const MediaEvent& event);
  // Events handled (logged) so far.
  uint64_t handled() const { return handled_.load(); }
  // Faults on ranges already handled, absorbed without a log line.
  uint64_t repeats();

 private:
  MediaResolver(Filesystem* fs, EventQueue* queue, EventLog* log, Hooks hooks, Options options)
      : fs_(fs), queue_(queue), log_(log), hooks_(std::move(hooks)), options_(std::move(options)) {}
  void Run();
  void LogRelocations();
  void Finish(EventRecord* record);
  // True (counting it) when the event is a fault inside a range already acted on.
  bool IsRepeat(const MediaEvent& event);
  void RememberHandled(uint64_t offset, uint64_t length);
  // A device-removed event naming one whole device of several (not device 0): the
  // filesystem loses that device and goes on (Filesystem::LoseDevice); its file data's
  // maps are revoked and cached pages dropped. False when the event is not that (or
  // the loss was refused): the caller shuts down, as on one device.
  bool LoseOneDevice(const MediaEvent& event, EventRecord* record);
  void ActOnMappers(const MediaOwner& owner, EventRecord* record);

  Filesystem* const fs_;
  EventQueue* const queue_;
  EventLog* const log_;
  const Hooks hooks_;
  const Options options_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> handled_{0};
  std::mutex relocations_mu_;
  std::vector<MediaRelocation> relocations_;  // GUARDED_BY(relocations_mu_)
  std::thread thread_;
  // Ranges already acted on. A fault the daemon's own read takes on one of them (every
  // read of a bad block reports one) changes nothing and is not logged again.
  std::mutex handled_mu_;
  std::vector<std::pair<uint64_t, uint64_t>> handled_ranges_;  // GUARDED_BY(handled_mu_)
  uint64_t repeats_ = 0;                                        // GUARDED_BY(handled_mu_)
};

}  // namespace udax
