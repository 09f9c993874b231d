// space_test.cc -- Space: allocation groups, their free count, spilling between groups,
// quarantine across a group boundary, reservations from several threads at once, and
// writers racing metadata operations for the last free AUs.
#include "fs/core/space.h"

#include <fcntl.h>

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
  EXPECT_EQ(space_.free_aus(), fs_->StatFs().f_bavail);
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

// Allocating writes reserve AUs without the metadata lock, while metadata operations
// count free space under it and allocate later (HoldAus). Fill a small filesystem from
// four writers and a thread of namespace, attribute and fallocate calls at once: every
// call either works or fails cleanly, and the maps agree at the end, before and after a
// remount (no half-staged transaction, no leaked or doubly owned AU).
TEST(SpaceRace, WritersAndMetadataFillingTheFilesystemLeaveItConsistent) {
  const Caller root{0, 0};
  TestImage img(16ull << 20, kAuSize4K);
  auto problems = [](Filesystem* fs) {
    const CheckReport maps = Must(fs->checker().CrossCheckMaps());
    const CheckReport names = Must(fs->checker().CheckNamespace());
    for (const auto& m : maps.messages) ADD_FAILURE() << m;
    for (const auto& m : names.messages) ADD_FAILURE() << m;
    return maps.problems + names.problems;
  };
  {
    auto fs = img.Mount();
    std::vector<Inode*> files;
    for (int w = 0; w < 4; ++w) {
      const uint64_t ino =
          Must(fs->Mknod(kRootIno, "w" + std::to_string(w), S_IFREG | 0644, 0, root)).ino;
      files.push_back(Must(fs->Open(ino, O_RDWR)));
    }
    const std::string block(4096, 'x');
    auto writer = [&](Inode* f) {
      // A hole after every block: each write is an extent of its own, so the extent map
      // keeps growing blocks too.
      for (uint64_t i = 0, failures = 0; failures < 20 && i < 100000; ++i) {
        auto n = fs->Write(f, i * 8192, block.data(), block.size());
        if (!n.ok()) {
          EXPECT_EQ(n.status().code(), ENOSPC) << n.status().message();
          ++failures;
        }
      }
    };
    std::vector<std::thread> writers;
    for (Inode* f : files) writers.emplace_back(writer, f);
    uint64_t failures = 0;
    for (int i = 0; failures < 40 && i < 5000; ++i) {
      auto d = fs->Mkdir(kRootIno, "d" + std::to_string(i), 0755, root);
      if (!d.ok()) {
        EXPECT_EQ(d.status().code(), ENOSPC) << d.status().message();
        ++failures;
        continue;
      }
      auto f = fs->Mknod(d->ino, "f", S_IFREG | 0644, 0, root);
      if (!f.ok()) {
        EXPECT_EQ(f.status().code(), ENOSPC) << f.status().message();
        ++failures;
        continue;
      }
      Status st = fs->SetXattr(f->ino, "user.big", std::string(6000, 'v'), 0, root);
      if (!st.ok()) {
        EXPECT_EQ(st.code(), ENOSPC) << st.message();
        ++failures;
      }
      Inode* fi = Must(fs->Open(f->ino, O_RDWR));
      st = fs->Fallocate(fi, 0, 0, 3 * 4096);
      if (!st.ok()) {
        EXPECT_EQ(st.code(), ENOSPC) << st.message();
        ++failures;
      }
      fs->Release(fi);
    }
    for (auto& w : writers) w.join();
    for (Inode* f : files) fs->Release(f);
    EXPECT_GT(failures, 0u) << "the filesystem never filled up";
    EXPECT_EQ(problems(fs.get()), 0u);
    ASSERT_OK(fs->Unmount());
  }
  auto fs = img.Mount();
  EXPECT_EQ(problems(fs.get()), 0u);
}

// A hold lasts as long as its critical section: what an operation held and did not use
// goes back when it releases mu_, whichever way it took it. SetXattr holds an extent
// block on top of a two-AU blob for a file whose inline slots are nearly full; the blob
// lands in one run and needs no block, so one AU is left over. An allocating write (no
// mu_) right after must see it free: its short write is as long as after a StatFs,
// whose MetaLock would return a leftover hold.
TEST(SpaceHolds, GoBackWhenTheCriticalSectionEnds) {
  auto longest_write = [](bool statfs_between) -> size_t {
    const Caller root{0, 0};
    TestImage img(16ull << 20, kAuSize4K);
    auto fs = img.Mount();
    const uint64_t f = Must(fs->Mknod(kRootIno, "f", S_IFREG | 0644, 0, root)).ino;
    const uint64_t g = Must(fs->Mknod(kRootIno, "g", S_IFREG | 0644, 0, root)).ino;
    Inode* fi = Must(fs->Open(f, O_RDWR));
    Inode* gi = Must(fs->Open(g, O_RDWR));
    const std::string block(4096, 'x');
    for (uint32_t i = 0; i + 1 < kInlineExtents; ++i) {
      EXPECT_EQ(Must(fs->Write(fi, i * 8192ull, block.data(), block.size())), block.size());
    }
    EXPECT_OK(fs->SetXattr(f, "user.v", std::string(6000, 'v'), 0, root));
    if (statfs_between) fs->StatFs();
    const std::string big(32u << 20, 'y');
    const size_t n = Must(fs->Write(gi, 0, big.data(), big.size()));
    fs->Release(fi);
    fs->Release(gi);
    EXPECT_OK(fs->Unmount());
    return n;
  };
  const size_t after_statfs = longest_write(true);
  EXPECT_GT(after_statfs, 0u);
  EXPECT_EQ(longest_write(false), after_statfs);
}

}  // namespace
}  // namespace udax
