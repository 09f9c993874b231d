// fs_inode.cc -- the inode cache, inode allocation and freeing, the orphan list.
#include <fcntl.h>
#include <syslog.h>
#include <time.h>

#include <cstring>

#include "fs/core/filesystem.h"

namespace udax {
namespace {

void Now(int64_t* sec, uint32_t* nsec) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  *sec = ts.tv_sec;
  *nsec = static_cast<uint32_t>(ts.tv_nsec);
}

}  // namespace

Status Filesystem::CheckWritable() const {
  if (shutdown_) return Status::IoError("filesystem is shut down: " + shutdown_reason_);
  if (options_.read_only) return Status::Error(EROFS, "read-only mount");
  return Status::Ok();
}

void Filesystem::Shutdown(const std::string& why) {
  MetaLock lock(this);
  ShutdownLocked(why);
}

void Filesystem::ShutdownLocked(const std::string& why) {
  if (!shutdown_) {
    // Nothing may be written after this, clients' stores included: take every map back.
    // Read views are void at once (their holders are told, not waited for).
    for (auto& [ino, inode] : inodes_) {
      if (inode->view_page) inode->view_page->Invalidate();
    }
    (void)RevokeAll();
    shutdown_reason_ = why;
    shutdown_ = true;
    const char* path = region_ ? region_->path().c_str() : "?";
    fprintf(stderr, "udaxfs: %s: shutting down: %s\n", path, why.c_str());
    // A daemonized udaxfs has no stderr: the system log keeps the reason.
    syslog(LOG_ERR, "%s: shutting down: %s", path, why.c_str());
  }
}

Status Filesystem::Commit() {
  if (shutdown_) {
    txn_.Clear();
    return Status::IoError("filesystem is shut down: " + shutdown_reason_);
  }
  Status st = journal_->Commit(txn_);
  txn_.Clear();
  if (!st.ok()) {
    ShutdownLocked("journal commit failed: " + st.message());
    return Status::IoError(st.message());
  }
  return Status::Ok();
}

Result<Inode*> Filesystem::Get(uint64_t ino) {
  if (shutdown_) return Status::IoError("filesystem is shut down: " + shutdown_reason_);
  if (auto sick = sick_.find(ino); sick != sick_.end()) {
    return Status::IoError("inode " + std::to_string(ino) + " is sick: " + sick->second);
  }
  auto it = inodes_.find(ino);
  if (it != inodes_.end()) {
    if (it->second->freed) return Status::Error(ESTALE, "stale inode");
    return it->second.get();
  }
  if (ino == 0 || ino >= sb_.inode_count) return Status::Error(ESTALE, "no such inode");
  auto inode = std::make_unique<Inode>(ino);
  // A free slot (magic 0, not allocated) is an answer, not damage: it takes the first copy.
  const bool in_use = space_.InoAllocated(ino);
  UDAX_RETURN_IF_ERROR(ReadMetaObj(InodeOffset(sb_, ino), &inode->d, [&](const void* bytes) {
    const auto* d = static_cast<const DiskInode*>(bytes);
    return d->magic == 0 && !in_use ? Status::Ok() : InodeVerify(*d, ino);
  }));
  if (inode->d.magic == 0 && !in_use) {
    return Status::Error(ESTALE, "inode " + std::to_string(ino) + " is not in use");
  }
  Status st = InodeVerify(inode->d, ino);
  if (!st.ok()) return Status::IoError(st.message());
  Inode* raw = inode.get();
  inodes_.emplace(ino, std::move(inode));
  return raw;
}

void Filesystem::StageInode(Inode* inode) {
  InodeSeal(&inode->d);
  txn_.WriteObj(InodeOffset(sb_, inode->ino), inode->d);
  inode->dirty = false;
}

