// media_patrol.h -- the daemon's media patrol: verify passes on request and on a schedule.
//
// A thread that runs VerifyMedia (fs/core/media_verify.h) over the mounted filesystem:
// every `interval` when the mount asked for it (-o patrol=HOURS), and at once when root
// asks through the control socket (`udaxctl verify-media MOUNT`). One pass at a time: a
// request while a pass runs joins that pass. What each pass finds goes through the
// Region's fault listener to the media resolver like any other fault, so the patrol
// itself only reads and reports: its progress, and what its last completed pass found.
// Its thread runs at nice 19: under load a pass slows down rather than the mount's users.
// On real pmem whose bus scrubs (an NFIT bus), a pass first has the platform scrub the
// media (Address Range Scrub, kernel_badblocks.h): reads find only poison that faults,
// and a devdax read of a bad block may not fault at all. What the scrub adds to the
// kernel's list reaches the resolver through the badblocks poller, like any new entry,
// and the pass reports the whole list beside what its reads found.
//
// Thread-safety: every method from any thread; the destructor (or Stop) ends a running
// pass within one chunk and joins the thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "fs/core/media_verify.h"
#include "notify/kernel_badblocks.h"

namespace udax {

class Filesystem;

class MediaPatrol {
 public:
  struct Options {
    std::chrono::seconds interval{0};  // between scheduled passes; 0: only on request
    uint64_t rate_bytes_per_s = 64ull << 20;  // scheduled passes, and requests naming none
    // Set on real pmem: a scrub and the kernel's list after it, before each pass reads
    // (`stop` ends a long scrub's wait at Stop).
    std::function<KernelScrubReport(const std::atomic<bool>* stop)> kernel_scrub;
  };
  struct Pass {
    uint64_t id = 0;
    bool requested = false;  // asked for (udaxctl), not scheduled
    uint64_t rate_bytes_per_s = 0;
    std::chrono::system_clock::time_point started, finished;
    std::string error;  // the pass could not run (shut down)
    VerifyReport report;
    std::optional<KernelScrubReport> kernel;  // with Options::kernel_scrub
  };

  MediaPatrol(Filesystem* fs, const Options& options);
  ~MediaPatrol() { Stop(); }
  MediaPatrol(const MediaPatrol&) = delete;
  MediaPatrol& operator=(const MediaPatrol&) = delete;

  // Asks for a pass now at `rate_bytes_per_s` (0: the patrol's own rate). Returns the id
  // of the pass that will answer it: the running one, or the next.
  uint64_t Request(uint64_t rate_bytes_per_s);
  // The state as JSON (include/udaxfs/control.h, op "patrol"): {"running": bool,
  // "pass": id of the running or last pass, "interval_s", "rate", "progress":
  // {"bytes_total", "bytes_done", "found"} while running, "last": the last finished
  // pass (id, requested, started, finished, seconds, cpu_seconds, bytes_read,
  // bytes_known_bad, found: [{offset, length, source}], stopped, error, kernel)}; while
  // the scrub runs, progress has "scrubbing": true.
  nlohmann::json State() const;
  void Stop();

 private:
  void Run();

  Filesystem* const fs_;
  const Options options_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> scrubbing_{false};
  VerifyProgress progress_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_id_ = 1;                 // guarded by mu_
  uint64_t pending_rate_ = 0;            // guarded by mu_: a requested pass's rate
  bool pending_ = false;                 // guarded by mu_
  std::optional<Pass> running_;          // guarded by mu_
  std::optional<Pass> last_;             // guarded by mu_
  std::thread thread_;                   // last: started once the rest is ready
};

// A verify pass's report as JSON, the same from the daemon and from udaxctl's own pass:
// seconds, cpu_seconds, bytes_read, bytes_known_bad, stopped, found ([{offset, length}],
// the first max_found; source "read") and found_total.
nlohmann::json VerifyReportToJson(const VerifyReport& report, size_t max_found);
// Adds what the kernel knows to such a report: "kernel" {bus, scrubbed, scrub_seconds,
// scrub_error, list_error, badblocks (count)} and, in "found" (kept in region order),
// each listed range no read found, with source "kernel" (at most max_found in all).
void AddKernelFound(const KernelScrubReport& kernel, size_t max_found, nlohmann::json* report);
// A pass as JSON (MediaPatrol::State's "last"): its report, and id, requested, rate,
// started, finished, error.
nlohmann::json PatrolPassToJson(const MediaPatrol::Pass& pass);

}  // namespace udax
