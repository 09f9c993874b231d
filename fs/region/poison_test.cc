// poison_test.cc -- emulated poison: an image's badblocks list (state directory), as reads see it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fs/base/status_testing.h"
#include "fs/region/poison_map.h"
#include "fs/region/region.h"
#include "fs/format/disk_format.h"
#include "fs/format/badblock_list.h"

namespace udax {
namespace {

TEST(PoisonMapTest, EmptyMapFindsNothing) {
  PoisonMap m;
  EXPECT_TRUE(m.empty());
  EXPECT_FALSE(m.FirstOverlap(0, UINT64_MAX));
}

TEST(PoisonMapTest, OverlapsAtEdgesAndMerges) {
  PoisonMap m;
  m.Set({{4096, 512}, {0, 0}, {1024, 512}, {1536, 512}, {8192, 1024}});
  EXPECT_EQ(m.ranges(), (std::vector<RegionRange>{{1024, 1024}, {4096, 512}, {8192, 1024}}));
  EXPECT_FALSE(m.FirstOverlap(0, 1024));                   // ends right before
  EXPECT_EQ(*m.FirstOverlap(0, 1025), (RegionRange{1024, 1024}));
  EXPECT_EQ(*m.FirstOverlap(2047, 1), (RegionRange{1024, 1024}));
  EXPECT_FALSE(m.FirstOverlap(2048, 2048));                // between ranges
  EXPECT_EQ(*m.FirstOverlap(2048, 2049), (RegionRange{4096, 512}));
  EXPECT_EQ(*m.FirstOverlap(0, UINT64_MAX), (RegionRange{1024, 1024}));  // no wrap
  EXPECT_EQ(*m.FirstOverlap(9000, UINT64_MAX - 9000), (RegionRange{8192, 1024}));
  EXPECT_FALSE(m.FirstOverlap(9216, 100));
  EXPECT_FALSE(m.FirstOverlap(1500, 0));
  m.Set({});
  EXPECT_TRUE(m.empty());
}

class RegionPoisonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/dev/shm/udax_poison_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    image_ = dir_ + "/img";
    // The list lives in the state directory, keyed by the superblock UUID: give the
    // image a superblock's magic and UUID (all the key needs) and the test its own state
    // directory.
    const std::string state = dir_ + "/state";
    ASSERT_EQ(mkdir(state.c_str(), 0700), 0);
    setenv("UDAX_STATE_DIR", state.c_str(), 1);
    DiskSuperblock sb{};
    std::memcpy(sb.magic, kSuperMagic, sizeof(sb.magic));
    for (size_t i = 0; i < sizeof(sb.uuid); ++i) sb.uuid[i] = static_cast<uint8_t>(0xa0 + i);
    const int fd = open(image_.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, kSize), 0);
    ASSERT_EQ(pwrite(fd, &sb, sizeof(sb), 0), static_cast<ssize_t>(sizeof(sb)));
    close(fd);
    list_ = state + "/uuid-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf.badblocks";
  }
  void TearDown() override {
    unsetenv("UDAX_STATE_DIR");
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::unique_ptr<Region> Open(bool read_only = false) {
    RegionOptions o;
    o.create_size = kSize;
    o.read_only = read_only;
    o.lock = false;
    auto r = Region::Open(image_, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  void WriteList(const std::string& text) {
    std::ofstream(list_) << text;
  }
  static constexpr uint64_t kSize = 1 << 20;
  std::string dir_, image_, list_;
};

TEST_F(RegionPoisonTest, ListIsLoadedAtOpenAndReadsOfItFail) {
  {
    auto r = Open();  // fill the image, all but its superblock (the state's key)
    std::vector<uint8_t> data(kSize - 4096, 0xab);
    ASSERT_OK(r->WriteSafe(4096, data.data(), data.size(), true));
  }
  WriteList("# test\n16 2\n");  // bytes [8192, 9216)
  auto r = Open();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->badblocks_path(), list_);
  EXPECT_EQ(r->EmulatedPoison(), (std::vector<RegionRange>{{8192, 1024}}));

  std::vector<MediaFault> heard;
  r->set_fault_listener([&](const MediaFault& f) { heard.push_back(f); });
  std::vector<uint8_t> buf(4096);
  MediaFault fault;
  Status st = r->ReadSafe(8192 + 1000, buf.data(), 100, &fault);
  EXPECT_EQ(st.code(), EIO) << st.ToString();
  EXPECT_NE(st.message().find("emulated poison"), std::string::npos) << st.message();
  EXPECT_EQ(fault.offset, 8192u);
  EXPECT_EQ(fault.length, 1024u);
  EXPECT_EQ(fault.si_code, BUS_MCEERR_AR);
  ASSERT_EQ(heard.size(), 1u);
  EXPECT_EQ(heard[0].offset, 8192u);

  // Neighbours read fine, right up to the poisoned bytes.
  ASSERT_OK(r->ReadSafe(4096, buf.data(), 4096));
  EXPECT_EQ(buf[0], 0xab);
  ASSERT_OK(r->ReadSafe(9216, buf.data(), 4096));
  EXPECT_EQ(r->ReadSafe(4096, buf.data(), 4097).code(), EIO);
  EXPECT_EQ(heard.size(), 2u);
  // Writes are not reads: they do not consume poison (nor clear it).
  ASSERT_OK(r->WriteSafe(8192, buf.data(), 1024, true));
  EXPECT_EQ(r->ReadSafe(8192, buf.data(), 1).code(), EIO);
}

TEST_F(RegionPoisonTest, NoListMeansNoPoisonAndDevicesHaveNoListPath) {
  auto r = Open();
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->EmulatedPoison().empty());
  std::vector<uint8_t> buf(kSize);
  ASSERT_OK(r->ReadSafe(0, buf.data(), buf.size()));
}

