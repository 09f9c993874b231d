// region_span.h -- one Region over several devices: a multi-device filesystem's space.
//
// The devices are mapped one after another into a single address-space reservation
// (libpmem2's pmem2_vm_reservation), in the order the filesystem's device table gives
// them, so base() + off reaches linear byte `off` whichever device holds it, and the code
// above sees one region (disk_format.h, "Multi-device filesystems"). Each device is a
// Pmem2Region of its own, with its own persistence primitives (an emulated image next to
// a devdax device msyncs while the device flushes cache lines), its own lock and its own
// poison (an image's list file is keyed by the device's UUID). A SpanRegion forwards each
// access piece by piece to the devices it touches and moves their offsets and faults into
// its own: a machine check on device 2 is reported at device 2's start + its offset.
//
// Opening: the targets may be named in any order, by any path. Each one's first block
// says which filesystem and which device it is; the set must be exactly the table's, every
// device once. One target whose superblock cannot be read (poison, a torn write) is taken
// for the one device nobody else claims, so a bad primary superblock on device 0 leaves
// the mount to the replica as it does on one device.
//
// Thread-safety: as Region.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "fs/format/disk_format.h"
#include "fs/region/pmem2_util.h"
#include "fs/region/region.h"

namespace udax {

class Pmem2Region;

// "a,b,c" -> {"a", "b", "c"}; empty names are dropped.
std::vector<std::string> SplitDeviceList(const std::string& list);
// Whether `target` names several devices: a comma-separated list, and no file has that name.
bool IsDeviceList(const std::string& target);
// Which of a device list's targets is device 0 (read from each one's first block, without
// locking: a mounted filesystem answers too). A multi-device filesystem keeps its event
// log with device 0's state. The target itself when it is not a list.
Result<std::string> FirstDevicePath(const std::string& target);

class SpanRegion final : public Region {
 public:
  // Opens the devices of a formatted multi-device filesystem, in whatever order `paths`
  // names them. EINVAL naming the target and the reason when a target is not one of
  // them, belongs to another filesystem, is named twice, or a device is missing.
  static Result<std::unique_ptr<Region>> Open(const std::vector<std::string>& paths,
                                              const RegionOptions& options);
  // Maps `paths` in this order, device i taking lengths[i] bytes from its start (mkfs,
  // before there is a device table to read). EINVAL when a target is shorter.
  static Result<std::unique_ptr<Region>> Create(const std::vector<std::string>& paths,
                                                const std::vector<uint64_t>& lengths,
                                                const RegionOptions& options);
  ~SpanRegion() override;

  Status ReadSafe(uint64_t off, void* dst, size_t n, MediaFault* fault) const override;
  Status WriteSafe(uint64_t off, const void* src, size_t n, bool persist,
                   MediaFault* fault) override;
  Status ZeroSafe(uint64_t off, size_t n, bool persist, MediaFault* fault) override;
  Status Persist(uint64_t off, size_t n) override;
  Status Flush(uint64_t off, size_t n) override;
  void Drain() override;

  std::vector<RegionRange> MaybeNonZeroIn(uint64_t off, uint64_t n) const override;
  std::vector<RegionRange> KnownBadIn(uint64_t off, uint64_t n) const override;
  bool HasKnownBad(uint64_t off, uint64_t n) const override;
  bool AnyKnownBad() const override;
  bool HasEmulatedPoison(uint64_t off, uint64_t n) const override;
  std::vector<RegionRange> EmulatedPoisonIn(uint64_t off, uint64_t n) const override;
  void MarkKnownBad(RegionRange range) override;
  std::vector<RegionRange> LatentPoison() const override;
  Status ReloadEmulatedPoison() override;
  std::vector<RegionRange> EmulatedPoison() const override;
  Status ClearEmulatedPoison(uint64_t off, uint64_t n, BadblockList* cleared) override;
  Status ClearRewrittenPoison(uint64_t off, uint64_t n) override;

  size_t device_count() const override { return starts_.size(); }
  Region* device(size_t i) override;
  uint64_t device_start(size_t i) const override { return starts_[i]; }
  Status LoseDevice(size_t i) override;
  Status RestoreDevice(size_t i) override;
  Status ReplaceDevice(size_t i, const std::string& path, const std::string& display = {}) override;
  Status RemapDevice(size_t i, const std::string& path, const std::string& display = {}) override;
  Status ReleaseDevice(size_t i) override;
  // Whether Open found device i an older copy of itself (a generation behind device 0's
  // word for it), and lost it for that.
  bool device_stale(size_t i) const override { return i < starts_.size() && stale_[i]; }
  void MarkDataLost(RegionRange range) override;
  bool DataLostIn(uint64_t off, uint64_t n) const override {
    return data_lost_.FirstOverlap(off, n).has_value();
  }
  uint64_t loss_epoch() const override { return loss_epoch_.load(); }
  Status RequireLive(uint64_t off, uint64_t n) const override;
  std::chrono::system_clock::time_point device_placed_at(size_t i) const override {
    if (i >= starts_.size()) return {};
    return std::chrono::system_clock::time_point(
        std::chrono::system_clock::duration(placed_at_[i].load(std::memory_order_acquire)));
  }
  bool device_mapped(size_t i) const override {
    return i < starts_.size() && !absent_[i].load(std::memory_order_acquire);
  }
  bool device_lost(size_t i) const override {
    return i < starts_.size() && lost_[i].load(std::memory_order_acquire);
  }

