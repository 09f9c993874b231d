// uevent.cc -- kernel uevent datagram parsing and the removal rule.
#include "notify/uevent.h"

namespace udax {

std::optional<Uevent> ParseUevent(std::string_view d) {
  // Splits at NULs; the first field is the "ACTION@DEVPATH" header.
  std::vector<std::string_view> fields;
  while (!d.empty()) {
    const size_t nul = d.find('\0');
    fields.push_back(d.substr(0, nul));
    d.remove_prefix(nul == std::string_view::npos ? d.size() : nul + 1);
  }
  if (fields.empty()) return std::nullopt;
  const std::string_view header = fields[0];
  const size_t at = header.find('@');
  if (header.rfind("libudev", 0) == 0 || at == std::string_view::npos || at == 0 ||
      at + 1 >= header.size()) {
    return std::nullopt;
  }
  Uevent ev;
  ev.action = std::string(header.substr(0, at));
  ev.devpath = std::string(header.substr(at + 1));
  for (size_t i = 1; i < fields.size(); ++i) {
    const size_t eq = fields[i].find('=');
    if (eq == std::string_view::npos || eq == 0) continue;  // not KEY=VALUE: ignore
    ev.env[std::string(fields[i].substr(0, eq))] = std::string(fields[i].substr(eq + 1));
  }
  // The kernel repeats the header in ACTION= and DEVPATH=; a mismatch is not its message.
  auto key = [&](const char* k) -> const std::string* {
    auto it = ev.env.find(k);
    return it == ev.env.end() ? nullptr : &it->second;
  };
  if (const std::string* a = key("ACTION"); a && *a != ev.action) return std::nullopt;
  if (const std::string* p = key("DEVPATH"); p && *p != ev.devpath) return std::nullopt;
  if (const std::string* s = key("SUBSYSTEM")) ev.subsystem = *s;
  if (const std::string* t = key("DEVTYPE")) ev.devtype = *t;
  return ev;
}

bool IsRemovalOf(const Uevent& ev, std::string_view devpath) {
  if (ev.action != "remove" && ev.action != "unbind") return false;
  if (ev.devpath.empty() || devpath.empty()) return false;
  if (devpath == ev.devpath) return true;
  // An ancestor: a prefix that ends at a component boundary.
  return devpath.size() > ev.devpath.size() && devpath.compare(0, ev.devpath.size(), ev.devpath) == 0 &&
         devpath[ev.devpath.size()] == '/';
}

}  // namespace udax
