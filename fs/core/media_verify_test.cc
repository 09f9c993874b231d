// media_verify_test.cc -- a verify pass finds latent poison, skips what is known bad,
// keeps to its rate and stops when asked.
#include "fs/core/media_verify.h"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fs/core/core_test_util.h"
#include "fs/format/layout.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

// Writes the image's latent list (inject-error --no-notify) and reloads it.
void Latent(Filesystem* fs, const std::vector<RegionRange>& ranges) {
  std::ofstream out(fs->region()->latent_path(), std::ios::trunc);
  for (const RegionRange& r : ranges) out << r.offset / 512 << " " << r.length / 512 << "\n";
  out.close();
  ASSERT_OK(fs->region()->ReloadEmulatedPoison());
}

uint64_t FilePhys(Filesystem* fs, const char* name, size_t bytes) {
  auto [e, f] = Must(fs->Create(kRootIno, name, 0644, O_RDWR, kRoot));
  const std::string data(bytes, 'x');
  EXPECT_EQ(Must(fs->Write(f, 0, data.data(), data.size())), data.size());
  return Must(fs->Bmap(e.ino)).front().phys_offset;
}

TEST(VerifyMedia, FindsLatentPoisonInDataAndStaticMetadataAndStepsOverIt) {
  TestImage image;
  auto fs = image.Mount();
  const uint64_t a = FilePhys(fs.get(), "a", 3 * 4096);
  const uint64_t b = FilePhys(fs.get(), "b", 4096);
  const DiskSuperblock sb = fs->superblock();
  // Two bad blocks in one chunk of a's data, one in b, one in the inode table.
  Latent(fs.get(), {{a + 512, 512}, {a + 8192, 1024}, {b, 512}, {sb.itable_off + 4096, 512}});
  std::vector<MediaFault> heard;
  fs->region()->set_fault_listener([&](const MediaFault& f) { heard.push_back(f); });

  VerifyProgress progress;
  VerifyReport r = Must(VerifyMedia(fs.get(), VerifyOptions{}, &progress));
  const std::vector<RegionRange> want = {
      {sb.itable_off + 4096, 512}, {a + 512, 512}, {a + 8192, 1024}, {b, 512}};
  std::vector<RegionRange> got = r.found;
  std::sort(got.begin(), got.end(), [](auto& x, auto& y) { return x.offset < y.offset; });
  EXPECT_EQ(got, want);
  EXPECT_EQ(progress.found.load(), 4u);
  EXPECT_EQ(progress.bytes_done.load(), progress.bytes_total.load());
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.bytes_known_bad, 0u);
  // Every fault went to the listener, which the daemon's resolver is.
  EXPECT_EQ(heard.size(), 4u);

  // Once found (the media handler marks them), a second pass reads around them.
  for (const RegionRange& f : want) fs->region()->MarkKnownBad(f);
  heard.clear();
  VerifyReport again = Must(VerifyMedia(fs.get(), VerifyOptions{}));
  EXPECT_TRUE(again.found.empty());
  EXPECT_EQ(again.bytes_known_bad, 512u + 512 + 1024 + 512);
  EXPECT_TRUE(heard.empty());
  fs->region()->set_fault_listener(nullptr);
}

TEST(VerifyMedia, ReadsEveryAllocatedAuAndNothingFree) {
  TestImage image;
  auto fs = image.Mount();
  const DiskSuperblock sb = fs->superblock();
  uint64_t statics = 0;
  for (const StaticArea& s : StaticAreas(sb)) statics += s.len;
  VerifyReport before = Must(VerifyMedia(fs.get(), VerifyOptions{}));
  FilePhys(fs.get(), "big", 64 * 4096);
  VerifyReport after = Must(VerifyMedia(fs.get(), VerifyOptions{}));
  EXPECT_GE(before.bytes_read, statics);
  EXPECT_EQ(after.bytes_read - before.bytes_read, 64u * sb.au_size);
  // Poison in free space is not the patrol's to find (nothing holds it).
  const uint64_t last_au = LastDataAu(sb) - 1;
  ASSERT_FALSE(fs->AuInUse(last_au));
  Latent(fs.get(), {{last_au * sb.au_size, 512}});
  EXPECT_TRUE(Must(VerifyMedia(fs.get(), VerifyOptions{})).found.empty());
}

TEST(VerifyMedia, KeepsToItsRateAndStopsWhenAsked) {
  TestImage image;
  auto fs = image.Mount();
  FilePhys(fs.get(), "f", 256 * 4096);
  VerifyOptions o;
  o.chunk_bytes = 64 << 10;
  o.rate_bytes_per_s = 8 << 20;
  // At 8 MiB/s, the first MiB and more takes over 100 ms; the stop comes first.
  std::atomic<bool> stop{false};
  o.stop = &stop;
  VerifyProgress progress;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop = true;
  });
  const auto t0 = std::chrono::steady_clock::now();
  VerifyReport r = Must(VerifyMedia(fs.get(), o, &progress));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stopper.join();
  EXPECT_TRUE(r.stopped);
  EXPECT_LT(progress.bytes_done.load(), progress.bytes_total.load());
  // Bounded rate: what was read fits the rate (one chunk of slack), however fast pmem is.
  EXPECT_LE(static_cast<double>(r.bytes_read), secs * o.rate_bytes_per_s + o.chunk_bytes);
}

TEST(VerifyMedia, RefusesAShutDownFilesystem) {
  TestImage image;
  auto fs = image.Mount();
  fs->Shutdown("test");
  EXPECT_EQ(VerifyMedia(fs.get(), VerifyOptions{}).status().code(), EIO);
}

}  // namespace
}  // namespace udax
