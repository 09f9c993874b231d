// layout.cc -- geometry computation and the record verifiers.
#include "fs/format/layout.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fs/format/crc32c.h"

namespace udax {
namespace {

uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

template <typename T>
uint32_t CrcWithZeroField(const T& rec, uint32_t T::*field, uint32_t seed = 0) {
  T copy = rec;
  copy.*field = 0;
  return Crc32c(&copy, sizeof(copy), seed);
}

}  // namespace

Result<DiskSuperblock> ComputeGeometry(const MkfsParams& p) {
  if (p.au_size != kAuSize4K && p.au_size != kAuSize2M) {
    return Status::InvalidArgument("allocation unit must be 4k or 2m");
  }
  if (p.bytes_per_inode < 1024) {
    return Status::InvalidArgument("bytes per inode must be at least 1024");
  }
  const uint64_t au = p.au_size;
  const uint64_t min_size = p.au_size == kAuSize2M ? 64 * kAuSize2M : kMinRegionSize;
  // Several devices: each contributes whole units, and the filesystem spans their sum.
  const bool multi = p.device_sizes.size() > 1;
  std::vector<uint64_t> lengths;
  uint64_t region_size = p.region_size;
  if (multi) {
    if (p.device_sizes.size() > kMaxDevices) {
      return Status::InvalidArgument("at most " + std::to_string(kMaxDevices) + " devices");
    }
    if (!p.meta_copies) {
      return Status::InvalidArgument(
          "several devices need metadata copies (on another device is what lets one go)");
    }
    const uint64_t unit = DeviceUnit(au);
    region_size = 0;
    for (size_t i = 0; i < p.device_sizes.size(); ++i) {
      const uint64_t len = p.device_sizes[i] / unit * unit;
      if (len < 2 * unit) {
        return Status::InvalidArgument("device " + std::to_string(i) + " of " +
                                       std::to_string(p.device_sizes[i]) +
                                       " bytes is smaller than the minimum of " +
                                       std::to_string(2 * unit));
      }
      lengths.push_back(len);
      region_size += len;
    }
  }
  if (region_size < min_size) {
    return Status::InvalidArgument("region of " + std::to_string(region_size) +
                                   " bytes is smaller than the minimum of " +
                                   std::to_string(min_size));
  }
  DiskSuperblock sb;
  std::memset(&sb, 0, sizeof(sb));
  std::memcpy(sb.magic, kSuperMagic, sizeof(sb.magic));
  sb.version = kFormatVersion;
  sb.feature_incompat = kFeatureIncompatLinearHashDirs;
  sb.au_size = static_cast<uint32_t>(au);
  sb.block_size = kBlockSize;
  sb.au_count = region_size / au;
  sb.region_size = sb.au_count * au;
  sb.inode_size = sizeof(DiskInode);

  uint64_t journal = p.journal_size;
  // The state block, a transaction header and room for at least one inode change.
  constexpr uint64_t kMinJournal = 64 << 10;
  if (journal != 0 && journal < kMinJournal && !(p.allow_tiny_journal && journal >= (16 << 10))) {
    return Status::InvalidArgument("journal of " + std::to_string(journal) +
                                   " bytes is smaller than the minimum of " +
                                   std::to_string(kMinJournal));
  }
  if (journal == 0) {
    journal = sb.region_size / 256;
    if (journal < (1u << 20)) journal = 1u << 20;
    if (journal > (64u << 20)) journal = 64u << 20;
  }
  uint64_t inodes = sb.region_size / p.bytes_per_inode;
  if (inodes < 64) inodes = 64;
  if (inodes > UINT32_MAX) inodes = UINT32_MAX;  // the reverse map names inodes in 32 bits

  uint64_t off = au;  // AU 0: superblock
  sb.journal_off = off;
  sb.journal_len = RoundUp(journal, au);
  off += sb.journal_len;
  sb.ibitmap_off = off;
  sb.ibitmap_len = RoundUp((inodes + 7) / 8, au);
  off += sb.ibitmap_len;
  sb.itable_off = off;
  sb.inode_count = inodes;
  sb.itable_len = RoundUp(inodes * sizeof(DiskInode), au);
  off += sb.itable_len;
  sb.abitmap_off = off;
  sb.abitmap_len = RoundUp((sb.au_count + 63) / 64 * 8, au);
  off += sb.abitmap_len;
  sb.rmap_off = off;
  sb.rmap_len = RoundUp(sb.au_count * sizeof(DiskRmapRecord), au);
  off += sb.rmap_len;
  sb.data_off = off;
  sb.replica_off = sb.region_size - kBlockSize;
  if (p.meta_copies) {
    UDAX_RETURN_IF_ERROR(PlaceSecondInodeTable(&sb));
  } else {
    UDAX_RETURN_IF_ERROR(CheckDataRoom(sb));
  }
  std::memset(sb.label, 0, sizeof(sb.label));
  std::memcpy(sb.label, p.label.data(), std::min(p.label.size(), sizeof(sb.label) - 1));
  if (multi) {
    sb.feature_incompat |= kFeatureIncompatMultiDevice;
    sb.device_count = static_cast<uint32_t>(lengths.size());
    uint64_t start = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      sb.devices[i].start = start;
      sb.devices[i].length = lengths[i];
      start += lengths[i];
    }
    // The fixed metadata at the front stays on device 0, the second inode table and the
    // replica on the last: each table's copies then live on different devices.
    if (sb.data_off + au > lengths.front()) {
      return Status::InvalidArgument("device 0 is too small to hold the filesystem's metadata");
    }
    // Past the last device's own first AU, which holds its superblock copy.
    if (sb.itable2_off < sb.devices[sb.device_count - 1].start + au) {
      return Status::InvalidArgument("the last device is too small to hold the second inode table");
    }
  }
  return sb;
}

