// xattr_access.cc -- trusted.* visibility: the listing filter and the caller's rights
// (see xattr_access.h).
#include "fs/fuse/xattr_access.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <string>

#include "fs/base/file_reader.h"

namespace udax {
namespace {

constexpr std::string_view kTrustedPrefix = "trusted.";

// The value after "KEY:" on its own line of a /proc status text.
std::optional<std::string_view> Field(std::string_view status, std::string_view key) {
  size_t pos = 0;
  while (pos < status.size()) {
    size_t end = status.find('\n', pos);
    if (end == std::string_view::npos) end = status.size();
    const std::string_view line = status.substr(pos, end - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      return line.substr(key.size() + 1);
    }
    pos = end + 1;
  }
  return std::nullopt;
}

std::optional<std::string> UserNamespaceOf(const std::string& proc_dir) {
  char buf[128];
  const ssize_t n = readlink((proc_dir + "/ns/user").c_str(), buf, sizeof(buf));
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf)) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

bool IsTrustedXattr(std::string_view name) {
  return name.substr(0, kTrustedPrefix.size()) == kTrustedPrefix;
}

bool HasTrustedXattr(std::string_view names) {
  for (size_t pos = 0; pos < names.size();) {
    size_t end = names.find('\0', pos);
    if (end == std::string_view::npos) end = names.size();
    if (IsTrustedXattr(names.substr(pos, end - pos))) return true;
    pos = end + 1;
  }
  return false;
}

std::string WithoutTrustedXattrs(std::string_view names) {
  std::string out;
  for (size_t pos = 0; pos < names.size();) {
    size_t end = names.find('\0', pos);
    if (end == std::string_view::npos) end = names.size();
    const std::string_view name = names.substr(pos, end - pos);
    if (!name.empty() && !IsTrustedXattr(name)) {
      out += name;
      out.push_back('\0');
    }
    pos = end + 1;
  }
  return out;
}

std::optional<TaskCreds> ParseProcStatus(std::string_view status) {
  const auto uid = Field(status, "Uid");
  const auto cap = Field(status, "CapEff");
  if (!uid || !cap) return std::nullopt;
  // "Uid:\treal\teffective\tsaved\tfilesystem"
  const std::string uids(*uid);
  const char* p = uids.c_str();
  unsigned long long v = 0;
  for (int i = 0; i < 4; ++i) {
    char* end;
    errno = 0;
    v = std::strtoull(p, &end, 10);
    if (end == p || errno != 0 || v > UINT32_MAX) return std::nullopt;
    p = end;
  }
  const std::string caps(*cap);
  char* end;
  errno = 0;
  const unsigned long long c = std::strtoull(caps.c_str(), &end, 16);
  if (end == caps.c_str() || errno != 0) return std::nullopt;
  TaskCreds creds;
  creds.fsuid = static_cast<uint32_t>(v);
  creds.cap_eff = c;
  return creds;
}

bool MayUseTrustedXattrs(uint32_t request_fsuid, const std::optional<TaskCreds>& task,
                         bool same_user_ns) {
  if (!task || !same_user_ns) return false;
  if (task->fsuid == request_fsuid) return (task->cap_eff >> kCapSysAdmin) & 1;
  return request_fsuid == 0;
}

bool CallerMayUseTrustedXattrs(pid_t pid, uid_t fsuid) {
  if (pid <= 0) return false;  // not visible from our pid namespace
  static const std::optional<std::string> own_ns = UserNamespaceOf("/proc/self");
  const std::string dir = "/proc/" + std::to_string(pid);
  const auto status = ReadWholeFile(dir + "/status", 1u << 16);  // a few KiB
  const auto ns = UserNamespaceOf(dir);
  const bool same_ns = own_ns && ns && *ns == *own_ns;
  return MayUseTrustedXattrs(static_cast<uint32_t>(fsuid),
                             status.ok() ? ParseProcStatus(status.value()) : std::nullopt, same_ns);
}

}  // namespace udax
