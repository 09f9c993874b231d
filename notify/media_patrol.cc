// media_patrol.cc -- the patrol thread: wait for a request or the schedule, run a pass.
#include "notify/media_patrol.h"

#include <sys/resource.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>

#include "fs/core/filesystem.h"

namespace udax {
namespace {

double Epoch(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

MediaPatrol::MediaPatrol(Filesystem* fs, const Options& options) : fs_(fs), options_(options) {
  thread_ = std::thread([this] { Run(); });
}

uint64_t MediaPatrol::Request(uint64_t rate_bytes_per_s) {
  std::lock_guard<std::mutex> l(mu_);
  if (running_ && running_->requested) return running_->id;
  if (!pending_) {
    pending_ = true;
    pending_rate_ = rate_bytes_per_s;
  }
  cv_.notify_all();
  // A scheduled pass running now does not answer a request: the next one does.
  return next_id_;
}

void MediaPatrol::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void MediaPatrol::Run() {
  // A background reader: the lowest priority, so that under load the mount's users come
  // first and a pass only slows down (its rate is a ceiling, not a promise).
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
  using Clock = std::chrono::steady_clock;
  const bool scheduled = options_.interval.count() > 0;
  Clock::time_point due = Clock::now() + options_.interval;
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    auto asked = [&] { return stop_.load() || pending_; };
    if (scheduled) {
      cv_.wait_until(l, due, asked);
    } else {
      cv_.wait(l, asked);  // no schedule: only a request or the stop wakes us
    }
    if (stop_) return;
    const bool requested = pending_;
    if (!requested && (!scheduled || Clock::now() < due)) continue;
    Pass pass;
    pass.id = next_id_++;
    pass.requested = requested;
    pass.rate_bytes_per_s = requested && pending_rate_ != 0 ? pending_rate_ : options_.rate_bytes_per_s;
    pass.started = std::chrono::system_clock::now();
    pending_ = false;
    running_ = pass;
    l.unlock();

    if (options_.kernel_scrub) {
      scrubbing_ = true;
      pass.kernel = options_.kernel_scrub(&stop_);
      scrubbing_ = false;
      if (pass.kernel->can_scrub && !pass.kernel->scrub_error.empty()) {
        syslog(LOG_INFO, "%s: media patrol pass %llu: no scrub: %s", fs_->region()->path().c_str(),
               static_cast<unsigned long long>(pass.id), pass.kernel->scrub_error.c_str());
      }
    }
    VerifyOptions vo;
    vo.rate_bytes_per_s = pass.rate_bytes_per_s;
    vo.stop = &stop_;
    FaultOrigin origin("media patrol");
    Result<VerifyReport> r = VerifyMedia(fs_, vo, &progress_);
    pass.finished = std::chrono::system_clock::now();
    if (r.ok()) {
      pass.report = std::move(r).value();
      syslog(pass.report.found.empty() ? LOG_INFO : LOG_WARNING,
             "%s: media patrol pass %llu: %zu bad range(s) found, %llu bytes read in %.1f s",
             fs_->region()->path().c_str(), static_cast<unsigned long long>(pass.id),
             pass.report.found.size(), static_cast<unsigned long long>(pass.report.bytes_read),
             pass.report.seconds);
    } else {
      pass.error = r.status().message();
    }

    l.lock();
    running_.reset();
    last_ = std::move(pass);
    if (scheduled) due = Clock::now() + options_.interval;
    cv_.notify_all();
  }
}

nlohmann::json VerifyReportToJson(const VerifyReport& report, size_t max_found) {
  nlohmann::json found = nlohmann::json::array();
  for (const RegionRange& r : report.found) {
    if (found.size() == max_found) break;
    found.push_back({{"offset", r.offset}, {"length", r.length}, {"source", "read"}});
  }
  return {{"seconds", report.seconds},
          {"cpu_seconds", report.cpu_seconds},
          {"bytes_read", report.bytes_read},
          {"bytes_known_bad", report.bytes_known_bad},
          {"found", std::move(found)},
          {"found_total", report.found.size()},
          {"stopped", report.stopped}};
}

void AddKernelFound(const KernelScrubReport& kernel, size_t max_found, nlohmann::json* report) {
  nlohmann::json& j = *report;
  nlohmann::json k{{"bus", kernel.bus}, {"scrubbed", kernel.scrubbed},
                   {"badblocks", kernel.list.ranges().size()}};
  if (kernel.scrubbed) k["scrub_seconds"] = kernel.outcome.seconds;
  if (!kernel.scrub_error.empty()) k["scrub_error"] = kernel.scrub_error;
  if (!kernel.list_error.empty()) k["list_error"] = kernel.list_error;
  j["kernel"] = std::move(k);
  nlohmann::json found = j.value("found", nlohmann::json::array());
  uint64_t total = j.value("found_total", uint64_t{found.size()});
  auto read_found = [&](uint64_t off, uint64_t len) {
    for (const auto& f : found) {
      const uint64_t fo = f.value("offset", uint64_t{0}), fl = f.value("length", uint64_t{0});
      if (fo < off + len && off < fo + fl) return true;
    }
    return false;
  };
  std::vector<nlohmann::json> added;
  for (const BadblockRange& r : kernel.list.ranges()) {
    if (read_found(r.byte_offset(), r.byte_length())) continue;
    ++total;
    if (found.size() + added.size() >= max_found) continue;
    added.push_back({{"offset", r.byte_offset()}, {"length", r.byte_length()}, {"source", "kernel"}});
  }
  for (auto& a : added) found.push_back(std::move(a));
  std::stable_sort(found.begin(), found.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return a.value("offset", uint64_t{0}) < b.value("offset", uint64_t{0});
  });
  j["found"] = std::move(found);
  j["found_total"] = total;
}

nlohmann::json PatrolPassToJson(const MediaPatrol::Pass& p) {
  // One control packet holds the answer (UDAX_CONTROL_MAX_PACKET): the first
  // kFoundShown ranges, and how many there are.
  constexpr size_t kFoundShown = 500;
  nlohmann::json j = VerifyReportToJson(p.report, kFoundShown);
  if (p.kernel) AddKernelFound(*p.kernel, kFoundShown, &j);
  j["id"] = p.id;
  j["requested"] = p.requested;
  j["rate"] = p.rate_bytes_per_s;
  j["started"] = Epoch(p.started);
  j["finished"] = Epoch(p.finished);
  if (!p.error.empty()) j["error"] = p.error;
  return j;
}

nlohmann::json MediaPatrol::State() const {
  std::lock_guard<std::mutex> l(mu_);
  nlohmann::json j{{"running", running_.has_value()},
                   {"interval_s", options_.interval.count()},
                   {"rate", options_.rate_bytes_per_s},
                   {"next_pass", next_id_}};
  if (running_) {
    j["pass"] = running_->id;
    j["progress"] = {{"bytes_total", progress_.bytes_total.load()},
                     {"bytes_done", progress_.bytes_done.load()},
                     {"found", progress_.found.load()},
                     {"scrubbing", scrubbing_.load()},
                     {"started", Epoch(running_->started)}};
  }
  if (last_) j["last"] = PatrolPassToJson(*last_);
  return j;
}

}  // namespace udax