Status DeviceSuperblockVerify(const DiskSuperblock& sb, uint64_t device_size) {
  UDAX_RETURN_IF_ERROR(SuperblockVerify(sb, sb.region_size));
  if (!IsMultiDevice(sb)) return Status::InvalidArgument("not a multi-device superblock");
  const DiskDeviceEntry& me = sb.devices[sb.this_device];
  if (me.length > device_size) {
    return Status::Corruption("device " + std::to_string(sb.this_device) + " spans " +
                              std::to_string(me.length) + " bytes but the target has only " +
                              std::to_string(device_size) + " (truncated image?)");
  }
  return Status::Ok();
}

Status RefuseLoneDevice(const DiskSuperblock& sb, uint64_t target_size, size_t devices_open) {
  if (devices_open != 1 || !IsMultiDevice(sb) || !DeviceSuperblockVerify(sb, target_size).ok()) {
    return Status::Ok();
  }
  return Status::InvalidArgument("device " + std::to_string(sb.this_device) + " of " +
                                 std::to_string(sb.device_count) +
                                 " of a multi-device udaxfs: name all of its devices, "
                                 "comma-separated (A,B,...)");
}

DiskSuperblock DeviceCopy(const DiskSuperblock& sb, uint32_t d) {
  DiskSuperblock copy = sb;
  copy.this_device = d;
  SuperblockSeal(&copy);
  return copy;
}

