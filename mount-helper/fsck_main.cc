// fsck_main.cc -- fsck.udaxfs: check (and repair) an unmounted udaxfs, e2fsck-style.
//
// Exit codes as e2fsck: 0 clean, 1 problems fixed, 4 problems left uncorrected,
// 8 operational error (cannot open, no valid superblock, read errors).
// Without -n the journal is replayed first (as every mount would do); with -n nothing at
// all is written. --repair (-y, -p) repairs what the check finds (see fs/core/repair.h)
// and checks again.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "fs/core/filesystem.h"
#include "fs/core/repair.h"

namespace {

// "pass N/M: x%" on one line of a terminal, redrawn only when the number changes.
class ProgressLine {
 public:
  udax::ProgressFn Fn() {
    return [this](int pass, int passes, double fraction) {
      const int percent = static_cast<int>(fraction * 100);
      if (pass == pass_ && percent == percent_) return;
      pass_ = pass;
      percent_ = percent;
      fprintf(stderr, "\rpass %d/%d: %d%%", pass, passes, percent);
      fflush(stderr);
      shown_ = true;
    };
  }
  ~ProgressLine() { Clear(); }
  void Clear() {
    if (shown_) fprintf(stderr, "\r\033[K");
    shown_ = false;
  }

 private:
  int pass_ = -1, percent_ = -1;
  bool shown_ = false;
};

// The old --rebuild-rmap: rewrite reverse-map records from consistent forward maps.
int RebuildRmap(const std::string& target, uint64_t* rewritten_out) {
  auto fs = udax::Filesystem::Mount(target, udax::MountOptions{});
  if (!fs.ok()) {
    fprintf(stderr, "fsck.udaxfs: %s\n", fs.status().message().c_str());
    return udax::kFsckOperational;
  }
  auto rewritten = (*fs)->checker().RebuildReverseMap();
  if (!rewritten.ok()) {
    fprintf(stderr, "fsck.udaxfs: %s: --rebuild-rmap: %s\n", target.c_str(),
            rewritten.status().message().c_str());
    return udax::kFsckUncorrected;
  }
  *rewritten_out = *rewritten;
  const udax::Status st = (*fs)->Unmount();
  if (!st.ok()) {
    fprintf(stderr, "fsck.udaxfs: %s: %s\n", target.c_str(), st.message().c_str());
    return udax::kFsckOperational;
  }
  return udax::kFsckClean;
}

void PrintHuman(const std::string& target, const udax::FsckOutcome& out, bool quiet,
                bool verbose) {
  const char* t = target.c_str();
  auto list = [t](const char* prefix, const udax::CheckReport& r) {
    for (const std::string& m : r.messages) printf("%s: %s%s\n", t, prefix, m.c_str());
    if (r.problems > r.messages.size()) {
      printf("%s: %s... and %llu more\n", t, prefix,
             static_cast<unsigned long long>(r.problems - r.messages.size()));
    }
  };
  list("", out.found);
  for (const std::string& d : out.degraded) printf("%s: degraded: %s\n", t, d.c_str());
  if (verbose) {
    for (const std::string& n : out.notes) printf("%s: note: %s\n", t, n.c_str());
  }
  if (out.repaired) {
    for (const std::string& f : out.fixed) printf("%s: fixed: %s\n", t, f.c_str());
    list("left: ", out.remaining);
  }
  const udax::CheckReport& end = out.repaired ? out.remaining : out.found;
  const char* verdict = !out.degraded.empty() && !end.problems ? "DEGRADED"
                        : !out.repaired ? (out.found.problems ? "PROBLEMS FOUND" : "clean")
                        : end.problems ? "PROBLEMS LEFT AFTER REPAIR"
                        : out.found.problems || !out.fixed.empty() ? "REPAIRED, now clean"
                                                                    : "clean";
  if (!quiet || out.found.problems || !out.degraded.empty()) {
    printf("%s: %s, %llu inodes, %llu allocation units in use\n", t, verdict,
           static_cast<unsigned long long>(end.inodes),
           static_cast<unsigned long long>(end.allocated_aus));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Check (and with --repair, repair) a udaxfs filesystem."};
  // One line on stderr for a usage error, as every udaxfs tool.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("fsck.udaxfs: ") + e.what() + " (--help for usage)\n";
  });
  std::string target;
  bool no_write = false, json = false, quiet = false, verbose = false, rebuild_rmap = false,
       repair = false;
  app.add_option("target", target, "device or image file (not mounted)")->required();
  auto* no_write_opt =
      app.add_flag("-n,--no-write", no_write, "open read-only; do not replay the journal");
  app.add_flag("-y,-p,--repair", repair, "repair what the check finds, then check again")
      ->excludes(no_write_opt);
  app.add_flag("--json", json, "print the report as JSON");
  app.add_flag("--rebuild-rmap", rebuild_rmap,
               "rewrite reverse-map records from the forward maps")->excludes(no_write_opt);
  app.add_flag("-q,--quiet", quiet, "print only problems");
  app.add_flag("-v,--verbose", verbose,
               "also print what is not a problem (journal replayed, orphans freed)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : udax::kFsckOperational;
  }

  uint64_t rebuilt = 0;
  if (rebuild_rmap) {
    const int rc = RebuildRmap(target, &rebuilt);
    if (rc != udax::kFsckClean) return rc;
    if (!json && !quiet) {
      printf("%s: rebuilt %llu reverse-map records\n", target.c_str(),
             static_cast<unsigned long long>(rebuilt));
    }
  }

  udax::FsckOptions options;
  options.read_only = no_write;
  options.repair = repair;
  ProgressLine progress;
  if (!json && isatty(STDERR_FILENO)) options.progress = progress.Fn();
  auto outcome = udax::Repairer::Run(target, options);
  progress.Clear();
  if (!outcome.ok()) {
    fprintf(stderr, "fsck.udaxfs: %s\n", outcome.status().message().c_str());
    return udax::kFsckOperational;
  }
  int rc = outcome->ExitCode();
  if (rc == udax::kFsckClean && rebuilt) rc = udax::kFsckFixed;

  if (json) {
    const udax::FsckOutcome& o = *outcome;
    nlohmann::json j;
    j["target"] = target;
    j["clean"] = o.found.problems == 0;
    j["problems"] = o.found.problems;
    j["inodes"] = o.found.inodes;
    j["allocated_aus"] = o.found.allocated_aus;
    j["messages"] = o.found.messages;
    j["notes"] = o.notes;
    j["degraded"] = o.degraded;
    j["rmap_records_rebuilt"] = rebuilt;
    j["repaired"] = o.repaired;
    if (o.repaired) {
      j["fixed"] = o.fixed;
      j["remaining_problems"] = o.remaining.problems;
      j["remaining_messages"] = o.remaining.messages;
    }
    j["exit_code"] = rc;
    printf("%s\n", j.dump(2).c_str());
  } else {
    PrintHuman(target, *outcome, quiet, verbose);
  }
  return rc;
}
