// journal_test.cc -- redo journal: commit, replay after a crash at each point, torn logs.
#include "fs/core/journal.h"

#include <cstring>

#include "fs/core/core_test_util.h"

namespace udax {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = "/dev/shm/udax_journal_test_" + std::to_string(getpid());
    unlink(path_.c_str());
    RegionOptions ro;
    ro.create_size = 64ull << 20;
    region_ = std::move(Region::Open(path_, ro)).value();
    MkfsParams p;
    p.region_size = region_->size();
    sb_ = Must(ComputeGeometry(p));
  }
  void TearDown() override { unlink(path_.c_str()); }
  uint64_t Peek(uint64_t off) {
    uint64_t v;
    EXPECT_OK(region_->ReadSafe(off, &v, 8));
    return v;
  }
  std::string path_;
  std::unique_ptr<Region> region_;
  DiskSuperblock sb_;
};

TEST_F(JournalTest, TxnMergesOverlappingWritesAndReadsThrough) {
  Txn txn;
  const uint64_t a = 0x1111111111111111, b = 0x2222222222222222;
  txn.WriteObj(sb_.itable_off, a);
  txn.WriteObj(sb_.itable_off + 8, b);
  txn.WriteObj(sb_.itable_off + 4, uint32_t{0x33333333});
  EXPECT_EQ(txn.nrec(), 1u);
  uint8_t buf[16];
  ASSERT_OK(txn.Read(*region_, sb_.itable_off, buf, 16));
  uint64_t x, y;
  std::memcpy(&x, buf, 8);
  std::memcpy(&y, buf + 8, 8);
  EXPECT_EQ(x, 0x3333333311111111ull);
  EXPECT_EQ(y, b);
  EXPECT_EQ(Peek(sb_.itable_off), 0u);  // nothing reaches media before commit
}

TEST_F(JournalTest, CommitAppliesAndReplayIsIdempotent) {
  Journal j(region_.get(), sb_);
  Txn txn;
  txn.WriteObj(sb_.itable_off, uint64_t{42});
  txn.WriteObj(sb_.abitmap_off + 64, uint64_t{7});
  ASSERT_OK(j.Commit(txn));
  EXPECT_EQ(Peek(sb_.itable_off), 42u);
  EXPECT_EQ(Peek(sb_.abitmap_off + 64), 7u);
  Journal j2(region_.get(), sb_);
  EXPECT_TRUE(Must(j2.Replay()));
  EXPECT_EQ(Peek(sb_.itable_off), 42u);
  // After a clean unmount retires the slot, an edit made offline is not replayed over.
  ASSERT_OK(j2.Retire());
  ASSERT_OK(region_->WriteSafe(sb_.itable_off, "\x05\0\0\0\0\0\0\0", 8, true));
  Journal j3(region_.get(), sb_);
  EXPECT_FALSE(Must(j3.Replay()));
  EXPECT_EQ(Peek(sb_.itable_off), 5u);
}

TEST_F(JournalTest, CrashAfterCommitWordIsReplayed) {
  Journal j(region_.get(), sb_);
  Txn txn;
  txn.WriteObj(sb_.itable_off, uint64_t{99});
  ASSERT_OK(j.Commit(txn, CrashPoint::kAfterCommitWord));
  EXPECT_EQ(Peek(sb_.itable_off), 0u);  // committed but never applied
  Journal after(region_.get(), sb_);
  EXPECT_TRUE(Must(after.NeedsReplay()));
  EXPECT_TRUE(Must(after.Replay()));
  EXPECT_FALSE(Must(after.NeedsReplay()));
  EXPECT_EQ(Peek(sb_.itable_off), 99u);
  // The next transaction continues the sequence.
  Txn next;
  next.WriteObj(sb_.itable_off, uint64_t{100});
  ASSERT_OK(after.Commit(next));
  EXPECT_EQ(after.seq(), j.seq() + 1);
}

TEST_F(JournalTest, CrashBeforeCommitWordIsDiscarded) {
  Journal j(region_.get(), sb_);
  Txn first;
  first.WriteObj(sb_.itable_off, uint64_t{1});
  ASSERT_OK(j.Commit(first));
  Txn txn;
  txn.WriteObj(sb_.itable_off, uint64_t{2});
  txn.WriteObj(sb_.itable_off + 4096, uint64_t{3});
  ASSERT_OK(j.Commit(txn, CrashPoint::kAfterLog));
  Journal after(region_.get(), sb_);
  EXPECT_FALSE(Must(after.Replay()));
  EXPECT_EQ(Peek(sb_.itable_off), 1u);
  EXPECT_EQ(Peek(sb_.itable_off + 4096), 0u);
}

TEST_F(JournalTest, TornLogWithStaleCommitWordIsNotReplayed) {
  Journal j(region_.get(), sb_);
  Txn txn;
  txn.WriteObj(sb_.itable_off, uint64_t{5});
  ASSERT_OK(j.Commit(txn));
  // Flip one byte of the record data: the CRC no longer matches.
  const uint64_t data_off = sb_.journal_off + kBlockSize + sizeof(DiskTxnHeader) +
                            sizeof(DiskTxnRecord);
  uint8_t byte;
  ASSERT_OK(region_->ReadSafe(data_off, &byte, 1));
  byte ^= 0xff;
  ASSERT_OK(region_->WriteSafe(data_off, &byte, 1, true));
  ASSERT_OK(region_->WriteSafe(sb_.itable_off, "\0\0\0\0\0\0\0\0", 8, true));
  Journal after(region_.get(), sb_);
  EXPECT_FALSE(Must(after.Replay()));
  EXPECT_EQ(Peek(sb_.itable_off), 0u);
}

TEST_F(JournalTest, RejectsOversizedTransaction) {
  Journal j(region_.get(), sb_);
  Txn txn;
  std::vector<uint8_t> big(j.capacity() + 1);
  txn.Write(sb_.data_off, big.data(), big.size());
  EXPECT_EQ(j.Commit(txn).code(), EFBIG);
}

}  // namespace
}  // namespace udax
