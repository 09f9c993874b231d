// bitmap_alloc_test.cc -- the allocator: reservations, contiguity, ENOSPC, free.
#include "fs/core/bitmap_alloc.h"

#include "fs/core/core_test_util.h"

namespace udax {
namespace {

class BitmapAllocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RegionOptions ro;
    ro.create_size = 1 << 20;
    path_ = "/dev/shm/udax_bitmap_test_" + std::to_string(getpid());
    unlink(path_.c_str());
    region_ = std::move(Region::Open(path_, ro)).value();
    ASSERT_OK(alloc_.Load(*region_, 0, 1000, 10, 990));
  }
  void TearDown() override { unlink(path_.c_str()); }
  std::string path_;
  std::unique_ptr<Region> region_;
  BitmapAllocator alloc_;
};

TEST_F(BitmapAllocTest, ReservesContiguouslyFromGoal) {
  EXPECT_EQ(alloc_.free_count(), 980u);
  auto runs = Must(alloc_.Reserve(100, 200, false));
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].start, 200u);
  EXPECT_EQ(runs[0].len, 100u);
  EXPECT_EQ(alloc_.free_count(), 880u);
  // Reserved bits are not handed out twice.
  auto more = Must(alloc_.Reserve(10, 250, false));
  EXPECT_EQ(more[0].start, 300u);
  alloc_.Unreserve(runs);
  EXPECT_EQ(alloc_.free_count(), 970u);
}

TEST_F(BitmapAllocTest, StageAllocPersistsThroughTxnAndFreeReturnsSpace) {
  Txn txn;
  auto runs = Must(alloc_.Reserve(5, 64, false));
  alloc_.StageAlloc(&txn, runs[0]);
  EXPECT_TRUE(alloc_.IsAllocated(64));
  EXPECT_EQ(txn.nrec(), 1u);
  uint64_t word;
  ASSERT_OK(txn.Read(*region_, 8, &word, 8));
  EXPECT_EQ(word, 0x1full);
  alloc_.StageFree(&txn, udax::Run{65, 2});
  ASSERT_OK(txn.Read(*region_, 8, &word, 8));
  EXPECT_EQ(word, 0x19ull);
  EXPECT_EQ(alloc_.free_count(), 977u);
}

TEST_F(BitmapAllocTest, NoSpaceAndPartial) {
  auto all = Must(alloc_.Reserve(980, 0, false));
  EXPECT_EQ(alloc_.free_count(), 0u);
  EXPECT_EQ(alloc_.Reserve(1, 0, true).status().code(), ENOSPC);
  alloc_.Unreserve({udax::Run{500, 3}});
  EXPECT_EQ(alloc_.Reserve(5, 0, false).status().code(), ENOSPC);
  auto some = Must(alloc_.Reserve(5, 0, true));
  ASSERT_EQ(some.size(), 1u);
  EXPECT_EQ(some[0].start, 500u);
  EXPECT_EQ(some[0].len, 3u);
  // Bits outside [lo, hi) are never handed out.
  for (const udax::Run& r : all) {
    EXPECT_GE(r.start, 10u);
    EXPECT_LE(r.end(), 990u);
  }
}

}  // namespace
}  // namespace udax
