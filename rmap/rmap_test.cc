// rmap_test.cc -- the reverse map's own records: encoding, damage, and the writes Records()
// hands to the core's journal. (The maps kept by a mounted filesystem are checked against
// each other in fs/core/rmap_maps_test.cc.)
#include "rmap/rmap.h"

#include <gtest/gtest.h>

#include "fs/base/status_testing.h"
#include "fs/format/layout.h"

namespace udax {
namespace {

TEST(ReverseMap, RecordRoundTripAndDamage) {
  Owner o{OwnerKind::kFileData, 77, 0x12345, 9};
  DiskRmapRecord r = ReverseMap::Encode(1000, o);
  auto back = Must(ReverseMap::Decode(1000, r));
  EXPECT_EQ(back.ino, 77u);
  EXPECT_EQ(back.generation, 0x2345u);
  EXPECT_EQ(back.file_au, 9u);
  EXPECT_FALSE(ReverseMap::Decode(1001, r).ok());  // a record moved to another AU
  r.file_au ^= 1;
  EXPECT_FALSE(ReverseMap::Decode(1000, r).ok());
}

TEST(ReverseMap, RecordsForARunAreConsecutiveAndCountFileAus) {
  DiskSuperblock sb{};
  sb.rmap_off = 1 << 20;
  sb.au_size = 4096;
  ReverseMap rmap(nullptr, sb);
  const RmapRecords recs = rmap.Records(10, 3, Owner{OwnerKind::kFileData, 5, 2, 100});
  EXPECT_EQ(recs.offset, sb.rmap_off + 10 * sizeof(DiskRmapRecord));
  ASSERT_EQ(recs.records.size(), 3u);
  EXPECT_EQ(recs.bytes(), 3 * sizeof(DiskRmapRecord));
  for (uint64_t i = 0; i < 3; ++i) {
    const Owner o = Must(ReverseMap::Decode(10 + i, recs.records[i]));
    EXPECT_EQ(o.kind, OwnerKind::kFileData);
    EXPECT_EQ(o.ino, 5u);
    EXPECT_EQ(o.file_au, 100 + i);
  }
  EXPECT_TRUE(rmap.Records(10, 0, Owner{}).records.empty());
}

}  // namespace
}  // namespace udax
