// filesystem_test.cc -- the core API end to end: namespace, data, persistence, orphans.
#include "fs/core/filesystem.h"

#include <fcntl.h>
#include <linux/fs.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "fs/core/core_test_util.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

std::string ReadAll(Filesystem* fs, Inode* f) {
  std::string out(f->d.size, '\0');
  auto n = fs->Read(f, 0, out.size(), out.data());
  EXPECT_TRUE(n.ok());
  out.resize(n.ok() ? *n : 0);
  return out;
}

TEST(Filesystem, CreateWriteReadRemount) {
  TestImage img;
  {
    auto fs = img.Mount();
    auto [e, f] = Must(fs->Create(kRootIno, "hello", 0644, O_RDWR, kRoot));
    EXPECT_EQ(e.attr.st_mode, S_IFREG | 0644u);
    EXPECT_EQ(Must(fs->Write(f, 0, "hello world", 11)), 11u);
    EXPECT_EQ(ReadAll(fs.get(), f), "hello world");
    fs->Release(f);
    ASSERT_OK(fs->Unmount());
  }
  auto fs = img.Mount();
  auto e = Must(fs->Lookup(kRootIno, "hello"));
  EXPECT_EQ(e.attr.st_size, 11);
  Inode* f = Must(fs->Open(e.ino, O_RDONLY));
  EXPECT_EQ(ReadAll(fs.get(), f), "hello world");
  fs->Release(f);
}

TEST(Filesystem, NamespaceErrors) {
  TestImage img;
  auto fs = img.Mount();
  auto d = Must(fs->Mkdir(kRootIno, "d", 0755, kRoot));
  EXPECT_EQ(fs->Mkdir(kRootIno, "d", 0755, kRoot).status().code(), EEXIST);
  Must(fs->Mknod(d.ino, "f", S_IFREG | 0600, 0, kRoot));
  EXPECT_EQ(fs->Rmdir(kRootIno, "d").code(), ENOTEMPTY);
  EXPECT_EQ(fs->Unlink(kRootIno, "d").code(), EISDIR);
  EXPECT_EQ(fs->Lookup(kRootIno, "nope").status().code(), ENOENT);
  EXPECT_EQ(fs->Mkdir(kRootIno, std::string(256, 'x'), 0755, kRoot).status().code(),
            ENAMETOOLONG);
  auto f = Must(fs->Lookup(d.ino, "f"));
  EXPECT_EQ(fs->Link(d.ino, kRootIno, "dl").status().code(), EPERM);
  EXPECT_EQ(fs->Rename(kRootIno, "d", d.ino, "sub", 0).code(), EINVAL);  // below itself
  EXPECT_EQ(Must(fs->GetAttr(kRootIno)).st_nlink, 3u);
  ASSERT_OK(fs->Unlink(d.ino, "f"));
  ASSERT_OK(fs->Rmdir(kRootIno, "d"));
  EXPECT_EQ(Must(fs->GetAttr(kRootIno)).st_nlink, 2u);
  (void)f;
}

TEST(Filesystem, HardLinksAndSymlinks) {
  TestImage img;
  auto fs = img.Mount();
  auto a = Must(fs->Mknod(kRootIno, "a", S_IFREG | 0644, 0, kRoot));
  auto b = Must(fs->Link(a.ino, kRootIno, "b"));
  EXPECT_EQ(b.attr.st_nlink, 2u);
  ASSERT_OK(fs->Unlink(kRootIno, "a"));
  EXPECT_EQ(Must(fs->GetAttr(b.ino)).st_nlink, 1u);
  auto s = Must(fs->Symlink(kRootIno, "short", "b", kRoot));
  EXPECT_EQ(Must(fs->ReadLink(s.ino)), "b");
  const std::string long_target(4000, 'y');
  auto l = Must(fs->Symlink(kRootIno, "long", long_target, kRoot));
  EXPECT_EQ(Must(fs->ReadLink(l.ino)), long_target);
  EXPECT_EQ(fs->Symlink(kRootIno, "toolong", std::string(4096, 'z'), kRoot).status().code(),
            ENAMETOOLONG);
  ASSERT_OK(fs->Unmount());
  fs.reset();
  fs = img.Mount();
  auto l2 = Must(fs->Lookup(kRootIno, "long"));
  EXPECT_EQ(Must(fs->ReadLink(l2.ino)), long_target);
}

