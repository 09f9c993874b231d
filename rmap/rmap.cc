// rmap.cc -- reverse-map records: encoding, staging, static areas, reads.
#include "rmap/rmap.h"

#include <cstring>

#include "fs/format/crc32c.h"
#include "fs/format/layout.h"

namespace udax {

const char* OwnerKindName(OwnerKind kind) {
  switch (kind) {
    case OwnerKind::kFree: return "free";
    case OwnerKind::kSuperblock: return "superblock";
    case OwnerKind::kReplica: return "superblock-replica";
    case OwnerKind::kJournal: return "journal";
    case OwnerKind::kInodeBitmap: return "inode-bitmap";
    case OwnerKind::kInodeTable: return "inode-table";
    case OwnerKind::kAuBitmap: return "au-bitmap";
    case OwnerKind::kRmap: return "rmap";
    case OwnerKind::kFileData: return "file-data";
    case OwnerKind::kDirectory: return "directory";
    case OwnerKind::kSymlink: return "symlink";
    case OwnerKind::kExtentBlock: return "extent-block";
    case OwnerKind::kQuarantined: return "quarantined";
    case OwnerKind::kXattr: return "xattr";
  }
  return "unknown";
}

std::string OwnerName(const Owner& o) {
  std::string name = o.copy2 ? std::string("second copy of the ") : std::string();
  name += OwnerKindName(o.kind);
  if (o.ino != 0) name += " of inode " + std::to_string(o.ino);
  return name;
}

bool OwnerKindIsMetadata(OwnerKind kind) {
  return kind != OwnerKind::kFree && kind != OwnerKind::kFileData &&
         kind != OwnerKind::kSymlink && kind != OwnerKind::kQuarantined;
}

DiskRmapRecord ReverseMap::Encode(uint64_t au, const Owner& owner) {
  DiskRmapRecord r{};
  r.ino = static_cast<uint32_t>(owner.ino);
  r.generation = static_cast<uint16_t>(owner.generation);
  r.kind = static_cast<uint8_t>(owner.kind);
  r.flags = owner.copy2 ? kRmapCopy2 : 0;
  r.file_au = static_cast<uint32_t>(owner.file_au);
  r.crc = 0;
  r.crc = Crc32c(&r, sizeof(r), static_cast<uint32_t>(au));
  return r;
}

Result<Owner> ReverseMap::Decode(uint64_t au, const DiskRmapRecord& rec) {
  DiskRmapRecord copy = rec;
  copy.crc = 0;
  if (Crc32c(&copy, sizeof(copy), static_cast<uint32_t>(au)) != rec.crc ||
      rec.kind > kOwnerKindMax || (rec.flags & ~kRmapCopy2) != 0) {
    return Status::Corruption("reverse-map record of AU " + std::to_string(au) + " is damaged");
  }
  Owner o;
  o.kind = static_cast<OwnerKind>(rec.kind);
  o.ino = rec.ino;
  o.generation = rec.generation;
  o.file_au = rec.file_au;
  o.copy2 = (rec.flags & kRmapCopy2) != 0;
  return o;
}

RmapRecords ReverseMap::Records(uint64_t first_au, uint64_t count, const Owner& owner) const {
  RmapRecords out{RecordOffset(first_au), std::vector<DiskRmapRecord>(count)};
  Owner o = owner;
  for (uint64_t i = 0; i < count; ++i, ++o.file_au) out.records[i] = Encode(first_au + i, o);
  return out;
}

Status ReverseMap::WriteStatic(bool persist) const {
  const uint64_t au = sb_.au_size;
  for (const StaticArea& a : StaticAreas(sb_)) {
    std::vector<DiskRmapRecord> recs(a.len / au);
    Owner o{a.kind, 0, 0, 0, a.copy2};
    for (uint64_t i = 0; i < recs.size(); ++i, ++o.file_au) recs[i] = Encode(a.off / au + i, o);
    UDAX_RETURN_IF_ERROR(region_->WriteSafe(RecordOffset(a.off / au), recs.data(),
                                            recs.size() * sizeof(DiskRmapRecord), persist));
  }
  return Status::Ok();
}

Result<Owner> ReverseMap::Read(uint64_t au) const {
  if (au >= sb_.au_count) return Status::InvalidArgument("AU outside the filesystem");
  DiskRmapRecord rec;
  UDAX_RETURN_IF_ERROR(region_->ReadSafe(RecordOffset(au), &rec, sizeof(rec)));
  return Decode(au, rec);
}

}  // namespace udax