Result<Inode*> Filesystem::AllocInode(uint32_t mode, const Caller& caller, Inode* parent) {
  // A free slot whose record reads in neither copy (bad media) stays reserved, so that
  // no later allocation tries it again, and the next number is tried.
  uint64_t ino = 0;
  DiskInode old;
  for (int attempt = 0;; ++attempt) {
    UDAX_ASSIGN_OR_RETURN(ino, space_.ReserveIno(parent ? parent->ino : 0));
    Status st = ReadMeta(InodeOffset(sb_, ino), &old, sizeof(old), nullptr);
    if (st.ok()) break;
    if (st.code() != EIO || attempt == 8) {
      space_.UnreserveIno(ino);
      return st;
    }
  }
  space_.StageAllocIno(&txn_, ino);
  auto inode = std::make_unique<Inode>(ino);
  DiskInode& d = inode->d;
  std::memset(&d, 0, sizeof(d));
  d.magic = kInodeMagic;
  d.generation = old.generation + 1;  // never reuse (ino, generation) for file handles
  d.mode = mode;
  d.uid = caller.uid;
  d.gid = caller.gid;
  if (parent && (parent->d.mode & S_ISGID)) {
    d.gid = parent->d.gid;  // BSD group semantics in setgid directories
    if (S_ISDIR(mode)) d.mode |= S_ISGID;
  }
  Now(&d.btime_sec, &d.btime_nsec);
  d.atime_sec = d.mtime_sec = d.ctime_sec = d.btime_sec;
  d.atime_nsec = d.mtime_nsec = d.ctime_nsec = d.btime_nsec;
  inode->extents.loaded = true;
  Inode* raw = inode.get();
  inodes_[ino] = std::move(inode);
  return raw;
}

void Filesystem::FillStat(const Inode& inode, struct stat* st) const {
  std::memset(st, 0, sizeof(*st));
  const DiskInode& d = inode.d;
  st->st_ino = inode.ino;
  st->st_mode = d.mode;
  st->st_nlink = d.nlink;
  st->st_uid = d.uid;
  st->st_gid = d.gid;
  st->st_rdev = d.rdev;
  st->st_size = static_cast<off_t>(ViewSize(inode));  // with writable views' appends
  st->st_blksize = 4096;
  st->st_blocks = static_cast<blkcnt_t>(d.au_blocks * (sb_.au_size / 512));
  st->st_atim = {d.atime_sec, d.atime_nsec};
  st->st_mtim = {d.mtime_sec, d.mtime_nsec};
  st->st_ctim = {d.ctime_sec, d.ctime_nsec};
}

EntryOut Filesystem::MakeEntry(Inode* inode) {
  EntryOut out;
  out.ino = inode->ino;
  out.generation = inode->d.generation;
  FillStat(*inode, &out.attr);
  inode->nlookup++;
  return out;
}

void Filesystem::MaybeEvict(Inode* inode) {
  if (inode->nlookup == 0 && inode->nopen == 0 && !inode->dirty && inode->ino != kRootIno) {
    inodes_.erase(inode->ino);
  }
}

Status Filesystem::DropLink(Inode* inode) {
  if (inode->d.nlink > 0) return Status::Ok();
  if (!inode->orphan) {  // the unlink and the orphan record commit together
    inode->d.orphan_next = state_.orphan_head;
    state_.orphan_head = inode->ino;
    JournalStateSeal(&state_);
    txn_.WriteObj(journal_->state_offset(), state_);
    StageInode(inode);  // its orphan link must reach media with the list head
    inode->orphan = true;
  }
  if (inode->nlookup == 0 && inode->nopen == 0) return FreeInode(inode);
  return Status::Ok();
}

Status Filesystem::RemoveOrphan(Inode* inode) {
  if (!inode->orphan) return Status::Ok();
  if (state_.orphan_head == inode->ino) {
    state_.orphan_head = inode->d.orphan_next;
    JournalStateSeal(&state_);
    txn_.WriteObj(journal_->state_offset(), state_);
  } else {
    uint64_t cur = state_.orphan_head;
    for (uint64_t guard = 0; cur != 0 && guard < sb_.inode_count; ++guard) {
      UDAX_ASSIGN_OR_RETURN(Inode* p, Get(cur));
      if (p->d.orphan_next == inode->ino) {
        p->d.orphan_next = inode->d.orphan_next;
        StageInode(p);
        break;
      }
      cur = p->d.orphan_next;
    }
  }
  inode->d.orphan_next = 0;
  inode->orphan = false;
  return Status::Ok();
}

Status Filesystem::FreeInode(Inode* inode) {
  // No revoke here: a direct map's lease holds the inode open, so none is left now.
  UDAX_RETURN_IF_ERROR(LoadExtents(inode));
  UDAX_RETURN_IF_ERROR(RemoveExtents(inode, 0, UINT64_MAX));  // data and attribute blob
  UDAX_RETURN_IF_ERROR(RemoveOrphan(inode));
  const uint32_t generation = inode->d.generation;
  std::memset(&inode->d, 0, sizeof(inode->d));
  inode->d.generation = generation;
  StageInode(inode);
  space_.StageFreeIno(&txn_, inode->ino);
  inode->freed = true;
  inode->extents = ExtentMap{};
  inode->xattrs.reset();
  return Status::Ok();
}

}  // namespace udax
