// repair_maps.cc -- fsck pass 2: inodes, extent maps, the AU and inode bitmaps and the
// reverse map, made to agree.
//
// The forward maps decide who owns what, as in CrossCheckMaps; what a repair adds is
// tolerance: every inode, extent block and extent slot is judged on its own checksum, so
// one bad slot costs one extent, not the inode. Three kinds of evidence are weighed:
//   * a self-checking record (an extent-block header names its owner) beats a claim;
//   * where two files claim one AU, the reverse-map record decides, else the first keeps it;
//   * an allocated AU that nobody claims any more but whose record names an inode that
//     lost extents, with its generation and a file offset it does not map, goes back to it.
// The bitmaps and the reverse map are then rewritten from the result.
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_map>

#include "fs/core/repair.h"
#include "fs/format/xattr_blob.h"
#include "fs/format/crc32c.h"

namespace udax {

struct Repairer::InodeScan {
  uint64_t ino = 0;
  DiskInode d{};
  bool rewrite = false;               // d must be written back
  bool damaged = false;               // lost extent slots or blocks
  std::vector<uint64_t> blocks;       // the extent-block chain (its valid prefix)
  std::vector<DiskExtent> slots;      // extents that passed every check, in file order
  std::vector<DiskExtent> kept;       // what the inode keeps after the claims
};

namespace {

bool ValidFileType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO:
    case S_IFSOCK:
      return true;
  }
  return false;
}

bool InodeCrcOk(const DiskInode& d) {
  DiskInode copy = d;
  copy.crc = 0;
  return Crc32c(&copy, sizeof(copy)) == d.crc;
}

// An inode whose checksum failed but whose fields still look like a live inode of a
// known type: a few flipped bits. Its extents carry their own checksums.
bool Plausible(const DiskInode& d) {
  return ValidFileType(d.mode) && std::popcount(d.magic ^ kInodeMagic) <= 3 &&
         d.nlink <= 65000 && (!S_ISDIR(d.mode) || d.dir_buckets >= 1);
}

bool IsDataKind(OwnerKind k) {
  return k == OwnerKind::kFileData || k == OwnerKind::kDirectory || k == OwnerKind::kSymlink ||
         k == OwnerKind::kXattr;
}

bool BitSet(const std::vector<uint64_t>& bits, uint64_t b) { return bits[b / 64] >> (b % 64) & 1; }

std::string Num(uint64_t v) { return std::to_string(v); }

}  // namespace

bool Repairer::RmapSays(uint64_t au, const Owner& want) const {
  auto got = fs_->space_.ReadOwner(au);
  return got.ok() && SameOwner(*got, want);
}

bool Repairer::ClaimPartner(std::vector<Owner>* owner, uint64_t au, const Owner& o) {
  if (o.copy2 || !fs_->IsCopied(o.kind)) return true;
  const uint64_t partner = CopyAu(fs_->sb_, au);
  if (partner == 0) {
    Fixed("AU " + Num(au) + " (" + OwnerName(o) + ") has no partner AU for its second copy: dropped");
    return false;
  }
  Owner& slot = (*owner)[partner];
  if (slot.kind == OwnerKind::kFree || SameOwner(slot, OtherCopy(o))) {
    slot = OtherCopy(o);
    return true;
  }
  // Claimed by another file's data too: the reverse map decides, as for any doubly
  // claimed AU. Never is a metadata AU kept with a partner that holds something else:
  // every change to it would be written over that partner.
  if (IsDataKind(slot.kind) && !slot.copy2 && RmapSays(partner, OtherCopy(o)) &&
      !RmapSays(partner, slot)) {
    Fixed("AU " + Num(partner) + " claimed by inode " + Num(slot.ino) + " and as the second copy of " +
          OwnerName(o) + ": kept as the copy (the reverse map names it)");
    slot = OtherCopy(o);
    return true;
  }
  Fixed("AU " + Num(au) + " (" + OwnerName(o) + "): its partner AU " + Num(partner) +
        " is held by " + OwnerName(slot) + ": the metadata AU dropped");
  return false;
}

