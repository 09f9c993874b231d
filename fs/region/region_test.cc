// region_test.cc -- Region on a real libpmem2 mapping: access, bounds, locks, open errors, SIGBUS.
#include "fs/region/region.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fs/base/status_testing.h"

// AddressSanitizer installs its own SIGBUS handler by default (handle_sigbus=1). Ours,
// installed later, still runs first and chains to it, so armed copies work either way;
// but an unarmed SIGBUS would then end in an ASan report and exit(1) instead of death by
// SIGBUS, which the death tests in safe_copy_test.cc check for. Leave SIGBUS to us.
extern "C" __attribute__((used, visibility("default"))) const char* __asan_default_options() {
  return "handle_sigbus=0";
}

namespace udax {
namespace {

const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
  return v;
}

class RegionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // tmpfs: a plain file there is the emulated region the daemon uses without pmem.
    char tmpl[] = "/dev/shm/udax_region_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    path_ = dir_ + "/region.img";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::unique_ptr<Region> MustOpen(const std::string& path, const RegionOptions& options) {
    auto r = Region::Open(path, options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    return std::move(r).value();
  }
  std::unique_ptr<Region> MustCreate(uint64_t size) {
    RegionOptions options;
    options.create_size = size;
    return MustOpen(path_, options);
  }
  // Changes the backing file's size behind the region's back, as another process would.
  void TruncateBehindRegion(uint64_t size) {
    const int fd = open(path_.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0) << std::strerror(errno);
    close(fd);
  }

  std::string dir_;
  std::string path_;
};

TEST_F(RegionTest, KindNames) {
  EXPECT_STREQ(RegionKindName(RegionKind::kEmulated), "emulated");
  EXPECT_STREQ(RegionKindName(RegionKind::kFsdax), "fsdax");
  EXPECT_STREQ(RegionKindName(RegionKind::kDevdax), "devdax");
}

TEST_F(RegionTest, CreateSizeMakesSparseEmulatedRegion) {
  const uint64_t size = 4 << 20;
  auto region = MustCreate(size);
  ASSERT_NE(region, nullptr);
  EXPECT_EQ(region->kind(), RegionKind::kEmulated);  // tmpfs has no MAP_SYNC
  EXPECT_EQ(region->path(), path_);
  EXPECT_EQ(region->size(), size);
  EXPECT_EQ(region->alignment(), kPage);
  EXPECT_FALSE(region->read_only());
  EXPECT_GE(region->fd(), 0);
  EXPECT_NE(region->base(), nullptr);

  struct stat st;
  ASSERT_EQ(fstat(region->fd(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), size);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, size) << "created file is not sparse";
}

// An image on tmpfs has nothing to msync to; one on a disk filesystem does.
TEST_F(RegionTest, VolatileBackingOnlyOnTmpfs) {
  auto region = MustCreate(16 * kPage);
  ASSERT_NE(region, nullptr);
  EXPECT_TRUE(region->volatile_backing());
  EXPECT_OK(region->Persist(0, 16 * kPage));

  char tmpl[] = "/var/tmp/udax_region_test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string disk_path = std::string(tmpl) + "/region.img";
  struct statfs fs_stat;
  ASSERT_EQ(statfs(tmpl, &fs_stat), 0);
  {
    RegionOptions options;
    options.create_size = 16 * kPage;
    auto disk = Region::Open(disk_path, options);
    ASSERT_TRUE(disk.ok()) << disk.status().ToString();
    if (fs_stat.f_type != TMPFS_MAGIC) {
      EXPECT_FALSE((*disk)->volatile_backing());
    }
    EXPECT_OK((*disk)->Persist(0, 16 * kPage));
  }
  unlink(disk_path.c_str());
  rmdir(tmpl);
}