TEST_F(RegionPoisonTest, MalformedListRefusesToOpen) {
  Open();
  WriteList("16 2\nsixteen 2\n");
  RegionOptions o;
  o.lock = false;
  auto r = Region::Open(image_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EINVAL);
  EXPECT_NE(r.status().message().find(list_ + ":2:"), std::string::npos) << r.status().message();
}

TEST_F(RegionPoisonTest, RangesPastTheEndAreClipped) {
  Open();
  WriteList("2046 10\n999999 1\n");  // 2048 sectors in 1 MiB
  auto r = Open();
  EXPECT_EQ(r->EmulatedPoison(), (std::vector<RegionRange>{{2046 * 512, 1024}}));
}

TEST_F(RegionPoisonTest, SetAndReloadReplaceThePoison) {
  auto r = Open();
  std::vector<uint8_t> buf(512);
  BadblockList l;
  l.Add(1, 1);
  r->SetEmulatedPoison(l);
  EXPECT_EQ(r->ReadSafe(512, buf.data(), 1).code(), EIO);
  WriteList("3 1\n");
  ASSERT_OK(r->ReloadEmulatedPoison());
  ASSERT_OK(r->ReadSafe(512, buf.data(), 512));
  EXPECT_EQ(r->ReadSafe(1536, buf.data(), 1).code(), EIO);
  // A malformed list is refused and the poison in force stays.
  WriteList("3\n");
  EXPECT_EQ(r->ReloadEmulatedPoison().code(), EINVAL);
  EXPECT_EQ(r->ReadSafe(1536, buf.data(), 1).code(), EIO);
}

TEST_F(RegionPoisonTest, ClearTakesWholeBlocksOnlyAndUpdatesTheFile) {
  Open();
  WriteList("8 4\n100 1\n");  // bytes [4096, 6144) and [51200, 51712)
  auto r = Open();
  BadblockList cleared;
  // [4096+100, 6144): block 8 is partly outside, blocks 9..11 are whole.
  ASSERT_OK(r->ClearEmulatedPoison(4096 + 100, 2048 - 100, &cleared));
  ASSERT_EQ(cleared.ranges().size(), 1u);
  EXPECT_EQ(cleared.ranges()[0], (BadblockRange{9, 3}));
  EXPECT_EQ(r->EmulatedPoison(), (std::vector<RegionRange>{{4096, 512}, {51200, 512}}));
  auto file = ReadBadblockListFile(list_);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->ranges(), (std::vector<BadblockRange>{{8, 1}, {100, 1}}));
  // A range with no whole block clears nothing; clearing the rest removes the file.
  ASSERT_OK(r->ClearEmulatedPoison(4097, 511, &cleared));
  EXPECT_TRUE(cleared.empty());
  ASSERT_OK(r->ClearEmulatedPoison(0, kSize, &cleared));
  EXPECT_EQ(cleared.sector_count(), 2u);
  EXPECT_TRUE(r->EmulatedPoison().empty());
  EXPECT_FALSE(std::filesystem::exists(list_));
  EXPECT_EQ(r->ClearEmulatedPoison(kSize, 1).code(), EINVAL);
}