void Repairer::ReleasePartner(std::vector<Owner>* owner, uint64_t au, const Owner& o) {
  if (o.copy2 || !fs_->IsCopied(o.kind)) return;
  const uint64_t partner = CopyAu(fs_->sb_, au);
  if (partner != 0 && SameOwner((*owner)[partner], OtherCopy(o))) (*owner)[partner] = Owner{};
}

Status Repairer::ScanInodes(std::vector<InodeScan>* inodes) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  const DiskSuperblock& sb = fs.sb_;
  for (uint64_t ino = 1; ino < sb.inode_count; ++ino) {
    if (ino % 4096 == 0) Progress(4, ino, sb.inode_count * 2);
    const bool marked = fs.space_.InoAllocated(ino);
    DiskInode d;
    const std::string who = "inode " + Num(ino);
    if (!fs.region_->ReadSafe(InodeOffset(sb, ino), &d, sizeof(d)).ok()) {
      if (marked) Fixed(who + ": unreadable: cleared");
      std::memset(&d, 0, sizeof(d));
      InodeSeal(&d);
      fs.txn_.WriteObj(InodeOffset(sb, ino), d);
      UDAX_RETURN_IF_ERROR(CommitIfLarge());
      continue;
    }
    bool in_use = false, clear = false;
    if (InodeVerify(d, ino).ok()) {
      in_use = ValidFileType(d.mode);
      if (!in_use) {
        clear = true;
        Fixed(who + ": unknown file type: cleared");
      }
    } else if (!InodeCrcOk(d) && marked && Plausible(d)) {
      in_use = true;
      d.magic = kInodeMagic;
      InodeScan s;
      s.rewrite = true;
      Fixed(who + ": checksum mismatch, fields plausible: resealed");
      d.attr_flags &= kInodeAttrFlagsKnown;
      s.ino = ino;
      s.d = d;
      inodes->push_back(std::move(s));
      continue;
    } else if (marked && (d.magic != 0 || !InodeCrcOk(d))) {
      clear = true;
      Fixed(who + ": damaged: cleared");
    }
    if (clear) {
      const uint32_t generation = d.generation + 1;
      std::memset(&d, 0, sizeof(d));
      d.generation = generation;
      InodeSeal(&d);
      fs.txn_.WriteObj(InodeOffset(sb, ino), d);
      UDAX_RETURN_IF_ERROR(CommitIfLarge());
      continue;
    }
    if (!in_use) {
      if (marked) Fixed("inode bitmap: inode " + Num(ino) + " marked in use but free");
      continue;
    }
    if (!marked) Fixed("inode bitmap: inode " + Num(ino) + " in use but marked free");
    InodeScan s;
    if (d.attr_flags & ~kInodeAttrFlagsKnown) {
      Fixed(who + ": unknown attribute flags " + Num(d.attr_flags & ~kInodeAttrFlagsKnown) +
            " cleared");
      d.attr_flags &= kInodeAttrFlagsKnown;
      s.rewrite = true;
    }
    s.ino = ino;
    s.d = d;
    inodes->push_back(std::move(s));
  }
  return Status::Ok();
}

