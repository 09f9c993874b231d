// kernel_badblocks.h -- the kernel's bad blocks of a real pmem target, in target offsets,
// and the Address Range Scrub that finds them, through libndctl and libdaxctl.
//
// The kernel keeps bad 512-byte sectors per nd region (relative to the region's start)
// and per pmem disk (relative to the disk's data start). libndctl is the library made to
// read that state: it finds the bus, region and namespace of a device
// (ndctl_bus/region/namespace_foreach, matched by device number as PMDK's libpmem2 does),
// gives the region's and device's physical start (ndctl_region_get_resource,
// daxctl_dev_get_resource), lists the badblocks (ndctl_region_badblock_foreach,
// ndctl_namespace_badblock_foreach) and runs a scrub (ndctl_bus_start_scrub,
// ndctl_bus_poll_scrub_completion). This file turns that into the target's own offsets:
//   * devdax /dev/daxX.Y: the region's list; the device starts `target_start` bytes into
//     the physical address space (past the namespace's info block), the list at the
//     region's start;
//   * a pmem disk /dev/pmemN (or a partition of one): the namespace's (disk's) list,
//     shifted by the partition start;
//   * a file on a DAX filesystem on a pmem disk: libpmem2's badblock iterator (libndctl
//     again, plus the file's extents).
// The kernel tells a changed list only by sysfs_notify on the list's sysfs attribute (no
// uevent, no libndctl call), so `badblocks_file` names that attribute for poll(POLLPRI).
//
// Thread-safety: plain functions; safe from any thread (each call has its own libndctl
// context).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "fs/base/status.h"
#include "fs/format/badblock_list.h"

namespace udax {

enum class KernelBadblocksKind { kDevdax, kPmemDisk, kFsdaxFile };

struct KernelBadblocks {
  KernelBadblocksKind kind = KernelBadblocksKind::kDevdax;
  std::string target;          // as given
  std::string bus;             // libndctl's names: "ndbus0"
  std::string bus_provider;    // "ACPI.NFIT", "nfit_test.0", "e820"
  std::string region;          // "region0"
  std::string block_device;    // "pmem0" (pmem disks and files on them)
  bool can_scrub = false;      // the bus runs Address Range Scrubs (an NFIT bus)
  std::string badblocks_file;  // the sysfs attribute whose change the kernel notifies
  // The sysfs devpath ("/devices/...") of the target's device (the dax device, or the
  // pmem disk under a file): what the uevent listener watches, with its parents.
  std::string devpath;
  // Byte addresses in one space (physical for devdax, the disk's for pmem disks):
  // sector 0 of the kernel's list, the target's offset 0, and the target's size.
  uint64_t file_base = 0;
  uint64_t target_start = 0;
  uint64_t target_size = 0;
};

// Finds the nd region or pmem disk of a devdax device, a pmem disk (or partition), or the
// pmem disk under a regular file. Errors: ENOENT no target; EOPNOTSUPP when the target is
// not on an nd (pmem) device -- an emulated image, a dax device from kmem/hmem, a file on
// a non-pmem disk -- so its bad blocks are not the kernel's to report; EACCES for a devdax
// device when the physical addresses are hidden (not root); errors of libndctl.
Result<KernelBadblocks> LocateKernelBadblocks(const std::string& target);

// The kernel's sectors (relative to file_base) as target-relative sectors: shifted by
// file_base - target_start, rounded outward to whole sectors, clipped to the target;
// sectors of other namespaces in the same region are dropped.
BadblockList TranslateKernelBadblocks(const BadblockList& raw, const KernelBadblocks& where);

// Reads the kernel's list now and translates it (for a file on fsdax: libpmem2's
// iterator over the file). Errors name the target.
Result<BadblockList> ReadKernelBadblocks(const KernelBadblocks& where);

// An Address Range Scrub of the target's bus: starts one (or joins the one running) and
// waits for it to end, at most `timeout`, checking `stop` (may be null) every second. The
// kernel adds what it finds to the badblocks lists, and notifies their pollers. Errors:
// EOPNOTSUPP the bus cannot scrub (not NFIT, or its firmware has no ARS); ETIMEDOUT;
// ECANCELED (stop); EACCES/EPERM without root; others from libndctl.
struct ScrubOutcome {
  unsigned scrubs_before = 0;  // the bus's completed scrub count before and after
  unsigned scrubs_after = 0;
  double seconds = 0;
};
Result<ScrubOutcome> ScrubKernelBadblocks(const KernelBadblocks& where,
                                          std::chrono::seconds timeout,
                                          const std::atomic<bool>* stop = nullptr);

// What a media pass learns from the kernel: a scrub where the bus runs one, then the
// kernel's list. `scrub_error` says why no scrub ran or why it failed (the list is read
// all the same: errors found before still count); `list_error` why the list did not read.
struct KernelScrubReport {
  std::string bus;            // "ndbus0 (nfit_test.0)"
  bool can_scrub = false;     // the bus has ARS at all
  bool scrubbed = false;      // a scrub ran to its end
  ScrubOutcome outcome;
  std::string scrub_error;
  BadblockList list;          // target sectors
  std::string list_error;
};
KernelScrubReport ScrubAndReadKernelBadblocks(const KernelBadblocks& where,
                                              std::chrono::seconds timeout,
                                              const std::atomic<bool>* stop = nullptr);

}  // namespace udax
