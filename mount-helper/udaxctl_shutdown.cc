// udaxctl_shutdown.cc -- `udaxctl shutdown MOUNT`: stop a mounted udaxfs where it stands.
//
// The same request as xfstests' godown (XFS_IOC_GOINGDOWN): every later operation fails
// with EIO and nothing more is written. Unmount as usual afterwards; the next mount
// replays the journal. For tests, and for an administrator who must fence a failing device.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "fs/base/unique_fd.h"
#include "include/udaxfs/ioctl.h"
#include "mount-helper/udaxctl.h"

namespace udax {

int CmdShutdown(const std::string& mount) {
  const UniqueFd fd(open(mount.c_str(), O_RDONLY | O_DIRECTORY));
  if (!fd.valid()) {
    fprintf(stderr, "udaxctl shutdown: %s: %s\n", mount.c_str(), strerror(errno));
    return 1;
  }
  if (ioctl(fd.get(), UDAX_IOC_GOINGDOWN, nullptr) != 0) {
    const int err = errno;
    fprintf(stderr, "udaxctl shutdown: %s: %s%s\n", mount.c_str(), strerror(err),
            err == ENOTTY ? " (not a udaxfs mount)" : "");
    return 1;
  }
  printf("%s: shut down; unmount it, the next mount replays the journal\n", mount.c_str());
  return 0;
}

}  // namespace udax
