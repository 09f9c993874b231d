// view_reserve_test.cc -- space past EOF for writable views (fs_view_reserve.cc): what a
// reservation gives, how the size the views publish becomes the file's (clamped to what
// was granted), the space freed at the last writer's end, O_APPEND at the daemon's end,
// and stale bytes past EOF never shown.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "fs/core/core_test_util.h"
#include "include/udaxfs/control.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};
constexpr uint64_t kMiB = 1 << 20;

// The holder's side of the write page, read-write as a writable view's.
struct WritePage {
  explicit WritePage(int fd) {
    words = static_cast<uint64_t*>(mmap(nullptr, UDAX_VIEW_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    EXPECT_NE(words, MAP_FAILED);
  }
  ~WritePage() { munmap(words, UDAX_VIEW_PAGE_SIZE); }
  void Publish(uint64_t end) { __atomic_store_n(words + UDAX_WRITE_PAGE_SIZE_OFFSET / 8, end, __ATOMIC_RELEASE); }
  uint64_t published() const { return __atomic_load_n(words + UDAX_WRITE_PAGE_SIZE_OFFSET / 8, __ATOMIC_ACQUIRE); }
  uint64_t* words;
};

uint64_t AllocatedBytes(Filesystem* fs, uint64_t ino) {
  return static_cast<uint64_t>(Must(fs->GetAttr(ino)).st_blocks) * 512;
}

// Stores `data` at file offset `off` of the view as a holder would: into the region (an
// image: its page cache is the daemon's mapping).
void StoreThroughView(const TestImage& img, const Filesystem::ReadView& view, uint64_t off,
                      const std::string& data) {
  for (const BmapExtent& e : view.extents) {
    if (off >= e.file_offset && off + data.size() <= e.file_offset + e.length) {
      const int fd = open(img.path().c_str(), O_WRONLY);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(pwrite(fd, data.data(), data.size(), static_cast<off_t>(e.phys_offset + off - e.file_offset)),
                static_cast<ssize_t>(data.size()));
      close(fd);
      return;
    }
  }
  FAIL() << "offset " << off << " is not in the view's extents";
}

TEST(ViewReserve, AWritableViewGetsZeroedSpacePastEofAndItsStoresPublishTheSize) {
  TestImage img(256ull << 20);  // room: a reservation takes at most a sixteenth of it
  auto fs = img.Mount();
  std::vector<bool> revokes;
  fs->set_revoke_hook([&](uint64_t, uint64_t, uint64_t, bool views_only) {
    revokes.push_back(views_only);
    return Status::Ok();
  });
  const uint64_t au = fs->superblock().au_size;
  auto [e, f] = Must(fs->Create(kRootIno, "log", 0644, O_RDWR, kRoot));
  Must(fs->Write(f, 0, "0123456789", 10));
  auto view = Must(fs->PrepareReadView(f, 64, /*writable=*/true, /*reserve=*/kMiB));
  EXPECT_EQ(view.size, 10u);
  EXPECT_EQ(view.limit, au + kMiB);  // from the end of the AU holding EOF
  ASSERT_FALSE(view.extents.empty());
  EXPECT_EQ(view.extents.back().file_offset + view.extents.back().length, view.limit);
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), au + kMiB);
  // Zeroed: a gap the holder skips reads as zeros.
  std::string buf(kMiB, 'x');
  WritePage page(view.write_page_fd);
  StoreThroughView(img, view, 10 + 4096, "tail");
  page.Publish(10 + 4096 + 4);
  EXPECT_EQ(Must(fs->GetAttr(f->ino)).st_size, 10 + 4096 + 4);  // stat sees it at once
  EXPECT_EQ(Must(fs->Read(f, 0, 8192, buf.data())), 10u + 4096 + 4);
  EXPECT_EQ(buf.substr(10, 4096), std::string(4096, '\0'));
  EXPECT_EQ(buf.substr(10 + 4096, 4), "tail");
  // A word past what was granted is not believed further than the limit.
  page.Publish(UINT64_MAX);
  EXPECT_EQ(static_cast<uint64_t>(Must(fs->GetAttr(f->ino)).st_size), view.limit);
  page.Publish(10 + 4096 + 4);
  // A second writer with room enough shares the space: nobody is revoked.
  revokes.clear();
  auto second = Must(fs->PrepareReadView(f, 64, true, kMiB / 2));
  EXPECT_TRUE(revokes.empty());
  EXPECT_EQ(second.limit, view.limit);
  EXPECT_EQ(second.size, 10u + 4096 + 4);  // folded (the first writer's size)
  fs->EndReadView(f, true);
  // Asking for more than is left revokes the views and reserves afresh.
  auto third = Must(fs->PrepareReadView(f, 64, true, 4 * kMiB));
  EXPECT_FALSE(revokes.empty());
  EXPECT_EQ(third.limit, (10 + 4096 + 4 + au - 1) / au * au + 4 * kMiB);
  EXPECT_EQ(page.published(), 0u);  // started afresh after the revoke
  fs->EndReadView(f, true);
  fs->EndReadView(f, true);
  fs->set_revoke_hook(nullptr);
  fs->Release(f);
}

