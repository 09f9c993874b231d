// layout.h -- geometry (where each area lives) and the verifiers of every on-media record.
#pragma once

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
  std::string label;
  uint32_t root_uid = 0;          // owner of the root directory
  uint32_t root_gid = 0;
};

// Computes a superblock (not yet sealed) for the parameters. EINVAL with a message when
// the region is too small, the AU is not a supported size, or parameters conflict.
Result<DiskSuperblock> ComputeGeometry(const MkfsParams& params);

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
// AUs [0, FirstDataAu) and the last AU hold static metadata.
inline uint64_t FirstDataAu(const DiskSuperblock& sb) { return sb.data_off / sb.au_size; }
inline uint64_t LastDataAu(const DiskSuperblock& sb) { return sb.au_count - 1; }  // exclusive

// An area of static metadata (placed at mkfs) and the owner kind the reverse map gives it.
struct StaticArea {
  uint64_t off;
  uint64_t len;
  OwnerKind kind;
};
// Every static area, AU-aligned: superblock AU, journal, bitmaps, inode table, reverse
// map, and the replica's AU at the end.
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
