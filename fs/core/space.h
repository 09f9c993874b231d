// space.h -- where things live: the allocation-unit and inode-number bitmaps, the
// reverse map, and quarantine of bad AUs. One concern of the filesystem, split out of
// Filesystem with locks of its own (issue 18).
//
// Allocation groups: the AU bitmap is cut into up to kMaxGroups groups of whole 64-bit
// words (as XFS cuts a device into allocation groups), each with its own lock and
// next-fit cursor, so allocating writes to different files reserve in parallel. A
// reservation goes to the group of its goal (the AU after the file's previous one, to
// stay contiguous) or, without one, to its owner's group (inode number modulo the group
// count, deterministic); it spills into the other groups only when that one is short.
//
// Placement on several devices (a multi-device filesystem): no group crosses a device.
// A file's data stays on one device: its goal's, or for its first AUs its home device,
// round robin by inode number (ino % devices). Only when that device is full does a
// reservation spill onto the others. Metadata pairs (ReserveCopied) take only AUs whose
// partner lies on another device (CopyAu is 0 otherwise), so losing a device loses no
// metadata AU's both copies.
//
// Locking: each group's lock guards that group's DRAM mirror and reservations; mu_
// guards the inode bitmap. All are leaf locks, taken only inside Space's methods, one at
// a time, and those methods call nothing outside Space that locks; so a Space lock is
// always the last taken (Filesystem::mu_ names the order with ACQUIRED_BEFORE). An
// allocating write reserves its AUs here without the metadata lock, which is needed
// only to stage into a transaction.
//
// Transactions: the Stage* methods write bitmap words and reverse-map records into a
// transaction the caller builds under its own lock (Filesystem::txn_, GUARDED_BY the
// metadata mutex), so the forward map, the bitmap and the reverse map commit together.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "fs/base/mutex.h"
#include "fs/base/status.h"
#include "fs/core/bitmap_alloc.h"
#include "fs/core/journal.h"
#include "fs/format/disk_format.h"
#include "fs/region/region.h"
#include "rmap/rmap.h"

namespace udax {

class Space {
 public:
  // Loads both bitmaps from the region and opens the reverse map (mount, fsck, repair).
  // Not thread-safe: nothing else may use the Space while it loads.
  Status Load(Region* region, const DiskSuperblock& sb) EXCLUDES(mu_);