Status Repairer::LoadSlots(InodeScan* s, std::vector<Owner>* owner) {
  const DiskSuperblock& sb = fs_->sb_;
  DiskInode& d = s->d;
  const std::string who = "inode " + Num(s->ino);
  if (d.flags & kInodeInlineData) {
    if (S_ISLNK(d.mode)) {
      if (d.ext_count != 0 || d.au_blocks != 0) {
        d.ext_count = 0;
        d.au_blocks = 0;
        s->rewrite = true;
        Fixed(who + ": inline symlink with extents: extents dropped");
      }
      return Status::Ok();
    }
    d.flags &= ~kInodeInlineData;
    s->rewrite = true;
    Fixed(who + ": inline-data flag on a " + (S_ISDIR(d.mode) ? "directory" : "file") +
          ": cleared");
  }
  const uint64_t per = ExtentsPerBlock(sb);
  const uint64_t first = FirstDataAu(sb), last = LastDataAu(sb);
  const uint64_t count = d.ext_count;
  const uint64_t want_blocks =
      std::min<uint64_t>(count > kInlineExtents ? (count - kInlineExtents + per - 1) / per : 0,
                         last - first);
  uint64_t au = d.ext_block;
  for (uint64_t i = 0; i < want_blocks; ++i) {
    DiskExtentBlockHeader h;
    const bool ok = au >= first && au < last && (*owner)[au].kind == OwnerKind::kFree &&
                    fs_->region_->ReadSafe(au * sb.au_size, &h, sizeof(h)).ok() &&
                    ExtentBlockValid(h, s->ino) && h.index == i;
    if (!ok) {
      s->damaged = true;
      Fixed(who + ": extent block " + Num(i) + " damaged: the extents in it and after it dropped");
      break;
    }
    (*owner)[au] = Owner{OwnerKind::kExtentBlock, s->ino, d.generation, i};
    if (!ClaimPartner(owner, au, (*owner)[au])) {
      (*owner)[au] = Owner{};
      s->damaged = true;
      Fixed(who + ": extent block " + Num(i) + " has no second copy: the extents in it and after it dropped");
      break;
    }
    s->blocks.push_back(au);
    au = h.next;
  }
  const uint64_t avail = std::min<uint64_t>(count, kInlineExtents + s->blocks.size() * per);
  if (avail < count) s->damaged = true;
  for (uint64_t slot = 0; slot < avail; ++slot) {
    DiskExtent e;
    if (slot < kInlineExtents) {
      e = d.extents[slot];
    } else {
      const uint64_t i = slot - kInlineExtents;
      const uint64_t off = s->blocks[i / per] * sb.au_size + sizeof(DiskExtentBlockHeader) +
                           (i % per) * sizeof(DiskExtent);
      if (!fs_->region_->ReadSafe(off, &e, sizeof(e)).ok()) std::memset(&e, 0, sizeof(e));
    }
    const bool ok = ExtentValid(e, s->ino) && e.phys_au >= first && e.phys_au + e.len <= last &&
                    e.phys_au + e.len > e.phys_au && e.file_au + e.len <= (1ull << 32);
    if (!ok) {
      s->damaged = true;
      Fixed(who + ": extent slot " + Num(slot) + " damaged: dropped");
      continue;
    }
    s->slots.push_back(e);
  }
  std::sort(s->slots.begin(), s->slots.end(),
            [](const DiskExtent& a, const DiskExtent& b) { return a.file_au < b.file_au; });
  std::vector<DiskExtent> disjoint;
  for (const DiskExtent& e : s->slots) {
    if (!disjoint.empty() && disjoint.back().file_au + disjoint.back().len > e.file_au) {
      s->damaged = true;
      Fixed(who + ": extent at file AU " + Num(e.file_au) + " overlaps another: dropped");
      continue;
    }
    disjoint.push_back(e);
  }
  s->slots = std::move(disjoint);
  return Status::Ok();
}

