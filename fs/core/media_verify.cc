// media_verify.cc -- the verify pass: static areas, then allocated AUs, chunk by chunk.
#include "fs/core/media_verify.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "fs/core/filesystem.h"
#include "fs/format/layout.h"

namespace udax {
namespace {

double ThreadCpuSeconds() {
  struct rusage ru {};
  if (getrusage(RUSAGE_THREAD, &ru) != 0) return 0;
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

class Pass {
 public:
  Pass(Filesystem* fs, const VerifyOptions& options, VerifyProgress* progress)
      : fs_(fs), region_(fs->region()), options_(options), progress_(progress),
        chunk_(std::max<uint64_t>(options.chunk_bytes, 4096)),
        buf_(std::min<uint64_t>(chunk_, kCopyBytes)),
        start_(std::chrono::steady_clock::now()),
        paced_from_(start_) {}

  // Asked to stop, or the filesystem shut down (a removed device: every read would fault).
  bool Stopped() const {
    return (options_.stop != nullptr && options_.stop->load()) || fs_->shut_down();
  }

  // Reads [off, off+len), skipping known-bad ranges and stepping over every fault.
  void Range(uint64_t off, uint64_t len) {
    const uint64_t end = off + len;
    while (off < end && !Stopped()) {
      const uint64_t n = std::min<uint64_t>(end - off, chunk_);
      Chunk(off, n);
      off += n;
      Pace();
    }
  }

  VerifyReport Finish(double cpu_start) {
    report_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    report_.cpu_seconds = ThreadCpuSeconds() - cpu_start;
    report_.stopped = Stopped();
    return std::move(report_);
  }

 private:
  void Chunk(uint64_t off, uint64_t n) {
    uint64_t at = off;
    const uint64_t end = off + n;
    for (const RegionRange& bad : region_->KnownBadIn(off, n)) {
      Read(at, bad.offset);
      report_.bytes_known_bad += bad.length;
      Done(bad.length);
      at = bad.end();
    }
    Read(at, end);
  }

  // Reads [at, end) of healthy-looking media, a buffer at a time; a fault is recorded
  // and stepped over.
  void Read(uint64_t at, uint64_t end) {
    while (at < end) {
      const uint64_t piece_end = std::min<uint64_t>(end, at + buf_.size());
      Piece(at, piece_end);
      at = piece_end;
    }
  }

  void Piece(uint64_t at, uint64_t end) {
    while (at < end) {
      MediaFault fault;
      const Status st = region_->ReadSafe(at, buf_.data(), end - at, &fault);
      if (st.ok()) {
        report_.bytes_read += end - at;
        Done(end - at);
        return;
      }
      // A fault that names no range inside what we read (it cannot happen, but a loop
      // that does not advance must not be possible): the rest of the chunk counts as bad.
      uint64_t bad_end = fault.offset + fault.length;
      if (fault.length == 0 || bad_end <= at || fault.offset >= end) {
        fault.offset = at;
        bad_end = end;
      }
      const uint64_t bad_start = std::max(fault.offset, at);
      bad_end = std::min(bad_end, end);
      if (bad_start > at) {  // the healthy bytes before it were read
        report_.bytes_read += bad_start - at;
      }
      Found({bad_start, bad_end - bad_start});
      Done(bad_end - at);
      at = bad_end;
    }
  }

  void Found(RegionRange r) {
    if (!report_.found.empty() && report_.found.back().end() == r.offset) {
      report_.found.back().length += r.length;
    } else {
      report_.found.push_back(r);
      if (progress_ != nullptr) progress_->found.fetch_add(1);
    }
  }

  void Done(uint64_t n) {
    done_ += n;
    if (progress_ != nullptr) progress_->bytes_done.fetch_add(n);
  }

  // Sleeps until the bytes done so far fit the rate (in slices, so a stop is seen soon).
  // The rate is a ceiling: a pass that fell behind (its thread was not scheduled, a
  // fault took long) does not make up for it at full speed, it starts counting again.
  void Pace() {
    if (options_.rate_bytes_per_s == 0) return;
    using Clock = std::chrono::steady_clock;
    const auto due = paced_from_ + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(
                                           static_cast<double>(done_ - paced_bytes_) /
                                           static_cast<double>(options_.rate_bytes_per_s)));
    const auto now = Clock::now();
    if (now > due + std::chrono::milliseconds(100)) {
      paced_from_ = now;
      paced_bytes_ = done_;
      return;
    }
    while (!Stopped()) {
      const auto t = Clock::now();
      if (t >= due) return;
      std::this_thread::sleep_for(std::min<Clock::duration>(due - t, std::chrono::milliseconds(100)));
    }
  }

  Filesystem* const fs_;
  Region* const region_;
  const VerifyOptions options_;
  VerifyProgress* const progress_;
  // The copy goes through a buffer that stays in the CPU's cache (the bytes are only
  // read to be checked), so a pass does not evict what the mount's users are working on.
  static constexpr uint64_t kCopyBytes = 64 << 10;
  const uint64_t chunk_;
  std::vector<uint8_t> buf_;
  const std::chrono::steady_clock::time_point start_;
  uint64_t done_ = 0;
  std::chrono::steady_clock::time_point paced_from_;  // the rate counts from here
  uint64_t paced_bytes_ = 0;                           // ... and these bytes done then
  VerifyReport report_;
};

}  // namespace

Result<VerifyReport> VerifyMedia(Filesystem* fs, const VerifyOptions& options,
                                 VerifyProgress* progress) {
  if (fs->shut_down()) return Status::IoError("the filesystem is shut down");
  const double cpu_start = ThreadCpuSeconds();
  const DiskSuperblock sb = fs->SuperblockSnapshot();
  const uint64_t au = sb.au_size;
  const std::vector<StaticArea> areas = StaticAreas(sb);
  uint64_t total = 0;
  for (const StaticArea& a : areas) total += a.len;
  const uint64_t first = FirstDataAu(sb);
  const uint64_t last = LastDataAu(sb);
  const uint64_t free_aus = fs->FreeAuCount() + 2 * fs->PooledMetaPairs();
  const uint64_t data_aus = last > first ? last - first : 0;
  total += (data_aus > free_aus ? data_aus - free_aus : 0) * au;
  if (progress != nullptr) {
    progress->bytes_total.store(total);
    progress->bytes_done.store(0);
    progress->found.store(0);
  }
  Pass pass(fs, options, progress);
  for (const StaticArea& a : areas) pass.Range(a.off, a.len);
  // The allocated AUs, a run at a time (quarantined ones are allocated too; their known
  // bad bytes are skipped, the rest read).
  for (uint64_t a = first; a < last && !pass.Stopped();) {
    if (!fs->AuInUse(a)) {
      ++a;
      continue;
    }
    uint64_t b = a + 1;
    while (b < last && b - a < 256 && fs->AuInUse(b)) ++b;
    pass.Range(a * au, (b - a) * au);
    a = b;
  }
  return pass.Finish(cpu_start);
}

}  // namespace udax
