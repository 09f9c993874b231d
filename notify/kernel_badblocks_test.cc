// kernel_badblocks_test.cc -- translating kernel badblocks; targets that are no pmem.
//
// Finding a real nd region goes through libndctl, which reads the live /sys: that part
// runs in the QEMU lab (scripts/lab: poison, mce and inject scenarios on a QEMU nvdimm and
// on the kernel's nfit_test bus), where `udaxctl list --media-errors` and the daemon's
// poller name the owners of the kernel's badblocks.
#include "notify/kernel_badblocks.h"

#include "notify/test_util.h"

namespace udax {
namespace {

using Ranges = std::vector<BadblockRange>;

// The layout Linux 6.1 shows for a devdax namespace on a QEMU nvdimm (shared/lab): a
// 1 GiB region at 0x140000000, namespace0.0 at its start, a 2 MiB info block, so the dax
// device's data starts at 0x140200000 (region sector 4096).
TEST(KernelBadblocksTest, DevdaxTranslatesRegionSectorsToDeviceOffsets) {
  KernelBadblocks kb;
  kb.kind = KernelBadblocksKind::kDevdax;
  kb.file_base = 0x140000000;
  kb.target_start = 0x140200000;
  kb.target_size = 1071644672;
  BadblockList raw;
  raw.Add(4104, 8);
  raw.Add(4096, 1);
  raw.Add(16, 2);
  // Region sector 4096 is device sector 0; sectors 16-17 lie in the info block: dropped.
  EXPECT_EQ(TranslateKernelBadblocks(raw, kb).ranges(), (Ranges{{0, 1}, {8, 8}}));
}

TEST(KernelBadblocksTest, PartitionOfAPmemDisk) {
  // The disk's list, seen from a partition that starts at disk sector 16, 100 sectors.
  KernelBadblocks kb;
  kb.kind = KernelBadblocksKind::kPmemDisk;
  kb.target_start = 16 * 512;
  kb.target_size = 100 * 512;
  BadblockList raw;
  raw.Add(8, 1);    // before the partition
  raw.Add(20, 4);   // partition sectors 4-7
  raw.Add(115, 4);  // partition sectors 99-102: clipped to 99
  EXPECT_EQ(TranslateKernelBadblocks(raw, kb).ranges(), (Ranges{{4, 4}, {99, 1}}));
}

TEST(KernelBadblocksTest, RealTargetsWithoutKernelBadblocks) {
  ScratchDir dir;
  // An emulated image on tmpfs: no block device under it.
  const std::string img = dir.Write("img", "x");
  EXPECT_EQ(LocateKernelBadblocks(img).status().code(), EOPNOTSUPP);
  EXPECT_EQ(LocateKernelBadblocks("/dev/null").status().code(), EOPNOTSUPP);
  EXPECT_EQ(LocateKernelBadblocks(dir / "missing").status().code(), ENOENT);
  EXPECT_EQ(LocateKernelBadblocks(dir.path()).status().code(), EOPNOTSUPP);  // a directory
}

TEST(KernelBadblocksTest, NoScrubWhereTheBusHasNone) {
  KernelBadblocks kb;
  kb.target = "/dev/dax9.9";
  kb.bus = "ndbus9";
  kb.bus_provider = "e820";
  auto r = ScrubKernelBadblocks(kb, std::chrono::seconds(1));
  EXPECT_EQ(r.status().code(), EOPNOTSUPP);
  EXPECT_NE(r.status().message().find("e820"), std::string::npos) << r.status().message();
}

TEST(KernelBadblocksTest, TranslationClipsAndRoundsOutward) {
  KernelBadblocks w;
  w.file_base = 1000;     // not sector-aligned against the target start
  w.target_start = 1512;  // file sector 1 starts at target byte 0
  w.target_size = 10 * 512;
  BadblockList raw;
  raw.Add(0, 1);    // entirely before the target
  raw.Add(1, 1);    // target bytes [0, 512): sector 0
  raw.Add(5, 1);    // file bytes [2560+1000-1512 ...): target [2048, 2560): sector 4
  raw.Add(10, 5);   // target [4608, 7168): clipped at 5120 -> sectors 9
  BadblockList t = TranslateKernelBadblocks(raw, w);
  EXPECT_EQ(t.ranges(), (Ranges{{0, 1}, {4, 1}, {9, 1}}));
  w.target_start = 1000 + 100;  // misaligned by 100: ranges grow to whole sectors
  BadblockList t2 = TranslateKernelBadblocks(raw, w);
  // [0, 412) and [412, 924): sectors 0 and 1, merged.
  EXPECT_EQ(t2.ranges().front(), (BadblockRange{0, 2}));
}

}  // namespace
}  // namespace udax
