// udaxctl_media.cc -- `udaxctl inject-error` and `udaxctl list --media-errors`.
//
// inject-error keeps the bad blocks of an emulated image in its list file in the state
// directory (/var/lib/udaxfs/uuid-HEX.badblocks, found with LocateTargetState, the key
// the daemon uses too: fs/format/state_dir.h; format in fs/format/badblock_list.h), the way `ndctl inject-error` asks the firmware to poison a
// namespace; the Region of every later open (daemon, fsck, udaxctl) then fails reads of
// those blocks exactly as poisoned pmem would. list --media-errors shows the bad ranges
// -- the list file's, and the kernel's for real pmem -- with the owners the reverse map
// names for each: offline on an unmounted target, through the daemon's ioctls on a mount.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "fs/core/filesystem.h"
#include "fs/region/region_span.h"
#include "mount-helper/mount_table.h"
#include "mount-helper/udaxctl.h"
#include "fs/format/badblock_list.h"
#include "fs/format/state_dir.h"
#include "notify/owner_json.h"
#include "notify/kernel_badblocks.h"

namespace udax {
namespace {

// A block number or count as ndctl takes them: decimal or 0x hexadecimal.
std::optional<uint64_t> ParseBlockNumber(const std::string& text) {
  int base = 10;
  const char* first = text.data();
  const char* last = first + text.size();
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    first += 2;
  }
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(first, last, v, base);
  if (first == last || ec != std::errc() || ptr != last) return std::nullopt;
  return v;
}

std::string Canonical(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) != nullptr ? std::string(buf) : std::string();
}

bool IsFuse(const MountEntry& e) { return e.fstype.rfind("fuse", 0) == 0; }

}  // namespace

std::string MountPointOf(const std::string& target) {
  // A device list ("a,b,c") is mounted when its first device is (a device is in one
  // filesystem at a time: each is locked by the daemon that has it).
  const std::vector<std::string> list = SplitDeviceList(target);
  const std::string c = Canonical(list.size() > 1 && access(target.c_str(), F_OK) != 0 ? list[0] : target);
  if (c.empty()) return "";
  for (const MountEntry& e : ReadMountInfo()) {
    if (!IsFuse(e) || e.source.empty() || e.source[0] != '/') continue;
    if (Canonical(e.source) == c) return e.mount_point;
    // One device of a multi-device filesystem, named by itself or in a list.
    if (access(e.source.c_str(), F_OK) != 0) {
      for (const std::string& d : SplitDeviceList(e.source)) {
        if (Canonical(d) == c) return e.mount_point;
      }
    }
  }
  return "";
}