Status DeviceTableVerify(const DiskSuperblock& sb) {
  if (!IsMultiDevice(sb)) {
    if (sb.device_count != 0 || sb.this_device != 0 || sb.lost_devices != 0 ||
        sb.generation != 0) {
      return Status::Corruption("superblock: a device table without the multi-device feature");
    }
    for (uint64_t g : sb.device_generation) {
      if (g != 0) return Status::Corruption("superblock: device generations without several devices");
    }
    return LostRunsVerify(sb);
  }
  if (sb.device_count < 2 || sb.device_count > kMaxDevices || sb.this_device >= sb.device_count) {
    return Status::Corruption("superblock: bad device count or index");
  }
  if (!HasMetaCopies(sb)) return Status::Corruption("superblock: several devices without copies");
  const uint64_t unit = DeviceUnit(sb.au_size);
  uint64_t start = 0;
  for (uint32_t i = 0; i < sb.device_count; ++i) {
    const DiskDeviceEntry& d = sb.devices[i];
    if (d.start != start || d.length < 2 * unit || d.length % unit != 0 ||
        d.length > sb.region_size - start) {
      return Status::Corruption("superblock: bad share of device " + std::to_string(i));
    }
    for (uint32_t j = 0; j < i; ++j) {
      if (std::memcmp(d.uuid, sb.devices[j].uuid, sizeof(d.uuid)) == 0) {
        return Status::Corruption("superblock: devices " + std::to_string(j) + " and " +
                                  std::to_string(i) + " have one UUID");
      }
    }
    start += d.length;
  }
  if (start != sb.region_size) return Status::Corruption("superblock: devices do not add up");
  if ((sb.lost_devices & 1u) != 0 || (sb.lost_devices >> sb.device_count) != 0) {
    return Status::Corruption("superblock: bad set of lost devices");
  }
  for (uint32_t i = 0; i < kMaxDevices; ++i) {
    if (sb.device_generation[i] > sb.generation || (i >= sb.device_count && sb.device_generation[i] != 0)) {
      return Status::Corruption("superblock: bad generation of device " + std::to_string(i));
    }
  }
  for (uint32_t i = sb.device_count; i < kMaxDevices; ++i) {
    const uint8_t* b = reinterpret_cast<const uint8_t*>(&sb.devices[i]);
    for (size_t k = 0; k < sizeof(DiskDeviceEntry); ++k) {
      if (b[k] != 0) return Status::Corruption("superblock: entries past the device count");
    }
  }
  if (sb.data_off + sb.au_size > sb.devices[0].length ||
      sb.itable2_off < sb.devices[sb.device_count - 1].start + sb.au_size) {
    return Status::Corruption("superblock: fixed metadata crosses a device boundary");
  }
  return LostRunsVerify(sb);
}

Status AddLostRuns(DiskSuperblock* sb, const std::vector<DiskLostRun>& runs) {
  std::vector<DiskLostRun> all(sb->lost_runs, sb->lost_runs + sb->lost_run_count);
  for (const DiskLostRun& r : runs) {
    if (r.count != 0) all.push_back(r);
  }
  std::sort(all.begin(), all.end(),
            [](const DiskLostRun& a, const DiskLostRun& b) { return a.au < b.au; });
  std::vector<DiskLostRun> merged;
  for (const DiskLostRun& r : all) {
    if (!merged.empty() && r.au <= merged.back().au + merged.back().count) {
      DiskLostRun& m = merged.back();
      m.count = std::max(m.au + m.count, r.au + r.count) - m.au;
    } else {
      merged.push_back(r);
    }
  }
  if (merged.size() > kMaxLostRuns) {
    return Status::Error(ENOSPC, std::to_string(merged.size()) +
                                     " runs of lost file data; the superblock holds at most " +
                                     std::to_string(kMaxLostRuns));
  }
  std::memset(sb->lost_runs, 0, sizeof(sb->lost_runs));
  std::copy(merged.begin(), merged.end(), sb->lost_runs);
  sb->lost_run_count = static_cast<uint32_t>(merged.size());
  if (merged.empty()) {
    sb->feature_incompat &= ~kFeatureIncompatLostRuns;
  } else {
    sb->feature_incompat |= kFeatureIncompatLostRuns;
  }
  return Status::Ok();
}

