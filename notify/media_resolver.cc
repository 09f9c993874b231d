// media_resolver.cc -- from a media event to owners and actions (see media_resolver.h).
#include "notify/media_resolver.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>

#include "notify/mapped_procs.h"

namespace udax {

const char* McePolicyName(McePolicy policy) {
  switch (policy) {
    case McePolicy::kNotify: return "notify";
    case McePolicy::kKill: return "kill";
    case McePolicy::kIgnore: return "ignore";
  }
  return "?";
}

std::optional<McePolicy> McePolicyFromName(const std::string& name) {
  for (McePolicy p : {McePolicy::kNotify, McePolicy::kKill, McePolicy::kIgnore}) {
    if (name == McePolicyName(p)) return p;
  }
  return std::nullopt;
}

std::unique_ptr<MediaResolver> MediaResolver::Start(Filesystem* fs, EventQueue* queue,
                                                    EventLog* log, Hooks hooks, Options options) {
  std::unique_ptr<MediaResolver> r(
      new MediaResolver(fs, queue, log, std::move(hooks), std::move(options)));
  MediaResolver* self = r.get();
  fs->media().set_relocation_listener([self](const MediaRelocation& m) {
    std::lock_guard<std::mutex> lock(self->relocations_mu_);
    self->relocations_.push_back(m);
  });
  r->thread_ = std::thread([self] { self->Run(); });
  return r;
}

void MediaResolver::Stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  thread_.join();
  fs_->media().set_relocation_listener(nullptr);
  LogRelocations();
}

void MediaResolver::Run() {
  while (true) {
    MediaEvent event;
    if (queue_->Pop(&event, std::chrono::milliseconds(100))) {
      Handle(event);
    } else if (queue_->closed() || stop_) {
      break;
    }
    LogRelocations();
  }
}

uint64_t MediaResolver::repeats() {
  std::lock_guard<std::mutex> lock(handled_mu_);
  return repeats_;
}

bool MediaResolver::IsRepeat(const MediaEvent& event) {
  if (event.source != MediaEventSource::kSigbusAr && event.source != MediaEventSource::kSigbusAo) {
    return false;  // a new report from the media (re-injected, new badblocks) is acted on
  }
  std::lock_guard<std::mutex> lock(handled_mu_);
  for (const auto& [off, len] : handled_ranges_) {
    if (event.offset >= off && event.end() <= off + len) {
      ++repeats_;
      return true;
    }
  }
  return false;
}

void MediaResolver::RememberHandled(uint64_t offset, uint64_t length) {
  std::lock_guard<std::mutex> lock(handled_mu_);
  // Bounded: a storm of distinct bad ranges is a dying device, and forgetting old ones
  // only costs a repeated log line.
  if (handled_ranges_.size() >= 4096) handled_ranges_.erase(handled_ranges_.begin());
  handled_ranges_.emplace_back(offset, length);
}