namespace {

// What a command works on: the image (or device) and, when mounted, the mount point.
struct Target {
  std::string given;
  std::string path;   // the image or device (or the device list of a multi-device one)
  std::string mount;  // "" when not mounted
  struct stat st {};  // of path (of the first device, for a list)
  bool list = false;  // path names several devices: the whole filesystem
};

// Resolves TARGET (an image, a device, or a udaxfs mount point). Prints the error.
std::optional<Target> Resolve(const std::string& given, const char* cmd) {
  Target t;
  t.given = given;
  // "a,b,c": the devices of one filesystem (when no file has that name).
  auto as_list = [&](const std::string& path) {
    const std::vector<std::string> devices = SplitDeviceList(path);
    if (devices.size() < 2 || access(path.c_str(), F_OK) == 0) return false;
    t.list = true;
    return stat(devices[0].c_str(), &t.st) == 0;
  };
  if (as_list(given)) {
    t.path = given;
    t.mount = MountPointOf(given);
    return t;
  }
  if (stat(given.c_str(), &t.st) != 0) {
    fprintf(stderr, "udaxctl %s: %s: %s\n", cmd, given.c_str(), strerror(errno));
    return std::nullopt;
  }
  if (S_ISDIR(t.st.st_mode)) {
    t.path = ImageOfMountPoint(given);
    if (!t.path.empty() && as_list(t.path)) {
      t.mount = given;
      return t;
    }
    if (t.path.empty() || stat(t.path.c_str(), &t.st) != 0) {
      fprintf(stderr, "udaxctl %s: %s: not a udaxfs mount point (give the image)\n", cmd,
              given.c_str());
      return std::nullopt;
    }
    t.mount = given;
    return t;
  }
  t.path = given;
  t.mount = MountPointOf(given);
  return t;
}

// The image's list file. Prepares the state (creates the directory, migrates an old
// IMAGE.badblocks) when we may; only looks when we may not. "" with no error for an
// image without a superblock when `need` is false (it has no list: nothing is injected).
// Prints the error and returns nullopt otherwise.
std::optional<TargetState> ListFileOf(const std::string& path, const char* cmd, bool need) {
  Result<TargetState> s = LocateTargetState(path, /*prepare=*/true);
  if (!s.ok() && (s.status().code() == EACCES || s.status().code() == EROFS)) {
    s = LocateTargetState(path, /*prepare=*/false);
  }
  if (s.ok()) return std::move(s).value();
  if (!need && s.status().code() == ENODATA) return TargetState();
  fprintf(stderr, "udaxctl %s: %s\n", cmd, s.status().message().c_str());
  return std::nullopt;
}

Result<BadblockList> ReadListOrNone(const std::string& path) {
  return path.empty() ? Result<BadblockList>(BadblockList()) : ReadBadblockListFile(path);
}

void PrintStatusHuman(const std::string& name, const BadblockList& list, const BadblockList& latent) {
  if (!latent.empty()) {
    printf("%s: %" PRIu64 " latent block%s (never announced; found by the read that meets them):\n",
           name.c_str(), latent.sector_count(), latent.sector_count() == 1 ? "" : "s");
    for (const BadblockRange& r : latent.ranges()) {
      printf("  block %" PRIu64 " count %" PRIu64 " latent\n", r.sector, r.count);
    }
  }
  if (list.empty()) {
    printf("%s: no %sbad blocks\n", name.c_str(), latent.empty() ? "" : "announced ");
    return;
  }
  printf("%s: %zu bad block range%s, %" PRIu64 " block%s of 512 bytes\n", name.c_str(),
         list.ranges().size(), list.ranges().size() == 1 ? "" : "s", list.sector_count(),
         list.sector_count() == 1 ? "" : "s");
  for (const BadblockRange& r : list.ranges()) {
    printf("  block %" PRIu64 " count %" PRIu64 "\n", r.sector, r.count);
  }
}

}  // namespace

// The image a udaxfs mount point serves (its mount source), or "" when DIR is not the top
// of a FUSE mount or its source is not an absolute path we can open.
std::string ImageOfMountPoint(const std::string& dir) {
  std::string c = Canonical(dir);
  // A shut-down udaxfs answers EIO even to the stat realpath makes: take an absolute
  // name as it is and look for it in mountinfo.
  if (c.empty() && !dir.empty() && dir[0] == '/') c = dir;
  if (c.empty()) return "";
  std::optional<MountEntry> top = TopMountAt(ReadMountInfo(), c);
  if (!top || !IsFuse(*top) || top->source.empty() || top->source[0] != '/') return "";
  return top->source;
}

