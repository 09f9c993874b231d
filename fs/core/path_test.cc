// path_test.cc -- Filesystem::PathOf: a real path whenever the inode is reachable, also
// when its parent hint went stale (hard links), and the hint made fresh again.
#include <fcntl.h>
#include <linux/fs.h>

#include "fs/core/core_test_util.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

uint64_t Commits(Filesystem* fs) { return fs->journal_stats().commits; }

TEST(PathOf, HintHoldsForPlainFilesAndDirectories) {
  TestImage img;
  auto fs = img.Mount();
  auto a = Must(fs->Mkdir(kRootIno, "a", 0755, kRoot));
  auto b = Must(fs->Mkdir(a.ino, "b", 0755, kRoot));
  auto f = Must(fs->Mknod(b.ino, "f", S_IFREG | 0644, 0, kRoot));
  const uint64_t before = Commits(fs.get());
  EXPECT_EQ(Must(fs->PathOf(f.ino)), "/a/b/f");
  EXPECT_EQ(Must(fs->PathOf(b.ino)), "/a/b");
  EXPECT_EQ(Must(fs->PathOf(kRootIno)), "/");
  EXPECT_EQ(Commits(fs.get()), before);  // nothing to refresh, nothing written
}

TEST(PathOf, UnlinkOfTheHintedNameOfAHardLink) {
  TestImage img;
  auto fs = img.Mount();
  auto d1 = Must(fs->Mkdir(kRootIno, "d1", 0755, kRoot));
  auto d2 = Must(fs->Mkdir(kRootIno, "d2", 0755, kRoot));
  auto f = Must(fs->Mknod(d1.ino, "a", S_IFREG | 0644, 0, kRoot));
  Must(fs->Link(f.ino, d2.ino, "b"));  // the hint follows the newest name: d2
  EXPECT_EQ(Must(fs->PathOf(f.ino)), "/d2/b");
  ASSERT_OK(fs->Unlink(d2.ino, "b"));  // the hint's directory no longer names it
  const uint64_t before = Commits(fs.get());
  EXPECT_EQ(Must(fs->PathOf(f.ino)), "/d1/a");
  EXPECT_EQ(Commits(fs.get()), before + 1);  // the hint, committed once
  EXPECT_EQ(Must(fs->PathOf(f.ino)), "/d1/a");
  EXPECT_EQ(Commits(fs.get()), before + 1);  // and now it holds
  // The fresh hint is on media: a remount (fresh cache) finds it without a search.
  ASSERT_OK(fs->Unmount());
  fs.reset();
  fs = img.Mount();
  const uint64_t after_mount = Commits(fs.get());
  EXPECT_EQ(Must(fs->PathOf(f.ino)), "/d1/a");
  EXPECT_EQ(Commits(fs.get()), after_mount);
}

TEST(PathOf, RenameOverOneNameOfAHardLink) {
  TestImage img;
  auto fs = img.Mount();
  auto x = Must(fs->Mkdir(kRootIno, "x", 0755, kRoot));
  auto y = Must(fs->Mkdir(kRootIno, "y", 0755, kRoot));
  auto f = Must(fs->Mknod(x.ino, "f", S_IFREG | 0644, 0, kRoot));
  Must(fs->Link(f.ino, y.ino, "g"));
  auto n = Must(fs->Mknod(kRootIno, "n", S_IFREG | 0644, 0, kRoot));
  ASSERT_OK(fs->Rename(kRootIno, "n", y.ino, "g", 0));  // y/g now names n
  EXPECT_EQ(Must(fs->PathOf(f.ino)), "/x/f");
  EXPECT_EQ(Must(fs->PathOf(n.ino)), "/y/g");
  // A rename of the remaining name moves the hint with it.
  ASSERT_OK(fs->Rename(x.ino, "f", y.ino, "moved", 0));
  EXPECT_EQ(Must(fs->PathOf(f.ino)), "/y/moved");
}

TEST(PathOf, HintDirectoryRemovedAndItsSlotReused) {
  TestImage img;
  auto fs = img.Mount();
  auto keep = Must(fs->Mkdir(kRootIno, "keep", 0755, kRoot));
  auto f = Must(fs->Mknod(keep.ino, "f", S_IFREG | 0644, 0, kRoot));
  auto t = Must(fs->Mkdir(kRootIno, "t", 0755, kRoot));
  Must(fs->Link(f.ino, t.ino, "h"));
  ASSERT_OK(fs->Unlink(t.ino, "h"));
  ASSERT_OK(fs->Rmdir(kRootIno, "t"));
  fs->Forget(t.ino, 1);
  EXPECT_EQ(Must(fs->PathOf(f.ino)), "/keep/f");  // hint names a free inode
  Must(fs->Link(f.ino, keep.ino, "g"));
  auto t2 = Must(fs->Mkdir(kRootIno, "t2", 0755, kRoot));
  Must(fs->Link(f.ino, t2.ino, "h"));
  ASSERT_OK(fs->Unlink(t2.ino, "h"));
  ASSERT_OK(fs->Rmdir(kRootIno, "t2"));
  fs->Forget(t2.ino, 1);
  auto reused = Must(fs->Mkdir(kRootIno, "other", 0755, kRoot));  // may take t2's slot
  Must(fs->Mknod(reused.ino, "x", S_IFREG | 0644, 0, kRoot));
  const std::string p = Must(fs->PathOf(f.ino));
  EXPECT_TRUE(p == "/keep/f" || p == "/keep/g") << p;
}