TEST_F(RegionPoisonTest, LatentPoisonFailsReadsAndIsKnownOnlyOnceFound) {
  Open();
  const std::string latent = list_.substr(0, list_.size() - std::string(".badblocks").size()) + ".latent";
  std::ofstream(latent) << "16 1\n40 2\n";  // bytes [8192, 8704) and [20480, 21504)
  auto r = Open();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->latent_path(), latent);
  // Nothing announced it: not known bad, but a read of it fails all the same.
  EXPECT_FALSE(r->HasKnownBad(0, kSize));
  EXPECT_TRUE(r->EmulatedPoison().empty());
  EXPECT_EQ(r->LatentPoison(), (std::vector<RegionRange>{{8192, 512}, {20480, 1024}}));
  std::vector<uint8_t> buf(4096);
  MediaFault fault;
  {
    FaultOrigin origin("test");
    EXPECT_EQ(r->ReadSafe(8000, buf.data(), 1000, &fault).code(), EIO);
  }
  EXPECT_EQ(fault.offset, 8192u);
  EXPECT_EQ(fault.length, 512u);
  EXPECT_STREQ(fault.origin, "test");
  EXPECT_EQ(FaultOrigin::current(), nullptr);
  // Found (the media handler marks it): known from then on, no longer latent.
  r->MarkKnownBad({8192, 512});
  r->MarkKnownBad({0, 4096});  // not latent: an image's list is the whole truth
  EXPECT_EQ(r->KnownBadIn(0, kSize), (std::vector<RegionRange>{{8192, 512}}));
  EXPECT_EQ(r->LatentPoison(), (std::vector<RegionRange>{{20480, 1024}}));
  // The announced list changing does not forget what was found.
  BadblockList announced;
  announced.Add(100, 1);
  r->SetEmulatedPoison(announced);
  EXPECT_EQ(r->KnownBadIn(0, kSize), (std::vector<RegionRange>{{8192, 512}, {51200, 512}}));
  // Clearing a found latent block (a rewrite) takes it out of the latent file too.
  BadblockList cleared;
  ASSERT_OK(r->ClearEmulatedPoison(8192, 512, &cleared));
  EXPECT_EQ(cleared.ranges(), (std::vector<BadblockRange>{{16, 1}}));
  auto file = ReadBadblockListFile(latent);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->ranges(), (std::vector<BadblockRange>{{40, 2}}));
  ASSERT_OK(r->ReadSafe(8192, buf.data(), 512));
  // Uninjected (the latent list emptied): healthy again.
  r->SetLatentPoison(BadblockList());
  EXPECT_TRUE(r->LatentPoison().empty());
  ASSERT_OK(r->ReadSafe(20480, buf.data(), 1024));
}

TEST_F(RegionPoisonTest, AFaultNamesTheFirstBadRangeKnownOrLatent) {
  Open();
  const std::string latent = list_.substr(0, list_.size() - std::string(".badblocks").size()) + ".latent";
  std::ofstream(latent) << "16 1\n";  // [8192, 8704), latent
  WriteList("40 1\n");                // [20480, 20992), announced
  auto r = Open();
  std::vector<uint8_t> buf(32768);
  MediaFault fault;
  // A verify pass steps over what the fault names: the latent range comes first.
  EXPECT_EQ(r->ReadSafe(0, buf.data(), buf.size(), &fault).code(), EIO);
  EXPECT_EQ(fault.offset, 8192u);
  EXPECT_EQ(r->ReadSafe(8704, buf.data(), 16384, &fault).code(), EIO);
  EXPECT_EQ(fault.offset, 20480u);
  EXPECT_TRUE(r->HasEmulatedPoison(8192, 1));
  EXPECT_FALSE(r->HasKnownBad(8192, 1));
}

TEST_F(RegionPoisonTest, ClearOnReadOnlyRegionIsRefused) {
  Open();
  WriteList("8 1\n");
  auto r = Open(/*read_only=*/true);
  EXPECT_EQ(r->ClearEmulatedPoison(4096, 512).code(), EROFS);
  EXPECT_EQ(r->EmulatedPoison().size(), 1u);
}

// Readers on other threads while the poison changes: each read either fails on the
// poisoned range or succeeds, never crashes; the check is lock-free when empty.
TEST_F(RegionPoisonTest, ConcurrentReadsWhilePoisonChanges) {
  auto r = Open();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> eio{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      std::vector<uint8_t> buf(1024);
      while (!stop.load()) {
        if (r->ReadSafe(8192, buf.data(), buf.size()).code() == EIO) eio.fetch_add(1);
      }
    });
  }
  BadblockList on, off;
  on.Add(16, 1);
  for (int i = 0; i < 2000; ++i) r->SetEmulatedPoison(i % 2 ? off : on);
  r->SetEmulatedPoison(on);
  std::vector<uint8_t> buf(16);
  EXPECT_EQ(r->ReadSafe(8192, buf.data(), 16).code(), EIO);
  stop = true;
  for (auto& t : readers) t.join();
}

}  // namespace
}  // namespace udax
