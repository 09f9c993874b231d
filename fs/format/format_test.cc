// format_test.cc -- on-media records: sizes, geometry, seal/verify round trips, corruption.
#include <gtest/gtest.h>

#include <cstring>

#include "fs/format/crc32c.h"
#include "fs/format/layout.h"

namespace udax {
namespace {

TEST(Crc32c, StandardCheckValue) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
  // Chaining equals one pass.
  EXPECT_EQ(Crc32c("6789", 4, Crc32c("12345", 5)), 0xE3069283u);
}

TEST(Geometry, OneGibEmulated) {
  MkfsParams p;
  p.region_size = 1ull << 30;
  auto sb = ComputeGeometry(p);
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_EQ(sb->au_count, (1ull << 30) / 4096);
  EXPECT_EQ(sb->inode_count, (1ull << 30) / 8192);
  EXPECT_EQ(sb->data_off % 4096, 0u);
  EXPECT_LT(sb->data_off, (1ull << 30) / 10);  // metadata under 10%
  SuperblockSeal(&sb.value());
  EXPECT_TRUE(SuperblockVerify(*sb, 1ull << 30).ok());
}

TEST(Geometry, TwoMibAu) {
  MkfsParams p;
  p.region_size = 1ull << 30;
  p.au_size = kAuSize2M;
  auto sb = ComputeGeometry(p);
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_EQ(sb->data_off % kAuSize2M, 0u);
  SuperblockSeal(&sb.value());
  EXPECT_TRUE(SuperblockVerify(*sb, 1ull << 30).ok());
}

TEST(Geometry, RejectsTooSmallAndBadAu) {
  MkfsParams p;
  p.region_size = 64 << 10;
  EXPECT_EQ(ComputeGeometry(p).status().code(), EINVAL);
  p.region_size = 1ull << 30;
  p.au_size = 8192;
  EXPECT_EQ(ComputeGeometry(p).status().code(), EINVAL);
}

TEST(Superblock, DetectsCorruptionAndTruncation) {
  MkfsParams p;
  p.region_size = 64ull << 20;
  auto sb = ComputeGeometry(p);
  ASSERT_TRUE(sb.ok());
  SuperblockSeal(&sb.value());
  DiskSuperblock bad = *sb;
  bad.inode_count++;
  EXPECT_EQ(SuperblockVerify(bad, p.region_size).code(), EUCLEAN);
  bad = *sb;
  bad.magic[0] = 'X';
  EXPECT_NE(SuperblockVerify(bad, p.region_size).message().find("magic"), std::string::npos);
  EXPECT_NE(SuperblockVerify(*sb, p.region_size / 2).message().find("truncated"),
            std::string::npos);
  // A geometry lie with a valid CRC is still caught.
  bad = *sb;
  bad.itable_off = bad.journal_off;
  SuperblockSeal(&bad);
  EXPECT_FALSE(SuperblockVerify(bad, p.region_size).ok());
}

TEST(Inode, SealVerify) {
  DiskInode in;
  std::memset(&in, 0, sizeof(in));
  in.magic = kInodeMagic;
  in.mode = 0100644;
  InodeSeal(&in);
  EXPECT_TRUE(InodeVerify(in, 5).ok());
  in.size = 1;
  EXPECT_FALSE(InodeVerify(in, 5).ok());
}

TEST(Extent, CrcIsBoundToOwner) {
  DiskExtent e{10, 200, 3, 0, 0, 0};
  ExtentSeal(&e, 7);
  EXPECT_TRUE(ExtentValid(e, 7));
  EXPECT_FALSE(ExtentValid(e, 8));  // a slot copied to another inode is detected
}

TEST(DirBlock, RoundTripAndCorruption) {
  DirBlock b;
  b.next = 3;
  for (int i = 0; i < 20; ++i) {
    b.entries.push_back({static_cast<uint64_t>(i + 2), NameHash("f" + std::to_string(i), 1),
                         8, "f" + std::to_string(i)});
  }
  uint8_t buf[kBlockSize];
  DirBlockEncode(b, buf);
  DirBlock out;
  ASSERT_TRUE(DirBlockDecode(buf, &out).ok());
  ASSERT_EQ(out.entries.size(), 20u);
  EXPECT_EQ(out.next, 3u);
  EXPECT_EQ(out.entries[7].name, "f7");
  EXPECT_EQ(out.entries[7].ino, 9u);
  buf[100] ^= 1;
  EXPECT_EQ(DirBlockDecode(buf, &out).code(), EUCLEAN);
}

}  // namespace
}  // namespace udax
