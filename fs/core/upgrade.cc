// upgrade.cc -- metadata copies turned on in place (see upgrade.h for the steps).
#include "fs/core/upgrade.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "fs/core/filesystem.h"
#include "fs/core/repair.h"

namespace udax {
namespace {

constexpr uint64_t kMaxRounds = 16;
constexpr uint64_t kAusPerCommit = 256;  // step 2: records a transaction stages

}  // namespace

// The work, with the filesystem open read-write under the old geometry. A friend of
// Filesystem, as Repairer is: it moves AUs with the core's own extent-map calls.
class UpgradeRun {
 public:
  UpgradeRun(Filesystem* fs, const DiskSuperblock& target_sb)
      : fs_(fs), sb_(fs->sb_), new_(target_sb), au_(sb_.au_size) {}

  // Steps 1 and 2 under the metadata lock. *metadata_aus: the metadata AUs as they stand
  // after the moves, each to be copied into its partner.
  static Status MoveAndAllocate(Filesystem* fs, const DiskSuperblock& target_sb,
                                UpgradeReport* report, std::vector<uint64_t>* metadata_aus) {
    Filesystem::MetaLock lock(fs);
    UpgradeRun run(fs, target_sb);
    return run.Execute(report, metadata_aus);
  }

 private:
  struct Plan {
    std::vector<uint64_t> move_meta;   // metadata AUs to move to a free pair
    std::vector<uint64_t> move_data;   // file data AUs to move anywhere allowed
  };

  Status Execute(UpgradeReport* report, std::vector<uint64_t>* metadata_aus);
  Status MakePlan(const std::vector<Owner>& owners, Plan* plan);
  // AUs the end state needs free: the fence, the partners of metadata that stays.
  bool Needed(uint64_t au) const { return needed_.count(au) > 0; }
  bool Reserve(uint64_t au);
  Result<uint64_t> FreePair();
  Result<uint64_t> FreeDataAu();
  Status MoveMapped(const Owner& owner, uint64_t from, uint64_t to);
  Status MoveExtentBlock(const Owner& owner, uint64_t from, uint64_t to);
  Status Move(const Owner& owner, uint64_t from, uint64_t to);
  Status CopyAu(uint64_t from, uint64_t to);
  Status StageFinalOwners(const std::vector<Owner>& owners, UpgradeReport* report,
                          std::vector<uint64_t>* metadata_aus);

