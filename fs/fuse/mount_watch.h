// mount_watch.h -- follows the kernel's flags of our own mount (atime policy), which
// change under us with `mount -o remount,strictatime` and friends.
//
// The kernel signals every mount-table change with POLLPRI on /proc/self/mountinfo; a
// thread waits for it and re-reads our line. (libfuse 3.14 never tells a daemon about
// remounts.)
#pragma once

#include <string>
#include <string_view>

#include "fs/core/filesystem.h"
#include "fs/base/source_thread.h"
#include "fs/base/unique_fd.h"

namespace udax {

// The atime policy that the per-mount options of a mountinfo line say ("rw,relatime").
AtimePolicy AtimePolicyFromOptions(std::string_view options);
// The per-mount options of the last mount at `mountpoint` in mountinfo text; empty when
// there is none. Octal escapes in mount points (\040) are decoded.
std::string MountOptionsOf(std::string_view mountinfo, std::string_view mountpoint);

class MountWatch {
 public:
  MountWatch() = default;
  MountWatch(const MountWatch&) = delete;
  MountWatch& operator=(const MountWatch&) = delete;
  ~MountWatch() { Stop(); }

  // Applies the current policy to `fs` and keeps it current until Stop. `mountpoint` must
  // be canonical (realpath). Errors are reported and leave the default (relatime).
  Status Start(Filesystem* fs, std::string mountpoint);
  void Stop() { thread_.Stop(); }

 private:
  void Run();
  void Refresh();

  Filesystem* fs_ = nullptr;
  std::string mountpoint_;
  UniqueFd mountinfo_;
  SourceThread thread_;
};

}  // namespace udax
