// mem_region.h -- a Region over a heap buffer, for fuzzers and tools that build images in
// memory: no file, no pmem, no persistence (Persist/Flush/Drain do nothing).
//
// Several MemRegions may share one MemImage, so an image survives the Filesystem (or
// fsck) that owned its region and can be mounted again.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fs/region/region.h"

namespace udax {

// Zeroed bytes from an anonymous mapping: pages never touched cost nothing (calloc under
// ASan clears them all), so a mostly-zero 16 MiB image is cheap to make per fuzz input.
class MemImage {
 public:
  explicit MemImage(uint64_t size);
  ~MemImage();
  MemImage(const MemImage&) = delete;
  MemImage& operator=(const MemImage&) = delete;
  uint8_t* data() { return bytes_; }
  uint64_t size() const { return size_; }

  // Which 4 KiB pages were written since ClearDirty, with what they held before:
  // MemRegion records every write here (a harness records its own with MarkDirty before it
  // writes), so a harness can tell whether anything changed, and undo it cheaply.
  void MarkDirty(uint64_t off, uint64_t n);
  bool AnyDirty() const { return !saved_.empty(); }
  // Whether a written page now differs from what it held (rewriting equal bytes is not).
  bool Changed() const;
  void ClearDirty();
  // Puts back what the written pages held, and clears the marks.
  void Undo();

 private:
  struct SavedPage {
    uint64_t page;
    std::vector<uint8_t> bytes;
  };
  uint64_t size_;
  uint8_t* bytes_;
  std::vector<bool> dirty_ = std::vector<bool>(size_ / 4096 + 1, false);
  std::vector<SavedPage> saved_;
};

class MemRegion final : public Region {
 public:
  explicit MemRegion(std::shared_ptr<MemImage> image, bool read_only = false,
                     std::string name = "mem:image");
  Status ReadSafe(uint64_t off, void* dst, size_t n, MediaFault* fault) const override;
  Status WriteSafe(uint64_t off, const void* src, size_t n, bool persist,
                   MediaFault* fault) override;
  Status ZeroSafe(uint64_t off, size_t n, bool persist, MediaFault* fault) override;
  Status Persist(uint64_t, size_t) override { return Status::Ok(); }
  Status Flush(uint64_t, size_t) override { return Status::Ok(); }
  void Drain() override {}

  // The image of a multi-device filesystem: one buffer, the devices at these offsets.
  void set_device_starts(std::vector<uint64_t> starts) { starts_ = std::move(starts); }
  size_t device_count() const override { return starts_.empty() ? 1 : starts_.size(); }
  uint64_t device_start(size_t i) const override { return starts_.empty() ? 0 : starts_[i]; }

 private:
  std::shared_ptr<MemImage> image_;
  std::vector<uint64_t> starts_;
};

}  // namespace udax