int CmdInjectError(const InjectErrorArgs& a) {
  const char* cmd = "inject-error";
  if (a.status && (!a.block.empty() || !a.count.empty() || a.uninject)) {
    fprintf(stderr, "udaxctl %s: --status is invalid with -B, -n or --uninject\n", cmd);
    return 1;
  }
  if (a.no_notify && (a.status || a.uninject)) {
    fprintf(stderr, "udaxctl %s: --no-notify only injects (--uninject heals latent blocks too)\n", cmd);
    return 1;
  }
  if (!a.status && a.block.empty()) {
    fprintf(stderr, "udaxctl %s: -B BLOCK is required to %s an error\n", cmd,
            a.uninject ? "uninject" : "inject");
    return 1;
  }
  std::optional<Target> t = Resolve(a.target, cmd);
  if (!t) return 1;
  if (t->list) {
    fprintf(stderr, "udaxctl %s: %s: several devices: name the one image to poison\n", cmd,
            a.target.c_str());
    return 1;
  }
  if (!S_ISREG(t->st.st_mode)) {
    fprintf(stderr,
            "udaxctl %s: %s: not an image file; the bad blocks of a device are real: use "
            "ndctl inject-error on its namespace\n",
            cmd, t->path.c_str());
    return 1;
  }
  const std::optional<TargetState> state = ListFileOf(t->path, cmd, /*need=*/!a.status);
  if (!state) return 1;
  if (a.status) {
    Result<BadblockList> list = ReadListOrNone(state->badblocks);
    Result<BadblockList> latent = ReadListOrNone(state->latent);
    if (!list.ok() || !latent.ok()) {
      fprintf(stderr, "udaxctl %s: %s\n", cmd,
              (!list.ok() ? list.status() : latent.status()).message().c_str());
      return 1;
    }
    if (a.json) {
      nlohmann::json bbs = nlohmann::json::array();
      for (const BadblockRange& r : list->ranges()) {
        bbs.push_back({{"block", r.sector}, {"count", r.count}});
      }
      nlohmann::json lat = nlohmann::json::array();
      for (const BadblockRange& r : latent->ranges()) {
        lat.push_back({{"block", r.sector}, {"count", r.count}});
      }
      printf("%s\n", nlohmann::json{{"dev", a.target}, {"badblocks", bbs}, {"latent", lat}}
                         .dump(2).c_str());
    } else {
      PrintStatusHuman(a.target, *list, *latent);
    }
    return 0;
  }

  const std::optional<uint64_t> block = ParseBlockNumber(a.block);
  const std::optional<uint64_t> count = a.count.empty() ? std::optional<uint64_t>(1)
                                                        : ParseBlockNumber(a.count);
  if (!block || !count) {
    fprintf(stderr, "udaxctl %s: bad %s '%s' (a number of 512-byte blocks)\n", cmd,
            !block ? "block" : "count", (!block ? a.block : a.count).c_str());
    return 1;
  }
  if (Status st = BadblockList::ValidateRange(*block, *count); !st.ok()) {
    fprintf(stderr, "udaxctl %s: %s\n", cmd, st.message().c_str());
    return 1;
  }
  const uint64_t blocks = static_cast<uint64_t>(t->st.st_size) / kBadblockSectorSize;
  if (*block >= blocks || *count > blocks - *block) {
    fprintf(stderr,
            "udaxctl %s: blocks %" PRIu64 "-%" PRIu64 " lie past the end of %s (%" PRIu64
            " blocks)\n",
            cmd, *block, *block + *count - 1, a.target.c_str(), blocks);
    return 1;
  }
  // --no-notify, as ndctl's: poison the platform does not announce. It goes in the
  // latent list, which the daemon follows without telling anyone. Uninject heals both.
  BadblockList after, latent_after;
  auto edit = [&](BadblockList* list) {
    if (a.uninject) {
      list->Remove(*block, *count);
    } else {
      list->Add(*block, *count);
    }
    return Status::Ok();
  };
  Status st = Status::Ok();
  if (a.uninject || !a.no_notify) st = UpdateBadblockListFile(state->badblocks, edit, &after);
  if (st.ok() && (a.uninject || a.no_notify)) {
    st = UpdateBadblockListFile(state->latent, edit, &latent_after);
  }
  if (st.ok() && a.no_notify) {
    Result<BadblockList> list = ReadBadblockListFile(state->badblocks);
    st = list.status();
    if (list.ok()) after = std::move(list).value();
  }
  if (st.ok() && !a.uninject && !a.no_notify) {
    Result<BadblockList> latent = ReadBadblockListFile(state->latent);
    st = latent.status();
    if (latent.ok()) latent_after = std::move(latent).value();
  }
  if (!st.ok()) {
    fprintf(stderr, "udaxctl %s: %s\n", cmd, st.message().c_str());
    return 1;
  }
  if (a.json) {
    // As ndctl prints the namespace after an injection: its media errors.
    nlohmann::json bbs = nlohmann::json::array();
    for (const BadblockRange& r : after.ranges()) {
      bbs.push_back({{"offset", r.sector}, {"length", r.count}});
    }
    nlohmann::json j{{"dev", a.target},
                     {"mode", "emulated"},
                     {"size", static_cast<uint64_t>(t->st.st_size)},
                     {"badblock_count", after.sector_count()},
                     {"badblocks", bbs}};
    nlohmann::json lat = nlohmann::json::array();
    for (const BadblockRange& r : latent_after.ranges()) {
      lat.push_back({{"offset", r.sector}, {"length", r.count}});
    }
    j["latent"] = std::move(lat);
    printf("%s\n", j.dump(2).c_str());
  } else {
    printf("%s: %s %" PRIu64 " %sblock%s at block %" PRIu64 "\n", a.target.c_str(),
           a.uninject ? "uninjected" : "injected", *count,
           a.no_notify && !a.uninject ? "latent " : "", *count == 1 ? "" : "s", *block);
    PrintStatusHuman(a.target, after, latent_after);
  }
  return 0;
}

