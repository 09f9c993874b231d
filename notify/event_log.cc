// event_log.cc -- JSON lines of media events (see event_log.h).
#include "notify/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <ctime>

#include "fs/base/hex.h"
#include "fs/base/unique_fd.h"
#include "fs/base/safe_file.h"
#include "fs/format/state_dir.h"
#include "notify/owner_json.h"
#include "rmap/rmap.h"

namespace udax {
namespace {

std::string Iso8601(std::chrono::system_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const time_t secs = static_cast<time_t>(us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  const size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06" PRId64 "Z", static_cast<int64_t>(us % 1000000));
  return buf;
}

}  // namespace

nlohmann::json EventRecordToJson(const EventRecord& r) {
  nlohmann::json j;
  j["time"] = Iso8601(r.time);
  j["source"] = r.source;
  j["offset"] = r.offset;
  j["length"] = r.length;
  if (r.si_code != 0) j["si_code"] = r.si_code;
  if (!r.detail.empty()) j["detail"] = r.detail;
  nlohmann::json owners = nlohmann::json::array();
  for (const MediaOwner& m : r.owners) {
    nlohmann::json o = OwnerRangeToJson(m.range, m.path, WithGeneration::kNo);
    o["action"] = MediaActionName(m.action);
    o["detail"] = m.detail;
    owners.push_back(std::move(o));
  }
  j["owners"] = std::move(owners);
  nlohmann::json procs = nlohmann::json::array();
  for (const ProcessAction& p : r.processes) {
    procs.push_back({{"pid", p.pid}, {"comm", p.comm}, {"action", p.action}});
  }
  j["processes"] = std::move(procs);
  j["action"] = r.action;
  j["resolve_ns"] = r.resolve_ns;
  return j;
}

namespace {

// Field readers that never throw: a log line is whatever the file holds, so a field of
// the wrong type reads as absent (the default) instead of ending `udaxctl events`.
std::string Str(const nlohmann::json& j, const char* key, const char* def) {
  if (!j.is_object()) return def;
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : def;
}
uint64_t U64(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return 0;
  const auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}
int64_t I64(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return 0;
  const auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}
const nlohmann::json* Array(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  const auto it = j.find(key);
  return it != j.end() && it->is_array() ? &*it : nullptr;
}

}  // namespace

std::string EventRecordToText(const nlohmann::json& j) {
  const std::string head = Str(j, "time", "?") + " " + Str(j, "source", "?") + " [" +
                           Hex(U64(j, "offset")) + ", +" + Hex(U64(j, "length")) + ")";
  const nlohmann::json* owners = Array(j, "owners");
  if (owners == nullptr || owners->empty()) return head + ": " + Str(j, "action", "") + "\n";
  std::string out;
  for (const auto& o : *owners) {
    out += head + " " + Str(o, "kind", "?");
    if (o.is_object() && o.contains("ino")) {
      out += " ino " + std::to_string(U64(o, "ino"));
      if (o.contains("path")) out += " " + Str(o, "path", "");
      out += " [" + Hex(U64(o, "offset")) + ", +" + Hex(U64(o, "length")) + ")";
    }
    out += ": " + Str(o, "action", "?") + " (" + Str(o, "detail", "") + ")\n";
  }
  if (const nlohmann::json* procs = Array(j, "processes"); procs != nullptr) {
    for (const auto& p : *procs) {
      out += head + " process " + std::to_string(I64(p, "pid")) + " (" + Str(p, "comm", "") +
             "): " + Str(p, "action", "") + "\n";
    }
  }
  return out;
}

void ForEachEventLine(std::string_view chunk, std::string* partial,
                      const std::function<void(const nlohmann::json* record)>& on_line) {
  partial->append(chunk);
  size_t start = 0, nl;
  while ((nl = partial->find('\n', start)) != std::string::npos) {
    const std::string_view line(partial->data() + start, nl - start);
    start = nl + 1;
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    // Only an object is a record; a number or a string on a line is damage too.
    on_line(j.is_object() ? &j : nullptr);
  }
  partial->erase(0, start);
}

Result<std::unique_ptr<EventLog>> EventLog::Open(const std::string& path) {
  UDAX_RETURN_IF_ERROR(CheckStateDir(DirName(path)));
  Result<UniqueFd> fd = OpenStateFile(path, O_WRONLY | O_APPEND);
  if (!fd.ok() && fd.status().code() != ENOENT) return fd.status();
  const int raw = fd.ok() ? fd->Release() : -1;
  return std::unique_ptr<EventLog>(new EventLog(path, raw));
}

EventLog::~EventLog() {
  if (fd_ >= 0) close(fd_);
}

Status EventLog::Append(const EventRecord& record) {
  const std::string line = EventRecordToJson(record).dump() + "\n";
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) {
    // O_NOFOLLOW and the checks again: the directory was ours at Open, but a file
    // created since is checked like any other.
    UDAX_ASSIGN_OR_RETURN(UniqueFd fd, OpenStateFile(path_, O_WRONLY | O_APPEND | O_CREAT, 0600));
    fd_ = fd.Release();
  }
  const ssize_t n = write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    return Status::Error(n < 0 ? errno : EIO, path_ + ": short write of an event");
  }
  return Status::Ok();
}

}  // namespace udax
