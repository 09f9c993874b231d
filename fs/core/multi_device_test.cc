// multi_device_test.cc -- a filesystem over several emulated devices: mkfs, mount in any
// order, placement (a file's data on one device, metadata copies on another), fsck, and
// the refusals (a lone device, a missing one, a stranger).
#include <fcntl.h>
#include <linux/falloc.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "fs/base/status_testing.h"
#include "fs/core/core_test_util.h"
#include "fs/core/filesystem.h"
#include "fs/core/repair.h"
#include "fs/format/badblock_list.h"
#include "fs/format/state_dir.h"
#include "fs/format/state_dir_testing.h"
#include "fs/region/region_span.h"

namespace udax {
namespace {

// N images in /dev/shm, formatted as one filesystem in the order of paths().
class Devices {
 public:
  explicit Devices(std::vector<uint64_t> sizes) {
    (void)kTestStateDir;
    static std::atomic<int> counter{0};
    const int n = counter++;
    for (size_t i = 0; i < sizes.size(); ++i) {
      paths_.push_back("/dev/shm/udax_md_test_" + std::to_string(getpid()) + "_" +
                       std::to_string(n) + "_" + std::to_string(i) + ".img");
      const int fd = open(paths_.back().c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
      EXPECT_GE(fd, 0);
      EXPECT_EQ(ftruncate(fd, static_cast<off_t>(sizes[i])), 0);
      close(fd);
    }
    MkfsParams params;
    params.device_sizes = sizes;
    sb_ = Must(ComputeGeometry(params));
    std::vector<uint64_t> lengths;
    for (uint32_t d = 0; d < sb_.device_count; ++d) lengths.push_back(sb_.devices[d].length);
    auto span = Must(SpanRegion::Create(paths_, lengths, RegionOptions{}));
    EXPECT_OK(Filesystem::Format(span.get(), params));
  }
  ~Devices() {
    for (const std::string& p : paths_) unlink(p.c_str());
  }
  const std::vector<std::string>& paths() const { return paths_; }
  std::string List(std::vector<size_t> order = {}) const {
    if (order.empty()) {
      for (size_t i = 0; i < paths_.size(); ++i) order.push_back(i);
    }
    std::string s;
    for (size_t i : order) s += (s.empty() ? "" : ",") + paths_[i];
    return s;
  }
  const DiskSuperblock& geometry() const { return sb_; }

 private:
  std::vector<std::string> paths_;
  DiskSuperblock sb_{};
};

std::vector<char> Bytes(size_t n, int seed) {
  std::vector<char> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<char>(seed * 131 + i * 7 + (i >> 9));
  return v;
}

uint64_t WriteFile(Filesystem* fs, const std::string& name, const std::vector<char>& data) {
  auto [entry, inode] = Must(fs->Create(kRootIno, name, S_IFREG | 0644, O_RDWR, Caller()));
  EXPECT_EQ(Must(fs->Write(inode, 0, data.data(), data.size())), data.size());
  fs->Release(inode);
  return entry.ino;
}

std::vector<char> ReadFile(Filesystem* fs, const std::string& name, size_t n) {
  const uint64_t ino = Must(fs->Lookup(kRootIno, name)).ino;
  Inode* inode = Must(fs->Open(ino, O_RDONLY));
  std::vector<char> out(n);
  EXPECT_EQ(Must(fs->Read(inode, 0, n, out.data())), n);
  fs->Release(inode);
  return out;
}

// The devices that hold some of file `ino`'s data.
std::set<uint32_t> DevicesHolding(Filesystem* fs, uint64_t ino) {
  const DiskSuperblock sb = fs->SuperblockSnapshot();
  std::set<uint32_t> devices;
  for (const BmapExtent& e : Must(fs->Bmap(ino))) devices.insert(DeviceOfOffset(sb, e.phys_offset));
  return devices;
}

TEST(MultiDevice, MountsInAnyOrderAndReadsBack) {
  Devices devs({64ull << 20, 64ull << 20, 64ull << 20});
  {
    auto fs = Must(Filesystem::Mount(devs.List({2, 0, 1}), MountOptions{}));
    EXPECT_EQ(fs->region()->device_count(), 3u);
    for (int i = 0; i < 6; ++i) WriteFile(fs.get(), "f" + std::to_string(i), Bytes(3 << 20, i));
    EXPECT_OK(fs->Unmount());
  }
  auto fs = Must(Filesystem::Mount(devs.List({1, 2, 0}), MountOptions{}));
  // Whatever the order named, device d is the one the table says.
  for (size_t d = 0; d < 3; ++d) EXPECT_EQ(fs->region()->device(d)->path(), devs.paths()[d]);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(ReadFile(fs.get(), "f" + std::to_string(i), 3 << 20), Bytes(3 << 20, i)) << i;
  }
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
  EXPECT_EQ(Must(fs->checker().CheckNamespace()).problems, 0u);
  EXPECT_OK(fs->Unmount());
}

TEST(MultiDevice, UnequalDevicesKeepTheirSuperblockCopies) {
  // A large device 0 pairs its first data AUs with the other devices' first AUs, which
  // hold their superblock copies: the root's copy must go elsewhere (a review found it
  // there, and the filesystem unmountable after a few writes).
  for (auto sizes : {std::vector<uint64_t>{192ull << 20, 64ull << 20},
                     std::vector<uint64_t>{256ull << 20, 64ull << 20, 64ull << 20}}) {
    Devices devs(sizes);
    {
      auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
      EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
      for (int i = 0; i < 3; ++i) WriteFile(fs.get(), "f" + std::to_string(i), Bytes(1 << 20, i));
      EXPECT_OK(fs->Unmount());
    }
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
    EXPECT_EQ(Must(fs->checker().CheckNamespace()).problems, 0u);
    EXPECT_EQ(ReadFile(fs.get(), "f2", 1 << 20), Bytes(1 << 20, 2));
    EXPECT_OK(fs->Unmount());
  }
}

TEST(MultiDevice, AFilesDataStaysOnItsHomeDevice) {
  Devices devs({64ull << 20, 64ull << 20, 64ull << 20});
  auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
  const DiskSuperblock sb = fs->SuperblockSnapshot();
  std::set<uint32_t> used;
  for (int i = 0; i < 9; ++i) {
    const uint64_t ino = WriteFile(fs.get(), "f" + std::to_string(i), Bytes(1 << 20, i));
    // Grown later, in pieces: still the same device.
    Inode* inode = Must(fs->Open(ino, O_RDWR));
    const std::vector<char> more = Bytes(256 << 10, i + 50);
    EXPECT_EQ(Must(fs->Write(inode, 4 << 20, more.data(), more.size())), more.size());
    fs->Release(inode);
    std::set<uint32_t> devices;
    for (const BmapExtent& e : Must(fs->Bmap(ino))) {
      devices.insert(DeviceOfOffset(sb, e.phys_offset));
      EXPECT_EQ(DeviceOfOffset(sb, e.phys_offset), DeviceOfOffset(sb, e.phys_offset + e.length - 1));
    }
    ASSERT_EQ(devices.size(), 1u) << "inode " << ino;
    EXPECT_EQ(*devices.begin(), ino % 3) << "inode " << ino;  // round robin by inode
    used.insert(*devices.begin());
  }
  EXPECT_EQ(used.size(), 3u);
  EXPECT_OK(fs->Unmount());
}

TEST(MultiDevice, AFullHomeDeviceSpillsOntoAnother) {
  // A file too big for its home device goes whole onto a device that holds it (one
  // device's loss then takes it whole, and one direct map reaches it all)...
  {
    Devices devs({32ull << 20, 64ull << 20});
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    const uint64_t ino = WriteFile(fs.get(), "big", Bytes(40 << 20, 3));
    EXPECT_EQ(DevicesHolding(fs.get(), ino), std::set<uint32_t>{1});
    // ... as does a preallocation (taken in steps: the first picks the device).
    auto [entry, inode] = Must(fs->Create(kRootIno, "pre", S_IFREG | 0644, O_RDWR, Caller()));
    ASSERT_OK(fs->Fallocate(inode, 0, 0, 12 << 20));
    fs->Release(inode);
    EXPECT_EQ(DevicesHolding(fs.get(), entry.ino).size(), 1u);
    EXPECT_OK(fs->Unmount());
  }
  // A file sized first (ftruncate), then written a request at a time, starts on the
  // device with room for its size instead of filling its home and spilling.
  {
    Devices devs({32ull << 20, 96ull << 20});
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    for (int n = 0; n < 2; ++n) {  // one of the two has device 0, too small, for home
      auto [entry, inode] = Must(fs->Create(kRootIno, "sized" + std::to_string(n), S_IFREG | 0644,
                                            O_RDWR, Caller()));
      SetAttrIn in;
      in.size = true;
      in.attr.st_size = 30 << 20;  // more than device 0 holds, less than device 1
      ASSERT_OK(fs->SetAttr(entry.ino, in).status());
      const std::vector<char> piece = Bytes(1 << 20, n);
      for (int i = 0; i < 30; ++i) {
        ASSERT_EQ(Must(fs->Write(inode, uint64_t(i) << 20, piece.data(), piece.size())), piece.size());
      }
      fs->Release(inode);
      EXPECT_EQ(DevicesHolding(fs.get(), entry.ino), std::set<uint32_t>{1}) << "inode " << entry.ino;
      ASSERT_OK(fs->Unlink(kRootIno, "sized" + std::to_string(n)));
    }
    EXPECT_OK(fs->Unmount());
  }
  // ... and one that no device holds spills across them.
  Devices devs({48ull << 20, 48ull << 20});
  auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
  const uint64_t ino = WriteFile(fs.get(), "big", Bytes(60 << 20, 3));
  EXPECT_EQ(DevicesHolding(fs.get(), ino).size(), 2u);
  EXPECT_EQ(ReadFile(fs.get(), "big", 60 << 20), Bytes(60 << 20, 3));
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
  EXPECT_OK(fs->Unmount());
}

TEST(MultiDevice, EveryMetadataCopyIsOnAnotherDevice) {
  Devices devs({64ull << 20, 64ull << 20});
  auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
  PopulateCopiedKinds(fs.get());
  const DiskSuperblock sb = fs->SuperblockSnapshot();
  int firsts = 0, seconds = 0;
  for (const OwnerRange& r : Must(fs->Owners(0, sb.region_size))) {
    if (!IsCopiedKind(r.owner.kind)) continue;
    for (uint64_t off = r.phys; off < r.phys + r.len; off += sb.au_size) {
      const uint64_t au = off / sb.au_size;
      const uint64_t partner = CopyAu(sb, au);
      ASSERT_NE(partner, 0u) << OwnerName(r.owner);
      EXPECT_NE(DeviceOfAu(sb, au), DeviceOfAu(sb, partner)) << OwnerName(r.owner);
      (r.owner.copy2 ? seconds : firsts)++;
    }
  }
  EXPECT_GT(firsts, 3);
  EXPECT_EQ(firsts, seconds);
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
  EXPECT_OK(fs->Unmount());
}

TEST(MultiDevice, EachDeviceKnowsItself) {
  Devices devs({64ull << 20, 64ull << 20, 64ull << 20});
  for (size_t d = 0; d < 3; ++d) {
    const int fd = open(devs.paths()[d].c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    DiskSuperblock sb;
    ASSERT_EQ(pread(fd, &sb, sizeof(sb), 0), static_cast<ssize_t>(sizeof(sb)));
    close(fd);
    EXPECT_OK(DeviceSuperblockVerify(sb, 64ull << 20));
    EXPECT_EQ(sb.this_device, d);
    // Each device has its own state key: its own UUID, not the filesystem's.
    auto state = Must(LocateTargetState(devs.paths()[d], false));
    EXPECT_NE(state.key.find("uuid-"), std::string::npos);
    for (size_t e = 0; e < d; ++e) {
      EXPECT_NE(state.key, Must(LocateTargetState(devs.paths()[e], false)).key);
    }
  }
}

TEST(MultiDevice, LosingADeviceCostsOnlyWhatLivedOnIt) {
  Devices devs({64ull << 20, 64ull << 20, 64ull << 20});
  std::vector<uint64_t> inos;
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    for (int i = 0; i < 6; ++i) inos.push_back(WriteFile(fs.get(), "f" + std::to_string(i), Bytes(1 << 20, i)));
    // A directory big enough for several buckets, with copies on two devices.
    auto dir = Must(fs->Mkdir(kRootIno, "d", S_IFDIR | 0755, Caller()));
    for (int i = 0; i < 300; ++i) {
      auto [e, in] = Must(fs->Create(dir.ino, "n" + std::to_string(i), S_IFREG | 0644, O_RDWR, Caller()));
      fs->Release(in);
    }
    // Device 1 goes while mounted: its owners come back, the rest serves on.
    EXPECT_EQ(fs->LoseDevice(0).status().code(), EINVAL);
    const std::vector<OwnerRange> lost = Must(fs->LoseDevice(1));
    EXPECT_EQ(fs->LoseDevice(1).status().code(), EALREADY);
    std::set<uint64_t> lost_files;
    for (const OwnerRange& r : lost) {
      if (r.owner.kind == OwnerKind::kFileData) lost_files.insert(r.owner.ino);
    }
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(lost_files.count(inos[i]), inos[i] % 3 == 1 ? 1u : 0u) << inos[i];
      Inode* inode = Must(fs->Open(inos[i], O_RDONLY));
      std::vector<char> buf(1 << 20);
      auto got = fs->Read(inode, 0, buf.size(), buf.data());
      if (inos[i] % 3 == 1) {
        EXPECT_EQ(got.status().code(), EIO) << inos[i];
      } else {
        EXPECT_EQ(buf, Bytes(1 << 20, i)) << inos[i];
      }
      fs->Release(inode);
    }
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{1});
    // Creates and writes go on, nowhere near device 1.
    for (int i = 0; i < 6; ++i) {
      const uint64_t ino = WriteFile(fs.get(), "g" + std::to_string(i), Bytes(512 << 10, 40 + i));
      for (const BmapExtent& e : Must(fs->Bmap(ino))) {
        EXPECT_NE(DeviceOfOffset(devs.geometry(), e.phys_offset), 1u);
      }
    }
    // A whole-block write over a lost file's bytes moves them to a live device.
    {
      const uint64_t victim = inos[2] % 3 == 1 ? inos[2] : inos[5];
      Inode* inode = Must(fs->Open(victim, O_RDWR));
      const std::vector<char> fresh = Bytes(1 << 20, 77);
      EXPECT_EQ(Must(fs->Write(inode, 0, fresh.data(), fresh.size())), fresh.size());
      std::vector<char> buf(1 << 20);
      EXPECT_EQ(Must(fs->Read(inode, 0, buf.size(), buf.data())), buf.size());
      EXPECT_EQ(buf, fresh);
      fs->Release(inode);
    }
    const uint64_t dino = Must(fs->Lookup(kRootIno, "d")).ino;
    for (int i = 0; i < 300; i += 37) EXPECT_OK(fs->Lookup(dino, "n" + std::to_string(i)).status());
    EXPECT_OK(fs->Unmount());
  }
  // Named again, device 1 stays lost (its copies are stale); unnamed, the mount goes on.
  for (const std::string& list : {devs.List({2, 1, 0}), devs.List({0, 2})}) {
    auto fs = Must(Filesystem::Mount(list, MountOptions{}));
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{1}) << list;
    EXPECT_EQ(ReadFile(fs.get(), "g3", 512 << 10), Bytes(512 << 10, 43));
    const uint64_t dino = Must(fs->Lookup(kRootIno, "d")).ino;
    EXPECT_OK(fs->Lookup(dino, "n299").status());
    EXPECT_OK(fs->Unmount());
  }
  // Without device 0, no.
  EXPECT_FALSE(Filesystem::Mount(devs.List({1, 2}), MountOptions{}).ok());
}

