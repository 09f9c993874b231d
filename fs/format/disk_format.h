// disk_format.h -- the udaxfs on-media layout: every persistent structure, its size and
// the constants that tie them together. Shared verbatim by the daemon and every tool.
//
// All integers are little-endian (the only byte order pmem hosts have; checked below).
// Every metadata record carries a CRC32C over its bytes with the crc field zeroed.
//
// Region layout (every area starts on an allocation-unit boundary):
//   AU 0            superblock (first 4 KiB), rest of the AU unused
//   journal         state block (4 KiB) + one redo-transaction slot
//   inode bitmap    1 bit per inode
//   inode table     DiskInode[inode_count]
//   AU bitmap       1 bit per allocation unit of the whole region (metadata AUs set)
//   rmap area       DiskRmapRecord[au_count], reserved for the reverse map
//   data AUs        file data, directory buckets, extent blocks
//   inode table 2   second copy of the inode table (feature kFeatureIncompatMetaCopies)
//   last AU         superblock replica in its last 4 KiB
//
// Metadata copies (kFeatureIncompatMetaCopies, mkfs's default): every metadata structure
// that has no other way back gets a second copy, placed far from the first:
//   * the inode table: inode table 2, at the other end of the region;
//   * every AU of a directory, extent block, attribute blob or symlink target: the AU
//     CopyAu() names, half the paired data range away (see layout.h). The pair is
//     allocated and freed together; the copy's reverse-map record names the same owner
//     with kRmapCopy2 set.
// Both copies change in the same journal transaction: the journal logs a record once and
// applies it to both places (replay too). Each record's checksum picks the good copy.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace udax {

static_assert(std::endian::native == std::endian::little, "udaxfs media is little-endian");

inline constexpr uint64_t kBlockSize = 4096;  // metadata block (superblock, dir bucket)
inline constexpr uint64_t kAuSize4K = 4096;
inline constexpr uint64_t kAuSize2M = 2u << 20;
inline constexpr uint64_t kMinRegionSize = 16u << 20;
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint32_t kMaxNameLen = 255;
inline constexpr uint32_t kMaxSymlinkLen = 4095;

// Feature flags: a tool that meets an incompat bit it does not know refuses the image;
// ro_compat lets it mount read-only; compat bits are informational.
inline constexpr uint32_t kFeatureIncompatLinearHashDirs = 1u << 0;
// Second copies of the inode table and of every dynamic metadata AU (see above). Incompat:
// a tool that did not know it would change one copy and not the other.
inline constexpr uint32_t kFeatureIncompatMetaCopies = 1u << 1;
// Several devices in one filesystem (see DiskSuperblock::devices). Incompat: a tool that
// did not know it would take one device for the whole filesystem.
inline constexpr uint32_t kFeatureIncompatMultiDevice = 1u << 2;
// DiskSuperblock::lost_runs is in use: file data whose bytes went with a device that a
// blank one replaced. Incompat: a tool that did not know it would serve those AUs' new
// contents (zeros, or whatever the replacement held) as the file's bytes.
inline constexpr uint32_t kFeatureIncompatLostRuns = 1u << 3;
inline constexpr uint32_t kFeatureIncompatSupported =
    kFeatureIncompatLinearHashDirs | kFeatureIncompatMetaCopies | kFeatureIncompatMultiDevice |
    kFeatureIncompatLostRuns;
inline constexpr uint32_t kFeatureRoCompatSupported = 0;

inline constexpr char kSuperMagic[8] = {'U', 'D', 'A', 'X', 'F', 'S', '0', '1'};

// Multi-device filesystems (kFeatureIncompatMultiDevice). The devices are concatenated,
// in table order, into one linear byte space that every other structure (extents, the AU
// bitmap, the reverse map, the journal's record offsets) addresses as it addresses a
// single region. Each device's share starts at a multiple of DeviceUnit() and holds that
// many bytes, whole. Device 0 begins with the filesystem's superblock as always; every
// other device begins with a copy of it (this_device naming the device), in an AU the
// reverse map gives to kSuperblock. So each device says which filesystem it belongs to
// and where it goes, by UUID, whatever its path or the order it is named in at mount.
inline constexpr uint32_t kMaxDevices = 16;
struct DiskDeviceEntry {
  uint8_t uuid[16];  // the device's own identity (random at mkfs)
  uint64_t start;    // byte offset of its first byte in the linear space
  uint64_t length;   // bytes of it the filesystem uses
};
static_assert(sizeof(DiskDeviceEntry) == 32);

