// crc32c.cc -- CRC32C through ISA-L (hardware-accelerated where the CPU has it).
#include "fs/format/crc32c.h"

#include <isa-l/crc.h>

#include <climits>

namespace udax {

uint32_t Crc32c(const void* data, size_t n, uint32_t seed) {
  // ISA-L's crc32_iscsi takes and returns the raw (non-inverted) register; the standard
  // CRC32C inverts on the way in and out.
  uint32_t crc = ~seed;
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  while (n > 0) {
    const int chunk = n > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(n);
    crc = crc32_iscsi(p, chunk, crc);
    p += chunk;
    n -= static_cast<size_t>(chunk);
  }
  return ~crc;
}

}  // namespace udax
