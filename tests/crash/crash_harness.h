// crash_harness.h -- power cuts at every persist point of a workload, checked against a
// model of the tree.
//
// A workload of operations runs on a filesystem whose region is a ShadowRegion. At every
// `stride`-th persist point the harness takes the image a power cut would leave (durable
// bytes plus a random subset of dirty cachelines), mounts it (journal replay), and
// requires (1) the cross-checks of fsck to find nothing and (2) the tree -- names, types,
// file bytes, symlink targets and extended attributes -- to equal the model after the
// operations acknowledged before the cut, or after the one in flight (an in-flight
// overwrite may leave each byte old or new, as POSIX allows), or one of the documented
// intermediate states of a multi-transaction operation.
//
// Workloads come in two kinds. A static generator knows every effect in advance and
// fills the models itself. A dynamic one (operations with `apply`) may run into ENOSPC
// near full, which it cannot predict: a dry run on a copy of the freshly formatted image
// runs the operations first and builds the models from what each one did; the power-cut
// run then requires every operation to do exactly the same again.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"

namespace udax::crash {

inline const Caller kRoot{0, 0};
inline constexpr uint64_t kAu = 4096;

// What the tree looks like: path -> node, node -> (type, bytes, attributes). Hard links
// share a node.
struct Model {
  struct Node {
    char type = 'f';  // f, d, l, b (ballast)
    std::string data;
    std::map<std::string, std::string> xattrs;
  };
  std::map<std::string, int> paths;  // "/a/b" -> node id
  std::map<int, Node> nodes;
  int next_id = 1;
};

// Path -> (type, bytes). An attribute of a path is an entry "PATH//NAME" of type 'x'. A
// file named "ballast*" (type 'b') is compared by its size alone, in decimal: it only
// takes space, and megabytes of it need not be copied into every model.
using Tree = std::map<std::string, std::pair<char, std::string>>;

Tree Flatten(const Model& m);
// The first difference between two trees, for failure messages.
std::string FirstDifference(const Tree& a, const Tree& b);
// Reads the whole tree of a mounted filesystem (attributes too).
Status ReadTree(Filesystem* fs, uint64_t dir, const std::string& prefix, Tree* out);

// One workload step: its effect on the model, and how to run it on the filesystem.
struct Op {
  std::string desc;
  std::function<Status(Filesystem*)> run;
  // A write not yet acknowledged may leave each byte of the file old or new (POSIX makes
  // no promise for an interrupted write): every name of the file it writes.
  std::set<std::string> written_paths;
  // ... and may have grown them to any size between the old and the new one (a
  // copy_file_range commits chunk by chunk).
  bool grows_in_steps = false;
  // An operation committed in several transactions (collapse, insert) may also leave the
  // file `partial_path` in one of its documented intermediate states: `partial` says
  // whether the bytes read (`now`) are one, given the bytes before the operation.
  std::string partial_path;
  std::function<bool(const std::string& before, const std::string& now)> partial;
  // Dynamic workloads: `run_n` runs the operation and reports a count (bytes written or
  // copied; 0 if none), and `apply` brings the model up to date with the outcome,
  // returning false if the outcome is not one the operation may have.
  std::function<Status(Filesystem*, uint64_t* n)> run_n;
  std::function<bool(Model* m, const Status& st, uint64_t n)> apply;
};

uint64_t Resolve(Filesystem* fs, const std::string& path);  // 0 if absent
// Nonzero bytes that differ at every position, so that a misplaced AU shows.
std::string Pattern(std::mt19937_64& rng, uint64_t n);
inline std::string Parent(const std::string& p) { return p.substr(0, p.rfind('/')); }
inline std::string Base(const std::string& p) { return p.substr(p.rfind('/') + 1); }
// Runs `body` on `path` opened read-write.
Status WithFile(Filesystem* fs, const std::string& path, const std::function<Status(Inode*)>& body);

struct CrashReport {
  uint64_t ops = 0;
  uint64_t points = 0;        // persist points the workload went through
  uint64_t cuts = 0;          // of them, power cut and checked
  uint64_t intermediate = 0;  // cuts that left an operation in an intermediate state
  uint64_t nospc = 0;         // operations that failed with ENOSPC (dynamic workloads)
  uint64_t failures = 0;
  double seconds = 0;
  std::string first_failure;
};

// Static generators fill `models` (models[i]: the state after i operations); dynamic ones
// leave it empty.
using Generator = std::function<std::vector<Op>(uint64_t seed, int count, std::vector<Model>*)>;

// Runs the workload once; cuts power at every `stride`-th persist point. Prints one report
// line "[ crash ] NAME seed S: ..." (and appends it to $UDAX_CRASH_REPORT when set).
// `skip_persist` (test-only) breaks persistence on purpose once the filesystem is mounted:
// persist points whose range it names never reach the media (ShadowRegion).
using SkipPersist = std::function<bool(const DiskSuperblock& sb, uint64_t off, uint64_t n)>;
CrashReport RunWorkload(const std::string& name, const Generator& generate, uint64_t seed,
                        int nops, uint64_t image_size, int stride, uint64_t journal_size = 0,
                        const SkipPersist& skip_persist = nullptr, int devices = 1);
// (devices > 1: that many images of image_size each, one multi-device filesystem; the
// journal is on device 0 and every metadata copy on another device, so cuts fall between
// the writes of one transaction to two devices.)

// UDAX_CRASH_LONG=1 asks for the long runs (more seeds, more operations, every point).
bool LongRun();

}  // namespace udax::crash
