// fuzz_common.h -- what the fuzz targets share: sparse images as fuzz inputs, resealing
// every checksum of a mutated image, a deterministic populated base image, and a walk that
// touches every name and byte a mounted image offers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "tests/fuzz/mem_region.h"

namespace udax::fuzz {

// A sparse image, as fuzz input:
//   byte 0      flags (kReseal: recompute every checksum after the blocks are in place)
//   byte 1      image size in MiB (clamped to 16 .. 128)
//   then        records {uint16 block index (little-endian, modulo the block count), 4096 bytes}
// A trailing partial record is ignored. Blocks not named are zero.
inline constexpr uint8_t kReseal = 1u << 0;
inline constexpr size_t kSparseRecord = 2 + 4096;

std::shared_ptr<MemImage> SparseToImage(const uint8_t* data, size_t n, uint8_t* flags);
// Every non-zero 4 KiB block of `image` (whose size must be whole MiB, 16 .. 128).
std::string ImageToSparse(const MemImage& image, uint8_t flags);

// Recomputes the CRC of every record it can find from the superblock on (superblocks,
// journal state and transaction, inodes, extent slots and blocks, directory buckets,
// reverse-map records), so that mutations reach the logic behind the checksums.
void ResealAll(MemImage* image);

// A formatted image with a fixed uuid and hash seed, holding a small tree: directories,
// files of one and several AUs, a file whose extents need an extent block, a hard link,
// short and long symlinks, a directory large enough to have split, and a file unlinked
// while open (an orphan). With `retire` the filesystem is unmounted cleanly; without, the
// journal slot keeps the last committed transaction, as after a crash.
struct BaseImage {
  std::shared_ptr<MemImage> image;
  uint64_t dir_ino = 0;   // /d, with many entries
  uint64_t big_ino = 0;   // /big, with an extent-block chain
  uint64_t file_ino = 0;  // /d/f0
};
BaseImage MakeBaseImage(uint64_t size, uint64_t au_size, bool retire);

std::shared_ptr<MemImage> CopyImage(const MemImage& image);
// The superblock a mount would use (the primary, else the replica at the end), if any.
std::optional<DiskSuperblock> ValidSuperblock(const MemImage& image);

// Lists every directory, stats and reads every file and link, asks bmap and owner queries:
// on a damaged image every call may fail, none may crash.
void ReadEverything(Filesystem* fs);
// A few changes (create, write, rename, unlink) on a mounted image.
void ChangeSomething(Filesystem* fs);

// With UDAX_FUZZ_DUMP=PATH in the environment, writes the image there (the state a
// target is about to repair), to look at with fsck.udaxfs.
void MaybeDump(const MemImage& image);

// Fails loudly (abort) with a message: a property the fuzzer must never break.
[[noreturn]] void Violated(const std::string& what);

}  // namespace udax::fuzz
