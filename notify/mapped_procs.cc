// mapped_procs.cc -- finding the processes that map a file range (see mapped_procs.h).
#include "notify/mapped_procs.h"

#include <dirent.h>
#include <sys/sysmacros.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace udax {

std::optional<dev_t> MountDevice(const std::string& mountinfo_path, const std::string& mount_point) {
  std::ifstream in(mountinfo_path);
  std::string line;
  std::optional<dev_t> found;
  while (std::getline(in, line)) {
    // ID PARENT MAJOR:MINOR ROOT MOUNT_POINT ...
    std::istringstream f(line);
    std::string id, parent, majmin, root, mp;
    if (!(f >> id >> parent >> majmin >> root >> mp)) continue;
    if (mp != mount_point) continue;
    unsigned major = 0, minor = 0;
    if (std::sscanf(majmin.c_str(), "%u:%u", &major, &minor) == 2) found = makedev(major, minor);
  }
  return found;
}

bool MapsLineCovers(const std::string& line, dev_t dev, uint64_t ino, uint64_t off, uint64_t len) {
  // START-END PERMS OFFSET MAJOR:MINOR INODE [PATH]  (numbers in hex but the inode)
  uint64_t start = 0, end = 0, file_off = 0, inode = 0;
  unsigned major = 0, minor = 0;
  char perms[8];
  if (std::sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64, &start,
                  &end, perms, &file_off, &major, &minor, &inode) != 7) {
    return false;
  }
  if (inode != ino || makedev(major, minor) != dev || end <= start) return false;
  const uint64_t map_end = file_off + (end - start);
  return file_off < off + len && off < map_end;
}

std::vector<MappedProcess> FindMappers(const std::string& proc_root, dev_t dev, uint64_t ino,
                                       uint64_t off, uint64_t len, pid_t self) {
  std::vector<MappedProcess> out;
  DIR* d = opendir(proc_root.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    char* endp = nullptr;
    const long pid = std::strtol(e->d_name, &endp, 10);
    if (pid <= 0 || *endp != '\0' || pid == self) continue;
    const std::string dir = proc_root + "/" + e->d_name;
    std::ifstream maps(dir + "/maps");
    std::string line;
    bool hit = false;
    while (!hit && std::getline(maps, line)) hit = MapsLineCovers(line, dev, ino, off, len);
    if (!hit) continue;
    MappedProcess p;
    p.pid = static_cast<pid_t>(pid);
    std::ifstream comm(dir + "/comm");
    std::getline(comm, p.comm);
    out.push_back(std::move(p));
  }
  closedir(d);
  return out;
}

}  // namespace udax