// The same device back, twice over: while mounted (lost through LoseDevice, its map
// alive) and after a mount that named it, lost. What changed meanwhile -- metadata whose
// copy is on it, files freed there, the second inode table and the replica (both on the
// last device) -- is brought back, and fsck finds the filesystem whole.
TEST(MultiDevice, ALostDeviceComesBackAndChecksClean) {
  Devices devs({64ull << 20, 64ull << 20, 64ull << 20});
  const uint32_t last = 2;
  std::vector<uint64_t> inos;
  auto fill_and_lose = [&](Filesystem* fs, int round) {
    inos.clear();
    for (int i = 0; i < 6; ++i) {
      inos.push_back(WriteFile(fs, "f" + std::to_string(round) + "_" + std::to_string(i),
                               Bytes(1 << 20, round * 10 + i)));
    }
    auto dir = Must(fs->Mkdir(kRootIno, "d" + std::to_string(round), S_IFDIR | 0755, Caller()));
    for (int i = 0; i < 200; ++i) {
      auto [e, in] = Must(fs->Create(dir.ino, "n" + std::to_string(i), S_IFREG | 0644, O_RDWR, Caller()));
      fs->Release(in);
    }
    ASSERT_TRUE(fs->LoseDevice(last).ok());
    // Meanwhile: names added to a directory with copies on two devices, a file on the
    // lost device deleted (its AUs quarantined), new files on the others.
    for (int i = 200; i < 400; ++i) {
      auto [e, in] = Must(fs->Create(dir.ino, "n" + std::to_string(i), S_IFREG | 0644, O_RDWR, Caller()));
      fs->Release(in);
    }
    for (int i = 0; i < 6; ++i) {
      if (inos[i] % 3 == last) {
        EXPECT_OK(fs->Unlink(kRootIno, "f" + std::to_string(round) + "_" + std::to_string(i)));
        fs->Forget(inos[i], 1);  // the kernel's lookup of the create: now it is freed
        inos[i] = 0;
        break;
      }
    }
    WriteFile(fs, "during" + std::to_string(round), Bytes(256 << 10, 99));
    // Zeroing a lost file's bytes, or writing part of a block of them, is refused: it
    // would be dropped there, and the old bytes would come back with the device.
    for (int i = 0; i < 6; ++i) {
      if (inos[i] == 0 || inos[i] % 3 != last) continue;
      Inode* inode = Must(fs->Open(inos[i], O_RDWR));
      EXPECT_EQ(fs->Fallocate(inode, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 1 << 20).code(), EIO);
      EXPECT_EQ(fs->Fallocate(inode, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 1000).code(), EIO);
      EXPECT_EQ(fs->Write(inode, 10, "x", 1).status().code(), EIO);
      fs->Release(inode);
      break;
    }
  };
  auto check_back = [&](Filesystem* fs, int round) {
    EXPECT_TRUE(fs->LostDevices().empty());
    for (int i = 0; i < 6; ++i) {
      if (inos[i] == 0) continue;
      EXPECT_EQ(ReadFile(fs, "f" + std::to_string(round) + "_" + std::to_string(i), 1 << 20),
                Bytes(1 << 20, round * 10 + i)) << i;
    }
    const uint64_t dino = Must(fs->Lookup(kRootIno, "d" + std::to_string(round))).ino;
    for (int i = 0; i < 400; i += 13) EXPECT_OK(fs->Lookup(dino, "n" + std::to_string(i)).status());
    EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
    EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
    // And new files may go there again.
    bool placed = false;
    for (int i = 0; i < 6 && !placed; ++i) {
      const uint64_t ino = WriteFile(fs, "after" + std::to_string(round) + "_" + std::to_string(i),
                                     Bytes(256 << 10, 5));
      for (const BmapExtent& e : Must(fs->Bmap(ino))) {
        placed = placed || DeviceOfOffset(devs.geometry(), e.phys_offset) == last;
      }
    }
    EXPECT_TRUE(placed);
  };
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    EXPECT_EQ(fs->RestoreDevice(last).status().code(), EINVAL);  // in service
    fill_and_lose(fs.get(), 0);
    const DeviceResync done = Must(fs->RestoreDevice(last));
    EXPECT_GT(done.metadata_aus, 0u);
    EXPECT_GT(done.quarantined_aus, 0u);  // the deleted file's AUs there: kept out of use
    EXPECT_GT(done.file_bytes, 0u);
    check_back(fs.get(), 0);
    EXPECT_OK(fs->Unmount());
  }
  FsckOptions check;
  check.read_only = true;
  {
    const FsckOutcome found = Must(Repairer::Run(devs.List(), check));
    EXPECT_EQ(found.ExitCode(), kFsckClean) << found.found.problems;
    EXPECT_TRUE(found.degraded.empty());
  }
  // Lost, unmounted, mounted without it: nothing of it is mapped, until add-device names
  // its path while mounted.
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    fill_and_lose(fs.get(), 1);
    EXPECT_OK(fs->Unmount());
  }
  EXPECT_EQ(Must(Repairer::Run(devs.List({0, 1}), check)).ExitCode(), kFsckUncorrected);
  {
    auto fs = Must(Filesystem::Mount(devs.List({0, 1}), MountOptions{}));
    EXPECT_EQ(fs->RestoreDevice(last).status().code(), EINVAL);  // nothing of it mapped
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{last});
    Must(fs->RestoreDevice(last, devs.paths()[last]));
    check_back(fs.get(), 1);
    EXPECT_OK(fs->Unmount());
  }
  {
    const FsckOutcome found = Must(Repairer::Run(devs.List(), check));
    EXPECT_EQ(found.ExitCode(), kFsckClean) << found.found.problems;
  }
  // Lost, unmounted, mounted again naming it (still lost: its copies are stale), then
  // taken back as it is mapped.
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    fill_and_lose(fs.get(), 2);
    EXPECT_OK(fs->Unmount());
  }
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{last});
    Must(fs->RestoreDevice(last));
    check_back(fs.get(), 2);
    EXPECT_OK(fs->Unmount());
  }
  const FsckOutcome found = Must(Repairer::Run(devs.List(), check));
  EXPECT_EQ(found.ExitCode(), kFsckClean) << found.found.problems;
}

