// media_watch.cc -- starting the memory-error machinery of a daemon (see media_watch.h).
#include "fs/fuse/media_watch.h"

#include <syslog.h>

#include <algorithm>

#include "notify/mapped_procs.h"
#include "fs/format/state_dir.h"

namespace udax {
namespace {

// An event about the whole of device d (removed, added back, replaced).
MediaEvent WholeDeviceEvent(const DiskSuperblock& sb, uint32_t d, MediaEventSource source,
                            std::string detail) {
  MediaEvent e;
  e.source = source;
  e.offset = sb.devices[d].start;
  e.length = sb.devices[d].length;
  e.time = std::chrono::system_clock::now();
  e.detail = std::move(detail);
  return e;
}

}  // namespace

std::string MediaWatch::WatchDevice(uint32_t d, const MediaSources::Options& options) {
  // The filesystem serves the device already: a failure here is said, not undone.
  if (sources_ == nullptr) return "";
  Status st = sources_->AddDevice(d, &queue_, options);
  if (st.ok()) return "";
  syslog(LOG_WARNING, "device %u: its media events are not watched: %s", d, st.message().c_str());
  return "; its media events are not watched: " + st.message();
}

void MediaWatch::Start(Filesystem* fs, fuse_session* se, const std::string& target,
                       const std::string& mountpoint, McePolicy policy,
                       const MediaPatrol::Options& patrol, bool direct_access) {
  fs_ = fs;
  // The state is found through the descriptor the region has open, never the path again
  // (the path may name another file by now).
  // A multi-device filesystem keeps its log with device 0's state.
  Region* first = fs->region()->device(0);
  auto state = LocateTargetState(first->fd(), first->path(), /*prepare=*/true);
  auto log = state.ok() ? EventLog::Open(state->events)
                        : Result<std::unique_ptr<EventLog>>(state.status());
  if (log.ok()) {
    log_ = std::move(log).value();
  } else {
    syslog(LOG_WARNING, "%s: no event log: %s", target.c_str(), log.status().ToString().c_str());
  }
  MediaSources::Options so;
  // Early kill turns poison the kernel finds in our mapping into BUS_MCEERR_AO for us,
  // instead of leaving it silently readable (lab/README.md).
  so.early_kill = policy != McePolicy::kIgnore;
  auto sources = MediaSources::Start(fs->region(), &queue_, so);
  if (sources.ok()) {
    sources_ = std::move(sources).value();
    for (const std::string& s : sources_->skipped()) {
      syslog(LOG_INFO, "%s: event source left out: %s", target.c_str(), s.c_str());
    }
  } else {
    syslog(LOG_ERR, "%s: media event sources: %s", target.c_str(),
           sources.status().ToString().c_str());
  }
  MediaResolver::Hooks hooks;
  hooks.invalidate = [se](uint64_t ino, uint64_t off, uint64_t len) {
    // ENOENT: the kernel holds no inode for it, so no pages either.
    fuse_lowlevel_notify_inval_inode(se, ino, static_cast<off_t>(off), static_cast<off_t>(len));
  };
  MediaResolver::Options ro;
  ro.policy = policy;
  ro.mount_dev = MountDevice("/proc/self/mountinfo", mountpoint);
  // Direct maps: the core asks for them back before it frees or moves their blocks.
  LeaseTable* leases = &leases_;
  fs->set_revoke_hook([leases](uint64_t ino, uint64_t from, uint64_t to, bool views_only) {
    LeaseTable::RevokeResult r = leases->Revoke(ino, from, to, views_only);
    for (const auto& h : r.holders) {
      if (h.killed) {
        syslog(LOG_WARNING, "pid %d (%s) did not give back a direct map in time: %s", h.pid,
               h.comm.c_str(), h.action.c_str());
      }
    }
    return r.status;
  });
  hooks.lease_media_error = [leases](uint64_t ino, uint64_t off, uint64_t len, McePolicy p) {
    std::vector<ProcessAction> out;
    for (const auto& r : leases->MediaError(ino, off, len, McePolicyName(p))) {
      out.push_back({r.pid, r.comm, r.action});
    }
    return out;
  };
  hooks.revoke = [leases](uint64_t ino, uint64_t off, uint64_t len) {
    std::vector<ProcessAction> out;
    for (const auto& r : leases->Revoke(ino, off, off + len).holders) out.push_back({r.pid, r.comm, r.action});
    return out;
  };
  hooks.device_removed = [leases](const MediaEvent&) {
    std::vector<ProcessAction> out;
    for (const auto& r : leases->Revoke(0, 0, UINT64_MAX).holders) out.push_back({r.pid, r.comm, r.action});
    return out;
  };
  MediaPatrol::Options patrol_options = patrol;
  MediaSources* sources_ptr = sources_.get();
  if (sources_ptr != nullptr && sources_ptr->kernel() != nullptr) {
    // Real pmem: each pass starts with an Address Range Scrub where the bus runs one, and
    // the poller (stopped after the patrol) hands what it adds to the resolver.
    const KernelBadblocks kernel = *sources_ptr->kernel();
    patrol_options.kernel_scrub = [kernel, sources_ptr](const std::atomic<bool>* stop) {
      KernelScrubReport r = ScrubAndReadKernelBadblocks(kernel, std::chrono::minutes(30), stop);
      sources_ptr->RescanKernelBadblocks();
      return r;
    };
  }
  patrol_ = std::make_unique<MediaPatrol>(fs, patrol_options);
  if (ro.mount_dev) {
    ControlServer::Info info;
    info.patrol = patrol_.get();
    info.region_kind = RegionKindName(fs->region()->kind());
    info.map_align = std::max<uint64_t>(fs->region()->alignment(), 4096);
    info.mount_dev = *ro.mount_dev;
    info.fs = fs;
    info.leases = leases;
    info.target = target;
    info.region_fd = fs->region()->fd();  // opened once, at mount: maps are authorized on it
    if (fs->region()->device_count() > 1) {
      for (size_t d = 0; d < fs->region()->device_count(); ++d) {
        Region* dev = fs->region()->device(d);
        info.devices.push_back({dev->fd(), fs->region()->device_start(d), dev->size(),
                                RegionKindName(dev->kind()), std::max<uint64_t>(dev->alignment(), 4096)});
      }
    }
    info.au_size = fs->superblock().au_size;
    info.region_size = fs->superblock().region_size;
    info.mce_policy = McePolicyName(policy);
    info.direct_access = direct_access;
    info.removing_device = [this](uint32_t d) { return ((removing_.load() >> d) & 1u) != 0; };
    info.remove_device = [this, fs](uint32_t d) -> Status {
      UDAX_RETURN_IF_ERROR(fs->CheckLosable(d));
      MediaEvent e = WholeDeviceEvent(fs->SuperblockSnapshot(), d, MediaEventSource::kDeviceRemoved,
                                      "udaxctl remove-device");
      e.requested = true;
      removing_.fetch_or(1u << d);
      if (!queue_.Push(std::move(e))) {
        removing_.fetch_and(~(1u << d));
        return Status::IoError("the media queue is closed");
      }
      return Status::Ok();
    };
    info.add_device = [this, fs, so](uint32_t d, const std::string& path) -> Result<DeviceResync> {
      // Mapped afresh: the old mapping's list, badblocks and uevents stop first (as for
      // replace-device), and start again for whatever is in the place afterwards.
      if (!path.empty() && sources_ != nullptr) sources_->StopDevice(d);
      Result<DeviceResync> restored = fs->RestoreDevice(d, path);
      if (!restored.ok()) {
        if (!path.empty() && fs->region()->device_mapped(d)) (void)WatchDevice(d, so);
        return restored.status();
      }
      const DeviceResync done = *restored;
      // Its badblocks, list file or uevents are watched again (they were not, if it was
      // lost at mount).
      const std::string unwatched = WatchDevice(d, so);
      (void)queue_.Push(WholeDeviceEvent(
          fs->SuperblockSnapshot(), d, MediaEventSource::kDeviceAdded,
          "udaxctl add-device" + (path.empty() ? std::string() : " " + path) + ": " +
              std::to_string(done.metadata_aus) +
              " metadata AU(s) rewritten, " + std::to_string(done.quarantined_aus) +
              " AU(s) freed meanwhile kept quarantined, " + std::to_string(done.file_bytes) +
              " bytes of file data back" + unwatched));
      return done;
    };
    info.replace_device = [this, fs, so](uint32_t d,
                                         const std::string& path) -> Result<DeviceReplacement> {
      // The old device's list, badblocks and uevents must not speak for the new one:
      // stopped first, started again for whatever is in the place afterwards (the old
      // device again if the replacement is refused before it is mapped).
      if (sources_ != nullptr) sources_->StopDevice(d);
      Result<DeviceReplacement> done = fs->ReplaceDevice(d, path);
      const std::string unwatched = fs->region()->device_mapped(d) ? WatchDevice(d, so) : "";
      if (!done.ok()) return done.status();
      (void)queue_.Push(WholeDeviceEvent(
          fs->SuperblockSnapshot(), d, MediaEventSource::kDeviceReplaced,
          "udaxctl replace-device " + path + ": " + std::to_string(done->metadata_aus) +
              " metadata AU(s) written, " + std::to_string(done->lost_files) + " file(s) lost " +
              std::to_string(done->lost_file_bytes) + " bytes (EIO there), " +
              std::to_string(done->quarantined_aus) + " AU(s) kept quarantined" + unwatched));
      return done;
    };
    info.invalidate_attributes = [se](uint64_t ino) {
      if (se != nullptr) fuse_lowlevel_notify_inval_inode(se, ino, -1, 0);  // attributes only
    };
    auto server = ControlServer::Start(ControlServer::SocketPath(*ro.mount_dev), info);
    if (server.ok()) {
      control_ = std::move(server).value();
    } else {
      syslog(LOG_WARNING, "%s: no control socket: %s", target.c_str(),
             server.status().ToString().c_str());
    }
  } else {
    syslog(LOG_WARNING, "%s: mount %s not found in mountinfo: no control socket, no mmap search",
           target.c_str(), mountpoint.c_str());
  }
  ControlServer* control = control_.get();
  hooks.logged = [this, control, fs](const EventRecord& record) {
    if (control != nullptr) control->Publish(EventRecordToJson(record));
    // Every device the record covers (a requested removal may have been merged into a
    // wider event: EventQueue).
    if (record.source == MediaEventSourceName(MediaEventSource::kDeviceRemoved)) {
      const DiskSuperblock sb = fs->SuperblockSnapshot();
      for (uint32_t d = 0; IsMultiDevice(sb) && d < sb.device_count; ++d) {
        if (sb.devices[d].start < record.offset + record.length &&
            record.offset < sb.devices[d].start + sb.devices[d].length) {
          removing_.fetch_and(~(1u << d));
        }
      }
    }
  };
  resolver_ = MediaResolver::Start(fs, &queue_, log_.get(), std::move(hooks), ro);
}

void MediaWatch::Stop() {
  // The queue goes with us; the Region (still read at unmount) must stop pushing to it.
  // No request is in flight any more: the FUSE loop has ended.
  // The patrol reads the region and reports its faults into the queue: it ends first.
  if (patrol_) patrol_->Stop();
  if (fs_ != nullptr) {
    fs_->region()->set_fault_listener(nullptr);
    fs_->set_revoke_hook(nullptr);
  }
  // Unmounting: no client may keep writing to a region nobody serves.
  leases_.Revoke(0, 0, UINT64_MAX);
  fs_ = nullptr;
  // Stopped, not freed: the control server (an add-device) may still reach it until it
  // stops, below.
  if (sources_) sources_->Stop();
  queue_.Close();
  if (resolver_) resolver_->Stop();
  resolver_.reset();
  control_.reset();
  patrol_.reset();
  sources_.reset();
}

}  // namespace udax
