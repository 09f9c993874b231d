// byte_overlap.h -- copying the part of one byte range that falls inside another.
//
// Media repair rewrites whole 512-byte blocks, which may cut across several in-memory
// objects (a superblock, a bitmap, the journal state): each object contributes the bytes
// of its own that fall inside the block.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace udax {

// Copies the part of the object [obj_off, obj_off+obj_len) (its bytes at `obj`) that lies
// inside [off, off+n) to dst, which holds the n bytes of [off, off+n).
inline void CopyOverlap(uint64_t obj_off, const void* obj, uint64_t obj_len, uint64_t off,
                        uint64_t n, uint8_t* dst) {
  const uint64_t s = std::max(obj_off, off), e = std::min(obj_off + obj_len, off + n);
  if (s >= e) return;
  std::memcpy(dst + (s - off), static_cast<const uint8_t*>(obj) + (s - obj_off), e - s);
}

}  // namespace udax
