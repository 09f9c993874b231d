// rawcopy -- the physical limit for bench/run.sh: memcpy bandwidth into and out of a
// shared mapping of a tmpfs file, which is exactly what an emulated udaxfs region is.
//
//   rawcopy FILE [--size BYTES] [--bs BYTES] [--seconds S] [--threads N] [--json]
//
// The file is created (or resized) to --size, mapped MAP_SHARED and every page is written
// once before anything is timed, so no page fault or tmpfs allocation is measured. Then,
// for each of "read" (mapping -> a private buffer of --bs bytes) and "write" (buffer ->
// mapping), each of N threads copies --bs blocks sequentially through its own slice of
// the mapping, round and round, for --seconds. Prints MB/s (10^6 bytes per second) for
// the sum of all threads. The file is left in place; the caller removes it.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

uint64_t ParseSize(const char* s) {
  char* end = nullptr;
  double v = std::strtod(s, &end);
  uint64_t mul = 1;
  switch (end && *end ? *end : 0) {
    case 'k': case 'K': mul = 1ull << 10; break;
    case 'm': case 'M': mul = 1ull << 20; break;
    case 'g': case 'G': mul = 1ull << 30; break;
    case 0: break;
    default:
      fprintf(stderr, "rawcopy: bad size '%s'\n", s);
      exit(2);
  }
  return static_cast<uint64_t>(v * static_cast<double>(mul));
}

// Copies blocks through [slice, slice + len) for `seconds`; returns bytes copied.
uint64_t CopyLoop(bool write, char* slice, uint64_t len, uint64_t bs, double seconds,
                  std::atomic<bool>* go) {
  std::vector<char> buf(bs, 'x');
  while (!go->load(std::memory_order_acquire)) {
  }
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  uint64_t bytes = 0;
  uint64_t off = 0;
  volatile char sink = 0;
  while (true) {
    for (int i = 0; i < 64; ++i) {  // check the clock every 64 blocks
      if (write) {
        std::memcpy(slice + off, buf.data(), bs);
      } else {
        std::memcpy(buf.data(), slice + off, bs);
        sink = sink + buf[bs / 2];  // the copy cannot be optimised away
      }
      bytes += bs;
      off += bs;
      if (off + bs > len) off = 0;
    }
    if (Clock::now() >= end) break;
  }
  return bytes;
}

double Run(bool write, char* base, uint64_t size, uint64_t bs, double seconds, int threads) {
  const uint64_t slice = (size / threads) / bs * bs;
  std::atomic<bool> go{false};
  std::vector<uint64_t> bytes(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] { bytes[t] = CopyLoop(write, base + t * slice, slice, bs, seconds, &go); });
  }
  const auto t0 = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  uint64_t total = 0;
  for (uint64_t b : bytes) total += b;
  return static_cast<double>(total) / elapsed / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const char* path = nullptr;
  uint64_t size = 1ull << 30, bs = 1ull << 20;
  double seconds = 2.0;
  int threads = 1;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        fprintf(stderr, "rawcopy: %s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--size") size = ParseSize(next());
    else if (a == "--bs") bs = ParseSize(next());
    else if (a == "--seconds") seconds = std::atof(next());
    else if (a == "--threads") threads = std::atoi(next());
    else if (a == "--json") json = true;
    else if (a == "-h" || a == "--help") {
      printf("usage: rawcopy FILE [--size BYTES] [--bs BYTES] [--seconds S] [--threads N] [--json]\n");
      return 0;
    } else if (!path && a[0] != '-') path = argv[i];
    else {
      fprintf(stderr, "rawcopy: unexpected argument '%s'\n", a.c_str());
      return 2;
    }
  }
  if (!path || threads < 1 || bs == 0 || size < bs * threads || seconds <= 0) {
    fprintf(stderr, "usage: rawcopy FILE [--size BYTES] [--bs BYTES] [--seconds S] [--threads N] [--json]\n");
    return 2;
  }
  int fd = open(path, O_RDWR | O_CREAT, 0600);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) {
    fprintf(stderr, "rawcopy: %s: %s\n", path, strerror(errno));
    return 1;
  }
  void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    fprintf(stderr, "rawcopy: mmap %s: %s\n", path, strerror(errno));
    return 1;
  }
  close(fd);
  char* base = static_cast<char*>(m);
  const long page = sysconf(_SC_PAGESIZE);
  for (uint64_t off = 0; off < size; off += static_cast<uint64_t>(page)) base[off] = 1;  // fault in
  const double rd = Run(false, base, size, bs, seconds, threads);
  const double wr = Run(true, base, size, bs, seconds, threads);
  munmap(m, size);
  if (json) {
    printf("{\"read_MBps\": %.1f, \"write_MBps\": %.1f, \"threads\": %d, \"bs\": %llu, \"size\": %llu}\n",
           rd, wr, threads, static_cast<unsigned long long>(bs), static_cast<unsigned long long>(size));
  } else {
    printf("memcpy from the mapping: %.0f MB/s\nmemcpy to the mapping:   %.0f MB/s  (%d thread%s, %llu-byte blocks)\n",
           rd, wr, threads, threads == 1 ? "" : "s", static_cast<unsigned long long>(bs));
  }
  return 0;
}
