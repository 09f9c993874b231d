// udaxctl_events.cc -- `udaxctl events TARGET|MOUNT [--follow] [--json]`.
//
// Prints the daemon's event log (notify/event_log.h; found in the state directory through
// LocateTargetState, the same key the daemon uses): every media event with its owners
// and the actions taken. Whoever may not read the image gets EACCES and exit 1, nothing
// of the log. With --follow it then waits for new lines (inotify on the log's
// directory, which also sees the log being created) until interrupted: a subscription
// that needs nothing from the daemon but the file it writes.
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "fs/base/unique_fd.h"
#include "mount-helper/udaxctl.h"
#include "notify/event_log.h"
#include "fs/base/safe_file.h"
#include "fs/format/state_dir.h"
#include "fs/region/region_span.h"

namespace udax {
namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

// Prints the complete lines readable from `fd`, keeping a partial last line for later.
// A line that is not a JSON object (a damaged log) is skipped with a word on stderr.
void PrintLines(int fd, std::string* partial, bool json, bool as_array, bool* first) {
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF is not the end while following
    ForEachEventLine(std::string_view(buf, static_cast<size_t>(n)), partial,
                     [&](const nlohmann::json* j) {
                       if (j == nullptr) {
                         fprintf(stderr, "udaxctl events: skipping a damaged line of the log\n");
                         return;
                       }
                       if (json) {
                         printf("%s%s\n", as_array ? (*first ? "[" : ",") : "",
                                j->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
                       } else {
                         fputs(EventRecordToText(*j).c_str(), stdout);
                       }
                       *first = false;
                     });
  }
  fflush(stdout);
}

// Opens the log as every state file is opened (fs/base/safe_file.h). An invalid fd and OK
// when there is no log yet.
Result<UniqueFd> OpenLog(const std::string& path) {
  Result<UniqueFd> fd = OpenStateFile(path, O_RDONLY);
  if (!fd.ok() && fd.status().code() == ENOENT) return UniqueFd();
  return fd;
}

// Where the event log of `target` (a mount point, image or device) lives, with its
// descriptor (invalid when there is no log yet). Errors are printed, naming `cmd`.
std::optional<std::pair<TargetState, UniqueFd>> OpenEventLog(const std::string& target,
                                                             const char* cmd) {
  struct stat st;
  const bool is_list = IsDeviceList(target);
  const bool stat_ok = is_list || stat(target.c_str(), &st) == 0;
  // EIO: a shut-down mount, whose log is what one wants to read now.
  if (!stat_ok && errno != EIO) {
    fprintf(stderr, "udaxctl %s: %s: %s\n", cmd, target.c_str(), strerror(errno));
    return std::nullopt;
  }
  std::string source = target;
  if (!is_list && (!stat_ok || S_ISDIR(st.st_mode))) {
    source = ImageOfMountPoint(target);
    if (source.empty()) {
      fprintf(stderr, "udaxctl %s: %s: not a udaxfs mount point\n", cmd, target.c_str());
      return std::nullopt;
    }
  }
  // Several devices: the log is device 0's.
  Result<std::string> first = FirstDevicePath(source);
  if (!first.ok()) {
    fprintf(stderr, "udaxctl %s: %s\n", cmd, first.status().message().c_str());
    return std::nullopt;
  }
  source = *first;
  // Migrates an old IMAGE.events when we may (root); only looks otherwise.
  Result<TargetState> state = LocateTargetState(source, /*prepare=*/true);
  if (!state.ok() && (state.status().code() == EACCES || state.status().code() == EROFS)) {
    state = LocateTargetState(source, /*prepare=*/false);
  }
  if (!state.ok()) {
    fprintf(stderr, "udaxctl %s: %s\n", cmd, state.status().message().c_str());
    return std::nullopt;
  }
  Result<UniqueFd> in = OpenLog(state->events);
  if (!in.ok()) {
    if (in.status().code() == EACCES) {
      // The log names files and processes: it is kept from whoever may not read the
      // image (notify/event_log.h). Say so, and print nothing of it.
      fprintf(stderr,
              "udaxctl %s: %s: permission denied: its event log (%s) is readable only by "
              "root\n",
              cmd, target.c_str(), state->dir.c_str());
    } else {
      fprintf(stderr, "udaxctl %s: %s\n", cmd, in.status().message().c_str());
    }
    return std::nullopt;
  }
  return std::make_pair(std::move(state).value(), std::move(in).value());
}

}  // namespace

std::optional<std::vector<nlohmann::json>> FetchEvents(const std::string& target, const char* cmd) {
  auto log = OpenEventLog(target, cmd);
  if (!log) return std::nullopt;
  std::vector<nlohmann::json> out;
  if (!log->second.valid()) return out;
  std::string partial;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(log->second.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ForEachEventLine(std::string_view(buf, static_cast<size_t>(n)), &partial,
                     [&](const nlohmann::json* j) {
                       if (j != nullptr) out.push_back(*j);
                     });
  }
  return out;
}

int CmdEvents(const std::string& target, bool follow, bool json) {
  auto opened = OpenEventLog(target, "events");
  if (!opened) return 1;
  const std::string path = opened->first.events;
  UniqueFd in = std::move(opened->second);
  const bool as_array = json && !follow;
  bool first = true;
  std::string partial;
  // No log yet: no event has happened since the target was first mounted. A person is
  // told so in words (silence looked like a failure); JSON says it with an empty array.
  if (in.valid()) PrintLines(in.get(), &partial, json, as_array, &first);
  if (!follow) {
    if (as_array) printf(first ? "[]\n" : "]\n");
    if (!json && first) printf("%s: no media events logged\n", target.c_str());
    return 0;
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  const std::string dir = opened->first.dir;
  UniqueFd ino(inotify_init1(IN_CLOEXEC));
  if (ino.get() < 0 || inotify_add_watch(ino.get(), dir.c_str(), IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
    fprintf(stderr, "udaxctl events: watching %s: %s\n", dir.c_str(), strerror(errno));
    return 1;
  }
  UniqueFd log = std::move(in);
  while (!g_stop) {
    char buf[4096];
    const ssize_t n = read(ino.get(), buf, sizeof(buf));  // any change in the directory
    if (n < 0 && errno != EINTR) break;
    if (!log.valid()) {
      Result<UniqueFd> again = OpenLog(path);
      if (!again.ok()) {
        fprintf(stderr, "udaxctl events: %s\n", again.status().message().c_str());
        return 1;
      }
      log = std::move(again).value();
      if (!log.valid()) continue;
    }
    PrintLines(log.get(), &partial, json, as_array, &first);
  }
  return 0;
}

}  // namespace udax