TEST(ViewReserve, TheLastWritersEndKeepsTheSizeAndFreesTheRestAcrossAFsync) {
  TestImage img;
  uint64_t ino = 0;
  {
    auto fs = img.Mount();
    auto [e, f] = Must(fs->Create(kRootIno, "log", 0644, O_RDWR, kRoot));
    ino = f->ino;
    auto view = Must(fs->PrepareReadView(f, 64, true, 2 * kMiB));
    WritePage page(view.write_page_fd);
    StoreThroughView(img, view, 0, std::string(300000, 'a'));
    page.Publish(300000);
    ASSERT_OK(fs->Fsync(f, false));  // the size is durable now
    StoreThroughView(img, view, 300000, std::string(1000, 'b'));
    page.Publish(301000);
    fs->EndReadView(f, true);
    EXPECT_EQ(Must(fs->GetAttr(ino)).st_size, 301000);
    const uint64_t au = fs->superblock().au_size;
    EXPECT_EQ(AllocatedBytes(fs.get(), ino), (301000 + au - 1) / au * au);  // the rest freed
    fs->Release(f);
    ASSERT_OK(fs->Unmount());
  }
  auto fs = img.Mount();
  Inode* f = Must(fs->Open(ino, O_RDONLY));
  EXPECT_EQ(Must(fs->GetAttr(ino)).st_size, 301000);
  std::string buf(301000, '\0');
  EXPECT_EQ(Must(fs->Read(f, 0, buf.size(), buf.data())), 301000u);
  EXPECT_EQ(buf, std::string(300000, 'a') + std::string(1000, 'b'));
  fs->Release(f);
}

TEST(ViewReserve, AnAppendLandsAfterWhatViewsStoredAndARevokeFoldsTheSize) {
  TestImage img;
  auto fs = img.Mount();
  int revokes = 0;
  fs->set_revoke_hook([&](uint64_t, uint64_t, uint64_t, bool) {
    ++revokes;
    return Status::Ok();
  });
  auto [e, f] = Must(fs->Create(kRootIno, "log", 0644, O_RDWR, kRoot));
  auto view = Must(fs->PrepareReadView(f, 64, true, kMiB));
  WritePage page(view.write_page_fd);
  StoreThroughView(img, view, 0, "AAAA");
  page.Publish(4);
  // O_APPEND at the kernel's idea of the end (0): at the daemon's, after the views'
  // stores, which stop first.
  Must(fs->Write(f, 0, "BB", 2, nullptr, /*append=*/true));
  EXPECT_GT(revokes, 0);
  std::string buf(16, '\0');
  EXPECT_EQ(Must(fs->Read(f, 0, buf.size(), buf.data())), 6u);
  EXPECT_EQ(buf.substr(0, 6), "AAAABB");
  EXPECT_EQ(page.published(), 0u);
  // A truncate takes what views stored before it cuts.
  auto again = Must(fs->PrepareReadView(f, 64, true, kMiB));
  StoreThroughView(img, again, 6, "CCCC");
  page.Publish(10);
  SetAttrIn in;
  in.size = true;
  in.attr.st_size = 8;
  Must(fs->SetAttr(f->ino, in));
  EXPECT_EQ(Must(fs->Read(f, 0, buf.size(), buf.data())), 8u);
  EXPECT_EQ(buf.substr(0, 8), "AAAABBCC");
  fs->EndReadView(f, true);
  fs->EndReadView(f, true);
  fs->set_revoke_hook(nullptr);
  fs->Release(f);
}

