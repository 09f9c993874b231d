// fs_mount.cc -- formatting, mounting (verify, replay, load, orphan cleanup), unmounting.
#include <fcntl.h>
#include <sys/random.h>
#include <time.h>

#include <cstring>

#include "fs/core/dir_ops.h"
#include "fs/core/filesystem.h"

namespace udax {

Status Filesystem::Format(Region* region, const MkfsParams& params_in) {
  MkfsParams params = params_in;
  if (params.region_size == 0 || params.region_size > region->size()) {
    params.region_size = region->size();
  }
  UDAX_ASSIGN_OR_RETURN(DiskSuperblock sb, ComputeGeometry(params));
  if (sb.region_size > region->size()) {
    return Status::InvalidArgument(region->path() + ": the devices span fewer bytes than the geometry");
  }
  if (getrandom(sb.uuid, sizeof(sb.uuid), 0) != sizeof(sb.uuid) ||
      getrandom(&sb.hash_seed, sizeof(sb.hash_seed), 0) != sizeof(sb.hash_seed)) {
    return Status::FromErrno("getrandom");
  }
  for (uint32_t d = 0; d < sb.device_count; ++d) {
    if (getrandom(sb.devices[d].uuid, sizeof(sb.devices[d].uuid), 0) != sizeof(sb.devices[d].uuid)) {
      return Status::FromErrno("getrandom");
    }
  }
  sb.mkfs_time_sec = static_cast<uint64_t>(time(nullptr));

  // Invalidate any old superblock first, so a crash mid-mkfs leaves no mountable mix.
  UDAX_RETURN_IF_ERROR(region->ZeroSafe(0, kBlockSize, true));
  UDAX_RETURN_IF_ERROR(region->ZeroSafe(sb.replica_off, kBlockSize, true));
  for (uint32_t d = 1; d < sb.device_count; ++d) {
    UDAX_RETURN_IF_ERROR(region->ZeroSafe(sb.devices[d].start, kBlockSize, true));
  }
  // Metadata areas start zeroed (journal, bitmaps, inode table, rmap area).
  UDAX_RETURN_IF_ERROR(region->ZeroSafe(sb.journal_off, sb.data_off - sb.journal_off, false));
  if (HasMetaCopies(sb)) UDAX_RETURN_IF_ERROR(region->ZeroSafe(sb.itable2_off, sb.itable2_len, false));

  DiskJournalState state{};
  state.magic = kJournalStateMagic;
  JournalStateSeal(&state);
  UDAX_RETURN_IF_ERROR(region->WriteSafe(sb.journal_off, &state, sizeof(state), false));

  // AU bitmap: static metadata AUs (before data_off, and the replica's AU) are used, as
  // are the bits past au_count in the last word.
  {
    const uint64_t words = (sb.au_count + 63) / 64;
    std::vector<uint64_t> bits(words, 0);
    auto set = [&](uint64_t b) { bits[b / 64] |= 1ull << (b % 64); };
    for (uint64_t b = 0; b < FirstDataAu(sb); ++b) set(b);
    for (uint64_t b = LastDataAu(sb); b < sb.au_count; ++b) set(b);
    for (uint64_t b = sb.au_count; b < words * 64; ++b) set(b);
    for (uint32_t d = 1; d < sb.device_count; ++d) set(DeviceFirstAu(sb, d));
    UDAX_RETURN_IF_ERROR(region->WriteSafe(sb.abitmap_off, bits.data(), words * 8, false));
  }
  // Root directory: inode 1 with one empty bucket in the first data AU that has a
  // partner (the first data AU on one device; on several, the first whose partner lies
  // on another device), and its copy in that partner.
  uint64_t root_au = FirstDataAu(sb);
  if (IsMultiDevice(sb)) {
    // Neither AU of the pair may be a device's superblock copy (the first AU of each
    // device but the first), which pairs with an AU of device 0 when device 0 is large.
    auto usable = [&](uint64_t a) {
      const uint64_t p = CopyAu(sb, a);
      return p != 0 && !IsDeviceSuperblockAu(sb, a) && !IsDeviceSuperblockAu(sb, p);
    };
    while (root_au < LastDataAu(sb) && !usable(root_au)) ++root_au;
    if (root_au == LastDataAu(sb)) {
      return Status::InvalidArgument("no pair of AUs on two devices for the root directory");
    }
  }
  const uint64_t root_copy = CopyAu(sb, root_au);
  {
    for (uint64_t a : {root_au, root_copy}) {
      if (a == 0) continue;
      uint64_t word;
      UDAX_RETURN_IF_ERROR(region->ReadSafe(sb.abitmap_off + a / 64 * 8, &word, 8));
      word |= 1ull << (a % 64);
      UDAX_RETURN_IF_ERROR(region->WriteSafe(sb.abitmap_off + a / 64 * 8, &word, 8, false));
    }
    const uint64_t ibits = 0b11;  // inode 0 (never used) and the root
    UDAX_RETURN_IF_ERROR(region->WriteSafe(sb.ibitmap_off, &ibits, sizeof(ibits), false));

    uint8_t block[kBlockSize];
    DirBlockEncode(DirBlock{}, block);
    UDAX_RETURN_IF_ERROR(region->WriteSafe(root_au * sb.au_size, block, kBlockSize, false));
    if (root_copy != 0) {
      UDAX_RETURN_IF_ERROR(region->WriteSafe(root_copy * sb.au_size, block, kBlockSize, false));
    }

    DiskInode root;
    std::memset(&root, 0, sizeof(root));
    root.magic = kInodeMagic;
    root.generation = 1;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    root.uid = params.root_uid;
    root.gid = params.root_gid;
    root.size = kBlockSize;
    root.au_blocks = 1;
    root.parent = kRootIno;
    root.dir_buckets = 1;
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    root.atime_sec = root.mtime_sec = root.ctime_sec = root.btime_sec = ts.tv_sec;
    root.atime_nsec = root.mtime_nsec = root.ctime_nsec = root.btime_nsec =
        static_cast<uint32_t>(ts.tv_nsec);
    root.ext_count = 1;
    root.extents[0] = DiskExtent{0, root_au, 1, 0, 0, 0};
    ExtentSeal(&root.extents[0], kRootIno);
    InodeSeal(&root);
    UDAX_RETURN_IF_ERROR(
        region->WriteSafe(InodeOffset(sb, kRootIno), &root, sizeof(root), false));
    if (HasMetaCopies(sb)) {
      UDAX_RETURN_IF_ERROR(region->WriteSafe(CopyOffset(sb, InodeOffset(sb, kRootIno)), &root,
                                             sizeof(root), false));
    }
  }
  // Reverse map: the static areas and the root directory's bucket.
  ReverseMap rmap(region, sb);
  UDAX_RETURN_IF_ERROR(rmap.WriteStatic(false));
  for (uint64_t a : {root_au, root_copy}) {
    if (a == 0) continue;
    const DiskRmapRecord rec =
        ReverseMap::Encode(a, Owner{OwnerKind::kDirectory, kRootIno, 1, 0, a == root_copy});
    UDAX_RETURN_IF_ERROR(region->WriteSafe(sb.rmap_off + a * sizeof(rec), &rec,
                                           sizeof(rec), false));
  }
  UDAX_RETURN_IF_ERROR(region->Persist(sb.journal_off, sb.data_off - sb.journal_off));
  UDAX_RETURN_IF_ERROR(region->Persist(root_au * sb.au_size, kBlockSize));
  if (HasMetaCopies(sb)) {
    UDAX_RETURN_IF_ERROR(region->Persist(sb.itable2_off, sb.itable2_len));
    UDAX_RETURN_IF_ERROR(region->Persist(root_copy * sb.au_size, kBlockSize));
  }
  // Superblocks last: replica, the other devices' copies, then primary.
  SuperblockSeal(&sb);
  UDAX_RETURN_IF_ERROR(region->WriteSafe(sb.replica_off, &sb, sizeof(sb), true));
  for (uint32_t d = 1; d < sb.device_count; ++d) {
    const DiskSuperblock copy = DeviceCopy(sb, d);
    UDAX_RETURN_IF_ERROR(region->WriteSafe(sb.devices[d].start, &copy, sizeof(copy), true));
  }
  UDAX_RETURN_IF_ERROR(region->WriteSafe(0, &sb, sizeof(sb), true));
  return Status::Ok();
}

Result<std::unique_ptr<Filesystem>> Filesystem::Mount(const std::string& target,
                                                      const MountOptions& options) {
  RegionOptions ro;
  ro.read_only = options.read_only;
  ro.allow_missing = options.degraded;
  if (options.read_only && options.upgradable) {
    // Writable when the target allows it (nothing is written until MakeWritable).
    ro.read_only = false;
    auto writable = Region::Open(target, ro);
    if (writable.ok()) return MountRegion(std::move(writable).value(), options);
    if (writable.status().code() != EACCES && writable.status().code() != EROFS &&
        writable.status().code() != EPERM) {
      return writable.status();
    }
    ro.read_only = true;
  }
  UDAX_ASSIGN_OR_RETURN(std::unique_ptr<Region> region, Region::Open(target, ro));
  return MountRegion(std::move(region), options);
}

Result<std::unique_ptr<Filesystem>> Filesystem::MountRegion(std::unique_ptr<Region> owned,
                                                            const MountOptions& options) {
  std::unique_ptr<Filesystem> fs(new Filesystem());
  fs->options_ = options;
  fs->region_ = std::move(owned);
  Region* region = fs->region_.get();
  const std::string target = region->path();
  if (region->size() < kMinRegionSize / 2) {
    return Status::InvalidArgument(target + ": too small to hold a udaxfs (" +
                                   std::to_string(region->size()) + " bytes)");
  }
  // Damage found before anything is written: a read-write mount refuses, naming what is
  // damaged; a read-only mount goes on without the damaged structure when it can, and
  // says so. Nothing below writes before every check has passed, except the journal
  // replay (what fsck would do first too).
  auto damaged = [&](const std::string& what) -> Status {
    if (!options.read_only) {
      return Status::Corruption(target + ": " + what +
                                "; run fsck.udaxfs --repair (or mount read-only)");
    }
    fprintf(stderr, "udaxfs: %s: %s; mounting read-only regardless\n", target.c_str(),
            what.c_str());
    return Status::Ok();
  };

  // Primary superblock, or the replica at the end of the filesystem if it is damaged.
  // A primary that does not read (poison) is as bad as one whose checksum fails.
  DiskSuperblock sb;
  Status st = region->ReadSafe(0, &sb, sizeof(sb));
  if (st.ok()) {
    Status lone = RefuseLoneDevice(sb, region->size(), region->device_count());
    if (!lone.ok()) return Status::InvalidArgument(target + ": " + lone.message());
  }
  if (st.ok()) st = SuperblockVerify(sb, region->size());
  bool restore_primary = false;
  if (!st.ok()) {
    Status primary = st;
    // The replica's location depends on the region size, which the damaged primary may not
    // tell us: try the end of the device.
    DiskSuperblock replica;
    UDAX_RETURN_IF_ERROR(
        region->ReadSafe(region->size() - kBlockSize, &replica, sizeof(replica)));
    if (!SuperblockVerify(replica, region->size()).ok() ||
        replica.region_size != region->size()) {
      return Status::Error(primary.code(), target + ": " + primary.message());
    }
    fprintf(stderr, "udaxfs: %s: primary superblock bad (%s); using the replica\n",
            target.c_str(), primary.message().c_str());
    sb = replica;
    restore_primary = !options.read_only;
  }
  // The devices as mapped (SpanRegion found them by their own copies) must be the ones
  // the superblock describes.
  bool same_devices = region->device_count() == DeviceCount(sb);
  for (uint32_t d = 0; same_devices && d < DeviceCount(sb); ++d) {
    same_devices = !IsMultiDevice(sb) || region->device_start(d) == sb.devices[d].start;
  }
  if (!same_devices) {
    return Status::InvalidArgument(target + ": the superblock describes " +
                                   std::to_string(DeviceCount(sb)) + " device(s), not the " +
                                   std::to_string(region->device_count()) + " named");
  }
  fs->sb_ = sb;
  // Devices lost earlier stay lost (their copies are stale), named or not, before the
  // journal replay writes anything; the span lost others as it opened (left out with -o
  // degraded, or an older copy of itself). Each is said once, with why.
  for (uint32_t d = 1; d < DeviceCount(sb); ++d) {
    if (DeviceLost(sb, d)) {
      UDAX_RETURN_IF_ERROR(region->LoseDevice(d));
      fprintf(stderr, "udaxfs: %s: degraded: device %u was lost; its file data fails with EIO, "
              "metadata is served from the other copies\n", target.c_str(), d);
    } else if (region->device_stale(d)) {
      fprintf(stderr, "udaxfs: %s: degraded: device %u (%s) is an older copy of itself (its "
              "superblock is behind the one last written to it: a restored backup?): treated "
              "as lost; its file data fails with EIO (unmount and name the current device, "
              "then udaxctl add-device; or udaxctl replace-device)\n",
              target.c_str(), d, region->device(d)->path().c_str());
    } else if (region->device_lost(d)) {
      fprintf(stderr, "udaxfs: %s: degraded: device %u is missing (-o degraded): treated as "
              "lost; its file data fails with EIO (udaxctl replace-device puts a blank device "
              "in its place)\n",
              target.c_str(), d);
    }
  }
  // File data that went with a replaced device reads EIO, now as when it was replaced.
  for (uint32_t i = 0; i < sb.lost_run_count; ++i) {
    region->MarkDataLost({sb.lost_runs[i].au * sb.au_size, sb.lost_runs[i].count * sb.au_size});
  }

  fs->journal_ = std::make_unique<Journal>(region, sb);
  // A committed transaction must be sane before any of it is applied.
  auto pending = fs->journal_->NeedsReplay();
  if (!pending.ok()) {
    if (pending.status().code() != EUCLEAN) return pending.status();
    UDAX_RETURN_IF_ERROR(damaged(pending.status().message()));
  } else if (!options.read_only) {
    UDAX_ASSIGN_OR_RETURN(bool replayed, fs->journal_->Replay());
    fs->replayed_at_mount_ = replayed;
  } else if (*pending) {
    // A read-only mount cannot replay. The last transaction is always applied before the
    // next starts, so it matters only after a crash right after a commit: then say so.
    fprintf(stderr, "udaxfs: %s: the journal holds an unapplied transaction; "
            "mounting read-only without it (mount read-write once to replay)\n",
            target.c_str());
  }
  // Not shared yet, but StartWriting and the checks below are also run later, under mu_.
  MetaLock lock(fs.get());
  UDAX_RETURN_IF_ERROR(region->ReadSafe(sb.journal_off, &fs->state_, sizeof(fs->state_)));
  UDAX_RETURN_IF_ERROR(fs->space_.Load(region, sb));  // (retires the lost devices)
  for (const std::string& what : fs->FixedMetadataDamage()) {
    UDAX_RETURN_IF_ERROR(damaged(what));
  }
  if (!JournalStateValid(fs->state_)) {
    std::memset(&fs->state_, 0, sizeof(fs->state_));  // read-only: no orphan list needed
  }
  // The root must be a directory.
  auto root = fs->Get(kRootIno);
  if (!root.ok()) return Status::Corruption(target + ": root inode: " + root.status().message());
  if (!S_ISDIR((*root)->d.mode)) return Status::Corruption(target + ": root is not a directory");
  (*root)->nlookup = 1;  // the kernel's implicit reference

  if (options.read_only) return fs;
  UDAX_RETURN_IF_ERROR(fs->StartWriting(restore_primary));
  return fs;
}

Status Filesystem::StartWriting(bool restore_primary) {
  const std::string target = region_->path();
  Region* region = region_.get();
  const DiskSuperblock& sb = sb_;
  // Files unlinked while open when the filesystem last stopped are freed below; freeing
  // a damaged orphan could free another file's AUs, so the whole list is checked first.
  auto refuse = [&](const std::string& what) {
    return Status::Corruption(target + ": " + what + "; run fsck.udaxfs --repair (or mount read-only)");
  };
  std::vector<Inode*> orphans;
  std::unordered_map<uint64_t, bool> seen;
  for (uint64_t cur = state_.orphan_head; cur != 0; cur = orphans.back()->d.orphan_next) {
    const std::string who = "orphan list: inode " + std::to_string(cur);
    if (seen[cur] || !space_.InoAllocated(cur)) return refuse(who + " is free or listed twice");
    seen[cur] = true;
    auto orphan = Get(cur);
    if (!orphan.ok()) return refuse(who + ": " + orphan.status().message());
    Inode* o = *orphan;
    Status loaded = LoadExtents(o);
    if (!loaded.ok()) return refuse(who + ": " + loaded.message());
    for (const auto& [file_au, e] : o->extents.by_file) {
      for (uint64_t i = 0; i < e.len; ++i) {
        auto rec = space_.ReadOwner(e.phys_au + i);
        const Owner want = DataOwner(*o, file_au + i);
        if (!space_.AuAllocated(e.phys_au + i) || !rec.ok() || rec->ino != want.ino ||
            rec->kind != want.kind || rec->file_au != want.file_au) {
          return refuse(who + " maps AU " + std::to_string(e.phys_au + i) +
                         ", which the maps do not give it");
        }
      }
    }
    orphans.push_back(o);
  }

  // Every check passed: from here on the mount writes.
  options_.read_only = false;
  if (restore_primary) {
    UDAX_RETURN_IF_ERROR(region->WriteSafe(0, &sb, sizeof(sb), true));
    // The rewrite clears the emulated poison under it, as the media handler's do.
    UDAX_RETURN_IF_ERROR(region->ClearRewrittenPoison(0, sizeof(sb)));
  }
  {
    // A label change cut between its two superblock writes (fs_attr.cc) leaves a sound
    // replica that differs from the primary in the label alone: the primary is newer.
    DiskSuperblock replica;
    if (!restore_primary && region->ReadSafe(sb.replica_off, &replica, sizeof(replica)).ok() &&
        SuperblockVerify(replica, region->size()).ok()) {
      DiskSuperblock relabeled = replica;
      std::memcpy(relabeled.label, sb.label, sizeof(sb.label));
      SuperblockSeal(&relabeled);
      if (std::memcmp(&relabeled, &replica, sizeof(sb)) != 0 &&
          std::memcmp(&relabeled, &sb, sizeof(sb)) == 0) {
        UDAX_RETURN_IF_ERROR(region->WriteSafe(sb.replica_off, &sb, sizeof(sb), true));
      }
    }
  }
  // Devices lost while this mount was read-only are said on media now, before anything
  // is written (their copies are stale from here on).
  UDAX_RETURN_IF_ERROR(RecordLostDevices(0));
  // The other devices' superblock copies follow the primary (a label change cut before
  // it reached them; fsck says the same).
  for (uint32_t d = 1; d < DeviceCount(sb); ++d) {
    if (region->device_lost(d)) continue;
    const DiskSuperblock want = DeviceCopy(sb, d);
    DiskSuperblock have;
    if (region->ReadSafe(sb.devices[d].start, &have, sizeof(have)).ok() &&
        std::memcmp(&have, &want, sizeof(want)) == 0) {
      continue;
    }
    UDAX_RETURN_IF_ERROR(region->WriteSafe(sb.devices[d].start, &want, sizeof(want), true));
    UDAX_RETURN_IF_ERROR(region->ClearRewrittenPoison(sb.devices[d].start, sizeof(want)));
  }
  // Several devices: a new generation on every device that is here, so a copy of one
  // taken before this mount is known for older when it comes back.
  if (IsMultiDevice(sb)) UDAX_RETURN_IF_ERROR(WriteSuperblocks(sb_, "recording the mount"));
  state_.mount_count++;
  JournalStateSeal(&state_);
  txn_.WriteObj(journal_->state_offset(), state_);
  UDAX_RETURN_IF_ERROR(Commit());
  for (Inode* o : orphans) {
    o->orphan = true;
    if (o->nlookup > 0 || o->nopen > 0) continue;  // reached by a handle: freed when let go
    const uint64_t ino = o->ino;
    UDAX_RETURN_IF_ERROR(FreeInode(o));
    UDAX_RETURN_IF_ERROR(Commit());
    inodes_.erase(ino);
  }
  return Status::Ok();
}

std::vector<std::string> Filesystem::FixedMetadataDamage() const {
  std::vector<std::string> damage;
  if (!JournalStateValid(state_)) damage.push_back("journal state block is damaged");
  // The static areas' bits: a bitmap that frees them would hand metadata out as data.
  bool static_free = false;
  for (const StaticArea& area : StaticAreas(sb_)) {
    for (uint64_t au = area.off / sb_.au_size; !static_free && au < (area.off + area.len) / sb_.au_size; ++au) {
      if (space_.AuAllocated(au)) continue;
      damage.push_back("AU bitmap is damaged (static metadata AU " + std::to_string(au) +
                       " marked free)");
      static_free = true;
    }
  }
  if (!space_.AuAllocated(sb_.au_count - 1) || !space_.InoAllocated(0) ||
      !space_.InoAllocated(kRootIno)) {
    damage.push_back("allocation bitmaps are damaged (reserved bits clear)");
  }
  return damage;
}

Status Filesystem::MakeWritable() {
  MetaLock lock(this);
  if (shutdown_) return Status::IoError("filesystem is shut down: " + shutdown_reason_);
  if (!options_.read_only) return Status::Ok();
  const std::string target = region_->path();
  if (region_->read_only()) {
    return Status::Error(EROFS, target + ": the target could only be opened read-only");
  }
  // What a read-write mount refuses (MountRegion), checked again: this mount did not.
  auto refuse = [&](const std::string& what) {
    return Status::Corruption(target + ": " + what + "; run fsck.udaxfs --repair");
  };
  auto pending = journal_->NeedsReplay();
  if (!pending.ok()) return refuse(pending.status().message());
  if (*pending) {
    // Replaying now would change what the caches hold: a fresh mount must do it.
    return Status::Busy(target + ": the journal holds a transaction this read-only mount "
                        "has not applied; unmount and mount read-write");
  }
  const std::vector<std::string> damage = FixedMetadataDamage();
  if (!damage.empty()) return refuse(damage.front());
  DiskSuperblock primary;
  const bool restore_primary = !region_->ReadSafe(0, &primary, sizeof(primary)).ok() ||
                               !SuperblockVerify(primary, region_->size()).ok();
  return StartWriting(restore_primary);
}

Status Filesystem::Unmount() {
  MetaLock lock(this);
  if (shutdown_ || options_.read_only) return Status::Ok();
  for (auto& [ino, inode] : inodes_) {
    // What writable views appended (their holders are gone: nothing stores any more).
    if (!inode->freed) FoldViewSizeLocked(inode.get());
    if (inode->dirty && !inode->freed) StageInode(inode.get());
  }
  UDAX_RETURN_IF_ERROR(Commit());
  return journal_->Retire();
}

Filesystem::~Filesystem() = default;

struct statvfs Filesystem::StatFs() {
  MetaLock lock(this);
  struct statvfs s {};
  s.f_bsize = sb_.au_size;
  s.f_frsize = sb_.au_size;
  s.f_blocks = sb_.au_count;
  // The AU pairs kept back for metadata copies are free, but not for file data, as
  // ext4's reserved blocks: in f_bfree, not in f_bavail. What is kept back counts at the
  // pool's target, not its level of the moment (metadata takes from the pool and gives
  // back to it), so that f_bavail moves with what is stored, not with the pool.
  s.f_bfree = FreeAus() + 2 * space_.pooled_pairs();
  const uint64_t kept = 2 * space_.pool_target();
  s.f_bavail = std::min<uint64_t>(FreeAus(), s.f_bfree > kept ? s.f_bfree - kept : 0);
  s.f_files = sb_.inode_count - 1;
  s.f_ffree = space_.free_inos();
  s.f_favail = space_.free_inos();
  s.f_namemax = kMaxNameLen;
  s.f_fsid = 0;
  std::memcpy(&s.f_fsid, sb_.uuid, sizeof(s.f_fsid) < 8 ? sizeof(s.f_fsid) : 8);
  return s;
}

}  // namespace udax