// A device pulled for real and back under another name (a devdax node gone and made
// again, an image moved): its old mapping is dead, so add-device maps it afresh from the
// path it is given, once that path's first block says it is the device.
TEST(MultiDevice, ADevicePulledForRealComesBackFromItsNewPath) {
  Devices devs({64ull << 20, 64ull << 20, 64ull << 20});
  const uint32_t last = 2;
  const std::string moved = devs.paths()[last] + ".moved";
  std::vector<int> on_last;
  FsckOptions check;
  check.read_only = true;
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    for (int i = 0; i < 6; ++i) {
      const uint64_t ino = WriteFile(fs.get(), "f" + std::to_string(i), Bytes(1 << 20, i));
      if (DevicesHolding(fs.get(), ino).count(last) != 0) on_last.push_back(i);
    }
    ASSERT_FALSE(on_last.empty());
    EXPECT_EQ(fs->RestoreDevice(last, devs.paths()[last]).status().code(), EINVAL);  // in service
    ASSERT_TRUE(fs->LoseDevice(last).ok());
    auto dir = Must(fs->Mkdir(kRootIno, "d", S_IFDIR | 0755, Caller()));
    for (int i = 0; i < 300; ++i) {
      auto [e, in] = Must(fs->Create(dir.ino, "n" + std::to_string(i), S_IFREG | 0644, O_RDWR, Caller()));
      fs->Release(in);
    }
    // The image goes elsewhere; what was mapped is cut off (a store to it would fault).
    ASSERT_EQ(rename(devs.paths()[last].c_str(), moved.c_str()), 0);
    {
      const int in = open(moved.c_str(), O_RDONLY);
      const std::string copy = moved + ".copy";
      const int out = open(copy.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ASSERT_GE(in, 0);
      ASSERT_GE(out, 0);
      std::vector<char> buf(1 << 20);
      for (ssize_t n; (n = read(in, buf.data(), buf.size())) > 0;) {
        ASSERT_EQ(write(out, buf.data(), static_cast<size_t>(n)), n);
      }
      close(in);
      close(out);
      ASSERT_EQ(truncate(moved.c_str(), 0), 0);  // the old mapping's pages are gone
      ASSERT_EQ(rename(copy.c_str(), moved.c_str()), 0);
    }
    // The mapping it has does not read: its path is needed.
    EXPECT_EQ(fs->RestoreDevice(last).status().code(), EIO);
    // Not the device: another one of this filesystem, nothing at all, or one others may
    // write. Each leaves the device lost, and the next try free to succeed.
    EXPECT_EQ(fs->RestoreDevice(last, devs.paths()[1]).status().code(), EINVAL);
    EXPECT_EQ(fs->RestoreDevice(last, "/no/such/image").status().code(), ENOENT);
    ASSERT_EQ(chmod(moved.c_str(), 0666), 0);
    EXPECT_EQ(fs->RestoreDevice(last, moved).status().code(), EPERM);
    ASSERT_EQ(chmod(moved.c_str(), 0600), 0);
    EXPECT_EQ(fs->RestoreDevice(0, moved).status().code(), EINVAL);
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{last});
    const DeviceResync done = Must(fs->RestoreDevice(last, moved));
    EXPECT_GT(done.metadata_aus, 0u);
    EXPECT_GT(done.file_bytes, 0u);
    EXPECT_TRUE(fs->LostDevices().empty());
    EXPECT_EQ(fs->region()->device(last)->path(), moved);
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(ReadFile(fs.get(), "f" + std::to_string(i), 1 << 20), Bytes(1 << 20, i)) << i;
    }
    for (int i = 0; i < 300; i += 17) EXPECT_OK(fs->Lookup(dir.ino, "n" + std::to_string(i)).status());
    EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
    // Writes reach the new mapping: a file rewritten in place on it reads back.
    {
      Inode* inode = Must(fs->Open(Must(fs->Lookup(kRootIno, "f" + std::to_string(on_last[0]))).ino, O_RDWR));
      const std::vector<char> fresh = Bytes(1 << 20, 77);
      EXPECT_EQ(Must(fs->Write(inode, 0, fresh.data(), fresh.size())), fresh.size());
      fs->Release(inode);
    }
    EXPECT_OK(fs->Unmount());
  }
  const std::string list = devs.paths()[0] + "," + devs.paths()[1] + "," + moved;
  const FsckOutcome found = Must(Repairer::Run(list, check));
  EXPECT_EQ(found.ExitCode(), kFsckClean) << found.found.problems;
  auto fs = Must(Filesystem::Mount(list, MountOptions{}));
  EXPECT_TRUE(fs->LostDevices().empty());
  EXPECT_EQ(ReadFile(fs.get(), "f" + std::to_string(on_last[0]), 1 << 20), Bytes(1 << 20, 77));
  EXPECT_OK(fs->Unmount());
  unlink(moved.c_str());
}

