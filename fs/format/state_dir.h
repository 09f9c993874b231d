// state_dir.h -- where udaxfs keeps the state of a target, and the one key function for it.
//
// The emulated-poison list, its lock and the event log of a target live in a state
// directory, /var/lib/udaxfs (or $UDAX_STATE_DIR), never beside the image: a directory
// holding an image may be writable by others (a sticky /var/tmp), and anything a root
// daemon reads or writes there by name can be planted. The state directory must be a
// real directory (not a symlink), owned by root or by our euid, and not writable by
// group or others; we create it 0700 when it is missing, and refuse it otherwise.
//
// The key (one function, ImageStateKey, used by the daemon, fsck and every udaxctl
// command through LocateTargetState):
//   * an image (regular file): "uuid-" + the 32 hex digits of its superblock UUID. The
//     UUID is what makes it this filesystem: it survives a move, a copy to another disk
//     and a reboot that renumbers st_dev, while st_dev+st_ino would not. And it is never
//     reused: mkfs draws a new random UUID, so an image deleted and re-created in a
//     /dev/shm test directory -- which often gets the very same inode number back --
//     does not inherit the old image's poison list or event log. A byte-for-byte copy
//     shares its original's state (as a restored backup should); a user who forges a
//     UUID on an image of their own addresses root's state for that UUID, which lives in
//     a directory they can neither read nor write. An image without a udaxfs superblock
//     (not formatted yet) has no key and no state.
//   * a device (devdax): its name, /dev/dax0.0 -> "dax0.0" (as before; its poison is
//     the kernel's, only its event log lives here).
// Files: KEY.badblocks, KEY.badblocks.lock, KEY.latent, KEY.latent.lock, KEY.events
// (device: NAME.events only). KEY.latent lists poison injected with --no-notify: reads
// fail on it as on the rest, but nothing announces it (badblock_list.h).
//
// Thread-safety: all functions may be called concurrently.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "fs/base/status.h"

namespace udax {

inline constexpr char kDefaultStateDir[] = "/var/lib/udaxfs";

// $UDAX_STATE_DIR when it is set to an absolute path (tests, a user's own daemon), else
// kDefaultStateDir.
std::string StateDirPath();

// OK when `dir` is a directory (not a symlink) owned by root or our euid and not
// writable by group or others. ENOENT when missing; EPERM naming the problem otherwise.
Status CheckStateDir(const std::string& dir);
// CheckStateDir, creating `dir` (0700) first when it is missing.
Status EnsureStateDir(const std::string& dir);

// The key of an image open on `fd` (see the file comment): the UUID of the primary
// superblock when its checksum holds, else of a replica whose checksum holds, else of a
// primary that at least has the magic. ENODATA when the file holds no udaxfs superblock.
Result<std::string> ImageStateKey(int fd, uint64_t size);

struct TargetState {
  std::string dir;        // the state directory
  std::string key;        // ImageStateKey, or the device name
  std::string badblocks;  // DIR/KEY.badblocks; "" for a device (its poison is real)
  std::string lock;       // DIR/KEY.badblocks.lock; "" for a device
  std::string latent;     // DIR/KEY.latent (latent poison, never announced); "" for a device
  std::string events;     // DIR/KEY.events
};

// The state of the target open on `fd` (`target` is its path, for messages and a
// device's name). With `prepare`: the state directory is created if missing and checked,
// and legacy side files beside an image (IMAGE.badblocks, IMAGE.events) are migrated
// into it once (fs/format/legacy_state.h). Without, nothing is created or moved (readers).
// Errors: ENODATA for an image without a superblock, the state directory's refusal,
// EINVAL for a target that is neither a regular file nor a character device.
Result<TargetState> LocateTargetState(int fd, const std::string& target, bool prepare);
// The same, opening `target` read-only (O_NONBLOCK: a FIFO cannot stall us) first.
// EACCES when the caller may not read the target: whoever may not read an image has no
// business with its state.
Result<TargetState> LocateTargetState(const std::string& target, bool prepare);

}  // namespace udax
