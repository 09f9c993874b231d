// mount_table.cc -- mountinfo parsing, the image flock probe, finding the daemon in /proc.
#include "mount-helper/mount_table.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace udax {

namespace {

// The kernel escapes space, tab, newline and backslash in mountinfo as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string Basename(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::vector<MountEntry> ReadMountInfo() {
  std::vector<MountEntry> table;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT VFSOPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
    std::istringstream words(line);
    std::string id, parent, dev, root, mnt, vfs, w;
    if (!(words >> id >> parent >> dev >> root >> mnt >> vfs)) continue;
    while (words >> w && w != "-") {
    }
    MountEntry e;
    if (!(words >> e.fstype >> e.source)) continue;
    words >> e.super_options;
    e.mount_point = Unescape(mnt);
    e.vfs_options = vfs;
    e.source = Unescape(e.source);
    table.push_back(std::move(e));
  }
  return table;
}

std::optional<MountEntry> TopMountAt(const std::vector<MountEntry>& table, const std::string& dir) {
  std::optional<MountEntry> top;
  for (const MountEntry& e : table) {
    if (e.mount_point == dir) top = e;  // mountinfo lists parents before children
  }
  return top;
}

std::optional<MountEntry> FuseMountOf(const std::vector<MountEntry>& table,
                                      const std::string& source) {
  for (const MountEntry& e : table) {
    if (e.fstype == "fuse" && e.source == source) return e;
  }
  return std::nullopt;
}

int TargetLockHeld(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int held = 0;
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
    flock(fd, LOCK_UN);
  } else {
    held = errno == EWOULDBLOCK ? 1 : -errno;
  }
  close(fd);
  return held;
}

std::optional<std::string> DaemonOptions(const std::string& source, const std::string& dir) {
  DIR* proc = opendir("/proc");
  if (!proc) return std::nullopt;
  std::optional<std::string> found;
  while (dirent* d = readdir(proc)) {
    if (d->d_name[0] < '1' || d->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + d->d_name + "/cmdline");
    std::vector<std::string> argv;
    std::string arg;
    while (std::getline(in, arg, '\0')) argv.push_back(arg);
    if (argv.size() < 3 || Basename(argv[0]) != "udaxfs") continue;
    // The daemon's argv as we start it: udaxfs SOURCE DIR [-o OPTS]; a hand-started
    // one may have a relative DIR, so only the source is compared strictly.
    if (argv[1] != source) continue;
    if (argv[2] != dir && Basename(argv[2]) != Basename(dir)) continue;
    std::string opts;
    for (size_t i = 3; i < argv.size(); ++i) {
      if (argv[i] == "-o" && i + 1 < argv.size()) {
        opts += (opts.empty() ? "" : ",") + argv[++i];
      } else if (argv[i].rfind("-o", 0) == 0 && argv[i].size() > 2) {
        opts += (opts.empty() ? "" : ",") + argv[i].substr(2);
      }
    }
    found = opts;
    break;
  }
  closedir(proc);
  return found;
}

}  // namespace udax
