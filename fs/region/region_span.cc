// region_span.cc -- SpanRegion: finding a filesystem's devices, mapping them end to end,
// and splitting each access among them.
#include "fs/region/region_span.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fs/base/hex.h"
#include "fs/format/badblock_list.h"
#include "fs/format/layout.h"
#include "fs/region/region_pmem2.h"

namespace udax {
namespace {

std::string UuidText(const uint8_t* uuid) {
  std::string out;
  char hex[3];
  for (int i = 0; i < 16; ++i) {
    std::snprintf(hex, sizeof(hex), "%02x", uuid[i]);
    out += hex;
  }
  return out;
}

// What a target's first block says it is.
struct Probe {
  std::string path;
  bool known = false;  // a sound multi-device superblock copy
  DiskSuperblock sb{};
  std::string why;     // why not, for the message
  // Not sound, but not a stranger either: it holds the magic and a filesystem UUID (a
  // torn or damaged copy; the UUID is checked against the others'). Only such a target
  // may stand in for the one device nobody claims. (One whose block does not read at
  // all could be anything: refused.)
  bool damaged_copy = false;
  // What was probed, for Open to check that what it maps is the same file and block.
  dev_t dev = 0;
  ino_t ino = 0;
};

Result<Probe> ProbeDevice(const std::string& path) {
  RegionOptions po;
  po.read_only = true;
  po.lock = false;            // the real open locks; a probe only reads one block
  po.emulate_poison = false;  // nor does it need the state directory
  UDAX_ASSIGN_OR_RETURN(std::unique_ptr<Region> r, Pmem2Region::Open(path, po));
  Probe p;
  p.path = path;
  struct stat st_buf;
  if (fstat(r->fd(), &st_buf) != 0) return Status::FromErrno(path + ": fstat");
  p.dev = st_buf.st_dev;
  p.ino = st_buf.st_ino;
  Status st = r->ReadSafe(0, &p.sb, sizeof(p.sb), nullptr);
  p.damaged_copy = st.ok() && std::memcmp(p.sb.magic, kSuperMagic, sizeof(kSuperMagic)) == 0;
  if (st.ok() && SuperblockVerify(p.sb, r->size()).ok() && !IsMultiDevice(p.sb)) {
    p.why = "a udaxfs of its own, not a device of a multi-device one";
    return p;
  }
  if (st.ok()) st = DeviceSuperblockVerify(p.sb, r->size());
  p.known = st.ok();
  if (!st.ok()) p.why = st.message();
  return p;
}

// A device the filesystem lost, not named at mount: it holds nothing anyone may read or
// write (the span never asks it: SpanRegion::device_lost), but it has a place, a length
// and a name for the tools.
class AbsentDevice final : public Region {
 public:
  AbsentDevice(const std::string& name, uint64_t length) {
    path_ = name;
    size_ = length;
  }
  Status ReadSafe(uint64_t, void*, size_t, MediaFault*) const override { return Gone(); }
  Status WriteSafe(uint64_t, const void*, size_t, bool, MediaFault*) override { return Gone(); }
  Status ZeroSafe(uint64_t, size_t, bool, MediaFault*) override { return Gone(); }
  Status Persist(uint64_t, size_t) override { return Gone(); }
  Status Flush(uint64_t, size_t) override { return Gone(); }
  void Drain() override {}

