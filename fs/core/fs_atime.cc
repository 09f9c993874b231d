// fs_atime.cc -- access times under the mount's atime policy (relatime, strictatime,
// noatime, nodiratime).
//
// FUSE marks its inodes S_NOATIME, so the kernel never updates atime: reads and directory
// listings that reach us do. The new atime is kept in DRAM (the inode turns dirty) and
// reaches media with the next change of the inode, at its last release or forget, or at
// unmount, as lazytime does: a read never waits for a journal commit.
#include <time.h>

#include "fs/core/filesystem.h"

namespace udax {
namespace {

constexpr int64_t kRelatimeMaxAge = 24 * 60 * 60;  // relatime still updates once a day

bool NotAfter(int64_t a_sec, uint32_t a_nsec, int64_t b_sec, uint32_t b_nsec) {
  return a_sec < b_sec || (a_sec == b_sec && a_nsec <= b_nsec);
}

}  // namespace

void Filesystem::SetAtimePolicy(AtimePolicy policy) {
  atime_mode_.store(policy.mode, std::memory_order_relaxed);
  atime_dirs_.store(policy.dirs, std::memory_order_relaxed);
}

AtimePolicy Filesystem::atime_policy() const {
  return AtimePolicy{atime_mode_.load(std::memory_order_relaxed),
                     atime_dirs_.load(std::memory_order_relaxed)};
}

bool Filesystem::AtimeDueLocked(const Inode& inode, const timespec& now) const {
  const AtimePolicy policy = atime_policy();
  if (policy.mode == AtimeUpdate::kNever || shutdown_ || options_.read_only || inode.freed) {
    return false;
  }
  if (S_ISDIR(inode.d.mode) && !policy.dirs) return false;
  if (inode.d.attr_flags & kAttrNoAtime) return false;  // chattr +A
  if (policy.mode == AtimeUpdate::kAlways) return true;
  // relatime_need_update(): only when atime is not newer than mtime or ctime, or a day old.
  const DiskInode& d = inode.d;
  return NotAfter(d.atime_sec, d.atime_nsec, d.mtime_sec, d.mtime_nsec) ||
         NotAfter(d.atime_sec, d.atime_nsec, d.ctime_sec, d.ctime_nsec) ||
         now.tv_sec - d.atime_sec >= kRelatimeMaxAge;
}

void Filesystem::TouchAtimeLocked(Inode* inode) {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  if (!AtimeDueLocked(*inode, now)) return;
  inode->d.atime_sec = now.tv_sec;
  inode->d.atime_nsec = static_cast<uint32_t>(now.tv_nsec);
  inode->dirty = true;
}

bool Filesystem::AtimeDue(Inode* inode) {
  if (atime_mode_.load(std::memory_order_relaxed) == AtimeUpdate::kNever) return false;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  MetaLock lock(this);
  return AtimeDueLocked(*inode, now);
}

void Filesystem::TouchAtime(Inode* inode) {
  if (atime_mode_.load(std::memory_order_relaxed) == AtimeUpdate::kNever) return;
  MetaLock lock(this);
  TouchAtimeLocked(inode);
}

}  // namespace udax
