// space.cc -- the bitmaps, the reverse map and quarantine, under the space lock.
#include "fs/core/space.h"

#include <algorithm>
#include <array>

#include "fs/base/byte_overlap.h"
#include "fs/format/layout.h"

namespace udax {

Status Space::Load(Region* region, const DiskSuperblock& sb) {
  region_ = region;
  sb_ = sb;
  au_size_ = sb.au_size;
  au_count_ = sb.au_count;
  rmap_ = ReverseMap(region, sb);
  // Groups of whole bitmap words, so two groups never stage the same word, and never
  // across two devices (each device's share is whole words: DeviceUnit), so that a
  // file's home device is a set of groups.
  const uint64_t per = (sb.au_count + kMaxGroups - 1) / kMaxGroups;
  group_aus_ = std::max<uint64_t>(kMinGroupAus, (per + 63) / 64 * 64);
  groups_.clear();
  device_groups_.clear();
  uint64_t free = 0;
  const uint64_t lo = FirstDataAu(sb), hi = LastDataAu(sb);
  for (uint32_t d = 0; d < DeviceCount(sb); ++d) {
    const uint64_t dev_end = DeviceEndAu(sb, d);
    device_groups_.push_back(groups_.size());
    for (uint64_t base = DeviceFirstAu(sb, d); base < dev_end; base += group_aus_) {
      auto g = std::make_unique<Group>();
      g->base = base;
      const uint64_t n = std::min(group_aus_, dev_end - base);
      g->end = base + n;
      g->device = d;
      const uint64_t g_lo = std::clamp(lo, base, base + n) - base;
      const uint64_t g_hi = std::clamp(hi, base, base + n) - base;
      MutexLock lock(&g->mu);
      UDAX_RETURN_IF_ERROR(g->alloc.Load(*region, sb.abitmap_off + base / 8, n, g_lo, g_hi));
      free += g->alloc.free_count();
      groups_.push_back(std::move(g));
    }
  }
  device_groups_.push_back(groups_.size());
  if (groups_.size() > kMaxOrder) return Status::Corruption("too many allocation groups");
  for (auto& r : retired_) r.store(false);
  free_aus_.store(free);
  {
    MutexLock pool(&pool_mu_);
    pair_pool_.clear();
    pool_cursor_ = 0;
  }
  // 1/32 of the pairs (3% of the data area), at least 64 (an eighth of a small image's),
  // at most 65536.
  const uint64_t half = CopyHalf(sb);
  pool_target_ = HasMetaCopies(sb) ? std::clamp<uint64_t>(half / 32, std::min<uint64_t>(64, half / 8), 65536) : 0;
  // Devices the region has lost (a mount or fsck of a degraded filesystem) stay retired
  // across every (re)load, before any pair is pooled.
  for (uint32_t d = 1; d < DeviceCount(sb); ++d) {
    if (region->device_lost(d)) RetireDevice(d);
  }
  RefillPairPool(UINT64_MAX);
  MutexLock lock(&mu_);
  // Inode 0 is never used and 1 is the root's: numbers from 2 are handed out.
  return inos_.Load(*region, sb.ibitmap_off, sb.inode_count, 2, sb.inode_count);
}

template <typename Fn>
void Space::ForEachPiece(const Run& run, Fn fn) const {
  for (uint64_t a = run.start; a < run.end();) {
    Group& g = GroupOf(a);
    const uint64_t end = std::min(run.end(), g.end);
    fn(g, Run{a - g.base, end - a});
    a = end;
  }
}

template <typename Op>
auto Space::Update(Group& g, Op op) const {
  MutexLock lock(&g.mu);
  const uint64_t before = g.alloc.free_count();
  auto result = op(g.alloc);
  const uint64_t after = g.alloc.free_count();
  // Unsigned wrap-around adds the (possibly negative) difference. A retired group's AUs
  // left free_aus_ when it retired.
  if (!g.retired.load(std::memory_order_relaxed)) free_aus_.fetch_add(after - before, std::memory_order_relaxed);
  return result;
}

size_t Space::GroupIndex(uint64_t au) const {
  if (device_groups_.size() <= 2) return au / group_aus_;  // one device: uniform groups
  size_t lo = 0, hi = groups_.size();
  while (hi - lo > 1) {
    const size_t mid = (lo + hi) / 2;
    if (groups_[mid]->base <= au) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

size_t Space::GroupOrder(uint64_t goal, bool has_goal, uint64_t ino,
                         std::array<uint32_t, kMaxOrder>* order) const {
  const size_t n = groups_.size();
  const size_t devices = device_groups_.size() - 1;
  // The device the AUs should come from: the goal's (the file already lives there), or
  // the owner's home, round robin over the devices by inode number.
  const size_t dev = has_goal ? DeviceOfAu(sb_, goal) : ino % devices;
  const size_t gs = device_groups_[dev], ge = device_groups_[dev + 1];
  const size_t first = has_goal ? GroupIndex(goal) : gs + (ino / devices) % (ge - gs);
  size_t k = 0;
  if (!DeviceRetired(static_cast<uint32_t>(dev))) {
    for (size_t i = 0; i < ge - gs; ++i) (*order)[k++] = static_cast<uint32_t>(gs + (first - gs + i) % (ge - gs));
  }
  // Then the other devices', when the home one is short (or gone).
  for (size_t i = 1; i < devices; ++i) {
    const size_t other = (dev + i) % devices;
    if (DeviceRetired(static_cast<uint32_t>(other))) continue;
    for (size_t g = device_groups_[other]; g < device_groups_[other + 1]; ++g) {
      (*order)[k++] = static_cast<uint32_t>(g);
    }
  }
  (void)n;
  return k;
}

uint64_t Space::DeviceFreeAus(size_t dev) const {
  uint64_t free = 0;
  if (DeviceRetired(static_cast<uint32_t>(dev))) return free;
  for (size_t g = device_groups_[dev]; g < device_groups_[dev + 1]; ++g) {
    MutexLock lock(&groups_[g]->mu);
    free += groups_[g]->alloc.free_count();
  }
  return free;
}

uint64_t Space::RoomyDeviceGoal(uint64_t ino, uint64_t count) const {
  const size_t devices = device_groups_.size() - 1;
  if (devices < 2 || count == 0) return 0;
  // The home device keeps the file when it has room for it all, with a margin: a
  // group's free count includes AUs that file data does not get (the pairs kept back
  // for metadata copies) or that its extent blocks take meanwhile. Else the device with
  // the most room, if it has more than the home.
  const size_t home = ino % devices;
  const uint64_t home_free = DeviceFreeAus(home);
  if (home_free >= count + count / 16 + 64) return 0;
  size_t best = home;
  uint64_t best_free = home_free;
  for (size_t i = 1; i < devices; ++i) {
    const size_t dev = (home + i) % devices;
    const uint64_t f = DeviceFreeAus(dev);
    if (f > best_free) best = dev, best_free = f;
  }
  // Any AU of the device's first group: the reservation starts from that group's cursor.
  if (best != home) return std::max<uint64_t>(groups_[device_groups_[best]]->base, 1);
  return 0;
}

Result<std::vector<Run>> Space::ReserveAus(uint64_t count, uint64_t goal, uint64_t ino) {
  if (count == 0) return std::vector<Run>{};
  if (free_aus() < count) return Status::NoSpace("no free space");
  bool has_goal = goal != 0 && goal < au_count_;
  std::array<uint32_t, kMaxOrder> order;
  const size_t n = GroupOrder(goal, has_goal, ino, &order);
  if (n == 0) return Status::NoSpace("no device to allocate on");
  const size_t first = order[0];
  // A goal on a device that is gone is no goal.
  if (has_goal && GroupIndex(goal) != first) has_goal = false;
  // No goal: the group's next-fit cursor (any goal outside the group's bits).
  constexpr uint64_t kCursor = UINT64_MAX;
  auto reserve = [&](size_t i, uint64_t want, uint64_t g_goal, bool partial_ok,
                     bool wrap) -> std::vector<Run> {
    Group& g = *groups_[order[i % n]];
    auto runs = Update(g, [&](BitmapAllocator& alloc) -> Result<std::vector<Run>> {
      // Under the group's lock: a device retired since the order was made gives nothing.
      if (g.retired.load(std::memory_order_relaxed)) return Status::NoSpace("device gone");
      if (!partial_ok && alloc.free_count() < want) return Status::NoSpace("group full");
      return alloc.Reserve(want, g_goal, partial_ok, wrap);
    });
    if (!runs.ok()) return {};
    for (Run& r : *runs) r.start += g.base;
    return std::move(*runs);
  };
  const uint64_t first_goal = has_goal ? goal - groups_[first]->base : kCursor;
  // 1. From the goal on, inside its group: a file grows in place.
  if (has_goal) {
    auto runs = reserve(0, count, first_goal, false, false);
    if (!runs.empty()) return runs;
  }
  std::vector<Run> out;
  uint64_t want = count;
  auto add = [&](const std::vector<Run>& runs) {
    for (const Run& r : runs) {
      if (!out.empty() && out.back().end() == r.start) {
        out.back().len += r.len;
      } else {
        out.push_back(r);
      }
      want -= r.len;
    }
  };
  // Free space spread over order[from, to): from the goal (or cursor) to the end of its
  // group, on through the next groups from their starts, as one allocator over those
  // groups would (runs that meet at a group boundary are one), then what is left.
  auto spread = [&](size_t from, size_t to, uint64_t from_goal) {
    add(reserve(from, want, from_goal, true, false));
    for (size_t i = from + 1; i < to && want > 0; ++i) add(reserve(i, want, 0, true, true));
    if (want > 0) add(reserve(from, want, kCursor, true, true));
  };
  // 2. and 3. device by device (the order lists each device's groups together, the home
  // device's first), on each device that has room for it all: one group that holds it
  // all, else spread over that device's groups. A file's data on one device is what a
  // direct map of it reaches (one device's descriptor), and what one device's loss takes
  // whole. One device: all the groups at once, as one allocator would.
  // (One device: free_aus() said there is room, so no lock is taken to count it again.)
  const bool one_device = device_groups_.size() <= 2;
  for (size_t i = 0, j; i < n; i = j) {
    const uint32_t dev = groups_[order[i]]->device;
    j = i + 1;
    while (j < n && groups_[order[j]]->device == dev) ++j;
    if (!one_device && DeviceFreeAus(dev) < count) continue;
    const uint64_t from_goal = i == 0 ? first_goal : kCursor;
    for (size_t k = i; k < j; ++k) {
      auto runs = reserve(k, count, k == i ? from_goal : kCursor, false, true);
      if (!runs.empty()) return runs;
    }
    spread(i, j, from_goal);
    if (want == 0) return out;
    UnreserveAus(out);  // taken meanwhile by another reservation: go on
    out.clear();
    want = count;
  }
  // 4. No device holds it all: across the devices.
  spread(0, n, first_goal);
  if (want > 0) {
    UnreserveAus(out);
    return Status::NoSpace("no free space");
  }
  return out;
}

bool Space::ReserveExactAu(uint64_t au) {
  if (au >= au_count_) return false;
  Group& g = GroupOf(au);
  return Update(g, [&](BitmapAllocator& alloc) {
    return !g.retired.load(std::memory_order_relaxed) && !alloc.IsAllocated(au - g.base) &&
           alloc.ReserveExact(au - g.base);
  });
}

std::vector<Run> Space::PartnerRuns(const Run& run) const {
  std::vector<Run> out;
  for (uint64_t a = run.start; a < run.end(); ++a) {
    const uint64_t partner = CopyAu(sb_, a);
    if (partner == 0) continue;  // no partner: never metadata (ReserveCopied skips it)
    if (!out.empty() && out.back().end() == partner) {
      out.back().len++;
    } else {
      out.push_back(Run{partner, 1});
    }
  }
  return out;
}

Result<std::vector<Run>> Space::ReserveCopied(uint64_t count, uint64_t goal, uint64_t ino) {
  if (!HasMetaCopies(sb_)) return ReserveAus(count, goal, ino);
  if (count == 0) return std::vector<Run>{};
  std::vector<Run> out;
  auto add = [&](uint64_t a) {
    // One run while the partners stay contiguous too (a run never crosses the halves).
    if (!out.empty() && out.back().end() == a && CopyAu(sb_, a - 1) + 1 == CopyAu(sb_, a)) {
      out.back().len++;
    } else {
      out.push_back(Run{a, 1});
    }
  };
  uint64_t want = count;
  // Two devices, one lost: no pair has both halves alive (pairs join two devices), so the
  // search below would try every AU in vain, under the caller's mu_. Straight to step 4.
  if (LiveDevices() < 2 && DeviceCount(sb_) > 1) {
    want -= ReserveHalfLostPairs(want, add);
    if (want > 0) {
      UnreserveCopied(out);
      return Status::NoSpace("no free AU for metadata on the devices that remain");
    }
    return out;
  }
  // 1. The pool: pairs reserved ahead, taken in O(1) (a namespace operation holds a few
  // pairs and gives most of them back: they go back to the pool).
  bool low;
  {
    MutexLock pool(&pool_mu_);
    for (; want > 0 && !pair_pool_.empty(); --want) {
      add(pair_pool_.back());
      pair_pool_.pop_back();
    }
    low = pair_pool_.size() < pool_target_ / 2;
  }
  // 2. Next fit from the goal: most AUs have a free partner while the device has room.
  constexpr size_t kMaxRejected = 4096;
  std::vector<Run> rejected;  // AUs reserved whose partner was busy: given back below
  while (want > 0 && free_aus() >= 2 * want && rejected.size() < kMaxRejected) {
    auto one = ReserveAus(1, goal, ino);
    if (!one.ok()) break;
    const uint64_t a = (*one)[0].start;
    goal = a + 1;
    const uint64_t partner = CopyAu(sb_, a);
    if (partner == 0 || !ReserveExactAu(partner)) {
      rejected.push_back(Run{a, 1});
      continue;
    }
    add(a);
    --want;
  }
  UnreserveAus(rejected);
  // 3. Free space but few free pairs: every pair once.
  const uint64_t lo = FirstDataAu(sb_), half = CopyHalf(sb_);
  for (uint64_t a = lo; want > 0 && a < lo + half && free_aus() >= 2; ++a) {
    if (CopyAu(sb_, a) == 0 || !ReserveExactAu(a)) continue;
    if (!ReserveExactAu(a + half)) {
      UnreserveAus({Run{a, 1}});
      continue;
    }
    add(a);
    --want;
  }
  // 4. A device is gone and no whole pair is left (two devices, one lost): metadata
  //    goes on with one copy, its partner kept on the lost device for the resync.
  if (want > 0) want -= ReserveHalfLostPairs(want, add);
  if (want > 0) {
    UnreserveCopied(out);
    return Status::NoSpace("no free pair of AUs for metadata and its copy");
  }
  if (low) RefillPairPool(4096);
  return out;
}

uint32_t Space::LiveDevices() const {
  uint32_t live = 0;
  for (uint32_t d = 0; d < DeviceCount(sb_); ++d) live += DeviceRetired(d) ? 0 : 1;
  return live;
}

bool Space::ReserveRetiredAu(uint64_t au) {
  if (au >= au_count_) return false;
  Group& g = GroupOf(au);
  return Update(g, [&](BitmapAllocator& alloc) {
    return g.retired.load(std::memory_order_relaxed) && !alloc.IsAllocated(au - g.base) &&
           alloc.ReserveExact(au - g.base);
  });
}

template <typename Add>
uint64_t Space::ReserveHalfLostPairs(uint64_t want, Add add) {
  bool any_retired = false;
  for (uint32_t d = 0; d < kMaxDevices; ++d) any_retired = any_retired || DeviceRetired(d);
  if (!any_retired) return 0;
  const uint64_t lo = FirstDataAu(sb_), span = 2 * CopyHalf(sb_);
  if (span == 0) return 0;
  uint64_t found = 0;
  const uint64_t start = half_lost_cursor_.load(std::memory_order_relaxed) % span;
  uint64_t i = 0;
  for (; i < span && found < want && free_aus() >= 1; ++i) {
    const uint64_t a = lo + (start + i) % span;
    const uint64_t p = CopyAu(sb_, a);
    if (p == 0 || DeviceRetired(DeviceOfAu(sb_, a)) || !DeviceRetired(DeviceOfAu(sb_, p))) continue;
    if (!ReserveExactAu(a)) continue;
    if (!ReserveRetiredAu(p)) {
      UnreserveAus({Run{a, 1}});
      continue;
    }
    add(a);
    ++found;
  }
  half_lost_cursor_.store((start + i) % span, std::memory_order_relaxed);
  return found;
}

void Space::RefillPairPool(uint64_t max_scan) {
  if (pool_target_ == 0) return;
  const uint64_t lo = FirstDataAu(sb_), half = CopyHalf(sb_);
  uint64_t cursor, need;
  {
    MutexLock pool(&pool_mu_);
    if (pair_pool_.size() >= pool_target_) return;
    need = pool_target_ - pair_pool_.size();
    cursor = pool_cursor_;
  }
  std::vector<uint64_t> found;
  for (uint64_t i = 0; i < std::min(max_scan, half) && found.size() < need; ++i) {
    const uint64_t a = lo + (cursor + i) % half;
    if (CopyAu(sb_, a) == 0 || !ReserveExactAu(a)) continue;
    if (!ReserveExactAu(a + half)) {
      UnreserveAus({Run{a, 1}});
      continue;
    }
    found.push_back(a);
  }
  MutexLock pool(&pool_mu_);
  pool_cursor_ = (cursor + std::min(max_scan, half)) % half;
  pair_pool_.insert(pair_pool_.end(), found.begin(), found.end());
}

void Space::OfferPairs(const Run& run) {
  if (pool_target_ == 0) return;
  uint64_t need;
  {
    MutexLock pool(&pool_mu_);
    if (pair_pool_.size() >= pool_target_) return;
    need = pool_target_ - pair_pool_.size();
  }
  const uint64_t lo = FirstDataAu(sb_), half = CopyHalf(sb_);
  std::vector<uint64_t> found;
  for (uint64_t a = run.start; a < run.end() && found.size() < need; ++a) {
    if (CopyAu(sb_, a) == 0) continue;
    const uint64_t lower = a < lo + half ? a : a - half;
    if (!ReserveExactAu(lower)) continue;
    if (!ReserveExactAu(lower + half)) {
      UnreserveAus({Run{lower, 1}});
      continue;
    }
    found.push_back(lower);
  }
  MutexLock pool(&pool_mu_);
  pair_pool_.insert(pair_pool_.end(), found.begin(), found.end());
}

bool Space::TakeFromPool(uint64_t au) {
  if (pool_target_ == 0 || CopyAu(sb_, au) == 0) return false;
  const uint64_t lo = FirstDataAu(sb_), half = CopyHalf(sb_);
  const uint64_t lower = au < lo + half ? au : au - half;
  {
    MutexLock pool(&pool_mu_);
    auto it = std::find(pair_pool_.begin(), pair_pool_.end(), lower);
    if (it == pair_pool_.end()) return false;
    pair_pool_.erase(it);
  }
  UnreserveAus({Run{CopyAu(sb_, au), 1}});  // the other AU of the pair goes back
  return true;
}

uint64_t Space::pooled_pairs() const {
  MutexLock pool(&pool_mu_);
  return pair_pool_.size();
}

void Space::UnreserveCopied(const std::vector<Run>& runs) {
  if (!HasMetaCopies(sb_)) {
    UnreserveAus(runs);
    return;
  }
  const uint64_t lo = FirstDataAu(sb_), half = CopyHalf(sb_);
  for (const Run& r : runs) {
    for (uint64_t a = r.start; a < r.end(); ++a) {
      // Pairs given back refill the pool first (by their lower AU), as they are -- unless
      // one AU is on a device that is gone.
      const bool live = !DeviceRetired(DeviceOfAu(sb_, a)) && !DeviceRetired(DeviceOfAu(sb_, CopyAu(sb_, a)));
      {
        MutexLock pool(&pool_mu_);
        if (live && pair_pool_.size() < pool_target_) {
          pair_pool_.push_back(a < lo + half ? a : a - half);
          continue;
        }
      }
      UnreserveAus({Run{a, 1}});
      UnreserveAus({Run{CopyAu(sb_, a), 1}});
    }
  }
}

void Space::UnreserveAus(const std::vector<Run>& runs) {
  for (const Run& run : runs) {
    ForEachPiece(run, [&](Group& g, const Run& piece) {
      Update(g, [&](BitmapAllocator& alloc) {
        alloc.Unreserve({piece});
        return 0;
      });
    });
  }
}

void Space::StageAllocAus(Txn* txn, const Run& run, const Owner& owner) {
  ForEachPiece(run, [&](Group& g, const Run& piece) {
    Update(g, [&](BitmapAllocator& alloc) {
      alloc.StageAlloc(txn, piece);
      return 0;
    });
  });
  StageOwner(txn, run, owner);
}

void Space::StageFreeAus(Txn* txn, const Run& run) {
  auto free_run = [&](const Run& r) {
    ForEachPiece(r, [&](Group& g, const Run& piece) {
      Update(g, [&](BitmapAllocator& alloc) {
        alloc.StageFree(txn, piece);
        return 0;
      });
    });
  };
  if (!region_->HasKnownBad(run.start * au_size_, run.len * au_size_)) {
    free_run(run);
    OfferPairs(run);
    return;
  }
  // Bad AUs leave their owner but stay allocated, owned by `quarantined` (G4).
  uint64_t start = run.start;
  for (uint64_t a = run.start; a <= run.end(); ++a) {
    if (a < run.end() && !region_->HasKnownBad(a * au_size_, au_size_)) continue;
    if (a > start) free_run(Run{start, a - start});
    if (a < run.end()) StageOwner(txn, Run{a, 1}, Owner{OwnerKind::kQuarantined, 0, 0, 0});
    start = a + 1;
  }
}

uint64_t Space::StageQuarantineFree(Txn* txn, const Run& run) {
  uint64_t taken = 0;
  for (uint64_t a = run.start; a < run.end() && a < au_count_; ++a) {
    Group& g = GroupOf(a);
    const bool reserved = Update(g, [&](BitmapAllocator& alloc) {
      return !alloc.IsAllocated(a - g.base) && alloc.ReserveExact(a - g.base);
    });
    if (!reserved && !TakeFromPool(a)) continue;
    StageAllocAus(txn, Run{a, 1}, Owner{OwnerKind::kQuarantined, 0, 0, 0});
    ++taken;
  }
  return taken;
}

void Space::StageOwner(Txn* txn, const Run& run, const Owner& owner) const {
  if (run.len == 0) return;
  const RmapRecords recs = rmap_.Records(run.start, run.len, owner);
  txn->Write(recs.offset, recs.records.data(), recs.bytes());
}

void Space::RetireDevice(uint32_t d) {
  if (d + 1 >= device_groups_.size() || retired_[d].exchange(true)) return;
  for (size_t i = device_groups_[d]; i < device_groups_[d + 1]; ++i) {
    Group& g = *groups_[i];
    MutexLock lock(&g.mu);
    g.retired.store(true, std::memory_order_release);
    free_aus_.fetch_sub(g.alloc.free_count(), std::memory_order_relaxed);
  }
  // Pooled pairs with an AU there: out of the pool; the AU on a live device goes back.
  std::vector<Run> back;
  {
    MutexLock pool(&pool_mu_);
    std::vector<uint64_t> kept;
    for (uint64_t a : pair_pool_) {
      const uint64_t p = CopyAu(sb_, a);
      const bool a_gone = DeviceOfAu(sb_, a) == d, p_gone = DeviceOfAu(sb_, p) == d;
      if (!a_gone && !p_gone) {
        kept.push_back(a);
        continue;
      }
      // Both AUs go back to their groups: the one on device d stays out of every order
      // while retired, and is free again if the device comes back (RestoreDevice).
      back.push_back(Run{a, 1});
      back.push_back(Run{p, 1});
    }
    pair_pool_ = std::move(kept);
  }
  UnreserveAus(back);
}

void Space::RestoreDevice(uint32_t d) {
  if (d + 1 >= device_groups_.size() || !retired_[d].exchange(false)) return;
  for (size_t i = device_groups_[d]; i < device_groups_[d + 1]; ++i) {
    Group& g = *groups_[i];
    MutexLock lock(&g.mu);
    g.retired.store(false, std::memory_order_release);
    free_aus_.fetch_add(g.alloc.free_count(), std::memory_order_relaxed);
  }
}

bool Space::AuAllocated(uint64_t au) const {
  if (au >= au_count_) return true;  // past the end: as good as used
  const Group& g = GroupOf(au);
  MutexLock lock(&g.mu);
  return g.alloc.IsAllocated(au - g.base);
}

Result<uint64_t> Space::ReserveIno(uint64_t goal) {
  MutexLock lock(&mu_);
  UDAX_ASSIGN_OR_RETURN(std::vector<Run> runs, inos_.Reserve(1, goal, false));
  return runs[0].start;
}

void Space::UnreserveIno(uint64_t ino) {
  MutexLock lock(&mu_);
  inos_.Unreserve({Run{ino, 1}});
}

void Space::StageAllocIno(Txn* txn, uint64_t ino) {
  MutexLock lock(&mu_);
  inos_.StageAlloc(txn, Run{ino, 1});
}

void Space::StageFreeIno(Txn* txn, uint64_t ino) {
  MutexLock lock(&mu_);
  inos_.StageFree(txn, Run{ino, 1});
}

bool Space::InoAllocated(uint64_t ino) const {
  MutexLock lock(&mu_);
  return inos_.IsAllocated(ino);
}

uint64_t Space::free_inos() const {
  MutexLock lock(&mu_);
  return inos_.free_count();
}

Result<std::vector<OwnerRange>> Space::Owners(uint64_t phys, uint64_t len) const {
  return rmap_.Query(phys, len, [this](uint64_t au) { return AuAllocated(au); });
}

void Space::CopyBitmapBytes(OwnerKind which, uint64_t off, uint64_t n, uint8_t* dst) const {
  if (which == OwnerKind::kInodeBitmap) {
    MutexLock lock(&mu_);
    CopyOverlap(inos_.media_offset(), inos_.words(), inos_.media_bytes(), off, n, dst);
    return;
  }
  for (const auto& g : groups_) {
    MutexLock lock(&g->mu);
    CopyOverlap(g->alloc.media_offset(), g->alloc.words(), g->alloc.media_bytes(), off, n,
                dst);
  }
}

}  // namespace udax
