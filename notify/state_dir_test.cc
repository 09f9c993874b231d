// state_dir_test.cc -- the state directory's checks, the image key, legacy migration, the log's mode.
#include "fs/format/state_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "fs/format/badblock_list.h"
#include "notify/event_log.h"
#include "notify/test_util.h"

namespace udax {
namespace {

constexpr uid_t kNobody = 65534;

// A 1 MiB image with a superblock's magic and UUID.
std::string MakeImage(const ScratchDir& dir, const std::string& name = "img") {
  const std::string image = dir / name;
  const int fd = open(image.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ftruncate(fd, 1 << 20) != 0) abort();
  close(fd);
  if (!StampTestSuperblock(image)) abort();
  return image;
}

// Points UDAX_STATE_DIR at `dir` for one test.
class StateDirScope {
 public:
  explicit StateDirScope(const std::string& dir) : old_(getenv("UDAX_STATE_DIR")) {
    setenv("UDAX_STATE_DIR", dir.c_str(), 1);
  }
  ~StateDirScope() { setenv("UDAX_STATE_DIR", old_.c_str(), 1); }

 private:
  std::string old_;
};

TEST(StateDirTest, CreatedPrivateAndRefusedWhenUnsafe) {
  ScratchDir dir;
  const std::string state = dir / "state";
  ASSERT_OK(EnsureStateDir(state));
  struct stat st;
  ASSERT_EQ(lstat(state.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_OK(EnsureStateDir(state));  // existing and fine

  ASSERT_EQ(chmod(state.c_str(), 0777), 0);
  EXPECT_EQ(CheckStateDir(state).code(), EPERM);
  ASSERT_EQ(chmod(state.c_str(), 0770), 0);
  EXPECT_EQ(CheckStateDir(state).code(), EPERM);
  ASSERT_EQ(chmod(state.c_str(), 0755), 0);
  EXPECT_OK(CheckStateDir(state));  // an old /var/lib/udaxfs made 0755: readable, fine

  const std::string link = dir / "link";
  ASSERT_EQ(symlink(state.c_str(), link.c_str()), 0);
  Status s = EnsureStateDir(link);
  EXPECT_EQ(s.code(), EPERM);
  EXPECT_NE(s.message().find("symbolic link"), std::string::npos) << s.message();

  if (geteuid() == 0) {
    ASSERT_EQ(chown(state.c_str(), kNobody, kNobody), 0);
    s = CheckStateDir(state);
    EXPECT_EQ(s.code(), EPERM);
    EXPECT_NE(s.message().find("owned by uid 65534"), std::string::npos) << s.message();
  }
}

TEST(StateDirTest, KeyIsTheSuperblockUuidNotTheInode) {
  ScratchDir dir;
  StateDirScope scope(dir / "state");
  const std::string image = MakeImage(dir);
  auto a = LocateTargetState(image, /*prepare=*/true);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->key.rfind("uuid-", 0), 0u);
  EXPECT_EQ(a->key.size(), 5u + 32u);
  EXPECT_EQ(a->badblocks, dir / "state/" + a->key + ".badblocks");
  EXPECT_EQ(a->lock, a->badblocks + ".lock");
  EXPECT_EQ(a->events, dir / "state/" + a->key + ".events");
  // Moved: same state.
  ASSERT_EQ(rename(image.c_str(), (dir / "moved").c_str()), 0);
  EXPECT_EQ(LocateTargetState(dir / "moved", false)->key, a->key);
  // Deleted and re-created -- on tmpfs typically with the very inode number it had --
  // and formatted anew: a new UUID, so none of the old image's state.
  ASSERT_EQ(unlink((dir / "moved").c_str()), 0);
  const std::string again = MakeImage(dir);
  EXPECT_NE(LocateTargetState(again, false)->key, a->key);
}

TEST(StateDirTest, UnformattedImageHasNoState) {
  ScratchDir dir;
  const std::string raw = dir.Write("raw", std::string(65536, '\0'));
  EXPECT_EQ(LocateTargetState(raw, false).status().code(), ENODATA);
  EXPECT_EQ(LocateTargetState(dir.path(), false).status().code(), EINVAL);
}

TEST(StateDirTest, UnreadableImageHasNoStateForThatCaller) {
  ScratchDir dir;
  EXPECT_EQ(LocateTargetState(dir / "missing", false).status().code(), ENOENT);
}

TEST(StateDirTest, TrustedLegacyFilesAreMigratedOnceAndRemoved) {
  ScratchDir dir;
  StateDirScope scope(dir / "state");
  const std::string image = MakeImage(dir);
  dir.Write("img.badblocks", "# old\n16 2\n");
  dir.Write("img.badblocks.lock", "");
  dir.Write("img.events", "{\"source\":\"injected\"}\n");
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  auto s = LocateTargetState(image, /*prepare=*/true);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(ReadBadblockListFile(s->badblocks).value().ranges(),
            (std::vector<BadblockRange>{{16, 2}}));
  EXPECT_FALSE(std::filesystem::exists(dir / "img.badblocks"));
  EXPECT_FALSE(std::filesystem::exists(dir / "img.badblocks.lock"));
  EXPECT_FALSE(std::filesystem::exists(dir / "img.events"));
  std::ifstream log(s->events);
  std::string line;
  std::getline(log, line);
  EXPECT_EQ(line, "{\"source\":\"injected\"}");
  struct stat st;
  ASSERT_EQ(stat(s->events.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

// What an unprivileged user can plant beside an image in a sticky /var/tmp: refused
// unread, left in place, state untouched, and nothing blocks.
TEST(StateDirTest, LegacyFilesInADirectoryOthersMayWriteAreIgnored) {
  ScratchDir dir;
  StateDirScope scope(dir / "state");
  const std::string image = MakeImage(dir);
  const std::string secret = dir.Write("secret", "root only\n");
  dir.Write("img.badblocks", "16 2\n");
  ASSERT_EQ(mkfifo((dir / "img.events").c_str(), 0600), 0);
  ASSERT_EQ(chmod(dir.path().c_str(), 01777), 0);
  const auto start = std::chrono::steady_clock::now();
  auto s = LocateTargetState(image, /*prepare=*/true);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(ReadBadblockListFile(s->badblocks).value().empty());
  EXPECT_TRUE(std::filesystem::exists(dir / "img.badblocks"));
  EXPECT_FALSE(std::filesystem::exists(s->events));
  // A symlink to a root-only file, in a directory that is otherwise fine: refused too.
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  ASSERT_EQ(unlink((dir / "img.events").c_str()), 0);
  ASSERT_EQ(unlink((dir / "img.badblocks").c_str()), 0);
  ASSERT_EQ(symlink(secret.c_str(), (dir / "img.badblocks").c_str()), 0);
  ASSERT_TRUE(LocateTargetState(image, /*prepare=*/true).ok());
  EXPECT_TRUE(ReadBadblockListFile(s->badblocks).value().empty());
  EXPECT_TRUE(std::filesystem::is_symlink(dir / "img.badblocks"));
}

TEST(StateDirTest, LegacyFileOwnedBySomeoneElseIsIgnored) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file away";
  ScratchDir dir;
  StateDirScope scope(dir / "state");
  const std::string image = MakeImage(dir);
  const std::string list = dir.Write("img.badblocks", "16 2\n");
  ASSERT_EQ(chown(list.c_str(), kNobody, kNobody), 0);
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  auto s = LocateTargetState(image, /*prepare=*/true);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(ReadBadblockListFile(s->badblocks).value().empty());
  EXPECT_TRUE(std::filesystem::exists(list));
}

TEST(StateDirTest, EventLogIsCreatedPrivateAtTheFirstEvent) {
  ScratchDir dir;
  StateDirScope scope(dir / "state");
  const std::string image = MakeImage(dir);
  auto s = LocateTargetState(image, /*prepare=*/true);
  ASSERT_TRUE(s.ok());
  auto log = EventLog::Open(s->events);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(s->events));  // a mount without events leaves nothing
  EventRecord r;
  r.source = "injected";
  ASSERT_OK((*log)->Append(r));
  struct stat st;
  ASSERT_EQ(lstat(s->events.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // A planted symlink in place of the log is refused, not appended through.
  const std::string victim = dir.Write("victim", "");
  ASSERT_EQ(unlink(s->events.c_str()), 0);
  ASSERT_EQ(symlink(victim.c_str(), s->events.c_str()), 0);
  EXPECT_EQ(EventLog::Open(s->events).status().code(), ELOOP);
  EXPECT_EQ(std::filesystem::file_size(victim), 0u);
}

TEST(EventLineTest, LinesAreSplitParsedAndDamageReported) {
  std::string partial;
  int records = 0, damaged = 0;
  auto count = [&](const nlohmann::json* j) { j != nullptr ? ++records : ++damaged; };
  ForEachEventLine("{\"a\":1}\n\nnot json\n42\n{\"b\":", &partial, count);
  EXPECT_EQ(records, 1);
  EXPECT_EQ(damaged, 2);
  EXPECT_EQ(partial, "{\"b\":");
  ForEachEventLine("2}\n", &partial, count);
  EXPECT_EQ(records, 2);
  EXPECT_TRUE(partial.empty());
  // Wrong types print as unknowns rather than throwing.
  const auto odd = nlohmann::json::parse(
      R"({"time":5,"offset":"x","owners":[3,{"ino":"y","kind":7}],"processes":{"pid":1}})");
  EXPECT_NE(EventRecordToText(odd).find("? ? [0, +0)"), std::string::npos) << EventRecordToText(odd);
}

}  // namespace
}  // namespace udax