// AUs au .. au+count-1 held file data on a device that `udaxctl replace-device` replaced
// with a blank one: their bytes are gone for good. They read EIO, as bad media does,
// until a write over a whole AU moves it (the old AU quarantined) or the file lets it go
// (quarantined too); the run stays listed, harmlessly, for the AUs never come back into
// use. Listed in every superblock copy, sealed with the device table that names the
// replacement, so the record and the new device's UUID land together.
inline constexpr uint32_t kMaxLostRuns = 128;
struct DiskLostRun {
  uint64_t au;
  uint64_t count;
};
static_assert(sizeof(DiskLostRun) == 16);

struct DiskSuperblock {
  char magic[8];
  uint32_t version;
  uint32_t feature_compat;
  uint32_t feature_incompat;
  uint32_t feature_ro_compat;
  uint64_t region_size;     // bytes the filesystem spans (<= device size)
  uint32_t au_size;         // allocation unit, bytes (4 KiB or 2 MiB)
  uint32_t block_size;      // metadata block, bytes (4 KiB)
  uint64_t au_count;        // allocation units in region_size
  uint64_t journal_off;     // every *_off is a byte offset in the region, AU-aligned
  uint64_t journal_len;
  uint64_t ibitmap_off;
  uint64_t ibitmap_len;
  uint64_t itable_off;
  uint64_t itable_len;
  uint64_t inode_count;     // inode numbers 1 .. inode_count-1 (0 is never used), < 2^32
  uint32_t inode_size;
  uint32_t hash_seed;       // seeds directory name hashing (random at mkfs)
  uint64_t abitmap_off;
  uint64_t abitmap_len;
  uint64_t rmap_off;
  uint64_t rmap_len;
  uint64_t data_off;        // first data AU's byte offset
  uint64_t replica_off;     // byte offset of the superblock replica
  uint64_t mkfs_time_sec;
  uint8_t uuid[16];
  char label[32];
  uint64_t itable2_off;     // the inode table's second copy (0 without kFeatureIncompatMetaCopies)
  uint64_t itable2_len;
  // Multi-device only (0 otherwise): how many devices, which one this copy sits on, and
  // the table of all of them in linear order.
  uint32_t device_count;
  uint32_t this_device;
  DiskDeviceEntry devices[kMaxDevices];
  // Bit d: device d was lost (pulled, failed, removed) while mounted, and what it holds
  // is stale: its metadata copies missed every change since, its file data fails with
  // EIO. A mount treats it as gone whether or not it is named; only a resync (udaxctl
  // add-device or replace-device) clears the bit. Never bit 0.
  uint32_t lost_devices;
  // kFeatureIncompatLostRuns: the runs in use (0 without the feature), ascending and
  // disjoint, inside the data area.
  uint32_t lost_run_count;
  DiskLostRun lost_runs[kMaxLostRuns];
  // Multi-device only. Every superblock write (each read-write mount, a loss, a device
  // back or replaced) moves `generation` on by one and sets device_generation[d] to it
  // for every device it reaches: a lost device's entry stays at the last write it got,
  // which is the generation its own copy holds. A device whose copy is older than its
  // entry in device 0's superblock is an older copy of itself (a restored backup, an
  // image copied aside): its file data is stale, so it is treated as lost. Device 0's
  // copy is written last, so a crash leaves the others newer than it, never older.
  uint64_t generation;
  uint64_t device_generation[kMaxDevices];
  uint8_t reserved[1148];
  uint32_t crc;             // CRC32C of the whole block with crc = 0
};
static_assert(sizeof(DiskSuperblock) == kBlockSize);
static_assert(offsetof(DiskSuperblock, au_size) == 32);
static_assert(offsetof(DiskSuperblock, crc) == kBlockSize - 4);

inline constexpr uint64_t kRootIno = 1;  // also FUSE_ROOT_ID
inline constexpr uint32_t kInodeMagic = 0x1a0de51;
inline constexpr uint32_t kInlineExtents = 3;

// One extent: file_au .. file_au+len maps to phys_au .. phys_au+len. Stored in slots
// (inline in the inode, then in extent blocks); slots are unordered on media, so any
// change rewrites O(1) slots. A slot with len 0 is free (only past ext_count).
struct DiskExtent {
  uint64_t file_au;
  uint64_t phys_au;
  uint32_t len;
  uint32_t flags;
  uint32_t reserved;
  uint32_t crc;  // CRC32C of the slot with crc = 0, seeded with the owner's inode number
};
static_assert(sizeof(DiskExtent) == 32);

