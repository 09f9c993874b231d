// kernel_badblocks.cc -- locate a target's nd region through libndctl, read its badblocks,
// translate them, and scrub its bus.
#include "notify/kernel_badblocks.h"

#include <daxctl/libdaxctl.h>
#include <fcntl.h>
#include <libpmem2.h>
#include <ndctl/libndctl.h>
#include <linux/ndctl.h>  // ND_CMD_ARS_* (ndctl/ndctl.h needs headers Debian does not ship)
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <charconv>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>

#include "fs/base/file_reader.h"
#include "fs/base/unique_fd.h"
#include "fs/region/pmem2_util.h"

namespace udax {
namespace {

namespace fs = std::filesystem;

struct NdctlUnref {
  void operator()(ndctl_ctx* c) const { ndctl_unref(c); }
};
using NdctlCtx = std::unique_ptr<ndctl_ctx, NdctlUnref>;

Result<NdctlCtx> OpenNdctl(const std::string& target) {
  ndctl_ctx* raw = nullptr;
  const int rc = ndctl_new(&raw);
  if (rc < 0) return Status::Error(-rc, target + ": libndctl: ndctl_new failed");
  return NdctlCtx(raw);
}

Status NotNd(const std::string& target, const char* why) {
  return Status::Error(EOPNOTSUPP, target + ": " + why + ": no kernel badblocks to read");
}

// Where sysfs keeps the device of a device number: its canonical directory, or "".
std::string SysfsDeviceDir(const char* kind, dev_t dev) {
  const std::string link = std::string("/sys/dev/") + kind + "/" + std::to_string(major(dev)) +
                           ":" + std::to_string(minor(dev));
  std::error_code ec;
  const fs::path p = fs::canonical(link, ec);
  return ec ? std::string() : p.string();
}

std::string DevpathOf(const std::string& device_dir) {
  constexpr std::string_view kSys = "/sys";
  return device_dir.compare(0, kSys.size(), kSys) == 0 ? device_dir.substr(kSys.size()) : device_dir;
}

// A partition's start in 512-byte sectors (the block layer's attribute: partitions are no
// NVDIMM state, and libndctl knows nothing of them).
Result<uint64_t> PartitionStart(const std::string& part_dir) {
  const std::string path = part_dir + "/start";
  UDAX_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return Status::InvalidArgument(path + ": expected a number, got \"" + text + "\"");
  }
  return v;
}

// The block device a namespace shows, whatever its mode, or "".
std::string NamespaceBlockDevice(ndctl_namespace* ndns) {
  const char* name = nullptr;
  if (ndctl_btt* btt = ndctl_namespace_get_btt(ndns)) {
    name = ndctl_btt_get_block_device(btt);
  } else if (ndctl_pfn* pfn = ndctl_namespace_get_pfn(ndns)) {
    name = ndctl_pfn_get_block_device(pfn);
  } else {
    name = ndctl_namespace_get_block_device(ndns);
  }
  return name != nullptr ? name : "";
}

void NameBusAndRegion(ndctl_region* region, KernelBadblocks* kb) {
  ndctl_bus* bus = ndctl_region_get_bus(region);
  const char* bus_name = ndctl_bus_get_devname(bus);
  const char* provider = ndctl_bus_get_provider(bus);
  const char* region_name = ndctl_region_get_devname(region);
  kb->bus = bus_name != nullptr ? bus_name : "";
  kb->bus_provider = provider != nullptr ? provider : "";
  kb->region = region_name != nullptr ? region_name : "";
  kb->can_scrub = ndctl_bus_has_nfit(bus) && ndctl_bus_is_cmd_supported(bus, ND_CMD_ARS_START) &&
                  ndctl_bus_is_cmd_supported(bus, ND_CMD_ARS_STATUS);
}

// The first `fn(region, namespace)` that finds something, over every namespace of every
// region of every bus.
template <typename Fn>
std::optional<KernelBadblocks> FindNamespace(ndctl_ctx* ctx, Fn fn) {
  ndctl_bus* bus;
  ndctl_region* region;
  ndctl_namespace* ndns;
  ndctl_bus_foreach(ctx, bus) {
    ndctl_region_foreach(bus, region) {
      ndctl_namespace_foreach(region, ndns) {
        std::optional<KernelBadblocks> kb = fn(region, ndns);
        if (kb) return kb;
      }
    }
  }
  return std::nullopt;
}

// The devdax device `rdev`: its region, physical start and size.
std::optional<KernelBadblocks> FindDevdax(ndctl_ctx* ctx, dev_t rdev) {
  return FindNamespace(ctx, [rdev](ndctl_region* region,
                                   ndctl_namespace* ndns) -> std::optional<KernelBadblocks> {
    ndctl_dax* dax = ndctl_namespace_get_dax(ndns);
    daxctl_region* dregion = dax != nullptr ? ndctl_dax_get_daxctl_region(dax) : nullptr;
    if (dregion == nullptr) return std::nullopt;
    daxctl_dev* dev;
    daxctl_dev_foreach(dregion, dev) {
      if (static_cast<unsigned>(daxctl_dev_get_major(dev)) != major(rdev) ||
          static_cast<unsigned>(daxctl_dev_get_minor(dev)) != minor(rdev)) {
        continue;
      }
      KernelBadblocks kb;
      kb.kind = KernelBadblocksKind::kDevdax;
      NameBusAndRegion(region, &kb);
      kb.badblocks_file = "/sys/bus/nd/devices/" + kb.region + "/badblocks";
      kb.file_base = ndctl_region_get_resource(region);
      kb.target_start = daxctl_dev_get_resource(dev);
      kb.target_size = daxctl_dev_get_size(dev);
      return kb;  // the physical starts are checked by the caller
    }
    return std::nullopt;
  });
}

// The namespace whose block device is `disk` ("pmem0").
std::optional<KernelBadblocks> FindPmemDisk(ndctl_ctx* ctx, const std::string& disk) {
  return FindNamespace(ctx, [&disk](ndctl_region* region,
                                    ndctl_namespace* ndns) -> std::optional<KernelBadblocks> {
    if (ndctl_namespace_get_dax(ndns) != nullptr || NamespaceBlockDevice(ndns) != disk) {
      return std::nullopt;
    }
    KernelBadblocks kb;
    kb.kind = KernelBadblocksKind::kPmemDisk;
    NameBusAndRegion(region, &kb);
    kb.block_device = disk;
    kb.badblocks_file = "/sys/block/" + disk + "/badblocks";
    return kb;
  });
}

// Runs `fn` on the libndctl namespace that `where` was located on, or fails naming it.
template <typename Fn>
Status WithNamespaceOf(const KernelBadblocks& where, Fn fn) {
  UDAX_ASSIGN_OR_RETURN(NdctlCtx ctx, OpenNdctl(where.target));
  ndctl_bus* bus;
  ndctl_region* region;
  ndctl_namespace* ndns;
  ndctl_bus_foreach(ctx.get(), bus) {
    const char* bus_name = ndctl_bus_get_devname(bus);
    if (bus_name == nullptr || where.bus != bus_name) continue;
    ndctl_region_foreach(bus, region) {
      const char* region_name = ndctl_region_get_devname(region);
      if (region_name == nullptr || where.region != region_name) continue;
      if (where.kind == KernelBadblocksKind::kDevdax) return fn(bus, region, nullptr);
      ndctl_namespace_foreach(region, ndns) {
        if (NamespaceBlockDevice(ndns) == where.block_device) return fn(bus, region, ndns);
      }
    }
  }
  return Status::NotFound(where.target + ": " + where.bus + "/" + where.region +
                          " is gone from libndctl's view");
}

}  // namespace

