// dir_ops.h -- directories as linear-hash tables of 4 KiB buckets.
//
// A directory's logical blocks 0 .. dir_buckets-1 are the primary buckets; an entry with
// name hash h lives in the chain of bucket B(h) (h mod 2^(L+1), or mod 2^L when that is
// past the last bucket, with 2^L <= dir_buckets < 2^(L+1)). When the directory grows past
// its load, one bucket (the split pointer, dir_buckets - 2^L) is split into itself and a
// new bucket at the end, so each insert does bounded work and a lookup reads one chain:
// no operation scans the directory. Chains overflow into blocks at kDirOvfBase + k.
//
// REQUIRES: the filesystem's metadata mutex for every call; changes go into its txn.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "fs/core/filesystem.h"

namespace udax {

class DirOps {
 public:
  // Made under the metadata mutex and used only in that scope; the methods tell the
  // analysis so (fs_->mu_.AssertHeld()) where they touch what it guards.
  explicit DirOps(Filesystem* fs) REQUIRES(fs->mu_) : fs_(fs) {}

  // Gives a new directory its first (empty) bucket.
  Status Init(Inode* dir);
  Result<std::optional<DirEntry>> Find(Inode* dir, std::string_view name);
  // REQUIRES: `name` is not in the directory.
  Status Insert(Inode* dir, std::string_view name, uint64_t ino, uint8_t type);
  // NotFound if absent.
  Status Remove(Inode* dir, std::string_view name);
  // Points an existing entry at another inode (rename over a target).
  Status Replace(Inode* dir, std::string_view name, uint64_t ino, uint8_t type);
  Status List(Inode* dir, std::vector<DirListEntry>* out);

 private:
  struct ChainBlock {
    uint64_t logical;  // logical block number in the directory
    DirBlock block;
  };
  uint32_t BucketOf(uint32_t hash, uint32_t nbuckets) const;
  uint32_t Hash(std::string_view name) const;
  Result<uint64_t> BlockOffset(Inode* dir, uint64_t logical, bool allocate);
  Status ReadBlock(Inode* dir, uint64_t logical, DirBlock* block);
  Status WriteBlock(Inode* dir, uint64_t logical, const DirBlock& block);
  Status ReadChain(Inode* dir, uint32_t bucket, std::vector<ChainBlock>* chain);
  Result<uint64_t> NewOverflowBlock(Inode* dir);
  Status FreeOverflowBlock(Inode* dir, uint64_t logical);
  // Packs entries into the chain's blocks (adding or freeing overflow blocks) and writes it.
  Status WriteChain(Inode* dir, uint64_t primary, std::vector<ChainBlock> old_chain,
                    std::vector<DirEntry> entries);
  Status Split(Inode* dir);

  Filesystem* fs_;
};

}  // namespace udax
