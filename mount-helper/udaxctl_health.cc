// udaxctl_health.cc -- `udaxctl health MOUNT|TARGET [--json]`: is this filesystem healthy?
//
// One screen from what the other commands know: serving or shut down (a mount answers
// stat with EIO once shut down), the bad blocks and what owns them (list --media-errors),
// what the daemon has done about media events (the event log), the direct maps clients
// hold (leases), and from the daemon the media patrol's last pass, the last scrub and the
// journal. The verdict is fsck's exit code, as xfs_spaceman's health is
// read: 0 healthy; 1 something happened and was dealt with (metadata repaired, bad media
// quarantined or moved); 4 damage left (file bytes that fail with EIO, metadata still
// bad, a shut-down filesystem); 8 the state could not be told (damage found still says
// 4). Root only: the event log and the owners of bad blocks are root's to read.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>

#include "fs/core/repair.h"
#include "mount-helper/udaxctl.h"

namespace udax {
namespace {

// fsck's exit codes (repair.h), which the verdict is.
constexpr int kHealthy = kFsckClean;
constexpr int kDealtWith = kFsckFixed;
constexpr int kDamaged = kFsckUncorrected;
constexpr int kUnknown = kFsckOperational;

bool IsFileContent(const std::string& kind) {
  return kind == "file-data" || kind == "xattr" || kind == "symlink";
}

// Seconds since the epoch as "2026-12-06T04:59:33Z".
std::string Utc(double seconds) {
  char when[64] = "?";
  const time_t t = static_cast<time_t>(seconds);
  struct tm tm {};
  if (gmtime_r(&t, &tm) != nullptr) strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return when;
}

// A string field of an event log record, or `def`: the log is read, not trusted.
std::string StrField(const nlohmann::json& j, const char* key, const char* def) {
  if (!j.is_object()) return def;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : def;
}

}  // namespace

int CmdHealth(const std::string& target, bool json) {
  const char* cmd = "health";
  if (geteuid() != 0) {
    fprintf(stderr, "udaxctl %s: run it as root: the event log and the owners of bad blocks "
                    "are root's to read\n", cmd);
    return kUnknown;
  }
  struct stat st {};
  const int stat_err = stat(target.c_str(), &st) == 0 ? 0 : errno;
  if (stat_err != 0 && stat_err != EIO) {
    fprintf(stderr, "udaxctl %s: %s: %s\n", cmd, target.c_str(), strerror(stat_err));
    return kUnknown;
  }
  // A directory is a mount point (a shut-down one answers stat with EIO); an image or a
  // device may be mounted too, and then its mount answers for it.
  const bool given_mount = stat_err == EIO || S_ISDIR(st.st_mode);
  const std::string mount = given_mount ? target : MountPointOf(target);
  if (given_mount && ImageOfMountPoint(target).empty()) {
    fprintf(stderr, "udaxctl %s: %s: not a udaxfs mount point\n", cmd, target.c_str());
    return kUnknown;
  }
  struct stat mst;
  const bool serving = !mount.empty() && stat(mount.c_str(), &mst) == 0;
  const bool shut_down = !mount.empty() && !serving;
  nlohmann::json out{{"target", target}};
  if (!mount.empty()) out["mount"] = mount;
  int verdict = kHealthy;
  bool unknown = false;
  std::vector<std::string> findings;  // one line each, for people
  auto worse = [&](int v, std::string line) {
    verdict = std::max(verdict, v);
    findings.push_back(std::move(line));
  };
  auto not_known = [&](std::string line) {
    unknown = true;
    findings.push_back(std::move(line));
  };
  out["state"] = mount.empty() ? "not mounted" : serving ? "serving" : "shut down";
  if (shut_down) worse(kDamaged, "shut down: every operation fails with EIO until it is unmounted");

  // Bad blocks and their owners. A shut-down daemon answers no query, and its image
  // stays locked until the unmount: then ask the image.
  bool partial = false;
  std::optional<nlohmann::json> media;
  if (!shut_down) media = FetchMediaErrors(target, cmd, &partial);
  uint64_t quarantined = 0, damaged_bytes = 0;
  if (shut_down) {
    findings.push_back("bad blocks: not known while shut down (unmount, then ask the image)");
  } else if (!media) {
    not_known("bad blocks: could not be listed");
  } else {
    if (partial) not_known("bad blocks: part of the list or its owners could not be read");
    nlohmann::json bad = nlohmann::json::array();
    for (const nlohmann::json& b : (*media)["badblocks"]) {
      if (!b.contains("owners")) {
        not_known("bad block " + std::to_string(b["offset"].get<uint64_t>()) +
                  ": owners unknown (" + b.value("owners_error", "?") + ")");
        continue;
      }
      for (const nlohmann::json& o : b["owners"]) {
        const std::string kind = o["kind"].get<std::string>();
        const uint64_t len = o["length"].get<uint64_t>();
        if (kind == "quarantined") {
          quarantined += len;
        } else if (kind == "free") {
          // Not yet acted on (the daemon quarantines free bad media at once).
          worse(kDamaged, "bad free space not yet quarantined at " + std::to_string(o["phys"].get<uint64_t>()));
        } else {
          if (IsFileContent(kind)) damaged_bytes += len;
          bad.push_back(o);
          std::string line = kind + " " + std::to_string(len) + " bytes";
          if (o.contains("path")) line += " of " + o["path"].get<std::string>();
          if (o.contains("offset")) line += " at offset " + std::to_string(o["offset"].get<uint64_t>());
          worse(kDamaged, line + (IsFileContent(kind) ? ": reads fail with EIO" : ": metadata still bad"));
        }
      }
    }
    out["badblock_count"] = (*media)["badblock_count"];
    out["damaged"] = bad;
    out["quarantined_bytes"] = quarantined;
    if (quarantined > 0) {
      worse(kDealtWith, "quarantined: " + std::to_string(quarantined) + " bytes of bad media, never reused");
    }
  }

  // What the daemon did about each media event.
  std::optional<std::vector<nlohmann::json>> events = FetchEvents(target, cmd);
  if (events) {
    std::map<std::string, uint64_t> by_action;
    for (const nlohmann::json& e : *events) {
      if (!e.is_object() || !e.contains("owners") || !e["owners"].is_array()) continue;
      for (const nlohmann::json& o : e["owners"]) by_action[StrField(o, "action", "?")]++;
    }
    out["events"] = {{"count", events->size()}, {"actions", by_action}};
    if (!events->empty()) out["events"]["last"] = StrField(events->back(), "time", "");
    if (by_action.count("repaired")) {
      worse(kDealtWith, "metadata repaired " + std::to_string(by_action["repaired"]) + " time(s)");
    }
  } else {
    not_known("event log: could not be read");
  }

  // Direct maps, which a repair or a shutdown revokes.
  if (serving) {
    std::optional<nlohmann::json> leases = FetchLeases(mount, cmd);
    if (leases) {
      out["leases"] = leases->value("total", uint64_t{(*leases)["leases"].size()});
    } else {
      not_known("direct maps: the daemon did not say");
    }
  }

  // The media patrol's last pass and the journal, which only the daemon knows.
  std::string patrol_line, journal_line, scrub_line;
  if (serving) {
    std::optional<nlohmann::json> status = ControlCall(mount, {{"op", "status"}}, cmd);
    if (status && (*status)["patrol"].is_object()) {
      const nlohmann::json& p = (*status)["patrol"];
      out["patrol"] = p;
      const uint64_t every = p.value("interval_s", uint64_t{0});
      patrol_line = every ? "every " + std::to_string(every) + " s" : "on request only";
      if (p.value("running", false)) {
        const nlohmann::json prog = p.value("progress", nlohmann::json::object());
        const uint64_t total = prog.value("bytes_total", uint64_t{0});
        patrol_line += "; pass " + std::to_string(p.value("pass", uint64_t{0})) + " running, " +
                       std::to_string(total ? 100 * prog.value("bytes_done", uint64_t{0}) / total : 0) + "%";
      }
      if (p.contains("last") && p["last"].is_object()) {
        const nlohmann::json& l = p["last"];
        const size_t found = l.value("found", nlohmann::json::array()).size();
        patrol_line += "; last pass " + std::to_string(l.value("id", uint64_t{0})) + " ended " +
                       Utc(l.value("finished", 0.0)) +
                       ", " + std::to_string(found) + " bad range(s) found" +
                       (l.value("stopped", false) ? " (stopped early)" : "") +
                       (l.contains("error") ? " (failed: " + l.value("error", "") + ")" : "");
      } else {
        patrol_line += "; no pass yet";
      }
    } else {
      not_known("media patrol: the daemon did not say");
    }
    if (status && (*status)["scrub"].is_object()) {
      const nlohmann::json& sc = (*status)["scrub"];
      out["scrub"] = sc;
      const uint64_t problems = sc.value("problems", uint64_t{0});
      scrub_line = "last ended " + Utc(sc.value("finished", 0.0)) + ": " +
                   (sc.contains("error") ? "could not run (" + sc.value("error", "") + ")"
                                         : std::to_string(problems) + " checksum failures in " +
                                               std::to_string(sc.value("inodes", uint64_t{0})) + " inodes");
      if (problems > 0) {
        worse(kDamaged, "the last scrub found " + std::to_string(problems) + " checksum failures (udaxctl scrub)");
      }
    } else if (status) {
      scrub_line = "none since mount";
    }
    // A multi-device filesystem serving without a device it lost.
    if (status && (*status)["devices"].is_array()) {
      out["devices"] = (*status)["devices"];
      for (const nlohmann::json& d : (*status)["devices"]) {
        if (!d.value("lost", false)) continue;
        out["state"] = "serving, degraded";
        worse(kDamaged, "device " + std::to_string(d.value("device", uint64_t{0})) + " (" +
                            d.value("path", std::string()) +
                            ") is gone: its files' bytes there fail with EIO, metadata is served "
                            "from the other copies (fsck.udaxfs counts them)");
      }
    }
    // Files that had data on a device replaced since (udaxctl replace-device).
    if (status && (*status)["lost_data"].is_object()) {
      const nlohmann::json& lost = (*status)["lost_data"];
      out["lost_data"] = lost;
      out["state"] = "serving, degraded";
      worse(kDamaged, std::to_string(lost.value("files", uint64_t{0})) + " file(s) lost " +
                          std::to_string(lost.value("bytes", uint64_t{0})) +
                          " bytes with a replaced device: those bytes fail with EIO until "
                          "rewritten or deleted (fsck.udaxfs counts them)");
    }
    // Inodes whose own metadata lost both copies: they fail with EIO, the rest serves.
    if (status && (*status)["sick"].is_array()) {
      out["sick"] = (*status)["sick"];
      for (const nlohmann::json& s : (*status)["sick"]) {
        worse(kDamaged, "sick inode " + std::to_string(s.value("ino", uint64_t{0})) + ": " +
                            s.value("why", std::string("?")) + "; its operations fail with EIO (fsck.udaxfs --repair)");
      }
    }
    if (status && (*status)["journal"].is_object()) {
      const nlohmann::json& j = (*status)["journal"];
      out["journal"] = j;
      journal_line = std::to_string(j.value("commits", uint64_t{0})) + " commits since mount; " +
                     (j.value("replayed_at_mount", false)
                          ? "the mount replayed a committed transaction (the last unmount was not clean)"
                          : "clean at mount");
    }
  }

  // Damage found is damage, whatever else could not be read.
  if (unknown && verdict != kDamaged) verdict = kUnknown;
  out["verdict"] = verdict == kHealthy     ? "healthy"
                   : verdict == kDealtWith ? "repaired"
                   : verdict == kDamaged   ? "damaged"
                                           : "unknown";
  if (json) {
    printf("%s\n", out.dump(2).c_str());
    return verdict;
  }
  printf("%s: %s, %s\n", target.c_str(), out["state"].get<std::string>().c_str(),
         out["verdict"].get<std::string>().c_str());
  if (media) {
    printf("  bad blocks: %" PRIu64 " (512 bytes each); file bytes failing: %" PRIu64
           "; quarantined: %" PRIu64 " bytes\n",
           out["badblock_count"].get<uint64_t>(), damaged_bytes, quarantined);
  }
  if (events) {
    std::string actions;
    for (const auto& [action, n] : out["events"]["actions"].items()) {
      actions += (actions.empty() ? "" : ", ") + action + " " + std::to_string(n.get<uint64_t>());
    }
    printf("  media events: %zu%s%s\n", events->size(), actions.empty() ? "" : " (",
           actions.empty() ? "" : (actions + ")").c_str());
  }
  if (out.contains("leases")) printf("  direct maps: %" PRIu64 "\n", out["leases"].get<uint64_t>());
  if (!patrol_line.empty()) printf("  media patrol: %s\n", patrol_line.c_str());
  if (!scrub_line.empty()) printf("  scrub: %s\n", scrub_line.c_str());
  if (!journal_line.empty()) printf("  journal: %s\n", journal_line.c_str());
  for (const std::string& f : findings) printf("  - %s\n", f.c_str());
  return verdict;
}

}  // namespace udax