EventRecord MediaResolver::Handle(const MediaEvent& event) {
  const auto start = std::chrono::steady_clock::now();
  EventRecord record;
  record.time = event.time.time_since_epoch().count() != 0 ? event.time
                                                            : std::chrono::system_clock::now();
  record.source = MediaEventSourceName(event.source);
  record.offset = event.offset;
  record.length = event.length;
  record.si_code = event.si_code;
  record.detail = event.detail;

  if (event.source == MediaEventSource::kDeviceAdded ||
      event.source == MediaEventSource::kDeviceReplaced) {
    // Done already (Filesystem::RestoreDevice or ReplaceDevice, before the event was
    // sent): only said.
    record.action = event.source == MediaEventSource::kDeviceAdded ? "resynced" : "replaced";
    Finish(&record);
    return record;
  }
  if (event.source == MediaEventSource::kDeviceRemoved && LoseOneDevice(event, &record)) {
    record.resolve_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now() - start).count();
    Finish(&record);
    return record;
  }
  if (event.source == MediaEventSource::kDeviceRemoved) {
    if (hooks_.device_removed) record.processes = hooks_.device_removed(event);
    fs_->Shutdown("device removed (" + event.detail + "): every mapping revoked, nothing more is written");
    record.action = "shutdown";
    record.resolve_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now() - start).count();
    Finish(&record);
    return record;
  }

  if (IsRepeat(event)) {
    record.action = "repeat";
    return record;
  }
  auto owners = fs_->media().HandleError(event.offset, event.length);
  RememberHandled(event.offset, event.length);
  record.resolve_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now() - start).count();
  if (!owners.ok()) {
    record.action = "error: " + owners.status().message();
    Finish(&record);
    return record;
  }
  record.owners = std::move(owners).value();
  std::set<std::string> actions;
  for (const MediaOwner& m : record.owners) {
    actions.insert(MediaActionName(m.action));
    if (m.action != MediaAction::kFileEio || m.range.owner.kind != OwnerKind::kFileData) continue;
    // The kernel may cache these pages: after this, only a read that reaches us (and
    // fails) can see them.
    if (hooks_.lease_media_error) {
      for (ProcessAction& a : hooks_.lease_media_error(m.range.owner.ino, m.range.offset,
                                                        m.range.len, options_.policy)) {
        record.processes.push_back(std::move(a));
      }
    }
    if (options_.policy == McePolicy::kKill) ActOnMappers(m, &record);
    if (hooks_.invalidate) hooks_.invalidate(m.range.owner.ino, m.range.offset, m.range.len);
    if (options_.policy != McePolicy::kKill) ActOnMappers(m, &record);
  }
  for (const std::string& a : actions) record.action += (record.action.empty() ? "" : ",") + a;
  if (record.action.empty()) record.action = "none";
  Finish(&record);
  return record;
}

bool MediaResolver::LoseOneDevice(const MediaEvent& event, EventRecord* record) {
  const DiskSuperblock sb = fs_->SuperblockSnapshot();
  if (!IsMultiDevice(sb)) return false;
  const uint32_t d = DeviceOfOffset(sb, event.offset);
  // The whole of one device other than device 0 (whose loss is a shutdown).
  if (d == 0 || event.offset != sb.devices[d].start || event.length != sb.devices[d].length) {
    return false;
  }
  // Raised before another file took the place (add-device PATH, replace-device, while
  // the event waited in the queue): it was about the file that was there then.
  if (event.time != std::chrono::system_clock::time_point{} &&
      event.time < fs_->region()->device_placed_at(d)) {
    record->action = "stale";
    record->detail = (event.detail.empty() ? std::string() : event.detail + ": ") +
                     "raised before device " + std::to_string(d) +
                     " was mapped afresh: nothing to act on";
    return true;
  }
  auto owners = fs_->LoseDevice(d);
  // The kernel took the device away (not udaxctl remove-device, which leaves it in
  // place for add-device): the daemon lets go of it too, so that a node made for it
  // again (daxctl enable-device) works. Also when a requested removal lost it first.
  std::string released;
  if (!event.requested && (owners.ok() || owners.status().code() == EALREADY)) {
    Status st = fs_->ReleaseLostDevice(d);
    released = st.ok() ? "; its mapping let go (udaxctl add-device MOUNT " + std::to_string(d) +
                             " PATH brings it back)"
                       : "; its mapping kept: " + st.message();
  }
  if (!owners.ok() && owners.status().code() == EALREADY) {
    record->action = "repeat";
    record->detail += released;
    return true;
  }
  if (!owners.ok() && event.requested) {
    record->action = "refused";
    record->detail += ": " + owners.status().message();
    return true;
  }
  if (!owners.ok()) return false;  // then the shutdown, as on one device
  std::set<std::string> actions;
  for (const OwnerRange& r : *owners) {
    if (r.owner.kind == OwnerKind::kFree) continue;
    MediaOwner m;
    m.range = r;
    if (r.owner.ino != 0) {
      auto path = fs_->PathOf(r.owner.ino);
      if (path.ok()) m.path = path.value();
    }
    if (r.owner.kind == OwnerKind::kFileData) {
      m.action = MediaAction::kFileEio;
      m.detail = "its device is gone: reads fail with EIO until a write covers them";
      // Maps of the range point into the device: taken back, and the kernel's pages
      // dropped, before anyone reads a byte of it again.
      if (hooks_.revoke) {
        for (ProcessAction& a : hooks_.revoke(r.owner.ino, r.offset, r.len)) {
          record->processes.push_back(std::move(a));
        }
      }
      if (hooks_.invalidate) hooks_.invalidate(r.owner.ino, r.offset, r.len);
    } else if (r.owner.kind == OwnerKind::kQuarantined || r.owner.kind == OwnerKind::kSuperblock ||
               r.owner.kind == OwnerKind::kReplica) {
      m.action = MediaAction::kNone;
      m.detail = r.owner.kind == OwnerKind::kQuarantined ? "quarantined already"
                                                         : "a copy of the superblock: the primary serves";
    } else {
      // Directories, extent blocks, attributes, symlinks and the second inode table: each
      // has its other copy on another device.
      m.action = MediaAction::kOtherCopy;
      m.detail = "one copy gone with its device: the other serves";
    }
    actions.insert(MediaActionName(m.action));
    record->owners.push_back(std::move(m));
  }
  record->action = "degraded";
  for (const std::string& a : actions) {
    if (a != "none") record->action += "," + a;
  }
  record->detail = (event.detail.empty() ? std::string() : event.detail + ": ") + "device " +
                   std::to_string(d) + " lost; the filesystem serves, degraded" + released;
  return true;
}