Result<KernelBadblocks> LocateKernelBadblocks(const std::string& target) {
  struct stat st;
  if (stat(target.c_str(), &st) != 0) return Status::FromErrno(target);
  if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
    return NotNd(target, "not a device or a regular file");
  }
  UDAX_ASSIGN_OR_RETURN(NdctlCtx ctx, OpenNdctl(target));
  if (S_ISCHR(st.st_mode)) {
    std::optional<KernelBadblocks> kb = FindDevdax(ctx.get(), st.st_rdev);
    if (!kb) return NotNd(target, "not a dax device on an nd region");
    // The kernel shows physical addresses to root only: libndctl then says ULLONG_MAX
    // (the region) or 0 (the dax device, from /proc/iomem). The list itself stays
    // readable, but without both starts its sectors cannot be placed in the device, and
    // a wrong place would blame healthy blocks.
    if (kb->file_base == ULLONG_MAX || kb->target_start == 0 || kb->target_start == ULLONG_MAX ||
        kb->target_start < kb->file_base) {
      return Status::Error(EACCES, target + ": the physical start of " + kb->region +
                                       " or of the device is not readable (needs root): "
                                       "the kernel's badblocks cannot be placed");
    }
    kb->target = target;
    kb->devpath = DevpathOf(SysfsDeviceDir("char", st.st_rdev));
    return *kb;
  }
  // A block device, or the disk a file lives on; a partition names its disk.
  const dev_t dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
  const std::string dir = SysfsDeviceDir("block", dev);
  if (dir.empty()) {
    return NotNd(target, S_ISREG(st.st_mode) ? "on no block device (an emulated image?)"
                                             : "a device sysfs does not know");
  }
  std::string disk_dir = dir;
  uint64_t part_start = 0;
  std::error_code ec;
  if (fs::exists(dir + "/partition", ec)) {
    disk_dir = fs::path(dir).parent_path().string();
    UDAX_ASSIGN_OR_RETURN(part_start, PartitionStart(dir));
  }
  std::optional<KernelBadblocks> kb = FindPmemDisk(ctx.get(), fs::path(disk_dir).filename().string());
  if (!kb) {
    return NotNd(target, S_ISREG(st.st_mode) ? "not on a pmem disk (an emulated image?)"
                                             : "not a pmem disk");
  }
  kb->target = target;
  kb->devpath = DevpathOf(disk_dir);
  if (S_ISREG(st.st_mode)) {
    kb->kind = KernelBadblocksKind::kFsdaxFile;
    kb->target_size = static_cast<uint64_t>(st.st_size);
    return *kb;
  }
  kb->target_start = part_start * kBadblockSectorSize;
  const int fd = open(target.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(target);
  UniqueFd closer(fd);
  const off_t size = lseek(fd, 0, SEEK_END);
  if (size < 0) return Status::FromErrno(target + ": size");
  kb->target_size = static_cast<uint64_t>(size);
  return *kb;
}

