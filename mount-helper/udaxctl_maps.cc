// udaxctl_maps.cc -- `udaxctl bmap FILE` and `udaxctl rmap TARGET_OR_MOUNT PHYS[+LEN]`.
//
// On a mount both questions go to the daemon through the udaxfs ioctls (FUSE has no
// FIEMAP); `rmap` on an unmounted target opens it read-only and reads the map itself.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "fs/core/filesystem.h"
#include "fs/region/region_span.h"
#include "fs/base/unique_fd.h"
#include "include/udaxfs/ioctl.h"
#include "mount-helper/size_parse.h"
#include "mount-helper/udaxctl.h"
#include "notify/owner_json.h"

namespace udax {
namespace {

Result<std::vector<BmapExtent>> BmapViaIoctl(const std::string& path, uint64_t* au_size) {
  const UniqueFd fd(open(path.c_str(), O_RDONLY));
  if (!fd.valid()) return Status::FromErrno(path);
  std::vector<BmapExtent> out;
  auto q = std::make_unique<udax_ioc_bmap>();
  do {
    q->start = out.size();
    if (ioctl(fd.get(), UDAX_IOC_BMAP, q.get()) != 0) {
      const int err = errno;
      return Status::FromErrno(err, path + (err == ENOTTY ? " (not on a udaxfs mount)" : ""));
    }
    for (uint32_t i = 0; i < q->count; ++i) {
      out.push_back({q->ext[i].file_offset, q->ext[i].phys_offset, q->ext[i].length});
    }
    *au_size = q->au_size;
  } while (q->count > 0 && out.size() < q->total);
  return out;
}

}  // namespace

Result<std::vector<OwnerRange>> RmapViaIoctl(const std::string& dir, uint64_t phys,
                                             uint64_t len) {
  const UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY));
  if (!fd.valid()) return Status::FromErrno(dir);
  std::vector<OwnerRange> out;
  auto q = std::make_unique<udax_ioc_rmap>();
  do {
    q->phys = phys;
    q->length = len;
    q->start = out.size();
    if (ioctl(fd.get(), UDAX_IOC_RMAP, q.get()) != 0) {
      const int err = errno;
      return Status::FromErrno(err, dir + (err == ENOTTY ? " (not a udaxfs mount)" : ""));
    }
    for (uint32_t i = 0; i < q->count; ++i) {
      const udax_rmap_owner& o = q->owner[i];
      out.push_back(OwnerRange{Owner{static_cast<OwnerKind>(o.kind), o.ino, o.generation, 0},
                               o.phys, o.length, o.offset});
    }
  } while (q->count > 0 && out.size() < q->total);
  return out;
}

// The path of `ino` as the daemon knows it, or "" when it has none.
std::string PathViaIoctl(const std::string& dir, uint64_t ino) {
  const UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY));
  if (!fd.valid()) return "";
  auto q = std::make_unique<udax_ioc_path>();
  q->ino = ino;
  if (ioctl(fd.get(), UDAX_IOC_PATH, q.get()) != 0) return "";
  std::string path = dir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path + (q->path[1] ? q->path : "");
}

std::vector<DeviceSpan> DevicesViaIoctl(const std::string& path) {
  const UniqueFd fd(open(path.c_str(), O_RDONLY | O_NONBLOCK));
  if (!fd.valid()) return {};
  auto q = std::make_unique<udax_ioc_devices>();
  if (ioctl(fd.get(), UDAX_IOC_DEVICES, q.get()) != 0) return {};
  std::vector<DeviceSpan> out;
  for (uint32_t d = 0; d < q->count && d < UDAX_DEVICES_MAX; ++d) {
    q->dev[d].path[sizeof(q->dev[d].path) - 1] = 0;
    out.push_back({q->dev[d].start, q->dev[d].length, q->dev[d].path});
  }
  return out;
}

