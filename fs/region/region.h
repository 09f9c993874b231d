// region.h -- the persistent-memory region udaxfs lives on, and every access to it.
//
// A Region maps a whole target through libpmem2 and is the only code that touches pmem:
//   * devdax (/dev/daxX.Y): mapped whole, honouring the device alignment;
//   * a file on a DAX-mounted filesystem: MAP_SYNC mapping (byte/cache-line granularity);
//   * a plain file (the emulated region): page granularity, persist = msync.
// Reads of pmem go through ReadSafe, which catches SIGBUS (machine check, truncated
// backing file, removed device) and returns EIO plus a MediaFault describing what was hit,
// instead of killing the daemon. Writes go through WriteSafe / ZeroSafe for the same reason.
//
// Thread-safety: all methods are safe to call concurrently; ranges are the caller's concern.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "fs/format/status.h"

namespace udax {

enum class RegionKind { kEmulated, kFsdax, kDevdax };
const char* RegionKindName(RegionKind kind);

// What a caught SIGBUS told us: the region offset of the faulting address (rounded down to
// the poison granule) and its length, and the raw si_code (BUS_MCEERR_AR, BUS_ADRERR, ...).
struct MediaFault {
  uint64_t offset = 0;
  uint64_t length = 0;
  int si_code = 0;
};

struct RegionOptions {
  bool read_only = false;
  // Create the file (0600) and size it to create_size bytes if it does not exist.
  // Only for plain files (the emulated region); ignored for devices.
  uint64_t create_size = 0;
  // Take an exclusive flock on the target; fail with EBUSY if someone else holds it.
  bool lock = true;
};

class Region {
 public:
  // Opens and maps `path`. Errors (each with a message naming path and cause):
  // ENOENT no such target; EBUSY locked by another udaxfs; EINVAL not a regular file or a
  // dax character device, or an empty file; EIO/other errno from the system calls or
  // libpmem2 (pmem2_errormsg is included in the message).
  static Result<std::unique_ptr<Region>> Open(const std::string& path,
                                              const RegionOptions& options);
  virtual ~Region() = default;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  RegionKind kind() const { return kind_; }
  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Device alignment: 2 MiB (usually) on devdax, the page size otherwise.
  uint64_t alignment() const { return alignment_; }
  bool read_only() const { return read_only_; }
  // The descriptor of the open target (for handing to direct-map clients later).
  int fd() const { return fd_; }
  // Base of the mapping. Only Region and code holding a MediaFault-safe path may
  // dereference it directly; everyone else uses the *Safe calls below.
  uint8_t* base() const { return base_; }

  // Copies size()-bounded [off, off+n) into dst. A SIGBUS during the copy returns EIO and
  // fills *fault (if non-null) instead of crashing. EINVAL if the range is out of bounds.
  virtual Status ReadSafe(uint64_t off, void* dst, size_t n, MediaFault* fault = nullptr) const = 0;
  // Copies src into [off, off+n) with non-temporal stores. With persist, the range is
  // durable on return (drain, or msync on emulated regions); without, call Persist or
  // Drain later. EROFS on a read-only region.
  virtual Status WriteSafe(uint64_t off, const void* src, size_t n, bool persist,
                           MediaFault* fault = nullptr) = 0;
  virtual Status ZeroSafe(uint64_t off, size_t n, bool persist, MediaFault* fault = nullptr) = 0;
  // Makes [off, off+n) durable (flush + drain; msync on emulated regions).
  virtual Status Persist(uint64_t off, size_t n) = 0;
  // Flush without drain, and the drain that completes earlier flushes (for batching).
  virtual Status Flush(uint64_t off, size_t n) = 0;
  virtual void Drain() = 0;

  // Called (from the faulting thread, after the copy has been abandoned) for every caught
  // media fault. The notify/ layer hooks in here later. Set once before use.
  void set_fault_listener(std::function<void(const MediaFault&)> listener) {
    fault_listener_ = std::move(listener);
  }

 protected:
  Region() = default;
  void ReportFault(const MediaFault& fault) const {
    if (fault_listener_) fault_listener_(fault);
  }
  // OK when [off, off+n) lies inside the region (n == 0 at off == size() is fine);
  // EINVAL naming path, op ("read", "write", ...) and the range when it overflows or
  // reaches past size().
  Status CheckRange(const char* op, uint64_t off, uint64_t n) const;

  RegionKind kind_ = RegionKind::kEmulated;
  std::string path_;
  uint64_t size_ = 0;
  uint64_t alignment_ = 4096;
  bool read_only_ = false;
  int fd_ = -1;
  uint8_t* base_ = nullptr;
  std::function<void(const MediaFault&)> fault_listener_;
};

}  // namespace udax