  // --- allocation units ---
  // Reserves `count` AUs in DRAM only (nothing on media points at them, so a crash leaves
  // them free). `goal`: the AU to start at, to stay contiguous (0: none); `ino`: the
  // owner, whose group is used when there is no goal. ENOSPC when there are not enough.
  Result<std::vector<Run>> ReserveAus(uint64_t count, uint64_t goal, uint64_t ino);
  void UnreserveAus(const std::vector<Run>& runs);
  // Reserves exactly AU `au` if it is free (and not reserved): repairs and the upgrade,
  // which choose their AUs themselves.
  bool ReserveExactAu(uint64_t au);
  // For metadata on an image with copies: reserves `count` AUs each together with its
  // partner (CopyAu), and returns the first copies, in runs whose partners are runs too.
  // Without copies, ReserveAus. ENOSPC when not enough pairs are free.
  Result<std::vector<Run>> ReserveCopied(uint64_t count, uint64_t goal, uint64_t ino);
  // Gives back runs ReserveCopied returned, partners included.
  void UnreserveCopied(const std::vector<Run>& runs);
  // The partners of a run of metadata AUs: one run, or two where `run` crosses from one
  // half of the paired range to the other (extents merge across it). Empty without copies.
  std::vector<Run> PartnerRuns(const Run& run) const;
  // Allocates reserved AUs in `txn`: the bitmap and the reverse map together.
  void StageAllocAus(Txn* txn, const Run& run, const Owner& owner);
  // Frees AUs in `txn`, except the ones the region knows bad: those stay allocated and
  // become owned by `quarantined` (G4), so no allocation hands them out again.
  void StageFreeAus(Txn* txn, const Run& run);
  // Takes every free AU of [run) out of use for good, in `txn` (a media error on free
  // space); AUs in use or reserved by an allocation in progress are left alone. Returns
  // how many it took.
  uint64_t StageQuarantineFree(Txn* txn, const Run& run);
  // Stages the reverse-map records naming `owner` for `run` (no bitmap change).
  void StageOwner(Txn* txn, const Run& run, const Owner& owner) const;
  bool AuAllocated(uint64_t au) const;
  // A device of a multi-device filesystem is gone (Filesystem::LoseDevice): nothing is
  // reserved on it from now on -- its groups leave every reservation order, its free AUs
  // leave free_aus(), and pairs with an AU on it leave the pool and are never made
  // again. Nothing is written: its bitmap bits stay as they are on media, for the device
  // to come back to (RestoreDevice). REQUIRES: d names a device.
  void RetireDevice(uint32_t d) EXCLUDES(pool_mu_);
  // Device d is back (Filesystem::RestoreDevice): its groups rejoin the reservation
  // orders and its free AUs free_aus(); pairs with an AU there may be made again.
  void RestoreDevice(uint32_t d);
  // Several devices: a goal (an AU of one of its groups) on the device where `count` AUs
  // for `ino` should start: 0 (the owner's home) when the home has room for them all
  // (with a margin) or there is one device; else the device with the most room, when it
  // has more than the home.
  uint64_t RoomyDeviceGoal(uint64_t ino, uint64_t count) const;
  // Free AUs on device `dev` (0 when it is retired), counted group by group under each
  // group's lock.
  uint64_t DeviceFreeAus(size_t dev) const;
  bool DeviceRetired(uint32_t d) const {
    return d < kMaxDevices && retired_[d].load(std::memory_order_acquire);
  }
  // Free AUs, neither allocated nor reserved (a snapshot: other threads move it). The
  // pairs kept back for metadata are not free.
  uint64_t free_aus() const { return free_aus_.load(std::memory_order_relaxed); }
  // Pairs kept back for metadata now (health, tests), and how many the pool aims at.
  uint64_t pooled_pairs() const EXCLUDES(pool_mu_);
  uint64_t pool_target() const { return pool_target_; }
  size_t group_count() const { return groups_.size(); }

  // --- inode numbers ---
  // Reserves one inode number, near `goal` when it can. ENOSPC when none is left.
  Result<uint64_t> ReserveIno(uint64_t goal) EXCLUDES(mu_);
  void UnreserveIno(uint64_t ino) EXCLUDES(mu_);
  // Marks `ino` in use in `txn` (reserved or not: repair re-marks the root this way).
  void StageAllocIno(Txn* txn, uint64_t ino) EXCLUDES(mu_);
  void StageFreeIno(Txn* txn, uint64_t ino) EXCLUDES(mu_);
  bool InoAllocated(uint64_t ino) const EXCLUDES(mu_);
  uint64_t free_inos() const EXCLUDES(mu_);

  // --- the reverse map ---
  // Every owner of the region bytes [phys, phys+len) (see ReverseMap::Query).
  Result<std::vector<OwnerRange>> Owners(uint64_t phys, uint64_t len) const EXCLUDES(mu_);
  // One AU's record, verified.
  Result<Owner> ReadOwner(uint64_t au) const { return rmap_.Read(au); }

  // The bytes of a bitmap (kAuBitmap or kInodeBitmap) as they are on media between
  // transactions, copied where they overlap region bytes [off, off+n) into dst (which
  // holds those n bytes): the source a media repair rewrites a bad block from.
  void CopyBitmapBytes(OwnerKind which, uint64_t off, uint64_t n, uint8_t* dst) const
      EXCLUDES(mu_);

  // Only for naming the lock in another class's lock order (ACQUIRED_BEFORE): nobody
  // outside Space takes it.
  Mutex* order_mutex() RETURN_CAPABILITY(mu_) { return &mu_; }

  // About this many allocation groups, each of at least kMinGroupAus AUs (one more per
  // device at most, where a device's share ends inside a group's stride).
  static constexpr size_t kMaxGroups = 16;
  static constexpr size_t kMaxOrder = kMaxGroups + kMaxDevices;
  static constexpr uint64_t kMinGroupAus = 1024;