struct DiskInode {
  uint32_t magic;        // kInodeMagic when in use; 0 when free
  uint32_t generation;   // bumped each time the slot is reused (for file handles)
  uint32_t mode;
  uint32_t uid;
  uint32_t gid;
  uint32_t nlink;
  uint64_t size;
  uint64_t au_blocks;    // allocation units owned (data + extent blocks)
  int64_t atime_sec;
  int64_t mtime_sec;
  int64_t ctime_sec;
  int64_t btime_sec;
  uint32_t atime_nsec;
  uint32_t mtime_nsec;
  uint32_t ctime_nsec;
  uint32_t btime_nsec;
  uint64_t rdev;
  uint32_t flags;
  uint32_t ext_count;    // extent slots in use (inline first, then extent blocks)
  uint64_t ext_block;    // AU of the first extent block, 0 if none
  uint64_t orphan_next;  // next inode on the orphan list (unlinked while open), 0 = end
  uint64_t parent;       // directories: the inode ".." names
  // Directories (linear hashing over 4 KiB buckets; see fs/core/dir.cc):
  uint32_t dir_buckets;    // primary buckets, at logical blocks 0 .. dir_buckets-1
  uint32_t dir_ovf_next;   // overflow blocks ever created (logical kDirOvfBase + i)
  uint32_t dir_ovf_free;   // head of the free overflow-block list, index+1 (0 = empty)
  uint32_t xattr_bytes;    // bytes of the extended-attribute blob (0 = none); see below
  uint64_t dir_entries;
  // Inline area: kInlineExtents extents, or a short symlink target (flag kInodeInlineData).
  union {
    DiskExtent extents[kInlineExtents];
    char inline_data[kInlineExtents * sizeof(DiskExtent)];
  };
  uint32_t attr_flags;  // chattr flags, FS_*_FL values (kInodeAttrFlagsKnown); 0 before v1.1
  uint32_t crc;  // CRC32C of the inode with crc = 0
};
static_assert(sizeof(DiskInode) == 256);
static_assert(offsetof(DiskInode, extents) == 152);

inline constexpr uint32_t kInodeInlineData = 1u << 0;  // symlink target in inline_data

// DiskInode::attr_flags: the inode flags chattr(1) sets (FS_IOC_SETFLAGS), with the
// values of <linux/fs.h> so no translation is needed. Images written before these existed
// hold 0 there (the field was reserved and always zero). fsck reports other bits.
inline constexpr uint32_t kAttrSync = 0x00000008;       // FS_SYNC_FL: writes durable on return
inline constexpr uint32_t kAttrImmutable = 0x00000010;  // FS_IMMUTABLE_FL
inline constexpr uint32_t kAttrAppend = 0x00000020;     // FS_APPEND_FL
inline constexpr uint32_t kAttrNoDump = 0x00000040;     // FS_NODUMP_FL
inline constexpr uint32_t kAttrNoAtime = 0x00000080;    // FS_NOATIME_FL
inline constexpr uint32_t kAttrDirSync = 0x00010000;    // FS_DIRSYNC_FL (directories only)
inline constexpr uint32_t kInodeAttrFlagsKnown =
    kAttrSync | kAttrImmutable | kAttrAppend | kAttrNoDump | kAttrNoAtime | kAttrDirSync;

// Extended attributes: one blob per inode, DiskXattrHeader then packed entries
// {uint8 name_len, uint8 reserved, uint16 reserved, uint32 value_len, name, value}, kept in
// the inode's own extent map at file AUs kXattrFileAu.. (above every file offset a regular
// file may reach, see Filesystem::MaxFileSize) and changed in place through the journal.
// DiskInode::xattr_bytes is the blob's length, header included.
inline constexpr uint64_t kXattrFileAu = 0xFFFFFF00u;  // 256 AUs below 2^32 (rmap file_au)
inline constexpr uint32_t kMaxXattrBytes = 1u << 20;    // whole blob: 256 AUs of 4 KiB
inline constexpr uint32_t kMaxXattrValue = 64u << 10;   // one value (XATTR_SIZE_MAX)
static_assert(kXattrFileAu + kMaxXattrBytes / 4096 <= (1ull << 32));
inline constexpr uint32_t kXattrMagic = 0xa77e5a17;
struct DiskXattrHeader {
  uint32_t magic;
  uint32_t crc;     // CRC32C of the whole blob (xattr_bytes) with crc = 0, seeded with ino
  uint32_t count;   // entries
  uint32_t reserved;
};
static_assert(sizeof(DiskXattrHeader) == 16);
inline constexpr size_t kXattrEntryFixed = 8;