// Whether this process holds `path` open or mapped (/proc/self/fd, /proc/self/maps).
bool Holds(const std::string& path) {
  for (int fd = 0; fd < 4096; ++fd) {
    char link[4096];
    const ssize_t n = readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), link, sizeof(link) - 1);
    if (n > 0 && std::string(link, static_cast<size_t>(n)) == path) return true;
  }
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.size() >= path.size() && line.compare(line.size() - path.size(), path.size(), path) == 0) {
      return true;
    }
  }
  return false;
}

// A device the kernel took away is let go (ReleaseLostDevice): neither mapped nor held
// open, so a node made for it again works; what touches its old place gets EIO, never a
// crash; it comes back by its path.
TEST(MultiDevice, ADeviceGoneForRealIsLetGoAndComesBackByItsPath) {
  Devices devs({64ull << 20, 64ull << 20, 64ull << 20});
  const uint32_t last = 2;
  auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
  for (int i = 0; i < 6; ++i) WriteFile(fs.get(), "f" + std::to_string(i), Bytes(1 << 20, i));
  ASSERT_TRUE(Holds(devs.paths()[last]));
  EXPECT_EQ(fs->ReleaseLostDevice(last).code(), EINVAL);  // in service
  ASSERT_TRUE(fs->LoseDevice(last).ok());
  ASSERT_OK(fs->ReleaseLostDevice(last));
  EXPECT_FALSE(Holds(devs.paths()[last]));
  EXPECT_TRUE(Holds(devs.paths()[1]));
  EXPECT_FALSE(fs->region()->device_mapped(last));
  // The old place faults as a removed device does: EIO, caught.
  char byte;
  EXPECT_EQ(fs->region()->device(last)->ReadSafe(0, &byte, 1, nullptr).code(), EIO);
  EXPECT_OK(fs->ReleaseLostDevice(last));  // again: nothing changes
  const auto unnamed = fs->RestoreDevice(last);
  EXPECT_EQ(unnamed.status().code(), EINVAL) << unnamed.status().ToString();
  EXPECT_NE(unnamed.status().message().find("PATH"), std::string::npos) << unnamed.status().ToString();
  Must(fs->RestoreDevice(last, devs.paths()[last]));
  EXPECT_TRUE(Holds(devs.paths()[last]));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(ReadFile(fs.get(), "f" + std::to_string(i), 1 << 20), Bytes(1 << 20, i)) << i;
  }
  EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
  EXPECT_OK(fs->Unmount());
}