Status Repairer::ClaimData(std::vector<InodeScan>* inodes, std::vector<Owner>* owner) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  uint64_t done = 0;
  for (InodeScan& s : *inodes) {
    Progress(4, inodes->size() + done++, inodes->size() * 2);
    Inode scratch(s.ino);
    scratch.d = s.d;
    for (const DiskExtent& e : s.slots) {
      for (uint64_t i = 0; i < e.len; ++i) {
        const uint64_t p = e.phys_au + i;
        const Owner want = fs.DataOwner(scratch, e.file_au + i);
        Owner& have = (*owner)[p];
        if (have.kind == OwnerKind::kFree) {
          have = want;
          if (!ClaimPartner(owner, p, want)) have = Owner{};  // cut from the inode below
          continue;
        }
        const bool take = IsDataKind(have.kind) && RmapSays(p, want) && !RmapSays(p, have);
        Fixed("AU " + Num(p) + " claimed by inode " + Num(have.ino) + " and inode " +
              Num(s.ino) + ": kept by inode " + Num(take ? s.ino : have.ino) +
              (take ? " (the reverse map names it)" : ""));
        if (take) {
          if (have.copy2) {
            // A second copy lost its AU: its first copy goes too (it cannot stay paired
            // with this file's data), and its inode is repaired without it below.
            const uint64_t first = CopyAu(fs.sb_, p);
            if (first != 0 && SameOwner((*owner)[first], OtherCopy(have))) (*owner)[first] = Owner{};
            for (InodeScan& other : *inodes) {
              if (other.ino != have.ino) continue;
              other.damaged = true;
              auto b = std::find(other.blocks.begin(), other.blocks.end(), first);
              if (have.kind == OwnerKind::kExtentBlock && b != other.blocks.end()) other.blocks.erase(b, other.blocks.end());
            }
          } else {
            ReleasePartner(owner, p, have);
          }
          have = want;
          if (!ClaimPartner(owner, p, want)) have = Owner{};
        }
      }
    }
  }
  // What each inode keeps: its extents, cut where another owner won an AU.
  for (InodeScan& s : *inodes) {
    Inode scratch(s.ino);
    scratch.d = s.d;
    for (const DiskExtent& e : s.slots) {
      DiskExtent run{};
      for (uint64_t i = 0; i <= e.len; ++i) {
        const bool mine =
            i < e.len && SameOwner((*owner)[e.phys_au + i], fs.DataOwner(scratch, e.file_au + i));
        if (mine && run.len == 0) run = DiskExtent{e.file_au + i, e.phys_au + i, 0, 0, 0, 0};
        if (mine) ++run.len;
        if (!mine && run.len) {
          s.kept.push_back(run);
          run.len = 0;
        }
      }
    }
    if (s.kept.size() != s.slots.size()) s.damaged = true;
  }
  return Status::Ok();
}

Status Repairer::RestoreFromRmap(std::vector<InodeScan>* inodes, std::vector<Owner>* owner,
                                 const std::vector<uint64_t>& au_bits) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  const DiskSuperblock& sb = fs.sb_;
  std::unordered_map<uint64_t, InodeScan*> damaged;
  for (InodeScan& s : *inodes) {
    if (s.damaged && !(s.d.flags & kInodeInlineData)) damaged.emplace(s.ino, &s);
  }
  std::unordered_map<uint64_t, std::vector<DiskExtent>> restored;  // ino -> single AUs
  for (uint64_t p = FirstDataAu(sb); p < LastDataAu(sb); ++p) {
    if ((*owner)[p].kind != OwnerKind::kFree || !BitSet(au_bits, p)) continue;
    auto rec = fs.space_.ReadOwner(p);
    if (!rec.ok() || rec->copy2) continue;  // a second copy comes back with its first
    if (rec->kind == OwnerKind::kQuarantined) {  // bad media stays out of use
      (*owner)[p] = *rec;
      continue;
    }
    auto it = damaged.find(rec->ino);
    if (it == damaged.end()) continue;
    InodeScan& s = *it->second;
    Inode scratch(s.ino);
    scratch.d = s.d;
    const Owner want = fs.DataOwner(scratch, rec->file_au);
    if (want.kind != rec->kind || (want.generation & 0xffff) != rec->generation) continue;
    // Not if the inode still maps that offset (or another record gave it back already).
    auto kept = std::upper_bound(
        s.kept.begin(), s.kept.end(), rec->file_au,
        [](uint64_t f, const DiskExtent& e) { return f < e.file_au; });
    if (kept != s.kept.begin() && rec->file_au < std::prev(kept)->file_au + std::prev(kept)->len) {
      continue;
    }
    std::vector<DiskExtent>& mine = restored[s.ino];
    if (std::any_of(mine.begin(), mine.end(),
                    [&](const DiskExtent& e) { return e.file_au == rec->file_au; })) {
      continue;
    }
    (*owner)[p] = want;
    if (!ClaimPartner(owner, p, want)) {
      (*owner)[p] = Owner{};
      continue;
    }
    mine.push_back(DiskExtent{rec->file_au, p, 1, 0, 0, 0});
  }
  for (auto& [ino, aus] : restored) {
    InodeScan& s = *damaged.at(ino);
    std::sort(aus.begin(), aus.end(),
              [](const DiskExtent& a, const DiskExtent& b) { return a.file_au < b.file_au; });
    std::vector<DiskExtent> runs;
    for (const DiskExtent& a : aus) {
      DiskExtent* last = runs.empty() ? nullptr : &runs.back();
      if (last && last->file_au + last->len == a.file_au && last->phys_au + last->len == a.phys_au &&
          last->len < (1u << 30)) {
        ++last->len;
      } else {
        runs.push_back(a);
      }
    }
    Fixed("inode " + Num(ino) + ": " + Num(aus.size()) +
          " AUs it had lost restored from the reverse map");
    s.kept.insert(s.kept.end(), runs.begin(), runs.end());
    std::sort(s.kept.begin(), s.kept.end(),
              [](const DiskExtent& a, const DiskExtent& b) { return a.file_au < b.file_au; });
  }
  return Status::Ok();
}

