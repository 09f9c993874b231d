// dir_ops.cc -- linear-hash directory buckets (see dir_ops.h).
#include "fs/core/dir_ops.h"

#include <bit>

namespace udax {
namespace {

// Split a bucket once the directory averages more entries per bucket than this (about
// 55% fill with 20-byte names), or whenever an insert had to overflow.
constexpr uint64_t kSplitEntriesPerBucket = 64;
constexpr uint64_t kMaxBuckets = kDirOvfBase - 1;
// A split may allocate a bucket, overflow blocks for it, and extent blocks.
constexpr uint64_t kSplitMinFreeAus = 16;

}  // namespace

uint32_t DirOps::Hash(std::string_view name) const { return NameHash(name, fs_->sb_.hash_seed); }

uint32_t DirOps::BucketOf(uint32_t hash, uint32_t n) const {
  if (n == 0) return 0;  // a damaged inode: ReadChain reports it
  const uint32_t level = 31 - std::countl_zero(n);  // 2^level <= n < 2^(level+1)
  uint64_t b = hash & ((2ull << level) - 1);
  if (b >= n) b = hash & ((1ull << level) - 1);
  return static_cast<uint32_t>(b);
}

Result<uint64_t> DirOps::BlockOffset(Inode* dir, uint64_t logical, bool allocate) {
  fs_->mu_.AssertHeld();
  const uint64_t au = fs_->sb_.au_size;
  const uint64_t byte = logical * kBlockSize;
  const uint64_t file_au = byte / au;
  uint64_t run = 0;
  uint64_t phys = fs_->MapAu(*dir, file_au, 1, &run);
  if (phys == 0) {
    if (!allocate) return Status::Corruption("directory " + std::to_string(dir->ino) +
                                             ": missing block " + std::to_string(logical));
    UDAX_RETURN_IF_ERROR(fs_->AllocateRange(dir, file_au, 1, false));
    phys = fs_->MapAu(*dir, file_au, 1, &run);
  }
  return phys * au + byte % au;
}

Status DirOps::ReadBlock(Inode* dir, uint64_t logical, DirBlock* block) {
  fs_->mu_.AssertHeld();
  UDAX_ASSIGN_OR_RETURN(uint64_t off, BlockOffset(dir, logical, false));
  uint8_t buf[kBlockSize];
  Status st = fs_->ReadMeta(off, buf, kBlockSize, [&](const void* bytes) {
    return DirBlockDecode(static_cast<const uint8_t*>(bytes), block);
  });
  if (st.code() == EIO) {
    return Status::IoError("directory " + std::to_string(dir->ino) + " block " +
                           std::to_string(logical) + " does not read: " + st.message());
  }
  if (!st.ok()) {
    return Status::Corruption("directory " + std::to_string(dir->ino) + " block " +
                              std::to_string(logical) + ": " + st.message());
  }
  return Status::Ok();
}

Status DirOps::WriteBlock(Inode* dir, uint64_t logical, const DirBlock& block) {
  fs_->mu_.AssertHeld();
  UDAX_ASSIGN_OR_RETURN(uint64_t off, BlockOffset(dir, logical, true));
  uint8_t buf[kBlockSize];
  DirBlockEncode(block, buf);
  fs_->txn_.Write(off, buf, kBlockSize);
  return Status::Ok();
}

Status DirOps::Init(Inode* dir) {
  dir->d.dir_buckets = 1;
  dir->d.dir_ovf_next = 0;
  dir->d.dir_ovf_free = 0;
  dir->d.dir_entries = 0;
  UDAX_RETURN_IF_ERROR(WriteBlock(dir, 0, DirBlock{}));
  dir->d.size = kBlockSize;
  return Status::Ok();
}

Status DirOps::ReadChain(Inode* dir, uint32_t bucket, std::vector<ChainBlock>* chain) {
  chain->clear();
  if (bucket >= dir->d.dir_buckets) {
    return Status::Corruption("directory " + std::to_string(dir->ino) + ": no bucket " +
                              std::to_string(bucket) + " (it counts " +
                              std::to_string(dir->d.dir_buckets) + ")");
  }
  uint64_t logical = bucket;
  for (uint32_t guard = 0;; ++guard) {
    if (guard > dir->d.dir_ovf_next + 1) {
      return Status::Corruption("directory " + std::to_string(dir->ino) + ": overflow cycle");
    }
    ChainBlock cb{logical, {}};
    UDAX_RETURN_IF_ERROR(ReadBlock(dir, logical, &cb.block));
    const uint32_t next = cb.block.next;
    chain->push_back(std::move(cb));
    if (next == 0) break;
    if (next > dir->d.dir_ovf_next) {
      return Status::Corruption("directory " + std::to_string(dir->ino) + ": bad overflow link");
    }
    logical = kDirOvfBase + next - 1;
  }
  return Status::Ok();
}

Result<std::optional<DirEntry>> DirOps::Find(Inode* dir, std::string_view name) {
  const uint32_t h = Hash(name);
  std::vector<ChainBlock> chain;
  UDAX_RETURN_IF_ERROR(ReadChain(dir, BucketOf(h, dir->d.dir_buckets), &chain));
  for (ChainBlock& cb : chain) {
    for (DirEntry& e : cb.block.entries) {
      if (e.hash == h && e.name == name) return std::optional<DirEntry>(std::move(e));
    }
  }
  return std::optional<DirEntry>();
}

Result<uint64_t> DirOps::NewOverflowBlock(Inode* dir) {
  if (dir->d.dir_ovf_free != 0) {
    const uint64_t logical = kDirOvfBase + dir->d.dir_ovf_free - 1;
    DirBlock b;
    UDAX_RETURN_IF_ERROR(ReadBlock(dir, logical, &b));
    dir->d.dir_ovf_free = b.next;
    return logical;
  }
  if (dir->d.dir_ovf_next >= kMaxBuckets) return Status::NoSpace("directory too large");
  return kDirOvfBase + dir->d.dir_ovf_next++;
}

Status DirOps::FreeOverflowBlock(Inode* dir, uint64_t logical) {
  DirBlock b;
  b.next = dir->d.dir_ovf_free;
  UDAX_RETURN_IF_ERROR(WriteBlock(dir, logical, b));
  dir->d.dir_ovf_free = static_cast<uint32_t>(logical - kDirOvfBase + 1);
  return Status::Ok();
}

Status DirOps::WriteChain(Inode* dir, uint64_t primary, std::vector<ChainBlock> old_chain,
                          std::vector<DirEntry> entries) {
  // Blocks available in chain order: the old ones, then new overflow blocks as needed.
  std::vector<uint64_t> logicals;
  for (const ChainBlock& cb : old_chain) logicals.push_back(cb.logical);
  if (logicals.empty()) logicals.push_back(primary);
  std::vector<DirBlock> blocks(1);
  for (DirEntry& e : entries) {
    if (blocks.back().used_bytes() + DirEntrySize(e.name.size()) > kDirBlockPayload) {
      blocks.emplace_back();
    }
    blocks.back().entries.push_back(std::move(e));
  }
  while (logicals.size() < blocks.size()) {
    UDAX_ASSIGN_OR_RETURN(uint64_t l, NewOverflowBlock(dir));
    logicals.push_back(l);
  }
  for (size_t i = blocks.size(); i < logicals.size(); ++i) {
    UDAX_RETURN_IF_ERROR(FreeOverflowBlock(dir, logicals[i]));
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    blocks[i].next = i + 1 < blocks.size()
                         ? static_cast<uint32_t>(logicals[i + 1] - kDirOvfBase + 1) : 0;
    UDAX_RETURN_IF_ERROR(WriteBlock(dir, logicals[i], blocks[i]));
  }
  return Status::Ok();
}

Status DirOps::Insert(Inode* dir, std::string_view name, uint64_t ino, uint8_t type) {
  fs_->mu_.AssertHeld();
  const uint32_t h = Hash(name);
  std::vector<ChainBlock> chain;
  UDAX_RETURN_IF_ERROR(ReadChain(dir, BucketOf(h, dir->d.dir_buckets), &chain));
  DirEntry e{ino, h, type, std::string(name)};
  bool overflowed = true;
  for (ChainBlock& cb : chain) {
    if (cb.block.used_bytes() + DirEntrySize(name.size()) <= kDirBlockPayload) {
      cb.block.entries.push_back(std::move(e));
      UDAX_RETURN_IF_ERROR(WriteBlock(dir, cb.logical, cb.block));
      overflowed = false;
      break;
    }
  }
  if (overflowed) {
    UDAX_ASSIGN_OR_RETURN(uint64_t l, NewOverflowBlock(dir));
    DirBlock nb;
    nb.entries.push_back(std::move(e));
    UDAX_RETURN_IF_ERROR(WriteBlock(dir, l, nb));
    chain.back().block.next = static_cast<uint32_t>(l - kDirOvfBase + 1);
    UDAX_RETURN_IF_ERROR(WriteBlock(dir, chain.back().logical, chain.back().block));
  }
  dir->d.dir_entries++;
  // A split only keeps chains short; it is skipped when space is nearly gone, so that
  // creating a name never needs more than an overflow block and its extent block. The
  // room is held, not just counted: writers reserve AUs without the metadata lock.
  if ((overflowed || dir->d.dir_entries > uint64_t{dir->d.dir_buckets} * kSplitEntriesPerBucket) &&
      dir->d.dir_buckets < kMaxBuckets && fs_->HoldAus(kSplitMinFreeAus, 0, dir->ino)) {
    UDAX_RETURN_IF_ERROR(Split(dir));
  }
  return Status::Ok();
}

Status DirOps::Split(Inode* dir) {
  const uint32_t n = dir->d.dir_buckets;
  const uint32_t level = 31 - std::countl_zero(n);
  const uint32_t victim = n - (1u << level);
  std::vector<ChainBlock> chain;
  UDAX_RETURN_IF_ERROR(ReadChain(dir, victim, &chain));
  std::vector<DirEntry> stay, move;
  for (ChainBlock& cb : chain) {
    for (DirEntry& e : cb.block.entries) {
      ((e.hash & ((2ull << level) - 1)) == n ? move : stay).push_back(std::move(e));
    }
  }
  UDAX_RETURN_IF_ERROR(WriteChain(dir, victim, std::move(chain), std::move(stay)));
  UDAX_RETURN_IF_ERROR(WriteChain(dir, n, {}, std::move(move)));
  dir->d.dir_buckets = n + 1;
  dir->d.size = uint64_t{dir->d.dir_buckets} * kBlockSize;
  return Status::Ok();
}

Status DirOps::Remove(Inode* dir, std::string_view name) {
  const uint32_t h = Hash(name);
  const uint32_t bucket = BucketOf(h, dir->d.dir_buckets);
  std::vector<ChainBlock> chain;
  UDAX_RETURN_IF_ERROR(ReadChain(dir, bucket, &chain));
  std::vector<DirEntry> rest;
  bool found = false;
  for (ChainBlock& cb : chain) {
    for (DirEntry& e : cb.block.entries) {
      if (!found && e.hash == h && e.name == name) {
        found = true;
      } else {
        rest.push_back(e);
      }
    }
  }
  if (!found) return Status::NotFound(std::string(name));
  dir->d.dir_entries--;
  if (chain.size() == 1) {  // common case: rewrite the one block
    auto& v = chain[0].block.entries;
    std::erase_if(v, [&](const DirEntry& e) { return e.hash == h && e.name == name; });
    return WriteBlock(dir, chain[0].logical, chain[0].block);
  }
  return WriteChain(dir, bucket, std::move(chain), std::move(rest));
}

Status DirOps::Replace(Inode* dir, std::string_view name, uint64_t ino, uint8_t type) {
  const uint32_t h = Hash(name);
  std::vector<ChainBlock> chain;
  UDAX_RETURN_IF_ERROR(ReadChain(dir, BucketOf(h, dir->d.dir_buckets), &chain));
  for (ChainBlock& cb : chain) {
    for (DirEntry& e : cb.block.entries) {
      if (e.hash == h && e.name == name) {
        e.ino = ino;
        e.type = type;
        return WriteBlock(dir, cb.logical, cb.block);
      }
    }
  }
  return Status::NotFound(std::string(name));
}

Status DirOps::List(Inode* dir, std::vector<DirListEntry>* out) {
  if (dir->d.dir_buckets == 0) {
    return Status::Corruption("directory " + std::to_string(dir->ino) + ": no buckets");
  }
  std::vector<ChainBlock> chain;
  for (uint32_t b = 0; b < dir->d.dir_buckets; ++b) {
    UDAX_RETURN_IF_ERROR(ReadChain(dir, b, &chain));
    for (ChainBlock& cb : chain) {
      for (DirEntry& e : cb.block.entries) {
        // An entry a lookup cannot find (its hash is not its name's, or it sits in another
        // bucket's chain) is damage the block checksum cannot see: say so.
        if (e.hash != Hash(e.name) || BucketOf(e.hash, dir->d.dir_buckets) != b) {
          return Status::Corruption("directory " + std::to_string(dir->ino) + ": entry '" +
                                    e.name + "' is not where its name hashes to");
        }
        out->push_back({e.ino, e.type, std::move(e.name)});
      }
    }
  }
  return Status::Ok();
}

}  // namespace udax