TEST(Filesystem, RenameOverAndExchange) {
  TestImage img;
  auto fs = img.Mount();
  auto x = Must(fs->Mknod(kRootIno, "x", S_IFREG | 0644, 0, kRoot));
  auto y = Must(fs->Mknod(kRootIno, "y", S_IFREG | 0644, 0, kRoot));
  fs->Forget(y.ino, 1);
  ASSERT_OK(fs->Rename(kRootIno, "x", kRootIno, "y", 0));
  EXPECT_EQ(Must(fs->Lookup(kRootIno, "y")).ino, x.ino);
  EXPECT_EQ(fs->Lookup(kRootIno, "x").status().code(), ENOENT);
  auto d1 = Must(fs->Mkdir(kRootIno, "d1", 0755, kRoot));
  auto d2 = Must(fs->Mkdir(kRootIno, "d2", 0755, kRoot));
  Must(fs->Mkdir(d1.ino, "sub", 0755, kRoot));
  EXPECT_EQ(fs->Rename(kRootIno, "y", kRootIno, "d1", 0).code(), EISDIR);
  EXPECT_EQ(fs->Rename(kRootIno, "d2", kRootIno, "y", 0).code(), ENOTDIR);
  EXPECT_EQ(fs->Rename(kRootIno, "d2", kRootIno, "d1", 0).code(), ENOTEMPTY);
  EXPECT_EQ(fs->Rename(kRootIno, "y", kRootIno, "d2", RENAME_NOREPLACE).code(), EEXIST);
  ASSERT_OK(fs->Rename(d1.ino, "sub", d2.ino, "sub", 0));
  EXPECT_EQ(Must(fs->GetAttr(d1.ino)).st_nlink, 2u);
  EXPECT_EQ(Must(fs->GetAttr(d2.ino)).st_nlink, 3u);
  auto sub = Must(fs->Lookup(d2.ino, ".."));
  EXPECT_EQ(sub.ino, kRootIno);
  auto subp = Must(fs->Lookup(Must(fs->Lookup(d2.ino, "sub")).ino, ".."));
  EXPECT_EQ(subp.ino, d2.ino);
  ASSERT_OK(fs->Rename(kRootIno, "y", kRootIno, "d1", RENAME_EXCHANGE));
  EXPECT_EQ(Must(fs->Lookup(kRootIno, "d1")).ino, x.ino);
  EXPECT_EQ(Must(fs->Lookup(kRootIno, "y")).ino, d1.ino);
}

TEST(Filesystem, SparseFileHolesReadZeroAndTakeNoSpace) {
  TestImage img;
  auto fs = img.Mount();
  auto [e, f] = Must(fs->Create(kRootIno, "sparse", 0644, O_RDWR, kRoot));
  const uint64_t off = 10ull << 20;
  ASSERT_EQ(Must(fs->Write(f, off, "end", 3)), 3u);
  auto st = Must(fs->GetAttr(e.ino));
  EXPECT_EQ(st.st_size, static_cast<off_t>(off + 3));
  EXPECT_EQ(st.st_blocks, 8);  // one 4 KiB AU
  std::string buf(8192, 'x');
  ASSERT_EQ(Must(fs->Read(f, off - 4096, 8192, buf.data())), 4099u);
  EXPECT_EQ(buf.substr(0, 4096), std::string(4096, '\0'));
  EXPECT_EQ(buf.substr(4096, 3), "end");
  fs->Release(f);
}

TEST(Filesystem, TruncateZeroesTheTailOnRegrowth) {
  TestImage img;
  auto fs = img.Mount();
  auto [e, f] = Must(fs->Create(kRootIno, "t", 0644, O_RDWR, kRoot));
  std::string data(10000, 'a');
  ASSERT_EQ(Must(fs->Write(f, 0, data.data(), data.size())), data.size());
  SetAttrIn in;
  in.size = true;
  in.attr.st_size = 5000;
  Must(fs->SetAttr(e.ino, in));
  EXPECT_EQ(Must(fs->GetAttr(e.ino)).st_blocks, 16);  // 2 AUs kept
  in.attr.st_size = 9000;
  Must(fs->SetAttr(e.ino, in));
  std::string out = ReadAll(fs.get(), f);
  ASSERT_EQ(out.size(), 9000u);
  EXPECT_EQ(out.substr(0, 5000), std::string(5000, 'a'));
  EXPECT_EQ(out.substr(5000), std::string(4000, '\0'));
  // Writing past EOF leaves zeros in the gap too.
  in.attr.st_size = 100;
  Must(fs->SetAttr(e.ino, in));
  ASSERT_EQ(Must(fs->Write(f, 200, "z", 1)), 1u);
  out = ReadAll(fs.get(), f);
  EXPECT_EQ(out, std::string(100, 'a') + std::string(100, '\0') + "z");
  fs->Release(f);
}

