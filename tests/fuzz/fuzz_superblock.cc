// fuzz_superblock.cc -- superblock verification and geometry.
//
// Input: a flags byte, then the bytes of a superblock (short inputs are zero-padded).
// flags bit 0 reseals the CRC so the fuzzer reaches the field checks; bits 1-2 choose the
// device size relative to what the superblock claims. A superblock that verifies must
// describe areas that lie inside the device, in order, without overlap; and every
// geometry ComputeGeometry accepts must verify once sealed.
#include <cstring>

#include "fs/format/layout.h"
#include "tests/fuzz/fuzz_common.h"

using namespace udax;

namespace {

void CheckAreas(const DiskSuperblock& sb, uint64_t device) {
  if (sb.region_size > device || sb.au_count * sb.au_size != sb.region_size) {
    fuzz::Violated("verified superblock does not fit the device");
  }
  uint64_t prev_end = 0;
  for (const StaticArea& a : StaticAreas(sb)) {
    if (a.off % sb.au_size || a.len % sb.au_size || a.off < prev_end || a.len == 0 ||
        a.off + a.len > sb.region_size) {
      fuzz::Violated("verified superblock has a bad static area");
    }
    prev_end = a.off + a.len;
  }
  if (FirstDataAu(sb) >= LastDataAu(sb) || sb.inode_count * sizeof(DiskInode) > sb.itable_len ||
      sb.au_count * sizeof(DiskRmapRecord) > sb.rmap_len ||
      (sb.au_count + 63) / 64 * 8 > sb.abitmap_len || (sb.inode_count + 7) / 8 > sb.ibitmap_len) {
    fuzz::Violated("verified superblock has areas too small for its counts");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  DiskSuperblock sb;
  std::memset(&sb, 0, sizeof(sb));
  std::memcpy(&sb, data + 1, std::min(size - 1, sizeof(sb)));
  if (flags & 1) SuperblockSeal(&sb);
  const uint64_t device = (flags >> 1 & 3) == 0   ? sb.region_size
                          : (flags >> 1 & 3) == 1 ? sb.region_size + kBlockSize
                          : (flags >> 1 & 3) == 2 ? sb.region_size / 2
                                                  : uint64_t{64} << 20;
  if (SuperblockVerify(sb, device).ok()) CheckAreas(sb, device);

  // The other direction: mkfs parameters from the same bytes.
  MkfsParams p;
  std::memcpy(&p.region_size, reinterpret_cast<const uint8_t*>(&sb) + 8, 8);
  std::memcpy(&p.bytes_per_inode, reinterpret_cast<const uint8_t*>(&sb) + 16, 8);
  std::memcpy(&p.journal_size, reinterpret_cast<const uint8_t*>(&sb) + 24, 8);
  p.region_size %= uint64_t{1} << 50;  // what a device may be
  if (p.journal_size > p.region_size) p.journal_size = 0;
  p.au_size = flags & 8 ? kAuSize2M : kAuSize4K;
  auto geometry = ComputeGeometry(p);
  if (geometry.ok()) {
    DiskSuperblock g = *geometry;
    SuperblockSeal(&g);
    Status st = SuperblockVerify(g, p.region_size);
    if (!st.ok()) fuzz::Violated("mkfs geometry does not verify: " + st.message());
    CheckAreas(g, p.region_size);
  }
  return 0;
}
