// event_log.h -- every media event and what was done about it, as JSON lines on disk.
//
// The daemon's resolver appends one line per event: when, which source, the bad physical
// range, each owner (kind, inode, path, file offsets) with the action taken, and the
// processes acted on. `udaxctl events` prints the file and, with --follow, waits for
// new lines: a subscription that also works after the daemon is gone, and from which a
// user can reconstruct every decision. One write(2) per line on an O_APPEND descriptor,
// so concurrent readers never see half a line.
//
// Where it lives: IMAGE.events beside an image (like IMAGE.badblocks), or
// /var/lib/udaxfs/NAME.events for a device (/dev/dax0.0 -> dax0.0.events).
//
// Thread-safety: Append may be called from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/status.h"
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
std::string EventRecordToText(const nlohmann::json& record);

// The event log path for a target (see the file comment).
std::string EventLogPath(const std::string& target);

class EventLog {
 public:
  // Opens (creates 0644) the log for appending; creates /var/lib/udaxfs for devices.
  static Result<std::unique_ptr<EventLog>> Open(const std::string& path);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  Status Append(const EventRecord& record);
  const std::string& path() const { return path_; }

 private:
  EventLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  const std::string path_;
  int fd_;
  std::mutex mu_;
};

}  // namespace udax
