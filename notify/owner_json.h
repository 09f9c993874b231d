// owner_json.h -- one owner of a physical range as JSON, the same wherever it is printed.
//
// `udaxctl rmap --json`, `udaxctl list --media-errors --json` and the event log (whose
// lines `udaxctl events` reads back) describe an OwnerRange (rmap/rmap.h) alike: its
// "kind", "phys" and "length"; for an inode's bytes also "ino" and the file "offset"; the
// "path" when one is known. Here, below both the daemon and udaxctl, is the one place
// that says so.
//
// Thread-safety: a pure function.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "rmap/rmap.h"

namespace udax {

// Whether an inode owner carries its "generation". udaxctl's queries print it; the event
// log has never recorded it (its readers must not see a new field appear in old logs).
enum class WithGeneration : bool { kNo, kYes };

// `path` is added when not empty (pass "" when none is known or the owner is no inode).
nlohmann::json OwnerRangeToJson(const OwnerRange& r, const std::string& path,
                                WithGeneration generation);

}  // namespace udax