TEST(ViewReserve, StaleBytesPastEofNeverShow) {
  TestImage img;
  const std::string junk(8192, 'J');
  uint64_t inos[3];
  {
    auto fs = img.Mount();
    // Three files with bytes stored past EOF that never became part of them: a holder
    // stored there, then the daemon died (its state dropped without an unmount).
    for (int i = 0; i < 3; ++i) {
      auto [e, f] = Must(fs->Create(kRootIno, "f" + std::to_string(i), 0644, O_RDWR, kRoot));
      inos[i] = f->ino;
      Must(fs->Write(f, 0, "x", 1));
      auto view = Must(fs->PrepareReadView(f, 64, true, kMiB));
      StoreThroughView(img, view, 100, junk.substr(0, 100));  // in the AU holding EOF
      StoreThroughView(img, view, 4096, junk);
      fs->Release(f);
    }
  }
  auto fs = img.Mount();
  const std::string want = "x" + std::string(4096 + 8192 - 1, '\0');
  std::string buf(want.size(), '\0');
  auto read_all = [&](Inode* f) {
    std::fill(buf.begin(), buf.end(), '\1');
    EXPECT_EQ(Must(fs->Read(f, 0, buf.size(), buf.data())), buf.size());
    return buf == want;
  };
  // A reservation zeroes what lies past EOF before a view shows it.
  Inode* f = Must(fs->Open(inos[0], O_RDWR));
  auto view = Must(fs->PrepareReadView(f, 64, true, kMiB));
  {
    WritePage page(view.write_page_fd);
    page.Publish(want.size());
    EXPECT_TRUE(read_all(f));
  }
  fs->EndReadView(f, true);
  fs->Release(f);
  // A truncate that grows the file over them.
  f = Must(fs->Open(inos[1], O_RDWR));
  SetAttrIn in;
  in.size = true;
  in.attr.st_size = static_cast<off_t>(want.size());
  Must(fs->SetAttr(f->ino, in));
  EXPECT_TRUE(read_all(f));
  fs->Release(f);
  // A write past them leaves a gap of zeros.
  f = Must(fs->Open(inos[2], O_RDWR));
  Must(fs->Write(f, want.size(), "y", 1));
  EXPECT_TRUE(read_all(f));
  fs->Release(f);
}