TEST(PathOf, SearchWidensFromTheHintToTheRoot) {
  // The remaining name sits in another branch of a tree of some hundred directories.
  TestImage img;
  auto fs = img.Mount();
  std::vector<uint64_t> leaves;
  for (int i = 0; i < 8; ++i) {
    auto top = Must(fs->Mkdir(kRootIno, "t" + std::to_string(i), 0755, kRoot));
    for (int j = 0; j < 12; ++j) {
      auto mid = Must(fs->Mkdir(top.ino, "m" + std::to_string(j), 0755, kRoot));
      leaves.push_back(mid.ino);
      for (int k = 0; k < 20; ++k) {
        Must(fs->Mknod(mid.ino, "x" + std::to_string(k), S_IFREG | 0644, 0, kRoot));
      }
    }
  }
  auto f = Must(fs->Mknod(leaves[95], "target", S_IFREG | 0644, 0, kRoot));  // t7/m11
  Must(fs->Link(f.ino, leaves[0], "near"));                                // t0/m0
  Must(fs->Link(f.ino, leaves[3], "other"));                               // t0/m3
  ASSERT_OK(fs->Unlink(leaves[3], "other"));
  EXPECT_EQ(Must(fs->PathOf(f.ino)), "/t0/m0/near");  // a sibling of the hint's branch
  ASSERT_OK(fs->Unlink(leaves[0], "near"));
  EXPECT_EQ(Must(fs->PathOf(f.ino)), "/t7/m11/target");  // the far end of the tree
}

TEST(PathOf, LookupThroughAnotherNameRefreshesAStaleHint) {
  TestImage img;
  auto fs = img.Mount();
  auto d1 = Must(fs->Mkdir(kRootIno, "d1", 0755, kRoot));
  auto d2 = Must(fs->Mkdir(kRootIno, "d2", 0755, kRoot));
  auto f = Must(fs->Mknod(d1.ino, "a", S_IFREG | 0644, 0, kRoot));
  Must(fs->Link(f.ino, d2.ino, "b"));
  ASSERT_OK(fs->Unlink(d2.ino, "b"));
  Must(fs->Lookup(d1.ino, "a"));  // the kernel resolves the other name
  const uint64_t before = Commits(fs.get());
  EXPECT_EQ(Must(fs->PathOf(f.ino)), "/d1/a");
  EXPECT_EQ(Commits(fs.get()), before);  // no search was needed: nothing to commit
  // The hint reaches media with the inode's last forget.
  fs->Forget(f.ino, 3);
  EXPECT_EQ(Commits(fs.get()), before + 1);
  auto report = Must(fs->checker().CheckNamespace());
  EXPECT_EQ(report.problems, 0u) << (report.messages.empty() ? "" : report.messages[0]);
}

TEST(PathOf, UnlinkedAndOpenHasNoPath) {
  TestImage img;
  auto fs = img.Mount();
  auto [e, f] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
  ASSERT_OK(fs->Unlink(kRootIno, "f"));
  auto r = fs->PathOf(e.ino);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOENT);
  fs->Release(f);
}

TEST(PathOf, ReadOnlyMountFindsTheNameAndWritesNothing) {
  TestImage img;
  uint64_t ino;
  {
    auto fs = img.Mount();
    auto d1 = Must(fs->Mkdir(kRootIno, "d1", 0755, kRoot));
    auto d2 = Must(fs->Mkdir(kRootIno, "d2", 0755, kRoot));
    ino = Must(fs->Mknod(d1.ino, "a", S_IFREG | 0644, 0, kRoot)).ino;
    Must(fs->Link(ino, d2.ino, "b"));
    ASSERT_OK(fs->Unlink(d2.ino, "b"));
    ASSERT_OK(fs->Unmount());
  }
  MountOptions ro;
  ro.read_only = true;
  auto fs = img.Mount(ro);
  const uint64_t before = Commits(fs.get());
  EXPECT_EQ(Must(fs->PathOf(ino)), "/d1/a");
  EXPECT_EQ(Must(fs->PathOf(ino)), "/d1/a");
  EXPECT_EQ(Commits(fs.get()), before);
}

}  // namespace
}  // namespace udax
