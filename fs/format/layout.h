// layout.h -- geometry (where each area lives) and the verifiers of every on-media record.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fs/format/disk_format.h"
#include "fs/base/status.h"

namespace udax {

struct MkfsParams {
  uint64_t region_size = 0;        // bytes available on the target
  uint64_t au_size = kAuSize4K;    // 4 KiB or 2 MiB
  uint64_t bytes_per_inode = 8192; // one inode per this many bytes of region
  uint64_t journal_size = 0;       // 0 = automatic
  // Tests only: accept a journal below the 64 KiB minimum, to drive multi-transaction
  // paths (fallocate shifts) with few AUs. Such an image may shut down on a large
  // namespace operation whose transaction does not fit; mkfs never sets this.
  bool allow_tiny_journal = false;
  // Second copies of the inode table and of every dynamic metadata AU
  // (kFeatureIncompatMetaCopies). Costs the inode table's size again, plus one AU per
  // directory, extent-block, attribute or symlink AU.
  bool meta_copies = true;
  std::string label;
  // Two or more: the bytes of each device of a multi-device filesystem, in linear order
  // (region_size is then their usable sum). Empty or one: a single region.
  std::vector<uint64_t> device_sizes;
  uint32_t root_uid = 0;          // owner of the root directory
  uint32_t root_gid = 0;
};

// Computes a superblock (not yet sealed) for the parameters. EINVAL with a message when
// the region is too small, the AU is not a supported size, or parameters conflict.
Result<DiskSuperblock> ComputeGeometry(const MkfsParams& params);
// Turns metadata copies on in a geometry: the feature bit, and the second inode table at
// the far end, just before the replica's AU (mkfs, and the upgrade of an image made
// without copies). EINVAL when the data area would be left too small (CheckDataRoom).
Status PlaceSecondInodeTable(DiskSuperblock* sb);
// At least 1/4 of the region (and 16 AUs) is left for data.
Status CheckDataRoom(const DiskSuperblock& sb);

// --- multi-device geometry (kFeatureIncompatMultiDevice; disk_format.h) ---
// Every device's share of the linear space starts at a multiple of this and is a whole
// number of it: 2 MiB (devdax mapping alignment), and whole 64-AU words of the AU bitmap
// so that no allocation group straddles two devices.
inline uint64_t DeviceUnit(uint64_t au_size) { return std::max<uint64_t>(2u << 20, 64 * au_size); }
inline bool IsMultiDevice(const DiskSuperblock& sb) {
  return (sb.feature_incompat & kFeatureIncompatMultiDevice) != 0;
}
// (Clamped to the table: a superblock not verified yet must not lead past it.)
inline uint32_t DeviceCount(const DiskSuperblock& sb) {
  return IsMultiDevice(sb) ? std::min(sb.device_count, kMaxDevices) : 1;
}
inline bool DeviceLost(const DiskSuperblock& sb, uint32_t d) {
  return IsMultiDevice(sb) && d < 32 && ((sb.lost_devices >> d) & 1u) != 0;
}
// The device holding linear byte `off` (0 on a single region, and past the end).
inline uint32_t DeviceOfOffset(const DiskSuperblock& sb, uint64_t off) {
  if (!IsMultiDevice(sb)) return 0;
  for (uint32_t i = DeviceCount(sb); i-- > 1;) {
    if (off >= sb.devices[i].start) return i;
  }
  return 0;
}
inline uint32_t DeviceOfAu(const DiskSuperblock& sb, uint64_t au) {
  return DeviceOfOffset(sb, au * sb.au_size);
}
// The AUs [first, end) of device `d` (the whole region on a single one).
inline uint64_t DeviceFirstAu(const DiskSuperblock& sb, uint32_t d) {
  return IsMultiDevice(sb) && d < kMaxDevices ? sb.devices[d].start / sb.au_size : 0;
}
inline uint64_t DeviceEndAu(const DiskSuperblock& sb, uint32_t d) {
  return IsMultiDevice(sb) && d < kMaxDevices
             ? (sb.devices[d].start + sb.devices[d].length) / sb.au_size
             : sb.au_count;
}
// The structure of a multi-device superblock alone (count, contiguous aligned shares
// that add up to region_size, this_device in range, distinct UUIDs): EUCLEAN naming what
// is wrong. OK on a single-region superblock whose device fields are all zero.
Status DeviceTableVerify(const DiskSuperblock& sb);
// The lost runs (DiskSuperblock::lost_runs): as many as the count says, ascending,
// disjoint, inside the data area, the feature bit set exactly when there are some.
Status LostRunsVerify(const DiskSuperblock& sb);
// Merges `runs` into sb's lost runs (sorted, overlapping and adjacent ones joined) and
// sets or clears the feature bit; does not seal. ENOSPC, sb unchanged, when the result
// would not fit in kMaxLostRuns.
Status AddLostRuns(DiskSuperblock* sb, const std::vector<DiskLostRun>& runs);
// SuperblockVerify for the copy that begins one device of a multi-device filesystem,
// read from that device alone (`device_size` bytes): the whole filesystem's geometry, and
// the device's own share fits it. EINVAL for a single-device superblock.
Status DeviceSuperblockVerify(const DiskSuperblock& sb, uint64_t device_size);
// EINVAL "device i of N of a multi-device udaxfs: name all of its devices" when `sb`,
// read from the start of a target opened alone (`devices_open` == 1), is one device's
// copy: mounting or checking it alone would take a part for the whole. OK otherwise.
Status RefuseLoneDevice(const DiskSuperblock& sb, uint64_t target_size, size_t devices_open);
// Whether `au` is the first AU of a device other than device 0: its superblock copy.
inline bool IsDeviceSuperblockAu(const DiskSuperblock& sb, uint64_t au) {
  const uint32_t d = DeviceOfAu(sb, au);
  return d != 0 && au == DeviceFirstAu(sb, d);
}
// The copy of `sb` that begins device d (1 .. device_count-1): this_device = d, sealed.
DiskSuperblock DeviceCopy(const DiskSuperblock& sb, uint32_t d);

// Seals (computes the CRC) and verifies records. Verify returns EUCLEAN (Corruption) with
// a message naming the record and what is wrong.
void SuperblockSeal(DiskSuperblock* sb);
Status SuperblockVerify(const DiskSuperblock& sb, uint64_t device_size);

void InodeSeal(DiskInode* inode);
Status InodeVerify(const DiskInode& inode, uint64_t ino);

void ExtentSeal(DiskExtent* extent, uint64_t ino);
bool ExtentValid(const DiskExtent& extent, uint64_t ino);

void ExtentBlockSeal(DiskExtentBlockHeader* header);
bool ExtentBlockValid(const DiskExtentBlockHeader& header, uint64_t ino);

void JournalStateSeal(DiskJournalState* state);
bool JournalStateValid(const DiskJournalState& state);

// Byte offset of inode `ino` in the region.
inline uint64_t InodeOffset(const DiskSuperblock& sb, uint64_t ino) {
  return sb.itable_off + ino * sb.inode_size;
}
inline uint64_t AuOffset(const DiskSuperblock& sb, uint64_t au) { return au * sb.au_size; }
inline uint64_t ExtentsPerBlock(const DiskSuperblock& sb) {
  return (sb.au_size - sizeof(DiskExtentBlockHeader)) / sizeof(DiskExtent);
}
inline bool HasMetaCopies(const DiskSuperblock& sb) {
  return (sb.feature_incompat & kFeatureIncompatMetaCopies) != 0;
}
// AUs [0, FirstDataAu), [LastDataAu, au_count) hold static metadata (the second inode
// table, when there is one, and the superblock replica's AU).
inline uint64_t FirstDataAu(const DiskSuperblock& sb) { return sb.data_off / sb.au_size; }
inline uint64_t LastDataAu(const DiskSuperblock& sb) {  // exclusive
  return HasMetaCopies(sb) ? sb.itable2_off / sb.au_size : sb.au_count - 1;
}

// Metadata copies. The data AUs [FirstDataAu, FirstDataAu + 2 * half) pair up, each AU of
// the lower half with the AU `half` above it, so the two copies of a metadata AU are half
// the data area apart (far apart on the media, in different allocation groups) and the
// place of the second copy needs no pointer that could itself be lost. With an odd number
// of data AUs the last one has no partner and holds file data only.
inline uint64_t CopyHalf(const DiskSuperblock& sb) {
  return HasMetaCopies(sb) ? (LastDataAu(sb) - FirstDataAu(sb)) / 2 : 0;
}
// The metadata whose AUs have their second copy in the partner AU (the inode table has
// its own second table).
inline bool IsCopiedKind(OwnerKind kind) {
  return kind == OwnerKind::kDirectory || kind == OwnerKind::kExtentBlock ||
         kind == OwnerKind::kXattr || kind == OwnerKind::kSymlink;
}
// The partner of data AU `au`: where the other copy of a metadata AU lives. 0 when the
// image has no copies or `au` has no partner.
// On a multi-device filesystem a pair whose two AUs lie on one device has no partner
// either: a copy must survive the loss of its primary's device.
inline uint64_t CopyAu(const DiskSuperblock& sb, uint64_t au) {
  const uint64_t lo = FirstDataAu(sb), half = CopyHalf(sb);
  if (half == 0 || au < lo || au >= lo + 2 * half) return 0;
  const uint64_t partner = au < lo + half ? au + half : au - half;
  if (IsMultiDevice(sb) && DeviceOfAu(sb, au) == DeviceOfAu(sb, partner)) return 0;
  return partner;
}
// The region offset of the other copy of metadata byte `off`: in the other inode table,
// or in the partner AU of a data AU (only metadata AUs have their partner in use). 0 when
// there is none.
inline uint64_t CopyOffset(const DiskSuperblock& sb, uint64_t off) {
  if (!HasMetaCopies(sb)) return 0;
  if (off >= sb.itable_off && off - sb.itable_off < sb.itable_len) {
    return sb.itable2_off + (off - sb.itable_off);
  }
  if (off >= sb.itable2_off && off - sb.itable2_off < sb.itable2_len) {
    return sb.itable_off + (off - sb.itable2_off);
  }
  const uint64_t partner = CopyAu(sb, off / sb.au_size);
  return partner == 0 ? 0 : partner * sb.au_size + off % sb.au_size;
}
// Whether [off, off+n) lies where metadata has a second copy: the inode table or the
// paired data AUs (one AU at most: a metadata record never spans two AUs).
inline bool InCopiedArea(const DiskSuperblock& sb, uint64_t off, uint64_t n) {
  if (!HasMetaCopies(sb) || n == 0) return false;
  if (off >= sb.itable_off && off - sb.itable_off < sb.itable_len) {
    return off + n <= sb.itable_off + sb.itable_len;
  }
  const uint64_t au = off / sb.au_size;
  return CopyAu(sb, au) != 0 && (off + n - 1) / sb.au_size == au;
}

// An area of static metadata (placed at mkfs) and the owner kind the reverse map gives it.
struct StaticArea {
  uint64_t off;
  uint64_t len;
  OwnerKind kind;
  bool copy2 = false;  // the second copy of its kind (inode table 2)
};
// Every static area, AU-aligned: superblock AU, journal, bitmaps, inode table, reverse
// map, the second inode table if any, and the replica's AU at the end.
std::vector<StaticArea> StaticAreas(const DiskSuperblock& sb);

// A decoded directory entry.
struct DirEntry {
  uint64_t ino = 0;
  uint32_t hash = 0;
  uint8_t type = 0;  // DT_* value
  std::string name;
};
inline size_t DirEntrySize(size_t name_len) { return kDirEntryFixed + name_len; }

// A directory bucket in DRAM: decoded entries plus the overflow link.
struct DirBlock {
  uint32_t next = 0;
  std::vector<DirEntry> entries;
  size_t used_bytes() const;
};
// Encodes into exactly kBlockSize bytes (sealed). REQUIRES: used_bytes() <= kDirBlockPayload.
void DirBlockEncode(const DirBlock& block, uint8_t* out);
Status DirBlockDecode(const uint8_t* in, DirBlock* block);

uint32_t NameHash(std::string_view name, uint32_t seed);

}  // namespace udax
