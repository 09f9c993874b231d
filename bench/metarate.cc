// metarate -- file create, stat and delete rates for bench/run.sh (in place of fio's
// filecreate/filestat/filedelete engines, which time fio's own per-file bookkeeping:
// see bench/README.md), and the file maker of the daemon-memory measurement.
//
//   metarate DIR --phase create|stat|delete [--files N] [--threads T] [--per-dir K]
//            [--seconds S] [--json]
//
// Thread t owns DIR/t<t>/d<j>/f<i> (K files per subdirectory, default 10,000), N files
// per thread. One phase per run, so the caller can drop caches or remount in between:
//   create  mkdir the tree (not timed), then open(O_CREAT|O_EXCL|O_WRONLY) + close each file
//   stat    stat() each file
//   delete  unlink() each file, then rmdir the tree (not timed)
// Each thread goes through its files in order and stops after --seconds (default: no
// limit); stat and delete also stop at the first file that does not exist, so they
// follow a create that was cut short. The rate is all threads' operations over the
// wall time from a common start to the last thread's end.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
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

enum class Phase { kCreate, kStat, kDelete };

struct Options {
  std::string dir;
  Phase phase = Phase::kCreate;
  uint64_t files = 10000;
  int threads = 1;
  uint64_t per_dir = 10000;
  double seconds = 0;  // 0: no limit
  bool json = false;
};

struct ThreadResult {
  uint64_t ops = 0;
  int error = 0;  // errno of the first unexpected failure
  std::string what;
};

std::string SubDir(const Options& o, int t, uint64_t j) {
  return o.dir + "/t" + std::to_string(t) + "/d" + std::to_string(j);
}

std::string FilePath(const Options& o, int t, uint64_t i) {
  return SubDir(o, t, i / o.per_dir) + "/f" + std::to_string(i);
}

bool MkdirP(const std::string& p, ThreadResult* r) {
  if (mkdir(p.c_str(), 0755) == 0 || errno == EEXIST) return true;
  r->error = errno;
  r->what = "mkdir " + p;
  return false;
}

void Worker(const Options& o, int t, std::atomic<int>* ready, std::atomic<bool>* go,
            ThreadResult* r) {
  const uint64_t dirs = (o.files + o.per_dir - 1) / o.per_dir;
  // Paths are built before the clock starts: the filesystem is what is timed.
  std::vector<std::string> paths;
  paths.reserve(o.files);
  for (uint64_t i = 0; i < o.files; ++i) paths.push_back(FilePath(o, t, i));
  bool ok = true;
  if (o.phase == Phase::kCreate) {
    ok = MkdirP(o.dir + "/t" + std::to_string(t), r);
    for (uint64_t j = 0; ok && j < dirs; ++j) ok = MkdirP(SubDir(o, t, j), r);
  }
  ready->fetch_add(1);
  while (!go->load(std::memory_order_acquire)) {
  }
  if (!ok) return;
  const bool limited = o.seconds > 0;
  const auto end = Clock::now() + std::chrono::duration<double>(limited ? o.seconds : 0);
  struct stat st;
  for (uint64_t i = 0; i < o.files; ++i) {
    if (limited && (i & 63) == 0 && Clock::now() >= end) break;
    const char* p = paths[i].c_str();
    int rc = -1;
    switch (o.phase) {
      case Phase::kCreate:
        rc = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (rc >= 0) rc = close(rc);
        break;
      case Phase::kStat:
        rc = stat(p, &st);
        break;
      case Phase::kDelete:
        rc = unlink(p);
        break;
    }
    if (rc != 0) {
      if (errno == ENOENT && o.phase != Phase::kCreate) break;  // the create stopped here
      r->error = errno;
      r->what = paths[i];
      break;
    }
    ++r->ops;
  }
}

void Cleanup(const Options& o) {
  // After delete: remove what a cut-short run left, then the tree (not timed).
  const uint64_t dirs = (o.files + o.per_dir - 1) / o.per_dir;
  for (int t = 0; t < o.threads; ++t) {
    for (uint64_t i = 0; i < o.files; ++i) {
      if (unlink(FilePath(o, t, i).c_str()) != 0 && errno == ENOENT && i % o.per_dir == 0) {
        // an absent first file of a subdirectory: the rest of it was never created
        i += o.per_dir - 1;
      }
    }
    for (uint64_t j = 0; j < dirs; ++j) rmdir(SubDir(o, t, j).c_str());
    rmdir((o.dir + "/t" + std::to_string(t)).c_str());
  }
}

[[noreturn]] void Usage(int rc) {
  fprintf(rc ? stderr : stdout,
          "usage: metarate DIR --phase create|stat|delete [--files N] [--threads T]\n"
          "                [--per-dir K] [--seconds S] [--json]\n");
  exit(rc);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  bool have_phase = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) Usage(2);
      return argv[++i];
    };
    if (a == "--phase") {
      std::string p = next();
      have_phase = true;
      if (p == "create") o.phase = Phase::kCreate;
      else if (p == "stat") o.phase = Phase::kStat;
      else if (p == "delete") o.phase = Phase::kDelete;
      else Usage(2);
    } else if (a == "--files") o.files = std::strtoull(next(), nullptr, 10);
    else if (a == "--threads") o.threads = std::atoi(next());
    else if (a == "--per-dir") o.per_dir = std::strtoull(next(), nullptr, 10);
    else if (a == "--seconds") o.seconds = std::atof(next());
    else if (a == "--json") o.json = true;
    else if (a == "-h" || a == "--help") Usage(0);
    else if (o.dir.empty() && a[0] != '-') o.dir = a;
    else Usage(2);
  }
  if (o.dir.empty() || !have_phase || o.files == 0 || o.threads < 1 || o.per_dir == 0) Usage(2);

  if (o.phase == Phase::kCreate && mkdir(o.dir.c_str(), 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "metarate: mkdir %s: %s\n", o.dir.c_str(), strerror(errno));
    return 1;
  }
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<ThreadResult> results(o.threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < o.threads; ++t) {
    pool.emplace_back(Worker, std::cref(o), t, &ready, &go, &results[t]);
  }
  while (ready.load() < o.threads) std::this_thread::yield();
  const auto t0 = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  if (o.phase == Phase::kDelete) Cleanup(o);

  uint64_t ops = 0;
  int rc = 0;
  for (const auto& r : results) {
    ops += r.ops;
    if (r.error) {
      fprintf(stderr, "metarate: %s: %s\n", r.what.c_str(), strerror(r.error));
      rc = 1;
    }
  }
  static const char* const kNames[] = {"create", "stat", "delete"};
  const char* name = kNames[static_cast<int>(o.phase)];
  const double rate = elapsed > 0 ? static_cast<double>(ops) / elapsed : 0;
  if (o.json) {
    printf("{\"phase\": \"%s\", \"threads\": %d, \"ops\": %llu, \"seconds\": %.4f, \"ops_per_s\": %.1f, \"ok\": %s}\n",
           name, o.threads, static_cast<unsigned long long>(ops), elapsed, rate, rc ? "false" : "true");
  } else {
    printf("%s: %llu files in %.3f s, %.0f ops/s (%d thread%s)\n", name,
           static_cast<unsigned long long>(ops), elapsed, rate, o.threads, o.threads == 1 ? "" : "s");
  }
  return rc;
}
