// media_watch.h -- the daemon's memory-error machinery, started and stopped as one.
//
// Wires notify/ into a mounted daemon: the event sources of the Region (fault listener,
// the image's badblocks list watcher, kernel badblocks poller, uevents, early-kill AO
// receiver), the queue they feed, the event log beside the target, and the resolver
// that narrows each event to its owners and acts (page-cache invalidation through this
// FUSE session, mce_policy on processes that map the range), and the control socket
// through which subscribers get every event (include/udaxfs/control.h). A source that cannot start
// is logged and left out: the filesystem still serves, reads of bad media still fail.
//
// Thread-safety: Start and Stop from the daemon's main thread, after daemonizing.
#pragma once

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <fuse_lowlevel.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "fs/core/filesystem.h"
#include "fs/fuse/control_server.h"
#include "fs/fuse/lease_table.h"
#include "notify/event_log.h"
#include "notify/event_queue.h"
#include "notify/media_patrol.h"
#include "notify/media_resolver.h"
#include "notify/media_sources.h"

namespace udax {

class MediaWatch {
 public:
  explicit MediaWatch(std::chrono::milliseconds lease_timeout = std::chrono::milliseconds(100))
      : leases_(lease_timeout) {}
  ~MediaWatch() { Stop(); }
  MediaWatch(const MediaWatch&) = delete;
  MediaWatch& operator=(const MediaWatch&) = delete;

  // `patrol`: the media patrol's schedule and rate (media_patrol.h); it always answers
  // root's requests (udaxctl verify-media). `direct_access`: whether the control socket
  // grants direct maps and views (not under a write-back cache).
  void Start(Filesystem* fs, fuse_session* se, const std::string& target,
             const std::string& mountpoint, McePolicy policy,
             const MediaPatrol::Options& patrol = {}, bool direct_access = true);
  // Stops the sources, drains what they queued, stops the resolver. Idempotent.
  void Stop();

 private:
  // Starts device d's media sources (after add-device or replace-device); "" or, when
  // they do not start, a clause saying so for the event's detail.
  std::string WatchDevice(uint32_t d, const MediaSources::Options& options);

  Filesystem* fs_ = nullptr;
  LeaseTable leases_;  // the daemon's direct maps; outlives the server and resolver
  EventQueue queue_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<MediaSources> sources_;
  std::unique_ptr<MediaResolver> resolver_;
  std::unique_ptr<MediaPatrol> patrol_;     // stopped first: its faults feed the queue
  std::unique_ptr<ControlServer> control_;  // outlives the resolver, which publishes to it
  // Devices whose `udaxctl remove-device` is queued or being acted on (one bit each):
  // the status reply says so until the resolver has logged it, so the command returns
  // only once the revokes and invalidations are done.
  std::atomic<uint32_t> removing_{0};
};

}  // namespace udax