// From a review: the attribute blob (at file AU kXattrFileAu, past the largest file) is
// not space past EOF; the program's own preallocation is not the views' to free; a holder
// killed inside a store leaves bytes past EOF that must not show; a sparse AU holding EOF
// still gets room; a view that cannot carry every reserved extent reaches less far.
TEST(ViewReserve, AttributesPreallocationsAndKilledHoldersAreLeftAlone) {
  TestImage img;
  uint64_t ino = 0;
  const uint64_t big = 64 * 4096;
  {
    auto fs = img.Mount();
    fs->set_revoke_hook([](uint64_t, uint64_t, uint64_t, bool) { return Status::Ok(); });
    const uint64_t au = fs->superblock().au_size;
    auto [e, f] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
    ino = f->ino;
    ASSERT_OK(fs->SetXattr(ino, "user.big", std::string(6000, 'x'), 0, kRoot));  // out of line
    ASSERT_OK(fs->Fallocate(f, FALLOC_FL_KEEP_SIZE, 0, big));  // the program's
    Must(fs->Write(f, 0, "abc", 3));
    auto view = Must(fs->PrepareReadView(f, 64, true, kMiB));
    EXPECT_GE(view.limit, big);
    {
      WritePage page(view.write_page_fd);
      page.Publish(4096);
      // A holder killed inside a store past EOF: begin moved, end never did.
      __atomic_fetch_add(page.words + UDAX_WRITE_PAGE_BEGIN_OFFSET / 8, 1, __ATOMIC_SEQ_CST);
      StoreThroughView(img, view, big + 8192, std::string(4096, 'K'));
    }
    // A truncate (which revokes the views first) grows the file over those bytes.
    SetAttrIn in;
    in.size = true;
    in.attr.st_size = static_cast<off_t>(big + 3 * 4096);
    Must(fs->SetAttr(ino, in));
    std::string buf(4096, '\1');
    EXPECT_EQ(Must(fs->Read(f, big + 8192, 4096, buf.data())), 4096u);
    EXPECT_EQ(buf, std::string(4096, '\0'));
    fs->EndReadView(f, true);
    // The preallocation the program made stays whole.
    EXPECT_GE(AllocatedBytes(fs.get(), ino), big);
    // A sparse AU holding EOF: the views still get room past it.
    in.attr.st_size = static_cast<off_t>(4 * kMiB + 100);
    Must(fs->SetAttr(ino, in));
    auto sparse = Must(fs->PrepareReadView(f, 64, true, kMiB));
    EXPECT_GT(sparse.limit, sparse.size);
    fs->EndReadView(f, true);
    // A view that cannot carry every extent past EOF stops short instead of failing.
    auto [e2, other] = Must(fs->Create(kRootIno, "other", 0644, O_RDWR, kRoot));
    auto g = Must(fs->Create(kRootIno, "g", 0644, O_RDWR, kRoot)).second;
    Must(fs->Write(g, 0, "g", 1));
    Must(fs->Write(other, 0, std::string(au, 'o').data(), au));  // right after g's AU
    auto one = Must(fs->PrepareReadView(g, 1, true, kMiB));
    EXPECT_EQ(one.extents.size(), 1u);
    EXPECT_GE(one.limit, one.size);
    EXPECT_EQ(one.limit, one.extents[0].file_offset + one.extents[0].length);
    fs->EndReadView(g, true);
    fs->Release(other);
    fs->Release(g);
    fs->Release(f);
    ASSERT_OK(fs->Unmount());
  }
  auto fs = img.Mount();
  EXPECT_EQ(Must(fs->GetXattr(ino, "user.big")), std::string(6000, 'x'));
}

