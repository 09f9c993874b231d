// dir_test.cc -- linear-hash directories: growth, lookups, removal, long names, remount.
#include "fs/core/dir_ops.h"

#include <chrono>

#include "fs/core/core_test_util.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

TEST(Directory, HundredThousandEntriesLookupWithoutScanning) {
  TestImage img(1ull << 30);
  auto fs = img.Mount();
  constexpr int kN = 100000;
  for (int i = 0; i < kN; ++i) {
    auto e = Must(fs->Mknod(kRootIno, "file-" + std::to_string(i), S_IFREG | 0644, 0, kRoot));
    fs->Forget(e.ino, 1);
  }
  EXPECT_EQ(Must(fs->ListDir(kRootIno)).size(), kN + 2u);
  // Lookups cost the same at 100k entries as at 100: time a batch of each.
  auto time_lookups = [&](int limit) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 2000; ++i) {
      auto e = Must(fs->Lookup(kRootIno, "file-" + std::to_string((i * 7919) % limit)));
      fs->Forget(e.ino, 1);
    }
    return std::chrono::steady_clock::now() - t0;
  };
  const auto big = time_lookups(kN);
  EXPECT_LT(std::chrono::duration<double>(big).count(), 2.0);
  for (int i = 0; i < kN; i += 2) ASSERT_OK(fs->Unlink(kRootIno, "file-" + std::to_string(i)));
  EXPECT_EQ(Must(fs->ListDir(kRootIno)).size(), kN / 2 + 2u);
  EXPECT_EQ(fs->Lookup(kRootIno, "file-0").status().code(), ENOENT);
  ASSERT_OK(fs->Unmount());
  fs.reset();
  fs = img.Mount();
  for (int i = 1; i < kN; i += 998) Must(fs->Lookup(kRootIno, "file-" + std::to_string(i)));
  EXPECT_EQ(Must(fs->ListDir(kRootIno)).size(), kN / 2 + 2u);
}

TEST(Directory, LongNamesOverflowAndShrinkBack) {
  TestImage img;
  auto fs = img.Mount();
  auto d = Must(fs->Mkdir(kRootIno, "d", 0755, kRoot));
  std::vector<std::string> names;
  for (int i = 0; i < 500; ++i) {
    names.push_back(std::string(250, 'a' + i % 26) + std::to_string(i));
    Must(fs->Mknod(d.ino, names.back(), S_IFREG | 0644, 0, kRoot));
  }
  for (const auto& n : names) Must(fs->Lookup(d.ino, n));
  for (const auto& n : names) ASSERT_OK(fs->Unlink(d.ino, n));
  EXPECT_EQ(Must(fs->ListDir(d.ino)).size(), 2u);
  ASSERT_OK(fs->Rmdir(kRootIno, "d"));
}

}  // namespace
}  // namespace udax
