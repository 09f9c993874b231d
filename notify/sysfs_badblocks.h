// sysfs_badblocks.h -- the kernel's bad blocks of a real pmem target, in region offsets.
//
// The kernel keeps bad 512-byte sectors per nd region (/sys/bus/nd/devices/regionN/
// badblocks, relative to the region's start) and per pmem disk (/sys/block/pmemN/
// badblocks, relative to the disk's data start), and wakes poll(POLLPRI) on those files
// when they change (sysfs_notify after a scrub or a cleared error; there is no uevent).
// This file finds the right file for a target and translates its sectors into the
// target's own offsets:
//   * devdax /dev/daxX.Y: the region's list; the device starts `resource` bytes into
//     the physical address space (its data offset past the namespace's info block
//     included), the region at the region's `resource`;
//   * a pmem disk /dev/pmemN (or a partition of one): the disk's list, shifted by the
//     partition start;
//   * a file on a DAX filesystem on a pmem disk: the disk's list is the one to poll, and
//     the file's offsets come from libpmem2's badblock iterator (it walks the extents).
// Everything takes a sysfs root so the tests can run on a recorded tree.
//
// Thread-safety: plain functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "fs/base/status.h"
#include "fs/format/badblock_list.h"

namespace udax {

enum class KernelBadblocksKind { kDevdax, kPmemDisk, kFsdaxFile };

struct KernelBadblocks {
  KernelBadblocksKind kind = KernelBadblocksKind::kDevdax;
  std::string target;          // as given
  std::string badblocks_file;  // the sysfs attribute to read and poll
  // The sysfs devpath ("/devices/...") of the target's device (the dax device, or the
  // pmem disk under a file): what the uevent listener watches, with its parents.
  std::string devpath;
  // Byte addresses in one space (physical for devdax, the disk's for pmem disks):
  // sector 0 of badblocks_file, the target's offset 0, and the target's size.
  uint64_t file_base = 0;
  uint64_t target_start = 0;
  uint64_t target_size = 0;
};

// Finds the badblocks file of a devdax device, a pmem disk (or partition), or the pmem
// disk under a regular file. Errors: ENOENT no target; EOPNOTSUPP when the target is not
// on an nd (pmem) device -- an emulated image, a dax device from kmem/hmem, a file on a
// non-pmem disk -- so its bad blocks are not the kernel's to report; EIO/EINVAL for an
// unreadable or unexpected sysfs tree (message names the file).
Result<KernelBadblocks> LocateKernelBadblocks(const std::string& target,
                                              const std::string& sysfs_root = "/sys");
// The same from the sysfs directory of the device (/sys/devices/.../dax0.0 or
// .../block/pmem0): what LocateKernelBadblocks does once it has the device number.
Result<KernelBadblocks> LocateFromSysfsDevice(const std::string& device_dir,
                                              const std::string& sysfs_root,
                                              const std::string& target);

// The raw sectors of badblocks_file as target-relative sectors: shifted by
// file_base - target_start, rounded outward to whole sectors, clipped to the target;
// sectors of other namespaces in the same region are dropped.
BadblockList TranslateKernelBadblocks(const BadblockList& raw, const KernelBadblocks& where);

// Reads badblocks_file now and translates it (for a file on fsdax: libpmem2's iterator
// over the file). Errors name the file.
Result<BadblockList> ReadKernelBadblocks(const KernelBadblocks& where);

}  // namespace udax