Status LostRunsVerify(const DiskSuperblock& sb) {
  const bool feature = (sb.feature_incompat & kFeatureIncompatLostRuns) != 0;
  if (sb.lost_run_count > kMaxLostRuns || (sb.lost_run_count != 0) != feature ||
      (feature && !IsMultiDevice(sb))) {
    return Status::Corruption("superblock: bad count of lost runs");
  }
  // Ascending, disjoint, each inside the data area (an AU count cannot wrap: both are
  // checked against au_count before they are added).
  uint64_t prev_end = FirstDataAu(sb);
  for (uint32_t i = 0; i < sb.lost_run_count; ++i) {
    const DiskLostRun& r = sb.lost_runs[i];
    if (r.count == 0 || r.au < prev_end || r.au > sb.au_count || r.count > sb.au_count - r.au ||
        r.au + r.count > LastDataAu(sb)) {
      return Status::Corruption("superblock: bad lost run " + std::to_string(i));
    }
    prev_end = r.au + r.count;
  }
  for (uint32_t i = sb.lost_run_count; i < kMaxLostRuns; ++i) {
    if (sb.lost_runs[i].au != 0 || sb.lost_runs[i].count != 0) {
      return Status::Corruption("superblock: lost runs past their count");
    }
  }
  return Status::Ok();
}

Status CheckDataRoom(const DiskSuperblock& sb) {
  // Keep at least 1/4 of the region (and 16 AUs) for data.
  const uint64_t first = FirstDataAu(sb), last = LastDataAu(sb);
  const uint64_t data_aus = first < last ? last - first : 0;
  if (data_aus < 16 || data_aus * 4 < sb.au_count) {
    return Status::InvalidArgument("region too small for its metadata at this geometry");
  }
  return Status::Ok();
}

Status PlaceSecondInodeTable(DiskSuperblock* sb) {
  // The second inode table at the far end, just before the replica's AU.
  const uint64_t data_end = (sb->au_count - 1) * sb->au_size;
  if (sb->itable_len + sb->data_off >= data_end) {
    return Status::InvalidArgument("region too small for its metadata at this geometry");
  }
  sb->feature_incompat |= kFeatureIncompatMetaCopies;
  sb->itable2_len = sb->itable_len;
  sb->itable2_off = data_end - sb->itable2_len;
  return CheckDataRoom(*sb);
}

std::vector<StaticArea> StaticAreas(const DiskSuperblock& sb) {
  const uint64_t au = sb.au_size;
  std::vector<StaticArea> areas = {
      {0, au, OwnerKind::kSuperblock},
      {sb.journal_off, sb.journal_len, OwnerKind::kJournal},
      {sb.ibitmap_off, sb.ibitmap_len, OwnerKind::kInodeBitmap},
      {sb.itable_off, sb.itable_len, OwnerKind::kInodeTable},
      {sb.abitmap_off, sb.abitmap_len, OwnerKind::kAuBitmap},
      {sb.rmap_off, sb.rmap_len, OwnerKind::kRmap},
  };
  if (HasMetaCopies(sb)) areas.push_back({sb.itable2_off, sb.itable2_len, OwnerKind::kInodeTable, true});
  // The copies of the superblock that begin the other devices (AU-relative index: the
  // device's number).
  for (uint32_t d = 1; d < DeviceCount(sb); ++d) {
    areas.push_back({sb.devices[d].start, au, OwnerKind::kSuperblock});
  }
  // In the order they lie in (the devices' copies sit among the data AUs).
  std::sort(areas.begin(), areas.end(),
            [](const StaticArea& a, const StaticArea& b) { return a.off < b.off; });
  areas.push_back({(sb.au_count - 1) * au, au, OwnerKind::kReplica});
  return areas;
}

void SuperblockSeal(DiskSuperblock* sb) {
  sb->crc = 0;
  sb->crc = Crc32c(sb, sizeof(*sb));
}

