// badblock_list_test.cc -- the list format, set operations and the atomic file updates.
#include "fs/format/badblock_list.h"

#include <sys/wait.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "notify/test_util.h"

namespace udax {
namespace {

using Ranges = std::vector<BadblockRange>;

BadblockList MustParse(const std::string& text) {
  auto r = BadblockList::Parse(text, "t");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : BadblockList();
}

TEST(BadblockListTest, ParsesKernelSysfsText) {
  // As /sys/block/pmem0/badblocks prints it: unsorted is allowed, overlaps merge.
  BadblockList l = MustParse("4104 8\n8 1\n4096 8\n9 7\n");
  EXPECT_EQ(l.ranges(), (Ranges{{8, 8}, {4096, 16}}));
  EXPECT_EQ(l.sector_count(), 24u);
  EXPECT_TRUE(MustParse("").empty());
  EXPECT_TRUE(MustParse("\n\n").empty());
}

TEST(BadblockListTest, ParsesItsOwnFileForm) {
  BadblockList l;
  l.Add(100, 3);
  l.Add(7, 1);
  const std::string text = l.ToText();
  EXPECT_EQ(text.substr(0, 1), "#");
  EXPECT_NE(text.find("\n7 1\n100 3\n"), std::string::npos) << text;
  EXPECT_EQ(MustParse(text), l);
  EXPECT_EQ(MustParse("  # comment\n\t12   4 \r\n"), MustParse("12 4\n"));
  EXPECT_EQ(MustParse("12 4"), MustParse("12 4\n"));  // no final newline
}

TEST(BadblockListTest, RejectsBadInputNamingTheLine) {
  const char* bad[] = {"12\n",        "12 0\n",      "12 4 5\n",   "-1 4\n",     "0x10 4\n",
                       "12 +4\n",     "a b\n",       "12,4\n",     "99999999999999999999 1\n",
                       "36028797018963967 2\n"};  // past kMaxBadblockSector
  for (const char* text : bad) {
    auto r = BadblockList::Parse(std::string("1 1\n") + text, "LIST");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), EINVAL);
    EXPECT_EQ(r.status().message().rfind("LIST:2: ", 0), 0u) << r.status().message();
  }
  EXPECT_TRUE(BadblockList::Parse("36028797018963966 1\n", "x").ok());
}

TEST(BadblockListTest, AddMergesOverlappingAndAdjacent) {
  BadblockList l;
  l.Add(10, 5);   // 10..14
  l.Add(20, 5);   // 20..24
  l.Add(15, 5);   // fills the gap exactly
  EXPECT_EQ(l.ranges(), (Ranges{{10, 15}}));
  l.Add(0, 1);
  l.Add(12, 2);   // inside
  l.Add(30, 1);
  EXPECT_EQ(l.ranges(), (Ranges{{0, 1}, {10, 15}, {30, 1}}));
  l.Add(1, 40);   // swallows everything after 0
  EXPECT_EQ(l.ranges(), (Ranges{{0, 41}}));
}

TEST(BadblockListTest, RemoveSplitsAndMinusDiffs) {
  BadblockList l = MustParse("10 10\n30 5\n");
  l.Remove(12, 2);
  EXPECT_EQ(l.ranges(), (Ranges{{10, 2}, {14, 6}, {30, 5}}));
  l.Remove(0, 11);
  l.Remove(33, 100);
  EXPECT_EQ(l.ranges(), (Ranges{{11, 1}, {14, 6}, {30, 3}}));
  l.Remove(5, 0);
  EXPECT_EQ(l.sector_count(), 10u);

  const BadblockList before = MustParse("10 4\n");
  const BadblockList after = MustParse("8 8\n100 1\n");
  EXPECT_EQ(after.Minus(before).ranges(), (Ranges{{8, 2}, {14, 2}, {100, 1}}));
  EXPECT_TRUE(before.Minus(after).empty());
  EXPECT_TRUE(after.Overlaps(15, 1));
  EXPECT_FALSE(after.Overlaps(16, 84));
  EXPECT_TRUE(after.Overlaps(16, 85));
  EXPECT_FALSE(after.Overlaps(0, 8));
  EXPECT_FALSE(after.Overlaps(9, 0));
}

