// media.cc -- what the filesystem does about bad media: one owner at a time (G3-G6).
//
// The daemon's resolver (notify/media_resolver) hands every media event's byte range to
// Media::HandleError. The reverse map names the owners of that range at once; each owner
// kind then has its own answer:
//   * file data, an attribute blob, a symlink target: nothing is rewritten. The range is
//     known bad to the Region, so reads of it fail with EIO (never stale data, never
//     zeros) and the rest of the file keeps working. A later write covering every bad
//     byte of an AU relocates that AU (RelocateBadAus), and an AU that leaves its file
//     while bad is quarantined instead of freed (StageFreeAus);
//   * a free AU: quarantined at once, so no allocation ever hands it out;
//   * metadata with a healthy copy: the superblock and its replica (each from the other,
//     both equal to the mounted copy in DRAM), the two bitmaps (mirrored whole in DRAM),
//     the journal (idle between operations: its slot's last transaction is applied, so
//     the slot is retired and the state block rewritten from DRAM): the bad bytes are
//     rewritten in place and the poison cleared, as a write clears pmem poison;
//   * the reverse map, which is derived data: the records of the bad blocks are written
//     anew from the forward maps (Checker::ForwardOwners), poison cleared;
//   * metadata with a second copy (the inode table, directory blocks, extent blocks,
//     attribute blobs and symlink targets on an image made with copies): the bad blocks
//     are rewritten from the other copy, poison cleared, whichever copy was hit;
//   * both copies bad (two hits): the inodes whose own metadata it was are marked sick
//     (their operations fail with EIO) and the rest keeps serving; an attribute blob or
//     symlink target costs its owner only (EIO);
//   * metadata with no copy (an image without copies, or the root directory's own
//     metadata with both copies bad): a clean shutdown that names the structure (G6).
// A quarantined AU stays allocated in the bitmap with reverse-map kind `quarantined`:
// fsck counts it as in use and owned by nobody, and it survives every remount.
#include <fcntl.h>

#include <algorithm>
#include <cstring>

#include "fs/base/byte_overlap.h"
#include "fs/base/hex.h"
#include "fs/core/media.h"

#include "fs/core/filesystem.h"