std::vector<DeviceSpan> DevicesOf(Filesystem* fs) {
  const DiskSuperblock sb = fs->SuperblockSnapshot();
  std::vector<DeviceSpan> out;
  for (uint32_t d = 0; d < DeviceCount(sb); ++d) {
    const uint64_t start = IsMultiDevice(sb) ? sb.devices[d].start : 0;
    const uint64_t length = IsMultiDevice(sb) ? sb.devices[d].length : sb.region_size;
    out.push_back({start, length, fs->region()->device(d)->path()});
  }
  return out;
}

size_t DeviceAt(const std::vector<DeviceSpan>& devices, uint64_t phys) {
  for (size_t d = 0; d < devices.size(); ++d) {
    if (phys >= devices[d].start && phys - devices[d].start < devices[d].length) return d;
  }
  return devices.size();
}

std::unique_ptr<Filesystem> OpenTargetReadOnly(const std::string& target, const char* cmd) {
  MountOptions ro;
  ro.read_only = true;
  auto fs = Filesystem::Mount(target, ro);
  if (!fs.ok()) {
    fprintf(stderr, "udaxctl %s: %s%s\n", cmd, fs.status().message().c_str(),
            fs.status().code() == EBUSY ? " (mounted: give the mount point)" : "");
    return nullptr;
  }
  return std::move(fs).value();
}

int CmdBmap(const std::string& file, bool json) {
  uint64_t au = 0;
  auto extents = BmapViaIoctl(file, &au);
  if (!extents.ok()) {
    fprintf(stderr, "udaxctl bmap: %s\n", extents.status().message().c_str());
    return 1;
  }
  // Several devices: each extent also as (device, offset on it).
  const std::vector<DeviceSpan> devices = DevicesViaIoctl(file);
  const bool multi = devices.size() > 1;
  if (json) {
    nlohmann::json j = nlohmann::json::array();
    for (const BmapExtent& e : *extents) {
      nlohmann::json x = {{"file_offset", e.file_offset}, {"phys_offset", e.phys_offset},
                          {"length", e.length}};
      const size_t d = DeviceAt(devices, e.phys_offset);
      if (multi && d < devices.size()) {
        x["device"] = d;
        x["device_offset"] = e.phys_offset - devices[d].start;
      }
      j.push_back(x);
    }
    printf("%s\n", nlohmann::json{{"file", file}, {"au_size", au}, {"extents", j}}.dump(2).c_str());
    return 0;
  }
  printf("%s:\n", file.c_str());
  if (multi) {
    printf(" EXT: %-24s %-24s %-4s %-24s %s\n", "FILE-OFFSET", "PHYS-OFFSET", "DEV", "DEV-OFFSET",
           "LENGTH");
  } else {
    printf(" EXT: %-24s %-24s %s\n", "FILE-OFFSET", "PHYS-OFFSET", "LENGTH");
  }
  int n = 0;
  for (const BmapExtent& e : *extents) {
    printf(" %3d: 0x%-22llx 0x%-22llx ", n++, static_cast<unsigned long long>(e.file_offset),
           static_cast<unsigned long long>(e.phys_offset));
    const size_t d = DeviceAt(devices, e.phys_offset);
    if (multi && d < devices.size()) {
      printf("%-4zu 0x%-22llx ", d, static_cast<unsigned long long>(e.phys_offset - devices[d].start));
    }
    printf("%llu\n", static_cast<unsigned long long>(e.length));
  }
  return 0;
}

