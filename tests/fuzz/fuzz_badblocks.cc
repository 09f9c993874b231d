// fuzz_badblocks.cc -- the badblocks list parser (fs/format/badblock_list.h) on arbitrary text.
//
// The list file is the one input root's daemon reads that, before the state directory,
// anyone who could write the image's directory could plant; sysfs `badblocks` files use
// the same parser. Properties checked on every input that parses:
//   * the list is sorted, disjoint and merged (no two ranges touch), no count is 0, no
//     range passes kMaxBadblockSector;
//   * ToText round-trips: Parse(ToText(l)) == l, and ToText of that is the same text;
//   * Minus and Overlaps agree with the ranges (l.Minus(l) is empty, each range overlaps).
// A parse error must carry EINVAL and name the source ("fuzz:LINE: ...").
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fs/format/badblock_list.h"

using namespace udax;

namespace {

void Check(bool ok) {
  if (!ok) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<BadblockList> parsed = BadblockList::Parse(text, "fuzz");
  if (!parsed.ok()) {
    Check(parsed.status().code() == EINVAL);
    Check(parsed.status().message().rfind("fuzz:", 0) == 0);
    return 0;
  }
  const BadblockList& list = parsed.value();
  const auto& r = list.ranges();
  for (size_t i = 0; i < r.size(); ++i) {
    Check(r[i].count >= 1);
    Check(r[i].sector <= kMaxBadblockSector && r[i].count <= kMaxBadblockSector - r[i].sector);
    if (i > 0) Check(r[i - 1].end() < r[i].sector);  // sorted, disjoint, not adjacent
    Check(list.Overlaps(r[i].sector, r[i].count));
  }
  const std::string out = list.ToText();
  Result<BadblockList> again = BadblockList::Parse(out, "fuzz-again");
  Check(again.ok());
  Check(again.value() == list);
  Check(again->ToText() == out);
  Check(list.Minus(list).empty());
  return 0;
}
