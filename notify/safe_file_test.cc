// safe_file_test.cc -- state files someone else planted: symlinks, FIFOs, wrong owners, modes, sizes.
#include "fs/base/safe_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "fs/format/badblock_list.h"
#include "notify/test_util.h"

namespace udax {
namespace {

constexpr uid_t kNobody = 65534;

TEST(SafeFileTest, SymlinkIsRefusedNotFollowed) {
  ScratchDir dir;
  const std::string target = dir.Write("secret", "root only\n");
  const std::string link = dir / "img.badblocks";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  auto fd = OpenStateFile(link, O_RDONLY);
  EXPECT_EQ(fd.status().code(), ELOOP);
  EXPECT_NE(fd.status().message().find("symbolic link"), std::string::npos);
  EXPECT_EQ(ReadBadblockListFile(link).status().code(), ELOOP);
  // O_CREAT through a dangling symlink creates nothing at its target.
  const std::string dangling = dir / "img.events";
  ASSERT_EQ(symlink((dir / "created").c_str(), dangling.c_str()), 0);
  EXPECT_FALSE(OpenStateFile(dangling, O_WRONLY | O_APPEND | O_CREAT).ok());
  EXPECT_FALSE(std::filesystem::exists(dir / "created"));
}

TEST(SafeFileTest, FifoIsRefusedWithoutBlocking) {
  ScratchDir dir;
  const std::string fifo = dir / "img.badblocks";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  // No writer ever opens it: a blocking open would never return.
  auto r = ReadBadblockListFile(fifo);
  EXPECT_EQ(r.status().code(), EINVAL);
  EXPECT_NE(r.status().message().find("not a regular file"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(SafeFileTest, WrongOwnerIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file away";
  ScratchDir dir;
  const std::string list = dir.Write("img.badblocks", "8 1\n");
  ASSERT_EQ(chown(list.c_str(), kNobody, kNobody), 0);
  auto r = ReadBadblockListFile(list);
  EXPECT_EQ(r.status().code(), EPERM);
  EXPECT_NE(r.status().message().find("owned by uid 65534"), std::string::npos)
      << r.status().message();
}

TEST(SafeFileTest, GroupOrWorldWritableIsRefused) {
  ScratchDir dir;
  const std::string list = dir.Write("img.badblocks", "8 1\n");
  for (mode_t mode : {0620, 0602, 0666}) {
    ASSERT_EQ(chmod(list.c_str(), mode), 0);
    auto r = ReadBadblockListFile(list);
    EXPECT_EQ(r.status().code(), EPERM) << std::oct << mode;
    EXPECT_NE(r.status().message().find("writable by group or others"), std::string::npos);
  }
  ASSERT_EQ(chmod(list.c_str(), 0644), 0);
  EXPECT_TRUE(ReadBadblockListFile(list).ok());
}

TEST(SafeFileTest, OversizeListIsRefused) {
  ScratchDir dir;
  std::string big;
  while (big.size() <= kMaxBadblockListBytes) big += "# padding padding padding padding\n";
  const std::string list = dir.Write("img.badblocks", big);
  auto r = ReadBadblockListFile(list);
  EXPECT_EQ(r.status().code(), EFBIG);
  // One byte over the cap is refused, exactly at the cap is fine.
  const std::string over = dir.Write("over.badblocks", big.substr(0, kMaxBadblockListBytes - 4) + "\n8 1\n");
  ASSERT_EQ(std::filesystem::file_size(over), kMaxBadblockListBytes + 1);
  EXPECT_EQ(ReadBadblockListFile(over).status().code(), EFBIG);
  const std::string fits = dir.Write("fits.badblocks", big.substr(0, kMaxBadblockListBytes - 4) + "8 1\n");
  ASSERT_EQ(std::filesystem::file_size(fits), kMaxBadblockListBytes);
  EXPECT_TRUE(ReadBadblockListFile(fits).ok());
}

TEST(SafeFileTest, ReplacementUsesAFreshExclusiveTemporary) {
  ScratchDir dir;
  const std::string list = dir / "img.badblocks";
  // The old names an attacker would plant: the PID-named temporary, as a symlink to a
  // file that must stay untouched, and a stale regular one.
  const std::string victim = dir.Write("victim", "keep me\n");
  ASSERT_EQ(symlink(victim.c_str(), (list + ".tmp." + std::to_string(getpid())).c_str()), 0);
  ASSERT_OK(ReplaceStateFile(list, "8 1\n"));
  ASSERT_OK(ReplaceStateFile(list, "16 1\n"));
  std::ifstream in(victim);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "keep me");
  struct stat st;
  ASSERT_EQ(lstat(list.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(ReadBadblockListFile(list).value().ranges(), (std::vector<BadblockRange>{{16, 1}}));
  // No temporary of ours is left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 3);  // victim, the planted symlink, the list
}

TEST(SafeFileTest, UpdateRefusesADirectoryOthersMayWrite) {
  ScratchDir dir;
  const std::string sub = dir / "sticky";
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  ASSERT_EQ(chmod(sub.c_str(), 01777), 0);
  Status st = UpdateBadblockListFile(sub + "/img.badblocks", [](BadblockList* l) {
    l->Add(8, 1);
    return Status::Ok();
  });
  EXPECT_EQ(st.code(), EPERM);
  EXPECT_NE(st.message().find("writable by group or others"), std::string::npos) << st.message();
  EXPECT_TRUE(std::filesystem::is_empty(sub));
}

TEST(SafeFileTest, BusyLockIsWaitedForBoundedTime) {
  ScratchDir dir;
  const std::string list = dir / "img.badblocks";
  ASSERT_OK(UpdateBadblockListFile(list, [](BadblockList* l) {
    l->Add(8, 1);
    return Status::Ok();
  }));
  // Another open file description holds the lock, as another process would.
  const int held = open((list + ".lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(flock(held, LOCK_EX), 0);
  const auto start = std::chrono::steady_clock::now();
  Status st = UpdateBadblockListFile(
      list, [](BadblockList*) { return Status::Ok(); }, nullptr, std::chrono::milliseconds(100));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(st.code(), EBUSY) << st.ToString();
  EXPECT_GE(took, std::chrono::milliseconds(100));
  EXPECT_LT(took, std::chrono::seconds(2));
  close(held);
  EXPECT_OK(UpdateBadblockListFile(list, [](BadblockList*) { return Status::Ok(); }));
}

}  // namespace
}  // namespace udax
