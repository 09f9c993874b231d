// region_pmem2.h -- the Region implementation on libpmem2 (what Region::Open returns).
//
// Internal to fs/region: everyone else holds a Region. It owns, in destruction order, the
// pmem2 mapping, the pmem2 source and the descriptor (and so the flock) behind them.
#pragma once

#include <libpmem2.h>

#include <memory>
#include <string>

#include "fs/base/status.h"
#include "fs/region/pmem2_util.h"
#include "fs/region/region.h"
#include "fs/region/safe_copy.h"
#include "fs/region/stored_pages.h"
#include "fs/base/unique_fd.h"

namespace udax {

// Where a device of a SpanRegion goes: `length` bytes from its start, mapped at `offset`
// of the span's address-space reservation.
struct Pmem2Placement {
  pmem2_vm_reservation* reservation = nullptr;
  uint64_t offset = 0;
  uint64_t length = 0;
};

class Pmem2Region final : public Region {
 public:
  // See Region::Open for the contract.
  static Result<std::unique_ptr<Region>> Open(const std::string& path,
                                              const RegionOptions& options);
  // The same, for one device of a SpanRegion: mapped where `placement` says, and only
  // its first placement.length bytes (EINVAL if the target is shorter).
  static Result<std::unique_ptr<Pmem2Region>> OpenPlaced(const std::string& path,
                                                         const RegionOptions& options,
                                                         const Pmem2Placement* placement);
  ~Pmem2Region() override = default;

  Status ReadSafe(uint64_t off, void* dst, size_t n, MediaFault* fault) const override;
  Status WriteSafe(uint64_t off, const void* src, size_t n, bool persist,
                   MediaFault* fault) override;
  Status ZeroSafe(uint64_t off, size_t n, bool persist, MediaFault* fault) override;
  std::vector<RegionRange> MaybeNonZeroIn(uint64_t off, uint64_t n) const override;
  Status Persist(uint64_t off, size_t n) override;
  Status Flush(uint64_t off, size_t n) override;
  void Drain() override;

  // Deletes the mapping -- its place in a reservation goes back to the reservation, for
  // another device to take -- and keeps the rest: the descriptor (and its lock), the path,
  // the poison maps. Nothing may access the region's bytes after this
  // (SpanRegion::ReplaceDevice: the device is lost, and stays out of reach).
  void Unmap();
  // The device is gone for real (the kernel removed it): let go of it, yet keep the
  // object's address and descriptor number valid for whoever holds them. The kernel cannot
  // free a removed device while a process holds it, and a devdax node held open across
  // `daxctl disable-device` and `enable-device` breaks the new node when it is closed at
  // last: every open after that fails with ENXIO (kernel 6.1, seen in the lab). So the
  // mapping is replaced in place by one of an empty memfd -- a load or store there
  // faults with SIGBUS as the removed device's did, so an access already under way fails
  // the same way -- and the descriptor by /dev/null (its lock goes with the device's
  // file). Nothing may rely on the region's bytes after this; Unmap may still follow.
  Status Release();
  // Finds this image's state again and loads its poison lists, after its first block
  // changed (a blank replacement that now begins with a filesystem's superblock). OK and
  // nothing to do on a device, whose poison is the kernel's.
  Status ReattachEmulatedPoison();

  // The store granularity libpmem2 gave the mapping: PAGE on an emulated region,
  // CACHE_LINE (or BYTE on eADR platforms) on fsdax and devdax.
  pmem2_granularity granularity() const { return granularity_; }

 private:
  Pmem2Region() = default;

  // Page granularity means the CPU caches are not the persistence domain's edge: the page
  // cache is, and only msync reaches the media.
  bool page_granular() const { return granularity_ == PMEM2_GRANULARITY_PAGE; }
  bool ImageCovers(uint64_t off, uint64_t n) const;
  // Whether an emulated write of [off, off+n) is a store through the mapping (see the
  // .cc), making the page-table entries it needs first; false means the descriptor.
  bool StoresThroughMapping(uint64_t off, uint64_t n);
  Status WriteThroughFd(uint64_t off, const void* src, size_t n, bool persist);
  // msync(MS_SYNC) over the pages covering [off, off+n).
  Status SyncPages(const char* op, uint64_t off, uint64_t n) const;
  // Turns a caught SIGBUS into a region-relative MediaFault (filled into *out when
  // non-null and passed to the fault listener) and the EIO the caller returns.
  Status FaultStatus(const char* op, const CaughtSigbus& caught, MediaFault* out) const;
  Status ReadOnlyStatus(const char* op) const;

  // Declared in the order they must be released in reverse: the map, then the source,
  // then the descriptor (closing it drops the flock).
  UniqueFd fd_owner_;
  Pmem2SourcePtr source_;
  Pmem2MapPtr map_;
  pmem2_granularity granularity_ = PMEM2_GRANULARITY_PAGE;
  pmem2_persist_fn persist_fn_ = nullptr;
  pmem2_flush_fn flush_fn_ = nullptr;
  pmem2_drain_fn drain_fn_ = nullptr;
  pmem2_memcpy_fn memcpy_fn_ = nullptr;
  pmem2_memset_fn memset_fn_ = nullptr;
  // Emulated only: the image pages known to hold storage (stored_pages.h).
  StoredPages stored_;
  // Emulated on volatile backing only: the pages whose page-table entries
  // MADV_POPULATE_WRITE has made (cleared where a punch removes them).
  StoredPages mapped_;
};

}  // namespace udax