 private:
  // AUs [base, base + alloc.nbits()) of the AU bitmap; bit b of `alloc` is AU base + b.
  struct Group {
    uint64_t base = 0;
    uint64_t end = 0;  // exclusive: base + alloc.nbits()
    uint32_t device = 0;
    std::atomic<bool> retired{false};  // on a device that is gone: never reserved from
    mutable Mutex mu;
    BitmapAllocator alloc GUARDED_BY(mu);
  };
  Group& GroupOf(uint64_t au) const { return *groups_[GroupIndex(au)]; }
  size_t GroupIndex(uint64_t au) const;
  // The groups a reservation tries, in order, into *order; returns how many. First the
  // goal's group (or the owner's, on its home device), then the rest of that device's,
  // then the other devices' (see ReserveAus).
  size_t GroupOrder(uint64_t goal, bool has_goal, uint64_t ino,
                    std::array<uint32_t, kMaxOrder>* order) const;
  // Calls fn(group, piece relative to the group's base) for each group `run` touches.
  template <typename Fn>
  void ForEachPiece(const Run& run, Fn fn) const;
  // Runs `op` on `g`'s allocator under its lock and moves free_aus_ by what it changed.
  template <typename Op>
  auto Update(Group& g, Op op) const;

  // Tops the pair pool up to its target, looking at no more than `max_scan` pairs.
  void RefillPairPool(uint64_t max_scan) EXCLUDES(pool_mu_);
  // Degraded (a device retired): reserves `want` AUs on live devices whose partners lie
  // on a retired device, partners included, for metadata that then has one copy until
  // the device comes back (RestoreDevice's resync writes the other). Appends the live
  // AUs to `out` through add; returns how many it found.
  template <typename Add>
  uint64_t ReserveHalfLostPairs(uint64_t want, Add add);
  // Devices not retired.
  uint32_t LiveDevices() const;
  // Reserves `au` in a retired group (the partner of a half-lost pair).
  bool ReserveRetiredAu(uint64_t au);
  // After a free: the pairs of `run` both of whose AUs are free now go to the pool, while
  // it is short.
  void OfferPairs(const Run& run) EXCLUDES(pool_mu_);
  // Takes `au` out of the pool (it stays reserved, for the caller; its partner goes
  // back): a pooled AU found bad. False if it was not pooled.
  bool TakeFromPool(uint64_t au) EXCLUDES(pool_mu_);

  Region* region_ = nullptr;  // set by Load, then constant
  DiskSuperblock sb_{};       // set by Load, then constant
  uint64_t au_size_ = 0;
  uint64_t au_count_ = 0;
  uint64_t group_aus_ = 1;    // AUs per group, a multiple of 64
  std::vector<std::unique_ptr<Group>> groups_;  // set by Load, then constant; ascending
  // Device d's groups are groups_[device_groups_[d], device_groups_[d+1]) (one device on
  // a single region). Set by Load, then constant.
  std::vector<size_t> device_groups_;
  std::array<std::atomic<bool>, kMaxDevices> retired_{};  // RetireDevice, RestoreDevice
  mutable std::atomic<uint64_t> free_aus_{0};   // the sum of the groups' free counts
  ReverseMap rmap_;           // set by Load; stateless between calls
  mutable Mutex mu_;
  BitmapAllocator inos_ GUARDED_BY(mu_);
  // Pairs reserved ahead for metadata (with copies), the first place ReserveCopied
  // takes from, and where UnreserveCopied gives back to. File data takes AUs one by one,
  // without regard to pairs, and could leave free space where no AU has a free partner,
  // so that no directory could grow while file data still fits. Up to pool_target_ pairs
  // stay reserved (not free to file data, as ext4 keeps blocks back), each by its first
  // copy; refilled from free pairs when under half full, and from pairs that frees
  // make. A leaf lock, never held with a group's.
  mutable Mutex pool_mu_;
  std::vector<uint64_t> pair_pool_ GUARDED_BY(pool_mu_);
  uint64_t pool_cursor_ GUARDED_BY(pool_mu_) = 0;  // where the next refill looks
  std::atomic<uint64_t> half_lost_cursor_{0};       // where ReserveHalfLostPairs looks
  uint64_t pool_target_ = 0;  // set by Load, then constant
};

}  // namespace udax