  Filesystem* const fs_;
  const DiskSuperblock sb_;   // the geometry the filesystem runs under (no copies)
  const DiskSuperblock new_;  // the geometry it upgrades to
  const uint64_t au_;
  std::set<uint64_t> needed_;
  std::set<uint64_t> reserved_;  // ours in the Space's DRAM bitmap
  uint64_t pair_cursor_ = 0, data_cursor_ = 0, broken_cursor_ = 0;
};

bool UpgradeRun::Reserve(uint64_t au) {
  if (reserved_.count(au)) return true;
  if (fs_->region_->HasKnownBad(au * au_, au_)) return false;
  if (!fs_->space_.ReserveExactAu(au)) return false;
  reserved_.insert(au);
  return true;
}

// A free pair under the new geometry, both AUs reserved; the lower one is returned.
Result<uint64_t> UpgradeRun::FreePair() {
  const uint64_t lo = FirstDataAu(new_), half = CopyHalf(new_);
  for (; pair_cursor_ < half; ++pair_cursor_) {
    const uint64_t a = lo + pair_cursor_, b = a + half;
    if (reserved_.count(a) || reserved_.count(b) || fs_->space_.AuAllocated(a) ||
        fs_->space_.AuAllocated(b)) {
      continue;
    }
    if (!Reserve(a)) continue;
    if (!Reserve(b)) {
      fs_->space_.UnreserveAus({Run{a, 1}});
      reserved_.erase(a);
      continue;
    }
    ++pair_cursor_;
    return a;
  }
  return Status::NoSpace("no free pair of AUs left for a metadata copy");
}

// A free AU for file data: in the new data area, and needed by nothing. First one whose
// partner is in use already (its pair is broken anyway), so that free pairs stay for
// metadata; then any.
Result<uint64_t> UpgradeRun::FreeDataAu() {
  const uint64_t lo = FirstDataAu(new_), hi = LastDataAu(new_);
  for (; lo + broken_cursor_ < hi; ++broken_cursor_) {
    const uint64_t a = lo + broken_cursor_;
    const uint64_t p = udax::CopyAu(new_, a);
    if (reserved_.count(a) || fs_->space_.AuAllocated(a)) continue;
    if (p != 0 && !fs_->space_.AuAllocated(p)) continue;  // a free pair: keep it
    if (Reserve(a)) {
      ++broken_cursor_;
      return a;
    }
  }
  for (; lo + data_cursor_ < hi; ++data_cursor_) {
    const uint64_t a = lo + data_cursor_;
    if (reserved_.count(a) || fs_->space_.AuAllocated(a)) continue;
    if (Reserve(a)) {
      ++data_cursor_;
      return a;
    }
  }
  return Status::NoSpace("no free AU left to move file data to");
}

Status UpgradeRun::MakePlan(const std::vector<Owner>& owners, Plan* plan) {
  const uint64_t first = FirstDataAu(new_), last = LastDataAu(new_);
  const uint64_t fence_end = sb_.au_count - 1;  // the replica's AU
  *plan = Plan{};
  needed_.clear();
  for (uint64_t a = last; a < fence_end; ++a) {
    if (owners[a].kind == OwnerKind::kQuarantined || fs_->region_->HasKnownBad(a * au_, au_)) {
      return Status::Error(EIO, "AU " + std::to_string(a) + " where the second inode table must "
                                "go holds bad media");
    }
    needed_.insert(a);
    if (owners[a].kind == OwnerKind::kFileData) plan->move_data.push_back(a);
    if (IsCopiedKind(owners[a].kind)) plan->move_meta.push_back(a);
  }
  for (uint64_t a = first; a < last; ++a) {
    if (!IsCopiedKind(owners[a].kind)) continue;
    const uint64_t p = udax::CopyAu(new_, a);
    if (p == 0) {  // the odd last data AU: it has no partner
      plan->move_meta.push_back(a);
      continue;
    }
    const Owner& po = owners[p];
    if (po.kind == OwnerKind::kFree && !fs_->region_->HasKnownBad(p * au_, au_)) {
      needed_.insert(p);
    } else if (IsCopiedKind(po.kind)) {
      // Each other's partners: the upper one moves, the lower one keeps its place and
      // gets its partner once the upper one has left.
      if (a > p) {
        plan->move_meta.push_back(a);
      } else {
        needed_.insert(p);
      }
    } else {
      plan->move_meta.push_back(a);  // its partner holds data, or bad media
    }
  }
  return Status::Ok();
}

Status UpgradeRun::CopyAu(uint64_t from, uint64_t to) {
  std::vector<uint8_t> buf(au_);
  Status st = fs_->region_->ReadSafe(from * au_, buf.data(), au_);
  if (!st.ok()) return Status::Error(EIO, "AU " + std::to_string(from) + " must move but does not read: " + st.message());
  return fs_->region_->WriteSafe(to * au_, buf.data(), au_, true);
}

// An AU an inode's extent map holds (file data, directory, xattr, symlink): copied, then
// the map points at the copy, in one transaction.
Status UpgradeRun::MoveMapped(const Owner& owner, uint64_t from, uint64_t to) {
  Filesystem* const fs = fs_;
  fs->mu_.AssertHeld();
  UDAX_ASSIGN_OR_RETURN(Inode* inode, fs->Get(owner.ino));
  UDAX_RETURN_IF_ERROR(fs->LoadExtents(inode));
  uint64_t run = 0;
  if (fs->MapAu(*inode, owner.file_au, 1, &run) != from) {
    return Status::Corruption("inode " + std::to_string(owner.ino) + " does not map AU " +
                              std::to_string(from) + " at " + std::to_string(owner.file_au));
  }
  // Two splits may need extent blocks: held first, so the move cannot fail half way.
  if (!fs->HoldAus(fs->ExtentBlocksNeeded(*inode, 2), from, inode->ino)) {
    return Status::NoSpace("no space for the extent blocks of a move");
  }
  UDAX_RETURN_IF_ERROR(CopyAu(from, to));
  Status st = fs->SplitExtentAt(inode, owner.file_au);
  if (st.ok()) st = fs->SplitExtentAt(inode, owner.file_au + 1);
  if (st.ok()) st = fs->SetExtent(inode, owner.file_au, owner.file_au, Extent{to, 1});
  if (!st.ok()) {
    fs->ShutdownLocked("upgrade: a move failed half way: " + st.message());
    return st;
  }
  fs->StageAllocAus(Run{to, 1}, fs->DataOwner(*inode, owner.file_au));
  fs->StageFreeAus(Run{from, 1}, false);
  fs->StageInode(inode);
  return fs->Commit();
}

// Extent block `owner.file_au` of the chain: copied, then the pointer to it (the inode's,
// or the previous block's `next`) points at the copy, in one transaction.
Status UpgradeRun::MoveExtentBlock(const Owner& owner, uint64_t from, uint64_t to) {
  Filesystem* const fs = fs_;
  fs->mu_.AssertHeld();
  UDAX_ASSIGN_OR_RETURN(Inode* inode, fs->Get(owner.ino));
  UDAX_RETURN_IF_ERROR(fs->LoadExtents(inode));
  std::vector<uint64_t>& blocks = inode->extents.blocks;
  const uint64_t j = owner.file_au;
  if (j >= blocks.size() || blocks[j] != from) {
    return Status::Corruption("inode " + std::to_string(owner.ino) + ": extent block " +
                              std::to_string(j) + " is not AU " + std::to_string(from));
  }
  UDAX_RETURN_IF_ERROR(CopyAu(from, to));
  if (j == 0) {
    inode->d.ext_block = to;
  } else {
    DiskExtentBlockHeader prev;
    const uint64_t ino = inode->ino;
    UDAX_RETURN_IF_ERROR(fs->ReadMetaObj(blocks[j - 1] * au_, &prev, [ino, j](const void* bytes) {
      const auto* h = static_cast<const DiskExtentBlockHeader*>(bytes);
      return ExtentBlockValid(*h, ino) && h->index == j - 1
                 ? Status::Ok()
                 : Status::Corruption("inode " + std::to_string(ino) + ": bad extent block " +
                                      std::to_string(j - 1));
    }));
    prev.next = to;
    ExtentBlockSeal(&prev);
    fs->txn_.WriteObj(blocks[j - 1] * au_, prev);
  }
  blocks[j] = to;
  fs->StageAllocAus(Run{to, 1}, Owner{OwnerKind::kExtentBlock, inode->ino, inode->d.generation, j});
  fs->StageFreeAus(Run{from, 1}, false);
  fs->StageInode(inode);
  return fs->Commit();
}

Status UpgradeRun::Move(const Owner& owner, uint64_t from, uint64_t to) {
  fs_->mu_.AssertHeld();
  Status st = owner.kind == OwnerKind::kExtentBlock ? MoveExtentBlock(owner, from, to)
                                                    : MoveMapped(owner, from, to);
  if (!st.ok()) return st;
  // Extent blocks held for the splits and not needed go back now: held, an AU looks free
  // to the next plan, which might count on it.
  fs_->ReturnHeldAus();
  reserved_.erase(to);  // allocated now
  // What left an AU the end state needs keeps it for that.
  if (Needed(from)) Reserve(from);
  return Status::Ok();
}

// Step 2: the fence and the partners allocated, with the records the new geometry wants.
Status UpgradeRun::StageFinalOwners(const std::vector<Owner>& owners, UpgradeReport* report,
                                    std::vector<uint64_t>* metadata_aus) {
  Filesystem* const fs = fs_;
  fs->mu_.AssertHeld();
  uint64_t staged = 0;
  auto stage = [&](uint64_t au, const Owner& o) -> Status {
    fs->mu_.AssertHeld();  // the lambda runs here, under the caller's lock
    if (!reserved_.count(au)) {
      return Status::Error(EAGAIN, "AU " + std::to_string(au) + " was not kept free");
    }
    fs->space_.StageAllocAus(&fs->txn_, Run{au, 1}, o);
    reserved_.erase(au);
    if (++staged % kAusPerCommit == 0) return fs->Commit();
    return Status::Ok();
  };
  const uint64_t fence = LastDataAu(new_);
  for (uint64_t a = fence; a < sb_.au_count - 1; ++a) {
    UDAX_RETURN_IF_ERROR(stage(a, Owner{OwnerKind::kInodeTable, 0, 0, a - fence, true}));
  }
  for (uint64_t a = FirstDataAu(new_); a < fence; ++a) {
    if (!IsCopiedKind(owners[a].kind)) continue;
    UDAX_RETURN_IF_ERROR(stage(udax::CopyAu(new_, a), OtherCopy(owners[a])));
    metadata_aus->push_back(a);
    ++report->metadata_aus;
  }
  return fs->Commit();
}

Status UpgradeRun::Execute(UpgradeReport* report, std::vector<uint64_t>* metadata_aus) {
  Filesystem* const fs = fs_;
  fs->mu_.AssertHeld();
  report->au_size = au_;
  report->itable2_aus = new_.itable2_len / au_;
  report->free_aus_before = fs->space_.free_aus();
  std::vector<Owner> owners;
  for (;;) {
    UDAX_ASSIGN_OR_RETURN(owners, fs->checker_.ForwardOwners(0, sb_.au_count));
    Plan plan;
    UDAX_RETURN_IF_ERROR(MakePlan(owners, &plan));
    if (plan.move_meta.empty() && plan.move_data.empty()) break;
    if (++report->rounds > kMaxRounds) {
      return Status::NoSpace("the moves do not settle after " + std::to_string(kMaxRounds) +
                             " rounds (too little free space?)");
    }
    for (uint64_t a : needed_) {
      if (!fs->space_.AuAllocated(a)) Reserve(a);
    }
    pair_cursor_ = data_cursor_ = broken_cursor_ = 0;
    for (uint64_t a : plan.move_meta) {
      Result<uint64_t> to = FreePair();
      if (to.ok()) {
        UDAX_RETURN_IF_ERROR(Move(owners[a], a, *to));
        // Its partner stays reserved for step 2.
        needed_.insert(udax::CopyAu(new_, *to));
        ++report->moved_meta_aus;
        continue;
      }
      // No free pair: the file data in its partner moves instead, if that is what is
      // there (the next round sees the partner free).
      const uint64_t p = udax::CopyAu(new_, a);
      if (p == 0 || owners[p].kind != OwnerKind::kFileData || a >= LastDataAu(new_)) {
        return to.status();
      }
      UDAX_ASSIGN_OR_RETURN(uint64_t data_to, FreeDataAu());
      needed_.insert(p);
      UDAX_RETURN_IF_ERROR(Move(owners[p], p, data_to));
      ++report->moved_data_aus;
    }
    // File data after the metadata: it may go anywhere, the metadata needs pairs.
    for (uint64_t a : plan.move_data) {
      UDAX_ASSIGN_OR_RETURN(uint64_t to, FreeDataAu());
      UDAX_RETURN_IF_ERROR(Move(owners[a], a, to));
      ++report->moved_data_aus;
    }
  }
  // The plan is empty: every metadata AU has its partner free and reserved, the fence
  // is free and reserved. (An AU a move freed might not be reserved yet: do it now.)
  for (uint64_t a : needed_) {
    if (!Reserve(a)) return Status::Error(EAGAIN, "AU " + std::to_string(a) + " could not be kept free");
  }
  UDAX_RETURN_IF_ERROR(StageFinalOwners(owners, report, metadata_aus));
  // Targets reserved and never used go back.
  std::vector<Run> unused;
  for (uint64_t a : reserved_) unused.push_back(Run{a, 1});
  fs->space_.UnreserveAus(unused);
  reserved_.clear();
  report->free_aus_after = fs->space_.free_aus();
  return Status::Ok();
}

namespace {

// Steps 3 and 4, on the region of a filesystem whose journal is retired: the copies,
// then the superblock.
Status WriteCopiesAndSuperblock(Region* region, const DiskSuperblock& sb,
                                const std::vector<uint64_t>& metadata_aus) {
  const uint64_t au = sb.au_size;
  std::vector<uint8_t> buf(std::max<uint64_t>(au, 1 << 20));
  auto copy = [&](uint64_t from, uint64_t to, uint64_t len) -> Status {
    for (uint64_t done = 0; done < len;) {
      const uint64_t n = std::min<uint64_t>(buf.size(), len - done);
      Status st = region->ReadSafe(from + done, buf.data(), n);
      if (!st.ok()) return Status::Error(EIO, "reading for a copy: " + st.message());
      UDAX_RETURN_IF_ERROR(region->WriteSafe(to + done, buf.data(), n, false));
      done += n;
    }
    return region->Flush(to, len);
  };
  UDAX_RETURN_IF_ERROR(copy(sb.itable_off, sb.itable2_off, sb.itable_len));
  for (uint64_t a : metadata_aus) UDAX_RETURN_IF_ERROR(copy(a * au, CopyAu(sb, a) * au, au));
  region->Drain();
  DiskSuperblock sealed = sb;
  SuperblockSeal(&sealed);
  // The primary first: the commit point. The replica after it.
  UDAX_RETURN_IF_ERROR(region->WriteSafe(0, &sealed, sizeof(sealed), true));
  return region->WriteSafe(sealed.replica_off, &sealed, sizeof(sealed), true);
}

Result<UpgradeReport> UpgradeMounted(std::unique_ptr<Filesystem> fs) {
  UpgradeReport report;
  DiskSuperblock sb = fs->SuperblockSnapshot();
  Region* const region = fs->region();
  if (HasMetaCopies(sb)) {
    // Upgraded already; a cut between the two superblock writes left the replica old.
    report.already = true;
    DiskSuperblock sealed = sb, replica;
    SuperblockSeal(&sealed);
    Status st = region->ReadSafe(sealed.replica_off, &replica, sizeof(replica));
    if (!st.ok() || std::memcmp(&replica, &sealed, sizeof(sealed)) != 0) {
      UDAX_RETURN_IF_ERROR(region->WriteSafe(sealed.replica_off, &sealed, sizeof(sealed), true));
    }
    UDAX_RETURN_IF_ERROR(fs->Unmount());
    return report;
  }
  // What fails before the superblock is written leaves a valid image without copies:
  // unmounted cleanly (the moves made are committed; what was reserved was DRAM only).
  auto give_up = [&fs](Status why) {
    (void)fs->Unmount();
    return why;
  };
  Result<CheckReport> check = Repairer::CheckAll(fs.get());
  if (!check.ok()) return give_up(check.status());
  if (check->problems > 0) {
    return give_up(Status::Error(EUCLEAN, "the filesystem does not check clean (" +
                                              (check->messages.empty() ? std::string("problems found")
                                                                       : check->messages.front()) +
                                              "): run fsck.udaxfs --repair first"));
  }
  DiskSuperblock target = sb;
  Status placed = PlaceSecondInodeTable(&target);
  if (!placed.ok()) return give_up(placed);
  std::vector<uint64_t> metadata_aus;
  Status moved = UpgradeRun::MoveAndAllocate(fs.get(), target, &report, &metadata_aus);
  if (!moved.ok()) return give_up(moved);
  // Nothing is replayed under the new geometry: the journal is retired first.
  UDAX_RETURN_IF_ERROR(fs->Unmount());
  UDAX_RETURN_IF_ERROR(WriteCopiesAndSuperblock(region, target, metadata_aus));
  return report;
}

}  // namespace

Result<UpgradeReport> Upgrader::Run(const std::string& target) {
  UDAX_ASSIGN_OR_RETURN(std::unique_ptr<Filesystem> fs, Filesystem::Mount(target, MountOptions{}));
  return UpgradeMounted(std::move(fs));
}

Result<UpgradeReport> Upgrader::RunOnRegion(std::unique_ptr<Region> region) {
  UDAX_ASSIGN_OR_RETURN(std::unique_ptr<Filesystem> fs,
                        Filesystem::MountRegion(std::move(region), MountOptions{}));
  return UpgradeMounted(std::move(fs));
}

}  // namespace udax