// An emulated region writes through its descriptor (region_pmem2.cc, WriteThroughFd): a
// full tmpfs under a sparse image is ENOSPC, as for any file, and not a SIGBUS that the
// safe copy would report as bad media.
TEST_F(RegionTest, WriteToAFullImageIsEnospcNotAMediaFault) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  const std::string small = dir_ + "/small";
  ASSERT_EQ(mkdir(small.c_str(), 0700), 0) << std::strerror(errno);
  if (mount("tmpfs", small.c_str(), "tmpfs", 0, "size=64k") != 0) {
    GTEST_SKIP() << "cannot mount tmpfs here: " << std::strerror(errno);
  }
  struct Unmount {
    std::string dir;
    ~Unmount() { umount2(dir.c_str(), MNT_DETACH); }
  } unmount{small};
  {
    RegionOptions options;
    options.create_size = 1 << 20;  // sparse: far more than the 64 KiB the mount holds
    auto region = MustOpen(small + "/region.img", options);
    ASSERT_NE(region, nullptr);
    int faults = 0;
    region->set_fault_listener([&](const MediaFault&) { ++faults; });
    const std::vector<uint8_t> data = Pattern(256 << 10, 3);
    EXPECT_EQ(region->WriteSafe(0, data.data(), data.size(), true).code(), ENOSPC);
    EXPECT_EQ(faults, 0);
    // What did fit reads back.
    std::vector<uint8_t> back(4096);
    ASSERT_OK(region->ReadSafe(0, back.data(), back.size()));
    EXPECT_EQ(std::memcmp(back.data(), data.data(), back.size()), 0);
    // A small write to a page the image holds (the mapping's path) still works when the
    // filesystem is full; one to a page it does not hold is ENOSPC, not a media fault.
    const std::vector<uint8_t> small_data = Pattern(100, 7);
    ASSERT_OK(region->WriteSafe(1000, small_data.data(), small_data.size(), true));
    ASSERT_OK(region->ReadSafe(1000, back.data(), small_data.size()));
    EXPECT_EQ(std::memcmp(back.data(), small_data.data(), small_data.size()), 0);
    EXPECT_EQ(region->WriteSafe(900 << 10, small_data.data(), small_data.size(), true).code(),
              ENOSPC);
    EXPECT_EQ(faults, 0);
  }
}

// Whether this process's page table maps the page at `addr` (/proc/self/pagemap, bit 63).
bool PagePresent(const void* addr) {
  const int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  uint64_t entry = 0;
  const off_t at = static_cast<off_t>(reinterpret_cast<uintptr_t>(addr) / kPage * 8);
  const bool got = pread(fd, &entry, sizeof(entry), at) == static_cast<ssize_t>(sizeof(entry));
  close(fd);
  return got && (entry >> 63) != 0;
}

// On tmpfs a write of 64 KiB or more is a store through the mapping, whose page-table
// entries one MADV_POPULATE_WRITE makes (region_pmem2.cc, StoresThroughMapping): pwrite
// on the image would take its inode lock, which every daemon thread's write queues
// behind. The pages end up mapped in this process (pwrite would leave them unmapped), and
// every byte lands, across a punch that unmaps some of them again.
TEST_F(RegionTest, LargeWritesOnTmpfsStoreThroughTheMapping) {
  auto region = MustCreate(64 * kPage);
  ASSERT_NE(region, nullptr);
  ASSERT_TRUE(region->volatile_backing());
  const std::vector<uint8_t> first = Pattern(20 * kPage + 100, 1);
  ASSERT_OK(region->WriteSafe(kPage + 50, first.data(), first.size(), true));
  for (uint64_t p = 1; p <= 21; ++p) {
    EXPECT_TRUE(PagePresent(region->base() + p * kPage)) << "page " << p;
  }
  EXPECT_FALSE(PagePresent(region->base() + 50 * kPage));  // never written, never read
  // A small write to pages never mapped keeps the descriptor: no page-table entry (on
  // shadow page tables each costs a trap) for 8 KiB.
  const std::vector<uint8_t> small = Pattern(2 * kPage, 3);
  ASSERT_OK(region->WriteSafe(40 * kPage, small.data(), small.size(), true));
  EXPECT_FALSE(PagePresent(region->base() + 40 * kPage));
  EXPECT_FALSE(PagePresent(region->base() + 41 * kPage));
  // Punched pages leave the page table; a write after the punch puts data back.
  ASSERT_OK(region->ZeroSafe(0, 32 * kPage, true));
  const std::vector<uint8_t> second = Pattern(16 * kPage, 2);
  ASSERT_OK(region->WriteSafe(8 * kPage, second.data(), second.size(), true));
  std::vector<uint8_t> back(32 * kPage);
  ASSERT_OK(region->ReadSafe(0, back.data(), back.size()));
  std::vector<uint8_t> want(32 * kPage, 0);
  std::memcpy(want.data() + 8 * kPage, second.data(), second.size());
  EXPECT_EQ(back, want);
  // What the descriptor sees is what the mapping stored.
  std::vector<uint8_t> via_fd(second.size());
  ASSERT_EQ(pread(region->fd(), via_fd.data(), via_fd.size(), static_cast<off_t>(8 * kPage)),
            static_cast<ssize_t>(via_fd.size()));
  EXPECT_EQ(via_fd, second);
}

