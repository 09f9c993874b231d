// readahead.h -- raises the readahead window of the mount once the kernel has taken the
// daemon's INIT reply.
//
// A FUSE mount's reads arrive in requests no larger than the readahead window, which the
// kernel caps with the bdi's read_ahead_kb (128 KiB): a 1 MiB read() became four 256 KiB
// FUSE_READs, and with read_ahead_kb at 1024 udaxfs read 60% faster (bench/README.md).
// The daemon cannot ask for more at INIT (the kernel offers its current window and libfuse
// never replies with more), and the INIT reply lowers the window to what it says, so the
// sysfs write must come after it: a thread waits for a statfs of the mount point (the
// kernel holds every request until INIT is done) and then writes
// /sys/class/bdi/MAJOR:MINOR/read_ahead_kb.
#pragma once

#include <string>
#include <thread>

#include "fs/base/status.h"

namespace udax {

class ReadaheadSetter {
 public:
  ReadaheadSetter() = default;
  ~ReadaheadSetter() { Join(); }
  ReadaheadSetter(const ReadaheadSetter&) = delete;
  ReadaheadSetter& operator=(const ReadaheadSetter&) = delete;

  // Starts the thread; kb == 0 leaves the kernel's window alone. Failures go to syslog:
  // the mount works either way, only slower.
  void Start(const std::string& mountpoint, unsigned kb);
  // Waits for the thread; call after the session is unmounted (a statfs still waiting
  // for the loop then fails with ENOTCONN).
  void Join();

  // What one attempt does, without the thread: the bdi file of the mount at mountpoint,
  // written with kb. For tests and for the thread.
  static Status Apply(const std::string& mountpoint, unsigned kb);

 private:
  std::thread thread_;
};

}  // namespace udax
