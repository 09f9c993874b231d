// owner_json.cc -- an OwnerRange as udaxctl and the event log print it.
#include "notify/owner_json.h"

namespace udax {

nlohmann::json OwnerRangeToJson(const OwnerRange& r, const std::string& path,
                                WithGeneration generation) {
  nlohmann::json j{{"kind", OwnerKindName(r.owner.kind)}, {"phys", r.phys}, {"length", r.len}};
  if (r.owner.copy2) j["copy"] = 2;  // the second copy of a metadata structure
  if (r.owner.ino != 0) {
    j["ino"] = r.owner.ino;
    if (generation == WithGeneration::kYes) j["generation"] = r.owner.generation;
    j["offset"] = r.offset;
  }
  if (!path.empty()) j["path"] = path;
  return j;
}

}  // namespace udax