// What may hold data: an emulated image's punched pages (ZeroSafe) are not read for it.
TEST_F(RegionTest, MaybeNonZeroSkipsAnImagesPunchedPages) {
  auto region = MustCreate(64 * kPage);
  ASSERT_NE(region, nullptr);
  const std::vector<uint8_t> data = Pattern(64 * kPage, 4);
  ASSERT_OK(region->WriteSafe(0, data.data(), data.size(), true));
  ASSERT_OK(region->ZeroSafe(16 * kPage, 32 * kPage, true));
  const std::vector<uint8_t> page = Pattern(kPage, 5);
  ASSERT_OK(region->WriteSafe(20 * kPage, page.data(), page.size(), true));
  const std::vector<RegionRange> maybe = region->MaybeNonZeroIn(8 * kPage, 48 * kPage);
  ASSERT_EQ(maybe.size(), 3u);
  EXPECT_EQ(maybe[0].offset, 8 * kPage);
  EXPECT_EQ(maybe[0].length, 8 * kPage);
  EXPECT_EQ(maybe[1].offset, 20 * kPage);
  EXPECT_EQ(maybe[1].length, kPage);
  EXPECT_EQ(maybe[2].offset, 48 * kPage);
  EXPECT_EQ(maybe[2].length, 8 * kPage);
  EXPECT_TRUE(region->MaybeNonZeroIn(24 * kPage, 8 * kPage).empty());
}

TEST_F(RegionTest, CreateSizeLeavesExistingFileAlone) {
  ASSERT_NE(MustCreate(16 * kPage), nullptr);
  RegionOptions options;
  options.create_size = 64 * kPage;
  auto region = MustOpen(path_, options);
  ASSERT_NE(region, nullptr);
  EXPECT_EQ(region->size(), 16 * kPage);
}

TEST_F(RegionTest, WriteReadRoundTrip) {
  auto region = MustCreate(64 * kPage);
  ASSERT_NE(region, nullptr);
  const auto a = Pattern(3 * kPage + 123, 1);  // unaligned length, crosses pages
  const auto b = Pattern(777, 2);
  ASSERT_OK(region->WriteSafe(5, a.data(), a.size(), /*persist=*/true));
  ASSERT_OK(region->WriteSafe(40 * kPage + 9, b.data(), b.size(), /*persist=*/false));
  ASSERT_OK(region->Flush(40 * kPage + 9, b.size()));
  region->Drain();
  ASSERT_OK(region->Persist(0, region->size()));

  std::vector<uint8_t> got(a.size());
  ASSERT_OK(region->ReadSafe(5, got.data(), got.size()));
  EXPECT_EQ(got, a);
  got.resize(b.size());
  ASSERT_OK(region->ReadSafe(40 * kPage + 9, got.data(), got.size()));
  EXPECT_EQ(got, b);

  // The mapping is shared: the file itself holds the bytes.
  const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> from_file(a.size());
  ASSERT_EQ(pread(fd, from_file.data(), from_file.size(), 5),
            static_cast<ssize_t>(from_file.size()));
  close(fd);
  EXPECT_EQ(from_file, a);

  ASSERT_OK(region->ZeroSafe(kPage - 10, 20, /*persist=*/true));
  std::vector<uint8_t> zeros(20);
  ASSERT_OK(region->ReadSafe(kPage - 10, zeros.data(), zeros.size()));
  EXPECT_EQ(zeros, std::vector<uint8_t>(20, 0));
  uint8_t edge = 0;
  ASSERT_OK(region->ReadSafe(kPage + 10, &edge, 1));
  EXPECT_EQ(edge, a[kPage + 10 - 5]);  // the byte after the zeroed range is untouched

  // Zero-length accesses are fine anywhere up to and including the end.
  ASSERT_OK(region->ReadSafe(region->size(), nullptr, 0));
  ASSERT_OK(region->WriteSafe(region->size(), nullptr, 0, true));
  ASSERT_OK(region->Persist(region->size(), 0));
}