void MediaResolver::ActOnMappers(const MediaOwner& owner, EventRecord* record) {
  if (!options_.mount_dev) return;
  for (const MappedProcess& p :
       FindMappers(options_.proc_root, *options_.mount_dev, owner.range.owner.ino,
                   owner.range.offset, owner.range.len, getpid())) {
    ProcessAction a{p.pid, p.comm, ""};
    switch (options_.policy) {
      case McePolicy::kKill:
        a.action = kill(p.pid, SIGKILL) == 0 ? "killed" : std::string("kill failed: ") + strerror(errno);
        break;
      case McePolicy::kNotify:
        a.action = "notified (page cache dropped: the next touch of the range raises SIGBUS)";
        break;
      case McePolicy::kIgnore:
        a.action = "ignored";
        break;
    }
    record->processes.push_back(std::move(a));
  }
}

void MediaResolver::LogRelocations() {
  std::vector<MediaRelocation> done;
  {
    std::lock_guard<std::mutex> lock(relocations_mu_);
    done.swap(relocations_);
  }
  for (const MediaRelocation& m : done) {
    EventRecord record;
    record.time = std::chrono::system_clock::now();
    record.source = "relocation";
    record.offset = m.old_phys;
    record.length = m.length;
    MediaOwner o;
    o.range = OwnerRange{Owner{OwnerKind::kFileData, m.ino, 0, 0}, m.old_phys, m.length, m.file_offset};
    auto path = fs_->PathOf(m.ino);
    if (path.ok()) o.path = path.value();
    o.action = MediaAction::kQuarantined;
    char buf[160];
    std::snprintf(buf, sizeof(buf),
                  "a write covered the bad bytes: the block moved to region offset %#llx, the old "
                  "one is quarantined",
                  static_cast<unsigned long long>(m.new_phys));
    o.detail = buf;
    record.owners.push_back(std::move(o));
    record.action = "relocated";
    Finish(&record);
  }
}

void MediaResolver::Finish(EventRecord* record) {
  if (log_ != nullptr) (void)log_->Append(*record);
  handled_++;
  if (hooks_.logged) hooks_.logged(*record);
}

}  // namespace udax
