// mapped_procs.h -- which processes have a range of a file mapped (for mce_policy).
//
// A process with a FUSE mmap of a file whose media went bad holds pages the kernel filled
// from that file; the kernel knows nothing of our bad block, so the daemon finds those
// processes itself, as memory-failure's collect_procs does for its own page cache: every
// /proc/PID/maps line names the backing file's device and inode number and the file
// offset of the mapping. A FUSE inode's number is the one we report (st_ino = our inode
// number), and its device is the mount's anonymous device (mountinfo's major:minor).
//
// Thread-safety: free functions, no state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace udax {

struct MappedProcess {
  pid_t pid = 0;
  std::string comm;
};

// The device number of the mount at `mount_point` (its last line in `mountinfo`), or
// nullopt if it is not mounted there.
std::optional<dev_t> MountDevice(const std::string& mountinfo_path, const std::string& mount_point);

// Every process under `proc_root` (other than `self`) with a mapping of inode `ino` on
// device `dev` that covers any of the file bytes [off, off+len). Processes that vanish
// or cannot be read are skipped.
std::vector<MappedProcess> FindMappers(const std::string& proc_root, dev_t dev, uint64_t ino,
                                       uint64_t off, uint64_t len, pid_t self);

// One /proc/PID/maps line: does it map bytes of (dev, ino) inside [off, off+len)?
bool MapsLineCovers(const std::string& line, dev_t dev, uint64_t ino, uint64_t off, uint64_t len);

}  // namespace udax