TEST_F(RegionTest, OutOfBoundsIsEinval) {
  auto region = MustCreate(8 * kPage);
  ASSERT_NE(region, nullptr);
  const uint64_t size = region->size();
  uint8_t buf[16] = {};
  const Status past_end = region->ReadSafe(size - 1, buf, 2);
  EXPECT_EQ(past_end.code(), EINVAL);
  EXPECT_NE(past_end.message().find(path_), std::string::npos) << past_end.message();
  // off + n wraps around 2^64: must not pass as "in bounds".
  EXPECT_EQ(region->ReadSafe(UINT64_MAX, buf, 2).code(), EINVAL);
  EXPECT_EQ(region->ReadSafe(1, buf, SIZE_MAX).code(), EINVAL);
  EXPECT_EQ(region->ReadSafe(size + 1, buf, 0).code(), EINVAL);
  EXPECT_EQ(region->WriteSafe(size, buf, 1, false).code(), EINVAL);
  EXPECT_EQ(region->WriteSafe(UINT64_MAX - 3, buf, 8, true).code(), EINVAL);
  EXPECT_EQ(region->ZeroSafe(size - 4, 8, false).code(), EINVAL);
  EXPECT_EQ(region->Persist(size - 4, 8).code(), EINVAL);
  EXPECT_EQ(region->Flush(UINT64_MAX, 2).code(), EINVAL);
  ASSERT_OK(region->ReadSafe(size - 16, buf, 16));
}

TEST_F(RegionTest, ReadOnlyRefusesWrites) {
  const auto data = Pattern(100, 3);
  {
    auto rw = MustCreate(8 * kPage);
    ASSERT_NE(rw, nullptr);
    ASSERT_OK(rw->WriteSafe(kPage, data.data(), data.size(), true));
  }
  RegionOptions options;
  options.read_only = true;
  auto region = MustOpen(path_, options);
  ASSERT_NE(region, nullptr);
  EXPECT_TRUE(region->read_only());
  std::vector<uint8_t> got(data.size());
  ASSERT_OK(region->ReadSafe(kPage, got.data(), got.size()));
  EXPECT_EQ(got, data);

  const Status w = region->WriteSafe(0, data.data(), data.size(), true);
  EXPECT_EQ(w.code(), EROFS) << w.ToString();
  EXPECT_EQ(region->ZeroSafe(0, 10, false).code(), EROFS);
  EXPECT_OK(region->Persist(0, 10));  // nothing to make durable, not an error
  // The descriptor is read-only too, not just the mapping.
  EXPECT_EQ(fcntl(region->fd(), F_GETFL) & O_ACCMODE, O_RDONLY);
}

TEST_F(RegionTest, LockKeepsSecondOpenOut) {
  auto first = MustCreate(8 * kPage);
  ASSERT_NE(first, nullptr);
  auto second = Region::Open(path_, RegionOptions{});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), EBUSY);
  EXPECT_EQ(second.status().message(), path_ + ": in use by another udaxfs (locked)");

  RegionOptions read_only;
  read_only.read_only = true;
  EXPECT_EQ(Region::Open(path_, read_only).status().code(), EBUSY);

  RegionOptions unlocked;
  unlocked.lock = false;
  EXPECT_NE(MustOpen(path_, unlocked), nullptr);

  first.reset();  // closing the descriptor drops the lock
  EXPECT_NE(MustOpen(path_, RegionOptions{}), nullptr);
}

TEST_F(RegionTest, MissingPathIsEnoent) {
  auto r = Region::Open(dir_ + "/absent.img", RegionOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOENT);
  EXPECT_NE(r.status().message().find(dir_ + "/absent.img"), std::string::npos)
      << r.status().message();
  // Not created as a side effect.
  EXPECT_NE(access((dir_ + "/absent.img").c_str(), F_OK), 0);
}

TEST_F(RegionTest, DirectoryIsEinval) {
  auto r = Region::Open(dir_, RegionOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EINVAL);
  EXPECT_EQ(r.status().message(), dir_ + ": not a regular file or a devdax device");
}