namespace {

struct BadRange {
  BadblockRange r;
  const char* source;  // "injected" (the list file), "latent" (its unannounced list) or "kernel"
};

// Answers owner queries for one target, offline or through its mount; remembers paths.
class OwnerLookup {
 public:
  explicit OwnerLookup(const Target& t) : t_(t) {
    if (!t.mount.empty()) return;
    // Through the emulated poison: the list is what we report on, and the owners of a
    // poisoned metadata block can only be named if that block can be read.
    RegionOptions region_options;
    region_options.read_only = true;
    region_options.emulate_poison = false;
    auto region = Region::Open(t.path, region_options);
    if (!region.ok()) {
      error_ = region.status().message();
      if (region.status().code() == EBUSY) error_ += " (mounted: give the mount point)";
      return;
    }
    MountOptions ro;
    ro.read_only = true;
    auto fs = Filesystem::MountRegion(std::move(region).value(), ro);
    if (fs.ok()) {
      fs_ = std::move(fs).value();
    } else {
      error_ = fs.status().message();
    }
  }
  ~OwnerLookup() {
    if (fs_) (void)fs_->Unmount();
  }
  // "" when owners can be asked for; else why not.
  const std::string& error() const { return error_; }
  // The devices of the filesystem, in order (one, starting at 0, on a single region);
  // empty when neither the mount nor the target says.
  std::vector<DeviceSpan> Devices() const {
    if (!t_.mount.empty()) return DevicesViaIoctl(t_.mount);
    return fs_ ? DevicesOf(fs_.get()) : std::vector<DeviceSpan>{};
  }

  Result<std::vector<OwnerRange>> Owners(uint64_t phys, uint64_t len) {
    if (!t_.mount.empty()) return RmapViaIoctl(t_.mount, phys, len);
    if (!fs_) return Status::IoError(error_);
    return fs_->Owners(phys, len);
  }
  const std::string& PathOf(uint64_t ino) {
    auto it = paths_.find(ino);
    if (it != paths_.end()) return it->second;
    std::string p;
    if (!t_.mount.empty()) {
      p = PathViaIoctl(t_.mount, ino);
    } else if (fs_) {
      auto r = fs_->PathOf(ino);
      if (r.ok()) p = *r;
    }
    return paths_[ino] = p;
  }

 private:
  const Target& t_;
  std::unique_ptr<Filesystem> fs_;
  std::string error_;
  std::map<uint64_t, std::string> paths_;
};

}  // namespace

