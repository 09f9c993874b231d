// udax_cpp_client_test.cc -- the C++ wrapper in use (tests/fs/tests/044):
//   udax_cpp_client_test FILE CHAR     subscribe to the mount's events, write CHAR over
//                                      the file through a DirectMap, persist, print what
//                                      the subscription saw within 10 s of an event
//                                      (the test injects one after "ready"), and
//                                      whether its BUS_MCEERR_AO handler ran
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "udaxfs/udax.hpp"

volatile sig_atomic_t g_ao = 0;
void OnSigbus(int, siginfo_t* si, void*) {
  if (si->si_code == BUS_MCEERR_AO) g_ao = 1;  // action optional: note it, go on
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  struct sigaction sa {};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGBUS, &sa, nullptr);
  std::atomic<int> events{0};
  std::string last;
  std::mutex mu;
  int err = 0;
  auto sub = udax::Subscription::Start(argv[1], [&](const std::string& json) {
    std::lock_guard<std::mutex> lock(mu);
    last = json;
    events++;
  }, &err);
  if (!sub) {
    printf("subscribe: %s\n", strerror(err));
    return 1;
  }
  const int fd = open(argv[1], O_RDWR);
  struct stat st;
  fstat(fd, &st);
  auto map = udax::DirectMap::Map(fd, 0, static_cast<size_t>(st.st_size), UDAX_PROT_READ | UDAX_PROT_WRITE, &err);
  close(fd);
  if (!map) {
    printf("map: %s\n", strerror(err));
    return 1;
  }
  std::memset(map->data(), argv[2][0], map->size());
  printf("persist: %d, live: %d\n", map->Persist(), map->live());
  printf("ready\n");
  fflush(stdout);
  for (int i = 0; i < 1000 && events == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::lock_guard<std::mutex> lock(mu);
  printf("events seen: %d, an owner path in the last: %s\n", events.load(),
         last.find("\"path\"") != std::string::npos ? "yes" : "no");
  for (int i = 0; i < 500 && !g_ao; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  printf("BUS_MCEERR_AO handled: %s\n", g_ao ? "yes" : "no");
  return 0;
}