TEST_F(RegionTest, FifoIsEinvalWithoutBlocking) {
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto r = Region::Open(fifo, RegionOptions{});  // opening it would block forever
  EXPECT_EQ(r.status().code(), EINVAL) << r.status().ToString();
}

TEST_F(RegionTest, NonDaxCharacterDeviceIsEinval) {
  RegionOptions options;
  options.lock = false;
  auto r = Region::Open("/dev/null", options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EINVAL);
  EXPECT_EQ(r.status().message(), "/dev/null: not a regular file or a devdax device");
}

TEST_F(RegionTest, EmptyFileIsEinval) {
  const int fd = open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  auto r = Region::Open(path_, RegionOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EINVAL);
  EXPECT_NE(r.status().message().find(path_), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("empty"), std::string::npos) << r.status().message();
}

// The SIGBUS path for real: shrinking the backing file leaves mapped pages beyond EOF, and
// touching them raises SIGBUS (BUS_ADRERR), just as a removed device does.
TEST_F(RegionTest, SigbusBeyondEofBecomesEioAndMediaFault) {
  auto region = MustCreate(16 * kPage);
  ASSERT_NE(region, nullptr);
  std::mutex mu;
  std::vector<MediaFault> reported;
  region->set_fault_listener([&](const MediaFault& f) {
    std::lock_guard<std::mutex> lock(mu);
    reported.push_back(f);
  });
  const auto head = Pattern(kPage, 4);
  ASSERT_OK(region->WriteSafe(0, head.data(), head.size(), true));

  TruncateBehindRegion(8 * kPage);

  std::vector<uint8_t> buf(4 * kPage);
  MediaFault fault;
  Status st = region->ReadSafe(10 * kPage + 100, buf.data(), 64, &fault);
  EXPECT_EQ(st.code(), EIO) << st.ToString();
  EXPECT_NE(st.message().find(path_), std::string::npos) << st.message();
  EXPECT_EQ(fault.offset, 10 * kPage);
  EXPECT_EQ(fault.length, kPage);
  EXPECT_EQ(fault.si_code, BUS_ADRERR);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].offset, 10 * kPage);
  EXPECT_EQ(reported[0].length, kPage);
  EXPECT_EQ(reported[0].si_code, BUS_ADRERR);

  // A read that starts on a good page and runs into the bad one names the bad one.
  fault = MediaFault();
  st = region->ReadSafe(8 * kPage - 100, buf.data(), 200, &fault);
  EXPECT_EQ(st.code(), EIO);
  EXPECT_EQ(fault.offset, 8 * kPage);

  // The process goes on: the good part still reads back, with its data.
  std::vector<uint8_t> got(head.size());
  ASSERT_OK(region->ReadSafe(0, got.data(), got.size()));
  EXPECT_EQ(got, head);

  // Writes into the hole fail the same way instead of crashing.
  fault = MediaFault();
  st = region->WriteSafe(12 * kPage + 8, head.data(), 256, true, &fault);
  EXPECT_EQ(st.code(), EIO) << st.ToString();
  EXPECT_EQ(fault.offset, 12 * kPage);
  fault = MediaFault();
  st = region->ZeroSafe(15 * kPage, kPage, false, &fault);
  EXPECT_EQ(st.code(), EIO) << st.ToString();
  EXPECT_EQ(fault.offset, 15 * kPage);
  // A null fault pointer is allowed.
  EXPECT_EQ(region->ReadSafe(9 * kPage, buf.data(), 1).code(), EIO);
  EXPECT_EQ(reported.size(), 5u);

  // Still alive and well, and SIGBUS is not left blocked on this thread.
  ASSERT_OK(region->WriteSafe(kPage, head.data(), 100, true));
  sigset_t mask;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, nullptr, &mask), 0);
  EXPECT_FALSE(sigismember(&mask, SIGBUS));

  // Growing the file back makes the pages usable again (tmpfs hands out fresh zeros).
  TruncateBehindRegion(16 * kPage);
  ASSERT_OK(region->ReadSafe(10 * kPage, buf.data(), kPage));
  EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + kPage), std::vector<uint8_t>(kPage, 0));
}