// Two devices, one lost: no pair of AUs has both halves alive any more, yet directories
// grow and files get extent blocks -- metadata with one copy, its partner kept on the lost
// device -- and when it comes back the resync writes those copies: fsck is clean.
TEST(MultiDevice, TwoDevicesOneLostMetadataGoesOnWithOneCopy) {
  Devices devs({64ull << 20, 64ull << 20});
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    ASSERT_TRUE(fs->LoseDevice(1).ok());
    auto dir = Must(fs->Mkdir(kRootIno, "d", S_IFDIR | 0755, Caller()));
    for (int i = 0; i < 300; ++i) {
      auto [e, in] = Must(fs->Create(dir.ino, "n" + std::to_string(i), S_IFREG | 0644, O_RDWR, Caller()));
      fs->Release(in);
    }
    // A fragmented file: more extents than the inode holds, so an extent block.
    auto [entry, inode] = Must(fs->Create(kRootIno, "frag", S_IFREG | 0644, O_RDWR, Caller()));
    const std::vector<char> block = Bytes(4096, 9);
    for (int i = 0; i < 40; ++i) {
      EXPECT_EQ(Must(fs->Write(inode, static_cast<uint64_t>(i) * 2 * devs.geometry().au_size,
                               block.data(), block.size())), block.size());
    }
    fs->Release(inode);
    for (int i = 0; i < 300; i += 29) EXPECT_OK(fs->Lookup(dir.ino, "n" + std::to_string(i)).status());
    EXPECT_GT(Must(fs->RestoreDevice(1)).metadata_aus, 0u);
    EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
    EXPECT_OK(fs->Unmount());
  }
  FsckOptions check;
  check.read_only = true;
  const FsckOutcome found = Must(Repairer::Run(devs.List(), check));
  EXPECT_EQ(found.ExitCode(), kFsckClean) << found.found.problems;
}

// Another device in the lost one's place is not taken for it.
TEST(MultiDevice, OnlyTheLostDeviceItselfComesBack) {
  Devices devs({64ull << 20, 64ull << 20, 64ull << 20});
  auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
  WriteFile(fs.get(), "a", Bytes(1 << 20, 1));
  ASSERT_TRUE(fs->LoseDevice(1).ok());
  // Device 1's own first block overwritten with device 2's copy: not device 1 any more.
  DiskSuperblock two;
  ASSERT_OK(fs->region()->device(2)->ReadSafe(0, &two, sizeof(two), nullptr));
  ASSERT_OK(fs->region()->device(1)->WriteSafe(0, &two, sizeof(two), true, nullptr));
  const auto refused = fs->RestoreDevice(1);
  EXPECT_EQ(refused.status().code(), EINVAL) << refused.status().ToString();
  EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{1});
  EXPECT_EQ(fs->RestoreDevice(0).status().code(), EINVAL);
  EXPECT_EQ(fs->RestoreDevice(7).status().code(), EINVAL);
  EXPECT_OK(fs->Unmount());
}

