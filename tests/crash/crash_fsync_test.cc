// crash_fsync_test.cc -- fsync makes durable the stores the daemon never saw: those of
// writable views (the preload shim's write(2)) and writable direct maps (libudax), made
// straight into the file's extents through cached lines (devdax, fsdax). POSIX asks it of
// an fsync by anyone, through any descriptor: the writer's own shim flushes only what its
// view stored, and another process has nothing to flush with. The shadow region says
// what a power cut would leave.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fs/base/status_testing.h"
#include "fs/core/core_test_util.h"
#include "fs/core/filesystem.h"
#include "tests/crash/shadow_region.h"

namespace udax {
namespace {

TEST(CrashFsync, DirectStoresAreDurableAfterAnyonesFsync) {
  TestImage img(16ull << 20);
  auto inner = Region::Open(img.path(), RegionOptions{});
  ASSERT_TRUE(inner.ok()) << inner.status().ToString();
  auto shadow_owned = std::make_unique<ShadowRegion>(std::move(inner).value());
  ShadowRegion* shadow = shadow_owned.get();
  shadow->set_kind(RegionKind::kDevdax);
  auto fs = Must(Filesystem::MountRegion(std::move(shadow_owned), {}));

  const size_t n = 64 << 10;
  auto [entry, inode] = Must(fs->Create(kRootIno, "f", S_IFREG | 0644, O_RDWR, Caller()));
  const std::string a(n, 'a');
  ASSERT_EQ(Must(fs->Write(inode, 0, a.data(), a.size())), a.size());
  ASSERT_OK(fs->Fsync(inode, false));
  const std::vector<BmapExtent> extents = Must(fs->Bmap(entry.ino));
  ASSERT_FALSE(extents.empty());
  const uint64_t phys = extents[0].phys_offset;
  ASSERT_GE(extents[0].length, 4096u);
  std::mt19937_64 rng(1);
  // What a power cut right now leaves in the file's first 4 KiB: 'x' if all of it is
  // the byte, '?' otherwise.
  auto durable = [&] {
    const std::vector<uint8_t> image = shadow->CrashImage(&rng, 0.0);
    const uint8_t c = image[phys];
    for (size_t i = 1; i < 4096; ++i) {
      if (image[phys + i] != c) return '?';
    }
    return static_cast<char>(c);
  };
  // A store the daemon never sees, as a client's through its own mapping of the extent.
  auto store = [&](char c) { std::memset(shadow->base() + phys, c, 4096); };
  ASSERT_EQ(durable(), 'a');

  // A writable view: its stores are not durable until an fsync, and then they are,
  // whoever asks (the Filesystem cannot tell, and must not need to).
  Filesystem::ReadView view = Must(fs->PrepareReadView(inode, 64, /*writable=*/true));
  store('b');
  EXPECT_EQ(durable(), 'a');  // the harness sees a store that was not flushed
  ASSERT_OK(fs->Fsync(inode, false));
  EXPECT_EQ(durable(), 'b');
  // Stores made before the view ended are flushed by a later fsync too.
  store('c');
  fs->EndReadView(inode, /*writable=*/true);
  ASSERT_OK(fs->Fsync(inode, true));
  EXPECT_EQ(durable(), 'c');
  // A writable direct map the same way, while it lives and after.
  fs->StartMapWriter(inode);
  store('d');
  ASSERT_OK(fs->Fsync(inode, false));
  EXPECT_EQ(durable(), 'd');
  store('e');
  fs->EndMapWriter(inode);
  ASSERT_OK(fs->Fsync(inode, false));
  EXPECT_EQ(durable(), 'e');
  // With no writable view or map since the last fsync, there is nothing the daemon did
  // not write itself: fsync flushes nothing more (a store now is nobody's, and stays
  // dirty: the harness shows the fsync did not sweep the file).
  store('f');
  ASSERT_OK(fs->Fsync(inode, false));
  EXPECT_EQ(durable(), 'e');
  fs->Release(inode);
  EXPECT_OK(fs->Unmount());
}

}  // namespace
}  // namespace udax
