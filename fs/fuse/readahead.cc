#include "fs/fuse/readahead.h"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <syslog.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace udax {

Status ReadaheadSetter::Apply(const std::string& mountpoint, unsigned kb) {
  struct statfs fs_stat;
  if (statfs(mountpoint.c_str(), &fs_stat) != 0) return Status::FromErrno(mountpoint + ": statfs");
  struct stat st;
  if (stat(mountpoint.c_str(), &st) != 0) return Status::FromErrno(mountpoint + ": stat");
  // A FUSE mount's bdi is named after its anonymous device ("0:N"; "-fuseblk" only for
  // fuseblk mounts, which udaxfs never makes).
  const std::string path = "/sys/class/bdi/" + std::to_string(major(st.st_dev)) + ":" +
                           std::to_string(minor(st.st_dev)) + "/read_ahead_kb";
  std::ofstream out(path);
  if (!out) return Status::Error(errno ? errno : EIO, path + ": open: " + strerror(errno));
  out << kb << '\n';
  out.close();
  if (!out) return Status::Error(EIO, path + ": write failed");
  return Status::Ok();
}

void ReadaheadSetter::Start(const std::string& mountpoint, unsigned kb) {
  if (kb == 0) return;
  thread_ = std::thread([mountpoint, kb] {
    const Status st = Apply(mountpoint, kb);
    if (!st.ok()) {
      syslog(LOG_NOTICE, "readahead of %u KiB not set: %s", kb, st.ToString().c_str());
    }
  });
}

void ReadaheadSetter::Join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace udax
