// lease_bench -- issue 7's lease figures on a mounted udaxfs: how long udax_map takes to
// grant a direct map (request, extents, descriptors, mapping), and the revoke round trip
// a truncate pays when a client maps the file (the daemon sends the revoke, the client's
// listener swaps the pages out and acknowledges), beside the same truncate with no map.
//
//   lease_bench DIR_ON_UDAXFS [ROUNDS]        (default 300 rounds; median and p99, in us)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/stats.h"
#include "include/udaxfs/udax.h"

namespace {

using udax::Percentile;
using Clock = std::chrono::steady_clock;

double Us(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: lease_bench DIR_ON_UDAXFS [ROUNDS]\n");
    return 2;
  }
  const int rounds = argc > 2 ? atoi(argv[2]) : 300;
  const std::string path = std::string(argv[1]) + "/lease_bench.dat";
  const size_t len = 64 * 1024;
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    perror(path.c_str());
    return 1;
  }
  std::vector<double> grant, revoke, plain;
  for (int i = 0; i < rounds; ++i) {
    if (ftruncate(fd, len) != 0) return 1;
    void* addr = nullptr;
    const auto t0 = Clock::now();
    const int rc = udax_map(fd, 0, len, UDAX_PROT_READ | UDAX_PROT_WRITE, &addr);
    const auto t1 = Clock::now();
    if (rc != 0) {
      fprintf(stderr, "lease_bench: udax_map: %d\n", rc);
      return 1;
    }
    static_cast<volatile char*>(addr)[0] = 1;
    grant.push_back(Us(t0, t1));
    const auto t2 = Clock::now();
    if (ftruncate(fd, 0) != 0) return 1;  // waits for the revoke to be acknowledged
    const auto t3 = Clock::now();
    revoke.push_back(Us(t2, t3));
    udax_unmap(addr);
    if (ftruncate(fd, len) != 0) return 1;
    if (pwrite(fd, "x", 1, 0) != 1) return 1;  // allocate, as the map did
    const auto t4 = Clock::now();
    if (ftruncate(fd, 0) != 0) return 1;
    plain.push_back(Us(t4, Clock::now()));
  }
  close(fd);
  unlink(path.c_str());
  printf("lease_bench: %d rounds, 64 KiB maps\n", rounds);
  printf("%-40s %10s %10s\n", "", "median us", "p99 us");
  printf("%-40s %10.1f %10.1f\n", "grant (udax_map)", Percentile(grant, 0.5), Percentile(grant, 0.99));
  printf("%-40s %10.1f %10.1f\n", "truncate of a mapped file (revoke+ack)", Percentile(revoke, 0.5), Percentile(revoke, 0.99));
  printf("%-40s %10.1f %10.1f\n", "truncate with no map", Percentile(plain, 0.5), Percentile(plain, 0.99));
  return 0;
}
