// read_view_test.cc -- what a read view is given (PrepareReadView), and the view page's
// words moving before every change a view shows (allocation, size, frees) and around
// in-place writes, with the revoke hook told which leases must go.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "fs/core/core_test_util.h"
#include "include/udaxfs/control.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

// The holder's side of the view page: mapped read-only, as libudax does.
struct PageReader {
  explicit PageReader(int fd) {
    page = static_cast<const char*>(mmap(nullptr, UDAX_VIEW_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0));
    EXPECT_NE(page, MAP_FAILED);
  }
  ~PageReader() { munmap(const_cast<char*>(page), UDAX_VIEW_PAGE_SIZE); }
  uint64_t Word(size_t off) const {
    return __atomic_load_n(reinterpret_cast<const uint64_t*>(page + off), __ATOMIC_ACQUIRE);
  }
  uint64_t gen() const { return Word(UDAX_VIEW_GEN_OFFSET); }
  // On the write page:
  uint64_t begin() const { return Word(UDAX_WRITE_PAGE_BEGIN_OFFSET); }
  uint64_t end() const { return Word(UDAX_WRITE_PAGE_END_OFFSET); }
  const char* page;
};

struct HookCall {
  uint64_t ino, from, to;
  bool views_only;
};

TEST(ReadView, ShowsTheAllocatedExtentsTheSizeAndTheGeneration) {
  TestImage img;
  auto fs = img.Mount();
  const uint64_t au = fs->superblock().au_size;
  auto [e, f] = Must(fs->Create(kRootIno, "sparse", 0644, O_RDWR, kRoot));
  const std::string block(au, 'a');
  Must(fs->Write(f, 0, block.data(), block.size()));
  Must(fs->Write(f, 3 * au, block.data(), 100));  // a hole at AUs 1-2, a short last AU
  auto view = Must(fs->PrepareReadView(f, 64));
  EXPECT_EQ(view.size, 3 * au + 100);
  ASSERT_EQ(view.extents.size(), 2u);
  EXPECT_EQ(view.extents[0].file_offset, 0u);
  EXPECT_EQ(view.extents[0].length, au);
  EXPECT_EQ(view.extents[1].file_offset, 3 * au);
  EXPECT_EQ(view.extents[1].length, au);
  EXPECT_TRUE(view.bad.empty());
  ASSERT_GE(view.page_fd, 0);
  PageReader page(view.page_fd);
  EXPECT_EQ(page.gen(), view.gen);
  ASSERT_GE(view.write_page_fd, 0);
  PageReader writes(view.write_page_fd);
  EXPECT_EQ(writes.begin(), writes.end());  // no store in flight
  EXPECT_FALSE(view.sync);
  // Too fragmented for the caller's limit: E2BIG, nothing changed.
  EXPECT_EQ(fs->PrepareReadView(f, 1).status().code(), E2BIG);
  fs->Release(f);
}

