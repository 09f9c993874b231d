// shadow_region.cc -- see shadow_region.h.
#include "tests/crash/shadow_region.h"

#include <cstring>

namespace udax {

ShadowRegion::ShadowRegion(std::unique_ptr<Region> inner) : inner_(std::move(inner)) {
  kind_ = inner_->kind();
  path_ = inner_->path();
  size_ = inner_->size();
  alignment_ = inner_->alignment();
  read_only_ = inner_->read_only();
  fd_ = inner_->fd();
  base_ = inner_->base();
  shadow_.resize(size_);
  Status st = inner_->ReadSafe(0, shadow_.data(), size_);
  (void)st;
}

std::vector<uint8_t> ShadowRegion::CrashImage(std::mt19937_64* rng, double keep_dirty) const {
  std::vector<uint8_t> image = shadow_;
  std::bernoulli_distribution keep(keep_dirty);
  for (uint64_t line : dirty_lines_) {
    if (!keep(*rng)) continue;
    const uint64_t off = line * kLine;
    const uint64_t n = std::min<uint64_t>(kLine, size_ - off);
    std::memcpy(image.data() + off, base_ + off, n);
  }
  return image;
}

void ShadowRegion::StartCrashImage(MemImage* image) {
  std::memcpy(image->data(), shadow_.data(), size_);
  image->ClearDirty();
  track_ = true;
  persisted_.clear();
}

void ShadowRegion::SyncCrashImage(MemImage* image, std::mt19937_64* rng, double keep_dirty,
                                  std::vector<uint64_t>* kept) {
  for (const auto& [lo, hi] : persisted_) std::memcpy(image->data() + lo, shadow_.data() + lo, hi - lo);
  persisted_.clear();
  image->ClearDirty();
  kept->clear();
  std::bernoulli_distribution keep(keep_dirty);
  for (uint64_t line : dirty_lines_) {
    if (!keep(*rng)) continue;
    const uint64_t off = line * kLine;
    const uint64_t n = std::min<uint64_t>(kLine, size_ - off);
    image->MarkDirty(off, n);
    std::memcpy(image->data() + off, base_ + off, n);
    kept->push_back(line);
  }
}

void ShadowRegion::OverlayLines(const std::vector<uint64_t>& lines, uint8_t* dst) const {
  for (uint64_t line : lines) {
    const uint64_t off = line * kLine;
    std::memcpy(dst + off, base_ + off, std::min<uint64_t>(kLine, size_ - off));
  }
}

Status ShadowRegion::ReadSafe(uint64_t off, void* dst, size_t n, MediaFault* fault) const {
  return inner_->ReadSafe(off, dst, n, fault);
}

void ShadowRegion::MarkDirty(uint64_t off, size_t n) {
  if (n == 0) return;
  for (uint64_t l = off / kLine; l <= (off + n - 1) / kLine; ++l) dirty_lines_.insert(l);
}

void ShadowRegion::Point(const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  for (const auto& [off, n] : ranges) {
    if (n == 0 || (skip_ && skip_(off, n))) continue;
    // Whole cachelines reach the media: a flush writes back the line, not the bytes.
    const uint64_t lo = off / kLine * kLine;
    const uint64_t hi = std::min<uint64_t>((off + n + kLine - 1) / kLine * kLine, size_);
    std::memcpy(shadow_.data() + lo, base_ + lo, hi - lo);
    if (track_) persisted_.emplace_back(lo, hi);
    dirty_lines_.erase(dirty_lines_.lower_bound(lo / kLine),
                       dirty_lines_.lower_bound((hi + kLine - 1) / kLine));
  }
  ++points_;
  if (on_point_) on_point_(points_);
}

Status ShadowRegion::WriteSafe(uint64_t off, const void* src, size_t n, bool persist,
                               MediaFault* fault) {
  UDAX_RETURN_IF_ERROR(inner_->WriteSafe(off, src, n, false, fault));
  MarkDirty(off, n);
  if (persist) Point({{off, n}});
  return Status::Ok();
}

Status ShadowRegion::ZeroSafe(uint64_t off, size_t n, bool persist, MediaFault* fault) {
  UDAX_RETURN_IF_ERROR(inner_->ZeroSafe(off, n, false, fault));
  MarkDirty(off, n);
  if (persist) Point({{off, n}});
  return Status::Ok();
}

Status ShadowRegion::Persist(uint64_t off, size_t n) {
  Point({{off, n}});
  return Status::Ok();
}

Status ShadowRegion::Flush(uint64_t off, size_t n) {
  flushed_.emplace_back(off, n);
  return Status::Ok();
}

void ShadowRegion::Drain() {
  if (flushed_.empty()) return;
  auto ranges = std::move(flushed_);
  flushed_.clear();
  Point(ranges);
}

}  // namespace udax
