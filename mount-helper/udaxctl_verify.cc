// udaxctl_verify.cc -- `udaxctl verify-media MOUNT|TARGET [--rate MB] [--json]`.
//
// On a mount the daemon's media patrol runs the pass (control socket ops "verify" and
// "status"), so what it finds goes to the media resolver at once: metadata repaired from
// its healthy copy, file ranges marked and logged (`udaxctl events`). We wait for the
// pass, printing its progress on a terminal, and show what it found with the owners the
// reverse map names now. On an unmounted target the pass runs here, read-only: it finds
// and names, and repairs nothing (a mount, or fsck.udaxfs, does). On real pmem either one
// first has the platform scrub the media where the bus can (Address Range Scrub through
// libndctl), and reports the kernel's badblocks list beside what the reads found.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <thread>

#include "fs/core/media_verify.h"
#include "mount-helper/udaxctl.h"
#include "notify/media_patrol.h"
#include "notify/owner_json.h"

namespace udax {
namespace {

constexpr const char* kCmd = "verify-media";

// The owners of each found range, as `udaxctl rmap --json` prints them.
nlohmann::json FoundWithOwners(const nlohmann::json& found,
                               const std::function<Result<std::vector<OwnerRange>>(uint64_t, uint64_t)>& owners_of,
                               const std::function<std::string(uint64_t)>& path_of) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& f : found) {
    const uint64_t off = f.value("offset", uint64_t{0});
    const uint64_t len = f.value("length", uint64_t{0});
    nlohmann::json o{{"offset", off},
                     {"length", len},
                     {"source", f.value("source", "read")},
                     {"owners", nlohmann::json::array()}};
    Result<std::vector<OwnerRange>> owners = owners_of(off, len);
    if (owners.ok()) {
      for (const OwnerRange& r : *owners) {
        o["owners"].push_back(OwnerRangeToJson(r, r.owner.ino != 0 ? path_of(r.owner.ino) : "",
                                               WithGeneration::kNo));
      }
    } else {
      o["owners_error"] = owners.status().message();
    }
    out.push_back(std::move(o));
  }
  return out;
}

int Report(const std::string& where, nlohmann::json result, bool json, bool mounted) {
  const nlohmann::json& found = result["found"];
  if (json) {
    printf("%s\n", result.dump(2).c_str());
    return found.empty() ? 0 : 2;
  }
  for (const auto& f : found) {
    printf("%s: bad media at [%#" PRIx64 ", +%#" PRIx64 ")", where.c_str(),
           f.value("offset", uint64_t{0}), f.value("length", uint64_t{0}));
    if (f.value("source", "") == "kernel") printf(" (in the kernel's list)");
    if (f.contains("owners_error")) {
      printf(": owners unknown (%s)\n", f.value("owners_error", "").c_str());
      continue;
    }
    if (f["owners"].empty()) printf(": free space");
    const char* sep = ": ";
    for (const auto& o : f["owners"]) {
      printf("%s%s", sep, o.value("kind", "?").c_str());
      if (o.contains("path")) printf(" %s", o.value("path", "").c_str());
      else if (o.contains("ino")) printf(" ino %" PRIu64, o.value("ino", uint64_t{0}));
      sep = ", ";
    }
    printf("\n");
  }
  const double secs = result.value("seconds", 0.0);
  const uint64_t read = result.value("bytes_read", uint64_t{0});
  const uint64_t total = result.value("found_total", uint64_t{found.size()});
  if (total > found.size()) {
    printf("%s: %" PRIu64 " bad ranges found, the first %zu shown\n", where.c_str(), total, found.size());
  }
  if (result.contains("kernel") && result["kernel"].is_object()) {
    const nlohmann::json& k = result["kernel"];
    if (k.value("scrubbed", false)) {
      printf("%s: Address Range Scrub on %s: %.1f s; the kernel lists %" PRIu64 " bad range(s)\n",
             where.c_str(), k.value("bus", "").c_str(), k.value("scrub_seconds", 0.0),
             k.value("badblocks", uint64_t{0}));
    } else {
      printf("%s: no Address Range Scrub (%s); the kernel lists %" PRIu64 " bad range(s)\n",
             where.c_str(), k.value("scrub_error", "").c_str(), k.value("badblocks", uint64_t{0}));
    }
    if (k.contains("list_error")) {
      printf("%s: the kernel's badblocks did not read: %s\n", where.c_str(),
             k.value("list_error", "").c_str());
    }
  }
  const uint64_t known = result.value("bytes_known_bad", uint64_t{0});
  printf("%s: %zu bad range%s found; %.1f MiB read in %.2f s (%.1f MiB/s, %.2f s CPU)%s%s\n",
         where.c_str(), found.size(), found.size() == 1 ? "" : "s",
         static_cast<double>(read) / 1048576.0, secs,
         secs > 0 ? static_cast<double>(read) / 1048576.0 / secs : 0.0,
         result.value("cpu_seconds", 0.0),
         known ? ("; " + std::to_string(known) + " bytes already known bad, not read again").c_str() : "",
         result.value("stopped", false) ? " (stopped early)" : "");
  if (!found.empty()) {
    printf("%s: %s\n", where.c_str(),
           mounted ? "the daemon acted on each (repaired metadata, marked file data): udaxctl events shows what it did"
                   : "nothing was repaired (read-only): mount it, and the daemon repairs what it meets, or run fsck.udaxfs");
  }
  return found.empty() ? 0 : 2;
}

