// state_dir.cc -- the state directory, its checks, and the image key (see state_dir.h).
#include "fs/format/state_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fs/format/layout.h"
#include "fs/base/unique_fd.h"
#include "fs/format/legacy_state.h"
#include "fs/base/safe_file.h"

namespace udax {
namespace {

bool HasMagic(const DiskSuperblock& sb) {
  return std::memcmp(sb.magic, kSuperMagic, sizeof(kSuperMagic)) == 0;
}

bool ReadSuperblockAt(int fd, uint64_t off, DiskSuperblock* sb) {
  return pread(fd, sb, sizeof(*sb), static_cast<off_t>(off)) == static_cast<ssize_t>(sizeof(*sb));
}

// A device of a multi-device filesystem is keyed by its own UUID: each has its own
// poison, in its own offsets, as each real device has its own badblocks.
std::string UuidKey(const DiskSuperblock& sb) {
  std::string key = "uuid-";
  char hex[3];
  const bool member = IsMultiDevice(sb) && sb.this_device < kMaxDevices;
  for (uint8_t b : member ? sb.devices[sb.this_device].uuid : sb.uuid) {
    std::snprintf(hex, sizeof(hex), "%02x", b);
    key += hex;
  }
  return key;
}

}  // namespace

std::string StateDirPath() {
  const char* env = getenv("UDAX_STATE_DIR");
  if (env != nullptr && env[0] == '/') return env;
  return kDefaultStateDir;
}

Status CheckStateDir(const std::string& dir) {
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return Status::FromErrno(dir);
  const std::string refused = "udaxfs state directory " + dir + ": ";
  if (S_ISLNK(st.st_mode)) {
    return Status::Error(EPERM, refused + "a symbolic link: refused (make it a directory owned by root, mode 0700)");
  }
  if (!S_ISDIR(st.st_mode)) return Status::Error(EPERM, refused + "not a directory: refused");
  if (!IsTrustedOwner(st.st_uid)) {
    return Status::Error(EPERM, refused + "owned by uid " + std::to_string(st.st_uid) +
                                    ", not root: refused (chown root " + dir + ")");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status::Error(EPERM, refused + "writable by group or others: refused (chmod 0700 " +
                                    dir + ")");
  }
  return Status::Ok();
}

Status EnsureStateDir(const std::string& dir) {
  // 0700: the event log names files and the list says which blocks are bad; neither is
  // anyone else's business (udaxctl events as another user gets EACCES).
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno(dir + ": mkdir");
  return CheckStateDir(dir);
}

Result<std::string> ImageStateKey(int fd, uint64_t size) {
  DiskSuperblock primary;
  const bool have_primary = ReadSuperblockAt(fd, 0, &primary) && HasMagic(primary);
  if (have_primary && SuperblockVerify(primary, size).ok()) return UuidKey(primary);
  if (have_primary && DeviceSuperblockVerify(primary, size).ok()) return UuidKey(primary);
  // The replica sits in the last 4 KiB of the region, which is the file rounded down to
  // the allocation unit (4 KiB or 2 MiB).
  for (uint64_t au : {kAuSize4K, kAuSize2M}) {
    const uint64_t region = size / au * au;
    if (region < kMinRegionSize) continue;
    DiskSuperblock replica;
    // A multi-device replica names device 0, not the last device it sits on.
    if (ReadSuperblockAt(fd, region - kBlockSize, &replica) && HasMagic(replica) &&
        !IsMultiDevice(replica) && SuperblockVerify(replica, size).ok()) {
      return UuidKey(replica);
    }
  }
  if (have_primary) return UuidKey(primary);
  return Status::Error(ENODATA, "no udaxfs superblock (not formatted yet?)");
}

Result<TargetState> LocateTargetState(int fd, const std::string& target, bool prepare) {
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno(target + ": fstat");
  TargetState s;
  s.dir = StateDirPath();
  if (S_ISCHR(st.st_mode)) {
    s.key = BaseName(target);
  } else if (S_ISREG(st.st_mode)) {
    Result<std::string> key = ImageStateKey(fd, static_cast<uint64_t>(st.st_size));
    if (!key.ok()) return Status::Error(key.status().code(), target + ": " + key.status().message());
    s.key = key.value();
    s.badblocks = s.dir + "/" + s.key + ".badblocks";
    s.latent = s.dir + "/" + s.key + ".latent";
    s.lock = s.badblocks + ".lock";
  } else {
    return Status::InvalidArgument(target + ": not an image file or a device");
  }
  s.events = s.dir + "/" + s.key + ".events";
  if (prepare) {
    UDAX_RETURN_IF_ERROR(EnsureStateDir(s.dir));
    if (S_ISREG(st.st_mode)) MigrateLegacyState(target, st, s);
  }
  return s;
}

Result<TargetState> LocateTargetState(const std::string& target, bool prepare) {
  UniqueFd fd(open(target.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(target);
  return LocateTargetState(fd.get(), target, prepare);
}

}  // namespace udax