TEST(BadblockListTest, ValidateRange) {
  EXPECT_TRUE(BadblockList::ValidateRange(0, 1).ok());
  EXPECT_EQ(BadblockList::ValidateRange(5, 0).code(), EINVAL);
  EXPECT_EQ(BadblockList::ValidateRange(kMaxBadblockSector, 1).code(), EINVAL);
  EXPECT_EQ(BadblockList::ValidateRange(1, UINT64_MAX).code(), EINVAL);
}

TEST(BadblockListFileTest, MissingFileIsEmptyAndUpdatesRoundTrip) {
  ScratchDir dir;
  const std::string list = dir / "img.badblocks";
  auto empty = ReadBadblockListFile(list);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  BadblockList after;
  ASSERT_OK(UpdateBadblockListFile(
      list, [](BadblockList* l) { l->Add(8, 2); return Status::Ok(); }, &after));
  EXPECT_EQ(after.ranges(), (Ranges{{8, 2}}));
  auto read = ReadBadblockListFile(list);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read.value(), after);

  // A failing edit writes nothing.
  Status st = UpdateBadblockListFile(list, [](BadblockList* l) {
    l->Add(100, 1);
    return Status::InvalidArgument("no");
  });
  EXPECT_EQ(st.code(), EINVAL);
  EXPECT_EQ(ReadBadblockListFile(list).value(), after);

  // Emptying the list removes the file (and leaves no temporary behind).
  ASSERT_OK(UpdateBadblockListFile(list, [](BadblockList* l) {
    l->Remove(0, 100);
    return Status::Ok();
  }));
  EXPECT_FALSE(std::filesystem::exists(list));
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST(BadblockListFileTest, MalformedFileIsAnErrorNotAnEmptyList) {
  ScratchDir dir;
  const std::string list = dir.Write("img.badblocks", "8 1\nhello\n");
  auto r = ReadBadblockListFile(list);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind(list + ":2: ", 0), 0u) << r.status().message();
  // And an update refuses to overwrite it.
  EXPECT_EQ(UpdateBadblockListFile(list, [](BadblockList*) { return Status::Ok(); }).code(),
            EINVAL);
}

TEST(BadblockListFileTest, UnreadableDirectoryIsAnError) {
  EXPECT_EQ(UpdateBadblockListFile("/nonexistent-dir/x.badblocks",
                                   [](BadblockList*) { return Status::Ok(); })
                .code(),
            ENOENT);
}

// Concurrent updaters, threads of this process and other processes, never lose a change.
TEST(BadblockListFileTest, ConcurrentUpdatesAreAllKept) {
  ScratchDir dir;
  const std::string list = dir / "img.badblocks";
  constexpr int kThreads = 4, kProcs = 2, kEach = 25;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int i = 0; i < kEach; ++i) {
        const uint64_t sector = 1000000 + static_cast<uint64_t>(p * kEach + i) * 2;
        Status st = UpdateBadblockListFile(list, [&](BadblockList* l) {
          l->Add(sector, 1);
          return Status::Ok();
        });
        if (!st.ok()) _exit(1);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const uint64_t sector = static_cast<uint64_t>(t * kEach + i) * 2;
        EXPECT_OK(UpdateBadblockListFile(list, [&](BadblockList* l) {
          l->Add(sector, 1);
          return Status::Ok();
        }));
      }
    });
  }
  for (auto& t : threads) t.join();
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto r = ReadBadblockListFile(list);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->sector_count(), static_cast<uint64_t>((kThreads + kProcs) * kEach));
  EXPECT_EQ(r->ranges().size(), static_cast<size_t>((kThreads + kProcs) * kEach));
}

}  // namespace
}  // namespace udax
