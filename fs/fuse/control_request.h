// control_request.h -- one control-socket request, parsed and checked (include/udaxfs/control.h).
//
// The daemon's only parser of what a client sends: every field is checked for presence,
// type and range here, so the server acts on a ControlRequest and never on raw JSON.
// Pure code with no descriptors and no daemon state, so it is fuzzed on its own
// (tests/fuzz/fuzz_control.cc).
//
// Thread-safety: none needed (functions of their arguments).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fs/base/status.h"

namespace udax {

enum class ControlOp : uint8_t {
  kHello, kSubscribe, kMap, kUnmap, kLeases, kVerify, kStatus, kView, kRemoveDevice,
  kAddDevice, kReplaceDevice
};

// The slowest verify pass a client may ask for: 1 MB/s (udaxctl's --rate 1).
constexpr uint64_t kMinVerifyRate = 1000000;

struct ControlRequest {
  ControlOp op = ControlOp::kHello;
  // kMap: file bytes [offset, offset+length), writable for prot "rw" (else "r").
  // kView: writable for prot "rw" (the whole file); compact_extents for "extents":
  // "compact" (the reply's "extent_table").
  uint64_t offset = 0;
  uint64_t length = 0;
  bool writable = false;
  bool compact_extents = false;
  // kView, writable only: bytes past EOF to reserve for appends ("reserve").
  uint64_t reserve = 0;
  // kView, with a reserve: where past EOF it starts ("at"; 0: at the size).
  uint64_t reserve_at = 0;
  // kView, writable only: file bytes [fill_offset, fill_offset+fill_length) whose holes
  // below the size to allocate for writes into them ("fill": [offset, length]).
  uint64_t fill_offset = 0;
  uint64_t fill_length = 0;
  // kMap: "devices": "many", a client that maps each extent through the descriptor of
  // its own device (a file on several devices of a multi-device filesystem).
  bool many_devices = false;
  // kUnmap: the lease to drop.
  uint64_t lease = 0;
  // kVerify: the pass's rate in bytes per second (0: the patrol's own; else at least
  // kMinVerifyRate).
  uint64_t rate = 0;
  // kRemoveDevice, kAddDevice, kReplaceDevice: which device of a multi-device filesystem.
  uint64_t device = 0;
  // kReplaceDevice: the device or image to put in its place; kAddDevice, optional: where
  // the device is now, to be mapped afresh (an absolute path, as the daemon, not the
  // client, opens it).
  std::string path;
  bool operator==(const ControlRequest&) const = default;
};

// Parses one packet. EINVAL, with a message the client may see, for anything that is not
// a JSON object with a known "op" and that op's fields (unsigned numbers, a length of at
// least 1 whose end does not overflow, prot "r" or "rw").
Result<ControlRequest> ParseControlRequest(std::string_view packet);
// The packet a client sends for `req` (ParseControlRequest's inverse).
nlohmann::json ControlRequestToJson(const ControlRequest& req);

}  // namespace udax
