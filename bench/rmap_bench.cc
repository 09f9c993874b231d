// rmap_bench.cc -- the reverse map's promises, measured: owner lookup for one 4 KiB bad
// range stays under a microsecond and flat from 10^3 to 10^7 allocation units, against
// the same question answered by walking every inode's extent map (10^4..10^6 files);
// and mount time at 10^3 and 10^6 files.
//
// Everything is measured in one run on images in /dev/shm and reported as absolute
// medians plus ratios; `--quick` stops at 10^5 (CI smoke), the default goes to 10^6 files
// and 10^7 AUs. Output: a table on stdout and JSON (--json FILE).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench/stats.h"
#include "fs/core/filesystem.h"

namespace udax {
namespace {

using Clock = std::chrono::steady_clock;

struct Image {
  std::string path;
  explicit Image(const std::string& name) : path("/dev/shm/udax_bench_" + name + ".img") {}
  ~Image() { unlink(path.c_str()); }
};

[[noreturn]] void Die(const std::string& what, const Status& st) {
  fprintf(stderr, "rmap_bench: %s: %s\n", what.c_str(), st.ToString().c_str());
  exit(1);
}

// Formats `img` with `au_count` AUs of `au` bytes and few inodes (the AU count is what
// varies), then returns the mounted filesystem.
std::unique_ptr<Filesystem> MakeFs(const Image& img, uint64_t au_count, uint64_t au,
                                   uint64_t bytes_per_inode) {
  unlink(img.path.c_str());
  RegionOptions ro;
  ro.create_size = au_count * au;
  {
    auto region = Region::Open(img.path, ro);
    if (!region.ok()) Die("create " + img.path, region.status());
    MkfsParams p;
    p.au_size = au;
    p.bytes_per_inode = bytes_per_inode;
    Status st = Filesystem::Format(region->get(), p);
    if (!st.ok()) Die("format", st);
  }
  auto fs = Filesystem::Mount(img.path, {});
  if (!fs.ok()) Die("mount", fs.status());
  return std::move(fs).value();
}

// Creates `n` one-byte files (each owns one AU); returns the physical offset of each.
std::vector<uint64_t> MakeFiles(Filesystem* fs, uint64_t n) {
  std::vector<uint64_t> phys;
  phys.reserve(n);
  const Caller root{0, 0};
  for (uint64_t i = 0; i < n; ++i) {
    auto c = fs->Create(kRootIno, "f" + std::to_string(i), 0644, O_RDWR, root);
    if (!c.ok()) Die("create", c.status());
    auto w = fs->Write(c->second, 0, "x", 1);
    if (!w.ok()) Die("write", w.status());
    fs->Release(c->second);
    auto b = fs->Bmap(c->first.ino);
    if (!b.ok()) Die("bmap", b.status());
    phys.push_back((*b)[0].phys_offset);
    fs->Forget(c->first.ino, 1);
  }
  return phys;
}

// Median nanoseconds of one Owners() call over random 4 KiB ranges of `targets`.
double LookupNs(Filesystem* fs, const std::vector<uint64_t>& targets, int samples) {
  std::mt19937_64 rng(1);
  std::vector<double> ns;
  ns.reserve(samples);
  for (int i = 0; i < samples; ++i) {
    const uint64_t phys = targets[rng() % targets.size()];
    const auto t0 = Clock::now();
    auto owners = fs->Owners(phys, 4096);
    const auto t1 = Clock::now();
    if (!owners.ok() || owners->empty()) Die("owners", owners.status());
    ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  return Median(ns);
}

// The same question answered without a reverse map: walk every inode's extents.
double WalkNs(Filesystem* fs, const std::vector<uint64_t>& targets, int samples) {
  std::mt19937_64 rng(2);
  const uint64_t inodes = fs->superblock().inode_count;
  std::vector<double> ns;
  for (int i = 0; i < samples; ++i) {
    const uint64_t phys = targets[rng() % targets.size()];
    const auto t0 = Clock::now();
    uint64_t found = 0;
    for (uint64_t ino = 2; ino < inodes && !found; ++ino) {
      auto extents = fs->Bmap(ino);
      if (!extents.ok()) continue;  // a free inode
      for (const BmapExtent& e : *extents) {
        if (phys >= e.phys_offset && phys < e.phys_offset + e.length) found = ino;
      }
      fs->Forget(ino, 0);
    }
    const auto t1 = Clock::now();
    if (!found) Die("walk", Status::NotFound("no owner found by walking"));
    ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  return Median(ns);
}

}  // namespace
}  // namespace udax

int main(int argc, char** argv) {
  using namespace udax;
  bool quick = false;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      json_path = argv[++i];
    } else {
      fprintf(stderr, "usage: rmap_bench [--quick] [--json FILE]\n");
      return 2;
    }
  }
  nlohmann::json out;