TEST_F(RegionTest, SigbusFromTwoThreadsAtOnce) {
  auto region = MustCreate(32 * kPage);
  ASSERT_NE(region, nullptr);
  std::atomic<int> listener_calls{0};
  region->set_fault_listener([&](const MediaFault&) { listener_calls++; });
  TruncateBehindRegion(16 * kPage);

  constexpr int kIterations = 2000;
  std::atomic<int> failures{0};
  auto worker = [&](int t) {
    const uint64_t good = static_cast<uint64_t>(t) * 4 * kPage;        // pages 0..3 or 4..7
    const uint64_t bad = (16 + 8 * static_cast<uint64_t>(t)) * kPage;  // 16 or 24
    std::vector<uint8_t> in(512), out(512);
    for (int i = 0; i < kIterations; ++i) {
      const uint64_t bad_off = bad + static_cast<uint64_t>(i % 4) * kPage + 17;
      MediaFault fault;
      const Status st = (i % 3 == 0) ? region->WriteSafe(bad_off, in.data(), 64, false, &fault)
                                     : region->ReadSafe(bad_off, out.data(), 64, &fault);
      if (st.code() != EIO || fault.offset != bad_off - 17 || fault.si_code != BUS_ADRERR) {
        failures++;
      }
      for (size_t k = 0; k < in.size(); ++k) in[k] = static_cast<uint8_t>(i + k + t);
      const uint64_t good_off = good + static_cast<uint64_t>(i % 4) * kPage;
      if (!region->WriteSafe(good_off, in.data(), in.size(), false).ok() ||
          !region->ReadSafe(good_off, out.data(), out.size()).ok() || out != in) {
        failures++;
      }
    }
  };
  std::thread t0(worker, 0);
  std::thread t1(worker, 1);
  t0.join();
  t1.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(listener_calls.load(), 2 * kIterations);
}

// Real hardware (or the KVM lab): only reads, and without taking the lock, so a
// running daemon and its data are left alone.
TEST(RegionDevdaxTest, OpensDevdaxReadOnly) {
  std::string dev;
  if (DIR* d = opendir("/dev")) {
    while (dirent* e = readdir(d)) {
      if (std::strncmp(e->d_name, "dax", 3) == 0) {
        dev = std::string("/dev/") + e->d_name;
        break;
      }
    }
    closedir(d);
  }
  if (dev.empty()) GTEST_SKIP() << "no /dev/dax* device";
  RegionOptions options;
  options.read_only = true;
  options.lock = false;
  auto r = Region::Open(dev, options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Region& region = *r.value();
  EXPECT_EQ(region.kind(), RegionKind::kDevdax);
  EXPECT_GE(region.alignment(), kPage);
  EXPECT_EQ(region.alignment() & (region.alignment() - 1), 0u);
  EXPECT_EQ(region.size() % region.alignment(), 0u);
  std::vector<uint8_t> buf(kPage);
  EXPECT_TRUE(region.ReadSafe(0, buf.data(), buf.size()).ok());
}

// A file on a DAX mount (xfs/ext4 -o dax) maps with MAP_SYNC. Set UDAX_TEST_FSDAX_DIR to
// such a directory (the lab does) to run it.
TEST(RegionFsdaxTest, FileOnDaxMountIsFsdax) {
  const char* dir = std::getenv("UDAX_TEST_FSDAX_DIR");
  if (dir == nullptr || dir[0] == '\0') GTEST_SKIP() << "UDAX_TEST_FSDAX_DIR not set";
  const std::string path = std::string(dir) + "/udax_region_test.img";
  unlink(path.c_str());
  RegionOptions options;
  options.create_size = 4 << 20;
  auto r = Region::Open(path, options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Region& region = *r.value();
  EXPECT_EQ(region.kind(), RegionKind::kFsdax);
  const auto data = Pattern(1000, 5);
  EXPECT_TRUE(region.WriteSafe(100, data.data(), data.size(), true).ok());
  std::vector<uint8_t> got(data.size());
  EXPECT_TRUE(region.ReadSafe(100, got.data(), got.size()).ok());
  EXPECT_EQ(got, data);
  r.value().reset();  // unmap before unlinking
  unlink(path.c_str());
}

}  // namespace
}  // namespace udax
