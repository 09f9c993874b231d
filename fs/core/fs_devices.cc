// fs_devices.cc -- a multi-device filesystem losing one of its devices and going on.
#include <cerrno>
#include <cstdio>
#include <set>

#include "fs/core/filesystem.h"

namespace udax {

Result<std::vector<OwnerRange>> Filesystem::LoseDevice(uint32_t d) {
  const DiskSuperblock sb = SuperblockSnapshot();
  if (!IsMultiDevice(sb)) {
    return Status::InvalidArgument("one device: losing it ends the filesystem");
  }
  if (d >= sb.device_count) {
    return Status::InvalidArgument("no device " + std::to_string(d) + " (the filesystem has " +
                                   std::to_string(sb.device_count) + ")");
  }
  if (d == 0) {
    return Status::InvalidArgument(
        "device 0 holds the journal, the bitmaps and the reverse map, which have no copy on "
        "another device: losing it ends the filesystem");
  }
  if (region_->device_lost(d)) {
    return Status::Error(EALREADY, "device " + std::to_string(d) + " is lost already");
  }
  {
    MetaLock lock(this);
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

Status Filesystem::RecordLostDevices(uint32_t more) {
  uint32_t lost = sb_.lost_devices | more;
  for (uint32_t d = 1; d < DeviceCount(sb_); ++d) {
    if (region_->device_lost(d)) lost |= 1u << d;
  }
  if (!IsMultiDevice(sb_) || lost == sb_.lost_devices || options_.read_only || shutdown_) {
    return Status::Ok();
  }
  DiskSuperblock next = sb_;
  next.lost_devices = lost;
  SuperblockSeal(&next);
  // Never onto a lost device (its pages may be gone: the replica, on the last device, too).
  auto write = [&](uint64_t at, const DiskSuperblock& copy) {
    if (DeviceLost(next, DeviceOfOffset(next, at))) return Status::Ok();
    return region_->WriteSafe(at, &copy, sizeof(copy), true);
  };
  Status st = write(0, next);
  if (st.ok()) st = write(next.replica_off, next);
  for (uint32_t k = 1; st.ok() && k < next.device_count; ++k) {
    st = write(next.devices[k].start, DeviceCopy(next, k));
  }
  if (!st.ok()) {
    ShutdownLocked("superblock write failed while recording a lost device: " + st.message());
    return Status::IoError(st.message());
  }
  sb_ = next;
  return Status::Ok();
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
    out.push_back("device " + std::to_string(d) + " (uuid " + uuid + ") is gone: " +
                  std::to_string(files.size()) + " file(s) lose " + std::to_string(file_bytes) +
                  " bytes there; " + std::to_string(meta_aus) +
                  " metadata AU(s) have one copy left");
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