namespace {

// The bad ranges of one device (an image's list files, the kernel's badblocks), in its
// own 512-byte sectors, sorted. *mode and *size describe it as ndctl would.
std::optional<std::vector<BadRange>> DeviceBadRanges(const std::string& path, const struct stat& st,
                                                     const char* cmd, bool* partial,
                                                     std::string* mode, uint64_t* size) {
  std::vector<BadRange> ranges;
  *mode = S_ISCHR(st.st_mode) ? "devdax" : "emulated";
  *size = static_cast<uint64_t>(st.st_size);
  if (S_ISREG(st.st_mode)) {
    const std::optional<TargetState> state = ListFileOf(path, cmd, /*need=*/false);
    if (!state) return std::nullopt;
    Result<BadblockList> list = ReadListOrNone(state->badblocks);
    Result<BadblockList> latent = ReadListOrNone(state->latent);
    if (!list.ok() || !latent.ok()) {
      fprintf(stderr, "udaxctl %s: %s\n", cmd,
              (!list.ok() ? list.status() : latent.status()).message().c_str());
      return std::nullopt;
    }
    for (const BadblockRange& r : list->ranges()) ranges.push_back({r, "injected"});
    // Emulated poison nobody announced (inject-error --no-notify): still bad media.
    for (const BadblockRange& r : latent->ranges()) ranges.push_back({r, "latent"});
  }
  // The kernel's own list, when the target is (or lives on) real pmem.
  // A kernel list we cannot read is reported, and what can be listed still is.
  Result<KernelBadblocks> kb = LocateKernelBadblocks(path);
  if (kb.ok()) {
    if (kb->kind != KernelBadblocksKind::kDevdax) *mode = "fsdax";
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) *size = kb->target_size;
    Result<BadblockList> list = ReadKernelBadblocks(*kb);
    if (list.ok()) {
      for (const BadblockRange& r : list->ranges()) ranges.push_back({r, "kernel"});
    } else {
      fprintf(stderr, "udaxctl %s: %s\n", cmd, list.status().message().c_str());
      *partial = true;
    }
  } else if (kb.status().code() != EOPNOTSUPP) {
    fprintf(stderr, "udaxctl %s: %s\n", cmd, kb.status().message().c_str());
    *partial = true;
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const BadRange& a, const BadRange& b) { return a.r.sector < b.r.sector; });
  return ranges;
}

}  // namespace

