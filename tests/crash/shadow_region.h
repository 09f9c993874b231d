// shadow_region.h -- a Region that knows what a power cut would leave behind.
//
// Every write goes to the real (inner) region, and marks its cachelines dirty. Only a
// persist point -- WriteSafe/ZeroSafe with persist, Persist, or a Drain completing earlier
// Flushes -- copies ranges to the shadow, the bytes that are durable. CrashImage() is the
// shadow plus a random subset of the dirty lines, because caches may write lines back
// early. A callback runs after every persist point, so a harness can cut power there.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "fs/region/region.h"
#include "tests/fuzz/mem_region.h"

namespace udax {

class ShadowRegion : public Region {
 public:
  using PointCallback = std::function<void(uint64_t point)>;
  // Starts with the shadow equal to the inner region's current contents.
  explicit ShadowRegion(std::unique_ptr<Region> inner);

  void set_on_point(PointCallback cb) { on_point_ = std::move(cb); }
  // Test-only broken persistence: a persist point whose range `skip` names does not reach
  // the shadow (its lines stay dirty), as if a flush were missing. The harness must catch
  // the orderings this breaks.
  void set_skip_persist(std::function<bool(uint64_t off, uint64_t n)> skip) {
    skip_ = std::move(skip);
  }
  uint64_t points() const { return points_; }
  // Reports `kind` instead of the inner region's: kDevdax makes the filesystem above treat
  // it as cache-line persistent memory, which is what the shadow models (the inner image
  // is only where the bytes live).
  void set_kind(RegionKind kind) { kind_ = kind; }
  // The image a power cut right now would leave: the durable bytes, plus each dirty
  // cacheline with probability `keep_dirty`.
  std::vector<uint8_t> CrashImage(std::mt19937_64* rng, double keep_dirty) const;

  // The same image kept in `image` incrementally (a cut then costs what changed, not the
  // whole region): StartCrashImage copies the durable bytes into it once; each
  // SyncCrashImage copies the ranges persisted since, clears the image's dirty marks, and
  // writes each dirty cacheline with probability `keep_dirty` (recorded, and listed in
  // *kept). image->Undo() then takes back those lines and whatever a mount of the image
  // wrote, leaving the durable bytes for the next call.
  void StartCrashImage(MemImage* image);
  void SyncCrashImage(MemImage* image, std::mt19937_64* rng, double keep_dirty,
                      std::vector<uint64_t>* kept);
  // Writes the current bytes of cachelines `lines` over `dst` (a copy of the region).
  void OverlayLines(const std::vector<uint64_t>& lines, uint8_t* dst) const;

  Status ReadSafe(uint64_t off, void* dst, size_t n, MediaFault* fault) const override;
  Status WriteSafe(uint64_t off, const void* src, size_t n, bool persist,
                   MediaFault* fault) override;
  Status ZeroSafe(uint64_t off, size_t n, bool persist, MediaFault* fault) override;
  Status Persist(uint64_t off, size_t n) override;
  Status Flush(uint64_t off, size_t n) override;
  void Drain() override;
  // The inner region's devices (a multi-device filesystem), at the same offsets.
  size_t device_count() const override { return inner_->device_count(); }
  Region* device(size_t i) override { return inner_->device(i); }
  uint64_t device_start(size_t i) const override { return inner_->device_start(i); }

 private:
  static constexpr uint64_t kLine = 64;
  void MarkDirty(uint64_t off, size_t n);
  void Point(const std::vector<std::pair<uint64_t, uint64_t>>& ranges);

  std::unique_ptr<Region> inner_;
  std::vector<uint8_t> shadow_;
  std::set<uint64_t> dirty_lines_;
  std::vector<std::pair<uint64_t, uint64_t>> flushed_;
  bool track_ = false;  // a crash image is kept: remember what reaches the shadow
  std::vector<std::pair<uint64_t, uint64_t>> persisted_;  // byte ranges since the last sync
  uint64_t points_ = 0;
  PointCallback on_point_;
  std::function<bool(uint64_t off, uint64_t n)> skip_;
};

}  // namespace udax
