// hex.h -- an offset or a length as messages and the event log's text print it.
//
// "%#" PRIx64: 0x1000, and plain 0 for zero (C's # flag adds no prefix to zero). Every
// message naming a region or file range uses it, so the ranges of one event read the
// same in the daemon's log, udaxctl's output and the event log.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

namespace udax {

inline std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%#" PRIx64, v);
  return buf;
}

}  // namespace udax
