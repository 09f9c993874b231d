// fs_devices.cc -- a multi-device filesystem losing one of its devices and going on, and
// getting it back (add-device) or a blank one in its place (replace-device).
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>

#include "fs/base/hex.h"
#include "fs/base/unique_fd.h"
#include "fs/format/layout.h"
#include "fs/core/filesystem.h"

namespace udax {

Status Filesystem::CheckLosable(uint32_t d) {
  MetaLock lock(this);
  return CheckLosableLocked(d);
}

Status Filesystem::CheckLosableLocked(uint32_t d) {
  const DiskSuperblock& sb = sb_;
  if (!IsMultiDevice(sb)) {
    return Status::InvalidArgument("one device: losing it ends the filesystem (udaxctl shutdown)");
  }
  if (d >= sb.device_count) {
    return Status::InvalidArgument("no device " + std::to_string(d) + " (the filesystem has " +
                                   std::to_string(sb.device_count) + ")");
  }
  if (d == 0) {
    return Status::InvalidArgument(
        "device 0 holds the journal, the bitmaps and the reverse map: it cannot go while "
        "the filesystem serves (udaxctl shutdown stops it)");
  }
  if (region_->device_lost(d)) {
    return Status::Error(EALREADY, "device " + std::to_string(d) + " is gone already");
  }
  // A second device may go only if no metadata has its two copies on the two of them
  // (with three or more devices, pairs join every two): that metadata would be gone, and
  // its loss is a shutdown, as on one device.
  if (LostDevices().empty()) return Status::Ok();
  UDAX_ASSIGN_OR_RETURN(std::vector<OwnerRange> owners,
                        space_.Owners(sb.devices[d].start, sb.devices[d].length));
  for (const OwnerRange& r : owners) {
    if (!IsCopiedKind(r.owner.kind)) continue;
    for (uint64_t a = r.phys / sb.au_size; a * sb.au_size < r.phys + r.len; ++a) {
      const uint64_t partner = CopyAu(sb, a);
      if (partner != 0 && region_->device_lost(DeviceOfAu(sb, partner))) {
        return Status::InvalidArgument(
            "device " + std::to_string(DeviceOfAu(sb, partner)) + " is gone already, and " +
            OwnerName(r.owner) + " has its two copies on it and on device " + std::to_string(d) +
            ": losing both ends the filesystem (udaxctl add-device the other first)");
      }
    }
  }
  return Status::Ok();
}

Result<std::vector<OwnerRange>> Filesystem::LoseDevice(uint32_t d) {
  DiskSuperblock sb;
  {
    MetaLock lock(this);
    // Under mu_, which RestoreDevice holds throughout: a removal that races an add-device
    // waits for it and is then acted on, never taken for a repeat; and the second-loss
    // scan sees every pair committed so far.
    UDAX_RETURN_IF_ERROR(CheckLosableLocked(d));
    sb = sb_;
    // Said on media first, in every superblock on a device that remains: a mount from
    // now on treats the device as gone even if it comes back, for its metadata copies
    // miss every change from here on (a resync, to come, brings it back). A read-only
    // mount says it when it goes read-write (StartWriting).
    UDAX_RETURN_IF_ERROR(RecordLostDevices(1u << d));
    // Then accesses stop (a pulled device's pages may be gone), then allocation.
    UDAX_RETURN_IF_ERROR(region_->LoseDevice(d));
    space_.RetireDevice(d);
  }
  // Who loses what: the reverse map's records live on device 0, so the question is
  // answered whatever state device d is in, and nothing is allocated there any more.
  return space_.Owners(sb.devices[d].start, sb.devices[d].length);
}

Status Filesystem::ReleaseLostDevice(uint32_t d) {
  // Under mu_, which RestoreDevice and ReplaceDevice hold while they map the place: the
  // release never lands on what they just mapped (a device back meanwhile is in service,
  // and refused here).
  MetaLock lock(this);
  if (d >= DeviceCount(sb_) || !region_->device_lost(d)) {
    return Status::InvalidArgument("device " + std::to_string(d) + " is not lost: nothing to let go");
  }
  return region_->ReleaseDevice(d);
}

Status Filesystem::RecordLostDevices(uint32_t more) {
  uint32_t lost = sb_.lost_devices | more;
  for (uint32_t d = 1; d < DeviceCount(sb_); ++d) {
    if (region_->device_lost(d)) lost |= 1u << d;
  }
  if (!IsMultiDevice(sb_) || lost == sb_.lost_devices || options_.read_only || shutdown_) {
    return Status::Ok();
  }
  return WriteLostDevices(lost);
}

Status Filesystem::WriteLostDevices(uint32_t lost) {
  DiskSuperblock next = sb_;
  next.lost_devices = lost;
  return WriteSuperblocks(next, "recording the lost devices");
}

Status Filesystem::WriteSuperblocks(DiskSuperblock next, const char* why) {
  // A new generation, for every device the write reaches (DiskSuperblock::generation).
  next.generation = sb_.generation + 1;
  for (uint32_t k = 0; k < next.device_count; ++k) {
    if (!DeviceLost(next, k)) next.device_generation[k] = next.generation;
  }
  SuperblockSeal(&next);
  // Never onto a lost device (its pages may be gone: the replica, on the last device, too).
  auto write = [&](uint64_t at, const DiskSuperblock& copy) {
    if (DeviceLost(next, DeviceOfOffset(next, at))) return Status::Ok();
    return region_->WriteSafe(at, &copy, sizeof(copy), true);
  };
  // Device 0's last: a mount takes it for the truth, so a crash leaves every other copy
  // as new as it or newer (a device a mount must not take for an older copy of itself),
  // and whatever the write changes (a device's loss, return or replacement) is in force
  // only once it is done.
  Status st = Status::Ok();
  for (uint32_t k = 1; st.ok() && k < next.device_count; ++k) {
    st = write(next.devices[k].start, DeviceCopy(next, k));
  }
  if (st.ok()) st = write(next.replica_off, next);
  if (st.ok()) st = write(0, next);
  if (!st.ok()) {
    ShutdownLocked(std::string("superblock write failed while ") + why + ": " + st.message());
    return Status::IoError(st.message());
  }
  sb_ = next;
  return Status::Ok();
}

Result<uint64_t> Filesystem::RewriteCopiesOnto(uint32_t d, const std::vector<OwnerRange>& owners,
                                               Region* dev) {
  const DiskSuperblock& sb = sb_;
  const uint64_t start = sb.devices[d].start, au = sb.au_size;
  std::vector<uint8_t> buf(au);
  uint64_t aus = 0;
  for (const OwnerRange& r : owners) {
    if (!IsCopiedKind(r.owner.kind) && r.owner.kind != OwnerKind::kInodeTable) continue;
    for (uint64_t off = r.phys; off < r.phys + r.len;) {
      const uint64_t n = std::min(r.phys + r.len, (off / au + 1) * au) - off;
      const uint64_t from = CopyOffset(sb, off);
      if (from == 0 || DeviceOfOffset(sb, from) == d) {
        return Status::IoError("metadata at " + Hex(off) + " on device " + std::to_string(d) +
                               " has no copy on another device");
      }
      UDAX_RETURN_IF_ERROR(region_->ReadSafe(from, buf.data(), n));
      UDAX_RETURN_IF_ERROR(dev->WriteSafe(off - start, buf.data(), n, true));
      aus += (n + au - 1) / au;
      off += n;
    }
  }
  return aus;
}

namespace {

// The target of a replace-device or of an add-device with a path, looked at before the
// metadata lock is taken: a path resolved through a FUSE filesystem (this very mount, a
// typo or a symlink) would call back into a daemon that waits for that lock. Refused: a
// file on a FUSE filesystem, and one that another user owns or may write (they could
// rewrite the filesystem's metadata and data on it afterwards). The checks are made on a
// descriptor of the file (O_PATH), which pins it: every later open goes through that
// descriptor (/proc/self/fd/N), never through the name again, so a rename or a symlink
// swapped in meanwhile cannot put another file -- or a FUSE path -- in its place.
struct DeviceTarget {
  UniqueFd pinned;        // O_PATH: the file that was checked
  std::string path;       // its name, every symlink resolved (messages, udaxctl)
  std::string open_path;  // /proc/self/fd/N: how it is opened from now on
  struct stat st {};
};

Result<DeviceTarget> CheckDeviceTarget(const std::string& asked) {
  char* resolved = realpath(asked.c_str(), nullptr);
  if (resolved == nullptr) return Status::Error(errno, asked + ": " + std::strerror(errno));
  DeviceTarget t;
  t.path = resolved;
  free(resolved);
  t.pinned = UniqueFd(open(t.path.c_str(), O_PATH | O_CLOEXEC));
  struct statfs fst;
  if (!t.pinned.valid() || fstat(t.pinned.get(), &t.st) != 0 || fstatfs(t.pinned.get(), &fst) != 0) {
    return Status::Error(errno, t.path + ": " + std::strerror(errno));
  }
  if (fst.f_type == FUSE_SUPER_MAGIC) {
    return Status::InvalidArgument(t.path + ": on a FUSE filesystem: not a device or image "
                                   "a udaxfs can live on");
  }
  if (t.st.st_uid != geteuid()) {
    return Status::Error(EPERM, t.path + ": owned by uid " + std::to_string(t.st.st_uid) +
                                    ", not by the daemon's: its owner could rewrite what the "
                                    "filesystem puts there (chown it first)");
  }
  if ((t.st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status::Error(EPERM, t.path + ": writable by group or others, who could rewrite "
                                    "what the filesystem puts there (chmod go-w first)");
  }
  t.open_path = "/proc/self/fd/" + std::to_string(t.pinned.get());
  return t;
}

// Whether `fd` is the file `t` checked.
bool IsTarget(const DeviceTarget& t, int fd) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == t.st.st_dev && st.st_ino == t.st.st_ino &&
         st.st_rdev == t.st.st_rdev;
}

}  // namespace

Result<DeviceResync> Filesystem::RestoreDevice(uint32_t d, const std::string& asked) {
  const DiskSuperblock snap = SuperblockSnapshot();
  if (!IsMultiDevice(snap)) return Status::InvalidArgument("one device: nothing to restore");
  if (d >= snap.device_count) {
    return Status::InvalidArgument("no device " + std::to_string(d) + " (the filesystem has " +
                                   std::to_string(snap.device_count) + ")");
  }
  if (!region_->device_lost(d)) {
    return Status::InvalidArgument("device " + std::to_string(d) + " is in service: nothing to restore");
  }
  if (options_.read_only) return Status::Error(EROFS, "read-only mount");
  std::optional<DeviceTarget> target;  // checked before the lock (CheckDeviceTarget)
  if (!asked.empty()) {
    UDAX_ASSIGN_OR_RETURN(target, CheckDeviceTarget(asked));
  }
  MetaLock lock(this);
  if (shutdown_) return Status::IoError("the filesystem is shut down");
  if (!region_->device_lost(d)) {  // restored meanwhile
    return Status::InvalidArgument("device " + std::to_string(d) + " is in service: nothing to restore");
  }
  const DiskSuperblock sb = sb_;
  const uint64_t start = sb.devices[d].start, length = sb.devices[d].length, au = sb.au_size;
  // The device must be the one that was lost: this filesystem's copy of the superblock
  // for device d, under d's own UUID, as new as the last one written to it.
  auto check_identity = [&](const DiskSuperblock& own, uint64_t size,
                            const std::string& name) -> Status {
    if (!DeviceSuperblockVerify(own, size).ok() ||
        std::memcmp(own.uuid, sb.uuid, sizeof(sb.uuid)) != 0 || own.this_device != d ||
        std::memcmp(own.devices[d].uuid, sb.devices[d].uuid, sizeof(sb.devices[d].uuid)) != 0) {
      return Status::InvalidArgument(name + ": not device " + std::to_string(d) +
                                     " of this filesystem as it was lost");
    }
    if (own.generation < sb.device_generation[d]) {
      return Status::InvalidArgument(
          name + ": an older copy of device " + std::to_string(d) + " (generation " +
          std::to_string(own.generation) + "; the filesystem last wrote generation " +
          std::to_string(sb.device_generation[d]) +
          " to it): its file data is stale (udaxctl replace-device may take it as blank)");
    }
    return Status::Ok();
  };
  if (target) {
    const std::string& path = target->path;
    // Mapped afresh from the target, once its first block (read without mapping it in
    // place or locking it) says it is the device: a wrong target leaves the old mapping
    // alone. Both opens go through the pinned descriptor (the file that was checked).
    {
      RegionOptions po;
      po.read_only = true;
      po.lock = false;
      po.emulate_poison = false;
      po.display_path = path;
      UDAX_ASSIGN_OR_RETURN(std::unique_ptr<Region> probe, Region::Open(target->open_path, po));
      if (probe->device_count() != 1 || !IsTarget(*target, probe->fd())) {
        return Status::InvalidArgument(path + ": not one device or image");
      }
      DiskSuperblock own;
      Status st = probe->ReadSafe(0, &own, sizeof(own), nullptr);
      if (!st.ok()) return Status::IoError(path + ": its first block does not read: " + st.message());
      UDAX_RETURN_IF_ERROR(check_identity(own, probe->size(), path));
    }
    UDAX_RETURN_IF_ERROR(region_->RemapDevice(d, target->open_path, path));
    if (!IsTarget(*target, region_->device(d)->fd())) {
      return Status::Error(EAGAIN, path + ": changed while it was opened; try again");
    }
  }
  if (!region_->device_mapped(d)) {
    return Status::InvalidArgument("nothing of device " + std::to_string(d) +
                                   " is mapped (not named at mount, or a remap that failed): "
                                   "name its path (udaxctl add-device MOUNT " +
                                   std::to_string(d) + " PATH)");
  }
  Region* const dev = region_->device(d);
  // Checked again on what is mapped, read through the mapping itself (a dead one -- the
  // device pulled for real -- fails here, before anything is written).
  {
    DiskSuperblock own;
    Status st = dev->ReadSafe(0, &own, sizeof(own), nullptr);
    if (!st.ok()) {
      return Status::IoError("device " + std::to_string(d) + " (" + dev->path() +
                             ") does not read: " + st.message() +
                             " (after a real unplug: name its path, udaxctl add-device MOUNT " +
                             std::to_string(d) + " PATH)");
    }
    UDAX_RETURN_IF_ERROR(check_identity(own, dev->size(), dev->path()));
  }
  UDAX_ASSIGN_OR_RETURN(std::vector<OwnerRange> owners, space_.Owners(start, length));
  DeviceResync out;
  for (const OwnerRange& r : owners) {
    if (r.owner.kind == OwnerKind::kQuarantined) out.quarantined_aus += (r.len + au - 1) / au;
    // Untouched since the loss: a write over it moved it away.
    if (r.owner.kind == OwnerKind::kFileData) out.file_bytes += r.len;
  }
  // 1. Its copies of metadata missed every change since the loss: each is rewritten
  //    from its partner on a device that stayed, straight onto the device (the span
  //    still drops writes to it). mu_ keeps every metadata change out meanwhile.
  UDAX_ASSIGN_OR_RETURN(out.metadata_aus, RewriteCopiesOnto(d, owners, dev));
  // 2. In service again: reads and writes reach it, allocation may use it.
  UDAX_RETURN_IF_ERROR(region_->RestoreDevice(d));
  space_.RestoreDevice(d);
  // 3. What was freed there while it was gone was quarantined (the region knew all of it
  //    bad) and stays so: whether an AU of it went bad meanwhile, or was bad before, is
  //    not known here (a devdax device's kernel list, a fault found while it was lost),
  //    and a bad AU back in the free pool would hand a file bad media.
  // 4. Said on media last, on every device, its own included: a power cut before this
  //    leaves it lost, and the next add-device does all of this again. (Steps 1-3 commit
  //    nothing: there is no transaction to order before it.)
  UDAX_RETURN_IF_ERROR(WriteLostDevices(sb_.lost_devices & ~(1u << d)));
  return out;
}


Result<DeviceReplacement> Filesystem::ReplaceDevice(uint32_t d, const std::string& asked) {
  if (options_.read_only) return Status::Error(EROFS, "read-only mount");
  UDAX_ASSIGN_OR_RETURN(const DeviceTarget target, CheckDeviceTarget(asked));
  const std::string& path = target.path;
  MetaLock lock(this);
  if (shutdown_) return Status::IoError("the filesystem is shut down");
  const DiskSuperblock sb = sb_;
  if (!IsMultiDevice(sb)) return Status::InvalidArgument("one device: nothing to replace");
  if (d >= sb.device_count) {
    return Status::InvalidArgument("no device " + std::to_string(d) + " (the filesystem has " +
                                   std::to_string(sb.device_count) + ")");
  }
  if (!region_->device_lost(d)) {
    return Status::InvalidArgument("device " + std::to_string(d) +
                                   " is in service: only a lost device is replaced "
                                   "(udaxctl remove-device first)");
  }
  const uint64_t start = sb.devices[d].start, length = sb.devices[d].length, au = sb.au_size;

  // 1. What the old device held, from the reverse map (on device 0). Its file data is
  //    gone: its AUs join the lost runs, decided before anything changes (ENOSPC here
  //    leaves all as it was).
  UDAX_ASSIGN_OR_RETURN(std::vector<OwnerRange> owners, space_.Owners(start, length));
  DeviceReplacement out;
  std::set<uint64_t> files;
  std::vector<DiskLostRun> runs;
  for (const OwnerRange& r : owners) {
    if (r.owner.kind == OwnerKind::kQuarantined) out.quarantined_aus += (r.len + au - 1) / au;
    if (r.owner.kind != OwnerKind::kFileData) continue;
    files.insert(r.owner.ino);
    out.lost_file_bytes += r.len;
    const uint64_t first = r.phys / au, end = (r.phys + r.len + au - 1) / au;
    runs.push_back({first, end - first});
  }
  out.lost_files = files.size();
  DiskSuperblock next = sb;
  if (Status st = AddLostRuns(&next, runs); !st.ok()) {
    return Status::Error(ENOSPC, "device " + std::to_string(d) + "'s file data: " + st.message() +
                                     " (delete or rewrite some of its files first: they read "
                                     "EIO there, udaxctl health names them)");
  }

  // 2. The target: blank, or anything but a device of a udaxfs that someone may still
  //    want. Its first block says (read without locking or mapping it in place yet).
  {
    RegionOptions po;
    po.read_only = true;
    po.lock = false;
    po.emulate_poison = false;
    po.display_path = path;
    UDAX_ASSIGN_OR_RETURN(std::unique_ptr<Region> probe, Region::Open(target.open_path, po));
    if (probe->device_count() != 1 || !IsTarget(target, probe->fd())) {
      return Status::InvalidArgument(path + ": not one device or image");
    }
    for (uint32_t k = 0; k < sb.device_count; ++k) {
      if (k != d && region_->device_mapped(k) && IsTarget(target, region_->device(k)->fd())) {
        return Status::InvalidArgument(path + ": is device " + std::to_string(k) +
                                       " of this filesystem");
      }
    }
    if (probe->size() < length) {
      return Status::InvalidArgument(path + ": " + std::to_string(probe->size()) +
                                     " bytes, less than the " + std::to_string(length) +
                                     " device " + std::to_string(d) + " had");
    }
    DiskSuperblock held;
    if (probe->ReadSafe(0, &held, sizeof(held), nullptr).ok() &&
        std::memcmp(held.magic, kSuperMagic, sizeof(kSuperMagic)) == 0 &&
        SuperblockVerify(held, held.region_size).ok()) {
      const bool ours = std::memcmp(held.uuid, sb.uuid, sizeof(sb.uuid)) == 0;
      const bool member = IsMultiDevice(held) && held.this_device < held.device_count;
      if (!ours) {
        return Status::InvalidArgument(
            path + ": holds a udaxfs of its own, or a device of one: wipe its first block "
                   "(wipefs, dd) if it is really to be overwritten");
      }
      if (member && held.this_device == d &&
          std::memcmp(held.devices[d].uuid, sb.devices[d].uuid, sizeof(sb.devices[d].uuid)) == 0 &&
          held.generation >= sb.device_generation[d]) {
        return Status::InvalidArgument(path + ": is device " + std::to_string(d) +
                                       " itself, as it was lost: udaxctl add-device brings it "
                                       "back with its data");
      }
      for (uint32_t k = 0; member && k < sb.device_count; ++k) {
        if (k != d && std::memcmp(held.devices[held.this_device].uuid, sb.devices[k].uuid,
                                  sizeof(sb.devices[k].uuid)) == 0) {
          return Status::InvalidArgument(path + ": is device " + std::to_string(k) +
                                         " of this filesystem");
        }
      }
      // Else: this filesystem's, under a UUID the table does not name -- a replacement
      // that a crash cut short, or the device replaced before this one -- or an older
      // copy of device d itself, whose data is stale. Blank to us.
    }
  }

  // 3. In d's place (still lost: nothing reaches it but what is written below).
  UDAX_RETURN_IF_ERROR(region_->ReplaceDevice(d, target.open_path, path));
  Region* const dev = region_->device(d);
  if (!IsTarget(target, dev->fd())) {
    // Not the file checked (it cannot be: opened through the pinned descriptor): the
    // place stays lost.
    return Status::Error(EAGAIN, path + ": changed while it was opened; try again");
  }
  if (getrandom(next.devices[d].uuid, sizeof(next.devices[d].uuid), 0) !=
      static_cast<ssize_t>(sizeof(next.devices[d].uuid))) {
    return Status::FromErrno("getrandom");
  }
  next.lost_devices &= ~(1u << d);

  // 4. Every metadata copy the old device held, from its partner.
  UDAX_ASSIGN_OR_RETURN(out.metadata_aus, RewriteCopiesOnto(d, owners, dev));
  // 5. Its own superblock copy, naming it: before it serves, so that its image's state
  //    (poison lists, keyed by its UUID) is found (SpanRegion::RestoreDevice). A crash from
  //    here until device 0's copy is written (last) leaves a device the table does not
  //    name yet: a mount refuses it by name, and replace-device may take it again.
  DiskSuperblock own = DeviceCopy(next, d);
  UDAX_RETURN_IF_ERROR(dev->WriteSafe(0, &own, sizeof(own), true));
  // 6. The file data it held is known lost before any read can reach the device.
  for (const DiskLostRun& r : runs) region_->MarkDataLost({r.au * au, r.count * au});
  // 7. In service: reads and writes reach it, allocation may use it (what was freed on
  //    the old device while it was gone stays quarantined, as after add-device).
  UDAX_RETURN_IF_ERROR(region_->RestoreDevice(d));
  space_.RestoreDevice(d);
  // 8. Committed once device 0's superblock, written last, says so.
  UDAX_RETURN_IF_ERROR(WriteSuperblocks(next, "recording a replaced device"));
  return out;
}

Result<std::vector<std::string>> Filesystem::DegradedSummary() {
  std::vector<std::string> out;
  const DiskSuperblock sb = SuperblockSnapshot();
  for (uint32_t d : LostDevices()) {
    UDAX_ASSIGN_OR_RETURN(std::vector<OwnerRange> owners,
                          space_.Owners(sb.devices[d].start, sb.devices[d].length));
    std::set<uint64_t> files;
    uint64_t file_bytes = 0, meta_aus = 0;
    for (const OwnerRange& r : owners) {
      if (r.owner.kind == OwnerKind::kFileData) {
        files.insert(r.owner.ino);
        file_bytes += r.len;
      } else if (IsCopiedKind(r.owner.kind) || r.owner.kind == OwnerKind::kInodeTable) {
        meta_aus += r.len / sb.au_size;
      }
    }
    char uuid[33];
    for (int i = 0; i < 16; ++i) std::snprintf(uuid + 2 * i, 3, "%02x", sb.devices[d].uuid[i]);
    const std::string why =
        region_->device_stale(d) && !DeviceLost(sb, d)
            ? " is an older copy of itself (" + region_->device(d)->path() + ": a restored backup?)"
            : " is gone";
    out.push_back("device " + std::to_string(d) + " (uuid " + uuid + ")" + why + ": " +
                  std::to_string(files.size()) + " file(s) lose " + std::to_string(file_bytes) +
                  " bytes there; " + std::to_string(meta_aus) +
                  " metadata AU(s) have one copy left");
  }
  // File data a replaced device took with it, while a file still holds it.
  UDAX_ASSIGN_OR_RETURN(LostData lost, LostDataSummary());
  if (!lost.files.empty()) {
    out.push_back(std::to_string(lost.files.size()) + " file(s) lost " +
                  std::to_string(lost.bytes) +
                  " bytes with a replaced device: EIO there until rewritten or deleted");
  }
  return out;
}

Result<Filesystem::LostData> Filesystem::LostDataSummary() {
  const DiskSuperblock sb = SuperblockSnapshot();
  LostData out;
  for (uint32_t k = 0; k < sb.lost_run_count; ++k) {
    const DiskLostRun& run = sb.lost_runs[k];
    UDAX_ASSIGN_OR_RETURN(std::vector<OwnerRange> owners,
                          space_.Owners(run.au * sb.au_size, run.count * sb.au_size));
    for (const OwnerRange& r : owners) {
      if (r.owner.kind != OwnerKind::kFileData) continue;
      // A file deleted while open (or still known to the kernel at unmount) holds its
      // AUs until it is let go, or the next mount frees it: it lost nothing anyone sees.
      Result<struct stat> st = GetAttr(r.owner.ino);
      if (st.ok() && st->st_nlink == 0) continue;
      out.files.insert(r.owner.ino);
      out.bytes += r.len;
    }
  }
  return out;
}

std::vector<uint32_t> Filesystem::LostDevices() const {
  std::vector<uint32_t> out;
  for (size_t d = 0; d < region_->device_count(); ++d) {
    if (region_->device_lost(d)) out.push_back(static_cast<uint32_t>(d));
  }
  return out;
}

}  // namespace udax