TEST(Filesystem, UnlinkWhileOpenKeepsDataUntilRelease) {
  TestImage img;
  uint64_t free_before;
  {
    auto fs = img.Mount();
    free_before = fs->StatFs().f_bfree;
    auto [e, f] = Must(fs->Create(kRootIno, "open", 0644, O_RDWR, kRoot));
    std::string data(1 << 20, 'q');
    ASSERT_EQ(Must(fs->Write(f, 0, data.data(), data.size())), data.size());
    ASSERT_OK(fs->Unlink(kRootIno, "open"));
    EXPECT_EQ(ReadAll(fs.get(), f), data);  // still readable through the handle
    EXPECT_LT(fs->StatFs().f_bfree, free_before);
    fs->Forget(e.ino, 1);
    fs->Release(f);
    EXPECT_EQ(fs->StatFs().f_bfree, free_before);
  }
  {
    // Crash while an unlinked file is open: the next mount frees it (orphan list).
    auto fs = img.Mount();
    auto [e, f] = Must(fs->Create(kRootIno, "open2", 0644, O_RDWR, kRoot));
    std::string data(1 << 20, 'r');
    ASSERT_EQ(Must(fs->Write(f, 0, data.data(), data.size())), data.size());
    ASSERT_OK(fs->Unlink(kRootIno, "open2"));
    // no Release, no Unmount: the object is dropped as if the daemon died
  }
  auto fs = img.Mount();
  EXPECT_EQ(fs->StatFs().f_bfree, free_before);
}

TEST(Filesystem, NoSpaceLeavesEverythingIntact) {
  TestImage img(32ull << 20);
  auto fs = img.Mount();
  auto [e, keep] = Must(fs->Create(kRootIno, "keep", 0644, O_RDWR, kRoot));
  ASSERT_EQ(Must(fs->Write(keep, 0, "precious", 8)), 8u);
  auto [e2, big] = Must(fs->Create(kRootIno, "big", 0644, O_RDWR, kRoot));
  std::string chunk(1 << 20, 'b');
  uint64_t off = 0;
  Status last;
  for (int i = 0; i < 64; ++i) {
    auto n = fs->Write(big, off, chunk.data(), chunk.size());
    if (!n.ok()) {
      last = n.status();
      break;
    }
    off += *n;
  }
  EXPECT_EQ(last.code(), ENOSPC);
  EXPECT_LT(fs->StatFs().f_bavail, 3u);
  EXPECT_EQ(ReadAll(fs.get(), keep), "precious");
  EXPECT_EQ(Must(fs->GetAttr(e2.ino)).st_size, static_cast<off_t>(off));
  fs->Release(big);
  ASSERT_OK(fs->Unlink(kRootIno, "big"));
  fs->Forget(e2.ino, 1);
  Must(fs->Mkdir(kRootIno, "after", 0755, kRoot));
  fs->Release(keep);
  ASSERT_OK(fs->Unmount());
  fs.reset();
  fs = img.Mount();
  EXPECT_EQ(Must(fs->Lookup(kRootIno, "keep")).attr.st_size, 8);
}

TEST(Filesystem, TwoMibAllocationUnits) {
  TestImage img(256ull << 20, kAuSize2M);
  auto fs = img.Mount();
  auto [e, f] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
  std::string data(3 << 20, 'm');
  ASSERT_EQ(Must(fs->Write(f, 4096, data.data(), data.size())), data.size());
  EXPECT_EQ(Must(fs->GetAttr(e.ino)).st_blocks, (4 << 20) / 512);
  std::string out = ReadAll(fs.get(), f);
  EXPECT_EQ(out.substr(0, 4096), std::string(4096, '\0'));
  EXPECT_EQ(out.substr(4096), data);
  fs->Release(f);
}

TEST(Filesystem, SecondMountOfTheSameImageIsRefused) {
  TestImage img;
  auto fs = img.Mount();
  auto second = Filesystem::Mount(img.path(), {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), EBUSY);
}

TEST(Filesystem, GarbageImageIsRefusedWithoutWriting) {
  TestImage img;
  {
    RegionOptions ro;
    auto r = Must(Region::Open(img.path(), ro));
    std::vector<uint8_t> junk(8192);
    std::mt19937 rng(1);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    ASSERT_OK(r->WriteSafe(0, junk.data(), junk.size(), true));
    ASSERT_OK(r->WriteSafe(r->size() - 4096, junk.data(), 4096, true));
  }
  auto fs = Filesystem::Mount(img.path(), {});
  ASSERT_FALSE(fs.ok());
  EXPECT_NE(fs.status().message().find("magic"), std::string::npos) << fs.status().message();
}

TEST(Filesystem, DamagedPrimarySuperblockFallsBackToReplica) {
  TestImage img;
  {
    auto r = Must(Region::Open(img.path(), RegionOptions{}));
    ASSERT_OK(r->ZeroSafe(100, 8, true));  // break the primary's CRC
  }
  auto fs = img.Mount();
  ASSERT_TRUE(fs);
  Must(fs->Mkdir(kRootIno, "ok", 0755, kRoot));
}

// The fixture itself: an image mkfs refuses (below the minimum size) throws, and leaves
// no file behind in /dev/shm.
TEST(TestImageFixture, ARefusedImageLeavesNoFile) {
  auto images = [] {
    const std::string prefix = "udax_core_test_" + std::to_string(getpid()) + "_";
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
      n += e.path().filename().string().rfind(prefix, 0) == 0;
    }
    return n;
  };
  const size_t before = images();
  EXPECT_THROW(TestImage(4ull << 20, kAuSize4K), std::runtime_error);
  EXPECT_EQ(images(), before);
}

}  // namespace
}  // namespace udax
