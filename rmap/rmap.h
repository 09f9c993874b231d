// rmap.h -- the storage-indexed reverse map: for any physical range, who owns it.
//
// One 16-byte record per allocation unit, indexed by AU number, so a lookup is one array
// access per AU: O(1) for a bad cacheline, O(k) for a k-AU range, never a walk over
// inodes. Records are written in the same journal transaction as the allocation bitmap
// and the forward extent map, so the two maps can never disagree after a crash.
//
// Layering: the reverse map sits below the core. It knows the record format and where the
// records live, never the journal or the allocator: Records() hands back the bytes to
// write, and the core stages them in the same transaction as its bitmap and extent-map
// changes. Query only reads media and asks the caller whether an AU is allocated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fs/format/disk_format.h"
#include "fs/base/status.h"
#include "fs/region/region.h"

namespace udax {

const char* OwnerKindName(OwnerKind kind);
bool OwnerKindIsMetadata(OwnerKind kind);

// The owner of one AU as a record says it.
struct Owner {
  OwnerKind kind = OwnerKind::kFree;
  uint64_t ino = 0;         // file, directory, symlink and extent-block owners
  uint32_t generation = 0;  // low 16 bits on media
  uint64_t file_au = 0;     // AU index within the owner (extent blocks: chain index)
  bool copy2 = false;       // the second copy of a metadata structure (kRmapCopy2)
};
inline bool SameOwner(const Owner& a, const Owner& b) {
  return a.kind == b.kind && a.ino == b.ino && a.file_au == b.file_au &&
         (a.generation & 0xffff) == (b.generation & 0xffff) && a.copy2 == b.copy2;
}
// The owner of the other copy of a metadata AU that `o` owns.
inline Owner OtherCopy(Owner o) {
  o.copy2 = !o.copy2;
  return o;
}
// "directory of inode 12", "second copy of the inode table": for messages.
std::string OwnerName(const Owner& o);

// The records of a run of AUs, ready to be written at `offset` (one transaction's worth).
struct RmapRecords {
  uint64_t offset = 0;
  std::vector<DiskRmapRecord> records;
  size_t bytes() const { return records.size() * sizeof(DiskRmapRecord); }
};

// One answer of Query: the physical byte range [phys, phys+len) belongs to `owner`, at
// the owner's byte offset `offset` (file offset for data; AU-relative index otherwise).
struct OwnerRange {
  Owner owner;
  uint64_t phys = 0;
  uint64_t len = 0;
  uint64_t offset = 0;
};

class ReverseMap {
 public:
  ReverseMap() = default;
  ReverseMap(Region* region, const DiskSuperblock& sb) : region_(region), sb_(sb) {}

  // The records saying `owner` holds AUs [first_au, first_au + count), file_au counting up
  // from owner.file_au.
  RmapRecords Records(uint64_t first_au, uint64_t count, const Owner& owner) const;
  // Writes the records of the static metadata areas (mkfs).
  Status WriteStatic(bool persist) const;

  // Every owner of the physical bytes [phys, phys+len), in physical order, merged into
  // maximal ranges. `allocated` answers whether an AU is in use (the AU bitmap).
  // EIO if a record cannot be read; a record with a bad CRC is reported with
  // kind kFree and `corrupt` set in the result's flags.
  template <typename IsAllocated>
  Result<std::vector<OwnerRange>> Query(uint64_t phys, uint64_t len,
                                        IsAllocated allocated) const;
  // Reads and verifies one AU's record. Corruption if the CRC or kind is bad.
  Result<Owner> Read(uint64_t au) const;
  // Query's answer with each AU's owner from `owner_of(au)` (a Result<Owner>) instead of
  // the records: the reverse map is derived data, and a caller that cannot read the
  // records asks the forward maps. The range must be inside the filesystem.
  template <typename OwnerOf>
  static Result<std::vector<OwnerRange>> Collect(uint64_t phys, uint64_t len, uint64_t au_size,
                                                 OwnerOf owner_of);

  static DiskRmapRecord Encode(uint64_t au, const Owner& owner);
  static Result<Owner> Decode(uint64_t au, const DiskRmapRecord& rec);

 private:
  uint64_t RecordOffset(uint64_t au) const { return sb_.rmap_off + au * sizeof(DiskRmapRecord); }
  Region* region_ = nullptr;
  DiskSuperblock sb_{};
};

template <typename IsAllocated>
Result<std::vector<OwnerRange>> ReverseMap::Query(uint64_t phys, uint64_t len,
                                                  IsAllocated allocated) const {
  if (len == 0) return std::vector<OwnerRange>{};
  if (phys >= sb_.region_size || len > sb_.region_size - phys) {
    return Status::InvalidArgument("range outside the filesystem");
  }
  return Collect(phys, len, sb_.au_size, [&](uint64_t au) -> Result<Owner> {
    if (!allocated(au)) return Owner{};
    return Read(au);
  });
}

template <typename OwnerOf>
Result<std::vector<OwnerRange>> ReverseMap::Collect(uint64_t phys, uint64_t len,
                                                    uint64_t au_size, OwnerOf owner_of) {
  std::vector<OwnerRange> out;
  for (uint64_t au = phys / au_size; au * au_size < phys + len; ++au) {
    UDAX_ASSIGN_OR_RETURN(Owner owner, owner_of(au));
    const uint64_t s = std::max(phys, au * au_size);
    const uint64_t e = std::min(phys + len, (au + 1) * au_size);
    const uint64_t offset = owner.file_au * au_size + (s - au * au_size);
    if (!out.empty()) {
      OwnerRange& last = out.back();
      if (last.owner.kind == owner.kind && last.owner.ino == owner.ino &&
          last.owner.copy2 == owner.copy2 && last.phys + last.len == s && last.offset + last.len == offset) {
        last.len += e - s;
        continue;
      }
    }
    out.push_back(OwnerRange{owner, s, e - s, offset});
  }
  return out;
}

}  // namespace udax
