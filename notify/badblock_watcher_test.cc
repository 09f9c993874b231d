// badblock_watcher_test.cc -- inotify on the list file: injected events and live poison.
#include "notify/badblock_watcher.h"

#include <atomic>
#include <mutex>

#include "fs/region/region.h"
#include "notify/test_util.h"

namespace udax {
namespace {

Status AddBlocks(const std::string& list, uint64_t sector, uint64_t count) {
  return UpdateBadblockListFile(list, [&](BadblockList* l) {
    l->Add(sector, count);
    return Status::Ok();
  });
}
Status RemoveBlocks(const std::string& list, uint64_t sector, uint64_t count) {
  return UpdateBadblockListFile(list, [&](BadblockList* l) {
    l->Remove(sector, count);
    return Status::Ok();
  });
}

// Waits until the watcher has seen a list equal to `want`.
bool WaitForList(const BadblockListWatcher& w, const BadblockList& want) {
  for (int i = 0; i < 500; ++i) {
    if (w.current() == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(BadblockWatcherTest, InitialListAndLaterInjectionsBecomeEvents) {
  ScratchDir dir;
  const std::string list = dir / "img.badblocks";
  ASSERT_OK(AddBlocks(list, 8, 2));
  EventQueue q;
  std::mutex mu;
  std::vector<BadblockList> seen;
  auto w = BadblockListWatcher::Start(
      list, [&](const BadblockList& l) { std::lock_guard<std::mutex> g(mu); seen.push_back(l); },
      &q);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  MediaEvent e;
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.source, MediaEventSource::kInjected);
  EXPECT_EQ(e.offset, 8u * 512);
  EXPECT_EQ(e.length, 2u * 512);
  EXPECT_EQ(e.detail, list);

  // A new range (and the old one again): only the new one is news.
  ASSERT_OK(AddBlocks(list, 100, 1));
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.offset, 100u * 512);
  EXPECT_EQ(e.length, 512u);
  EXPECT_FALSE(q.Pop(&e, std::chrono::milliseconds(100)));

  // Uninjecting everything removes the file: no event, the callback gets an empty list.
  ASSERT_OK(RemoveBlocks(list, 0, 1000));
  ASSERT_TRUE(WaitForList(**w, BadblockList()));
  EXPECT_FALSE(q.Pop(&e, std::chrono::milliseconds(100)));
  {
    std::lock_guard<std::mutex> g(mu);
    ASSERT_GE(seen.size(), 3u);
    EXPECT_TRUE(seen.back().empty());
  }
  // Poisoning the same range again is news again.
  ASSERT_OK(AddBlocks(list, 8, 1));
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.offset, 8u * 512);
  (*w)->Stop();
  (*w)->Stop();
}

TEST(BadblockWatcherTest, OtherFilesInTheDirectoryAreIgnored) {
  ScratchDir dir;
  EventQueue q;
  std::atomic<int> changes{0};
  auto w = BadblockListWatcher::Start(dir / "img.badblocks",
                                      [&](const BadblockList&) { changes++; }, &q);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(changes.load(), 1);  // Start
  ASSERT_OK(AddBlocks(dir / "other.badblocks", 1, 1));
  dir.Write("img", "x");
  MediaEvent e;
  EXPECT_FALSE(q.Pop(&e, std::chrono::milliseconds(200)));
  EXPECT_EQ(changes.load(), 1);
}

TEST(BadblockWatcherTest, MalformedEditKeepsThePreviousList) {
  ScratchDir dir;
  const std::string list = dir / "img.badblocks";
  ASSERT_OK(AddBlocks(list, 8, 1));
  EventQueue q;
  BadblockListWatcher::Options o;
  o.emit_initial = false;
  auto w = BadblockListWatcher::Start(list, nullptr, &q, o);
  ASSERT_TRUE(w.ok());
  MediaEvent e;
  EXPECT_FALSE(q.TryPop(&e));
  dir.Write("img.badblocks", "8 1\ngarbage\n");  // an in-place edit by hand
  for (int i = 0; i < 500 && (*w)->last_error().ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ((*w)->last_error().code(), EINVAL);
  EXPECT_EQ((*w)->current().sector_count(), 1u);
  dir.Write("img.badblocks", "8 1\n16 1\n");
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.offset, 16u * 512);
  EXPECT_TRUE((*w)->last_error().ok());
}

TEST(BadblockWatcherTest, StartFailsOnMissingDirectoryOrBadList) {
  EventQueue q;
  auto w = BadblockListWatcher::Start("/nonexistent-udax-dir/img.badblocks", nullptr, &q);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), ENOENT);
  ScratchDir dir;
  auto w2 = BadblockListWatcher::Start(dir.Write("img.badblocks", "x\n"), nullptr, &q);
  ASSERT_FALSE(w2.ok());
  EXPECT_EQ(w2.status().code(), EINVAL);
}

// What the daemon will wire up: the watcher's callback feeds the Region, so a range
// injected while mounted fails reads, and the Region's fault listener feeds the queue.
TEST(BadblockWatcherTest, LiveInjectionReachesTheRegionAndItsListener) {
  ScratchDir dir;
  const std::string image = dir / "img";
  RegionOptions ro;
  ro.create_size = 1 << 20;
  ASSERT_TRUE(Region::Open(image, ro).ok());
  ASSERT_TRUE(StampTestSuperblock(image));  // the key of its list file
  auto region = Region::Open(image, ro);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  Region* r = region->get();
  ASSERT_FALSE(r->badblocks_path().empty());
  EventQueue q;
  r->set_fault_listener([&q](const MediaFault& f) { q.Push(MediaEventFromFault(f)); });
  auto w = BadblockListWatcher::Start(
      r->badblocks_path(), [r](const BadblockList& l) { r->SetEmulatedPoison(l); }, &q);
  ASSERT_TRUE(w.ok());
  char buf[512];
  ASSERT_OK(r->ReadSafe(4096, buf, sizeof(buf)));

  ASSERT_OK(AddBlocks(r->badblocks_path(), 8, 1));
  MediaEvent e;
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.source, MediaEventSource::kInjected);
  // The poison was applied before the event was pushed.
  EXPECT_EQ(r->ReadSafe(4096, buf, sizeof(buf)).code(), EIO);
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.source, MediaEventSource::kSigbusAr);
  EXPECT_EQ(e.offset, 4096u);
  EXPECT_EQ(e.length, 512u);

  // Clearing through the Region updates the file; the watcher sees no news.
  ASSERT_OK(r->ClearEmulatedPoison(4096, 512));
  ASSERT_TRUE(WaitForList(**w, BadblockList()));
  ASSERT_OK(r->ReadSafe(4096, buf, sizeof(buf)));
  EXPECT_FALSE(q.Pop(&e, std::chrono::milliseconds(100)));
}

}  // namespace
}  // namespace udax