Status SuperblockVerify(const DiskSuperblock& sb, uint64_t device_size) {
  if (std::memcmp(sb.magic, kSuperMagic, sizeof(sb.magic)) != 0) {
    return Status::Corruption("no udaxfs superblock (bad magic)");
  }
  if (CrcWithZeroField(sb, &DiskSuperblock::crc) != sb.crc) {
    return Status::Corruption("superblock checksum mismatch");
  }
  if (sb.version != kFormatVersion) {
    return Status::Corruption("unsupported format version " + std::to_string(sb.version));
  }
  if (sb.feature_incompat & ~kFeatureIncompatSupported) {
    return Status::Corruption("unsupported incompatible features");
  }
  if (sb.au_size != kAuSize4K && sb.au_size != kAuSize2M) {
    return Status::Corruption("superblock: bad allocation unit size");
  }
  if (sb.block_size != kBlockSize || sb.inode_size != sizeof(DiskInode)) {
    return Status::Corruption("superblock: bad block or inode size");
  }
  if (sb.region_size > device_size) {
    return Status::Corruption("filesystem spans " + std::to_string(sb.region_size) +
                              " bytes but the target has only " + std::to_string(device_size) +
                              " (truncated image?)");
  }
  // Division, not multiplication: a huge au_count must not wrap around to a match.
  if (sb.region_size % sb.au_size != 0 || sb.au_count != sb.region_size / sb.au_size) {
    return Status::Corruption("superblock: region size is not a whole number of AUs");
  }
  // Before the area sizes below are computed from it (inode_count * 256 must not wrap).
  if (sb.inode_count > UINT32_MAX) return Status::Corruption("superblock: too many inodes");
  // Areas must be AU-aligned, ordered, inside the region, and large enough.
  const uint64_t au = sb.au_size;
  struct Area { uint64_t off, len, need; const char* name; };
  const Area areas[] = {
      {sb.journal_off, sb.journal_len, 2 * kBlockSize + sizeof(DiskTxnHeader), "journal"},
      {sb.ibitmap_off, sb.ibitmap_len, (sb.inode_count + 7) / 8, "inode bitmap"},
      {sb.itable_off, sb.itable_len, sb.inode_count * sizeof(DiskInode), "inode table"},
      {sb.abitmap_off, sb.abitmap_len, (sb.au_count + 63) / 64 * 8, "AU bitmap"},
      {sb.rmap_off, sb.rmap_len, sb.au_count * sizeof(DiskRmapRecord), "rmap area"},
  };
  uint64_t prev_end = au;
  for (const Area& a : areas) {
    if (a.off % au || a.len % au || a.off < prev_end || a.len < a.need ||
        a.off + a.len > sb.region_size || a.off + a.len < a.off) {
      return Status::Corruption(std::string("superblock: bad ") + a.name + " geometry");
    }
    prev_end = a.off + a.len;
  }
  if (sb.data_off != prev_end || sb.data_off >= sb.region_size - au ||
      sb.replica_off != sb.region_size - kBlockSize || sb.inode_count < 2) {
    return Status::Corruption("superblock: bad data area geometry");
  }
  if (HasMetaCopies(sb)) {
    // The second inode table: as large as the first, ending at the replica's AU, with at
    // least two data AUs (one pair) before it.
    if (sb.itable2_len != sb.itable_len || sb.itable2_off % au ||
        sb.itable2_off != (sb.au_count - 1) * au - sb.itable2_len ||
        sb.itable2_off < sb.data_off + 2 * au || sb.itable2_len > sb.region_size) {
      return Status::Corruption("superblock: bad geometry of the second inode table");
    }
  } else if (sb.itable2_off != 0 || sb.itable2_len != 0) {
    return Status::Corruption("superblock: a second inode table without the feature");
  }
  return DeviceTableVerify(sb);
}

void InodeSeal(DiskInode* inode) {
  inode->crc = 0;
  inode->crc = Crc32c(inode, sizeof(*inode));
}

Status InodeVerify(const DiskInode& inode, uint64_t ino) {
  if (CrcWithZeroField(inode, &DiskInode::crc) != inode.crc) {
    return Status::Corruption("inode " + std::to_string(ino) + ": checksum mismatch");
  }
  if (inode.magic != kInodeMagic) {
    return Status::Corruption("inode " + std::to_string(ino) + ": not in use");
  }
  return Status::Ok();
}

void ExtentSeal(DiskExtent* e, uint64_t ino) {
  e->crc = 0;
  e->crc = Crc32c(e, sizeof(*e), static_cast<uint32_t>(ino));
}

