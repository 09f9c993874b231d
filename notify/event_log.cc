// event_log.cc -- JSON lines of media events (see event_log.h).
#include "notify/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <ctime>

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

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%#" PRIx64, v);
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
    nlohmann::json o;
    o["kind"] = OwnerKindName(m.range.owner.kind);
    o["phys"] = m.range.phys;
    o["length"] = m.range.len;
    if (m.range.owner.ino != 0) {
      o["ino"] = m.range.owner.ino;
      o["offset"] = m.range.offset;
    }
    if (!m.path.empty()) o["path"] = m.path;
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

std::string EventRecordToText(const nlohmann::json& j) {
  std::string head = j.value("time", "?") + " " + j.value("source", "?") + " [" +
                     Hex(j.value("offset", uint64_t{0})) + ", +" +
                     Hex(j.value("length", uint64_t{0})) + ")";
  std::string out;
  const auto owners = j.find("owners");
  if (owners == j.end() || owners->empty()) return head + ": " + j.value("action", "") + "\n";
  for (const auto& o : *owners) {
    out += head + " " + o.value("kind", "?");
    if (o.contains("ino")) {
      out += " ino " + std::to_string(o.value("ino", uint64_t{0}));
      if (o.contains("path")) out += " " + o.value("path", "");
      out += " [" + Hex(o.value("offset", uint64_t{0})) + ", +" + Hex(o.value("length", uint64_t{0})) + ")";
    }
    out += ": " + o.value("action", "?") + " (" + o.value("detail", "") + ")\n";
  }
  if (const auto procs = j.find("processes"); procs != j.end()) {
    for (const auto& p : *procs) {
      out += head + " process " + std::to_string(p.value("pid", 0)) + " (" + p.value("comm", "") +
             "): " + p.value("action", "") + "\n";
    }
  }
  return out;
}

std::string EventLogPath(const std::string& target) {
  struct stat st;
  if (stat(target.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return target + ".events";
  const size_t slash = target.find_last_of('/');
  const std::string name = slash == std::string::npos ? target : target.substr(slash + 1);
  return "/var/lib/udaxfs/" + name + ".events";
}

Result<std::unique_ptr<EventLog>> EventLog::Open(const std::string& path) {
  if (path.rfind("/var/lib/udaxfs/", 0) == 0) {
    if (mkdir("/var/lib/udaxfs", 0755) != 0 && errno != EEXIST) {
      return Status::Error(errno, "/var/lib/udaxfs: " + std::string(strerror(errno)));
    }
  }
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Error(errno, path + ": " + strerror(errno));
  return std::unique_ptr<EventLog>(new EventLog(path, fd));
}

EventLog::~EventLog() { close(fd_); }

Status EventLog::Append(const EventRecord& record) {
  const std::string line = EventRecordToJson(record).dump() + "\n";
  std::lock_guard<std::mutex> lock(mu_);
  const ssize_t n = write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    return Status::Error(n < 0 ? errno : EIO, path_ + ": short write of an event");
  }
  return Status::Ok();
}

}  // namespace udax
