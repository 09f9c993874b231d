// mem_region.cc -- see mem_region.h.
#include "tests/fuzz/mem_region.h"

#include <sys/mman.h>

#include <cstring>
#include <cstdio>
#include <cstdlib>

namespace udax {

MemImage::MemImage(uint64_t size) : size_(size) {
  void* p = mmap(nullptr, size ? size : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) {
    perror("MemImage: mmap");
    abort();
  }
  bytes_ = static_cast<uint8_t*>(p);
}

MemImage::~MemImage() { munmap(bytes_, size_ ? size_ : 1); }

void MemImage::MarkDirty(uint64_t off, uint64_t n) {
  if (n == 0) return;
  for (uint64_t page = off / 4096; page <= (off + n - 1) / 4096 && page < dirty_.size(); ++page) {
    if (dirty_[page]) continue;
    dirty_[page] = true;
    const uint64_t at = page * 4096;
    const uint64_t len = std::min<uint64_t>(4096, size_ - at);
    saved_.push_back({page, std::vector<uint8_t>(bytes_ + at, bytes_ + at + len)});
  }
}

bool MemImage::Changed() const {
  for (const SavedPage& p : saved_) {
    if (std::memcmp(bytes_ + p.page * 4096, p.bytes.data(), p.bytes.size()) != 0) return true;
  }
  return false;
}

void MemImage::ClearDirty() {
  for (const SavedPage& p : saved_) dirty_[p.page] = false;
  saved_.clear();
}

void MemImage::Undo() {
  for (const SavedPage& p : saved_) std::memcpy(bytes_ + p.page * 4096, p.bytes.data(), p.bytes.size());
  ClearDirty();
}

MemRegion::MemRegion(std::shared_ptr<MemImage> image, bool read_only, std::string name)
    : image_(std::move(image)) {
  kind_ = RegionKind::kEmulated;
  path_ = std::move(name);
  size_ = image_->size();
  read_only_ = read_only;
  base_ = image_->data();
}

Status MemRegion::ReadSafe(uint64_t off, void* dst, size_t n, MediaFault*) const {
  UDAX_RETURN_IF_ERROR(CheckRange("read", off, n));
  if (n) std::memcpy(dst, base_ + off, n);
  return Status::Ok();
}

Status MemRegion::WriteSafe(uint64_t off, const void* src, size_t n, bool, MediaFault*) {
  if (read_only_) return Status::Error(EROFS, path_ + ": read-only region");
  UDAX_RETURN_IF_ERROR(CheckRange("write", off, n));
  image_->MarkDirty(off, n);
  if (n) std::memcpy(base_ + off, src, n);
  return Status::Ok();
}

Status MemRegion::ZeroSafe(uint64_t off, size_t n, bool, MediaFault*) {
  if (read_only_) return Status::Error(EROFS, path_ + ": read-only region");
  UDAX_RETURN_IF_ERROR(CheckRange("zero", off, n));
  image_->MarkDirty(off, n);
  if (n) std::memset(base_ + off, 0, n);
  return Status::Ok();
}

}  // namespace udax
