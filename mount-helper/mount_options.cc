// mount_options.cc -- the mount option vocabulary of mount.udaxfs (see mount_options.h).
#include "mount-helper/mount_options.h"

#include <sys/mount.h>

#include <cctype>
#include <utility>

namespace udax {

namespace {

bool HasPrefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Accepted and deliberately without effect.
//  - fstab/mount(8) bookkeeping that mount(8) may or may not strip before calling us.
//  - dax, dax=always: udaxfs always maps its media directly (DAX underneath); the
//    kernel's FUSE DAX mode exists only for virtiofs, so there is nothing to switch on.
//  - SELinux contexts: a FUSE mount cannot take them without an LSM that consumes them
//    (the kernel answers EINVAL), and libmount drops them itself when SELinux is off.
//  - what mount(8) copies back from the mount's own super options on a remount
//    (user_id=, group_id=, default_permissions, allow_other...): the daemon sets them.
constexpr std::string_view kIgnoredExact[] = {"defaults",
                                              "auto",
                                              "noauto",
                                              "user",
                                              "nouser",
                                              "users",
                                              "owner",
                                              "group",
                                              "nofail",
                                              "_netdev",
                                              "dax",
                                              "dax=always",
                                              "default_permissions"};
constexpr std::string_view kIgnoredPrefix[] = {
    "x-",           "X-",    "comment=", "context=",  "fscontext=", "defcontext=",
    "rootcontext=", "user=", "user_id=", "group_id=", "rootmode=",  "blksize="};

}  // namespace

std::vector<std::string> SplitOptions(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : text) {
    if (c == '"') quoted = !quoted;
    if (c == ',' && !quoted) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    cur += c;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

void ParseMountOptions(std::string_view text, MountRequest* req) {
  for (const std::string& opt : SplitOptions(text)) {
    const std::string_view o = opt;
    if (o == "remount") {
      req->remount = true;
    } else if (o == "ro") {
      req->read_only = true;
    } else if (o == "rw") {
      req->read_only = false;
    } else if (o == "nosuid" || o == "suid") {
      req->nosuid = o == "nosuid";
    } else if (o == "nodev" || o == "dev") {
      req->nodev = o == "nodev";
    } else if (o == "allow_suid") {
      // What suid is called through mount(8): libmount hands a helper only the flags that
      // differ from a kernel mount's defaults, so "suid" and "dev" never reach us there.
      req->nosuid = false;
    } else if (o == "allow_dev") {
      req->nodev = false;
    } else if (o == "noexec" || o == "exec") {
      req->noexec = o == "noexec";
    } else if (o == "sync" || o == "async") {
      req->sync = o == "sync";
    } else if (o == "dirsync") {
      req->dirsync = true;
    } else if (o == "lazytime" || o == "nolazytime") {
      req->lazytime = o == "lazytime";
    } else if (o == "nodiratime" || o == "diratime") {
      req->nodiratime = o == "nodiratime";
    } else if (o == "norecovery" || o == "noload") {
      req->norecovery = true;
    } else if (o == "noatime") {
      req->atime = AtimeMode::kNoatime;
    } else if (o == "strictatime") {
      req->atime = AtimeMode::kStrictatime;
    } else if (o == "relatime" || o == "atime" || o == "norelatime" || o == "nostrictatime") {
      // The kernel has no "atime" flag: clearing noatime/strictatime gives relatime.
      req->atime = AtimeMode::kRelatime;
    } else if (o == "writeback_cache" || o == "nowriteback_cache" || o == "degraded") {
      req->daemon_options.push_back(opt);
    } else if (HasPrefix(o, "cache=")) {
      const std::string_view v = o.substr(6);
      if (v == "auto" || v == "none") {
        req->daemon_options.push_back(opt);
      } else {
        req->bad.push_back("'" + opt + "' (expected cache=auto or cache=none)");
      }
    } else if (HasPrefix(o, "mce_policy=")) {
      const std::string_view v = o.substr(11);
      if (v == "notify" || v == "kill" || v == "ignore") {
        req->daemon_options.push_back(opt);
      } else {
        req->bad.push_back("'" + opt + "' (expected mce_policy=notify, kill or ignore)");
      }
    } else if (HasPrefix(o, "lease_timeout=")) {
      if (AllDigits(o.substr(14)) && o.size() > 14) {
        req->daemon_options.push_back(opt);
      } else {
        req->bad.push_back("'" + opt + "' (expected a number of milliseconds)");
      }
    } else if (HasPrefix(o, "readahead=")) {
      if (AllDigits(o.substr(10)) && o.size() > 10 && o.size() <= 15) {
        req->daemon_options.push_back(opt);
      } else {
        req->bad.push_back("'" + opt + "' (expected a number of KiB)");
      }
    } else if (HasPrefix(o, "patrol=")) {
      // Hours, a decimal: the daemon checks the range.
      const std::string_view v = o.substr(7);
      const bool number = !v.empty() && v.find_first_not_of("0123456789.") == std::string_view::npos &&
                          v.find('.') == v.rfind('.') && v.size() <= 12;
      if (number) {
        req->daemon_options.push_back(opt);
      } else {
        req->bad.push_back("'" + opt + "' (expected patrol=HOURS, e.g. patrol=24 or patrol=0.5)");
      }
    } else if (HasPrefix(o, "patrol_rate=")) {
      if (AllDigits(o.substr(12)) && o.size() > 12 && o.size() <= 19) {
        req->daemon_options.push_back(opt);
      } else {
        req->bad.push_back("'" + opt + "' (expected a number of MB/s)");
      }
    } else if (HasPrefix(o, "max_read=")) {
      if (AllDigits(o.substr(9))) {
        req->daemon_options.push_back(opt);
      } else {
        req->bad.push_back("'" + opt + "' (expected a number of bytes)");
      }
    } else if (o == "allow_other" || o == "acl" || o == "noacl" || o == "uring" || o == "nouring") {
      req->daemon_options.push_back(opt);
    } else if (HasPrefix(o, "dax=") && o != "dax=always") {
      req->bad.push_back("'" + opt + "' (udaxfs is always DAX: only dax or dax=always)");
    } else {
      bool ignored = false;
      for (std::string_view e : kIgnoredExact) ignored = ignored || o == e;
      for (std::string_view p : kIgnoredPrefix) ignored = ignored || HasPrefix(o, p);
      (ignored ? req->ignored : req->unknown).push_back(opt);
    }
  }
}

std::string DaemonOptionString(const MountRequest& req) {
  // Flags libfuse 3.14 turns into mount(2) flags itself, so the mount never exists
  // without them (nosuid in particular must hold from the first moment).
  std::vector<std::string> opts;
  if (req.read_only) opts.emplace_back("ro");
  opts.emplace_back(req.nosuid.value_or(true) ? "nosuid" : "suid");
  opts.emplace_back(req.nodev.value_or(true) ? "nodev" : "dev");
  if (req.noexec) opts.emplace_back("noexec");
  if (req.dirsync) opts.emplace_back("dirsync");
  // udaxfs' own sync: every write durable when it returns, done by the daemon itself.
  // The kernel's MS_SYNCHRONOUS would only add an FSYNC round trip per write.
  if (req.sync) opts.emplace_back("sync");
  for (const std::string& o : req.daemon_options) opts.push_back(o);
  std::string out;
  for (const std::string& o : opts) out += (out.empty() ? "" : ",") + o;
  return out;
}

bool NeedsKernelRemount(const MountRequest& req) {
  // Unset and relatime are what the new mount already has.
  return req.atime == AtimeMode::kNoatime || req.atime == AtimeMode::kStrictatime ||
         req.nodiratime || req.lazytime;
}

void KeepCurrentFlags(std::string_view vfs_options, MountRequest* req) {
  bool nosuid = false;
  bool nodev = false;
  for (const std::string& o : SplitOptions(vfs_options)) {
    nosuid = nosuid || o == "nosuid";
    nodev = nodev || o == "nodev";
  }
  if (!req->nosuid) req->nosuid = nosuid;
  if (!req->nodev) req->nodev = nodev;
}

unsigned long KernelRemountFlags(const MountRequest& req) {
  unsigned long flags = MS_REMOUNT;
  if (req.read_only) flags |= MS_RDONLY;
  if (req.nosuid.value_or(true)) flags |= MS_NOSUID;
  if (req.nodev.value_or(true)) flags |= MS_NODEV;
  if (req.noexec) flags |= MS_NOEXEC;
  if (req.lazytime) flags |= MS_LAZYTIME;
  if (req.nodiratime) flags |= MS_NODIRATIME;
  switch (req.atime) {
    case AtimeMode::kUnset:
      break;  // the kernel keeps the current policy
    case AtimeMode::kRelatime:
      flags |= MS_RELATIME;
      break;
    case AtimeMode::kNoatime:
      flags |= MS_NOATIME;
      break;
    case AtimeMode::kStrictatime:
      flags |= MS_STRICTATIME;
      break;
  }
  if (req.remount) {
    // On a remount the daemon keeps its own sync setting; the kernel flag gives the
    // requested semantics anyway (the kernel sends FSYNC after each write).
    if (req.sync) flags |= MS_SYNCHRONOUS;
    if (req.dirsync) flags |= MS_DIRSYNC;
  }
  return flags;
}

std::string DescribeRemountFlags(unsigned long flags) {
  static constexpr std::pair<unsigned long, const char*> kNames[] = {
      {MS_RDONLY, "ro"},
      {MS_NOSUID, "nosuid"},
      {MS_NODEV, "nodev"},
      {MS_NOEXEC, "noexec"},
      {MS_SYNCHRONOUS, "sync"},
      {MS_DIRSYNC, "dirsync"},
      {MS_NOATIME, "noatime"},
      {MS_RELATIME, "relatime"},
      {MS_STRICTATIME, "strictatime"},
      {MS_NODIRATIME, "nodiratime"},
      {MS_LAZYTIME, "lazytime"}};
  std::string out = flags & MS_RDONLY ? "" : "rw";
  for (const auto& [bit, name] : kNames) {
    if (flags & bit) out += (out.empty() ? "" : ",") + std::string(name);
  }
  return out;
}

}  // namespace udax
