// fuzz_control.cc -- the control socket's request parser (fs/fuse/control_request.h).
//
// Input: one packet, as a client would send it. The parser must answer every input with a
// request or an EINVAL, never throw or crash; an accepted map asks for a non-empty range
// that does not overflow; and an accepted request, written back as JSON and parsed again,
// is the same request (the server acts on exactly what was checked).
#include <string_view>

#include "fs/fuse/control_request.h"
#include "tests/fuzz/fuzz_common.h"

using namespace udax;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view packet(reinterpret_cast<const char*>(data), size);
  Result<ControlRequest> req = ParseControlRequest(packet);
  if (!req.ok()) {
    if (req.status().code() != EINVAL) fuzz::Violated("a bad request is not EINVAL");
    return 0;
  }
  if (req->op == ControlOp::kMap && (req->length == 0 || req->offset > UINT64_MAX - req->length)) {
    fuzz::Violated("an accepted map range is empty or overflows");
  }
  Result<ControlRequest> again = ParseControlRequest(ControlRequestToJson(*req).dump());
  if (!again.ok() || !(*again == *req)) fuzz::Violated("a request does not survive its own JSON");
  return 0;
}
