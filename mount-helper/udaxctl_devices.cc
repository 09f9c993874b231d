// udaxctl_devices.cc -- `udaxctl remove-device MOUNT DEV`: one device of a multi-device
// filesystem goes, and the filesystem goes on without it; `udaxctl add-device MOUNT DEV
// [PATH]`: it comes back; `udaxctl replace-device MOUNT DEV NEW`: a blank one takes its place.
//
// What a managed hot-remove (or a failed device) asks of the daemon: revoke the direct
// maps of everything on the device, drop the kernel's cached pages of it, and serve on,
// degraded -- the files whose data lived there fail with EIO for those bytes, metadata
// is served from its other copy (README.md, "Several devices"). The daemon acts on it as
// on a device-removed uevent; this waits until it has, and says so.
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <thread>

#include "mount-helper/udaxctl.h"

namespace udax {

int CmdRemoveDevice(const std::string& mount, uint64_t device, bool json) {
  const char* cmd = "remove-device";
  if (!ControlCall(mount, {{"op", "remove-device"}, {"device", device}}, cmd)) return 1;
  // The loss is the media machinery's to carry out (revokes, invalidations, the event
  // log): wait for the daemon to say the device is gone.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<nlohmann::json> status = ControlCall(mount, {{"op", "status"}}, cmd);
    if (!status) return 1;
    if ((*status)["devices"].is_array()) {
      for (const nlohmann::json& d : (*status)["devices"]) {
        if (d.value("device", uint64_t{0}) != device || !d.value("lost", false) ||
            d.value("removing", false)) {
          continue;
        }
        if (json) {
          printf("%s\n", nlohmann::json{{"mount", mount}, {"device", device},
                                        {"path", d.value("path", std::string())},
                                        {"state", "degraded"}}.dump(2).c_str());
        } else {
          printf("%s: device %llu (%s) removed; serving, degraded (udaxctl events %s)\n",
                 mount.c_str(), static_cast<unsigned long long>(device),
                 d.value("path", std::string()).c_str(), mount.c_str());
        }
        return 0;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  fprintf(stderr, "udaxctl %s: %s: the daemon did not finish within 30 s (udaxctl events)\n",
          cmd, mount.c_str());
  return 1;
}

// The name given to the daemon, which opens it (as root): made absolute here, against
// the caller's directory. "" for "" (add-device without a path).
static std::optional<std::string> AbsoluteTarget(const char* cmd, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) {
    fprintf(stderr, "udaxctl %s: %s: %s\n", cmd, path.c_str(), strerror(errno));
    return std::nullopt;
  }
  return std::string(buf);
}

// The same device back (its own superblock copy says so; a stranger or another device is
// refused): the daemon maps it afresh from PATH if one is given (pulled for real and
// back, moved, or not named at mount), rewrites the metadata copies it missed from their
// partners, keeps quarantined what was freed there meanwhile, and serves its files' data
// again, before it answers (Filesystem::RestoreDevice).
int CmdAddDevice(const std::string& mount, uint64_t device, const std::string& path, bool json) {
  const char* cmd = "add-device";
  std::optional<std::string> resolved = AbsoluteTarget(cmd, path);
  if (!resolved) return 1;
  nlohmann::json request = {{"op", "add-device"}, {"device", device}};
  if (!resolved->empty()) request["path"] = *resolved;
  std::optional<nlohmann::json> done = ControlCall(mount, request, cmd);
  if (!done) return 1;
  const uint64_t meta = done->value("metadata_aus", uint64_t{0});
  const uint64_t kept = done->value("quarantined_aus", uint64_t{0});
  const uint64_t bytes = done->value("file_bytes", uint64_t{0});
  if (json) {
    nlohmann::json out = {{"mount", mount}, {"device", device}, {"state", "in service"},
                          {"metadata_aus", meta}, {"quarantined_aus", kept},
                          {"file_bytes", bytes}};
    if (!resolved->empty()) out["path"] = *resolved;
    printf("%s\n", out.dump(2).c_str());
  } else {
    printf("%s: device %llu back in service%s%s: %llu metadata AU(s) rewritten, %llu AU(s) "
           "freed meanwhile kept quarantined, %llu bytes of file data readable again\n",
           mount.c_str(), static_cast<unsigned long long>(device),
           resolved->empty() ? "" : " from ", resolved->c_str(),
           static_cast<unsigned long long>(meta), static_cast<unsigned long long>(kept),
           static_cast<unsigned long long>(bytes));
  }
  return 0;
}

// A blank device in a lost one's place (Filesystem::ReplaceDevice): the daemon opens NEW
// (as root), so the name is made absolute here, against the caller's directory.
int CmdReplaceDevice(const std::string& mount, uint64_t device, const std::string& path,
                     bool json) {
  const char* cmd = "replace-device";
  if (path.empty()) {
    fprintf(stderr, "udaxctl %s: an empty name is no device\n", cmd);
    return 1;
  }
  std::optional<std::string> absolute = AbsoluteTarget(cmd, path);
  if (!absolute) return 1;
  const std::string resolved = *absolute;
  std::optional<nlohmann::json> done = ControlCall(
      mount, {{"op", "replace-device"}, {"device", device}, {"path", resolved}}, cmd);
  if (!done) return 1;
  const uint64_t meta = done->value("metadata_aus", uint64_t{0});
  const uint64_t kept = done->value("quarantined_aus", uint64_t{0});
  const uint64_t files = done->value("lost_files", uint64_t{0});
  const uint64_t bytes = done->value("lost_file_bytes", uint64_t{0});
  if (json) {
    printf("%s\n", nlohmann::json{{"mount", mount}, {"device", device}, {"path", resolved},
                                  {"state", "in service"}, {"metadata_aus", meta},
                                  {"quarantined_aus", kept}, {"lost_files", files},
                                  {"lost_file_bytes", bytes}}.dump(2).c_str());
  } else {
    printf("%s: device %llu is now %s: %llu metadata AU(s) written; %llu file(s) lost %llu "
           "bytes with the old device (EIO there until rewritten or deleted); %llu AU(s) "
           "kept quarantined\n",
           mount.c_str(), static_cast<unsigned long long>(device), resolved.c_str(),
           static_cast<unsigned long long>(meta), static_cast<unsigned long long>(files),
           static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(kept));
  }
  return 0;
}

}  // namespace udax
