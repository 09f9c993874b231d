// sysfs_badblocks_test.cc -- finding and translating kernel badblocks on recorded sysfs trees.
#include "notify/sysfs_badblocks.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "notify/test_util.h"

namespace udax {
namespace {

namespace fs = std::filesystem;

using Ranges = std::vector<BadblockRange>;

// The layout Linux 6.1 shows for a devdax namespace on a QEMU nvdimm (shared/lab): a
// 1 GiB region at 0x140000000, namespace0.0 at its start, a 2 MiB info block, so the dax
// device's data starts at 0x140200000 (region sector 4096).
constexpr const char* kRegion = "devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0";

class FakeSysfs {
 public:
  FakeSysfs() : root_(dir_.path()) {}
  const std::string& root() const { return root_; }
  std::string Write(const std::string& rel, const std::string& text) { return dir_.Write(rel, text); }
  void Link(const std::string& rel, const std::string& target) {
    fs::create_directories(fs::path(root_ + "/" + rel).parent_path());
    fs::create_symlink(target, root_ + "/" + rel);
  }
  // A dax device dax0.0 under nd_dax dax0.1 under region0.
  std::string MakeDevdax(bool own_resource = true) {
    const std::string r = kRegion;
    Write(r + "/badblocks", "4104 8\n4096 1\n16 2\n");
    Write(r + "/resource", "0x140000000\n");
    Write(r + "/size", "1073741824\n");
    Write(r + "/dax0.1/resource", "0x140200000\n");
    Write(r + "/dax0.1/namespace", "namespace0.0\n");
    if (own_resource) Write(r + "/dax0.1/dax0.0/resource", "0x140200000\n");
    Write(r + "/dax0.1/dax0.0/size", "1071644672\n");
    Link(r + "/dax0.1/dax0.0/subsystem", "../../../../../../../bus/dax");
    Link("dev/char/252:0", "../../" + r + "/dax0.1/dax0.0");
    return root_ + "/" + r + "/dax0.1/dax0.0";
  }
  std::string MakePmemDisk() {
    const std::string d = std::string(kRegion) + "/pfn0.1/block/pmem0";
    Write(std::string(kRegion) + "/badblocks", "0 1\n");
    Write(d + "/badblocks", "8 1\n20 4\n");
    Write(d + "/size", "2093056\n");  // sectors
    Link(d + "/subsystem", "../../../../../../../../class/block");
    Write(d + "/pmem0p1/partition", "1\n");
    Write(d + "/pmem0p1/start", "16\n");
    Write(d + "/pmem0p1/size", "100\n");
    Link(d + "/pmem0p1/subsystem", "../../../../../../../../../class/block");
    return root_ + "/" + d;
  }

 private:
  ScratchDir dir_;
  std::string root_;
};

TEST(SysfsBadblocksTest, DevdaxTranslatesRegionSectorsToDeviceOffsets) {
  FakeSysfs sys;
  const std::string dev = sys.MakeDevdax();
  auto kb = LocateFromSysfsDevice(dev, sys.root(), "/dev/dax0.0");
  ASSERT_TRUE(kb.ok()) << kb.status().ToString();
  EXPECT_EQ(kb->kind, KernelBadblocksKind::kDevdax);
  EXPECT_EQ(kb->badblocks_file, sys.root() + "/" + kRegion + "/badblocks");
  EXPECT_EQ(kb->devpath, std::string("/") + kRegion + "/dax0.1/dax0.0");
  EXPECT_EQ(kb->file_base, 0x140000000u);
  EXPECT_EQ(kb->target_start, 0x140200000u);
  EXPECT_EQ(kb->target_size, 1071644672u);
  auto bb = ReadKernelBadblocks(*kb);
  ASSERT_TRUE(bb.ok()) << bb.status().ToString();
  // Region sector 4096 is device sector 0; sectors 16-17 lie in the info block: dropped.
  EXPECT_EQ(bb->ranges(), (Ranges{{0, 1}, {8, 8}}));
}

TEST(SysfsBadblocksTest, OlderKernelsTakeTheStartFromTheNdDaxParent) {
  FakeSysfs sys;
  const std::string dev = sys.MakeDevdax(/*own_resource=*/false);
  auto kb = LocateFromSysfsDevice(dev, sys.root(), "/dev/dax0.0");
  ASSERT_TRUE(kb.ok()) << kb.status().ToString();
  EXPECT_EQ(kb->target_start, 0x140200000u);
}

TEST(SysfsBadblocksTest, LocateByDeviceNumber) {
  FakeSysfs sys;
  sys.MakeDevdax();
  // Any character device will do for the stat: point its number at the fake dax0.0.
  struct stat st;
  ASSERT_EQ(stat("/dev/null", &st), 0);
  sys.Link("dev/char/" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev)),
           std::string("../../") + kRegion + "/dax0.1/dax0.0");
  auto kb = LocateKernelBadblocks("/dev/null", sys.root());
  ASSERT_TRUE(kb.ok()) << kb.status().ToString();
  EXPECT_EQ(kb->kind, KernelBadblocksKind::kDevdax);
  EXPECT_EQ(kb->target, "/dev/null");
}