int VerifyMounted(const std::string& mount, uint64_t rate, bool json) {
  std::optional<nlohmann::json> started = ControlCall(mount, {{"op", "verify"}, {"rate", rate}}, kCmd);
  if (!started) return 1;
  if (!started->contains("pass") || !(*started)["pass"].is_number_unsigned()) {
    fprintf(stderr, "udaxctl %s: %s: malformed answer\n", kCmd, mount.c_str());
    return 1;
  }
  const uint64_t id = (*started)["pass"].get<uint64_t>();
  const bool tty = isatty(STDERR_FILENO) && !json;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::optional<nlohmann::json> st = ControlCall(mount, {{"op", "status"}}, kCmd);
    if (!st) return 1;
    const nlohmann::json patrol = st->value("patrol", nlohmann::json::object());
    if (!patrol.is_object()) {
      fprintf(stderr, "udaxctl %s: %s: malformed answer\n", kCmd, mount.c_str());
      return 1;
    }
    const nlohmann::json last = patrol.value("last", nlohmann::json::object());
    if (last.value("id", uint64_t{0}) >= id) {
      if (tty) fprintf(stderr, "\r\033[K");
      if (last.contains("error")) {
        fprintf(stderr, "udaxctl %s: %s: %s\n", kCmd, mount.c_str(), last.value("error", "").c_str());
        return 1;
      }
      nlohmann::json result = last;
      result["target"] = mount;
      result["found"] = FoundWithOwners(
          last.value("found", nlohmann::json::array()),
          [&](uint64_t off, uint64_t len) { return RmapViaIoctl(mount, off, len); },
          [&](uint64_t ino) { return PathViaIoctl(mount, ino); });
      return Report(mount, std::move(result), json, /*mounted=*/true);
    }
    if (tty && patrol.value("running", false)) {
      const nlohmann::json p = patrol.value("progress", nlohmann::json::object());
      const double total = static_cast<double>(p.value("bytes_total", uint64_t{1}));
      fprintf(stderr, "\rverify-media: pass %" PRIu64 ": %.0f%%, %" PRIu64 " found", id,
              100.0 * static_cast<double>(p.value("bytes_done", uint64_t{0})) / (total > 0 ? total : 1),
              p.value("found", uint64_t{0}));
    }
  }
}

int VerifyUnmounted(const std::string& target, uint64_t rate, bool json) {
  // Real pmem: the platform's scrub and the kernel's list first (an image has neither),
  // before the target is opened, so that a long scrub keeps no mount waiting.
  std::optional<KernelScrubReport> kernel;
  Result<KernelBadblocks> kb = LocateKernelBadblocks(target);
  if (kb.ok()) {
    kernel = ScrubAndReadKernelBadblocks(*kb, std::chrono::minutes(30));
  } else if (kb.status().code() != EOPNOTSUPP) {
    fprintf(stderr, "udaxctl %s: %s\n", kCmd, kb.status().message().c_str());
  }
  auto fs = OpenTargetReadOnly(target, kCmd);
  if (!fs) return 1;
  VerifyOptions vo;
  vo.rate_bytes_per_s = rate;
  Result<VerifyReport> r = VerifyMedia(fs.get(), vo);
  if (!r.ok()) {
    fprintf(stderr, "udaxctl %s: %s: %s\n", kCmd, target.c_str(), r.status().message().c_str());
    return 1;
  }
  nlohmann::json result = VerifyReportToJson(*r, SIZE_MAX);
  if (kernel) AddKernelFound(*kernel, SIZE_MAX, &result);
  result["target"] = target;
  result["rate"] = rate;
  Filesystem* f = fs.get();
  result["found"] = FoundWithOwners(
      result["found"], [f](uint64_t off, uint64_t len) { return f->Owners(off, len); },
      [f](uint64_t ino) {
        Result<std::string> p = f->PathOf(ino);
        return p.ok() ? p.value() : std::string();
      });
  return Report(target, std::move(result), json, /*mounted=*/false);
}

}  // namespace

int CmdVerifyMedia(const std::string& where, const std::string& rate_mb, bool json) {
  uint64_t rate = 0;
  if (!rate_mb.empty()) {
    char* end = nullptr;
    errno = 0;
    const double mb = strtod(rate_mb.c_str(), &end);
    if (errno != 0 || end == rate_mb.c_str() || *end != '\0' || !(mb >= 1) || mb > 1e6) {
      fprintf(stderr, "udaxctl %s: bad --rate '%s' (MB/s, from 1 to 1000000)\n",
              kCmd, rate_mb.c_str());
      return 1;
    }
    rate = static_cast<uint64_t>(mb * 1e6);
  }
  struct stat st;
  if (stat(where.c_str(), &st) != 0) {
    fprintf(stderr, "udaxctl %s: %s: %s\n", kCmd, where.c_str(), strerror(errno));
    return 1;
  }
  if (S_ISDIR(st.st_mode)) return VerifyMounted(where, rate, json);
  // An image or device that is mounted is verified by its daemon, which can repair.
  const std::string mount = MountPointOf(where);
  if (!mount.empty()) return VerifyMounted(mount, rate, json);
  return VerifyUnmounted(where, rate, json);
}

}  // namespace udax