TEST(ReadView, EveryChangeAViewShowsMovesTheGenerationFirst) {
  TestImage img;
  auto fs = img.Mount();
  std::vector<HookCall> calls;
  fs->set_revoke_hook([&](uint64_t ino, uint64_t from, uint64_t to, bool views_only) {
    calls.push_back({ino, from, to, views_only});
    return Status::Ok();
  });
  const uint64_t au = fs->superblock().au_size;
  Inode* const f = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot)).second;  // lambdas use it
  const std::string data(4 * au, 'd');
  // Before any view: no page, and allocations tell nobody.
  Must(fs->Write(f, 0, data.data(), data.size()));
  EXPECT_TRUE(calls.empty());
  auto view = Must(fs->PrepareReadView(f, 64));
  PageReader page(view.page_fd);
  uint64_t gen = page.gen();

  // An overwrite: the generation stays, the write page's counts move by one each.
  PageReader writes(view.write_page_fd);
  const uint64_t begin = writes.begin();
  Must(fs->Write(f, 10, "xyz", 3));
  EXPECT_EQ(page.gen(), gen);
  EXPECT_EQ(writes.begin(), begin + 1);
  EXPECT_EQ(writes.end(), begin + 1);
  EXPECT_TRUE(calls.empty());

  struct Step {
    const char* what;
    std::function<void()> run;
    bool views_only;
  };
  const std::vector<Step> steps = {
      {"extending write", [&] { Must(fs->Write(f, 4 * au, "e", 1)); }, true},
      {"write into a hole", [&] {
         ASSERT_OK(fs->Fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, au, au));
         calls.clear();
         gen = page.gen();
         Must(fs->Write(f, au, "h", 1));
       }, true},
      {"fallocate", [&] { ASSERT_OK(fs->Fallocate(f, FALLOC_FL_KEEP_SIZE, 8 * au, au)); }, true},
      {"punch", [&] { ASSERT_OK(fs->Fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, au)); }, false},
      {"grow", [&] {
         SetAttrIn in;
         in.size = true;
         in.attr.st_size = static_cast<off_t>(16 * au);
         Must(fs->SetAttr(f->ino, in));
       }, false},
      {"shrink", [&] {
         SetAttrIn in;
         in.size = true;
         in.attr.st_size = 5;
         Must(fs->SetAttr(f->ino, in));
       }, false},
  };
  for (const Step& s : steps) {
    calls.clear();
    gen = page.gen();
    s.run();
    EXPECT_GT(page.gen(), gen) << s.what;
    ASSERT_FALSE(calls.empty()) << s.what;
    EXPECT_EQ(calls.back().ino, f->ino) << s.what;
    EXPECT_EQ(calls.back().views_only, s.views_only) << s.what;
  }
  // A view asked for now is good for the current generation.
  auto again = Must(fs->PrepareReadView(f, 64));
  EXPECT_EQ(again.gen, page.gen());
  EXPECT_EQ(again.size, 5u);
  EXPECT_EQ(again.page_fd, view.page_fd);  // one page per file
  fs->set_revoke_hook(nullptr);
  fs->Release(f);
}

TEST(ReadView, NoHolderCanWriteThePageAndTheLastViewDropsIt) {
  TestImage img;
  auto fs = img.Mount();
  auto [e, f] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
  Must(fs->Write(f, 0, "data", 4));
  auto v1 = Must(fs->PrepareReadView(f, 64));
  auto v2 = Must(fs->PrepareReadView(f, 64));
  EXPECT_EQ(v1.page_fd, v2.page_fd);
  // A holder that reopens the memfd read-write (as /proc lets it) still cannot write it.
  const std::string self = "/proc/self/fd/" + std::to_string(v1.page_fd);
  const int rw = open(self.c_str(), O_RDWR);
  ASSERT_GE(rw, 0);
  EXPECT_EQ(mmap(nullptr, UDAX_VIEW_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0), MAP_FAILED);
  EXPECT_EQ(errno, EPERM);
  const uint64_t zero = 0;
  EXPECT_EQ(pwrite(rw, &zero, sizeof(zero), UDAX_VIEW_GEN_OFFSET), -1);
  EXPECT_EQ(ftruncate(rw, 0), -1);
  // The holders' mapping outlives the daemon's page: the last view's end voids it.
  PageReader page(v1.page_fd);
  const uint64_t gen = page.gen();
  fs->EndReadView(f);
  EXPECT_EQ(page.gen(), gen);  // one view still lives
  fs->EndReadView(f);
  EXPECT_GT(page.gen(), gen);
  close(rw);
  // A new view gets a new page.
  auto v3 = Must(fs->PrepareReadView(f, 64));
  PageReader fresh(v3.page_fd);
  EXPECT_EQ(fresh.gen(), v3.gen);
  fs->EndReadView(f);
  fs->Release(f);
}