std::optional<nlohmann::json> FetchMediaErrors(const std::string& given, const char* cmd,
                                               bool* partial) {
  *partial = false;
  std::optional<Target> t = Resolve(given, cmd);
  if (!t) return std::nullopt;
  OwnerLookup owners(*t);
  // Which devices, and where each starts in the filesystem: the target itself at 0, or
  // on a multi-device filesystem all of its devices (a list, or its mount) or the one
  // device named.
  struct Dev {
    size_t index;
    DeviceSpan span;
  };
  std::vector<Dev> chosen;
  const std::vector<DeviceSpan> devices = owners.Devices();
  const bool multi = devices.size() > 1;
  if (!multi) {
    chosen.push_back({0, DeviceSpan{0, 0, t->path}});
  } else {
    const std::string me = t->list ? std::string() : Canonical(t->path);
    for (size_t d = 0; d < devices.size(); ++d) {
      if (t->list || Canonical(devices[d].path) == me) chosen.push_back({d, devices[d]});
    }
  }
  if (chosen.empty() && t->list) {
    // Neither mounted nor openable (owners says why): each device's list alone.
    for (const std::string& p : SplitDeviceList(t->path)) chosen.push_back({0, DeviceSpan{0, 0, p}});
  }
  std::string mode;
  uint64_t size = 0, count = 0;
  nlohmann::json jbbs = nlohmann::json::array();
  bool said = false;
  for (const Dev& dev : chosen) {
    // A lost device the mount was not given (SpanRegion's AbsentDevice names itself
    // "(device N, uuid U, gone)"): nothing there to list.
    if (multi && dev.span.path.rfind("(device ", 0) == 0) continue;
    struct stat st;
    if (stat(dev.span.path.c_str(), &st) != 0) {
      fprintf(stderr, "udaxctl %s: %s: %s\n", cmd, dev.span.path.c_str(), strerror(errno));
      return std::nullopt;
    }
    std::string dev_mode;
    uint64_t dev_size = 0;
    auto ranges = DeviceBadRanges(dev.span.path, st, cmd, partial, &dev_mode, &dev_size);
    if (!ranges) return std::nullopt;
    mode = mode.empty() || mode == dev_mode ? dev_mode : "mixed";
    size += multi ? dev.span.length : dev_size;
    if (!ranges->empty() && !owners.error().empty() && !said) {
      fprintf(stderr, "udaxctl %s: owners unknown: %s\n", cmd, owners.error().c_str());
      said = true;
    }
    for (const BadRange& b : *ranges) {
      count += b.r.count;
      nlohmann::json jb{{"offset", b.r.sector}, {"length", b.r.count}, {"source", b.source}};
      if (multi) {
        jb["device"] = dev.index;
        jb["device_path"] = dev.span.path;
      }
      Result<std::vector<OwnerRange>> o =
          owners.Owners(dev.span.start + b.r.byte_offset(), b.r.byte_length());
      if (!o.ok()) {
        if (owners.error().empty()) {
          fprintf(stderr, "udaxctl %s: owners of block %" PRIu64 ": %s\n", cmd, b.r.sector,
                  o.status().message().c_str());
          *partial = true;
        }
        jb["owners_error"] = o.status().message();
        jbbs.push_back(jb);
        continue;
      }
      nlohmann::json jo = nlohmann::json::array();
      for (const OwnerRange& r : *o) {
        const std::string path = r.owner.ino ? owners.PathOf(r.owner.ino) : std::string();
        jo.push_back(OwnerRangeToJson(r, path, WithGeneration::kYes));
      }
      jb["owners"] = jo;
      jbbs.push_back(jb);
    }
  }
  // ndctl list --media-errors: a namespace with its bad blocks in 512-byte sectors; each
  // bad block here also names its source and owners (and, on several devices, which
  // device the sectors count on).
  return nlohmann::json{{"dev", given},
                        {"mode", mode},
                        {"size", size},
                        {"badblock_count", count},
                        {"badblocks", jbbs}};
}

int CmdListMediaErrors(const std::string& given, bool json) {
  bool partial = false;
  std::optional<nlohmann::json> j = FetchMediaErrors(given, "list", &partial);
  if (!j) return 1;
  if (json) {
    printf("%s\n", nlohmann::json::array({*j}).dump(2).c_str());
    return partial ? 1 : 0;
  }
  const nlohmann::json& bbs = (*j)["badblocks"];
  const uint64_t count = (*j)["badblock_count"].get<uint64_t>();
  printf("%s: %s, %zu bad block range%s, %" PRIu64 " block%s of 512 bytes\n", given.c_str(),
         (*j)["mode"].get<std::string>().c_str(), bbs.size(), bbs.size() == 1 ? "" : "s", count,
         count == 1 ? "" : "s");
  for (const nlohmann::json& b : bbs) {
    const uint64_t sector = b["offset"].get<uint64_t>(), n = b["length"].get<uint64_t>();
    printf("  block %" PRIu64 " count %" PRIu64 " [%#" PRIx64 ", +%#" PRIx64 ") %s", sector, n,
           sector * 512, n * 512, b["source"].get<std::string>().c_str());
    if (b.contains("device")) {
      printf(" on device %" PRIu64 " (%s)", b["device"].get<uint64_t>(),
             b["device_path"].get<std::string>().c_str());
    }
    printf("\n");
    if (!b.contains("owners")) continue;
    for (const nlohmann::json& o : b["owners"]) {
      printf("    %s", o["kind"].get<std::string>().c_str());
      if (o.contains("ino")) {
        printf(" ino %" PRIu64 " offset %" PRIu64 " length %" PRIu64, o["ino"].get<uint64_t>(),
               o["offset"].get<uint64_t>(), o["length"].get<uint64_t>());
        if (o.contains("path")) printf(" path %s", o["path"].get<std::string>().c_str());
      }
      printf("\n");
    }
  }
  return partial ? 1 : 0;
}

}  // namespace udax
