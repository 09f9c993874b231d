// safe_file.h -- opening, reading and replacing state files that someone else may have planted.
//
// udaxfs keeps small state files (the emulated-poison list, its lock, the event log) in
// a state directory (fs/format/state_dir.h) and, for images made before it, found them
// beside the image. A daemon running as root must never be steered by such a file:
//   * every open is O_NOFOLLOW (a symlink is refused, never followed), O_NONBLOCK (a
//     FIFO or a device cannot stall us in open or read) and O_CLOEXEC;
//   * the descriptor is then checked with fstat: a regular file, owned by root or by
//     our own euid (`trusted_owner`), not writable by group or others;
//   * reads are capped (a list file is a few lines; an attacker's is not gigabytes);
//   * replacements are written to a fresh O_CREAT|O_EXCL temporary (a planted name is
//     never opened, let alone truncated) and renamed over the target.
// Every refusal is a Status naming the file and the reason (EPERM for a wrong owner or
// mode, ELOOP for a symlink, EINVAL for a non-regular file, EFBIG for an oversize one).
//
// Thread-safety: all functions may be called concurrently.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <string>

#include "fs/base/status.h"
#include "fs/base/unique_fd.h"

namespace udax {

// The owners a state file or directory may have: root, and the euid we run as (a user's
// own daemon keeps its state in a directory it owns, see UDAX_STATE_DIR).
bool IsTrustedOwner(uid_t uid);

// OK when `st` describes a regular file with a trusted owner and no group/other write
// bit. `path` only names the file in the error.
Status CheckStateFileStat(const struct stat& st, const std::string& path);

// Opens `path` with flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC (mode for O_CREAT) and
// checks the descriptor with CheckStateFileStat. ENOENT is returned as is (callers treat
// a missing file as empty); ELOOP names a symlink; the rest as CheckStateFileStat.
Result<UniqueFd> OpenStateFile(const std::string& path, int flags, mode_t mode = 0600);

// Reads all of `fd` (from its current offset) if it holds at most `cap` bytes. EFBIG
// naming `path` beyond that; EAGAIN never happens on a regular file.
Result<std::string> ReadCapped(int fd, const std::string& path, size_t cap);

// Replaces `path` with `text` atomically: writes DIR/.NAME.tmp.PID.COUNTER.RANDOM created
// with O_CREAT|O_EXCL|O_NOFOLLOW (`mode`), fsyncs it, renames it onto `path` and fsyncs
// the directory. The temporary is removed on failure. Errors carry the failing call's
// errno (EEXIST if, against all odds, the temporary name was taken).
Status ReplaceStateFile(const std::string& path, const std::string& text, mode_t mode = 0600);

// The directory part of a path ("." for a bare name) and the name in it.
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);

}  // namespace udax
