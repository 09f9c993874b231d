// sysfs_badblocks.cc -- locate a target's kernel badblocks file and translate its sectors.
#include "notify/sysfs_badblocks.h"

#include <fcntl.h>
#include <libpmem2.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <memory>
#include <string_view>

#include "fs/base/file_reader.h"
#include "fs/region/pmem2_util.h"
#include "fs/base/unique_fd.h"

namespace udax {
namespace {

namespace fs = std::filesystem;

// A sysfs number: "0x..." (resource) or decimal (size, start), one line.
Result<uint64_t> ReadSysfsNumber(const std::string& path) {
  UDAX_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  int base = 10;
  const char* first = text.data();
  if (text.rfind("0x", 0) == 0 || text.rfind("0X", 0) == 0) {
    base = 16;
    first += 2;
  }
  const char* last = text.data() + text.size();
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(first, last, v, base);
  if (first == last || ec != std::errc() || ptr != last) {
    return Status::InvalidArgument(path + ": expected a number, got \"" + text + "\"");
  }
  return v;
}

bool Exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

std::string Canonical(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::canonical(p, ec);
  return ec ? std::string() : c.string();
}

// The last component of where `link` points ("dax", "block", "nd").
std::string LinkBase(const std::string& link) {
  std::error_code ec;
  fs::path target = fs::read_symlink(link, ec);
  return ec ? std::string() : target.filename().string();
}

// "regionN" with a badblocks attribute: an nd region.
bool IsRegionDir(const fs::path& dir) {
  const std::string name = dir.filename().string();
  constexpr std::string_view kPrefix = "region";
  if (name.size() <= kPrefix.size() || name.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  for (size_t i = kPrefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  return Exists((dir / "badblocks").string());
}

// The nd region above a device, or "" when it is not on an nd bus.
std::string RegionAbove(const std::string& device_dir, const std::string& root) {
  for (fs::path p = fs::path(device_dir).parent_path(); p.string().size() > root.size();
       p = p.parent_path()) {
    if (IsRegionDir(p)) return p.string();
    if (p == p.parent_path()) break;
  }
  return "";
}

std::string DevpathOf(const std::string& device_dir, const std::string& root) {
  if (device_dir.compare(0, root.size(), root) == 0) return device_dir.substr(root.size());
  return device_dir;
}

Status NotNd(const std::string& target, const char* why) {
  return Status::Error(EOPNOTSUPP, target + ": " + why + ": no kernel badblocks to read");
}

}  // namespace

Result<KernelBadblocks> LocateFromSysfsDevice(const std::string& device_dir_in,
                                              const std::string& sysfs_root,
                                              const std::string& target) {
  const std::string root = Canonical(sysfs_root);
  const std::string device_dir = Canonical(device_dir_in);
  if (root.empty() || device_dir.empty()) {
    return Status::NotFound(target + ": no sysfs device at " + device_dir_in);
  }
  KernelBadblocks kb;
  kb.target = target;
  kb.devpath = DevpathOf(device_dir, root);
  const std::string subsystem = LinkBase(device_dir + "/subsystem");
  if (subsystem == "dax") {
    const std::string region = RegionAbove(device_dir, root);
    if (region.empty()) return NotNd(target, "a dax device that is not on an nd region");
    kb.kind = KernelBadblocksKind::kDevdax;
    kb.badblocks_file = region + "/badblocks";
    UDAX_ASSIGN_OR_RETURN(kb.file_base, ReadSysfsNumber(region + "/resource"));
    // Since Linux 5.10 the dax device tells its own start; before, its nd_dax parent
    // does (the namespace start plus the info-block data offset), which is the same.
    std::string start_file = device_dir + "/resource";
    if (!Exists(start_file)) start_file = fs::path(device_dir).parent_path().string() + "/resource";
    UDAX_ASSIGN_OR_RETURN(kb.target_start, ReadSysfsNumber(start_file));
    UDAX_ASSIGN_OR_RETURN(kb.target_size, ReadSysfsNumber(device_dir + "/size"));
    return kb;
  }
  if (subsystem == "block") {
    std::string disk = device_dir;
    if (Exists(device_dir + "/partition")) {
      disk = fs::path(device_dir).parent_path().string();
      UDAX_ASSIGN_OR_RETURN(uint64_t start, ReadSysfsNumber(device_dir + "/start"));
      kb.target_start = start * kBadblockSectorSize;
    }
    // Only disks with a badblocks list have the attribute (pmem, btt); the nd region
    // above tells it is pmem and not, say, an md array.
    if (!Exists(disk + "/badblocks") || RegionAbove(disk, root).empty()) {
      return NotNd(target, "not on a pmem disk");
    }
    kb.kind = KernelBadblocksKind::kPmemDisk;
    kb.badblocks_file = disk + "/badblocks";
    kb.file_base = 0;
    UDAX_ASSIGN_OR_RETURN(uint64_t sectors, ReadSysfsNumber(device_dir + "/size"));
    kb.target_size = sectors * kBadblockSectorSize;
    return kb;
  }
  return NotNd(target, "neither a dax device nor a block device");
}

Result<KernelBadblocks> LocateKernelBadblocks(const std::string& target,
                                              const std::string& sysfs_root) {
  struct stat st;
  if (stat(target.c_str(), &st) != 0) return Status::FromErrno(target);
  const char* kind = nullptr;
  dev_t dev = 0;
  if (S_ISCHR(st.st_mode)) {
    kind = "char";
    dev = st.st_rdev;
  } else if (S_ISBLK(st.st_mode)) {
    kind = "block";
    dev = st.st_rdev;
  } else if (S_ISREG(st.st_mode)) {
    kind = "block";
    dev = st.st_dev;  // the disk the file lives on
  } else {
    return NotNd(target, "not a device or a regular file");
  }
  const std::string dir = sysfs_root + "/dev/" + kind + "/" + std::to_string(major(dev)) + ":" +
                          std::to_string(minor(dev));
  if (!Exists(dir)) {
    return NotNd(target, S_ISREG(st.st_mode) ? "on no block device (an emulated image?)"
                                             : "a device sysfs does not know");
  }
  Result<KernelBadblocks> kb = LocateFromSysfsDevice(dir, sysfs_root, target);
  if (S_ISREG(st.st_mode)) {
    if (!kb.ok()) {
      if (kb.status().code() == EOPNOTSUPP) return NotNd(target, "not on a pmem disk (an emulated image?)");
      return kb.status();
    }
    kb->kind = KernelBadblocksKind::kFsdaxFile;
    kb->target_start = 0;
    kb->target_size = static_cast<uint64_t>(st.st_size);
  }
  return kb;
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
// disk's bad blocks into file offsets.
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
  UDAX_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(where.badblocks_file));
  UDAX_ASSIGN_OR_RETURN(BadblockList raw, BadblockList::Parse(text, where.badblocks_file));
  return TranslateKernelBadblocks(raw, where);
}

}  // namespace udax
