// extent_test.cc -- extent maps past the inline slots: chains of extent blocks, punching
// by truncation, persistence.
#include <fcntl.h>

#include "fs/core/core_test_util.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

TEST(Extents, FragmentedFileSpillsIntoExtentBlocksAndSurvivesRemount) {
  TestImage img(128ull << 20);
  uint64_t ino, free_before;
  constexpr int kPieces = 600;  // > inline + several 126-slot extent blocks
  {
    auto fs = img.Mount();
    free_before = fs->StatFs().f_bfree;
    auto [e, f] = Must(fs->Create(kRootIno, "frag", 0644, O_RDWR, kRoot));
    auto [e2, g] = Must(fs->Create(kRootIno, "interleave", 0644, O_RDWR, kRoot));
    ino = e.ino;
    // Alternate two files so neither gets contiguous AUs.
    for (int i = 0; i < kPieces; ++i) {
      const std::string tag = "piece" + std::to_string(i);
      ASSERT_EQ(Must(fs->Write(f, uint64_t(i) * 8192, tag.data(), tag.size())), tag.size());
      ASSERT_EQ(Must(fs->Write(g, uint64_t(i) * 4096, "g", 1)), 1u);
    }
    EXPECT_GT(f->d.ext_count, 300u);
    fs->Release(f);
    fs->Release(g);
    ASSERT_OK(fs->Unmount());
  }
  {
    auto fs = img.Mount();
    Inode* f = Must(fs->Open(ino, O_RDWR));
    for (int i = 0; i < kPieces; i += 37) {
      const std::string tag = "piece" + std::to_string(i);
      std::string buf(tag.size(), '\0');
      ASSERT_EQ(Must(fs->Read(f, uint64_t(i) * 8192, buf.size(), buf.data())), buf.size());
      EXPECT_EQ(buf, tag);
      char hole[16];
      ASSERT_EQ(Must(fs->Read(f, uint64_t(i) * 8192 + 4096, 16, hole)), 16u);
      EXPECT_EQ(std::string(hole, 16), std::string(16, '\0'));
    }
    // Truncate to the middle: half the extents and their blocks go.
    SetAttrIn in;
    in.size = true;
    in.attr.st_size = kPieces / 2 * 8192;
    Must(fs->SetAttr(ino, in));
    EXPECT_LE(f->d.ext_count, kPieces / 2u + 1);
    fs->Release(f);
    ASSERT_OK(fs->Unlink(kRootIno, "frag"));
    ASSERT_OK(fs->Unlink(kRootIno, "interleave"));
    ASSERT_OK(fs->Unmount());
  }
  auto fs = img.Mount();
  EXPECT_EQ(fs->StatFs().f_bfree, free_before);
}

}  // namespace
}  // namespace udax
