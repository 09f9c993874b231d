// badblocks_poller_test.cc -- the poll loop with fake notifications, and sysfs semantics.
#include "notify/badblocks_poller.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "notify/test_util.h"

namespace udax {
namespace {

// A reader over a list the test changes, as a sysfs file would change under the kernel.
class FakeKernel {
 public:
  BadblocksPoller::Reader reader() {
    return [this]() -> Result<BadblockList> {
      std::lock_guard<std::mutex> g(mu_);
      if (!fail_.ok()) return fail_;
      return list_;
    };
  }
  void Set(const std::string& text) {
    std::lock_guard<std::mutex> g(mu_);
    list_ = BadblockList::Parse(text, "fake").value();
  }
  void Fail(Status st) {
    std::lock_guard<std::mutex> g(mu_);
    fail_ = std::move(st);
  }

 private:
  std::mutex mu_;
  BadblockList list_;
  Status fail_;
};

bool WaitReads(const BadblocksPoller& p, uint64_t n) {
  for (int i = 0; i < 500 && p.reads() < n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return p.reads() >= n;
}

TEST(BadblocksPollerTest, InitialListThenOnlyNewRangesOnRescan) {
  ScratchDir dir;
  // A regular file never signals POLLPRI: only Rescan (the fake notification) wakes it.
  const std::string file = dir.Write("badblocks", "");
  FakeKernel k;
  k.Set("8 8\n");
  EventQueue q;
  std::atomic<int> changes{0};
  BadblocksPoller::Options o;
  o.on_change = [&](const BadblockList&) { changes++; };
  auto p = BadblocksPoller::Start(file, k.reader(), &q, o);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  MediaEvent e;
  ASSERT_TRUE(q.TryPop(&e));  // pushed by Start itself
  EXPECT_EQ(e.source, MediaEventSource::kBadblocks);
  EXPECT_EQ(e.offset, 8u * 512);
  EXPECT_EQ(e.length, 8u * 512);
  EXPECT_EQ(e.detail, file);

  k.Set("8 8\n100 2\n");
  (*p)->Rescan();
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.offset, 100u * 512);
  EXPECT_EQ(e.length, 2u * 512);
  ASSERT_TRUE(WaitReads(**p, 2));

  // A scrub that finds nothing new wakes the poller too: no event.
  (*p)->Rescan();
  ASSERT_TRUE(WaitReads(**p, 3));
  EXPECT_FALSE(q.Pop(&e, std::chrono::milliseconds(50)));
  EXPECT_EQ((*p)->notifications(), 0u);
  EXPECT_EQ(changes.load(), 3);
  EXPECT_EQ((*p)->current().sector_count(), 10u);
}

TEST(BadblocksPollerTest, FailedRereadKeepsTheListAndRecovers) {
  FakeKernel k;
  k.Set("1 1\n");
  EventQueue q;
  BadblocksPoller::Options o;
  o.emit_initial = false;
  auto p = BadblocksPoller::Start("", k.reader(), &q, o);  // no file: Rescan only
  ASSERT_TRUE(p.ok());
  MediaEvent e;
  EXPECT_FALSE(q.TryPop(&e));
  k.Fail(Status::IoError("sysfs went away"));
  (*p)->Rescan();
  ASSERT_TRUE(WaitReads(**p, 2));
  EXPECT_EQ((*p)->last_error().code(), EIO);
  EXPECT_EQ((*p)->current().sector_count(), 1u);
  k.Fail(Status::Ok());
  k.Set("1 1\n5 1\n");
  (*p)->Rescan();
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.offset, 5u * 512);
}

TEST(BadblocksPollerTest, StartErrors) {
  FakeKernel k;
  EventQueue q;
  auto p = BadblocksPoller::Start("/nonexistent/badblocks", k.reader(), &q, {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), ENOENT);
  k.Fail(Status::InvalidArgument("bad text"));
  auto p2 = BadblocksPoller::Start("", k.reader(), &q, {});
  ASSERT_FALSE(p2.ok());
  EXPECT_EQ(p2.status().code(), EINVAL);
}

// The real thing where it exists: a sysfs badblocks attribute (pmem or an md disk).
TEST(BadblocksPollerTest, RealSysfsAttributeIfAny) {
  std::string found;
  for (const auto& e : std::filesystem::directory_iterator("/sys/block")) {
    if (std::filesystem::exists(e.path() / "badblocks")) {
      found = (e.path() / "badblocks").string();
      break;
    }
  }
  if (found.empty()) GTEST_SKIP() << "no block device with a badblocks attribute here";
  EventQueue q;
  auto p = BadblocksPoller::Start(
      found,
      [found]() -> Result<BadblockList> {
        std::ifstream in(found);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return BadblockList::Parse(text, found);
      },
      &q, {});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
}

}  // namespace
}  // namespace udax