Status Repairer::RewriteExtentMap(InodeScan* s, std::vector<Owner>* owner,
                                  const std::vector<uint64_t>& au_bits) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  const DiskSuperblock& sb = fs.sb_;
  const uint64_t per = ExtentsPerBlock(sb);
  const uint64_t n = s->kept.size();
  const uint64_t need = n > kInlineExtents ? (n - kInlineExtents + per - 1) / per : 0;
  while (s->blocks.size() > need) {
    ReleasePartner(owner, s->blocks.back(), (*owner)[s->blocks.back()]);
    (*owner)[s->blocks.back()] = Owner{};
    s->blocks.pop_back();
  }
  // New extent blocks go where nothing is (nor at their partner, with copies), preferring
  // AUs the bitmap already calls free.
  const bool copies = fs.IsCopied(OwnerKind::kExtentBlock);
  auto unused = [&](uint64_t p, int pass) {
    return (*owner)[p].kind == OwnerKind::kFree && (pass > 0 || !BitSet(au_bits, p));
  };
  for (int pass = 0; pass < 2 && s->blocks.size() < need; ++pass) {
    for (uint64_t p = FirstDataAu(sb); p < LastDataAu(sb) && s->blocks.size() < need; ++p) {
      if (!unused(p, pass)) continue;
      if (copies && (CopyAu(sb, p) == 0 || !unused(CopyAu(sb, p), pass))) continue;
      (*owner)[p] = Owner{OwnerKind::kExtentBlock, s->ino, s->d.generation, s->blocks.size()};
      ClaimPartner(owner, p, (*owner)[p]);
      s->blocks.push_back(p);
    }
  }
  if (s->blocks.size() < need) {
    return Status::NoSpace("inode " + Num(s->ino) + ": no free AU for its extent map");
  }
  std::memset(s->d.extents, 0, sizeof(s->d.extents));
  for (uint64_t i = 0; i < n; ++i) {
    DiskExtent e = s->kept[i];
    ExtentSeal(&e, s->ino);
    if (i < kInlineExtents) {
      s->d.extents[i] = e;
    } else {
      const uint64_t j = i - kInlineExtents;
      fs.txn_.WriteObj(s->blocks[j / per] * sb.au_size + sizeof(DiskExtentBlockHeader) +
                           (j % per) * sizeof(DiskExtent), e);
    }
  }
  for (uint64_t j = 0; j < s->blocks.size(); ++j) {
    DiskExtentBlockHeader h{};
    h.magic = kExtentBlockMagic;
    h.index = static_cast<uint32_t>(j);
    h.ino = s->ino;
    h.next = j + 1 < s->blocks.size() ? s->blocks[j + 1] : 0;
    ExtentBlockSeal(&h);
    fs.txn_.WriteObj(s->blocks[j] * sb.au_size, h);
  }
  s->d.ext_count = static_cast<uint32_t>(n);
  s->d.ext_block = s->blocks.empty() ? 0 : s->blocks[0];
  s->rewrite = true;
  return CommitIfLarge();
}