 private:
  Status Gone() const { return Status::IoError(path_ + ": the device is gone"); }
};

bool SameTable(const DiskSuperblock& a, const DiskSuperblock& b) {
  return a.region_size == b.region_size && a.au_size == b.au_size &&
         a.device_count == b.device_count &&
         std::memcmp(a.devices, b.devices, sizeof(a.devices)) == 0;
}

// The same places (sizes and offsets), whatever UUIDs they name: a copy written before a
// replace-device that a crash cut short (the device table changes only so).
bool SamePlaces(const DiskSuperblock& a, const DiskSuperblock& b) {
  if (a.region_size != b.region_size || a.au_size != b.au_size || a.device_count != b.device_count) {
    return false;
  }
  for (uint32_t d = 0; d < a.device_count && d < kMaxDevices; ++d) {
    if (a.devices[d].start != b.devices[d].start || a.devices[d].length != b.devices[d].length) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::vector<std::string> SplitDeviceList(const std::string& list) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= list.size()) {
    size_t comma = list.find(',', at);
    if (comma == std::string::npos) comma = list.size();
    if (comma > at) out.push_back(list.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

bool IsDeviceList(const std::string& target) {
  struct stat st;
  return target.find(',') != std::string::npos && !SplitDeviceList(target).empty() &&
         stat(target.c_str(), &st) != 0;
}

Result<std::string> FirstDevicePath(const std::string& target) {
  if (!IsDeviceList(target)) return target;
  for (const std::string& path : SplitDeviceList(target)) {
    Result<Probe> p = ProbeDevice(path);
    if (p.ok() && p->known && p->sb.this_device == 0) return path;
  }
  return Status::InvalidArgument(target + ": device 0 of the filesystem is not among them");
}

Result<std::unique_ptr<Region>> SpanRegion::Open(const std::vector<std::string>& paths,
                                                 const RegionOptions& options) {
  // One path with a comma ("A,"): the other devices are lost, or left out (allow_missing).
  if (paths.empty()) return Status::InvalidArgument("a device list names no target");
  if (paths.size() > kMaxDevices) {
    return Status::InvalidArgument("a filesystem spans at most " + std::to_string(kMaxDevices) +
                                   " devices");
  }
  std::vector<Probe> probes;
  for (const std::string& path : paths) {
    UDAX_ASSIGN_OR_RETURN(Probe p, ProbeDevice(path));
    probes.push_back(std::move(p));
  }
  // Device 0's copy is the reference: every superblock write ends there (a table
  // change, udaxctl replace-device, is in force once it is written). Any other sound
  // copy stands in when device 0's first block does not read.
  const Probe* ref = nullptr;
  for (const Probe& p : probes) {
    if (p.known && (ref == nullptr || p.sb.this_device == 0)) ref = &p;
    if (ref != nullptr && ref->sb.this_device == 0) break;
  }
  if (ref == nullptr) {
    return Status::InvalidArgument(probes[0].path + ": not a device of a multi-device udaxfs (" +
                                   probes[0].why + ")");
  }
  const DiskSuperblock& sb = ref->sb;
  std::vector<int> slot(sb.device_count, -1);  // device -> index into probes
  std::vector<size_t> unknown;
  for (size_t i = 0; i < probes.size(); ++i) {
    const Probe& p = probes[i];
    if (!p.known) {
      unknown.push_back(i);
      continue;
    }
    if (std::memcmp(p.sb.uuid, sb.uuid, sizeof(sb.uuid)) != 0) {
      return Status::InvalidArgument(p.path + ": a device of another udaxfs (uuid " +
                                     UuidText(p.sb.uuid) + ", not " + UuidText(sb.uuid) + ")");
    }
    if (!SameTable(p.sb, sb)) {
      if (!SamePlaces(p.sb, sb)) {
        return Status::InvalidArgument(p.path + " and " + ref->path +
                                       ": their device tables disagree; run fsck.udaxfs");
      }
      const uint32_t t = p.sb.this_device;
      if (std::memcmp(p.sb.devices[t].uuid, sb.devices[t].uuid, sizeof(sb.devices[t].uuid)) != 0) {
        return Status::InvalidArgument(
            p.path + ": says it is device " + std::to_string(t) + " of this filesystem (uuid " +
            UuidText(p.sb.devices[t].uuid) + "), but the table names another there (uuid " +
            UuidText(sb.devices[t].uuid) + "): a device replaced since, or a replacement "
            "that did not finish; leave it out (udaxctl replace-device may take it again)");
      }
      // This device, whose copy took a table change that a crash cut short before device
      // 0's (or, from before device 0 was written last, missed one): it is still the one
      // the table names. Its copy is rewritten with the next superblock write; the lost
      // bits of every copy count (below), so a loss is never undone by a crash.
    }
    int& s = slot[p.sb.this_device];
    if (s >= 0) {
      return Status::InvalidArgument(probes[s].path + " and " + p.path + ": both are device " +
                                     std::to_string(p.sb.this_device) + " (named twice, or a copy)");
    }
    s = static_cast<int>(i);
  }
  // Lost devices (a copy that knows says so; the lost one's own copy does not) need not
  // be named: the filesystem goes on without them.
  uint32_t lost = 0;
  for (const Probe& p : probes) {
    if (p.known) lost |= p.sb.lost_devices;
  }
  std::vector<uint32_t> missing;
  for (uint32_t d = 0; d < sb.device_count; ++d) {
    if (slot[d] < 0 && ((lost >> d) & 1u) == 0) missing.push_back(d);
  }
  // One damaged first block of this filesystem takes the one place left: the mount checks it as it checks a single device's primary superblock
  // (and takes the replica if it is bad). Anything else unnamed is a stranger, never
  // written to.
  if (unknown.size() == 1 && missing.size() == 1 && probes[unknown[0]].damaged_copy &&
      std::memcmp(probes[unknown[0]].sb.uuid, sb.uuid, sizeof(sb.uuid)) == 0) {
    slot[missing[0]] = static_cast<int>(unknown[0]);
    unknown.clear();
    missing.clear();
  }
  if (!unknown.empty()) {
    const Probe& p = probes[unknown[0]];
    return Status::InvalidArgument(p.path + ": not a device of this filesystem (" + p.why + ")");
  }
  // Mounted degraded: the devices left out are lost from here on (not device 0).
  if (!missing.empty() && options.allow_missing && missing[0] != 0) {
    for (uint32_t d : missing) lost |= 1u << d;
    missing.clear();
  }
  if (!missing.empty()) {
    std::string which;
    for (uint32_t d : missing) {
      which += (which.empty() ? "" : ", ") + std::to_string(d) + " (uuid " +
               UuidText(sb.devices[d].uuid) + ")";
    }
    return Status::InvalidArgument("the filesystem spans " + std::to_string(sb.device_count) +
                                   " devices; missing device " + which +
                                   (missing[0] != 0 ? "; one gone for good: mount -o degraded "
                                                      "without it, then udaxctl replace-device"
                                                    : ""));
  }
  std::vector<std::string> ordered;
  std::vector<uint64_t> lengths;
  for (uint32_t d = 0; d < sb.device_count; ++d) {
    ordered.push_back(slot[d] >= 0 ? probes[slot[d]].path : std::string());  // "": lost, absent
    lengths.push_back(sb.devices[d].length);
  }
  if (ordered[0].empty()) return Status::InvalidArgument("device 0 is missing");
  // Device 0 an older copy of itself (a restored backup): another device has seen a
  // superblock write more than one past device 0's (a crash leaves at most one: device
  // 0's copy is written last). Its journal, bitmaps and reverse map are stale, and it
  // has no other copy: refused.
  if (ref->sb.this_device == 0) {
    for (uint32_t d = 1; d < sb.device_count; ++d) {
      if (slot[d] < 0 || !probes[slot[d]].known || probes[slot[d]].sb.generation <= sb.generation + 1) {
        continue;
      }
      return Status::InvalidArgument(
          ref->path + ": an older copy of device 0 (superblock generation " +
          std::to_string(sb.generation) + ", while device " + std::to_string(d) + ", " +
          probes[slot[d]].path + ", has seen generation " +
          std::to_string(probes[slot[d]].sb.generation) +
          "): its journal and maps are stale; name the current device 0");
    }
  }
  UDAX_ASSIGN_OR_RETURN(std::unique_ptr<Region> span, Create(ordered, lengths, options));
  auto* self = static_cast<SpanRegion*>(span.get());
  for (uint32_t d = 0; d < sb.device_count; ++d) {
    // Lost, named or not: nothing of it is read (its copies are stale) or written.
    if (d > 0 && ((lost >> d) & 1u) != 0) self->lost_[d].store(true);
    // An older copy of itself (a restored backup): its file data is stale, so it is lost
    // as well -- said by the mount (stale_devices), recorded once it writes. Judged
    // against device 0's copy, written last, so a crash never makes a device look older.
    // Only a sound copy is judged: a damaged one standing in (damaged_copy) says nothing.
    if (d > 0 && slot[d] >= 0 && probes[slot[d]].known && ref->sb.this_device == 0 &&
        probes[slot[d]].sb.generation < sb.device_generation[d]) {
      self->lost_[d].store(true);
      self->stale_[d] = true;
    }
    if (slot[d] < 0) {
      // (udaxctl's media listing knows a device absent by this name's form.)
      self->Own(d, std::make_unique<AbsentDevice>(
                       "(device " + std::to_string(d) + ", uuid " + UuidText(sb.devices[d].uuid) +
                           ", gone)",
                       sb.devices[d].length));
      self->lost_[d].store(true);
      self->absent_[d].store(true);
    }
  }
  // The paths were looked up twice (probe, then open and lock): what is mapped must be
  // the file that was probed, with the same first block -- a name swapped in between
  // (a symlink to a file of root's) is refused before anything is written.
  for (uint32_t d = 0; d < sb.device_count; ++d) {
    if (slot[d] < 0) continue;
    const Probe& p = probes[slot[d]];
    Region* dev = span->device(d);
    struct stat st;
    DiskSuperblock now;
    if (fstat(dev->fd(), &st) != 0 || st.st_dev != p.dev || st.st_ino != p.ino ||
        !dev->ReadSafe(0, &now, sizeof(now), nullptr).ok() ||
        std::memcmp(&now, &p.sb, sizeof(now)) != 0) {
      return Status::Error(EAGAIN, p.path + ": changed while the devices were opened; try again");
    }
  }
  return span;
}

Result<std::unique_ptr<Region>> SpanRegion::Create(const std::vector<std::string>& paths,
                                                   const std::vector<uint64_t>& lengths,
                                                   const RegionOptions& options) {
  if (paths.size() != lengths.size() || paths.size() < 2 || paths.size() > kMaxDevices) {
    return Status::InvalidArgument("a span needs two to " + std::to_string(kMaxDevices) +
                                   " devices, each with a length");
  }
  uint64_t total = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    // Every device starts on a 2 MiB boundary of the reservation: devdax maps need it.
    if (lengths[i] == 0 || lengths[i] % (2u << 20) != 0) {
      return Status::InvalidArgument(paths[i] + ": a device's share must be whole 2 MiB units");
    }
    total += lengths[i];
  }
  std::unique_ptr<SpanRegion> span(new SpanRegion());
  pmem2_vm_reservation* raw = nullptr;
  int ret = pmem2_vm_reservation_new(&raw, nullptr, total);
  if (ret != 0) return Pmem2Status(ret, paths[0], "pmem2_vm_reservation_new");
  span->reservation_.reset(raw);
  span->options_ = options;
  span->options_.create_size = 0;
  uint64_t start = 0;
  for (size_t i = 0; i < paths.size(); ++i) {
    if (paths[i].empty()) {  // a lost device nobody named: Open puts its placeholder here
      span->starts_.push_back(start);
      span->lengths_.push_back(lengths[i]);
      start += lengths[i];
      continue;
    }
    span->starts_.push_back(start);
    UDAX_RETURN_IF_ERROR(span->MapDevice(i, paths[i], lengths[i]));
    span->lengths_.push_back(lengths[i]);
    start += lengths[i];
  }
  // One kind for the callers that ask: page-granular if any device is (they then persist
  // through Persist, which each device does its own way).
  span->kind_ = span->dev(0)->kind();
  bool all_volatile = true;
  for (size_t i = 0; i < paths.size(); ++i) {
    const Region* d = span->dev(i);
    if (d == nullptr) continue;
    if (d->kind() != span->kind_ && d->kind() == RegionKind::kEmulated) span->kind_ = d->kind();
    all_volatile = all_volatile && d->volatile_backing();
    span->alignment_ = std::max(span->alignment_, d->alignment());
  }
  span->volatile_backing_ = all_volatile;
  std::string joined;
  for (const std::string& p : paths) {
    if (!p.empty()) joined += (joined.empty() ? "" : ",") + p;
  }
  span->path_ = joined;
  span->size_ = total;
  span->read_only_ = options.read_only;
  span->fd_ = -1;  // no one descriptor: each device has its own
  span->base_ = static_cast<uint8_t*>(pmem2_vm_reservation_get_address(raw));
  return std::unique_ptr<Region>(std::move(span));
}

Status SpanRegion::MapDevice(size_t i, const std::string& path, uint64_t length, bool lock,
                             const std::string& display) {
  Pmem2Placement place{reservation_.get(), starts_[i], length};
  RegionOptions options = options_;
  options.lock = options.lock && lock;
  options.display_path = display;
  UDAX_ASSIGN_OR_RETURN(std::unique_ptr<Pmem2Region> d,
                        Pmem2Region::OpenPlaced(path, options, &place));
  const uint64_t start = starts_[i];
  d->set_fault_listener([this, start](const MediaFault& f) {
    MediaFault moved = f;
    moved.offset += start;
    ReportFault(moved);
  });
  mapped_[i] = d.get();
  Own(i, std::move(d));
  return Status::Ok();
}

void SpanRegion::Own(size_t i, std::unique_ptr<Region> device) {
  dev_[i].store(device.get(), std::memory_order_release);
  owned_.push_back(std::move(device));
}

SpanRegion::~SpanRegion() {
  owned_.clear();  // every map before the reservation they sit in
}

Region* SpanRegion::device(size_t i) { return dev(i); }

Status SpanRegion::LoseDevice(size_t i) {
  if (i >= starts_.size()) return Status::InvalidArgument(path_ + ": no device " + std::to_string(i));
  if (i == 0) {
    return Status::InvalidArgument(path_ + ": device 0 holds the journal and the maps: losing it "
                                            "ends the filesystem");
  }
  // The epoch first: a writer that finds the device lost (its bytes dropped) then reads
  // the new epoch when it checks, after (both sequentially consistent).
  loss_epoch_.fetch_add(1);
  lost_[i].store(true);
  return Status::Ok();
}

Status SpanRegion::RequireLive(uint64_t off, uint64_t n) const {
  return ForEachDevice("write", off, n, [&](size_t d, uint64_t, uint64_t, uint64_t) {
    return device_lost(d) ? LostStatus("write", d) : Status::Ok();
  });
}

Status SpanRegion::RestoreDevice(size_t i) {
  if (i >= starts_.size()) return Status::InvalidArgument(path_ + ": no device " + std::to_string(i));
  if (!device_lost(i)) {
    return Status::InvalidArgument(path_ + ": device " + std::to_string(i) + " is in service");
  }
  if (absent_[i].load()) {
    return Status::InvalidArgument("nothing of device " + std::to_string(i) + " is mapped");
  }
  // A replacement's first block names it now: its image's poison list has a key.
  if (replaced_[i].load() && mapped_[i] != nullptr && options_.emulate_poison) {
    UDAX_RETURN_IF_ERROR(mapped_[i]->ReattachEmulatedPoison());
  }
  lost_[i].store(false);  // no epoch change: nothing written meanwhile was dropped
  return Status::Ok();
}

Status SpanRegion::ReplaceDevice(size_t i, const std::string& path, const std::string& display) {
  UDAX_RETURN_IF_ERROR(MapLostPlace(i, path, display, "replaced"));
  replaced_[i].store(true);
  return Status::Ok();
}

Status SpanRegion::RemapDevice(size_t i, const std::string& path, const std::string& display) {
  return MapLostPlace(i, path, display, "mapped afresh");
}

Status SpanRegion::ReleaseDevice(size_t i) {
  if (i >= starts_.size()) return Status::InvalidArgument(path_ + ": no device " + std::to_string(i));
  if (!device_lost(i)) {
    return Status::InvalidArgument(path_ + ": device " + std::to_string(i) +
                                   " is in service: only a lost device is let go");
  }
  if (mapped_[i] != nullptr) UDAX_RETURN_IF_ERROR(mapped_[i]->Release());
  // mapped_ keeps the object: MapLostPlace deletes its (now harmless) mapping before
  // another takes the place.
  absent_[i].store(true);
  return Status::Ok();
}

Status SpanRegion::MapLostPlace(size_t i, const std::string& path, const std::string& display,
                                const char* what) {
  if (i >= starts_.size()) return Status::InvalidArgument(path_ + ": no device " + std::to_string(i));
  if (i == 0 || !device_lost(i)) {
    return Status::InvalidArgument(path_ + ": device " + std::to_string(i) + " is not lost: only a "
                                   "lost device is " + what);
  }
  if (read_only_) {
    return Status::Error(EROFS, path_ + ": read-only: no device is " + std::string(what));
  }
  // Its place in the reservation is needed for the new mapping: the old one goes (nothing
  // reaches it while the device is lost; after a real unplug it is dead anyway), the
  // object stays (see owned_).
  // The same file as the old device (the device itself under the same node, or an older
  // copy of it named at mount and taken as blank): the old descriptor, kept, holds the
  // lock for this daemon already.
  bool same_file = false;
  struct stat old_st, new_st;
  if (dev(i) != nullptr && dev(i)->fd() >= 0 && fstat(dev(i)->fd(), &old_st) == 0 &&
      stat(path.c_str(), &new_st) == 0) {
    same_file = old_st.st_dev == new_st.st_dev && old_st.st_ino == new_st.st_ino &&
                old_st.st_rdev == new_st.st_rdev;
  }
  if (mapped_[i] != nullptr) {
    // Another file takes the place: the old one is let go entirely (its descriptor too:
    // a devdax node held open across disable and enable breaks the new node once
    // closed; see Pmem2Region::Release). The same file keeps its descriptor, which holds
    // the lock.
    if (!same_file) (void)mapped_[i]->Release();
    mapped_[i]->Unmap();
    mapped_[i] = nullptr;
  }
  Status st = MapDevice(i, path, lengths_[i], /*lock=*/!same_file, display);
  if (!st.ok()) {
    // Nothing of any device in this place now: as if it had not been named at mount.
    absent_[i].store(true);
    return st;
  }
  absent_[i].store(false);
  placed_at_[i].store(std::chrono::system_clock::now().time_since_epoch().count(),
                      std::memory_order_release);
  return Status::Ok();
}

void SpanRegion::MarkDataLost(RegionRange range) {
  if (range.length == 0 || CheckRange("mark lost", range.offset, range.length).code() != 0) return;
  data_lost_.Add(range);
}

template <typename Fn>
Status SpanRegion::ForEachDevice(const char* op, uint64_t off, uint64_t n, Fn fn) const {
  UDAX_RETURN_IF_ERROR(CheckRange(op, off, n));
  // The last device that starts at or before off.
  size_t d = std::upper_bound(starts_.begin(), starts_.end(), off) - starts_.begin() - 1;
  uint64_t done = 0;
  while (done < n) {
    const uint64_t at = off + done;
    while (d + 1 < starts_.size() && starts_[d + 1] <= at) ++d;
    const uint64_t dev_end = d + 1 < starts_.size() ? starts_[d + 1] : size_;
    const uint64_t len = std::min<uint64_t>(n - done, dev_end - at);
    UDAX_RETURN_IF_ERROR(fn(d, at - starts_[d], len, done));
    done += len;
  }
  return Status::Ok();
}

std::vector<RegionRange> SpanRegion::Shifted(size_t d, std::vector<RegionRange> ranges) const {
  for (RegionRange& r : ranges) r.offset += starts_[d];
  return ranges;
}

Status SpanRegion::LostStatus(const char* op, size_t d) const {
  return Status::IoError(path_ + ": " + op + ": device " + std::to_string(d) + " (" +
                         dev(d)->path() + ") is gone");
}

Status SpanRegion::ReadSafe(uint64_t off, void* dst, size_t n, MediaFault* fault) const {
  if (std::optional<RegionRange> gone = data_lost_.FirstOverlap(off, n)) {
    return Status::IoError(path_ + ": read: [" + Hex(gone->offset) + ", +" + Hex(gone->length) +
                           ") was lost with a replaced device");
  }
  return ForEachDevice("read", off, n, [&](size_t d, uint64_t at, uint64_t len, uint64_t done) {
    if (device_lost(d)) return LostStatus("read", d);
    MediaFault f;
    Status st = dev(d)->ReadSafe(at, static_cast<uint8_t*>(dst) + done, len, &f);
    // Only a media fault names an offset (a range or EROFS error leaves f as it was).
    if (!st.ok() && f.si_code != 0 && fault != nullptr) {
      *fault = f;
      fault->offset += starts_[d];
    }
    return st;
  });
}

Status SpanRegion::WriteSafe(uint64_t off, const void* src, size_t n, bool persist,
                             MediaFault* fault) {
  return ForEachDevice("write", off, n, [&](size_t d, uint64_t at, uint64_t len, uint64_t done) {
    if (device_lost(d)) return Status::Ok();  // dropped: see Region::LoseDevice
    MediaFault f;
    Status st = dev(d)->WriteSafe(at, static_cast<const uint8_t*>(src) + done, len, persist, &f);
    // Only a media fault names an offset (a range or EROFS error leaves f as it was).
    if (!st.ok() && f.si_code != 0 && fault != nullptr) {
      *fault = f;
      fault->offset += starts_[d];
    }
    return st;
  });
}

Status SpanRegion::ZeroSafe(uint64_t off, size_t n, bool persist, MediaFault* fault) {
  return ForEachDevice("zero", off, n, [&](size_t d, uint64_t at, uint64_t len, uint64_t) {
    // Only file data is zeroed while mounted (truncate, punch, zero-range, fresh AUs):
    // dropped, it would come back stale with the device.
    if (device_lost(d)) return LostStatus("zero", d);
    MediaFault f;
    Status st = dev(d)->ZeroSafe(at, len, persist, &f);
    // Only a media fault names an offset (a range or EROFS error leaves f as it was).
    if (!st.ok() && f.si_code != 0 && fault != nullptr) {
      *fault = f;
      fault->offset += starts_[d];
    }
    return st;
  });
}

Status SpanRegion::Persist(uint64_t off, size_t n) {
  return ForEachDevice("persist", off, n, [&](size_t d, uint64_t at, uint64_t len, uint64_t) {
    if (device_lost(d)) return Status::Ok();
    return dev(d)->Persist(at, len);
  });
}

Status SpanRegion::Flush(uint64_t off, size_t n) {
  return ForEachDevice("flush", off, n, [&](size_t d, uint64_t at, uint64_t len, uint64_t) {
    if (device_lost(d)) return Status::Ok();
    return dev(d)->Flush(at, len);
  });
}

void SpanRegion::Drain() {
  for (size_t d = 0; d < starts_.size(); ++d) {
    if (!device_lost(d)) dev(d)->Drain();
  }
}

template <typename RangesOf>
std::vector<RegionRange> SpanRegion::BadIn(const char* op, uint64_t off, uint64_t n,
                                           RangesOf ranges_of) const {
  std::vector<RegionRange> out;
  (void)ForEachDevice(op, off, n, [&](size_t d, uint64_t at, uint64_t len, uint64_t) {
    if (device_lost(d)) {
      out.push_back({starts_[d] + at, len});  // a lost device is bad all over
      return Status::Ok();
    }
    for (const RegionRange& r : Shifted(d, ranges_of(*dev(d), at, len))) out.push_back(r);
    return Status::Ok();
  });
  if (!data_lost_.empty()) {
    for (const RegionRange& r : data_lost_.Overlaps(off, n)) out.push_back(r);
    std::sort(out.begin(), out.end(),
              [](const RegionRange& a, const RegionRange& b) { return a.offset < b.offset; });
  }
  return out;
}

template <typename AnyIn>
bool SpanRegion::AnyBadIn(const char* op, uint64_t off, uint64_t n, AnyIn any_in) const {
  bool any = false;
  (void)ForEachDevice(op, off, n, [&](size_t d, uint64_t at, uint64_t len, uint64_t) {
    any = any || device_lost(d) || any_in(*dev(d), at, len);
    return Status::Ok();
  });
  return any || data_lost_.FirstOverlap(off, n).has_value();
}

std::vector<RegionRange> SpanRegion::MaybeNonZeroIn(uint64_t off, uint64_t n) const {
  // As the bad ranges are gathered: a lost device (and lost data) may be anything.
  return BadIn("data", off, n,
               [](const Region& r, uint64_t at, uint64_t len) { return r.MaybeNonZeroIn(at, len); });
}

std::vector<RegionRange> SpanRegion::KnownBadIn(uint64_t off, uint64_t n) const {
  return BadIn("known bad", off, n,
               [](const Region& r, uint64_t at, uint64_t len) { return r.KnownBadIn(at, len); });
}

bool SpanRegion::HasKnownBad(uint64_t off, uint64_t n) const {
  return AnyBadIn("known bad", off, n,
                  [](const Region& r, uint64_t at, uint64_t len) { return r.HasKnownBad(at, len); });
}

bool SpanRegion::AnyKnownBad() const {
  if (!data_lost_.empty()) return true;
  for (size_t d = 0; d < starts_.size(); ++d) {
    if (device_lost(d) || dev(d)->AnyKnownBad()) return true;
  }
  return false;
}

bool SpanRegion::HasEmulatedPoison(uint64_t off, uint64_t n) const {
  return AnyBadIn("poison", off, n, [](const Region& r, uint64_t at, uint64_t len) {
    return r.HasEmulatedPoison(at, len);
  });
}

std::vector<RegionRange> SpanRegion::EmulatedPoisonIn(uint64_t off, uint64_t n) const {
  return BadIn("poison", off, n, [](const Region& r, uint64_t at, uint64_t len) {
    return r.EmulatedPoisonIn(at, len);
  });
}

void SpanRegion::MarkKnownBad(RegionRange range) {
  (void)ForEachDevice("mark bad", range.offset, range.length,
                      [&](size_t d, uint64_t at, uint64_t len, uint64_t) {
                        if (!device_lost(d)) dev(d)->MarkKnownBad({at, len});
                        return Status::Ok();
                      });
}

std::vector<RegionRange> SpanRegion::LatentPoison() const {
  std::vector<RegionRange> out;
  for (size_t d = 0; d < starts_.size(); ++d) {
    for (const RegionRange& r : Shifted(d, dev(d)->LatentPoison())) out.push_back(r);
  }
  return out;
}

Status SpanRegion::ReloadEmulatedPoison() {
  for (size_t d = 0; d < starts_.size(); ++d) UDAX_RETURN_IF_ERROR(dev(d)->ReloadEmulatedPoison());
  return Status::Ok();
}

std::vector<RegionRange> SpanRegion::EmulatedPoison() const {
  std::vector<RegionRange> out;
  for (size_t d = 0; d < starts_.size(); ++d) {
    for (const RegionRange& r : Shifted(d, dev(d)->EmulatedPoison())) out.push_back(r);
  }
  return out;
}

Status SpanRegion::ClearEmulatedPoison(uint64_t off, uint64_t n, BadblockList* cleared) {
  BadblockList all;
  bool any_list = false;
  Status st = ForEachDevice("clear poison", off, n, [&](size_t d, uint64_t at, uint64_t len, uint64_t) {
    if (device_lost(d)) return Status::Ok();
    BadblockList mine;
    Status s = dev(d)->ClearEmulatedPoison(at, len, &mine);
    // A device with no list to clear (devdax next to images) is the kernel's business.
    if (s.code() == EOPNOTSUPP) return Status::Ok();
    any_list = true;
    UDAX_RETURN_IF_ERROR(s);
    for (const BadblockRange& r : mine.ranges()) {
      all.Add(r.sector + starts_[d] / kBadblockSectorSize, r.count);
    }
    return Status::Ok();
  });
  if (cleared != nullptr) *cleared = all;
  if (st.ok() && !any_list && n > 0) {
    return Status::Error(EOPNOTSUPP, path_ + ": poison on a device is cleared by the kernel, "
                                             "not through the region");
  }
  return st;
}

Status SpanRegion::ClearRewrittenPoison(uint64_t off, uint64_t n) {
  return ForEachDevice("clear poison", off, n, [&](size_t d, uint64_t at, uint64_t len, uint64_t) {
    if (device_lost(d)) return Status::Ok();
    return dev(d)->ClearRewrittenPoison(at, len);
  });
}

}  // namespace udax