// Writes into holes (fs_view_reserve.cc, FillForViews): the holes of the chunk asked for
// are allocated zeroed below the size, other views are revoked first, and at the last
// writer's end the AUs that stayed zeros are punched (after a revoke of their maps),
// while written ones, and the program's own preallocation, stay.
TEST(ViewFill, HolesAreFilledBelowTheSizeAndWhatStaysZeroIsPunchedAtTheLastWritersEnd) {
  TestImage img(256ull << 20);
  auto fs = img.Mount();
  struct Revoked {
    uint64_t from, to;
    bool views_only;
  };
  std::vector<Revoked> revokes;
  fs->set_revoke_hook([&](uint64_t, uint64_t from, uint64_t to, bool views_only) {
    revokes.push_back({from, to, views_only});
    return Status::Ok();
  });
  const uint64_t au = fs->superblock().au_size;
  auto [e, f] = Must(fs->Create(kRootIno, "sparse", 0644, O_RDWR, kRoot));
  SetAttrIn in;
  in.size = true;
  in.attr.st_size = static_cast<off_t>(4 * kMiB + 100);
  Must(fs->SetAttr(f->ino, in));
  Must(fs->Write(f, 0, "head", 4));
  auto reader = Must(fs->PrepareReadView(f, 64));  // another holder's read view
  const size_t before = revokes.size();
  // [1 MiB, 2 MiB) and a second ask reaching past the size (clipped to it).
  auto view = Must(fs->PrepareReadView(f, 64, true, 0, {0, kMiB, kMiB}));
  ASSERT_GT(revokes.size(), before);
  EXPECT_TRUE(revokes.back().views_only);  // the read view went first
  EXPECT_EQ(view.size, 4 * kMiB + 100);
  EXPECT_EQ(view.limit, view.size);
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), au + kMiB);
  auto second = Must(fs->PrepareReadView(f, 64, true, 0, {0, 4 * kMiB, 8 * kMiB}));
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), 2 * au + kMiB);  // only the AU holding EOF
  EXPECT_EQ(Must(fs->GetAttr(f->ino)).st_size, 4 * kMiB + 100);  // the size never moves
  // A fill that reads anything but zeros would show stale bytes: it reads zeros.
  std::string buf(kMiB, 'x');
  EXPECT_EQ(Must(fs->Read(f, kMiB, kMiB, buf.data())), kMiB);
  EXPECT_EQ(buf, std::string(kMiB, '\0'));
  StoreThroughView(img, second, kMiB + 5 * au + 7, "data");
  // The program's own preallocation over part of the fill keeps that part.
  ASSERT_OK(fs->Fallocate(f, FALLOC_FL_KEEP_SIZE, kMiB + 8 * au, 2 * au));
  fs->EndReadView(f, true);  // not the last writer: nothing punched yet
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), 2 * au + kMiB);
  revokes.clear();
  fs->EndReadView(f, true);
  // The AU written, the preallocation (two) and the AU holding "head": the filled one
  // holding EOF stayed zeros too.
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), 4 * au);
  ASSERT_FALSE(revokes.empty());  // maps of the punched AUs went first
  EXPECT_FALSE(revokes.back().views_only);
  EXPECT_LE(revokes.back().from, kMiB);
  EXPECT_GE(revokes.back().to, 2 * kMiB);
  EXPECT_EQ(Must(fs->Read(f, kMiB + 5 * au + 7, 4, buf.data())), 4u);
  EXPECT_EQ(buf.substr(0, 4), "data");
  fs->EndReadView(f);  // the reader's
  fs->Release(f);
}

TEST(ViewFill, AFillPastTheBudgetOrOnAReadOnlyViewGetsNothing) {
  TestImage img(64ull << 20);
  auto fs = img.Mount();
  fs->set_revoke_hook([](uint64_t, uint64_t, uint64_t, bool) { return Status::Ok(); });
  const uint64_t au = fs->superblock().au_size;
  auto [e, f] = Must(fs->Create(kRootIno, "sparse", 0644, O_RDWR, kRoot));
  SetAttrIn in;
  in.size = true;
  in.attr.st_size = static_cast<off_t>(32 * kMiB);
  Must(fs->SetAttr(f->ino, in));
  // More than a sixteenth of the free space: the view comes without it.
  auto view = Must(fs->PrepareReadView(f, 64, true, 0, {0, 0, 32 * kMiB}));
  EXPECT_TRUE(view.extents.empty());
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), 0u);
  fs->EndReadView(f, true);
  // Within it, it is filled; a read view never fills.
  auto read = Must(fs->PrepareReadView(f, 64, false, 0, {0, 0, kMiB}));
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), 0u);
  fs->EndReadView(f);
  auto small = Must(fs->PrepareReadView(f, 64, true, 0, {0, 0, kMiB}));
  EXPECT_EQ(small.extents.size(), 1u);
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), kMiB);
  fs->EndReadView(f, true);
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), 0u);  // nothing written: all punched again
  (void)au;
  fs->Release(f);
}

