// checker.cc -- the check part: the maps cross-checked, the names walked, the records
// scrubbed (checker.h).
#include "fs/core/checker.h"

#include <dirent.h>

#include <algorithm>
#include <cstring>

#include "fs/core/dir_ops.h"
#include "fs/core/filesystem.h"

namespace udax {

void CheckReport::Add(std::string msg) {
  ++problems;
  if (messages.size() < 100) messages.push_back(std::move(msg));
}

void Checker::set_progress(WalkProgress progress) {
  MutexLock lock(&mu_);
  progress_ = std::move(progress);
}

void Checker::Tell(const WalkProgress* progress, uint64_t ino, uint64_t total) {
  if (progress != nullptr && *progress && ino % 4096 == 0) (*progress)(ino, total);
}

template <typename R>
R Checker::Walk(R (Checker::*walk)(Filesystem*, const DiskSuperblock&)) {
  MutexLock lock(&mu_);
  Filesystem::MetaLock meta(fs_);
  return (this->*walk)(fs_, fs_->sb_);
}

Result<std::vector<Owner>> Checker::ForwardOwners(uint64_t first_au, uint64_t count) {
  Filesystem* const fs = fs_;
  fs->mu_.AssertHeld();
  count = first_au < fs->sb_.au_count ? std::min(count, fs->sb_.au_count - first_au) : 0;
  CheckReport report;
  std::vector<Owner> owners;
  UDAX_RETURN_IF_ERROR(DeriveOwners(first_au, first_au + count, &owners, &report, nullptr));
  if (report.problems > 0) {
    // An inode or extent block that cannot be read leaves its AUs unclaimed: answers
    // from such a walk would be wrong, not just incomplete.
    return Status::Corruption("the forward maps cannot say who owns AUs " +
                              std::to_string(first_au) + "+" + std::to_string(count) + ": " +
                              report.messages[0]);
  }
  for (uint64_t i = 0; i < count; ++i) {
    // Allocated and claimed by no map: quarantined media (G4), the one such owner.
    if (owners[i].kind == OwnerKind::kFree && fs->space_.AuAllocated(first_au + i)) {
      owners[i] = Owner{OwnerKind::kQuarantined, 0, 0, 0};
    }
  }
  return owners;
}

Status Checker::DeriveOwners(uint64_t lo, uint64_t hi, std::vector<Owner>* out,
                             CheckReport* report_out, const WalkProgress* progress) {
  Filesystem* const fs = fs_;
  fs->mu_.AssertHeld();
  const DiskSuperblock& sb = fs->sb_;
  const uint64_t au = sb.au_size;
  std::vector<Owner>& expected = *out;
  expected.assign(hi - lo, Owner{});
  CheckReport& report = *report_out;
  auto claim = [&](uint64_t a, const Owner& o) {
    if (a >= sb.au_count) {
      report.Add("AU " + std::to_string(a) + " outside the filesystem claimed by inode " +
                 std::to_string(o.ino));
      return;
    }
    if (a < lo || a >= hi) return;  // outside the window asked about
    Owner& slot = expected[a - lo];
    if (slot.kind != OwnerKind::kFree) {
      report.Add("AU " + std::to_string(a) + " claimed twice: " +
                 OwnerKindName(slot.kind) + " of inode " + std::to_string(slot.ino) +
                 " and " + OwnerKindName(o.kind) + " of inode " + std::to_string(o.ino));
      return;
    }
    slot = o;
  };
  // Metadata with a second copy claims the partner AU too.
  auto claim_copies = [&](uint64_t a, const Owner& o) {
    claim(a, o);
    if (!fs->IsCopied(o.kind)) return;
    const uint64_t partner = CopyAu(sb, a);
    if (partner == 0) {
      report.Add("AU " + std::to_string(a) + " (" + OwnerName(o) +
                 ") has no partner AU for its second copy");
      return;
    }
    claim(partner, OtherCopy(o));
  };
  for (const StaticArea& a : StaticAreas(sb)) {
    for (uint64_t i = 0; i < a.len / au; ++i) {
      claim(a.off / au + i, Owner{a.kind, 0, 0, i, a.copy2});
    }
  }

  // Every in-use inode, read straight from media into a scratch in-core inode so the
  // walk does not fill the cache.
  for (uint64_t ino = 1; ino < sb.inode_count; ++ino) {
    Tell(progress, ino, sb.inode_count);
    if (!fs->space_.InoAllocated(ino)) continue;
    ++report.inodes;
    auto cached = fs->inodes_.find(ino);
    Inode scratch(ino);
    Inode* inode = &scratch;
    if (cached != fs->inodes_.end() && !cached->second->freed) {
      inode = cached->second.get();
    } else {
      Status st = fs->ReadMetaObj(InodeOffset(sb, ino), &scratch.d,
                                  [ino](const void* d) { return InodeVerify(*static_cast<const DiskInode*>(d), ino); });
      if (st.code() == EIO) return st;
      if (!st.ok()) {
        report.Add(st.message());
        continue;
      }
    }
    if (inode->d.attr_flags & ~kInodeAttrFlagsKnown) {
      report.Add("inode " + std::to_string(ino) + ": unknown attribute flags " +
                 std::to_string(inode->d.attr_flags & ~kInodeAttrFlagsKnown));
    }
    Status st = fs->LoadExtents(inode);
    if (!st.ok()) {
      report.Add(st.message());
      continue;
    }
    uint64_t owned = 0;
    for (const auto& [k, e] : inode->extents.by_file) {
      for (uint64_t i = 0; i < e.len; ++i) claim_copies(e.phys_au + i, fs->DataOwner(*inode, k + i));
      owned += e.len;
    }
    for (uint64_t i = 0; i < inode->extents.blocks.size(); ++i) {
      claim_copies(inode->extents.blocks[i],
                   Owner{OwnerKind::kExtentBlock, ino, inode->d.generation, i});
      ++owned;
    }
    if (owned != inode->d.au_blocks) {
      report.Add("inode " + std::to_string(ino) + " counts " + std::to_string(inode->d.au_blocks) +
                 " AUs but maps " + std::to_string(owned));
    }
  }

  return Status::Ok();
}

Result<CheckReport> Checker::CrossCheckMaps() { return Walk(&Checker::CrossCheckMapsLocked); }

Result<CheckReport> Checker::CrossCheckMapsLocked(Filesystem* fs, const DiskSuperblock& sb) {
  fs->mu_.AssertHeld();
  CheckReport report;
  std::vector<Owner> expected;
  UDAX_RETURN_IF_ERROR(DeriveOwners(0, sb.au_count, &expected, &report, &progress_));
  for (uint64_t a = 0; a < sb.au_count; ++a) {
    const bool used = fs->space_.AuAllocated(a);
    const Owner& want = expected[a];
    if (used) ++report.allocated_aus;
    if (want.kind == OwnerKind::kFree) {
      // Quarantined media (G4) is allocated on purpose and owned by no file.
      if (used) {
        auto rec = fs->space_.ReadOwner(a);
        if (!rec.ok() || rec->kind != OwnerKind::kQuarantined) {
          report.Add("AU " + std::to_string(a) + " is allocated but has no owner (leak)");
        }
      }
      continue;
    }
    if (!used) {
      report.Add("AU " + std::to_string(a) + " belongs to " + OwnerKindName(want.kind) +
                 (want.ino ? " of inode " + std::to_string(want.ino) : "") +
                 " but the bitmap says free");
    }
    auto got = fs->space_.ReadOwner(a);
    if (!got.ok()) {
      report.Add(got.status().message());
      continue;
    }
    if (!SameOwner(*got, want)) {
      report.Add("AU " + std::to_string(a) + ": reverse map says " + OwnerName(*got) +
                 " at " + std::to_string(got->file_au) + ", forward maps say " +
                 OwnerName(want) + " at " + std::to_string(want.file_au));
    }
  }
  return report;
}

Result<uint64_t> Checker::RebuildReverseMap() { return Walk(&Checker::RebuildReverseMapLocked); }

Result<uint64_t> Checker::RebuildReverseMapLocked(Filesystem* fs, const DiskSuperblock& sb) {
  fs->mu_.AssertHeld();
  UDAX_RETURN_IF_ERROR(fs->CheckWritable());
  CheckReport report;
  std::vector<Owner> expected;
  UDAX_RETURN_IF_ERROR(DeriveOwners(0, sb.au_count, &expected, &report, &progress_));
  if (report.problems) {
    return Status::Corruption("forward maps are inconsistent (" + report.messages[0] +
                              "); not rebuilding the reverse map from them");
  }
  uint64_t rewritten = 0;
  for (uint64_t a = 0; a < sb.au_count; ++a) {
    if (expected[a].kind == OwnerKind::kFree) continue;
    auto got = fs->space_.ReadOwner(a);
    const Owner& want = expected[a];
    if (got.ok() && SameOwner(*got, want)) continue;
    fs->StageOwner(Run{a, 1}, want);
    ++rewritten;
    if (fs->txn_.log_bytes() > fs->journal_->capacity() / 4) UDAX_RETURN_IF_ERROR(fs->Commit());
  }
  UDAX_RETURN_IF_ERROR(fs->Commit());
  return rewritten;
}

Result<CheckReport> Checker::CheckNamespace() { return Walk(&Checker::CheckNamespaceLocked); }

Result<CheckReport> Checker::CheckNamespaceLocked(Filesystem* fs, const DiskSuperblock& sb) {
  fs->mu_.AssertHeld();
  CheckReport report;
  // Inodes on the orphan list may have no names.
  std::vector<bool> orphan(sb.inode_count, false);
  for (uint64_t cur = fs->state_.orphan_head, guard = 0; cur != 0 && guard < sb.inode_count;
       ++guard) {
    const std::string who = "orphan list: inode " + std::to_string(cur);
    if (cur >= sb.inode_count) {
      report.Add(who + " is outside the table");
      break;
    }
    if (orphan[cur]) {
      report.Add(who + " comes twice (a loop)");
      break;
    }
    DiskInode d;
    Status st = fs->ReadMetaObj(InodeOffset(sb, cur), &d, [cur](const void* p) {
      return InodeVerify(*static_cast<const DiskInode*>(p), cur);
    });
    if (st.code() == EIO) return st;
    if (!fs->space_.InoAllocated(cur) || !st.ok()) {
      report.Add(who + " is free or damaged");
      break;
    }
    orphan[cur] = true;
    cur = d.orphan_next;
  }
  std::vector<uint32_t> names(sb.inode_count, 0);    // entries naming each inode
  std::vector<uint32_t> subdirs(sb.inode_count, 0);  // subdirectories of each directory
  std::vector<bool> seen_dir(sb.inode_count, false);
  std::vector<uint64_t> stack = {kRootIno};
  seen_dir[kRootIno] = true;
  while (!stack.empty()) {
    const uint64_t dino = stack.back();
    stack.pop_back();
    auto dir = fs->Get(dino);
    if (!dir.ok()) {
      report.Add("directory " + std::to_string(dino) + ": " + dir.status().message());
      continue;
    }
    Status st = fs->LoadExtents(*dir);
    std::vector<DirListEntry> entries;
    if (st.ok()) st = DirOps(fs).List(*dir, &entries);
    if (!st.ok()) {
      report.Add(st.message());
      continue;
    }
    if (entries.size() != (*dir)->d.dir_entries) {
      report.Add("directory " + std::to_string(dino) + " counts " +
                 std::to_string((*dir)->d.dir_entries) + " entries but holds " +
                 std::to_string(entries.size()));
    }
    for (const DirListEntry& e : entries) {
      const std::string where = "directory " + std::to_string(dino) + " entry '" + e.name + "'";
      if (e.ino == 0 || e.ino >= sb.inode_count || !fs->space_.InoAllocated(e.ino)) {
        report.Add(where + " names free inode " + std::to_string(e.ino));
        continue;
      }
      auto child = fs->Get(e.ino);
      if (!child.ok()) {
        report.Add(where + ": " + child.status().message());
        continue;
      }
      const uint32_t mode = (*child)->d.mode;
      if (e.type != IFTODT(mode)) report.Add(where + " has the wrong file type");
      names[e.ino]++;
      if (S_ISDIR(mode)) {
        subdirs[dino]++;
        if (seen_dir[e.ino]) {
          report.Add(where + ": directory " + std::to_string(e.ino) + " has a second name");
          continue;
        }
        seen_dir[e.ino] = true;
        if ((*child)->d.parent != dino) {
          report.Add("directory " + std::to_string(e.ino) + ": '..' is " +
                     std::to_string((*child)->d.parent) + ", should be " + std::to_string(dino));
        }
        stack.push_back(e.ino);
      }
    }
  }
  for (uint64_t ino = 1; ino < sb.inode_count; ++ino) {
    Tell(&progress_, ino, sb.inode_count);
    if (!fs->space_.InoAllocated(ino)) continue;
    DiskInode d;
    auto cached = fs->inodes_.find(ino);
    if (cached != fs->inodes_.end()) {
      d = cached->second->d;
    } else {
      Status st = fs->ReadMetaObj(InodeOffset(sb, ino), &d, [ino](const void* p) {
        return InodeVerify(*static_cast<const DiskInode*>(p), ino);
      });
      if (st.code() == EIO) return st;
      if (!st.ok()) continue;  // CrossCheckMaps reports it
    }
    ++report.inodes;
    const std::string who = "inode " + std::to_string(ino);
    if (S_ISDIR(d.mode)) {
      if (!seen_dir[ino] && !orphan[ino]) report.Add(who + ": directory is unreachable");
      const uint64_t want = seen_dir[ino] ? 2 + subdirs[ino] : 0;
      if (d.nlink != want) {
        report.Add(who + ": link count " + std::to_string(d.nlink) + ", should be " +
                   std::to_string(want));
      }
    } else {
      if (names[ino] == 0 && !orphan[ino]) report.Add(who + ": unreachable (no name)");
      if (d.nlink != names[ino]) {
        report.Add(who + ": link count " + std::to_string(d.nlink) + ", should be " +
                   std::to_string(names[ino]));
      }
    }
  }
  // Fsck looks at many inodes: do not keep them all.
  for (auto it = fs->inodes_.begin(); it != fs->inodes_.end();) {
    Inode* i = it->second.get();
    if (i->nlookup == 0 && i->nopen == 0 && !i->dirty && i->ino != kRootIno) {
      it = fs->inodes_.erase(it);
    } else {
      ++it;
    }
  }
  return report;
}

Result<CheckReport> Checker::Scrub() {
  Result<CheckReport> r = Walk(&Checker::ScrubLocked);
  ScrubRecord record;
  record.finished = std::chrono::system_clock::now();
  if (r.ok()) {
    record.inodes = r->inodes;
    record.problems = r->problems;
  } else {
    record.error = r.status().message();
  }
  MutexLock lock(&record_mu_);
  last_scrub_ = std::move(record);
  return r;
}

std::optional<Checker::ScrubRecord> Checker::last_scrub() const {
  MutexLock lock(&record_mu_);
  return last_scrub_;
}

Result<CheckReport> Checker::ScrubLocked(Filesystem* fs, const DiskSuperblock& sb) {
  fs->mu_.AssertHeld();
  CheckReport report;
  for (uint64_t off : {uint64_t{0}, sb.replica_off}) {
    // The replica went with a lost last device (or an older copy of it): nothing to read.
    if (IsMultiDevice(sb) && fs->region_->device_lost(DeviceOfOffset(sb, off))) continue;
    DiskSuperblock copy;
    // A copy that does not read (poison) is a finding, as a bad checksum is.
    Status st = fs->region_->ReadSafe(off, &copy, sizeof(copy));
    if (st.ok()) st = SuperblockVerify(copy, fs->region_->size());
    if (!st.ok()) report.Add((off ? "superblock replica: " : "superblock: ") + st.message());
  }
  DiskJournalState state;
  UDAX_RETURN_IF_ERROR(fs->region_->ReadSafe(sb.journal_off, &state, sizeof(state)));
  if (!JournalStateValid(state)) report.Add("journal state block: checksum mismatch");

  DirOps dirs(fs);
  for (uint64_t ino = 1; ino < sb.inode_count; ++ino) {
    Tell(&progress_, ino, sb.inode_count);
    if (!fs->space_.InoAllocated(ino)) continue;
    ++report.inodes;
    Inode scratch(ino);
    auto verify = [ino](const void* p) { return InodeVerify(*static_cast<const DiskInode*>(p), ino); };
    if (HasMetaCopies(sb)) {
      CompareCopies(fs, "inode " + std::to_string(ino), InodeOffset(sb, ino), sizeof(DiskInode),
                    [&](const uint8_t* p) { return verify(p).ok(); }, &report);
    }
    // The reads below take the good copy where one is bad; the comparisons report it (and
    // mend it), so the reads must not mend it first.
    const bool mend = fs->mend_copies_;
    fs->mend_copies_ = false;
    Status st = fs->ReadMetaObj(InodeOffset(sb, ino), &scratch.d, verify);
    if (st.ok()) st = fs->LoadExtents(&scratch);  // verifies every slot and extent-block header
    fs->mend_copies_ = mend;
    if (!st.ok()) {
      report.Add(st.message());
      continue;
    }
    if (HasMetaCopies(sb)) CheckCopiesOf(fs, sb, &scratch, &report);
    if (S_ISDIR(scratch.d.mode)) {
      std::vector<DirListEntry> entries;
      st = dirs.List(&scratch, &entries);  // decodes (and so verifies) every bucket
      if (!st.ok()) report.Add(st.message());
    }
    st = fs->LoadXattrs(&scratch);  // verifies the attribute blob's checksum
    if (!st.ok()) report.Add(st.message());
  }
  for (uint64_t au = 0; au < sb.au_count; ++au) {
    if (!fs->space_.AuAllocated(au)) continue;
    ++report.allocated_aus;
    auto owner = fs->space_.ReadOwner(au);
    if (!owner.ok()) report.Add(owner.status().message());
  }
  return report;
}

}  // namespace udax