Status Repairer::WriteBitmaps(const std::vector<InodeScan>& inodes,
                              const std::vector<Owner>& owner) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  const DiskSuperblock& sb = fs.sb_;
  // AU bitmap: an AU is in use iff it has an owner; the bits past au_count stay set.
  const uint64_t awords = (sb.au_count + 63) / 64;
  std::vector<uint64_t> media(awords);
  UDAX_RETURN_IF_ERROR(fs.region_->ReadSafe(sb.abitmap_off, media.data(), awords * 8));
  uint64_t leaked = 0, lost = 0;
  std::string leaked_list, lost_list;
  for (uint64_t w = 0; w < awords; ++w) {
    uint64_t want = 0;
    for (uint64_t b = 0; b < 64; ++b) {
      const uint64_t a = w * 64 + b;
      if (a >= sb.au_count || owner[a].kind != OwnerKind::kFree) want |= 1ull << b;
    }
    if (want == media[w]) continue;
    for (uint64_t b = 0; b < 64; ++b) {
      const uint64_t a = w * 64 + b;
      const bool was = media[w] >> b & 1, is = want >> b & 1;
      if (was && !is && leaked++ < 8) leaked_list += " " + Num(a);
      if (!was && is && lost++ < 8) lost_list += " " + Num(a);
    }
    fs.txn_.WriteObj(sb.abitmap_off + w * 8, want);
    UDAX_RETURN_IF_ERROR(CommitIfLarge());
  }
  if (leaked) {
    Fixed("AU bitmap: " + Num(leaked) + " AUs marked in use had no owner: freed (" +
          leaked_list.substr(1) + (leaked > 8 ? " ..." : "") + ")");
  }
  if (lost) {
    Fixed("AU bitmap: " + Num(lost) + " AUs in use were marked free: marked (" +
          lost_list.substr(1) + (lost > 8 ? " ..." : "") + ")");
  }
  // Inode bitmap: inode 0 is never used, the in-use inodes, the bits past the table kept.
  const uint64_t iwords = (sb.inode_count + 63) / 64;
  std::vector<uint64_t> want(iwords, 0), have(iwords);
  UDAX_RETURN_IF_ERROR(fs.region_->ReadSafe(sb.ibitmap_off, have.data(), iwords * 8));
  want[0] = 1;
  for (const InodeScan& s : inodes) want[s.ino / 64] |= 1ull << (s.ino % 64);
  for (uint64_t b = sb.inode_count; b < iwords * 64; ++b) {
    want[b / 64] |= have[b / 64] & (1ull << (b % 64));
  }
  for (uint64_t w = 0; w < iwords; ++w) {
    if (want[w] == have[w]) continue;
    fs.txn_.WriteObj(sb.ibitmap_off + w * 8, want[w]);
    UDAX_RETURN_IF_ERROR(CommitIfLarge());
  }
  return Status::Ok();
}

Status Repairer::WriteReverseMap(const std::vector<Owner>& owner) {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  const DiskSuperblock& sb = fs.sb_;
  uint64_t rewritten = 0;
  std::vector<DiskRmapRecord> chunk(4096);
  for (uint64_t a0 = 0; a0 < sb.au_count; a0 += chunk.size()) {
    const uint64_t n = std::min<uint64_t>(chunk.size(), sb.au_count - a0);
    UDAX_RETURN_IF_ERROR(fs.region_->ReadSafe(sb.rmap_off + a0 * sizeof(DiskRmapRecord),
                                              chunk.data(), n * sizeof(DiskRmapRecord)));
    for (uint64_t i = 0; i < n; ++i) {
      const Owner& o = owner[a0 + i];
      if (o.kind == OwnerKind::kFree || o.kind == OwnerKind::kQuarantined) continue;
      const DiskRmapRecord want = ReverseMap::Encode(a0 + i, o);
      if (std::memcmp(&want, &chunk[i], sizeof(want)) == 0) continue;
      fs.txn_.WriteObj(sb.rmap_off + (a0 + i) * sizeof(DiskRmapRecord), want);
      ++rewritten;
      UDAX_RETURN_IF_ERROR(CommitIfLarge());
    }
  }
  if (rewritten) Fixed("reverse map: " + Num(rewritten) + " records rewritten from the forward maps");
  return Status::Ok();
}