// A blank image in a lost device's place: metadata copies written onto it, the lost
// files' bytes EIO for good (across a remount: the superblock's lost runs) until rewritten
// or deleted, everything else intact, and the old device refused from then on.
TEST(MultiDevice, ABlankDeviceReplacesALostOne) {
  Devices devs({64ull << 20, 64ull << 20, 64ull << 20});
  Devices other({64ull << 20, 64ull << 20});
  const uint32_t last = 2;
  const uint64_t au = devs.geometry().au_size;
  auto blank = [&](const std::string& name, uint64_t size) {
    const std::string path = devs.paths()[0] + "." + name;
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
    close(fd);
    return path;
  };
  const std::string fresh = blank("new", 64ull << 20), small = blank("small", 32ull << 20);
  std::vector<int> on_last, elsewhere;
  DiskSuperblock old_primary{};  // device 0's superblock from before a replacement
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    for (int i = 0; i < 6; ++i) {
      const uint64_t ino = WriteFile(fs.get(), "f" + std::to_string(i), Bytes(1 << 20, i));
      (DevicesHolding(fs.get(), ino).count(last) != 0 ? on_last : elsewhere).push_back(i);
    }
    ASSERT_FALSE(on_last.empty());
    ASSERT_FALSE(elsewhere.empty());
    auto dir = Must(fs->Mkdir(kRootIno, "d", S_IFDIR | 0755, Caller()));
    for (int i = 0; i < 300; ++i) {
      auto [e, in] = Must(fs->Create(dir.ino, "n" + std::to_string(i), S_IFREG | 0644, O_RDWR, Caller()));
      fs->Release(in);
    }
    EXPECT_EQ(fs->ReplaceDevice(last, fresh).status().code(), EINVAL);  // in service
    ASSERT_TRUE(fs->LoseDevice(last).ok());
    EXPECT_EQ(fs->ReplaceDevice(last, devs.paths()[last]).status().code(), EINVAL);  // add-device
    EXPECT_EQ(fs->ReplaceDevice(last, devs.paths()[1]).status().code(), EINVAL);  // in service
    EXPECT_EQ(fs->ReplaceDevice(last, other.paths()[1]).status().code(), EINVAL);  // a stranger
    EXPECT_EQ(fs->ReplaceDevice(last, small).status().code(), EINVAL);  // too small
    const std::string shared = blank("shared", 64ull << 20);
    ASSERT_EQ(chmod(shared.c_str(), 0666), 0);
    EXPECT_EQ(fs->ReplaceDevice(last, shared).status().code(), EPERM);  // others may write it
    unlink(shared.c_str());
    EXPECT_EQ(fs->ReplaceDevice(last, "/no/such/image").status().code(), ENOENT);
    EXPECT_EQ(fs->ReplaceDevice(0, fresh).status().code(), EINVAL);
    EXPECT_EQ(fs->ReplaceDevice(9, fresh).status().code(), EINVAL);
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{last});

    const DeviceReplacement done = Must(fs->ReplaceDevice(last, fresh));
    EXPECT_GT(done.metadata_aus, 0u);
    EXPECT_EQ(done.lost_files, on_last.size());
    EXPECT_EQ(done.lost_file_bytes, on_last.size() << 20);
    EXPECT_TRUE(fs->LostDevices().empty());
    EXPECT_EQ(fs->SuperblockSnapshot().lost_run_count > 0, true);
    for (int i : elsewhere) EXPECT_EQ(ReadFile(fs.get(), "f" + std::to_string(i), 1 << 20), Bytes(1 << 20, i));
    for (int i = 0; i < 300; i += 13) EXPECT_OK(fs->Lookup(dir.ino, "n" + std::to_string(i)).status());
    EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
    EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
    // A lost file: EIO; part of an AU rewritten, still EIO; a whole AU rewritten moves
    // it, and that AU reads back while the rest stays EIO.
    const uint64_t lost_ino = Must(fs->Lookup(kRootIno, "f" + std::to_string(on_last[0]))).ino;
    Inode* inode = Must(fs->Open(lost_ino, O_RDWR));
    std::vector<char> buf(au);
    EXPECT_EQ(fs->Read(inode, 0, au, buf.data()).status().code(), EIO);
    EXPECT_EQ(fs->Write(inode, 10, "x", 1).status().code(), EIO);
    const std::vector<char> fresh_bytes = Bytes(au, 77);
    EXPECT_EQ(Must(fs->Write(inode, 0, fresh_bytes.data(), au)), au);
    EXPECT_EQ(Must(fs->Read(inode, 0, au, buf.data())), au);
    EXPECT_EQ(buf, fresh_bytes);
    EXPECT_EQ(fs->Read(inode, au, au, buf.data()).status().code(), EIO);
    fs->Release(inode);
    // The new device takes new files.
    bool placed = false;
    for (int i = 0; i < 6 && !placed; ++i) {
      const uint64_t ino = WriteFile(fs.get(), "after" + std::to_string(i), Bytes(256 << 10, 5));
      for (const BmapExtent& e : Must(fs->Bmap(ino))) {
        placed = placed || DeviceOfOffset(devs.geometry(), e.phys_offset) == last;
      }
    }
    EXPECT_TRUE(placed);
    EXPECT_OK(fs->Unmount());
  }
  const std::string with_new = devs.paths()[0] + "," + devs.paths()[1] + "," + fresh;
  FsckOptions check;
  check.read_only = true;
  {
    const FsckOutcome found = Must(Repairer::Run(with_new, check));
    EXPECT_EQ(found.found.problems, 0u);
    ASSERT_EQ(found.degraded.size(), 1u);  // the lost files, still holding their lost bytes
    EXPECT_NE(found.degraded[0].find(std::to_string(on_last.size()) + " file(s) lost"),
              std::string::npos) << found.degraded[0];
  }
  // The old device is not part of the filesystem any more.
  {
    auto refused = Filesystem::Mount(devs.List(), MountOptions{});
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.status().message().find("the table names another there"), std::string::npos)
        << refused.status().ToString();
  }
  {
    auto fs = Must(Filesystem::Mount(with_new, MountOptions{}));
    for (int i : elsewhere) EXPECT_EQ(ReadFile(fs.get(), "f" + std::to_string(i), 1 << 20), Bytes(1 << 20, i));
    for (int i : on_last) {
      const uint64_t ino = Must(fs->Lookup(kRootIno, "f" + std::to_string(i))).ino;
      Inode* inode = Must(fs->Open(ino, O_RDONLY));
      std::vector<char> buf(au);
      EXPECT_EQ(fs->Read(inode, 2 * au, au, buf.data()).status().code(), EIO) << i;
      // Nor through a direct map: the new device's bytes under it would read as good.
      EXPECT_EQ(fs->PrepareDirectMap(inode, 2 * au, au, false).status().code(), EIO) << i;
      fs->Release(inode);
      EXPECT_OK(fs->Unlink(kRootIno, "f" + std::to_string(i)));
      fs->Forget(ino, 1);  // the lookup above: now it is freed (its lost AUs quarantined)
    }
    EXPECT_OK(fs->Unmount());
  }
  const FsckOutcome found = Must(Repairer::Run(with_new, check));
  EXPECT_EQ(found.ExitCode(), kFsckClean) << found.found.problems;
  EXPECT_TRUE(found.degraded.empty()) << found.degraded[0];
  // A crash after the other copies took the new table, before device 0's superblock
  // (written last) did: device 0 still says device 2 is lost, under its old UUID, so the
  // new device is refused by name; the filesystem mounts without it, degraded, and
  // replace-device takes it again (its copy names this filesystem under a UUID the table
  // does not know: blank).
  const std::string fresh2 = blank("new2", 64ull << 20);
  {
    auto fs = Must(Filesystem::Mount(with_new, MountOptions{}));
    ASSERT_OK(fs->LoseDevice(last).status());
    ASSERT_OK(fs->region()->device(0)->ReadSafe(0, &old_primary, sizeof(old_primary), nullptr));
    Must(fs->ReplaceDevice(last, fresh2));
    EXPECT_OK(fs->Unmount());
  }
  const std::string with_new2 = devs.paths()[0] + "," + devs.paths()[1] + "," + fresh2;
  {
    int fd = open(devs.paths()[0].c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, &old_primary, sizeof(old_primary), 0), static_cast<ssize_t>(sizeof(old_primary)));
    close(fd);
    auto refused = Filesystem::Mount(with_new2, MountOptions{});
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.status().message().find("the table names another there"), std::string::npos)
        << refused.status().ToString();
    auto fs = Must(Filesystem::Mount(devs.paths()[0] + "," + devs.paths()[1], MountOptions{}));
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{last});
    Must(fs->ReplaceDevice(last, fresh2));
    EXPECT_TRUE(fs->LostDevices().empty());
    for (int i : elsewhere) EXPECT_EQ(ReadFile(fs.get(), "f" + std::to_string(i), 1 << 20), Bytes(1 << 20, i));
    EXPECT_OK(fs->Unmount());
  }
  EXPECT_EQ(Must(Repairer::Run(with_new2, check)).found.problems, 0u);
  unlink(fresh2.c_str());
  unlink(fresh.c_str());
  unlink(small.c_str());
}

