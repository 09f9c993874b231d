// size_parse.h -- "1G", "256M", "4k", "1048576": sizes as users type them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace udax {

// Parses a byte count with an optional binary suffix (K, M, G, T; case-insensitive,
// optionally followed by "iB" or "B"). Returns nullopt on anything else or on overflow.
std::optional<uint64_t> ParseSize(std::string_view text);

}  // namespace udax
