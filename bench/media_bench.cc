// media_bench -- issue 6's numbers: from an injected media error to (a) its owners
// resolved and acted on, (b) the event logged, and (c) a subscriber (a reader following
// the event log with inotify, as `udaxctl events --follow` does) holding it; median and
// p99 on a filesystem with 10^6 files. And the read throughput of files the events do
// not touch, before, during bursts of events and after, as ratios to "before".
//
//   media_bench [--files N] [--events N] [--json FILE]     (default 10^6 files, 200 events)
//
// Runs the core and the daemon's resolver in one process on an image in /dev/shm, so the
// figures are the resolver's own, without FUSE around it. Each event poisons one 512-byte
// block of a different file (the emulated poison is set, as inject-error would), so the
// reads measured "during" and "after" pay the bad-range check every read does.
//
// On two or more CPUs the timed reads run on CPU 0 and everything else (the event source,
// the resolver, the subscriber) on CPU 1, as a daemon's resolver thread and the threads
// serving other files' reads would on separate cores: the ratios then show what handling
// events does to those reads (locks, the bad-range check, caches), not the share of one
// core the resolver took from the reader on a 2-core machine. --no-pin runs everything
// unpinned (on the 2-core development machine it measured the same: during 0.97-0.98,
// after 0.99-1.00).
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/stats.h"
#include "fs/core/filesystem.h"
#include "fs/format/badblock_list.h"
#include "notify/event_log.h"
#include "notify/event_queue.h"
#include "notify/media_resolver.h"
#include "fs/format/state_dir.h"

namespace udax {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what, const Status& st) {
  fprintf(stderr, "media_bench: %s: %s\n", what.c_str(), st.ToString().c_str());
  exit(1);
}

// Files in directories of 1,000 (as bench/run.sh's metarate makes them); the physical
// offset of each file's one AU.
std::vector<uint64_t> MakeFiles(Filesystem* fs, uint64_t n) {
  std::vector<uint64_t> phys;
  phys.reserve(n);
  const Caller root{0, 0};
  uint64_t dir = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (i % 1000 == 0) {
      auto d = fs->Mkdir(kRootIno, "d" + std::to_string(i / 1000), 0755, root);
      if (!d.ok()) Die("mkdir", d.status());
      dir = d->ino;
      fs->Forget(dir, 0);
    }
    auto c = fs->Create(dir, "f" + std::to_string(i), 0644, O_RDWR, root);
    if (!c.ok()) Die("create", c.status());
    if (auto w = fs->Write(c->second, 0, "x", 1); !w.ok()) Die("write", w.status());
    fs->Release(c->second);
    auto b = fs->Bmap(c->first.ino);
    if (!b.ok()) Die("bmap", b.status());
    phys.push_back((*b)[0].phys_offset);
    fs->Forget(c->first.ino, 1);
    if ((i + 1) % 100000 == 0) fprintf(stderr, "media_bench: %llu files\n", (unsigned long long)(i + 1));
  }
  return phys;
}

// Binds the calling thread to `cpu` (no-op when cpu < 0).
void PinTo(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

}  // namespace
}  // namespace udax