  // 1. Lookup cost against the region's AU count (few files; the table size varies).
  printf("== owner lookup of one 4 KiB range vs allocation units in the region\n");
  printf("%12s %14s\n", "AUs", "median ns");
  // 16 * 10^3 AUs (64 MiB) is the smallest filesystem at 4 KiB AUs.
  std::vector<uint64_t> au_counts = {16000, 100000, 1000000, 10000000};
  if (quick) au_counts.resize(2);
  double first = 0;
  for (uint64_t n : au_counts) {
    Image img("aus" + std::to_string(n));
    // About 4000 inodes whatever the size, so only the AU count changes.
    auto fs = MakeFs(img, n, kAuSize4K, std::clamp<uint64_t>(n * kAuSize4K / 4000, 1024, 1u << 20));
    auto phys = MakeFiles(fs.get(), 1000);
    // Lookups land anywhere in the table: data AUs, and spread over the whole region.
    for (uint64_t i = 0; i < 1000; ++i) phys.push_back((n / 1000) * i * kAuSize4K);
    const double ns = LookupNs(fs.get(), phys, 20000);
    if (first == 0) first = ns;
    printf("%12llu %14.0f\n", static_cast<unsigned long long>(n), ns);
    out["lookup_by_aus"].push_back({{"aus", n}, {"median_ns", ns}});
  }

  // 2. The reverse map against walking every inode, and mount time.
  printf("\n== owner of one 4 KiB range: reverse map vs walking every inode's extents\n");
  printf("%10s %14s %14s %10s %12s\n", "files", "rmap ns", "walk ns", "walk/rmap", "mount ms");
  std::vector<uint64_t> file_counts = {1000, 10000, 100000, 1000000};
  if (quick) file_counts.resize(3);
  for (uint64_t n : file_counts) {
    Image img("files" + std::to_string(n));
    auto fs = MakeFs(img, n + n / 2 + 200000, kAuSize4K, 4096);
    auto phys = MakeFiles(fs.get(), n);
    const double rmap_ns = LookupNs(fs.get(), phys, 20000);
    const double walk_ns = n >= 1000 && n <= 1000000 ? WalkNs(fs.get(), phys, n >= 1000000 ? 3 : 9) : 0;
    Status st = fs->Unmount();
    if (!st.ok()) Die("unmount", st);
    fs.reset();
    std::vector<double> mount_ms;
    for (int i = 0; i < 3; ++i) {
      const auto t0 = Clock::now();
      auto again = Filesystem::Mount(img.path, {});
      const auto t1 = Clock::now();
      if (!again.ok()) Die("remount", again.status());
      (void)(*again)->Unmount();
      mount_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    const double mms = Median(mount_ms);
    printf("%10llu %14.0f %14.0f %10.0f %12.2f\n", static_cast<unsigned long long>(n), rmap_ns,
           walk_ns, walk_ns / rmap_ns, mms);
    out["by_files"].push_back({{"files", n}, {"rmap_median_ns", rmap_ns},
                               {"walk_median_ns", walk_ns}, {"walk_over_rmap", walk_ns / rmap_ns},
                               {"mount_ms", mms}});
  }
  // 3. Metadata write amplification of a 4 KiB append (allocation, extent, size, rmap).
  {
    Image img("append");
    auto fs = MakeFs(img, 65536, kAuSize4K, 16384);
    auto c = fs->Create(kRootIno, "log", 0644, O_RDWR, Caller{});
    if (!c.ok()) Die("create", c.status());
    const JournalStats before = fs->journal_stats();
    constexpr int kAppends = 10000;
    std::string block(4096, 'a');
    for (int i = 0; i < kAppends; ++i) {
      auto w = fs->Write(c->second, uint64_t(i) * 4096, block.data(), block.size());
      if (!w.ok()) Die("append", w.status());
    }
    const JournalStats after = fs->journal_stats();
    const double log = double(after.log_bytes - before.log_bytes) / kAppends;
    const double applied = double(after.applied_bytes - before.applied_bytes) / kAppends;
    const double txns = double(after.commits - before.commits) / kAppends;
    printf("\n== metadata written per 4 KiB append (one AU allocated each time)\n");
    printf("transactions %.2f, journal log %.0f B, applied in place %.0f B, total %.0f B "
           "(%.2f x the 4096 data bytes)\n", txns, log, applied, log + applied,
           (log + applied) / 4096);
    out["append_4k"] = {{"transactions", txns}, {"log_bytes", log}, {"applied_bytes", applied}};
    fs->Release(c->second);
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}
