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
  uint64_t seq() const { return Word(UDAX_VIEW_SEQ_OFFSET); }
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
  EXPECT_EQ(page.seq() % 2, 0u);
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

  // An overwrite: the generation stays, the sequence moves by two (odd while storing).
  const uint64_t seq = page.seq();
  Must(fs->Write(f, 10, "xyz", 3));
  EXPECT_EQ(page.gen(), gen);
  EXPECT_EQ(page.seq(), seq + 2);
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

}  // namespace
}  // namespace udax
