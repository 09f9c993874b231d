// space_test.cc -- Space: allocation groups, their free count, spilling between groups,
// quarantine across a group boundary, and reservations from several threads at once.
#include "fs/core/space.h"

#include <set>
#include <thread>

#include "fs/core/core_test_util.h"
#include "fs/format/layout.h"

namespace udax {
namespace {

class SpaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs_ = image_.Mount();  // a formatted region; this Space only reserves and stages
    sb_ = fs_->superblock();
    ASSERT_OK(space_.Load(fs_->region(), sb_));
  }
  uint64_t GroupAus() const { return sb_.au_count / space_.group_count(); }
  TestImage image_{64ull << 20, kAuSize4K};  // 16384 AUs: 16 groups of 1024
  std::unique_ptr<Filesystem> fs_;
  DiskSuperblock sb_{};
  Space space_;
};

TEST_F(SpaceTest, CutsTheBitmapIntoGroupsOfWholeWords) {
  EXPECT_EQ(space_.group_count(), Space::kMaxGroups);
  EXPECT_EQ(GroupAus() % 64, 0u);
  EXPECT_EQ(space_.free_aus(), fs_->StatFs().f_bfree);
  // A small filesystem is one group.
  TestImage small(128ull << 20, kAuSize2M);  // 64 AUs
  auto fs = small.Mount();
  Space one;
  ASSERT_OK(one.Load(fs->region(), fs->superblock()));
  EXPECT_EQ(one.group_count(), 1u);
}

TEST_F(SpaceTest, OwnersWithoutAGoalLandInTheirOwnGroups) {
  const uint64_t g = GroupAus();
  auto a = Must(space_.ReserveAus(4, 0, 3));
  auto b = Must(space_.ReserveAus(4, 0, 5));
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].start / g, 3u);
  EXPECT_EQ(b[0].start / g, 5u);
  // A goal wins over the owner's group, so a file stays contiguous.
  auto c = Must(space_.ReserveAus(2, a[0].end(), 5));
  EXPECT_EQ(c[0].start, a[0].end());
  const uint64_t free = space_.free_aus();
  space_.UnreserveAus(a);
  space_.UnreserveAus(b);
  space_.UnreserveAus(c);
  EXPECT_EQ(space_.free_aus(), free + 10);
}

TEST_F(SpaceTest, SpillsIntoOtherGroupsAndGivesEverythingBack) {
  const uint64_t free = space_.free_aus();
  // More than one group holds: it comes from several, and nothing is handed out twice.
  auto runs = Must(space_.ReserveAus(3 * GroupAus(), 0, 7));
  uint64_t total = 0;
  std::set<uint64_t> seen;
  for (const udax::Run& r : runs) {
    total += r.len;
    for (uint64_t a = r.start; a < r.end(); ++a) EXPECT_TRUE(seen.insert(a).second);
  }
  EXPECT_EQ(total, 3 * GroupAus());
  EXPECT_EQ(space_.free_aus(), free - total);
  // Asking for more than is free fails whole, with nothing left reserved.
  EXPECT_EQ(space_.ReserveAus(space_.free_aus() + 1, 0, 0).status().code(), ENOSPC);
  space_.UnreserveAus(runs);
  EXPECT_EQ(space_.free_aus(), free);
  // All of it, in one call, from every group.
  auto all = Must(space_.ReserveAus(free, 0, 0));
  EXPECT_EQ(space_.free_aus(), 0u);
  EXPECT_EQ(space_.ReserveAus(1, 0, 0).status().code(), ENOSPC);
  space_.UnreserveAus(all);
  EXPECT_EQ(space_.free_aus(), free);
}

TEST_F(SpaceTest, StagesRunsThatCrossAGroupBoundary) {
  const uint64_t boundary = 4 * GroupAus();
  ASSERT_FALSE(space_.AuAllocated(boundary - 2));
  // A reservation stays in its group (it wraps around inside it), so two are needed.
  auto below = Must(space_.ReserveAus(2, boundary - 2, 0));
  auto above = Must(space_.ReserveAus(2, boundary, 0));
  ASSERT_EQ(below.size(), 1u);
  ASSERT_EQ(above.size(), 1u);
  EXPECT_EQ(below[0].start, boundary - 2);
  EXPECT_EQ(above[0].start, boundary);
  const uint64_t free = space_.free_aus();
  Txn txn;
  const udax::Run run{boundary - 2, 4};
  space_.StageAllocAus(&txn, run, Owner{OwnerKind::kFileData, 9, 1, 0});
  for (uint64_t a = run.start; a < run.end(); ++a) EXPECT_TRUE(space_.AuAllocated(a));
  EXPECT_EQ(space_.free_aus(), free);  // reserved, now allocated: no change
  // The staged bitmap bytes are the ones a media repair would rewrite from.
  std::vector<uint8_t> bytes(16);
  const uint64_t at = sb_.abitmap_off + (boundary - 64) / 8;
  space_.CopyBitmapBytes(OwnerKind::kAuBitmap, at, bytes.size(), bytes.data());
  EXPECT_EQ(bytes[7] >> 6, 3);  // the two AUs below the boundary
  EXPECT_EQ(bytes[8] & 3, 3);   // the two from it
  space_.StageFreeAus(&txn, run);
  for (uint64_t a = run.start; a < run.end(); ++a) EXPECT_FALSE(space_.AuAllocated(a));
  EXPECT_EQ(space_.free_aus(), free + 4);
  // Quarantine of free AUs across the boundary takes them all, once.
  EXPECT_EQ(space_.StageQuarantineFree(&txn, run), 4u);
  EXPECT_EQ(space_.StageQuarantineFree(&txn, run), 0u);
  EXPECT_EQ(space_.free_aus(), free);
}

TEST_F(SpaceTest, ThreadsReserveInParallelWithoutSharingAnAu) {
  const uint64_t free = space_.free_aus();
  constexpr int kThreads = 4, kRounds = 2000;
  std::vector<std::vector<udax::Run>> kept(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        auto runs = space_.ReserveAus(1 + i % 3, 0, t + i);
        if (!runs.ok()) continue;
        if (i % 2 == 0) {
          space_.UnreserveAus(*runs);
        } else {
          kept[t].insert(kept[t].end(), runs->begin(), runs->end());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint64_t> seen;
  uint64_t held = 0;
  for (const auto& runs : kept) {
    for (const udax::Run& r : runs) {
      held += r.len;
      for (uint64_t a = r.start; a < r.end(); ++a) ASSERT_TRUE(seen.insert(a).second) << a;
    }
  }
  EXPECT_EQ(space_.free_aus(), free - held);
  for (const auto& runs : kept) space_.UnreserveAus(runs);
  EXPECT_EQ(space_.free_aus(), free);
}

}  // namespace
}  // namespace udax