int main(int argc, char** argv) {
  using namespace udax;
  uint64_t files = 1000000, events = 200;
  std::string json_path;
  bool pin = std::thread::hardware_concurrency() >= 2;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--files") == 0 && i + 1 < argc) {
      files = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
      events = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      json_path = argv[++i];
    } else if (std::strcmp(argv[i], "--no-pin") == 0) {
      pin = false;
    } else {
      fprintf(stderr, "usage: media_bench [--files N] [--events N] [--json FILE] [--no-pin]\n");
      return 2;
    }
  }
  if (files < events || events == 0) {
    fprintf(stderr, "media_bench: need at least as many files as events\n");
    return 2;
  }
  const int reader_cpu = pin ? 0 : -1;
  PinTo(pin ? 1 : -1);  // threads started from here on inherit CPU 1
  const std::string image = "/dev/shm/udax_media_bench.img";
  const uint64_t big = 256ull << 20;  // the unaffected file whose reads are timed
  // The image's state (poison list, event log) in a directory of the bench's own, not in
  // /var/lib/udaxfs (fs/format/state_dir.h).
  const std::string state_dir = "/dev/shm/udax_media_bench.state";
  std::filesystem::remove_all(state_dir);
  mkdir(state_dir.c_str(), 0700);
  setenv("UDAX_STATE_DIR", state_dir.c_str(), 1);
  unlink(image.c_str());
  {
    RegionOptions ro;
    ro.create_size = files * 4096 * 5 / 4 + big + (512ull << 20);
    auto region = Region::Open(image, ro);
    if (!region.ok()) Die("create " + image, region.status());
    MkfsParams p;
    p.bytes_per_inode = 4096;
    if (Status st = Filesystem::Format(region->get(), p); !st.ok()) Die("format", st);
  }
  auto mounted = Filesystem::Mount(image, {});
  if (!mounted.ok()) Die("mount", mounted.status());
  std::unique_ptr<Filesystem> fs = std::move(mounted).value();

  const auto t_fill = Clock::now();
  std::vector<uint64_t> phys = MakeFiles(fs.get(), files);
  auto c = fs->Create(kRootIno, "big", 0644, O_RDWR, Caller{0, 0});
  if (!c.ok()) Die("create big", c.status());
  Inode* big_file = c->second;
  {
    std::vector<char> chunk(1 << 20, 'b');
    for (uint64_t off = 0; off < big; off += chunk.size()) {
      if (auto w = fs->Write(big_file, off, chunk.data(), chunk.size()); !w.ok()) Die("write big", w.status());
    }
  }
  fprintf(stderr, "media_bench: %llu files made in %.1f s\n", (unsigned long long)files,
          std::chrono::duration<double>(Clock::now() - t_fill).count());

  // The resolver as the daemon runs it, with its log, and a subscriber following the log.
  EventQueue queue;
  auto state = LocateTargetState(image, /*prepare=*/true);
  if (!state.ok()) Die("state", state.status());
  const std::string log_path = state->events;
  // Created now (the daemon's log appears at its first event), so the subscriber can
  // watch and open it from the start.
  close(open(log_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  auto log = EventLog::Open(log_path);
  if (!log.ok()) Die("event log", log.status());
  std::mutex mu;
  std::condition_variable cv;
  uint64_t logged = 0, seen = 0;
  Clock::time_point logged_at, seen_at;
  MediaResolver::Hooks hooks;
  hooks.invalidate = [](uint64_t, uint64_t, uint64_t) {};
  hooks.logged = [&](const EventRecord&) {
    std::lock_guard<std::mutex> lock(mu);
    logged_at = Clock::now();
    ++logged;
    cv.notify_all();
  };
  auto resolver = MediaResolver::Start(fs.get(), &queue, log->get(), hooks, {});
  std::atomic<bool> stop{false};
  std::thread subscriber([&] {
    const int in = inotify_init1(IN_CLOEXEC);
    inotify_add_watch(in, log_path.c_str(), IN_MODIFY);
    std::ifstream f(log_path);
    std::string line;
    char buf[4096];
    while (!stop) {
      if (read(in, buf, sizeof(buf)) <= 0) continue;
      while (std::getline(f, line)) {
        std::lock_guard<std::mutex> lock(mu);
        seen_at = Clock::now();
        ++seen;
        cv.notify_all();
      }
      f.clear();
    }
    close(in);
  });

  // The timed reads never stop: one reader reads the unaffected file round and round and
  // cuts its progress into 20 ms windows. The events come in bursts of kBurst (one every
  // 5 ms), each burst between two quiet phases of 150 ms (one second before the first).
  // Each burst is compared with the quiet just before it: during/before and after/before
  // per burst, and the median of those ratios. This VM's memory bandwidth drifts by 10%
  // and more over seconds, so a before measured once at the start and compared with a
  // during seconds later measured the drift; neighbouring phases share it.
  struct Window {
    Clock::time_point from, to;
    double mbps;
  };
  struct Phase {
    int kind;  // 0 before, 1 during, 2 after
    Clock::time_point from, to;
  };
  std::vector<Window> windows;
  std::vector<Phase> phases;
  std::mutex windows_mu;
  std::atomic<bool> reading{true};
  std::thread reader([&] {
    PinTo(reader_cpu);
    std::vector<char> buf(1 << 20);
    uint64_t off = 0, bytes = 0;
    Clock::time_point from = Clock::now();
    while (reading) {
      auto r = fs->Read(big_file, off, buf.size(), buf.data());
      if (!r.ok()) Die("read", r.status());
      bytes += r.value();
      off = (off + buf.size()) % big;
      const Clock::time_point now = Clock::now();
      const double secs = std::chrono::duration<double>(now - from).count();
      if (secs >= 0.02) {
        std::lock_guard<std::mutex> lock(windows_mu);
        windows.push_back({from, now, bytes / 1e6 / secs});
        from = now;
        bytes = 0;
      }
    }
  });
  auto quiet = [&](int kind, int ms) {
    const Clock::time_point from = Clock::now();
    usleep(ms * 1000);
    phases.push_back({kind, from, Clock::now()});
  };
  quiet(0, 1000);

  // Events, one at a time: the latency of each from the push.
  std::mt19937_64 rng(7);
  std::vector<uint64_t> order(files);
  for (uint64_t i = 0; i < files; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  BadblockList poison;
  std::vector<double> resolve_us, logged_us, seen_us;
  constexpr uint64_t kBurst = 10;
  Clock::time_point burst_from = Clock::now();
  for (uint64_t e = 0; e < events; ++e) {
    const uint64_t bad = phys[order[e]] + 512;
    poison.Add(bad / 512, 1);
    fs->region()->SetEmulatedPoison(poison);
    MediaEvent ev;
    ev.source = MediaEventSource::kInjected;
    ev.offset = bad;
    ev.length = 512;
    ev.time = std::chrono::system_clock::now();
    uint64_t want;
    {
      std::lock_guard<std::mutex> lock(mu);
      want = logged + 1;
    }
    const auto t0 = Clock::now();
    queue.Push(ev);
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return logged >= want && seen >= want; })) {
      fprintf(stderr, "media_bench: event %llu not seen within 10 s\n", (unsigned long long)e);
      return 1;
    }
    logged_us.push_back(std::chrono::duration<double, std::micro>(logged_at - t0).count());
    seen_us.push_back(std::chrono::duration<double, std::micro>(seen_at - t0).count());
    lock.unlock();
    usleep(5000);  // spread the events over the burst
    if ((e + 1) % kBurst == 0 || e + 1 == events) {
      phases.push_back({1, burst_from, Clock::now()});
      quiet(2, 150);
      burst_from = Clock::now();
    }
  }
  reading = false;
  reader.join();
  // Phases alternate quiet, burst, quiet, burst, ..., quiet: the median window of each.
  std::vector<double> phase_mbps;
  for (const Phase& ph : phases) {
    std::vector<double> in;
    for (const Window& w : windows) {
      if (w.from >= ph.from && w.to <= ph.to) in.push_back(w.mbps);
    }
    phase_mbps.push_back(in.empty() ? 0 : Percentile(in, 0.5));
  }
  std::vector<double> during_ratios, after_ratios, by_kind[3];
  for (size_t i = 1; i + 1 < phases.size(); i += 2) {
    const double b = phase_mbps[i - 1], d = phase_mbps[i], a = phase_mbps[i + 1];
    if (b <= 0 || d <= 0 || a <= 0) continue;  // a phase shorter than one window
    during_ratios.push_back(d / b);
    after_ratios.push_back(a / b);
    by_kind[0].push_back(b);
    by_kind[1].push_back(d);
    by_kind[2].push_back(a);
  }
  if (during_ratios.empty()) {
    fprintf(stderr, "media_bench: no burst had read windows before, during and after it\n");
    return 1;
  }
  const double before = Percentile(by_kind[0], 0.5);
  const double during = Percentile(by_kind[1], 0.5);
  const double after = Percentile(by_kind[2], 0.5);
  const double during_ratio = Percentile(during_ratios, 0.5);
  const double after_ratio = Percentile(after_ratios, 0.5);
  stop = true;
  // Wake the subscriber's read with one more line.
  (void)(*log)->Append(EventRecord{});
  subscriber.join();
  resolver->Stop();
  queue.Close();

  // (a) from the log's own figure: the resolver's time from the event to owners acted on.
  std::ifstream lf(log_path);
  for (std::string line; std::getline(lf, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("source", "") == "injected") {
      resolve_us.push_back(j.value("resolve_ns", uint64_t{0}) / 1e3);
    }
  }
  fs->Release(big_file);
  (void)fs->Unmount();
  fs.reset();
  unlink(image.c_str());
  std::filesystem::remove_all(state_dir);

  printf("media_bench: %llu files, %llu events (one 512-byte block of a different file each)\n",
         (unsigned long long)files, (unsigned long long)events);
  printf("%-44s %10s %10s\n", "from the injected event to", "median us", "p99 us");
  printf("%-44s %10.1f %10.1f\n", "(a) owners resolved and acted on", Percentile(resolve_us, 0.5),
         Percentile(resolve_us, 0.99));
  printf("%-44s %10.1f %10.1f\n", "    event logged (queue + resolve + log)", Percentile(logged_us, 0.5),
         Percentile(logged_us, 0.99));
  printf("%-44s %10.1f %10.1f\n", "(b) subscriber holds it (inotify on the log)", Percentile(seen_us, 0.5),
         Percentile(seen_us, 0.99));
  printf("unaffected 256 MiB file, read MB/s over %zu bursts: before %.0f, during %.0f, after %.0f; "
         "per burst, median ratio to the quiet before it: during %.3fx, after %.3fx%s\n",
         during_ratios.size(), before, during, after, during_ratio, after_ratio,
         pin ? " [reads on CPU 0, events on CPU 1]" : " [unpinned]");
  if (!json_path.empty()) {
    nlohmann::json j{{"files", files},
                     {"events", events},
                     {"resolve_us", {{"median", Percentile(resolve_us, 0.5)}, {"p99", Percentile(resolve_us, 0.99)}}},
                     {"logged_us", {{"median", Percentile(logged_us, 0.5)}, {"p99", Percentile(logged_us, 0.99)}}},
                     {"subscriber_us", {{"median", Percentile(seen_us, 0.5)}, {"p99", Percentile(seen_us, 0.99)}}},
                     {"read_mbps", {{"before", before}, {"during", during}, {"after", after}}},
                     {"pinned", pin},
                     {"bursts", during_ratios.size()},
                     {"during_ratio", during_ratio},
                     {"after_ratio", after_ratio}};
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  return 0;
}