TEST(SysfsBadblocksTest, PmemDiskAndPartition) {
  FakeSysfs sys;
  const std::string disk = sys.MakePmemDisk();
  auto kb = LocateFromSysfsDevice(disk, sys.root(), "/dev/pmem0");
  ASSERT_TRUE(kb.ok()) << kb.status().ToString();
  EXPECT_EQ(kb->kind, KernelBadblocksKind::kPmemDisk);
  EXPECT_EQ(kb->badblocks_file, disk + "/badblocks");
  EXPECT_EQ(kb->target_size, 2093056u * 512);
  EXPECT_EQ(ReadKernelBadblocks(*kb).value().ranges(), (Ranges{{8, 1}, {20, 4}}));

  auto part = LocateFromSysfsDevice(disk + "/pmem0p1", sys.root(), "/dev/pmem0p1");
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  EXPECT_EQ(part->badblocks_file, disk + "/badblocks");  // the disk's list
  EXPECT_EQ(part->target_start, 16u * 512);
  EXPECT_EQ(part->target_size, 100u * 512);
  EXPECT_EQ(ReadKernelBadblocks(*part).value().ranges(), (Ranges{{4, 4}}));  // 8 is before it
}

TEST(SysfsBadblocksTest, NotOnAnNdBus) {
  FakeSysfs sys;
  // A virtio disk: no badblocks attribute.
  sys.Write("devices/pci0000:00/virtio1/block/vda/size", "100\n");
  sys.Link("devices/pci0000:00/virtio1/block/vda/subsystem", "../../../../../class/block");
  auto vda = LocateFromSysfsDevice(sys.root() + "/devices/pci0000:00/virtio1/block/vda",
                                   sys.root(), "/dev/vda");
  EXPECT_EQ(vda.status().code(), EOPNOTSUPP);
  // An md array has a badblocks list, but is no pmem.
  sys.Write("devices/virtual/block/md0/badblocks", "");
  sys.Write("devices/virtual/block/md0/size", "100\n");
  sys.Link("devices/virtual/block/md0/subsystem", "../../../../class/block");
  EXPECT_EQ(LocateFromSysfsDevice(sys.root() + "/devices/virtual/block/md0", sys.root(), "md0")
                .status()
                .code(),
            EOPNOTSUPP);
  // A dax device from hmem/kmem: no nd region above it.
  sys.Write("devices/platform/hmem.0/dax1.0/size", "4096\n");
  sys.Link("devices/platform/hmem.0/dax1.0/subsystem", "../../../../bus/dax");
  EXPECT_EQ(LocateFromSysfsDevice(sys.root() + "/devices/platform/hmem.0/dax1.0", sys.root(), "d")
                .status()
                .code(),
            EOPNOTSUPP);
}

TEST(SysfsBadblocksTest, RealTargetsWithoutKernelBadblocks) {
  ScratchDir dir;
  // An emulated image on tmpfs: no block device under it.
  const std::string img = dir.Write("img", "x");
  EXPECT_EQ(LocateKernelBadblocks(img).status().code(), EOPNOTSUPP);
  EXPECT_EQ(LocateKernelBadblocks("/dev/null").status().code(), EOPNOTSUPP);
  EXPECT_EQ(LocateKernelBadblocks(dir / "missing").status().code(), ENOENT);
}

TEST(SysfsBadblocksTest, MalformedSysfsFilesAreErrors) {
  FakeSysfs sys;
  const std::string dev = sys.MakeDevdax();
  sys.Write(std::string(kRegion) + "/resource", "zero\n");
  EXPECT_EQ(LocateFromSysfsDevice(dev, sys.root(), "d").status().code(), EINVAL);
  sys.Write(std::string(kRegion) + "/resource", "0x140000000\n");
  auto kb = LocateFromSysfsDevice(dev, sys.root(), "d");
  ASSERT_TRUE(kb.ok());
  sys.Write(std::string(kRegion) + "/badblocks", "1 2 3\n");
  EXPECT_EQ(ReadKernelBadblocks(*kb).status().code(), EINVAL);
}

TEST(SysfsBadblocksTest, TranslationClipsAndRoundsOutward) {
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