BadblockList TranslateKernelBadblocks(const BadblockList& raw, const KernelBadblocks& where) {
  BadblockList out;
  const uint64_t size = where.target_size;
  for (const BadblockRange& r : raw.ranges()) {
    // Bytes of the common address space, then relative to the target, clipped to it.
    const uint64_t start = where.file_base + r.byte_offset();
    const uint64_t end = start + r.byte_length();
    if (end <= where.target_start) continue;
    const uint64_t rel_start = start > where.target_start ? start - where.target_start : 0;
    const uint64_t rel_end = std::min(end - where.target_start, size);
    if (rel_start >= rel_end) continue;
    const uint64_t first = rel_start / kBadblockSectorSize;
    const uint64_t last = (rel_end + kBadblockSectorSize - 1) / kBadblockSectorSize;
    out.Add(first, last - first);
  }
  return out;
}

namespace {

struct BadblockContextDeleter {
  void operator()(pmem2_badblock_context* c) const { pmem2_badblock_context_delete(&c); }
};

// libpmem2 knows how a file's extents map onto its pmem disk (FIEMAP) and translates the
// disk's bad blocks (libndctl's list) into file offsets.
Result<BadblockList> ReadFileBadblocks(const KernelBadblocks& where) {
  UniqueFd fd(open(where.target.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(where.target);
  pmem2_source* raw_src = nullptr;
  int ret = pmem2_source_from_fd(&raw_src, fd.get());
  if (ret != 0) return Pmem2Status(ret, where.target, "pmem2_source_from_fd");
  Pmem2SourcePtr src(raw_src);
  pmem2_badblock_context* raw_ctx = nullptr;
  ret = pmem2_badblock_context_new(&raw_ctx, src.get());
  if (ret != 0) return Pmem2Status(ret, where.target, "pmem2_badblock_context_new");
  std::unique_ptr<pmem2_badblock_context, BadblockContextDeleter> ctx(raw_ctx);
  BadblockList out;
  for (;;) {
    pmem2_badblock bb{};
    ret = pmem2_badblock_next(ctx.get(), &bb);
    if (ret == PMEM2_E_NO_BAD_BLOCK_FOUND) break;
    if (ret != 0) return Pmem2Status(ret, where.target, "pmem2_badblock_next");
    if (bb.length == 0) continue;
    const uint64_t first = bb.offset / kBadblockSectorSize;
    const uint64_t last = (bb.offset + bb.length + kBadblockSectorSize - 1) / kBadblockSectorSize;
    out.Add(first, last - first);
  }
  return out;
}

}  // namespace

Result<BadblockList> ReadKernelBadblocks(const KernelBadblocks& where) {
  if (where.kind == KernelBadblocksKind::kFsdaxFile) return ReadFileBadblocks(where);
  BadblockList raw;
  UDAX_RETURN_IF_ERROR(WithNamespaceOf(where, [&](ndctl_bus*, ndctl_region* region,
                                                  ndctl_namespace* ndns) -> Status {
    badblock* bb;
    if (ndns == nullptr) {
      ndctl_region_badblock_foreach(region, bb) raw.Add(bb->offset, bb->len);
    } else {
      ndctl_namespace_badblock_foreach(ndns, bb) raw.Add(bb->offset, bb->len);
    }
    return Status::Ok();
  }));
  return TranslateKernelBadblocks(raw, where);
}

Result<ScrubOutcome> ScrubKernelBadblocks(const KernelBadblocks& where,
                                          std::chrono::seconds timeout,
                                          const std::atomic<bool>* stop) {
  if (!where.can_scrub) {
    return Status::Error(EOPNOTSUPP, where.target + ": bus " + where.bus + " (" +
                                         where.bus_provider + ") runs no Address Range Scrub");
  }
  ScrubOutcome out;
  const auto t0 = std::chrono::steady_clock::now();
  UDAX_RETURN_IF_ERROR(WithNamespaceOf(where, [&](ndctl_bus* bus, ndctl_region*,
                                                  ndctl_namespace*) -> Status {
    if (stop != nullptr && stop->load()) {
      return Status::Error(ECANCELED, where.target + ": no scrub started (stopping)");
    }
    out.scrubs_before = ndctl_bus_get_scrub_count(bus);
    // EBUSY: a scrub is already running (the kernel's own at load, another tool's); its
    // end serves as well.
    const int rc = ndctl_bus_start_scrub(bus);
    if (rc < 0 && rc != -EBUSY) {
      return Status::Error(-rc, where.target + ": ndctl_bus_start_scrub on " + where.bus +
                                    (rc == -EACCES || rc == -EPERM ? " (needs root)" : ""));
    }
    // A second or two at a time (libndctl polls once more after its timeout), so that a
    // stop (an unmount) never waits for a whole scrub, which takes minutes on a large
    // device.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const int wrc = ndctl_bus_poll_scrub_completion(bus, 1, 1);
      if (wrc == 0) break;
      if (wrc != -ETIMEDOUT) {
        return Status::Error(-wrc, where.target + ": waiting for the scrub of " + where.bus);
      }
      if (stop != nullptr && stop->load()) {
        return Status::Error(ECANCELED, where.target + ": scrub of " + where.bus + " left running");
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return Status::Error(ETIMEDOUT, where.target + ": the scrub of " + where.bus + " took over " +
                                            std::to_string(timeout.count()) + " s");
      }
    }
    out.scrubs_after = ndctl_bus_get_scrub_count(bus);
    return Status::Ok();
  }));
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

KernelScrubReport ScrubAndReadKernelBadblocks(const KernelBadblocks& where,
                                              std::chrono::seconds timeout,
                                              const std::atomic<bool>* stop) {
  KernelScrubReport r;
  r.bus = where.bus + " (" + where.bus_provider + ")";
  r.can_scrub = where.can_scrub;
  Result<ScrubOutcome> scrub = ScrubKernelBadblocks(where, timeout, stop);
  if (scrub.ok()) {
    r.scrubbed = true;
    r.outcome = *scrub;
  } else {
    r.scrub_error = scrub.status().message();
  }
  Result<BadblockList> list = ReadKernelBadblocks(where);
  if (list.ok()) {
    r.list = std::move(list).value();
  } else {
    r.list_error = list.status().message();
  }
  return r;
}

}  // namespace udax
