// fs_extent.cc -- per-inode extent maps: loading, lookup, insertion, removal.
//
// On media the extents of an inode are an unordered array of slots (inline in the inode,
// then in a chain of extent blocks), so every change rewrites O(1) slots: a new extent is
// appended, a removed one is replaced by the last. The ordered view lives in DRAM.
#include <algorithm>
#include <cstring>

#include "fs/core/filesystem.h"

namespace udax {
namespace {

uint64_t SlotBlockOffset(const DiskSuperblock& sb, const ExtentMap& m, uint32_t slot) {
  const uint64_t per = ExtentsPerBlock(sb);
  const uint64_t i = slot - kInlineExtents;
  return m.blocks[i / per] * sb.au_size + sizeof(DiskExtentBlockHeader) +
         (i % per) * sizeof(DiskExtent);
}

// Checks an extent-block header read through ReadMeta: the copy that passes is taken (a
// header is changed and resealed, so a bad first copy must not be taken for good).
Filesystem::MetaCheck BlockHeaderCheck(const Inode& inode, uint64_t index) {
  const uint64_t ino = inode.ino;
  return [ino, index](const void* bytes) {
    const auto* h = static_cast<const DiskExtentBlockHeader*>(bytes);
    return ExtentBlockValid(*h, ino) && h->index == index
               ? Status::Ok()
               : Status::Corruption("inode " + std::to_string(ino) + ": bad extent block " +
                                    std::to_string(index));
  };
}

}  // namespace

Status Filesystem::LoadExtents(Inode* inode) {
  ExtentMap& m = inode->extents;
  if (m.loaded) return Status::Ok();
  m.by_file.clear();
  m.slot_key.clear();
  m.blocks.clear();
  const uint32_t count = inode->d.ext_count;
  const uint64_t per = ExtentsPerBlock(sb_);
  const std::string who = "inode " + std::to_string(inode->ino) + ": ";
  if (inode->d.flags & kInodeInlineData) {
    if (count != 0) return Status::Corruption(who + "inline data with extents");
    m.loaded = true;
    return Status::Ok();
  }
  // Extent-block chain.
  const uint64_t nblocks = count > kInlineExtents ? (count - kInlineExtents + per - 1) / per : 0;
  uint64_t au = inode->d.ext_block;
  for (uint64_t i = 0; i < nblocks; ++i) {
    if (au < FirstDataAu(sb_) || au >= LastDataAu(sb_)) {
      return Status::Corruption(who + "extent block outside the data area");
    }
    DiskExtentBlockHeader h;
    Status st = ReadMetaObj(au * sb_.au_size, &h, [&](const void* bytes) {
      const auto* hdr = static_cast<const DiskExtentBlockHeader*>(bytes);
      return ExtentBlockValid(*hdr, inode->ino) && hdr->index == i
                 ? Status::Ok()
                 : Status::Corruption(who + "bad extent block " + std::to_string(i));
    });
    if (!st.ok()) return st.code() == EIO ? st : Status::Corruption(st.message());
    m.blocks.push_back(au);
    au = h.next;
  }
  std::vector<DiskExtent> slots(count);
  for (uint32_t s = 0; s < count; ++s) {
    if (s < kInlineExtents) {
      slots[s] = inode->d.extents[s];
    } else {
      // A slot that fails its checksum in both copies is reported below.
      Status st = ReadMetaObj(SlotBlockOffset(sb_, m, s), &slots[s], [&](const void* bytes) {
        return ExtentValid(*static_cast<const DiskExtent*>(bytes), inode->ino)
                   ? Status::Ok()
                   : Status::Corruption(who + "bad extent slot " + std::to_string(s));
      });
      if (!st.ok() && st.code() != EUCLEAN) return st;
    }
  }
  uint64_t prev_end = 0;
  for (uint32_t s = 0; s < count; ++s) {
    const DiskExtent& e = slots[s];
    if (!ExtentValid(e, inode->ino) || e.phys_au < FirstDataAu(sb_) ||
        e.phys_au + e.len > LastDataAu(sb_) || e.phys_au + e.len < e.phys_au) {
      return Status::Corruption(who + "bad extent slot " + std::to_string(s));
    }
    if (!m.by_file.emplace(e.file_au, Extent{e.phys_au, e.len, s}).second) {
      return Status::Corruption(who + "duplicate extent");
    }
    m.slot_key.push_back(e.file_au);
  }
  for (const auto& [k, e] : m.by_file) {
    if (k < prev_end) return Status::Corruption(who + "overlapping extents");
    prev_end = k + e.len;
  }
  m.loaded = true;
  return Status::Ok();
}

uint64_t Filesystem::MapAu(const Inode& inode, uint64_t file_au, uint64_t limit,
                           uint64_t* run) const {
  const auto& map = inode.extents.by_file;
  auto it = map.upper_bound(file_au);
  if (it != map.begin()) {
    auto prev = std::prev(it);
    if (file_au < prev->first + prev->second.len) {
      *run = std::min<uint64_t>(limit, prev->first + prev->second.len - file_au);
      return prev->second.phys_au + (file_au - prev->first);
    }
  }
  *run = it == map.end() ? limit : std::min<uint64_t>(limit, it->first - file_au);
  return 0;
}

Status Filesystem::WriteSlot(Inode* inode, uint32_t slot, uint64_t file_au, const Extent& e) {
  DiskExtent de{};
  de.file_au = file_au;
  de.phys_au = e.phys_au;
  de.len = e.len;
  ExtentSeal(&de, inode->ino);
  if (slot < kInlineExtents) {
    inode->d.extents[slot] = de;  // staged with the inode
  } else {
    txn_.WriteObj(SlotBlockOffset(sb_, inode->extents, slot), de);
  }
  return Status::Ok();
}

uint64_t Filesystem::ExtentBlocksNeeded(const Inode& inode, uint64_t new_extents) const {
  const uint64_t per = ExtentsPerBlock(sb_);
  const uint64_t capacity = kInlineExtents + inode.extents.blocks.size() * per;
  const uint64_t need = inode.d.ext_count + new_extents;
  return need <= capacity ? 0 : (need - capacity + per - 1) / per;
}

Status Filesystem::GrowSlots(Inode* inode) {
  ExtentMap& m = inode->extents;
  const uint64_t capacity = kInlineExtents + m.blocks.size() * ExtentsPerBlock(sb_);
  if (inode->d.ext_count < capacity) return Status::Ok();
  const uint64_t goal = m.blocks.empty() ? 0 : m.blocks.back() + 1;
  UDAX_ASSIGN_OR_RETURN(std::vector<Run> runs, TakeAus(1, goal, inode->ino, /*copied=*/true));
  StageAllocAus(runs[0], Owner{OwnerKind::kExtentBlock, inode->ino, inode->d.generation,
                               m.blocks.size()});
  const uint64_t au = runs[0].start;
  DiskExtentBlockHeader h{};
  h.magic = kExtentBlockMagic;
  h.index = static_cast<uint32_t>(m.blocks.size());
  h.ino = inode->ino;
  ExtentBlockSeal(&h);
  txn_.WriteObj(au * sb_.au_size, h);
  if (m.blocks.empty()) {
    inode->d.ext_block = au;
  } else {
    DiskExtentBlockHeader prev;
    UDAX_RETURN_IF_ERROR(ReadMetaObj(m.blocks.back() * sb_.au_size, &prev, BlockHeaderCheck(*inode, m.blocks.size() - 1)));
    prev.next = au;
    ExtentBlockSeal(&prev);
    txn_.WriteObj(m.blocks.back() * sb_.au_size, prev);
  }
  m.blocks.push_back(au);
  inode->d.au_blocks++;
  return Status::Ok();
}

Status Filesystem::ShrinkSlots(Inode* inode) {
  ExtentMap& m = inode->extents;
  const uint64_t per = ExtentsPerBlock(sb_);
  while (!m.blocks.empty() &&
         inode->d.ext_count <= kInlineExtents + (m.blocks.size() - 1) * per) {
    const uint64_t au = m.blocks.back();
    m.blocks.pop_back();
    StageFreeAus(Run{au, 1}, IsCopied(OwnerKind::kExtentBlock));
    inode->d.au_blocks--;
    if (m.blocks.empty()) {
      inode->d.ext_block = 0;
    } else {
      DiskExtentBlockHeader prev;
      UDAX_RETURN_IF_ERROR(ReadMetaObj(m.blocks.back() * sb_.au_size, &prev, BlockHeaderCheck(*inode, m.blocks.size() - 1)));
      prev.next = 0;
      ExtentBlockSeal(&prev);
      txn_.WriteObj(m.blocks.back() * sb_.au_size, prev);
    }
  }
  return Status::Ok();
}

Status Filesystem::InsertExtent(Inode* inode, uint64_t file_au, uint64_t phys_au, uint64_t len) {
  ExtentMap& m = inode->extents;
  while (len > 0) {
    const uint32_t piece = static_cast<uint32_t>(std::min<uint64_t>(len, 1u << 30));
    auto it = m.by_file.lower_bound(file_au);
    if (it != m.by_file.begin()) {
      auto prev = std::prev(it);
      Extent& p = prev->second;
      // Never merge across kXattrFileAu: file data and the attribute blob stay apart.
      if (prev->first + p.len == file_au && p.phys_au + p.len == phys_au &&
          file_au != kXattrFileAu &&
          uint64_t{p.len} + piece <= (1u << 30)) {
        p.len += piece;
        UDAX_RETURN_IF_ERROR(WriteSlot(inode, p.slot, prev->first, p));
        file_au += piece;
        phys_au += piece;
        len -= piece;
        continue;
      }
    }
    UDAX_RETURN_IF_ERROR(AddExtentSlot(inode, file_au, phys_au, piece));
    file_au += piece;
    phys_au += piece;
    len -= piece;
  }
  return Status::Ok();
}

Status Filesystem::SetExtent(Inode* inode, uint64_t old_key, uint64_t new_key, Extent e) {
  ExtentMap& m = inode->extents;
  e.slot = m.by_file.at(old_key).slot;
  if (new_key != old_key) {
    m.by_file.erase(old_key);
    m.slot_key[e.slot] = new_key;
  }
  m.by_file[new_key] = e;
  return WriteSlot(inode, e.slot, new_key, e);
}

Status Filesystem::AddExtentSlot(Inode* inode, uint64_t file_au, uint64_t phys_au,
                                 uint32_t len) {
  ExtentMap& m = inode->extents;
  UDAX_RETURN_IF_ERROR(GrowSlots(inode));  // the only step that can fail for want of space
  const uint32_t slot = inode->d.ext_count++;
  Extent e{phys_au, len, slot};
  m.by_file.emplace(file_au, e);
  m.slot_key.push_back(file_au);
  return WriteSlot(inode, slot, file_au, e);
}

Status Filesystem::DropExtentSlot(Inode* inode, uint64_t file_au) {
  ExtentMap& m = inode->extents;
  auto it = m.by_file.find(file_au);
  const uint32_t slot = it->second.slot;
  m.by_file.erase(it);
  // Slots are unordered: the last one moves into the hole, so the array stays dense.
  const uint32_t last = inode->d.ext_count - 1;
  if (slot != last) {
    const uint64_t last_key = m.slot_key[last];
    Extent& moved = m.by_file.at(last_key);
    moved.slot = slot;
    m.slot_key[slot] = last_key;
    UDAX_RETURN_IF_ERROR(WriteSlot(inode, slot, last_key, moved));
  }
  m.slot_key.pop_back();
  inode->d.ext_count--;
  return ShrinkSlots(inode);
}

uint64_t Filesystem::TxnBudget() const { return journal_->capacity() / 4; }

uint64_t Filesystem::FirstDataGoal(const Inode& inode, uint64_t from, uint64_t count) const {
  if (!IsMultiDevice(sb_)) return 0;
  const uint64_t au = sb_.au_size;
  const uint64_t sized = (inode.d.size + au - 1) / au;
  return space_.RoomyDeviceGoal(inode.ino, std::max(count, sized > from ? sized - from : 0));
}

Status Filesystem::AllocateRange(Inode* inode, uint64_t from, uint64_t count, bool zero,
                                 uint64_t in_all) {
  uint64_t goal = 0, run = 0;
  if (from > 0) {
    const uint64_t prev = MapAu(*inode, from - 1, 1, &run);
    if (prev != 0) goal = prev + 1;
  }
  // Directory buckets, attribute blobs and symlink targets are metadata: with copies,
  // each AU comes with its partner.
  const bool copied = IsCopied(DataOwner(*inode, from).kind);
  if (goal == 0 && !copied) goal = FirstDataGoal(*inode, from, std::max(count, in_all));
  UDAX_ASSIGN_OR_RETURN(std::vector<Run> runs, TakeAus(count, goal, inode->ino, copied));
  auto unreserve = [&] {
    if (copied) {
      space_.UnreserveCopied(runs);
    } else {
      space_.UnreserveAus(runs);
    }
  };
  // Each run may become an extent, and new extents may need extent blocks: refuse before
  // any change rather than fail half way through the inserts.
  if (!HoldAus(ExtentBlocksNeeded(*inode, runs.size()), 0, inode->ino)) {
    unreserve();
    return Status::NoSpace("no space for the extent blocks of the new extents");
  }
  uint64_t file_au = from;
  for (const Run& r : runs) {
    if (zero) {
      // Durable before the transaction that maps them, as a write's data is.
      Status st = region_->ZeroSafe(r.start * sb_.au_size, r.len * sb_.au_size, true);
      for (const Run& p : copied ? space_.PartnerRuns(r) : std::vector<Run>{}) {
        if (st.ok()) st = region_->ZeroSafe(p.start * sb_.au_size, p.len * sb_.au_size, true);
      }
      if (!st.ok()) {
        unreserve();
        return st;
      }
    }
  }
  for (const Run& r : runs) {
    StageAllocAus(r, DataOwner(*inode, file_au));
    inode->d.au_blocks += r.len;
    UDAX_RETURN_IF_ERROR(InsertExtent(inode, file_au, r.start, r.len));
    file_au += r.len;
  }
  return Status::Ok();
}

Status Filesystem::RemoveExtents(Inode* inode, uint64_t from, uint64_t to) {
  ExtentMap& m = inode->extents;
  // Work from the highest extent down, so that removals mostly take the last slot.
  while (true) {
    auto it = m.by_file.lower_bound(to);
    if (it == m.by_file.begin()) break;
    --it;
    const uint64_t k = it->first;
    Extent e = it->second;
    if (k + e.len <= from) break;
    const uint64_t os = std::max(k, from), oe = std::min<uint64_t>(k + e.len, to);
    StageFreeAus(Run{e.phys_au + (os - k), oe - os}, IsCopied(DataOwner(*inode, os).kind));
    inode->d.au_blocks -= oe - os;
    if (os == k && oe == k + e.len) {  // whole extent: its slot goes
      UDAX_RETURN_IF_ERROR(DropExtentSlot(inode, k));
    } else if (os == k) {  // head cut
      UDAX_RETURN_IF_ERROR(SetExtent(
          inode, k, oe, Extent{e.phys_au + (oe - k), static_cast<uint32_t>(k + e.len - oe)}));
    } else if (oe == k + e.len) {  // tail cut
      UDAX_RETURN_IF_ERROR(
          SetExtent(inode, k, k, Extent{e.phys_au, static_cast<uint32_t>(os - k)}));
    } else {  // a hole punched in the middle: keep the head, add the tail
      UDAX_RETURN_IF_ERROR(
          SetExtent(inode, k, k, Extent{e.phys_au, static_cast<uint32_t>(os - k)}));
      UDAX_RETURN_IF_ERROR(AddExtentSlot(inode, oe, e.phys_au + (oe - k),
                                         static_cast<uint32_t>(k + e.len - oe)));
    }
    // Keep each transaction well inside the journal: commit finished chunks as we go.
    // Every intermediate state is consistent: the top part of the range is unmapped and
    // its AUs free (blocks past EOF for a truncation, a partial hole for a punch).
    if (txn_.log_bytes() > TxnBudget()) {
      StageInode(inode);
      UDAX_RETURN_IF_ERROR(Commit());
    }
  }
  return Status::Ok();
}

bool Filesystem::IsCopied(OwnerKind kind) const {
  return HasMetaCopies(sb_) && IsCopiedKind(kind);
}

// With copies the hold is of pairs (ReserveCopied): every AU a metadata path holds is for
// metadata, which takes its partner too.
bool Filesystem::HoldAus(uint64_t n, uint64_t goal, uint64_t ino) {
  if (held_count_ >= n) return true;
  auto runs = space_.ReserveCopied(n - held_count_, goal, ino);
  if (!runs.ok()) return false;
  for (const Run& r : *runs) {
    held_.push_back(r);
    held_count_ += r.len;
  }
  return true;
}

Result<std::vector<Run>> Filesystem::TakeAus(uint64_t count, uint64_t goal, uint64_t ino,
                                             bool copied) {
  if (!copied && HasMetaCopies(sb_)) return space_.ReserveAus(count, goal, ino);
  if (count == 0 || held_count_ < count) return space_.ReserveCopied(count, goal, ino);
  std::vector<Run> out;
  while (count > 0) {
    Run& r = held_.back();
    const uint64_t take = std::min(count, r.len);
    out.push_back(Run{r.start, take});
    r.start += take;
    r.len -= take;
    if (r.len == 0) held_.pop_back();
    held_count_ -= take;
    count -= take;
  }
  return out;
}

void Filesystem::ReturnHeldAus() {
  if (held_.empty()) return;
  space_.UnreserveCopied(held_);
  held_.clear();
  held_count_ = 0;
}

uint64_t Filesystem::FreeAus() const {
  return space_.free_aus() + held_count_ * (HasMetaCopies(sb_) ? 2 : 1);
}

void Filesystem::StageAllocAus(const Run& run, const Owner& owner) {
  space_.StageAllocAus(&txn_, run, owner);
  // The partners of a metadata run: the second copy, allocated with the first.
  if (IsCopied(owner.kind) && !owner.copy2) {
    Owner copy = OtherCopy(owner);
    for (uint64_t a = run.start; a < run.end(); ++a, ++copy.file_au) {
      const uint64_t partner = CopyAu(sb_, a);
      if (partner != 0) space_.StageAllocAus(&txn_, Run{partner, 1}, copy);
    }
  }
}

// A bad AU that leaves its file stays allocated, quarantined (G4; media.h).
void Filesystem::StageFreeAus(const Run& run, bool copied) {
  space_.StageFreeAus(&txn_, run);  // quarantines what the region knows bad
  if (!copied) return;
  for (const Run& p : space_.PartnerRuns(run)) space_.StageFreeAus(&txn_, p);
}

void Filesystem::StageOwner(const Run& run, const Owner& owner) {
  space_.StageOwner(&txn_, run, owner);
}

Owner Filesystem::DataOwner(const Inode& inode, uint64_t file_au) const {
  const OwnerKind kind = file_au >= kXattrFileAu    ? OwnerKind::kXattr
                         : S_ISDIR(inode.d.mode)   ? OwnerKind::kDirectory
                         : S_ISLNK(inode.d.mode) ? OwnerKind::kSymlink
                                                 : OwnerKind::kFileData;
  return Owner{kind, inode.ino, inode.d.generation, file_au};
}

Result<std::vector<OwnerRange>> Filesystem::Owners(uint64_t phys, uint64_t len) {
  // Under mu_: a commit applies reverse-map records in place, and a query beside it
  // could read one half written (a false "corrupt").
  MetaLock lock(this);
  return OwnersLocked(phys, len);
}

Result<std::vector<OwnerRange>> Filesystem::OwnersLocked(uint64_t phys, uint64_t len) {
  auto owners = space_.Owners(phys, len);
  if (owners.ok() || owners.status().code() == EINVAL) return owners;
  // A record that does not read (poison) or does not verify: the reverse map is derived
  // data, so the forward maps answer instead, at the cost of a walk over the inodes.
  const uint64_t au = sb_.au_size;
  const uint64_t first = phys / au, count = (phys + len + au - 1) / au - first;
  auto derived = checker_.ForwardOwners(first, count);
  if (!derived.ok()) {
    return Status::IoError(owners.status().message() + "; " + derived.status().message());
  }
  return ReverseMap::Collect(phys, len, au, [&](uint64_t a) -> Result<Owner> {
    return derived.value()[a - first];
  });
}

Result<std::vector<BmapExtent>> Filesystem::Bmap(uint64_t ino) {
  MetaLock lock(this);
  UDAX_ASSIGN_OR_RETURN(Inode * inode, Get(ino));
  UDAX_RETURN_IF_ERROR(LoadExtents(inode));
  std::vector<BmapExtent> out;
  for (const auto& [k, e] : inode->extents.by_file) {
    if (k >= kXattrFileAu) break;  // the attribute blob is not file data
    out.push_back({k * sb_.au_size, e.phys_au * sb_.au_size, uint64_t{e.len} * sb_.au_size});
  }
  return out;
}

Status Filesystem::TruncateBlocks(Inode* inode, uint64_t new_size) {
  UDAX_RETURN_IF_ERROR(LoadExtents(inode));
  const uint64_t first = (new_size + sb_.au_size - 1) / sb_.au_size;
  return RemoveExtents(inode, first, kXattrFileAu);  // the attribute blob stays
}

}  // namespace udax
