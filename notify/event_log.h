// event_log.h -- every media event and what was done about it, as JSON lines on disk.
//
// The daemon's resolver appends one line per event: when, which source, the bad physical
// range, each owner (kind, inode, path, file offsets) with the action taken, and the
// processes acted on. `udaxctl events` prints the file and, with --follow, waits for
// new lines: a subscription that also works after the daemon is gone, and from which a
// user can reconstruct every decision. One write(2) per line on an O_APPEND descriptor,
// so concurrent readers never see half a line.
//
// Where it lives: in the state directory (fs/format/state_dir.h), never beside the image:
// /var/lib/udaxfs/uuid-HEX.events for an image (its superblock UUID), NAME.events for a
// device (/dev/dax0.0 -> dax0.0.events); find it with LocateTargetState. An old
// IMAGE.events beside an image is moved in once, with checks (fs/format/legacy_state.h).
//
// Who may read it: the log names files (full paths) and processes, so it is created 0600
// in a 0700 directory owned by root (or the daemon's euid): a user who could not read
// the image itself cannot read what happened in it either, and `udaxctl events` tells
// them so (EACCES) rather than printing anything. It is opened like every state file
// (fs/base/safe_file.h): O_NOFOLLOW|O_NONBLOCK, a regular file owned by root or our euid,
// not writable by group or others -- so a planted symlink cannot make the root daemon
// append to a file of someone else's choosing.
// The file is created at the first event, not at mount: a mount that sees no event
// leaves nothing behind.
//
// Thread-safety: Append may be called from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/base/status.h"
#include "notify/media_event.h"

namespace udax {

// A process the resolver acted on because it had the bad range mapped.
struct ProcessAction {
  pid_t pid = 0;
  std::string comm;
  std::string action;  // "killed", "notified", "ignored", or "kill failed: ..."
};

struct EventRecord {
  std::chrono::system_clock::time_point time;  // when the event was seen
  std::string source;                          // MediaEventSourceName, or "relocation"
  uint64_t offset = 0;                         // the bad physical range
  uint64_t length = 0;
  int si_code = 0;
  std::string detail;  // the source's own words (devpath, sysfs file)
  std::vector<MediaOwner> owners;
  std::vector<ProcessAction> processes;
  std::string action;        // a summary: "eio", "repaired", "shutdown", "relocated", ...
  uint64_t resolve_ns = 0;   // from the event's arrival at the resolver to owners acted on
};

nlohmann::json EventRecordToJson(const EventRecord& record);
// One human line per owner: "TIME SOURCE [0x..., +0x...) kind ino N path [off, +len): action".
// Takes any JSON (a log line as read): fields that are missing or of the wrong type read
// as "?" or 0; never throws.
std::string EventRecordToText(const nlohmann::json& record);

// The complete lines of an event-log chunk (or a stream read piece by piece): `partial`
// keeps what follows the last newline for the next call. Each line is parsed as JSON;
// on_line gets the object, or nullptr for a line that is not a JSON object (a damaged
// log). Blank lines are skipped. Never throws (what `udaxctl events` runs on a file it
// did not write; fuzzed by tests/fuzz/fuzz_events.cc).
void ForEachEventLine(std::string_view chunk, std::string* partial,
                      const std::function<void(const nlohmann::json* record)>& on_line);

class EventLog {
 public:
  // Opens the log at `path` (TargetState::events) for appending. Checks its directory
  // (CheckStateDir: ours, not writable by others) and, if the log exists, the file (as
  // fs/base/safe_file.h); a missing log is created 0600 at the first Append. Errors: the
  // refusals of those checks (EPERM, ELOOP, EINVAL), or the errno of the open.
  static Result<std::unique_ptr<EventLog>> Open(const std::string& path);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  Status Append(const EventRecord& record);
  const std::string& path() const { return path_; }

 private:
  EventLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  const std::string path_;
  int fd_;  // -1 until the first Append creates the log; GUARDED_BY(mu_)
  std::mutex mu_;
};

}  // namespace udax
