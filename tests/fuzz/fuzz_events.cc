// fuzz_events.cc -- what `udaxctl events` does to the event log's lines (notify/event_log.h).
//
// The log is read by a tool that may run on a damaged or hand-edited file: ForEachEventLine
// splits a stream into lines (fed in two chunks cut where the first input byte says, as
// reads of a growing file cut it) and parses each as JSON; EventRecordToText prints any
// object, whatever its fields' types; --json prints it back with dump. None may throw or
// crash. Properties: the two-chunk feed sees the same records as a one-chunk feed, and
// every record survives dump and parse unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "notify/event_log.h"

using namespace udax;

namespace {

void Check(bool ok) {
  if (!ok) abort();
}

std::vector<std::string> Feed(std::string_view text, size_t cut) {
  std::vector<std::string> seen;
  std::string partial;
  auto on_line = [&](const nlohmann::json* j) {
    if (j == nullptr) {
      seen.push_back("<damaged>");
      return;
    }
    Check(j->is_object());
    const std::string printed = EventRecordToText(*j);
    Check(!printed.empty() && printed.back() == '\n');
    const std::string dumped = j->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    seen.push_back(dumped);
  };
  ForEachEventLine(text.substr(0, cut), &partial, on_line);
  ForEachEventLine(text.substr(cut), &partial, on_line);
  Check(partial.find('\n') == std::string::npos);
  return seen;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = data[0] % (text.size() + 1);
  const std::vector<std::string> split = Feed(text, cut);
  Check(split == Feed(text, text.size()));
  for (const std::string& s : split) {
    if (s == "<damaged>") continue;
    const auto j = nlohmann::json::parse(s, nullptr, false);
    Check(j.is_object());
    Check(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) == s);
  }
  return 0;
}
