// mount_watch.cc -- re-reads our mount's options whenever the mount table changes.
#include "fs/fuse/mount_watch.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include "fs/base/file_reader.h"

namespace udax {
namespace {

std::string DecodeOctalEscapes(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && s.size() - i >= 4 && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' &&
        s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t end = line.find(' ', pos);
    if (end == line.npos) end = line.size();
    if (end > pos) out.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

}  // namespace

AtimePolicy AtimePolicyFromOptions(std::string_view options) {
  AtimePolicy policy;
  policy.mode = AtimeUpdate::kAlways;  // strictatime shows as neither flag
  size_t pos = 0;
  while (pos <= options.size()) {
    size_t end = options.find(',', pos);
    if (end == options.npos) end = options.size();
    const std::string_view opt = options.substr(pos, end - pos);
    if (opt == "noatime") policy.mode = AtimeUpdate::kNever;
    if (opt == "relatime" && policy.mode != AtimeUpdate::kNever) policy.mode = AtimeUpdate::kRelative;
    if (opt == "nodiratime") policy.dirs = false;
    pos = end + 1;
  }
  return policy;
}

std::string MountOptionsOf(std::string_view mountinfo, std::string_view mountpoint) {
  std::string found;
  size_t pos = 0;
  while (pos < mountinfo.size()) {
    size_t end = mountinfo.find('\n', pos);
    if (end == mountinfo.npos) end = mountinfo.size();
    const std::vector<std::string_view> f = Fields(mountinfo.substr(pos, end - pos));
    // id parent major:minor root mount-point mount-options ...
    if (f.size() >= 6 && DecodeOctalEscapes(f[4]) == mountpoint) found = std::string(f[5]);
    pos = end + 1;
  }
  return found;
}

Status MountWatch::Start(Filesystem* fs, std::string mountpoint) {
  fs_ = fs;
  mountpoint_ = std::move(mountpoint);
  mountinfo_ = UniqueFd(open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
  if (!mountinfo_.valid()) return Status::FromErrno("open /proc/self/mountinfo");
  UDAX_ASSIGN_OR_RETURN(thread_, SourceThread::Create());
  Refresh();
  thread_.Start([this] { Run(); });
  return Status::Ok();
}

void MountWatch::Refresh() {
  auto text = ReadWholeFd(mountinfo_.get(), "/proc/self/mountinfo");
  if (!text.ok()) return;
  const std::string options = MountOptionsOf(*text, mountpoint_);
  if (!options.empty()) fs_->SetAtimePolicy(AtimePolicyFromOptions(options));
}

void MountWatch::Run() {
  while (true) {
    pollfd fds[1] = {{mountinfo_.get(), POLLPRI, 0}};
    Result<Wake> wake = thread_.Wait(fds);
    if (!wake.ok() || *wake == Wake::kStopped) return;
    if (fds[0].revents & (POLLPRI | POLLERR)) Refresh();
  }
}

}  // namespace udax
