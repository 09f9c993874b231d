// fsck_main.cc -- fsck.udaxfs: check a udaxfs (unmounted) and report, e2fsck-style.
//
// Exit codes as e2fsck: 0 clean, 1 problems fixed, 4 problems left uncorrected,
// 8 operational error.
// Without -n the journal is replayed first (as every mount would do); with -n nothing at
// all is written.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "fs/core/filesystem.h"

namespace {

constexpr int kExitClean = 0;
constexpr int kExitFixed = 1;
constexpr int kExitUncorrected = 4;
constexpr int kExitOperational = 8;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Check a udaxfs filesystem."};
  // One line on stderr for a usage error, as every udaxfs tool.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("fsck.udaxfs: ") + e.what() + " (--help for usage)\n";
  });
  std::string target;
  bool no_write = false, json = false, quiet = false, rebuild_rmap = false;
  app.add_option("target", target, "device or image file (not mounted)")->required();
  app.add_flag("-n,--no-write", no_write, "open read-only; do not replay the journal");
  app.add_flag("--json", json, "print the report as JSON");
  app.add_flag("--rebuild-rmap", rebuild_rmap,
               "rewrite reverse-map records from the forward maps")->excludes("--no-write");
  app.add_flag("-q,--quiet", quiet, "print only problems");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kExitOperational;
  }

  udax::MountOptions options;
  options.read_only = no_write;
  auto fs = udax::Filesystem::Mount(target, options);
  if (!fs.ok()) {
    fprintf(stderr, "fsck.udaxfs: %s\n", fs.status().message().c_str());
    return kExitOperational;
  }
  uint64_t fixed = 0;
  if (rebuild_rmap) {
    auto rewritten = (*fs)->RebuildReverseMap();
    if (!rewritten.ok()) {
      fprintf(stderr, "fsck.udaxfs: %s: --rebuild-rmap: %s\n", target.c_str(),
              rewritten.status().message().c_str());
      return kExitUncorrected;
    }
    fixed = *rewritten;
    if (!json && !quiet) {
      printf("%s: rebuilt %llu reverse-map records\n", target.c_str(),
             static_cast<unsigned long long>(fixed));
    }
  }
  auto maps = (*fs)->CrossCheckMaps();
  auto names = maps.ok() ? (*fs)->CheckNamespace() : maps;
  if (!maps.ok() || !names.ok()) {
    const udax::Status& st = !maps.ok() ? maps.status() : names.status();
    fprintf(stderr, "fsck.udaxfs: %s: %s\n", target.c_str(), st.message().c_str());
    return kExitOperational;
  }
  std::vector<std::string> messages = maps->messages;
  messages.insert(messages.end(), names->messages.begin(), names->messages.end());
  const uint64_t problems = maps->problems + names->problems;
  if (!no_write) (void)(*fs)->Unmount();

  if (json) {
    nlohmann::json j;
    j["target"] = target;
    j["clean"] = problems == 0;
    j["problems"] = problems;
    j["inodes"] = maps->inodes;
    j["allocated_aus"] = maps->allocated_aus;
    j["messages"] = messages;
    j["rmap_records_rebuilt"] = fixed;
    printf("%s\n", j.dump(2).c_str());
  } else {
    for (const std::string& m : messages) printf("%s: %s\n", target.c_str(), m.c_str());
    if (problems > messages.size()) {
      printf("%s: ... and %llu more\n", target.c_str(),
             static_cast<unsigned long long>(problems - messages.size()));
    }
    if (!quiet || problems) {
      printf("%s: %s, %llu inodes, %llu allocation units in use\n", target.c_str(),
             problems ? "PROBLEMS FOUND" : "clean",
             static_cast<unsigned long long>(maps->inodes),
             static_cast<unsigned long long>(maps->allocated_aus));
    }
  }
  if (problems) return kExitUncorrected;
  return fixed ? kExitFixed : kExitClean;
}
