// control_request.cc -- parsing and checking control-socket requests.
#include "fs/fuse/control_request.h"

namespace udax {
namespace {

bool Unsigned(const nlohmann::json& req, const char* key, uint64_t* out) {
  auto it = req.find(key);
  if (it == req.end() || !it->is_number_unsigned()) return false;
  *out = it->get<uint64_t>();
  return true;
}

}  // namespace

Result<ControlRequest> ParseControlRequest(std::string_view packet) {
  auto req = nlohmann::json::parse(packet, nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded() || !req.is_object() || !req.contains("op") || !req["op"].is_string()) {
    return Status::InvalidArgument("malformed request: expected a JSON object with \"op\"");
  }
  const std::string op = req["op"].get<std::string>();
  ControlRequest out;
  if (op == "hello") {
    out.op = ControlOp::kHello;
  } else if (op == "subscribe") {
    out.op = ControlOp::kSubscribe;
  } else if (op == "leases") {
    out.op = ControlOp::kLeases;
  } else if (op == "status") {
    out.op = ControlOp::kStatus;
  } else if (op == "verify") {
    out.op = ControlOp::kVerify;
    if (req.contains("rate") && !Unsigned(req, "rate", &out.rate)) {
      return Status::InvalidArgument("verify's rate must be an unsigned number of bytes per second");
    }
    // A pass slower than this would hold the patrol (and every later request) for days.
    if (out.rate != 0 && out.rate < kMinVerifyRate) {
      return Status::InvalidArgument("verify's rate must be 0 (the mount's own) or at least 1 MB/s");
    }
  } else if (op == "view") {
    out.op = ControlOp::kView;  // the file is the descriptor that comes with it
    auto prot = req.find("prot");
    if (prot != req.end()) {
      if (!prot->is_string() || (*prot != "r" && *prot != "rw")) {
        return Status::InvalidArgument("view's prot must be \"r\" or \"rw\"");
      }
      out.writable = *prot == "rw";
    }
    auto extents = req.find("extents");
    if (extents != req.end()) {
      if (!extents->is_string() || *extents != "compact") {
        return Status::InvalidArgument("view's extents must be \"compact\" (or absent)");
      }
      out.compact_extents = true;
    }
    if (req.contains("reserve")) {
      if (!Unsigned(req, "reserve", &out.reserve)) {
        return Status::InvalidArgument("view's reserve must be an unsigned number of bytes");
      }
      if (out.reserve > 0 && !out.writable) {
        return Status::InvalidArgument("view's reserve needs prot \"rw\" (space to write past EOF)");
      }
    }
    if (req.contains("at")) {
      if (!Unsigned(req, "at", &out.reserve_at) || out.reserve == 0) {
        return Status::InvalidArgument("view's at must be an unsigned offset, with a reserve");
      }
    }
    if (req.contains("fill")) {
      const auto& fill = req["fill"];
      if (!fill.is_array() || fill.size() != 2 || !fill[0].is_number_unsigned() || !fill[1].is_number_unsigned()) {
        return Status::InvalidArgument("view's fill must be [offset, length], unsigned numbers of bytes");
      }
      out.fill_length = fill[1].get<uint64_t>();
      out.fill_offset = out.fill_length > 0 ? fill[0].get<uint64_t>() : 0;  // nothing to fill: nowhere
      if (out.fill_length > 0 && !out.writable) {
        return Status::InvalidArgument("view's fill needs prot \"rw\" (holes to write into)");
      }
    }
  } else if (op == "remove-device") {
    out.op = ControlOp::kRemoveDevice;
    if (!Unsigned(req, "device", &out.device) || out.device >= 64) {
      return Status::InvalidArgument(op + " needs a device number");
    }
  } else if (op == "add-device" || op == "replace-device") {
    out.op = op == "add-device" ? ControlOp::kAddDevice : ControlOp::kReplaceDevice;
    auto path = req.find("path");
    // add-device's path is optional: the device as mapped, or mapped afresh from there.
    const bool need_path = out.op == ControlOp::kReplaceDevice;
    if (!Unsigned(req, "device", &out.device) || out.device >= 64 ||
        (path == req.end() && need_path) || (path != req.end() && !path->is_string())) {
      return Status::InvalidArgument(op + (need_path ? " needs a device number and a path"
                                                     : " needs a device number (and may name a path)"));
    }
    if (path != req.end()) {
      out.path = path->get<std::string>();
      if (out.path.empty() || out.path[0] != '/' || out.path.size() >= 4096 ||
          out.path.find('\0') != std::string::npos) {
        return Status::InvalidArgument(op + "'s path must be absolute (and shorter than 4096)");
      }
    }
  } else if (op == "unmap") {
    out.op = ControlOp::kUnmap;
    if (!Unsigned(req, "lease", &out.lease)) return Status::InvalidArgument("unmap needs a lease number");
  } else if (op == "map") {
    out.op = ControlOp::kMap;
    auto prot = req.find("prot");
    if (!Unsigned(req, "offset", &out.offset) || !Unsigned(req, "length", &out.length) ||
        prot == req.end() || !prot->is_string()) {
      return Status::InvalidArgument("map needs offset, length (unsigned) and prot (\"r\" or \"rw\")");
    }
    const std::string p = prot->get<std::string>();
    if (p != "r" && p != "rw") return Status::InvalidArgument("prot must be \"r\" or \"rw\"");
    out.writable = p == "rw";
    if (out.length == 0 || out.offset > UINT64_MAX - out.length) {
      return Status::InvalidArgument("map needs a length of at least 1 that ends below 2^64");
    }
    auto devices = req.find("devices");
    if (devices != req.end()) {
      if (!devices->is_string() || *devices != "many") {
        return Status::InvalidArgument("map's devices must be \"many\" (or absent)");
      }
      out.many_devices = true;
    }
  } else {
    // The name is not echoed: a reply carries nothing the client did not choose to know,
    // and a long or binary name would only bloat it.
    return Status::InvalidArgument("unknown op");
  }
  return out;
}

nlohmann::json ControlRequestToJson(const ControlRequest& req) {
  switch (req.op) {
    case ControlOp::kHello:
      return {{"op", "hello"}};
    case ControlOp::kSubscribe:
      return {{"op", "subscribe"}};
    case ControlOp::kLeases:
      return {{"op", "leases"}};
    case ControlOp::kUnmap:
      return {{"op", "unmap"}, {"lease", req.lease}};
    case ControlOp::kStatus:
      return {{"op", "status"}};
    case ControlOp::kRemoveDevice:
      return {{"op", "remove-device"}, {"device", req.device}};
    case ControlOp::kAddDevice:
      if (req.path.empty()) return {{"op", "add-device"}, {"device", req.device}};
      return {{"op", "add-device"}, {"device", req.device}, {"path", req.path}};
    case ControlOp::kReplaceDevice:
      return {{"op", "replace-device"}, {"device", req.device}, {"path", req.path}};
    case ControlOp::kView: {
      nlohmann::json j = {{"op", "view"}};
      if (req.writable) j["prot"] = "rw";
      if (req.compact_extents) j["extents"] = "compact";
      if (req.reserve > 0) j["reserve"] = req.reserve;
      if (req.reserve > 0 && req.reserve_at > 0) j["at"] = req.reserve_at;
      if (req.fill_length > 0) j["fill"] = {req.fill_offset, req.fill_length};
      return j;
    }
    case ControlOp::kVerify:
      return {{"op", "verify"}, {"rate", req.rate}};
    case ControlOp::kMap: {
      nlohmann::json j = {{"op", "map"}, {"offset", req.offset}, {"length", req.length},
                          {"prot", req.writable ? "rw" : "r"}};
      if (req.many_devices) j["devices"] = "many";
      return j;
    }
  }
  return nlohmann::json::object();
}

}  // namespace udax