namespace udax {
namespace {

bool IsInodeContent(OwnerKind kind) {
  return kind == OwnerKind::kFileData || kind == OwnerKind::kXattr ||
         kind == OwnerKind::kSymlink;
}

}  // namespace

const char* MediaActionName(MediaAction action) {
  switch (action) {
    case MediaAction::kNone: return "none";
    case MediaAction::kFileEio: return "eio";
    case MediaAction::kQuarantined: return "quarantined";
    case MediaAction::kRepaired: return "repaired";
    case MediaAction::kShutdown: return "shutdown";
    case MediaAction::kSick: return "sick";
    case MediaAction::kOtherCopy: return "other-copy";
  }
  return "?";
}

void Media::set_relocation_listener(std::function<void(const MediaRelocation&)> listener) {
  MutexLock lock(&listener_mu_);
  listener_ = std::move(listener);
}

Result<std::vector<MediaOwner>> Media::HandleError(uint64_t phys, uint64_t len) {
  MutexLock media_lock(&mu_);  // one event at a time
  const DiskSuperblock& sb = fs_->sb_;
  std::vector<MediaOwner> out;
  if (len == 0 || phys >= sb.region_size) return out;  // e.g. past the end of the fs
  len = std::min(len, sb.region_size - phys);
  // Reads of the range fail from now on without touching it (devices; an image's list
  // file already says so).
  fs_->region_->MarkKnownBad({phys, len});
  {
    Filesystem::MetaLock lock(fs_);
    auto owners = fs_->OwnersLocked(phys, len);
    if (!owners.ok()) {
      MediaOwner m;
      m.range = OwnerRange{Owner{OwnerKind::kRmap, 0, 0, 0}, phys, len, 0};
      m.action = MediaAction::kShutdown;
      m.detail = "the reverse map cannot be read for this range (" + owners.status().message() +
                 "): shutting down";
      fs_->ShutdownLocked("media error at region offset " + Hex(phys) + ": " + m.detail);
      out.push_back(std::move(m));
      return out;
    }
    for (const OwnerRange& r : owners.value()) {
      MediaOwner m;
      m.range = r;
      ActOnOwner(&m);
      out.push_back(std::move(m));
    }
    if (!fs_->txn_.empty()) {
      Status st = fs_->Commit();
      if (!st.ok()) {
        for (MediaOwner& m : out) {
          if (m.action == MediaAction::kQuarantined) m.detail += " (not committed: " + st.message() + ")";
        }
      }
    }
  }
  // Paths last: PathOf takes mu_ itself, and a name is only for the report.
  for (MediaOwner& m : out) {
    if (m.range.owner.ino == 0) continue;
    auto path = fs_->PathOf(m.range.owner.ino);
    if (path.ok()) m.path = path.value();
  }
  return out;
}

void Media::ActOnOwner(MediaOwner* m) {
  fs_->mu_.AssertHeld();
  const DiskSuperblock& sb = fs_->sb_;
  const OwnerRange& r = m->range;
  const OwnerKind kind = r.owner.kind;
  const std::string where = "[" + Hex(r.phys) + ", +" + Hex(r.len) + ")";
  if (kind == OwnerKind::kQuarantined) {
    m->action = MediaAction::kQuarantined;
    m->detail = "already quarantined";
    return;
  }
  if (kind == OwnerKind::kFree) {
    if (fs_->options_.read_only || fs_->shutdown_) {
      m->action = MediaAction::kNone;
      m->detail = "free; not quarantined (read-only or shut down)";
      return;
    }
    const uint64_t au = sb.au_size;
    const uint64_t first = r.phys / au, end = (r.phys + r.len + au - 1) / au;
    const uint64_t taken = fs_->space_.StageQuarantineFree(&fs_->txn_, Run{first, end - first});
    m->action = MediaAction::kQuarantined;
    m->detail = taken > 0 ? "free AU quarantined: never allocated again"
                          : "free AU already taken by an allocation in progress";
    return;
  }
  const bool copied = kind == OwnerKind::kInodeTable ? HasMetaCopies(sb) : fs_->IsCopied(kind);
  if (copied && !fs_->shutdown_) {
    Status st = RewriteFromCopy(r.phys, r.len);
    if (st.ok()) {
      m->action = MediaAction::kRepaired;
      m->detail = std::string(r.owner.copy2 ? "second" : "first") +
                  " copy rewritten from the other copy";
      return;
    }
    if (st.code() == EROFS) {
      // Reads take the good copy meanwhile: nothing is lost, nothing stops.
      m->action = MediaAction::kNone;
      m->detail = "reads take the other copy; a read-write mount rewrites this one";
      return;
    }
    if (st.code() != EOPNOTSUPP) {
      m->detail = "rewrite from the other copy failed (" + st.message() + ")";
    } else {
      m->detail = "the other copy is bad too";
    }
  }
  if (IsInodeContent(kind)) {
    m->action = MediaAction::kFileEio;
    const std::string copies = m->detail.empty() ? "" : m->detail + ": ";
    m->detail.clear();
    if (kind == OwnerKind::kFileData) {
      m->detail = "reads of file bytes [" + Hex(r.offset) + ", +" + Hex(r.len) +
                  ") fail with EIO until a write covers them";
    } else if (kind == OwnerKind::kXattr) {
      m->detail = "the extended attributes of the inode fail with EIO";
    } else {
      m->detail = "reading the symlink fails with EIO";
    }
    m->detail = copies + m->detail;
    return;
  }
  // Both copies of an inode's own metadata bad (copies exist, the other one did not
  // read): only that inode loses out. Marked sick, its operations fail with EIO, the
  // rest of the filesystem keeps serving (issue 17, item 3).
  if (copied && !fs_->shutdown_ && m->detail == "the other copy is bad too") {
    std::vector<uint64_t> inos;
    if (kind == OwnerKind::kInodeTable) {
      // The inodes whose records the bad bytes hold, in whichever table was hit.
      const uint64_t table = r.owner.copy2 ? sb.itable2_off : sb.itable_off;
      const uint64_t first = (r.phys - table) / sizeof(DiskInode);
      const uint64_t end = (r.phys + r.len - table + sizeof(DiskInode) - 1) / sizeof(DiskInode);
      for (uint64_t ino = first; ino < end && ino < sb.inode_count; ++ino) {
        if (ino != 0 && fs_->space_.InoAllocated(ino)) inos.push_back(ino);
      }
    } else if (r.owner.ino != 0) {
      inos.push_back(r.owner.ino);
    }
    if (std::find(inos.begin(), inos.end(), kRootIno) == inos.end()) {
      std::string names;
      for (uint64_t ino : inos) {
        fs_->MarkSickLocked(ino, "both copies of its " + std::string(OwnerKindName(kind)) +
                                     " at region offset " + where + " are bad");
        names += (names.empty() ? "" : ", ") + std::to_string(ino);
      }
      m->action = MediaAction::kSick;
      m->detail = inos.empty() ? "both copies bad; no inode in use holds these bytes"
                               : "both copies bad: inode " + names +
                                     " marked sick (its operations fail with EIO); the rest "
                                     "keeps serving";
      return;
    }
    // The root's own metadata: nothing would be reachable; shut down below.
  }
  // Metadata.
  if (fs_->shutdown_) {
    m->action = MediaAction::kShutdown;
    m->detail = "already shut down";
    return;
  }
  Status repaired = Status::Error(EOPNOTSUPP, "no copy");
  std::string how;
  switch (kind) {
    case OwnerKind::kSuperblock:
    case OwnerKind::kReplica:
      how = kind == OwnerKind::kSuperblock ? "primary superblock rewritten from the mounted copy (equal to the replica)"
                                           : "superblock replica rewritten from the mounted copy (equal to the primary)";
      repaired = RewriteBlocks(r.phys, r.len, [&](uint64_t off, uint64_t n, uint8_t* dst) {
        for (uint64_t sb_off : {uint64_t{0}, sb.replica_off}) {
          CopyOverlap(sb_off, &sb, sizeof(sb), off, n, dst);
        }
      });
      break;
    case OwnerKind::kAuBitmap:
    case OwnerKind::kInodeBitmap: {
      how = std::string(kind == OwnerKind::kAuBitmap ? "allocation" : "inode") +
            " bitmap rewritten from its copy in memory";
      repaired = RewriteBlocks(r.phys, r.len, [&](uint64_t off, uint64_t n, uint8_t* dst) {
        fs_->space_.CopyBitmapBytes(kind, off, n, dst);
      });
      break;
    }
    case OwnerKind::kRmap: {
      // Derived data: the records of the bad blocks are written anew from the forward
      // maps. Queries that reach them before this are answered the same way.
      if (fs_->options_.read_only) {
        // Nothing may be written; queries keep falling back to the forward maps.
        m->action = MediaAction::kNone;
        m->detail = "reverse-map records bad; owners come from the forward maps until a "
                    "read-write mount rewrites them";
        return;
      }
      how = "reverse-map records rebuilt from the forward maps";
      const uint64_t rec = sizeof(DiskRmapRecord);
      const uint64_t lo = r.phys / 512 * 512, hi = (r.phys + r.len + 511) / 512 * 512;
      const uint64_t first = (std::max(lo, sb.rmap_off) - sb.rmap_off) / rec;
      const uint64_t end = (hi - sb.rmap_off + rec - 1) / rec;
      auto owners = fs_->checker_.ForwardOwners(first, end - first);
      if (!owners.ok()) {
        repaired = owners.status();
        break;
      }
      repaired = RewriteBlocks(r.phys, r.len, [&](uint64_t off, uint64_t n, uint8_t* dst) {
        for (uint64_t a = first; a < first + owners->size(); ++a) {
          const DiskRmapRecord record = ReverseMap::Encode(a, (*owners)[a - first]);
          CopyOverlap(sb.rmap_off + a * rec, &record, rec, off, n, dst);
        }
      });
      break;
    }
    case OwnerKind::kJournal:
      how = "journal: its last transaction was already applied; slot retired, state rewritten";
      repaired = RewriteBlocks(r.phys, r.len, [&](uint64_t off, uint64_t n, uint8_t* dst) {
        CopyOverlap(fs_->journal_->state_offset(), &fs_->state_, sizeof(fs_->state_), off, n, dst);
      });
      if (repaired.ok()) repaired = fs_->journal_->Retire();
      break;
    default:
      break;
  }
  if (repaired.ok()) {
    m->action = MediaAction::kRepaired;
    m->detail = how;
    return;
  }
  const std::string what = OwnerName(r.owner);
  m->action = MediaAction::kShutdown;
  m->detail = repaired.code() == EOPNOTSUPP
                  ? "no healthy copy of the " + what + ": shutting down"
                  : "repair of the " + what + " failed (" + repaired.message() + "): shutting down";
  fs_->ShutdownLocked("media error in the " + what + " at region offset " + where + ": " + m->detail);
}

Status Media::RewriteFromCopy(uint64_t phys, uint64_t len) {
  fs_->mu_.AssertHeld();
  const DiskSuperblock& sb = fs_->sb_;
  const uint64_t s = phys / 512 * 512;
  const uint64_t e = std::min<uint64_t>((phys + len + 511) / 512 * 512, sb.region_size);
  if (!fs_->IsPairedCopy(s)) return Status::Error(EOPNOTSUPP, "no second copy (the pair is broken)");
  std::vector<uint8_t> good(e - s);
  // The other copy, a piece per AU (the pieces of one range may have partners apart).
  for (uint64_t at = s; at < e;) {
    const uint64_t n = std::min(e, (at / sb.au_size + 1) * sb.au_size) - at;
    const uint64_t copy = CopyOffset(sb, at);
    if (copy == 0) return Status::Error(EOPNOTSUPP, "no second copy");
    if (!fs_->region_->ReadSafe(copy, good.data() + (at - s), n).ok()) {
      return Status::Error(EOPNOTSUPP, "the other copy does not read");
    }
    at += n;
  }
  return RewriteBlocks(s, e - s, [&](uint64_t off, uint64_t n, uint8_t* dst) {
    std::memcpy(dst, good.data() + (off - s), n);
  });
}

Status Media::RewriteBlocks(uint64_t phys, uint64_t len,
                            const std::function<void(uint64_t off, uint64_t n, uint8_t* dst)>& fill) {
  fs_->mu_.AssertHeld();
  if (fs_->options_.read_only) return Status::Error(EROFS, "read-only mount");
  // Whole 512-byte blocks: clearing poison works on them, as ndctl clear-errors does.
  const uint64_t s = phys / 512 * 512;
  const uint64_t e = std::min<uint64_t>((phys + len + 511) / 512 * 512, fs_->sb_.region_size);
  std::vector<uint8_t> bytes(e - s, 0);  // what is no structure's is padding: zeros
  fill(s, e - s, bytes.data());
  UDAX_RETURN_IF_ERROR(fs_->region_->WriteSafe(s, bytes.data(), bytes.size(), true));
  return fs_->region_->ClearRewrittenPoison(s, e - s);
}

Status Media::RelocateBadAus(Inode* inode, uint64_t off, uint64_t n) {
  const uint64_t au = fs_->sb_.au_size;
  const uint64_t end = off + n;
  for (uint64_t a = off / au; a * au < end;) {
    uint64_t run;
    const uint64_t phys = fs_->MapAu(*inode, a, (end - a * au + au - 1) / au, &run);
    if (phys == 0 || !fs_->region_->HasKnownBad(phys * au, run * au)) {
      a += run;  // a hole (the write allocates fresh AUs), or healthy media
      continue;
    }
    for (uint64_t i = 0; i < run && (a + i) * au < end; ++i) {
      const uint64_t file_au = a + i, p = phys + i;
      const std::vector<RegionRange> bad = fs_->region_->KnownBadIn(p * au, au);
      if (bad.empty()) continue;
      bool covered = true, touched = false;
      for (const RegionRange& b : bad) {
        const uint64_t fs = file_au * au + (b.offset - p * au), fe = fs + b.length;
        if (fs < off || fe > end) covered = false;
        if (fs < end && fe > off) touched = true;
      }
      if (!covered) {
        if (!touched) continue;  // the write stays on the healthy bytes of the AU
        return Status::IoError("write over a bad block of the file that it does not cover whole "
                               "(file offset " + Hex(file_au * au) + ")");
      }
      UDAX_RETURN_IF_ERROR(RelocateAu(inode, file_au, p, off, end));
    }
    a += run;
  }
  return Status::Ok();
}

Status Media::RelocateAu(Inode* inode, uint64_t file_au, uint64_t old_phys, uint64_t off,
                         uint64_t end) {
  Filesystem* const fs = fs_;
  const uint64_t au = fs->sb_.au_size;
  // Maps of the old block go first, before mu_: a slow client stalls this file only.
  UDAX_RETURN_IF_ERROR(fs->Revoke(inode, file_au * au, (file_au + 1) * au));
  uint64_t new_phys = 0;
  {
    Filesystem::MetaLock lock(fs);
    UDAX_RETURN_IF_ERROR(fs->CheckWritable());
    if (!fs->HoldAus(fs->ExtentBlocksNeeded(*inode, 2) + 1, old_phys + 1, inode->ino)) {
      return Status::NoSpace("no space to relocate a bad block");
    }
    UDAX_ASSIGN_OR_RETURN(std::vector<Run> runs, fs->TakeAus(1, old_phys + 1, inode->ino, false));
    new_phys = runs[0].start;
    // The healthy bytes the write does not cover move with the AU; the rest is the write's.
    std::vector<uint8_t> buf(au, 0);
    const uint64_t base = file_au * au;
    const uint64_t keep_lo = std::clamp(off, base, base + au) - base;
    const uint64_t keep_hi = std::clamp(end, base, base + au) - base;
    Region* const region = fs->region_.get();
    Status st = Status::Ok();
    if (keep_lo > 0) st = region->ReadSafe(old_phys * au, buf.data(), keep_lo);
    if (st.ok() && keep_hi < au) {
      st = region->ReadSafe(old_phys * au + keep_hi, buf.data() + keep_hi, au - keep_hi);
    }
    if (st.ok()) st = region->WriteSafe(new_phys * au, buf.data(), au, true);
    if (!st.ok()) {
      fs->space_.UnreserveAus(runs);
      return st;
    }
    // Space for the two slots was checked above, so the splits cannot fail for want of
    // it; any other failure leaves staged changes that the shutdown discards.
    st = fs->SplitExtentAt(inode, file_au);
    if (st.ok()) st = fs->SplitExtentAt(inode, file_au + 1);
    if (st.ok()) st = fs->SetExtent(inode, file_au, file_au, Extent{new_phys, 1});
    if (!st.ok()) {
      fs->space_.UnreserveAus(runs);
      fs->ShutdownLocked("relocating a bad block failed half way: " + st.message());
      return st;
    }
    fs->StageAllocAus(Run{new_phys, 1}, fs->DataOwner(*inode, file_au));
    fs->StageOwner(Run{old_phys, 1}, Owner{OwnerKind::kQuarantined, 0, 0, 0});
    fs->StageInode(inode);
    UDAX_RETURN_IF_ERROR(fs->Commit());
  }
  // Told after the metadata lock is gone: a listener that blocks (an event log, a page
  // cache invalidation) stalls this writer only.
  MutexLock lock(&listener_mu_);
  if (listener_) {
    listener_(MediaRelocation{inode->ino, file_au * au, old_phys * au, new_phys * au, au});
  }
  return Status::Ok();
}

}  // namespace udax