// A device image copied aside and brought back later (a restored backup) holds file data
// the filesystem has since overwritten: its superblock copy's generation is behind the one
// device 0 last wrote to it, so a mount treats it as lost (EIO, not stale bytes),
// add-device refuses it, and replace-device takes it as blank.
TEST(MultiDevice, AnOlderCopyOfADeviceIsLost) {
  Devices devs({64ull << 20, 64ull << 20, 64ull << 20});
  const uint32_t last = 2;
  const std::string backup = devs.paths()[last] + ".backup";
  auto copy_file = [](const std::string& from, const std::string& to) {
    std::vector<char> bytes(64ull << 20);
    const int in = open(from.c_str(), O_RDONLY);
    const int out = open(to.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(in, 0);
    ASSERT_GE(out, 0);
    ASSERT_EQ(pread(in, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    ASSERT_EQ(pwrite(out, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    close(in);
    close(out);
  };
  std::vector<int> on_last;
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    for (int i = 0; i < 6; ++i) {
      const uint64_t ino = WriteFile(fs.get(), "f" + std::to_string(i), Bytes(1 << 20, i));
      if (DevicesHolding(fs.get(), ino).count(last) != 0) on_last.push_back(i);
    }
    ASSERT_FALSE(on_last.empty());
    EXPECT_OK(fs->Unmount());
  }
  copy_file(devs.paths()[last], backup);
  const std::string backup0 = devs.paths()[0] + ".backup";
  copy_file(devs.paths()[0], backup0);
  // The files change after the copy was taken; the same device, current, mounts as before.
  for (int round = 0; round < 2; ++round) {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    EXPECT_TRUE(fs->LostDevices().empty());
    EXPECT_FALSE(fs->region()->device_stale(last));
    for (int i : on_last) {
      const uint64_t ino = Must(fs->Lookup(kRootIno, "f" + std::to_string(i))).ino;
      Inode* inode = Must(fs->Open(ino, O_RDWR));
      const std::vector<char> now = Bytes(1 << 20, 40 + i);
      EXPECT_EQ(Must(fs->Write(inode, 0, now.data(), now.size())), now.size());
      fs->Release(inode);
    }
    EXPECT_OK(fs->Unmount());
  }
  // An older device 0 holds the journal and maps, with no other copy: refused.
  {
    auto refused = Filesystem::Mount(backup0 + "," + devs.paths()[1] + "," + devs.paths()[2],
                                     MountOptions{});
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), EINVAL);
    EXPECT_NE(refused.status().message().find("an older copy of device 0"), std::string::npos)
        << refused.status().ToString();
  }
  unlink(backup0.c_str());
  const std::string with_backup = devs.paths()[0] + "," + devs.paths()[1] + "," + backup;
  FsckOptions check;
  check.read_only = true;
  {
    // fsck says the same, degraded, and does not take the old copy's superblock for a
    // problem to mend (which would make it look current).
    const FsckOutcome found = Must(Repairer::Run(with_backup, check));
    EXPECT_EQ(found.found.problems, 0u) << (found.found.messages.empty() ? "" : found.found.messages[0]);
    EXPECT_EQ(found.ExitCode(), kFsckUncorrected);
    ASSERT_FALSE(found.degraded.empty());
    EXPECT_NE(found.degraded[0].find("is an older copy of itself"), std::string::npos)
        << found.degraded[0];
  }
  {
    auto fs = Must(Filesystem::Mount(with_backup, MountOptions{}));
    EXPECT_TRUE(fs->region()->device_stale(last));
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{last});
    for (int i : on_last) {
      const uint64_t ino = Must(fs->Lookup(kRootIno, "f" + std::to_string(i))).ino;
      Inode* inode = Must(fs->Open(ino, O_RDONLY));
      std::vector<char> buf(1 << 20);
      EXPECT_EQ(fs->Read(inode, 0, buf.size(), buf.data()).status().code(), EIO) << i;
      fs->Release(inode);
    }
    auto refused = fs->RestoreDevice(last);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), EINVAL);
    EXPECT_NE(refused.status().message().find("an older copy of device 2"), std::string::npos)
        << refused.status().ToString();
    EXPECT_OK(fs->Unmount());
  }
  // Recorded lost: the current device, named again, stays lost until add-device brings
  // it back with its data.
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{last});
    Must(fs->RestoreDevice(last));
    EXPECT_TRUE(fs->LostDevices().empty());
    for (int i : on_last) EXPECT_EQ(ReadFile(fs.get(), "f" + std::to_string(i), 1 << 20), Bytes(1 << 20, 40 + i));
    EXPECT_OK(fs->Unmount());
  }
  // The backup is older still; replace-device takes it as blank.
  {
    auto fs = Must(Filesystem::Mount(with_backup, MountOptions{}));
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{last});
    const DeviceReplacement done = Must(fs->ReplaceDevice(last, backup));
    EXPECT_EQ(done.lost_files, on_last.size());
    EXPECT_TRUE(fs->LostDevices().empty());
    EXPECT_OK(fs->Unmount());
  }
  EXPECT_EQ(Must(Repairer::Run(with_backup, check)).found.problems, 0u);
  unlink(backup.c_str());
}

// A device that dies while the filesystem is not mounted is not recorded lost: naming
// the others fails the mount (a typo must never lose a device) until -o degraded, which
// loses it from then on; replace-device then puts a blank one in its place. With two
// devices the one left is named with a trailing comma.
TEST(MultiDevice, ADeviceGoneWhileUnmountedMountsDegraded) {
  Devices devs({64ull << 20, 64ull << 20});
  std::vector<int> on0, on1;
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    for (int i = 0; i < 6; ++i) {
      const uint64_t ino = WriteFile(fs.get(), "f" + std::to_string(i), Bytes(1 << 20, i));
      const uint32_t d = DeviceOfOffset(devs.geometry(), Must(fs->Bmap(ino))[0].phys_offset);
      (d == 1 ? on1 : on0).push_back(i);
    }
    ASSERT_FALSE(on0.empty());
    ASSERT_FALSE(on1.empty());
    EXPECT_OK(fs->Unmount());
  }
  const std::string dead = devs.paths()[1];
  const std::string fresh = dead + ".new";
  ASSERT_EQ(rename(dead.c_str(), fresh.c_str()), 0);
  {
    const int fd = open(fresh.c_str(), O_RDWR);  // blank it: a new device, not the old one
    ASSERT_GE(fd, 0);
    std::vector<char> zeros(1 << 20, 0);
    ASSERT_EQ(pwrite(fd, zeros.data(), zeros.size(), 0), static_cast<ssize_t>(zeros.size()));
    close(fd);
  }
  const std::string alone = devs.paths()[0] + ",";
  {
    auto refused = Filesystem::Mount(alone, MountOptions{});
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.status().message().find("missing device 1"), std::string::npos)
        << refused.status().ToString();
    EXPECT_NE(refused.status().message().find("-o degraded"), std::string::npos);
  }
  MountOptions degraded;
  degraded.degraded = true;
  {
    auto fs = Must(Filesystem::Mount(alone, degraded));
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{1});
    for (int i : on0) EXPECT_EQ(ReadFile(fs.get(), "f" + std::to_string(i), 1 << 20), Bytes(1 << 20, i));
    EXPECT_OK(fs->Unmount());
  }
  // Recorded: the plain mount of the one left works now, and replace-device restores
  // the pair.
  {
    auto fs = Must(Filesystem::Mount(alone, MountOptions{}));
    EXPECT_EQ(fs->LostDevices(), std::vector<uint32_t>{1});
    const DeviceReplacement done = Must(fs->ReplaceDevice(1, fresh));
    EXPECT_EQ(done.lost_files, on1.size());
    EXPECT_TRUE(fs->LostDevices().empty());
    EXPECT_OK(fs->Unmount());
  }
  FsckOptions check;
  check.read_only = true;
  const std::string pair = devs.paths()[0] + "," + fresh;
  EXPECT_EQ(Must(Repairer::Run(pair, check)).found.problems, 0u);
  {
    auto fs = Must(Filesystem::Mount(pair, MountOptions{}));
    EXPECT_TRUE(fs->LostDevices().empty());
    for (int i : on0) EXPECT_EQ(ReadFile(fs.get(), "f" + std::to_string(i), 1 << 20), Bytes(1 << 20, i));
    EXPECT_OK(fs->Unmount());
  }
  // Device 0 is never left out.
  EXPECT_FALSE(Filesystem::Mount(fresh + ",", degraded).ok());
  unlink(fresh.c_str());
}