// The revoke before the trim covers every AU it punches, whatever order the fills came in;
// a trim that cannot run now (a writable direct map lives) is kept for the next one.
TEST(ViewFill, TheTrimRevokesEveryRunItPunchesAndWaitsForWritableMaps) {
  TestImage img(256ull << 20);
  auto fs = img.Mount();
  std::vector<std::pair<uint64_t, uint64_t>> revoked;
  fs->set_revoke_hook([&](uint64_t, uint64_t from, uint64_t to, bool views_only) {
    if (!views_only) revoked.emplace_back(from, to);
    return Status::Ok();
  });
  auto [e, f] = Must(fs->Create(kRootIno, "sparse", 0644, O_RDWR, kRoot));
  SetAttrIn in;
  in.size = true;
  in.attr.st_size = static_cast<off_t>(8 * kMiB);
  Must(fs->SetAttr(f->ino, in));
  revoked.clear();  // (the truncate's)
  Must(fs->PrepareReadView(f, 64, true, 0, {0, 5 * kMiB, kMiB}));  // the later chunk first
  Must(fs->PrepareReadView(f, 64, true, 0, {0, kMiB, kMiB}));
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), 2 * kMiB);
  fs->StartMapWriter(f);  // it may store into them at any time: no trim yet
  fs->EndReadView(f, true);
  fs->EndReadView(f, true);
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), 2 * kMiB);
  EXPECT_TRUE(revoked.empty());
  fs->EndMapWriter(f);
  Must(fs->PrepareReadView(f, 64, true));
  fs->EndReadView(f, true);  // the next last writer's end trims them
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), 0u);
  ASSERT_EQ(revoked.size(), 1u);
  EXPECT_LE(revoked[0].first, kMiB);
  EXPECT_GE(revoked[0].second, 6 * kMiB);
  fs->Release(f);
}

// A reservation "at" a write past a gap: the gap stays a hole, the views reach past it,
// and what the size comes to cover and stays zeros is trimmed as a fill's -- while an
// append's reservation the size covers is kept whole, zeros and all (a program that
// appends zeros to have the space, as a database's log does, keeps it).
TEST(ViewReserve, AReservationPastAGapLeavesItAHoleAndAnAppendsZerosStay) {
  TestImage img(256ull << 20);
  auto fs = img.Mount();
  fs->set_revoke_hook([](uint64_t, uint64_t, uint64_t, bool) { return Status::Ok(); });
  const uint64_t au = fs->superblock().au_size;
  auto [e, f] = Must(fs->Create(kRootIno, "gap", 0644, O_RDWR, kRoot));
  auto view = Must(fs->PrepareReadView(f, 64, true, kMiB, {8 * kMiB, 0, 0}));
  EXPECT_EQ(view.size, 0u);
  EXPECT_EQ(view.limit, 9 * kMiB);
  ASSERT_EQ(view.extents.size(), 1u);
  EXPECT_EQ(view.extents[0].file_offset, 8 * kMiB);
  {
    WritePage page(view.write_page_fd);
    StoreThroughView(img, view, 8 * kMiB + 4 * au, std::string(au, 'g'));
    page.Publish(8 * kMiB + 5 * au);
  }
  fs->EndReadView(f, true);
  EXPECT_EQ(Must(fs->GetAttr(f->ino)).st_size, static_cast<off_t>(8 * kMiB + 5 * au));
  EXPECT_EQ(AllocatedBytes(fs.get(), f->ino), au);  // the AU written, nothing else
  std::string buf(au, 'x');
  EXPECT_EQ(Must(fs->Read(f, 4 * kMiB, au, buf.data())), au);
  EXPECT_EQ(buf, std::string(au, '\0'));
  // An append's reservation, zeros published as data: kept.
  auto [e2, log] = Must(fs->Create(kRootIno, "log", 0644, O_RDWR, kRoot));
  auto append = Must(fs->PrepareReadView(log, 64, true, kMiB));
  {
    WritePage page(append.write_page_fd);
    page.Publish(16 * au);  // sixteen AUs of zeros
  }
  fs->EndReadView(log, true);
  EXPECT_EQ(Must(fs->GetAttr(log->ino)).st_size, static_cast<off_t>(16 * au));
  EXPECT_EQ(AllocatedBytes(fs.get(), log->ino), 16 * au);
  fs->Release(log);
  fs->Release(f);
}

}  // namespace
}  // namespace udax