bool Repairer::XattrBlobReadable(const InodeScan& s) {
  const uint64_t au = fs_->sb_.au_size;
  const uint64_t len = s.d.xattr_bytes;
  if (len > kMaxXattrBytes) return false;
  std::vector<uint8_t> blob(len);
  for (uint64_t done = 0; done < len;) {
    const uint64_t file_au = kXattrFileAu + done / au;
    uint64_t phys = 0;
    for (const DiskExtent& e : s.kept) {
      if (file_au >= e.file_au && file_au < e.file_au + e.len) phys = e.phys_au + (file_au - e.file_au);
    }
    const uint64_t n = std::min<uint64_t>(au, len - done);
    if (phys == 0 || !fs_->region_->ReadSafe(phys * au, blob.data() + done, n).ok()) return false;
    done += n;
  }
  XattrMap attrs;
  return XattrBlobDecode(blob.data(), blob.size(), s.ino, &attrs).ok();
}

Status Repairer::RepairMaps() {
  Filesystem& fs = *fs_;
  fs.AssumeUnshared();
  const DiskSuperblock& sb = fs.sb_;
  std::vector<InodeScan> inodes;
  UDAX_RETURN_IF_ERROR(ScanInodes(&inodes));

  // Who owns each AU: the layout's static areas, then extent blocks, then data.
  std::vector<Owner> owner(sb.au_count);
  for (const StaticArea& a : StaticAreas(sb)) {
    for (uint64_t i = 0; i < a.len / sb.au_size; ++i) {
      owner[a.off / sb.au_size + i] = Owner{a.kind, 0, 0, i, a.copy2};
    }
  }
  for (InodeScan& s : inodes) UDAX_RETURN_IF_ERROR(LoadSlots(&s, &owner));
  UDAX_RETURN_IF_ERROR(ClaimData(&inodes, &owner));
  const uint64_t awords = (sb.au_count + 63) / 64;
  std::vector<uint64_t> au_bits(awords);
  UDAX_RETURN_IF_ERROR(fs.region_->ReadSafe(sb.abitmap_off, au_bits.data(), awords * 8));
  UDAX_RETURN_IF_ERROR(RestoreFromRmap(&inodes, &owner, au_bits));

  for (InodeScan& s : inodes) {
    const bool same = s.kept.size() == s.slots.size() && !s.damaged;
    if (!same) UDAX_RETURN_IF_ERROR(RewriteExtentMap(&s, &owner, au_bits));
    uint64_t mapped = s.blocks.size();
    for (const DiskExtent& e : s.kept) mapped += e.len;
    if (s.d.au_blocks != mapped) {
      Fixed("inode " + Num(s.ino) + ": counted " + Num(s.d.au_blocks) + " AUs, owns " +
            Num(mapped));
      s.d.au_blocks = mapped;
      s.rewrite = true;
    }
    if (s.d.xattr_bytes != 0 && !XattrBlobReadable(s)) {
      Fixed("inode " + Num(s.ino) + ": damaged extended attributes dropped");
      s.d.xattr_bytes = 0;  // its AUs stay mapped; the next attribute reuses them
      s.rewrite = true;
    }
    if (s.rewrite) {
      InodeSeal(&s.d);
      fs.txn_.WriteObj(InodeOffset(sb, s.ino), s.d);
      UDAX_RETURN_IF_ERROR(CommitIfLarge());
    }
  }
  UDAX_RETURN_IF_ERROR(WriteBitmaps(inodes, owner));
  UDAX_RETURN_IF_ERROR(WriteReverseMap(owner));
  UDAX_RETURN_IF_ERROR(fs.Commit());
  Progress(4, 1, 1);

  // Pass 3 works through the filesystem's own operations: give them the new state.
  fs.inodes_.clear();
  return fs.space_.Load(fs.region_.get(), sb);
}

}  // namespace udax
