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
  // Who loses what, while nothing has changed yet: the reverse map's records live on
  // device 0, so the question is answered whatever state device d is in.
  UDAX_ASSIGN_OR_RETURN(std::vector<OwnerRange> owners,
                        space_.Owners(sb.devices[d].start, sb.devices[d].length));
  MetaLock lock(this);
  // Said on media first, in every superblock on a device that remains: a mount from now
  // on treats the device as gone even if it comes back, for its metadata copies miss
  // every change from here on (a resync, to come, brings it back).
  if (!options_.read_only && !shutdown_) {
    DiskSuperblock next = sb_;
    next.lost_devices |= 1u << d;
    SuperblockSeal(&next);
    Status st = region_->WriteSafe(0, &next, sizeof(next), true);
    if (st.ok()) st = region_->WriteSafe(next.replica_off, &next, sizeof(next), true);
    for (uint32_t k = 1; st.ok() && k < next.device_count; ++k) {
      if (DeviceLost(next, k) || region_->device_lost(k)) continue;
      const DiskSuperblock copy = DeviceCopy(next, k);
      st = region_->WriteSafe(next.devices[k].start, &copy, sizeof(copy), true);
    }
    if (!st.ok()) {
      ShutdownLocked("superblock write failed while losing device " + std::to_string(d) + ": " +
                     st.message());
      return Status::IoError(st.message());
    }
    sb_ = next;
  }
  // Then accesses stop (a pulled device's pages may be gone), then allocation.
  UDAX_RETURN_IF_ERROR(region_->LoseDevice(d));
  space_.RetireDevice(d);
  return owners;
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
