// multi_device_format_test.cc -- the geometry of a filesystem over several devices: the
// device table, where each device's share lies, and that no metadata pair shares a device.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "fs/format/layout.h"

namespace udax {
namespace {

Result<DiskSuperblock> Geometry(std::vector<uint64_t> sizes, uint64_t au = kAuSize4K) {
  MkfsParams p;
  p.au_size = au;
  p.device_sizes = std::move(sizes);
  auto sb = ComputeGeometry(p);
  if (sb.ok()) {
    for (uint32_t d = 0; d < sb->device_count; ++d) sb->devices[d].uuid[0] = static_cast<uint8_t>(d + 1);
    SuperblockSeal(&sb.value());
  }
  return sb;
}

TEST(MultiDeviceGeometry, SharesAreWholeUnitsEndToEnd) {
  // 100 MiB + 1 byte, 64 MiB, 70 MiB + 3 KiB: each rounded down to 2 MiB units.
  auto sb = Geometry({(100ull << 20) + 1, 64ull << 20, (70ull << 20) + 3072});
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_TRUE(IsMultiDevice(*sb));
  ASSERT_EQ(sb->device_count, 3u);
  EXPECT_EQ(sb->devices[0].start, 0u);
  EXPECT_EQ(sb->devices[0].length, 100ull << 20);
  EXPECT_EQ(sb->devices[1].start, 100ull << 20);
  EXPECT_EQ(sb->devices[1].length, 64ull << 20);
  EXPECT_EQ(sb->devices[2].start, 164ull << 20);
  EXPECT_EQ(sb->devices[2].length, 70ull << 20);
  EXPECT_EQ(sb->region_size, 234ull << 20);
  EXPECT_TRUE(SuperblockVerify(*sb, sb->region_size).ok());
  // Device of an offset, and each device's AU range.
  EXPECT_EQ(DeviceOfOffset(*sb, 0), 0u);
  EXPECT_EQ(DeviceOfOffset(*sb, (100ull << 20) - 1), 0u);
  EXPECT_EQ(DeviceOfOffset(*sb, 100ull << 20), 1u);
  EXPECT_EQ(DeviceOfOffset(*sb, sb->region_size - 1), 2u);
  EXPECT_EQ(DeviceFirstAu(*sb, 1), (100ull << 20) / 4096);
  EXPECT_EQ(DeviceEndAu(*sb, 2), sb->au_count);
  // Fixed metadata: the front on device 0, the second inode table on the last.
  EXPECT_LT(sb->data_off, sb->devices[0].length);
  EXPECT_EQ(DeviceOfOffset(*sb, sb->itable_off), 0u);
  EXPECT_EQ(DeviceOfOffset(*sb, sb->itable2_off), 2u);
}

TEST(MultiDeviceGeometry, EveryMetadataPairSpansTwoDevices) {
  for (auto sizes : {std::vector<uint64_t>{64ull << 20, 64ull << 20},
                     std::vector<uint64_t>{64ull << 20, 64ull << 20, 64ull << 20},
                     std::vector<uint64_t>{192ull << 20, 32ull << 20},
                     std::vector<uint64_t>{32ull << 20, 160ull << 20, 48ull << 20}}) {
    auto sb = Geometry(sizes);
    ASSERT_TRUE(sb.ok()) << sb.status().ToString();
    uint64_t paired = 0;
    for (uint64_t a = FirstDataAu(*sb); a < LastDataAu(*sb); ++a) {
      const uint64_t p = CopyAu(*sb, a);
      if (p == 0) continue;
      ++paired;
      ASSERT_NE(DeviceOfAu(*sb, a), DeviceOfAu(*sb, p)) << "AU " << a << " partner " << p;
      ASSERT_EQ(CopyAu(*sb, p), a);
    }
    // Equal devices pair every data AU; unequal ones at least the smaller device's.
    EXPECT_GE(paired, 2 * ((32ull << 20) / 4096) - 2 * (FirstDataAu(*sb) + 1));
  }
}

TEST(MultiDeviceGeometry, EachOtherDeviceBeginsWithASuperblockArea) {
  auto sb = Geometry({64ull << 20, 64ull << 20, 64ull << 20});
  ASSERT_TRUE(sb.ok());
  int copies = 0;
  for (const StaticArea& a : StaticAreas(*sb)) {
    if (a.kind == OwnerKind::kSuperblock && a.off != 0) {
      ++copies;
      EXPECT_EQ(DeviceOfOffset(*sb, a.off), static_cast<uint32_t>(copies));
      EXPECT_EQ(a.off, sb->devices[copies].start);
    }
  }
  EXPECT_EQ(copies, 2);
  // The copy each device holds names it and verifies on a device of its size alone.
  const DiskSuperblock copy = DeviceCopy(*sb, 2);
  EXPECT_EQ(copy.this_device, 2u);
  EXPECT_TRUE(DeviceSuperblockVerify(copy, 64ull << 20).ok());
  EXPECT_FALSE(DeviceSuperblockVerify(copy, 32ull << 20).ok());  // truncated device
  EXPECT_FALSE(RefuseLoneDevice(copy, 64ull << 20, 1).ok());
  EXPECT_TRUE(RefuseLoneDevice(copy, 64ull << 20, 3).ok());
}

TEST(MultiDeviceGeometry, StaticAreasLieInOrder) {
  // The fuzzer's invariant (tests/fuzz/fuzz_superblock.cc): a verified superblock's areas
  // are ascending and apart, the devices' superblock copies among them.
  auto sb = Geometry({64ull << 20, 64ull << 20, 64ull << 20});
  ASSERT_TRUE(sb.ok());
  uint64_t prev_end = 0;
  for (const StaticArea& a : StaticAreas(*sb)) {
    EXPECT_GE(a.off, prev_end);
    prev_end = a.off + a.len;
  }
  EXPECT_EQ(prev_end, sb->region_size);
}

TEST(MultiDeviceGeometry, Refusals) {
  MkfsParams p;
  p.device_sizes = {64ull << 20, 3ull << 20};  // under two units
  EXPECT_EQ(ComputeGeometry(p).status().code(), EINVAL);
  p.device_sizes = {64ull << 20, 64ull << 20};
  p.meta_copies = false;
  EXPECT_EQ(ComputeGeometry(p).status().code(), EINVAL);
  p.meta_copies = true;
  p.device_sizes.assign(kMaxDevices + 1, 64ull << 20);
  EXPECT_EQ(ComputeGeometry(p).status().code(), EINVAL);
  // Device 0 must hold the whole front of fixed metadata.
  p.device_sizes = {4ull << 20, 1ull << 30};
  EXPECT_EQ(ComputeGeometry(p).status().code(), EINVAL);
  // 2 MiB AUs: shares are whole 64-AU words (128 MiB).
  p.au_size = kAuSize2M;
  p.device_sizes = {200ull << 20, 200ull << 20};
  EXPECT_EQ(ComputeGeometry(p).status().code(), EINVAL);
  p.device_sizes = {256ull << 20, 300ull << 20};
  auto sb = ComputeGeometry(p);
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_EQ(sb->devices[1].length, 256ull << 20);
}

TEST(MultiDeviceGeometry, TheSecondInodeTableNeverCoversTheLastDevicesCopy) {
  // A small last device whose share would start exactly where the second inode table
  // does (a review found 64+64+4 MiB at 8460 bytes per inode): refused, or placed past it.
  int placed = 0;
  for (uint64_t bpi = 8192; bpi < 8800; bpi += 4) {
    MkfsParams p;
    p.bytes_per_inode = bpi;
    p.device_sizes = {64ull << 20, 64ull << 20, 4ull << 20};
    auto sb = ComputeGeometry(p);
    if (!sb.ok()) continue;
    EXPECT_GE(sb->itable2_off, sb->devices[2].start + sb->au_size) << bpi;
    const std::vector<StaticArea> areas = StaticAreas(*sb);
    for (size_t i = 0; i < areas.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        const StaticArea &a = areas[i], &b = areas[j];
        EXPECT_TRUE(a.off + a.len <= b.off || b.off + b.len <= a.off) << bpi;
      }
    }
    ++placed;
  }
  EXPECT_GT(placed, 0);  // the loop did meet the edge case
}

TEST(MultiDeviceGeometry, VerifyCatchesABadTable) {
  auto good = Geometry({64ull << 20, 64ull << 20});
  ASSERT_TRUE(good.ok());
  auto corrupt = [&](auto change) {
    DiskSuperblock sb = *good;
    change(&sb);
    SuperblockSeal(&sb);
    return SuperblockVerify(sb, sb.region_size);
  };
  EXPECT_TRUE(corrupt([](DiskSuperblock*) {}).ok());
  EXPECT_FALSE(corrupt([](DiskSuperblock* sb) { sb->devices[1].start += 4096; }).ok());
  EXPECT_FALSE(corrupt([](DiskSuperblock* sb) { sb->devices[1].length -= 2u << 20; }).ok());
  EXPECT_FALSE(corrupt([](DiskSuperblock* sb) { sb->this_device = 2; }).ok());
  EXPECT_FALSE(corrupt([](DiskSuperblock* sb) { sb->device_count = 1; }).ok());
  EXPECT_FALSE(corrupt([](DiskSuperblock* sb) { sb->device_count = 17; }).ok());
  EXPECT_FALSE(corrupt([](DiskSuperblock* sb) {
    std::memcpy(sb->devices[1].uuid, sb->devices[0].uuid, 16);
  }).ok());
  EXPECT_FALSE(corrupt([](DiskSuperblock* sb) { sb->devices[5].length = 1; }).ok());
  EXPECT_FALSE(corrupt([](DiskSuperblock* sb) {
    sb->feature_incompat &= ~kFeatureIncompatMultiDevice;
  }).ok());
}

// The lost runs (udaxctl replace-device): merged as they are added, the feature bit
// following them, bounded, and checked on every read of the superblock.
TEST(MultiDeviceGeometry, LostRunsMergeAndVerify) {
  DiskSuperblock sb = Geometry({64ull << 20, 64ull << 20}).value();
  const uint64_t first = FirstDataAu(sb);
  ASSERT_TRUE(AddLostRuns(&sb, {{first + 10, 2}, {first + 3, 4}, {first + 7, 1}, {first + 20, 5}}).ok());
  ASSERT_EQ(sb.lost_run_count, 3u);  // 3..8 joined (adjacent), 10..12, 20..25
  EXPECT_EQ(sb.lost_runs[0].au, first + 3);
  EXPECT_EQ(sb.lost_runs[0].count, 5u);
  EXPECT_EQ(sb.lost_runs[1].au, first + 10);
  EXPECT_EQ(sb.lost_runs[2].count, 5u);
  EXPECT_NE(sb.feature_incompat & kFeatureIncompatLostRuns, 0u);
  SuperblockSeal(&sb);
  EXPECT_TRUE(SuperblockVerify(sb, sb.region_size).ok());
  // Overlapping the existing ones: still three.
  ASSERT_TRUE(AddLostRuns(&sb, {{first + 11, 4}}).ok());
  EXPECT_EQ(sb.lost_run_count, 3u);
  EXPECT_EQ(sb.lost_runs[1].count, 5u);
  // More than fit: refused, unchanged.
  std::vector<DiskLostRun> many;
  for (uint64_t i = 0; i < kMaxLostRuns; ++i) many.push_back({first + 100 + 2 * i, 1});
  const DiskSuperblock before = sb;
  EXPECT_EQ(AddLostRuns(&sb, many).code(), ENOSPC);
  EXPECT_EQ(std::memcmp(&before, &sb, sizeof(sb)), 0);

  auto broken = [&](auto change) {
    DiskSuperblock bad = before;
    change(&bad);
    SuperblockSeal(&bad);
    return !SuperblockVerify(bad, bad.region_size).ok();
  };
  EXPECT_TRUE(broken([](DiskSuperblock* b) { b->feature_incompat &= ~kFeatureIncompatLostRuns; }));
  EXPECT_TRUE(broken([](DiskSuperblock* b) { b->lost_run_count = kMaxLostRuns + 1; }));
  EXPECT_TRUE(broken([](DiskSuperblock* b) { b->lost_runs[0].au = 0; }));  // static metadata
  EXPECT_TRUE(broken([](DiskSuperblock* b) { b->lost_runs[1].au = b->lost_runs[0].au; }));  // order
  EXPECT_TRUE(broken([](DiskSuperblock* b) { b->lost_runs[2].count = UINT64_MAX; }));  // wraps
  EXPECT_TRUE(broken([](DiskSuperblock* b) { b->lost_runs[2].count = 0; }));
  EXPECT_TRUE(broken([](DiskSuperblock* b) { b->lost_runs[5].au = 1; }));  // past the count
}

}  // namespace
}  // namespace udax