bool ExtentValid(const DiskExtent& e, uint64_t ino) {
  return CrcWithZeroField(e, &DiskExtent::crc, static_cast<uint32_t>(ino)) == e.crc &&
         e.len > 0;
}

void ExtentBlockSeal(DiskExtentBlockHeader* h) {
  h->crc = 0;
  h->crc = Crc32c(h, sizeof(*h));
}

bool ExtentBlockValid(const DiskExtentBlockHeader& h, uint64_t ino) {
  return h.magic == kExtentBlockMagic && h.ino == ino &&
         CrcWithZeroField(h, &DiskExtentBlockHeader::crc) == h.crc;
}

void JournalStateSeal(DiskJournalState* s) {
  s->crc = 0;
  s->crc = Crc32c(s, sizeof(*s));
}

bool JournalStateValid(const DiskJournalState& s) {
  return s.magic == kJournalStateMagic && CrcWithZeroField(s, &DiskJournalState::crc) == s.crc;
}

size_t DirBlock::used_bytes() const {
  size_t n = 0;
  for (const DirEntry& e : entries) n += DirEntrySize(e.name.size());
  return n;
}

void DirBlockEncode(const DirBlock& block, uint8_t* out) {
  std::memset(out, 0, kBlockSize);
  DiskDirBlockHeader h{};
  h.magic = kDirBlockMagic;
  h.next = block.next;
  h.count = static_cast<uint16_t>(block.entries.size());
  uint8_t* p = out + sizeof(h);
  for (const DirEntry& e : block.entries) {
    std::memcpy(p, &e.ino, 8);
    std::memcpy(p + 8, &e.hash, 4);
    p[12] = e.type;
    p[13] = static_cast<uint8_t>(e.name.size());
    std::memcpy(p + kDirEntryFixed, e.name.data(), e.name.size());
    p += DirEntrySize(e.name.size());
  }
  h.used = static_cast<uint16_t>(p - out - sizeof(h));
  std::memcpy(out, &h, sizeof(h));
  const uint32_t crc = Crc32c(out, kBlockSize);
  std::memcpy(out + offsetof(DiskDirBlockHeader, crc), &crc, 4);
}

Status DirBlockDecode(const uint8_t* in, DirBlock* block) {
  DiskDirBlockHeader h;
  std::memcpy(&h, in, sizeof(h));
  if (h.magic != kDirBlockMagic) return Status::Corruption("directory block: bad magic");
  uint8_t copy[kBlockSize];
  std::memcpy(copy, in, kBlockSize);
  std::memset(copy + offsetof(DiskDirBlockHeader, crc), 0, 4);
  if (Crc32c(copy, kBlockSize) != h.crc) {
    return Status::Corruption("directory block: checksum mismatch");
  }
  if (h.used > kDirBlockPayload) return Status::Corruption("directory block: bad length");
  block->next = h.next;
  block->entries.clear();
  block->entries.reserve(h.count);
  const uint8_t* p = in + sizeof(h);
  const uint8_t* end = p + h.used;
  for (uint32_t i = 0; i < h.count; ++i) {
    if (end - p < static_cast<ptrdiff_t>(kDirEntryFixed)) {
      return Status::Corruption("directory block: truncated entry");
    }
    DirEntry e;
    std::memcpy(&e.ino, p, 8);
    std::memcpy(&e.hash, p + 8, 4);
    e.type = p[12];
    const size_t len = p[13];
    if (len == 0 || end - p < static_cast<ptrdiff_t>(DirEntrySize(len))) {
      return Status::Corruption("directory block: bad entry name");
    }
    e.name.assign(reinterpret_cast<const char*>(p + kDirEntryFixed), len);
    p += DirEntrySize(len);
    block->entries.push_back(std::move(e));
  }
  if (p != end) return Status::Corruption("directory block: entry count mismatch");
  return Status::Ok();
}

uint32_t NameHash(std::string_view name, uint32_t seed) {
  return Crc32c(name.data(), name.size(), seed);
}

}  // namespace udax
