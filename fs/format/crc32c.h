// crc32c.h -- CRC32C (Castagnoli) for every metadata record, via ISA-L's crc32_iscsi.
#pragma once

#include <cstddef>
#include <cstdint>

namespace udax {

// Standard CRC32C: Crc32c("123456789") == 0xE3069283. `seed` chains a previous result.
uint32_t Crc32c(const void* data, size_t n, uint32_t seed = 0);

}  // namespace udax
