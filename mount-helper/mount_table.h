// mount_table.h -- what mount.udaxfs asks the system: mountinfo, the image lock, daemons.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace udax {

// One line of /proc/self/mountinfo, with the octal escapes (\040 ...) undone.
struct MountEntry {
  std::string mount_point;
  std::string vfs_options;  // per-mount: rw,nosuid,relatime...
  std::string fstype;
  std::string source;
  std::string super_options;
};

std::vector<MountEntry> ReadMountInfo();

// The mount a path lookup of DIR (canonical) reaches: the last one mounted there.
std::optional<MountEntry> TopMountAt(const std::vector<MountEntry>& table, const std::string& dir);

// A FUSE mount whose source is SOURCE, if any.
std::optional<MountEntry> FuseMountOf(const std::vector<MountEntry>& table,
                                      const std::string& source);

// Does some process hold the exclusive flock a udaxfs daemon keeps on its target for
// its lifetime? Returns 1 held, 0 free, -errno when PATH cannot be opened.
int TargetLockHeld(const std::string& path);

// The `-o` string of the running udaxfs daemon started as `udaxfs SOURCE DIR ...`
// (argv, from /proc), or nullopt when there is none.
std::optional<std::string> DaemonOptions(const std::string& source, const std::string& dir);

}  // namespace udax
