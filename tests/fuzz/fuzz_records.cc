// fuzz_records.cc -- decoding of inodes, extent records and directory buckets, alone and
// in a mounted image.
//
// Input: a flags byte, then up to 256 bytes of inode, 4096 of directory bucket and 4096 of
// extent block (a short input leaves the rest as the base image has it). The inode goes
// over directory /d of a populated base image, the bucket over /d's first bucket, the
// extent block over /big's first extent block. Flags reseal what the fuzzer cannot: bit 0
// the inode's CRC, bit 1 its inline extent slots, bit 2 the bucket's CRC, bit 3 the extent
// block's header and slots. Then the decoders run on the raw bytes, the image is mounted
// and walked, checked, repaired, and checked again.
#include <cstring>

#include "fs/core/repair.h"
#include "fs/format/crc32c.h"
#include "tests/fuzz/fuzz_common.h"

using namespace udax;

namespace {

struct Places {
  uint64_t inode_off, bucket_off, block_off, dir_ino, big_ino;
};
fuzz::BaseImage* base;
std::shared_ptr<MemImage> work;  // the base image; each input's changes are undone
Places places;

template <typename T>
void Put(MemImage* img, uint64_t off, const T& v) {
  std::memcpy(img->data() + off, &v, sizeof(v));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  base = new fuzz::BaseImage(fuzz::MakeBaseImage(16 << 20, kAuSize4K, true));
  DiskSuperblock sb;
  std::memcpy(&sb, base->image->data(), sizeof(sb));
  work = fuzz::CopyImage(*base->image);
  auto copy = fuzz::CopyImage(*base->image);
  auto fs = Filesystem::MountRegion(std::make_unique<MemRegion>(copy), MountOptions{});
  if (!fs.ok()) fuzz::Violated("records: base image does not mount");
  auto bucket = (*fs)->Bmap(base->dir_ino);
  if (!bucket.ok() || bucket->empty()) fuzz::Violated("records: no bucket");
  DiskInode big;
  std::memcpy(&big, base->image->data() + InodeOffset(sb, base->big_ino), sizeof(big));
  places = {InodeOffset(sb, base->dir_ino), (*bucket)[0].phys_offset, big.ext_block * sb.au_size,
            base->dir_ino, base->big_ino};
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  std::shared_ptr<MemImage>& image = work;
  image->Undo();  // the last input's changes
  image->MarkDirty(places.inode_off, sizeof(DiskInode));
  image->MarkDirty(places.bucket_off, kBlockSize);
  image->MarkDirty(places.block_off, kBlockSize);
  const uint8_t* p = data + 1;
  size_t left = size - 1;
  auto take = [&](uint64_t off, size_t n) {
    const size_t k = std::min(n, left);
    std::memcpy(image->data() + off, p, k);
    p += k;
    left -= k;
  };
  take(places.inode_off, sizeof(DiskInode));
  take(places.bucket_off, kBlockSize);
  take(places.block_off, kBlockSize);

  DiskInode d;
  std::memcpy(&d, image->data() + places.inode_off, sizeof(d));
  if (flags & 2) {
    for (DiskExtent& e : d.extents) ExtentSeal(&e, places.dir_ino);
  }
  if (flags & 1) InodeSeal(&d);
  Put(image.get(), places.inode_off, d);
  uint8_t* bucket = image->data() + places.bucket_off;
  if (flags & 4) {
    std::memset(bucket + offsetof(DiskDirBlockHeader, crc), 0, 4);
    const uint32_t crc = Crc32c(bucket, kBlockSize);
    std::memcpy(bucket + offsetof(DiskDirBlockHeader, crc), &crc, 4);
  }
  if (flags & 8) {
    DiskExtentBlockHeader h;
    std::memcpy(&h, image->data() + places.block_off, sizeof(h));
    ExtentBlockSeal(&h);
    Put(image.get(), places.block_off, h);
    for (uint64_t i = 0; i < (kBlockSize - sizeof(h)) / sizeof(DiskExtent); ++i) {
      const uint64_t off = places.block_off + sizeof(h) + i * sizeof(DiskExtent);
      DiskExtent e;
      std::memcpy(&e, image->data() + off, sizeof(e));
      ExtentSeal(&e, places.big_ino);
      Put(image.get(), off, e);
    }
  }

  // The decoders on their own.
  DirBlock block;
  if (DirBlockDecode(bucket, &block).ok()) {
    uint8_t again[kBlockSize];
    if (block.used_bytes() <= kDirBlockPayload) DirBlockEncode(block, again);
  }
  (void)InodeVerify(d, places.dir_ino);
  for (const DiskExtent& e : d.extents) (void)ExtentValid(e, places.dir_ino);
  DiskRmapRecord rec;
  std::memcpy(&rec, bucket, sizeof(rec));
  (void)ReverseMap::Decode(flags, rec);

  // In a filesystem: what the daemon would do with it, then fsck.
  {
    auto fs = Filesystem::MountRegion(std::make_unique<MemRegion>(image), MountOptions{});
    if (fs.ok()) {
      Filesystem* f = fs->get();
      (void)f->Lookup(places.dir_ino, "f1");
      (void)f->Lookup(places.dir_ino, "sub");
      (void)f->ListDir(places.dir_ino);
      (void)f->ReadLink(places.dir_ino);
      fuzz::ReadEverything(f);
      (void)Repairer::CheckAll(f);
      (void)f->Unmount();
    }
  }
  fuzz::MaybeDump(*image);
  FsckOptions repair;
  repair.repair = true;
  auto outcome = Repairer::RunOnRegion(std::make_unique<MemRegion>(image), repair);
  if (outcome.ok() && outcome->remaining.problems) {
    fuzz::Violated("problems left after repair: " + outcome->remaining.messages.front());
  }
  return 0;
}