// Extent block: one AU; a linked chain from DiskInode::ext_block.
inline constexpr uint32_t kExtentBlockMagic = 0xe87b10c4;
struct DiskExtentBlockHeader {
  uint32_t magic;
  uint32_t index;   // position in the inode's chain (0 = first)
  uint64_t ino;     // owner
  uint64_t next;    // AU of the next extent block, 0 = end
  uint8_t reserved[36];
  uint32_t crc;     // over the header only; slots carry their own CRCs
};
static_assert(sizeof(DiskExtentBlockHeader) == 64);

// Directory bucket: a 4 KiB block of packed entries. Primary bucket i lives at logical
// block i of the directory; overflow block k at logical block kDirOvfBase + k.
inline constexpr uint32_t kDirBlockMagic = 0xd1bd1b10;
inline constexpr uint64_t kDirOvfBase = 1ull << 31;
struct DiskDirBlockHeader {
  uint32_t magic;
  uint32_t crc;    // CRC32C of the whole block with crc = 0
  uint32_t next;   // overflow chain: index+1 of the next overflow block, 0 = end
  uint16_t used;   // bytes of entries after the header
  uint16_t count;  // entries
};
static_assert(sizeof(DiskDirBlockHeader) == 16);
// Entry: {uint64 ino, uint32 hash, uint8 file type, uint8 name_len, name bytes}, packed.
inline constexpr size_t kDirEntryFixed = 14;
inline constexpr size_t kDirBlockPayload = kBlockSize - sizeof(DiskDirBlockHeader);

// Journal state block: the first 4 KiB of the journal area. Updated only through
// transactions, like any other metadata.
inline constexpr uint32_t kJournalStateMagic = 0x57a7e001;
struct DiskJournalState {
  uint32_t magic;
  uint32_t reserved0;
  uint64_t orphan_head;  // first inode on the orphan list, 0 = empty
  uint64_t mount_count;
  uint8_t reserved[4068];
  uint32_t crc;
};
static_assert(sizeof(DiskJournalState) == kBlockSize);

// Redo transaction slot, right after the state block. Order of persistence:
// header + records, then `commit` = seq, then the records are applied in place.
// Replay at mount re-applies the slot if commit == seq and the CRC matches (idempotent).
inline constexpr uint32_t kTxnMagic = 0x7e4a1c0d;
struct DiskTxnHeader {
  uint64_t commit;   // == seq once the transaction is committed (own cache line)
  uint8_t pad0[56];
  uint32_t magic;
  uint32_t crc;      // CRC32C of the header from `magic` on (crc = 0) and all records
  uint64_t seq;
  uint32_t nrec;
  uint32_t reserved;
  uint64_t bytes;    // bytes of records after the header
  uint8_t pad1[32];
};
static_assert(sizeof(DiskTxnHeader) == 128);
struct DiskTxnRecord {
  uint64_t off;  // region byte offset the data goes to
  uint32_t len;
  uint32_t reserved;
  // then `len` bytes of data, padded to 8
};
static_assert(sizeof(DiskTxnRecord) == 16);

// Who owns an allocation unit. Static metadata kinds are recorded at mkfs; the dynamic
// kinds (file data, directory, symlink, extent block) in the same transaction that
// allocates the AU.
enum class OwnerKind : uint8_t {
  kFree = 0,
  kSuperblock = 1,
  kReplica = 2,
  kJournal = 3,
  kInodeBitmap = 4,
  kInodeTable = 5,
  kAuBitmap = 6,
  kRmap = 7,
  kFileData = 8,
  kDirectory = 9,
  kSymlink = 10,
  kExtentBlock = 11,
  kQuarantined = 12,
  kXattr = 13,
};
inline constexpr uint8_t kOwnerKindMax = 13;

// Reverse-map record, one per AU, at rmap_off + au * 16. 16 bytes, so the map costs
// 0.39% of a 4 KiB-AU region (the budget is 0.5%). A record is meaningful only while the
// AU bitmap says the AU is allocated: freeing an AU clears its bit and leaves the record,
// which the next allocation overwrites (so a free costs no reverse-map write).
inline constexpr uint8_t kRmapCopy2 = 1u << 0;  // the second copy of a metadata structure
struct DiskRmapRecord {
  uint32_t ino;
  uint16_t generation;  // low 16 bits of the owner's generation
  uint8_t kind;
  uint8_t flags;        // kRmapCopy2
  uint32_t file_au;     // file offset / AU size (files stop at 2^32 AUs: 16 TiB at 4 KiB)
  uint32_t crc;         // CRC32C of the record with crc = 0, seeded with the AU number
};
static_assert(sizeof(DiskRmapRecord) == 16);

}  // namespace udax
