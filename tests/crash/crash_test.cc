// crash_test.cc -- power cuts at every persist point of namespace, data and fallocate
// workloads (the harness: crash_harness.h; attributes, ACLs and near-full allocation:
// crash_attr_test.cc).
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <map>
#include <random>
#include <set>

#include "fs/core/core_test_util.h"
#include "tests/crash/crash_harness.h"

namespace udax::crash {
namespace {


// Generates `count` random valid operations, applying each to `model` as it goes;
// models[i] is the state after i operations.
std::vector<Op> Generate(uint64_t seed, int count, std::vector<Model>* models) {
  std::mt19937_64 rng(seed);
  Model m;
  models->assign(1, m);
  std::vector<Op> ops;
  int names = 0;
  auto pick = [&](char type) -> std::string {
    std::vector<std::string> c;
    for (const auto& [p, id] : m.paths) {
      if (m.nodes[id].type == type) c.push_back(p);
    }
    if (type == 'd') c.push_back("");  // the root
    return c.empty() ? std::string("!") : c[rng() % c.size()];
  };
  while (static_cast<int>(ops.size()) < count) {
    const int kind = static_cast<int>(rng() % 10);
    Op op;
    if (kind == 0) {  // mkdir
      const std::string p = pick('d') + "/d" + std::to_string(names++);
      op.desc = "mkdir " + p;
      op.run = [p](Filesystem* fs) {
        return fs->Mkdir(Resolve(fs, Parent(p)), Base(p), 0755, kRoot).status();
      };
      m.paths[p] = m.next_id;
      m.nodes[m.next_id++] = {'d', "", {}};
    } else if (kind <= 2) {  // create, often in the same directory (bucket splits)
      const std::string p = (rng() % 2 ? std::string("") : pick('d')) + "/f" + std::to_string(names++);
      op.desc = "create " + p;
      op.run = [p](Filesystem* fs) {
        return fs->Mknod(Resolve(fs, Parent(p)), Base(p), S_IFREG | 0644, 0, kRoot).status();
      };
      m.paths[p] = m.next_id;
      m.nodes[m.next_id++] = {'f', "", {}};
    } else if (kind <= 4) {  // write + fsync: appends, holes, overwrites
      const std::string p = pick('f');
      if (p == "!") continue;
      std::string& data = m.nodes[m.paths[p]].data;
      const uint64_t off = rng() % 3 == 0 ? rng() % (data.size() + 1) : data.size() + rng() % 9000;
      std::string bytes(1 + rng() % 20000, static_cast<char>('a' + rng() % 26));
      const int node = m.paths[p];
      for (const auto& [q, id] : m.paths) {
        if (id == node) op.written_paths.insert(q);
      }
      op.desc = "write " + p + " @" + std::to_string(off) + "+" + std::to_string(bytes.size());
      op.run = [p, off, bytes](Filesystem* fs) {
        auto r = fs->Open(Resolve(fs, p), O_RDWR);
        if (!r.ok()) return r.status();
        auto n = fs->Write(*r, off, bytes.data(), bytes.size());
        Status st = n.ok() ? fs->Fsync(*r, false) : n.status();
        fs->Release(*r);
        return st;
      };
      if (data.size() < off + bytes.size()) data.resize(off + bytes.size(), '\0');
      data.replace(off, bytes.size(), bytes);
    } else if (kind == 5) {  // truncate
      const std::string p = pick('f');
      if (p == "!") continue;
      std::string& data = m.nodes[m.paths[p]].data;
      const uint64_t size = rng() % (data.size() + 10000);
      op.desc = "truncate " + p + " " + std::to_string(size);
      op.run = [p, size](Filesystem* fs) {
        SetAttrIn in;
        in.size = true;
        in.attr.st_size = static_cast<off_t>(size);
        return fs->SetAttr(Resolve(fs, p), in).status();
      };
      data.resize(size, '\0');
    } else if (kind == 6) {  // rename a file (maybe over another file)
      const std::string a = pick('f');
      if (a == "!") continue;
      std::string b = rng() % 2 ? pick('f') : pick('d') + "/r" + std::to_string(names++);
      // Two names of one file: rename does nothing (POSIX), which this model cannot say.
      if (b == "!" || b == a || (m.paths.count(b) && m.paths[b] == m.paths[a])) continue;
      op.desc = "rename " + a + " " + b;
      op.run = [a, b](Filesystem* fs) {
        return fs->Rename(Resolve(fs, Parent(a)), Base(a), Resolve(fs, Parent(b)), Base(b), 0);
      };
      m.paths[b] = m.paths[a];
      m.paths.erase(a);
    } else if (kind == 7) {  // unlink
      const std::string p = pick('f');
      if (p == "!") continue;
      op.desc = "unlink " + p;
      op.run = [p](Filesystem* fs) { return fs->Unlink(Resolve(fs, Parent(p)), Base(p)); };
      m.paths.erase(p);
    } else if (kind == 8) {  // hard link
      const std::string a = pick('f');
      if (a == "!") continue;
      const std::string b = pick('d') + "/h" + std::to_string(names++);
      op.desc = "link " + a + " " + b;
      op.run = [a, b](Filesystem* fs) {
        return fs->Link(Resolve(fs, a), Resolve(fs, Parent(b)), Base(b)).status();
      };
      m.paths[b] = m.paths[a];
    } else {  // symlink (short ones inline, long ones in an AU)
      const std::string p = pick('d') + "/s" + std::to_string(names++);
      const std::string target(rng() % 2 ? 20 : 300 + rng() % 2000, 't');
      op.desc = "symlink " + p;
      op.run = [p, target](Filesystem* fs) {
        return fs->Symlink(Resolve(fs, Parent(p)), Base(p), target, kRoot).status();
      };
      m.paths[p] = m.next_id;
      m.nodes[m.next_id++] = {'l', target, {}};
    }
    ops.push_back(op);
    models->push_back(m);
  }
  return ops;
}

// --- fallocate workloads ---
constexpr uint64_t kAu = 4096;

// nz[i] = nonzero bytes in s[0, i), to ask "all zeros in [from, to)?" in O(1).
std::vector<uint64_t> NonzeroCounts(const std::string& s) {
  std::vector<uint64_t> nz(s.size() + 1, 0);
  for (size_t i = 0; i < s.size(); ++i) nz[i + 1] = nz[i] + (s[i] != '\0');
  return nz;
}

// A collapse of [off, off+len) stopped between transactions (see fs_fallocate.cc): size
// unchanged, and either the punch done from the top down to some c, or the punch done and
// the data below some AU boundary b moved down by len (bytes past the old EOF read zero).
bool CollapseIntermediate(const std::string& old, const std::string& now, uint64_t off,
                          uint64_t len) {
  const uint64_t n = old.size();
  if (now.size() != n) return false;
  const std::vector<uint64_t> nz = NonzeroCounts(now);
  auto zeros = [&](uint64_t from, uint64_t to) {
    to = std::min(to, n);
    return nz[to] == nz[std::min(from, to)];
  };
  auto moved = [&](uint64_t p) { return p < off ? old[p] : p + len < n ? old[p + len] : '\0'; };
  uint64_t same = 0, shifted = 0, tail = n;  // prefix == old, prefix == moved, suffix == old
  while (same < n && now[same] == old[same]) ++same;
  while (shifted < n && now[shifted] == moved(shifted)) ++shifted;
  while (tail > 0 && now[tail - 1] == old[tail - 1]) --tail;
  for (uint64_t c = off; c <= off + len; c += kAu) {
    if (same >= c && zeros(c, off + len) && tail <= off + len) return true;
  }
  for (uint64_t b = off + len; b < n + kAu; b += kAu) {
    if (shifted >= b - len && zeros(b - len, b) && tail <= std::max(b, off + len)) return true;
  }
  return false;
}

// An insert of [off, off+len) stopped between transactions: size already raised, the data
// from some AU boundary b >= off up moved up by len, zeros in [b, b+len).
bool InsertIntermediate(const std::string& old, const std::string& now, uint64_t off,
                        uint64_t len) {
  const uint64_t n = old.size() + len;
  if (now.size() != n) return false;
  const std::vector<uint64_t> nz = NonzeroCounts(now);
  auto zeros = [&](uint64_t from, uint64_t to) {
    to = std::min(to, n);
    return nz[to] == nz[std::min(from, to)];
  };
  auto padded = [&](uint64_t p) { return p < old.size() ? old[p] : '\0'; };
  uint64_t same = 0, tail = n;  // prefix == old (padded), suffix == old moved up
  while (same < n && now[same] == padded(same)) ++same;
  while (tail > len && now[tail - 1] == old[tail - 1 - len]) --tail;
  for (uint64_t b = off; b < n + kAu; b += kAu) {
    if (same >= std::min(b, n) && zeros(b, b + len) && tail <= b + len) return true;
  }
  return false;
}

Op FallocateOp(const std::string& path, int mode, uint64_t off, uint64_t len) {
  Op op;
  op.desc = "fallocate " + path + " mode " + std::to_string(mode) + " @" + std::to_string(off) +
            "+" + std::to_string(len);
  op.run = [=](Filesystem* fs) {
    return WithFile(fs, path, [&](Inode* f) { return fs->Fallocate(f, mode, off, len); });
  };
  return op;
}

// Writes, truncations, every fallocate mode and copies on three files of at most
// `max_size` bytes, written in pieces of at most `max_write`.
std::vector<Op> GenerateFallocate(uint64_t seed, int count, uint64_t max_size,
                                  uint64_t max_write, std::vector<Model>* models) {
  std::mt19937_64 rng(seed);
  Model m;
  models->assign(1, m);
  std::vector<Op> ops;
  auto aligned = [&](uint64_t limit) { return rng() % (limit / kAu + 1) * kAu; };
  auto offset = [&](uint64_t limit) {
    return rng() % 2 ? aligned(limit) : std::min(limit, aligned(limit) + rng() % 100);
  };
  while (static_cast<int>(ops.size()) < count) {
    const std::string p = "/g" + std::to_string(rng() % 3);
    if (!m.paths.count(p)) {
      Op op;
      op.desc = "create " + p;
      op.run = [p](Filesystem* fs) {
        return fs->Mknod(kRootIno, Base(p), S_IFREG | 0644, 0, kRoot).status();
      };
      m.paths[p] = m.next_id;
      m.nodes[m.next_id++] = {'f', "", {}};
      ops.push_back(op);
      models->push_back(m);
      continue;
    }
    std::string& data = m.nodes[m.paths[p]].data;
    const uint64_t size = data.size();
    const uint64_t off = offset(max_size), len = 1 + offset(max_size / 3);
    const uint64_t end = std::min(off + len, max_size);
    Op op;
    switch (rng() % 12) {
      case 0: case 1: case 2: {  // write + fsync
        const std::string bytes = Pattern(rng, std::min(end - std::min(off, end), max_write) + 1);
        op.desc = "write " + p + " @" + std::to_string(off) + "+" + std::to_string(bytes.size());
        op.written_paths = {p};
        op.run = [p, off, bytes](Filesystem* fs) {
          return WithFile(fs, p, [&](Inode* f) {
            auto n = fs->Write(f, off, bytes.data(), bytes.size());
            return n.ok() ? fs->Fsync(f, false) : n.status();
          });
        };
        if (data.size() < off + bytes.size()) data.resize(off + bytes.size(), '\0');
        data.replace(off, bytes.size(), bytes);
        break;
      }
      case 3: {
        const uint64_t to = offset(max_size);
        op.desc = "truncate " + p + " " + std::to_string(to);
        op.run = [p, to](Filesystem* fs) {
          SetAttrIn in;
          in.size = true;
          in.attr.st_size = static_cast<off_t>(to);
          return fs->SetAttr(Resolve(fs, p), in).status();
        };
        data.resize(to, '\0');
        break;
      }
      case 4: {  // preallocate (the size grows unless KEEP_SIZE; the bytes do not change)
        const int mode = rng() % 2 ? 0 : FALLOC_FL_KEEP_SIZE;
        op = FallocateOp(p, mode, off, end - off + 1);
        if (!mode && data.size() < end + 1) data.resize(end + 1, '\0');
        break;
      }
      case 5: {  // punch: zeros, in place for partial AUs
        op = FallocateOp(p, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
        op.written_paths = {p};
        for (uint64_t i = off; i < std::min<uint64_t>(off + len, size); ++i) data[i] = '\0';
        break;
      }
      case 6: {  // zero range, maybe growing the file
        const int mode = FALLOC_FL_ZERO_RANGE | (rng() % 2 ? FALLOC_FL_KEEP_SIZE : 0);
        op = FallocateOp(p, mode, off, end - off + 1);
        op.written_paths = {p};
        for (uint64_t i = off; i <= std::min(end, size - 1) && i < size; ++i) data[i] = '\0';
        if (!(mode & FALLOC_FL_KEEP_SIZE) && data.size() < end + 1) data.resize(end + 1, '\0');
        break;
      }
      case 7: case 8: {  // collapse an aligned range that ends before EOF
        if (size <= 2 * kAu) continue;
        const uint64_t at = rng() % ((size - 1) / kAu - 1) * kAu;
        const uint64_t n = (1 + rng() % ((size - 1 - at) / kAu)) * kAu;
        if (at + n >= size) continue;
        op = FallocateOp(p, FALLOC_FL_COLLAPSE_RANGE, at, n);
        op.partial_path = p;
        op.partial = [at, n](const std::string& before, const std::string& now) {
          return CollapseIntermediate(before, now, at, n);
        };
        data.erase(at, n);
        break;
      }
      case 9: case 10: {  // insert a hole at an aligned offset before EOF
        if (size == 0 || size + kAu > max_size) continue;
        const uint64_t at = rng() % ((size + kAu - 1) / kAu) * kAu;
        const uint64_t n = (1 + rng() % ((max_size - size) / kAu)) * kAu;
        op = FallocateOp(p, FALLOC_FL_INSERT_RANGE, at, n);
        op.partial_path = p;
        op.partial = [at, n](const std::string& before, const std::string& now) {
          return InsertIntermediate(before, now, at, n);
        };
        data.insert(at, n, '\0');
        break;
      }
      default: {  // copy from another file into this one's bytes (its size stays)
        const std::string q = "/g" + std::to_string(rng() % 3);
        if (q == p || !m.paths.count(q) || size == 0) continue;
        const std::string& src = m.nodes[m.paths[q]].data;
        const uint64_t at = offset(size - 1), from = offset(max_size);
        const uint64_t n = std::min(size - at, len);
        const uint64_t copied = from >= src.size() ? 0 : std::min(n, src.size() - from);
        op.desc = "copy " + q + " @" + std::to_string(from) + " -> " + p + " @" +
                  std::to_string(at) + "+" + std::to_string(n);
        op.written_paths = {p};
        op.grows_in_steps = true;
        op.run = [=](Filesystem* fs) {
          auto in = fs->Open(Resolve(fs, q), O_RDONLY);
          if (!in.ok()) return in.status();
          Status st = WithFile(fs, p, [&](Inode* out) {
            auto r = fs->CopyFileRange(*in, from, out, at, n);
            if (r.ok() && *r != copied) return Status::IoError("short copy");
            // Bytes copied in place are durable at fsync, as a write's are.
            return r.ok() ? fs->Fsync(out, false) : r.status();
          });
          fs->Release(*in);
          return st;
        };
        data.replace(at, copied, src.substr(std::min<uint64_t>(from, src.size()), copied));
        break;
      }
    }
    ops.push_back(op);
    models->push_back(m);
  }
  return ops;
}
// Seeds of a test: `base`, or `long_count` of them with UDAX_CRASH_LONG.
std::vector<uint64_t> Seeds(std::vector<uint64_t> base, uint64_t long_count) {
  if (!LongRun()) return base;
  std::vector<uint64_t> s;
  for (uint64_t i = 0; i < long_count; ++i) s.push_back(base[0] + i);
  return s;
}

TEST(Crash, EveryPersistPointOfMixedWorkloads) {
  uint64_t cuts = 0;
  for (uint64_t seed : Seeds({1, 2, 3, 4}, 12)) {
    CrashReport r = RunWorkload("mixed", Generate, seed, LongRun() ? 200 : 100, 32ull << 20, 1);
    cuts += r.cuts;
    EXPECT_EQ(r.failures, 0u) << r.first_failure;
  }
  EXPECT_GT(cuts, 1000u);  // the harness really cut power many times
}

// Issue 22: two devices, 16 MiB each. Device 0 holds the journal, the bitmaps and the
// first inode table; the second inode table is on device 1 and every directory, extent
// block or attribute AU has its copy on the other device, so one transaction writes both
// devices and cuts fall between those writes. Every cut must mount and match the model.
TEST(Crash, EveryPersistPointAcrossTwoDevices) {
  uint64_t cuts = 0;
  for (uint64_t seed : Seeds({5, 6}, 8)) {
    CrashReport r = RunWorkload("two-devices", Generate, seed, LongRun() ? 200 : 80, 16ull << 20, 1,
                                0, nullptr, /*devices=*/2);
    cuts += r.cuts;
    EXPECT_EQ(r.failures, 0u) << r.first_failure;
  }
  EXPECT_GT(cuts, 500u);
}

TEST(Crash, EveryPersistPointOfFallocateWorkloads) {
  // Small files: every operation fits one transaction, so none may show half applied.
  auto generate = [](uint64_t seed, int count, std::vector<Model>* models) {
    return GenerateFallocate(seed, count, 96u << 10, 24u << 10, models);
  };
  uint64_t cuts = 0;
  for (uint64_t seed : Seeds({1, 2, 3}, 10)) {
    CrashReport r = RunWorkload("fallocate", generate, seed, LongRun() ? 200 : 80, 32ull << 20, 1);
    cuts += r.cuts;
    EXPECT_EQ(r.failures, 0u) << r.first_failure;
  }
  EXPECT_GT(cuts, 800u);
}

TEST(Crash, MultiTransactionShiftsWithASmallJournal) {
  // A 16 KiB journal: a transaction holds ~120 reverse-map records, so collapsing or
  // inserting in files of a few hundred AUs takes several, and a cut between two of them
  // must leave a documented intermediate state.
  auto generate = [](uint64_t seed, int count, std::vector<Model>* models) {
    return GenerateFallocate(seed, count, 2u << 20, 512u << 10, models);
  };
  uint64_t cuts = 0, intermediate = 0;
  for (uint64_t seed : Seeds({4, 5}, 8)) {
    CrashReport r = RunWorkload("shifts", generate, seed, LongRun() ? 100 : 40, 32ull << 20, 1,
                                16u << 10);
    cuts += r.cuts;
    intermediate += r.intermediate;
    EXPECT_EQ(r.failures, 0u) << r.first_failure;
  }
  EXPECT_GT(cuts, 200u);
  EXPECT_GT(intermediate, 10u);  // cuts really fell between the steps of a shift
}

TEST(Crash, SampledPointsOfALongWorkload) {
  // Sampled points (every 3rd; every one with UDAX_CRASH_LONG) of a longer mixed workload
  // on 16 MiB. (Allocation really near full: crash_attr_test.cc.)
  CrashReport r = RunWorkload("long", Generate, 42, LongRun() ? 2000 : 600, 16ull << 20,
                              LongRun() ? 1 : 3);
  EXPECT_GT(r.cuts, 500u);
  EXPECT_EQ(r.failures, 0u) << r.first_failure;
}

// The harness must fail when persistence is broken: these runs break it on purpose.
TEST(Crash, BrokenOrderingIsCaught) {
  // The commit word durable, the log it commits not: "commit before records persisted".
  SkipPersist log_not_persisted = [](const DiskSuperblock& sb, uint64_t off, uint64_t n) {
    return off >= sb.journal_off && off < sb.journal_off + sb.journal_len && n > 8;
  };
  CrashReport r = RunWorkload("broken-log", Generate, 1, 30, 32ull << 20, 1, 0, log_not_persisted);
  EXPECT_GT(r.failures, 0u) << "a commit word ahead of its log went unnoticed";
  // Nothing flushed in the data area (file data, and directory blocks applied in place).
  SkipPersist data_not_persisted = [](const DiskSuperblock& sb, uint64_t off, uint64_t n) {
    return off >= sb.data_off && off + n <= sb.region_size - sb.au_size && n >= 512;
  };
  r = RunWorkload("broken-data", Generate, 1, 30, 32ull << 20, 1, 0, data_not_persisted);
  EXPECT_GT(r.failures, 0u) << "data published before it was durable went unnoticed";
}

}  // namespace
}  // namespace udax::crash
