// udaxctl_leases.cc -- `udaxctl leases MOUNT [--json]`: the direct maps clients hold.
//
// Asks the daemon over its control socket (ControlCall); paths are resolved
// through the mount's rmap ioctl helper (PathViaIoctl).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "mount-helper/udaxctl.h"

namespace udax {

std::optional<nlohmann::json> FetchLeases(const std::string& mount, const char* cmd) {
  std::optional<nlohmann::json> reply = ControlCall(mount, {{"op", "leases"}}, cmd);
  if (!reply) return std::nullopt;
  if (!reply->contains("leases") || !(*reply)["leases"].is_array()) {
    fprintf(stderr, "udaxctl %s: %s: malformed answer\n", cmd, mount.c_str());
    return std::nullopt;
  }
  for (auto& l : (*reply)["leases"]) {
    const std::string p = PathViaIoctl(mount, l.value("ino", uint64_t{0}));
    if (!p.empty()) l["path"] = p;
  }
  return reply;
}

int CmdLeases(const std::string& mount, bool json) {
  std::optional<nlohmann::json> reply = FetchLeases(mount, "leases");
  if (!reply) return 1;
  const nlohmann::json& leases = (*reply)["leases"];
  if (json) {
    printf("%s\n", leases.dump(2).c_str());
    return 0;
  }
  if (leases.empty()) printf("%s: no direct maps\n", mount.c_str());
  const uint64_t total = reply->value("total", uint64_t{leases.size()});
  if (total > leases.size()) printf("%s: %llu direct maps, the first %zu shown\n", mount.c_str(),
                                    static_cast<unsigned long long>(total), leases.size());
  for (const auto& l : leases) {
    if (l.value("kind", "map") == "view") {  // the preload shim's read(2)/write(2) path
      printf("lease %llu pid %d (%s) %s ino %llu %s view (whole file)\n",
             (unsigned long long)l.value("lease", uint64_t{0}), l.value("pid", 0),
             l.value("comm", "").c_str(), l.value("path", "?").c_str(),
             (unsigned long long)l.value("ino", uint64_t{0}),
             l.value("prot", "r") == "rw" ? "write" : "read");
      continue;
    }
    printf("lease %llu pid %d (%s) %s ino %llu [%#llx, +%#llx) %s\n",
           (unsigned long long)l.value("lease", uint64_t{0}), l.value("pid", 0),
           l.value("comm", "").c_str(), l.value("path", "?").c_str(),
           (unsigned long long)l.value("ino", uint64_t{0}), (unsigned long long)l.value("offset", uint64_t{0}),
           (unsigned long long)l.value("length", uint64_t{0}), l.value("prot", "").c_str());
  }
  return 0;
}

}  // namespace udax