TEST(ReadView, AWritableViewIsCountedStampsItsWritesAndEndsWithTheFilesRules) {
  TestImage img;
  auto fs = img.Mount();
  std::vector<HookCall> calls;
  fs->set_revoke_hook([&](uint64_t ino, uint64_t from, uint64_t to, bool views_only) {
    calls.push_back({ino, from, to, views_only});
    return Status::Ok();
  });
  auto [e, f] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
  Must(fs->Write(f, 0, "data", 4));
  EXPECT_FALSE(fs->HasViewWriters(f->ino));
  auto view = Must(fs->PrepareReadView(f, 64, /*writable=*/true));
  EXPECT_TRUE(fs->HasViewWriters(f->ino));
  // The write page: the holder's to write (mode 0600: only what the daemon hands out).
  struct stat st;
  ASSERT_EQ(fstat(view.write_page_fd, &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(ftruncate(view.write_page_fd, 0), -1);  // sealed against resizing
  auto* words = static_cast<uint64_t*>(
      mmap(nullptr, UDAX_VIEW_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, view.write_page_fd, 0));
  ASSERT_NE(words, MAP_FAILED);
  // A store counted by the holder stamps mtime at the next stat, once.
  const struct stat before = Must(fs->GetAttr(f->ino));
  usleep(2000);
  __atomic_fetch_add(words + UDAX_WRITE_PAGE_WRITES_OFFSET / 8, 1, __ATOMIC_RELEASE);
  const struct stat after = Must(fs->GetAttr(f->ino));
  EXPECT_GT(after.st_mtim.tv_sec * 1000000000L + after.st_mtim.tv_nsec,
            before.st_mtim.tv_sec * 1000000000L + before.st_mtim.tv_nsec);
  EXPECT_EQ(after.st_ctim.tv_nsec, after.st_mtim.tv_nsec);
  usleep(2000);
  const struct stat again = Must(fs->GetAttr(f->ino));
  EXPECT_EQ(again.st_mtim.tv_nsec, after.st_mtim.tv_nsec);  // nothing stored since
  // Making the file set-user-ID ends writable views (their stores could not drop it), and
  // a new one is refused; so is one of an immutable file.
  calls.clear();
  SetAttrIn in;
  in.mode = true;
  in.attr.st_mode = S_IFREG | 04755;
  Must(fs->SetAttr(f->ino, in));
  ASSERT_FALSE(calls.empty());
  EXPECT_TRUE(calls.back().views_only);
  EXPECT_EQ(fs->PrepareReadView(f, 64, true).status().code(), EPERM);
  EXPECT_OK(fs->PrepareReadView(f, 64, false).status());  // reading is fine
  fs->EndReadView(f, false);
  in.attr.st_mode = S_IFREG | 0644;
  Must(fs->SetAttr(f->ino, in));
  ASSERT_OK(fs->SetFlags(f->ino, kAttrImmutable, kRoot));
  EXPECT_EQ(fs->PrepareReadView(f, 64, true).status().code(), EPERM);
  ASSERT_OK(fs->SetFlags(f->ino, 0, kRoot));
  // The view's end stamps its last stores and uncounts it.
  __atomic_fetch_add(words + UDAX_WRITE_PAGE_WRITES_OFFSET / 8, 1, __ATOMIC_RELEASE);
  const struct stat last = Must(fs->GetAttr(f->ino));
  usleep(2000);
  __atomic_fetch_add(words + UDAX_WRITE_PAGE_WRITES_OFFSET / 8, 1, __ATOMIC_RELEASE);
  fs->EndReadView(f, true);
  EXPECT_FALSE(fs->HasViewWriters(f->ino));
  munmap(words, UDAX_VIEW_PAGE_SIZE);
  const struct stat ended = Must(fs->GetAttr(f->ino));
  EXPECT_GT(ended.st_mtim.tv_sec * 1000000000L + ended.st_mtim.tv_nsec,
            last.st_mtim.tv_sec * 1000000000L + last.st_mtim.tv_nsec);
  fs->set_revoke_hook(nullptr);
  fs->Release(f);
}

}  // namespace
}  // namespace udax