TEST(MultiDevice, Refusals) {
  Devices devs({64ull << 20, 64ull << 20, 64ull << 20});
  Devices other({64ull << 20, 64ull << 20});
  auto code_and_text = [](const std::string& list, const char* text) {
    auto fs = Filesystem::Mount(list, MountOptions{});
    ASSERT_FALSE(fs.ok()) << list;
    EXPECT_EQ(fs.status().code(), EINVAL) << fs.status().ToString();
    EXPECT_NE(fs.status().message().find(text), std::string::npos) << fs.status().ToString();
  };
  code_and_text(devs.paths()[1], "name all of its devices");
  code_and_text(devs.List({0, 1}), "missing device 2");
  code_and_text(devs.paths()[0] + "," + devs.paths()[1] + "," + devs.paths()[1], "both are device 1");
  code_and_text(devs.List({0, 1}) + "," + other.paths()[1], "another udaxfs");
  // And nothing was written: the filesystem mounts and checks clean.
  auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
  EXPECT_EQ(Must(fs->checker().CrossCheckMaps()).problems, 0u);
  EXPECT_OK(fs->Unmount());
}

TEST(MultiDevice, ABadFirstBlockIsTakenForTheMissingDevice) {
  Devices devs({64ull << 20, 64ull << 20});
  // Device 0's primary superblock torn: the mount takes the replica on device 1.
  const int fd = open(devs.paths()[0].c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  const char junk[64] = {1, 2, 3};
  ASSERT_EQ(pwrite(fd, junk, sizeof(junk), 100), static_cast<ssize_t>(sizeof(junk)));
  close(fd);
  auto fs = Must(Filesystem::Mount(devs.List({1, 0}), MountOptions{}));
  EXPECT_EQ(fs->region()->device(0)->path(), devs.paths()[0]);
  EXPECT_OK(fs->Unmount());
  // A stranger in its place is refused, and left as it was.
  const std::string stranger = devs.paths()[0] + ".stranger";
  const int sfd = open(stranger.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(sfd, 0);
  ASSERT_EQ(ftruncate(sfd, 64 << 20), 0);
  close(sfd);
  auto refused = Filesystem::Mount(devs.paths()[1] + "," + stranger, MountOptions{});
  EXPECT_EQ(refused.status().code(), EINVAL) << refused.status().ToString();
  // Not one byte written (the probe's read may have given tmpfs a zero page).
  const int rfd = open(stranger.c_str(), O_RDONLY);
  ASSERT_GE(rfd, 0);
  std::vector<char> head(1 << 20);
  ASSERT_EQ(pread(rfd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  close(rfd);
  EXPECT_TRUE(std::all_of(head.begin(), head.end(), [](char c) { return c == 0; }));
  unlink(stranger.c_str());
}

TEST(MultiDevice, PoisonOnOneDeviceFailsOnlyItsBytes) {
  Devices devs({64ull << 20, 64ull << 20});
  uint64_t ino_on_1 = 0;
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    for (int i = 0; i < 4; ++i) {
      const uint64_t ino = WriteFile(fs.get(), "f" + std::to_string(i), Bytes(1 << 20, i));
      if (ino % 2 == 1) ino_on_1 = ino;
    }
    EXPECT_OK(fs->Unmount());
  }
  ASSERT_NE(ino_on_1, 0u);
  // Find where the file lies on device 1, then poison that block in device 1's own list.
  uint64_t phys = 0;
  const DiskSuperblock& g = devs.geometry();
  {
    auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
    phys = Must(fs->Bmap(ino_on_1))[0].phys_offset;
    EXPECT_OK(fs->Unmount());
  }
  ASSERT_EQ(DeviceOfOffset(g, phys), 1u);
  const uint64_t dev_off = phys - g.devices[1].start;
  auto state = Must(LocateTargetState(devs.paths()[1], true));
  ASSERT_OK(UpdateBadblockListFile(state.badblocks, [&](BadblockList* list) {
    list->Add(dev_off / 512 + 8, 1);  // 4 KiB into the file
    return Status::Ok();
  }));
  auto fs = Must(Filesystem::Mount(devs.List(), MountOptions{}));
  // The span reports it where it lies in the filesystem.
  const std::vector<RegionRange> bad = fs->region()->EmulatedPoison();
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].offset, phys + 4096);
  EXPECT_TRUE(fs->region()->HasKnownBad(phys, 8192));
  EXPECT_FALSE(fs->region()->HasKnownBad(g.devices[0].start + dev_off, 8192));
  MediaFault fault;
  std::vector<char> buf(4096);
  EXPECT_EQ(fs->region()->ReadSafe(phys + 4096, buf.data(), buf.size(), &fault).code(), EIO);
  EXPECT_EQ(fault.offset, phys + 4096);
  // Every file on device 0 reads back.
  for (int i = 0; i < 4; ++i) {
    const uint64_t ino = Must(fs->Lookup(kRootIno, "f" + std::to_string(i))).ino;
    if (ino == ino_on_1) continue;
    if (ino % 2 == 0) {
      EXPECT_EQ(ReadFile(fs.get(), "f" + std::to_string(i), 1 << 20), Bytes(1 << 20, i));
    }
  }
  EXPECT_OK(fs->Unmount());
}

}  // namespace
}  // namespace udax