 private:
  SpanRegion() = default;

  // Calls fn(device index, device-relative offset, length, offset into the caller's
  // buffer) for each device [off, off+n) touches, in order; stops at the first error.
  // CheckRange first.
  template <typename Fn>
  Status ForEachDevice(const char* op, uint64_t off, uint64_t n, Fn fn) const;
  // The bad ranges of [off, off+n) in linear offsets: a lost device's whole share, and
  // what ranges_of(device, device offset, length) says of each other device.
  template <typename RangesOf>
  std::vector<RegionRange> BadIn(const char* op, uint64_t off, uint64_t n, RangesOf ranges_of) const;
  // Whether [off, off+n) touches a lost device or any_in(device, offset, length) of one.
  template <typename AnyIn>
  bool AnyBadIn(const char* op, uint64_t off, uint64_t n, AnyIn any_in) const;
  // EIO: device d is gone.
  Status LostStatus(const char* op, size_t d) const;
  // A device's ranges moved into linear offsets.
  std::vector<RegionRange> Shifted(size_t d, std::vector<RegionRange> ranges) const;

  // Opens `path` as device i (starts_[i] set), mapped into its place in the reservation.
  // `lock`: take the device's lock (RegionOptions::lock) unless another descriptor of
  // this region holds it already.
  Status MapDevice(size_t i, const std::string& path, uint64_t length, bool lock = true,
                   const std::string& display = {});
  // Maps `path` in lost place i instead of whatever is there (ReplaceDevice, RemapDevice;
  // `what` says which, for the messages). The place stays lost.
  Status MapLostPlace(size_t i, const std::string& path, const std::string& display, const char* what);
  // Makes `device` the one in place i, and keeps it until the span goes.
  void Own(size_t i, std::unique_ptr<Region> device);
  Region* dev(size_t i) const { return dev_[i].load(std::memory_order_acquire); }

  RegionOptions options_;  // what the devices were opened with (ReplaceDevice opens so too)
  // Released in reverse: the devices' maps must go before the reservation they live in.
  Pmem2ReservationPtr reservation_;
  // Every device Region the span made: Pmem2Regions, an AbsentDevice for a lost one
  // nobody named, and those ReplaceDevice took out. A replaced one is kept, unmapped and
  // never accessed again, so that a pointer taken before (device(i), a media source that
  // is being stopped) stays valid: only dev_ changes.
  std::vector<std::unique_ptr<Region>> owned_;
  // The device in each place, read without a lock (swapped by ReplaceDevice while the
  // place is lost, so no access reaches either object's bytes meanwhile).
  std::array<std::atomic<Region*>, kMaxDevices> dev_{};
  std::array<Pmem2Region*, kMaxDevices> mapped_{};  // dev_[i] when it is mapped, or null
  std::vector<uint64_t> starts_;  // linear offset of each device, ascending
  std::vector<uint64_t> lengths_;
  // Set by LoseDevice, cleared by RestoreDevice (under the filesystem's lock, once the
  // device's stale parts are rewritten); read without a lock on every access.
  std::array<std::atomic<bool>, kMaxDevices> lost_{};
  std::atomic<uint64_t> loss_epoch_{0};  // moved before every loss (LoseDevice)
  // Nothing mapped in the place: lost and not named at open (an AbsentDevice holds it),
  // released (ReleaseDevice), or a ReplaceDevice or RemapDevice that failed. Cleared by
  // one that succeeds.
  std::array<std::atomic<bool>, kMaxDevices> absent_{};
  // Put in by ReplaceDevice: its image's poison list is found once its first block
  // names it (RestoreDevice).
  std::array<std::atomic<bool>, kMaxDevices> replaced_{};
  std::array<bool, kMaxDevices> stale_{};  // set by Open only
  // device_placed_at, in system_clock ticks (0: not since the span opened).
  std::array<std::atomic<int64_t>, kMaxDevices> placed_at_{};
  // Linear ranges whose bytes are gone for good (MarkDataLost): read as EIO, known bad.
  PoisonMap data_lost_;
};

}  // namespace udax
