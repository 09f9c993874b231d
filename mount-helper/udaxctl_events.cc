// udaxctl_events.cc -- `udaxctl events TARGET|MOUNT [--follow] [--json]`.
//
// Prints the daemon's event log (notify/event_log.h): every media event with its owners
// and the actions taken. With --follow it then waits for new lines (inotify on the log's
// directory, which also sees the log being created) until interrupted: a subscription
// that needs nothing from the daemon but the file it writes.
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "fs/region/unique_fd.h"
#include "mount-helper/udaxctl.h"
#include "notify/event_log.h"

namespace udax {
namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

// Prints the complete lines from `in`, keeping a partial last line for later. Returns
// false on a line that is not JSON (the log is damaged: say so, keep going).
void PrintLines(std::ifstream* in, std::string* partial, bool json, bool as_array, bool* first) {
  std::string chunk;
  char buf[4096];
  while (in->read(buf, sizeof(buf)) || in->gcount() > 0) chunk.append(buf, in->gcount());
  in->clear();  // EOF is not the end while following
  *partial += chunk;
  size_t nl;
  while ((nl = partial->find('\n')) != std::string::npos) {
    const std::string line = partial->substr(0, nl);
    partial->erase(0, nl + 1);
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      fprintf(stderr, "udaxctl events: skipping a damaged line of the log\n");
      continue;
    }
    if (json) {
      printf("%s%s\n", as_array ? (*first ? "[" : ",") : "", j.dump().c_str());
    } else {
      fputs(EventRecordToText(j).c_str(), stdout);
    }
    *first = false;
  }
  fflush(stdout);
}

}  // namespace

int CmdEvents(const std::string& target, bool follow, bool json) {
  struct stat st;
  const bool stat_ok = stat(target.c_str(), &st) == 0;
  // EIO: a shut-down mount, whose log is what one wants to read now.
  if (!stat_ok && errno != EIO) {
    fprintf(stderr, "udaxctl events: %s: %s\n", target.c_str(), strerror(errno));
    return 1;
  }
  std::string source = target;
  if (!stat_ok || S_ISDIR(st.st_mode)) {
    source = ImageOfMountPoint(target);
    if (source.empty()) {
      fprintf(stderr, "udaxctl events: %s: not a udaxfs mount point\n", target.c_str());
      return 1;
    }
  }
  const std::string path = EventLogPath(source);
  const bool as_array = json && !follow;
  bool first = true;
  std::string partial;
  std::ifstream in(path, std::ios::binary);
  if (!in && !follow) {
    // No log yet: no event has happened since the target was first mounted.
    if (json) printf("[]\n");
    return 0;
  }
  if (in) PrintLines(&in, &partial, json, as_array, &first);
  if (!follow) {
    if (as_array) printf(first ? "[]\n" : "]\n");
    return 0;
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
  UniqueFd ino(inotify_init1(IN_CLOEXEC));
  if (ino.get() < 0 || inotify_add_watch(ino.get(), dir.c_str(), IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
    fprintf(stderr, "udaxctl events: watching %s: %s\n", dir.c_str(), strerror(errno));
    return 1;
  }
  while (!g_stop) {
    char buf[4096];
    const ssize_t n = read(ino.get(), buf, sizeof(buf));  // any change in the directory
    if (n < 0 && errno != EINTR) break;
    if (!in.is_open() || !in) {
      in = std::ifstream(path, std::ios::binary);
      if (!in) continue;
    }
    PrintLines(&in, &partial, json, as_array, &first);
  }
  return 0;
}

}  // namespace udax