int CmdRmap(const std::string& where, const std::string& range, bool json) {
  // PHYS[+LEN], each a number (0x... allowed) or a size with a suffix.
  const size_t plus = range.find('+');
  auto parse = [](const std::string& t) -> std::optional<uint64_t> {
    if (t.rfind("0x", 0) == 0 || t.rfind("0X", 0) == 0) {
      char* end = nullptr;
      errno = 0;
      const uint64_t v = strtoull(t.c_str() + 2, &end, 16);
      if (errno || !end || *end || t.size() == 2) return std::nullopt;
      return v;
    }
    return ParseSize(t);
  };
  // DEV:OFF names an offset on one device of a multi-device filesystem.
  const size_t colon = range.find(':');
  std::optional<uint64_t> device;
  if (colon != std::string::npos && colon < plus) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long d = strtoull(range.c_str(), &end, 10);
    if (errno || end != range.c_str() + colon || colon == 0) {
      fprintf(stderr, "udaxctl rmap: bad device in '%s' (expected DEV:OFF[+LEN])\n", range.c_str());
      return 1;
    }
    device = d;
  }
  const size_t phys_at = device ? colon + 1 : 0;
  auto phys = parse(range.substr(phys_at, plus == std::string::npos ? std::string::npos : plus - phys_at));
  auto len = plus == std::string::npos ? std::optional<uint64_t>(1) : parse(range.substr(plus + 1));
  if (!phys || !len || *len == 0) {
    fprintf(stderr, "udaxctl rmap: bad range '%s' (expected [DEV:]PHYS[+LEN])\n", range.c_str());
    return 1;
  }
  struct stat st;
  const bool is_list = IsDeviceList(where);
  if (!is_list && stat(where.c_str(), &st) != 0) {
    fprintf(stderr, "udaxctl rmap: %s: %s\n", where.c_str(), strerror(errno));
    return 1;
  }
  Result<std::vector<OwnerRange>> owners = std::vector<OwnerRange>{};
  std::unique_ptr<Filesystem> fs;
  std::vector<DeviceSpan> devices;
  const bool mounted = !is_list && S_ISDIR(st.st_mode);
  if (mounted) {
    devices = DevicesViaIoctl(where);
  } else {
    fs = OpenTargetReadOnly(where, "rmap");
    if (!fs) return 1;
    devices = DevicesOf(fs.get());
  }
  if (device) {
    if (*device >= devices.size() || *phys >= devices[*device].length ||
        *len > devices[*device].length - *phys) {
      fprintf(stderr, "udaxctl rmap: %s: no such range on device %llu (%zu device(s))\n",
              range.c_str(), static_cast<unsigned long long>(*device), devices.size());
      return 1;
    }
    *phys += devices[*device].start;
  }
  owners = mounted ? RmapViaIoctl(where, *phys, *len) : fs->Owners(*phys, *len);
  if (!owners.ok()) {
    fprintf(stderr, "udaxctl rmap: %s\n", owners.status().message().c_str());
    return 1;
  }
  std::map<uint64_t, std::string> paths;
  auto path_of = [&](const Owner& o) -> const std::string& {
    auto it = paths.find(o.ino);
    if (it != paths.end()) return it->second;
    std::string p;
    if (fs) {
      auto r = fs->PathOf(o.ino);
      if (r.ok()) p = *r;
    } else {
      p = PathViaIoctl(where, o.ino);
    }
    return paths[o.ino] = p;
  };
  const bool multi = devices.size() > 1;
  if (json) {
    nlohmann::json j = nlohmann::json::array();
    for (const OwnerRange& r : *owners) {
      const std::string path = r.owner.ino ? path_of(r.owner) : std::string();
      nlohmann::json x = OwnerRangeToJson(r, path, WithGeneration::kYes);
      const size_t d = DeviceAt(devices, r.phys);
      if (multi && d < devices.size()) {
        x["device"] = d;
        x["device_offset"] = r.phys - devices[d].start;
      }
      j.push_back(x);
    }
    printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  for (const OwnerRange& r : *owners) {
    printf("0x%llx+%llu", static_cast<unsigned long long>(r.phys),
           static_cast<unsigned long long>(r.len));
    const size_t d = DeviceAt(devices, r.phys);
    if (multi && d < devices.size()) {
      printf(" (device %zu 0x%llx)", d, static_cast<unsigned long long>(r.phys - devices[d].start));
    }
    printf(": %s", OwnerKindName(r.owner.kind));
    if (r.owner.copy2) printf(" (second copy)");
    if (r.owner.ino) {
      printf(" ino %llu offset %llu", static_cast<unsigned long long>(r.owner.ino),
             static_cast<unsigned long long>(r.offset));
      const std::string& path = path_of(r.owner);
      if (!path.empty()) printf(" path %s", path.c_str());
    }
    printf("\n");
  }
  return 0;
}

}  // namespace udax
