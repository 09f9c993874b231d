// crash_test.cc -- power cuts at every persist point of real workloads.
//
// A workload of namespace and data operations runs on a filesystem whose region is a
// ShadowRegion. At every persist point the harness takes the image a power cut would
// leave (durable bytes plus a random subset of dirty cachelines), mounts it (journal
// replay), and requires (1) the cross-checks of fsck to find nothing and (2) the tree to
// equal the model after the operations acknowledged before the cut, or after the one in
// flight (an in-flight overwrite may leave each byte old or new, as POSIX allows).
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <map>
#include <random>
#include <set>

#include "fs/core/core_test_util.h"
#include "tests/crash/shadow_region.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

// What the tree looks like: path -> node, node -> (type, bytes). Hard links share a node.
struct Model {
  struct Node {
    char type = 'f';  // f, d, l
    std::string data;
  };
  std::map<std::string, int> paths;  // "/a/b" -> node id
  std::map<int, Node> nodes;
  int next_id = 1;
};

using Tree = std::map<std::string, std::pair<char, std::string>>;

Tree Flatten(const Model& m) {
  Tree t;
  for (const auto& [p, id] : m.paths) {
    const auto& n = m.nodes.at(id);
    t[p] = {n.type, n.type == 'd' ? "" : n.data};
  }
  return t;
}

// Reads the whole tree of a mounted filesystem.
Status ReadTree(Filesystem* fs, uint64_t dir, const std::string& prefix, Tree* out) {
  UDAX_ASSIGN_OR_RETURN(auto entries, fs->ListDir(dir));
  for (const DirListEntry& e : entries) {
    if (e.name == "." || e.name == "..") continue;
    UDAX_ASSIGN_OR_RETURN(EntryOut entry, fs->Lookup(dir, e.name));
    const std::string path = prefix + "/" + e.name;
    const mode_t mode = entry.attr.st_mode;
    if (S_ISDIR(mode)) {
      (*out)[path] = {'d', ""};
      UDAX_RETURN_IF_ERROR(ReadTree(fs, entry.ino, path, out));
    } else if (S_ISLNK(mode)) {
      UDAX_ASSIGN_OR_RETURN(std::string target, fs->ReadLink(entry.ino));
      (*out)[path] = {'l', target};
    } else {
      UDAX_ASSIGN_OR_RETURN(Inode * f, fs->Open(entry.ino, O_RDONLY));
      std::string data(static_cast<size_t>(entry.attr.st_size), '\0');
      auto n = fs->Read(f, 0, data.size(), data.data());
      fs->Release(f);
      if (!n.ok()) return n.status();
      data.resize(*n);
      (*out)[path] = {'f', data};
    }
  }
  return Status::Ok();
}

// One workload step: its effect on the model, and how to run it on the filesystem.
struct Op {
  std::string desc;
  std::function<Status(Filesystem*)> run;
  // A write not yet acknowledged may leave each byte of the file old or new (POSIX makes
  // no promise for an interrupted write): every name of the file it writes.
  std::set<std::string> written_paths;
  // An operation committed in several transactions (collapse, insert) may also leave the
  // file `partial_path` in one of its documented intermediate states: `partial` says
  // whether the bytes read (`now`) are one, given the bytes before the operation.
  std::string partial_path;
  std::function<bool(const std::string& before, const std::string& now)> partial;
};

uint64_t Resolve(Filesystem* fs, const std::string& path) {
  uint64_t ino = kRootIno;
  size_t pos = 1;
  while (pos < path.size()) {
    const size_t slash = path.find('/', pos);
    const std::string name = path.substr(pos, slash == std::string::npos ? std::string::npos
                                                                          : slash - pos);
    auto e = fs->Lookup(ino, name);
    if (!e.ok()) return 0;
    ino = e->ino;
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return ino;
}
std::string Parent(const std::string& p) { return p.substr(0, p.rfind('/')); }
std::string Base(const std::string& p) { return p.substr(p.rfind('/') + 1); }

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
      m.nodes[m.next_id++] = {'d', ""};
    } else if (kind <= 2) {  // create, often in the same directory (bucket splits)
      const std::string p = (rng() % 2 ? std::string("") : pick('d')) + "/f" + std::to_string(names++);
      op.desc = "create " + p;
      op.run = [p](Filesystem* fs) {
        return fs->Mknod(Resolve(fs, Parent(p)), Base(p), S_IFREG | 0644, 0, kRoot).status();
      };
      m.paths[p] = m.next_id;
      m.nodes[m.next_id++] = {'f', ""};
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
      if (b == "!" || b == a) continue;
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
      m.nodes[m.next_id++] = {'l', target};
    }
    ops.push_back(op);
    models->push_back(m);
  }
  return ops;
}

// --- fallocate workloads ---
constexpr uint64_t kAu = 4096;

// Nonzero bytes that differ at every position, so that a misplaced AU shows.
std::string Pattern(std::mt19937_64& rng, uint64_t n) {
  const uint64_t r = rng();
  std::string s(n, '\0');
  for (uint64_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (r + i + i / 4093) % 26);
  return s;
}

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

Status WithFile(Filesystem* fs, const std::string& path,
                const std::function<Status(Inode*)>& body) {
  auto f = fs->Open(Resolve(fs, path), O_RDWR);
  if (!f.ok()) return f.status();
  Status st = body(*f);
  fs->Release(*f);
  return st;
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
      m.nodes[m.next_id++] = {'f', ""};
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
        op.run = [=](Filesystem* fs) {
          auto in = fs->Open(Resolve(fs, q), O_RDONLY);
          if (!in.ok()) return in.status();
          Status st = WithFile(fs, p, [&](Inode* out) {
            auto r = fs->CopyFileRange(*in, from, out, at, n);
            if (r.ok() && *r != copied) return Status::IoError("short copy");
            return r.status();
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

// Does `actual` match `want`, allowing each file in `mixed` to have the size of
// `old_tree`'s or `want`'s version and each byte from either (old padded with zeros)?
bool Matches(const Tree& actual, const Tree& want, const Tree& old_tree,
             const std::set<std::string>& mixed) {
  if (mixed.empty()) return actual == want;
  if (actual.size() != want.size()) return false;
  for (const auto& [p, v] : want) {
    auto it = actual.find(p);
    if (it == actual.end()) return false;
    if (!mixed.count(p)) {
      if (it->second != v) return false;
      continue;
    }
    const std::string& a = it->second.second;
    const std::string& n = v.second;
    std::string o = old_tree.at(p).second;
    if (a.size() != n.size() && a.size() != o.size()) return false;
    o.resize(std::max(o.size(), n.size()), '\0');
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i] != n[i] && a[i] != o[i]) return false;
    }
  }
  return true;
}

struct Result_ {
  uint64_t cuts = 0;
  uint64_t intermediate = 0;  // cuts that left an operation in an intermediate state
  uint64_t failures = 0;
  std::string first_failure;
};

// Does `actual` equal `before` but for the file the operation leaves part way, which must
// be in one of the operation's intermediate states?
bool Between(const Tree& actual, const Tree& before, const Op& op) {
  if (!op.partial || actual.size() != before.size()) return false;
  for (const auto& [p, v] : before) {
    auto it = actual.find(p);
    if (it == actual.end() || it->second.first != v.first) return false;
    if (p == op.partial_path ? !op.partial(v.second, it->second.second) : it->second != v) {
      return false;
    }
  }
  return true;
}

using Generator = std::function<std::vector<Op>(uint64_t seed, int count, std::vector<Model>*)>;

// Runs the workload once; checks a power cut at every `stride`-th persist point.
Result_ RunWorkload(const Generator& generate, uint64_t seed, int nops, uint64_t image_size,
                    int stride, uint64_t journal_size = 0) {
  Result_ res;
  std::vector<Model> models;
  std::vector<Op> ops = generate(seed, nops, &models);
  std::vector<Tree> trees;
  for (const Model& m : models) trees.push_back(Flatten(m));

  TestImage img(image_size, kAuSize4K, journal_size);
  const std::string crash_path = img.path() + ".crash";
  auto inner = Region::Open(img.path(), RegionOptions{});
  EXPECT_TRUE(inner.ok());
  auto shadow_owned = std::make_unique<ShadowRegion>(std::move(inner).value());
  ShadowRegion* shadow = shadow_owned.get();
  auto fs = Filesystem::MountRegion(std::move(shadow_owned), {});
  EXPECT_TRUE(fs.ok()) << fs.status().ToString();
  if (!fs.ok()) return res;

  std::mt19937_64 rng(seed * 7 + 1);
  int in_flight = 0;  // operations acknowledged so far
  auto check = [&](uint64_t point) {
    if (point % stride != 0) return;
    ++res.cuts;
    const double keep = (point / stride) % 3 == 0 ? 0.0 : ((point / stride) % 3 == 1 ? 0.5 : 1.0);
    std::vector<uint8_t> image = shadow->CrashImage(&rng, keep);
    const int fd = open(crash_path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    const bool written = fd >= 0 && pwrite(fd, image.data(), image.size(), 0) ==
                                        static_cast<ssize_t>(image.size());
    if (fd >= 0) close(fd);
    std::string why;
    if (!written) {
      why = "cannot write the crash image";
    } else if (auto cfs = Filesystem::Mount(crash_path, {}); !cfs.ok()) {
      why = "mount failed: " + cfs.status().ToString();
    } else {
      auto maps = (*cfs)->CrossCheckMaps();
      auto names = (*cfs)->CheckNamespace();
      Tree actual;
      Status st = ReadTree(cfs->get(), kRootIno, "", &actual);
      if (!maps.ok() || maps->problems) {
        why = "maps: " + (maps.ok() ? maps->messages[0] : maps.status().ToString());
      } else if (!names.ok() || names->problems) {
        why = "namespace: " + (names.ok() ? names->messages[0] : names.status().ToString());
      } else if (!st.ok()) {
        why = "reading the tree: " + st.ToString();
      } else {
        const Op* op = in_flight < static_cast<int>(ops.size()) ? &ops[in_flight] : nullptr;
        const bool before = actual == trees[in_flight];
        const bool after = op && Matches(actual, trees[in_flight + 1], trees[in_flight],
                                         op->written_paths);
        const bool between = op && Between(actual, trees[in_flight], *op);
        if (!before && !after && !between) {
          why = "tree matches neither before nor after '" + (op ? op->desc : "end") + "'";
        }
        if (!before && !after && between) ++res.intermediate;
      }
    }
    if (!why.empty()) {
      if (res.failures == 0 && getenv("UDAX_CRASH_KEEP")) {
        const std::string keep = std::string(getenv("UDAX_CRASH_KEEP")) + "." +
                                 std::to_string(seed) + "." + std::to_string(point);
        const int kfd = open(keep.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (kfd >= 0) {
          (void)!pwrite(kfd, image.data(), image.size(), 0);  // the image before replay
          close(kfd);
        }
      }
      ++res.failures;
      if (res.first_failure.empty()) {
        res.first_failure = "seed " + std::to_string(seed) + " point " + std::to_string(point) +
                            " during op " + std::to_string(in_flight) + " (" + (in_flight < static_cast<int>(ops.size()) ? ops[in_flight].desc : std::string("end")) + "): " + why;
      }
    }
  };
  shadow->set_on_point(check);
  for (; in_flight < static_cast<int>(ops.size()); ++in_flight) {
    Status st = ops[in_flight].run(fs->get());
    EXPECT_TRUE(st.ok()) << ops[in_flight].desc << ": " << st.ToString();
    if (!st.ok()) break;
  }
  shadow->set_on_point(nullptr);
  unlink(crash_path.c_str());
  return res;
}

TEST(Crash, EveryPersistPointOfMixedWorkloads) {
  uint64_t cuts = 0;
  for (uint64_t seed : {1, 2, 3}) {
    Result_ r = RunWorkload(Generate, seed, 60, 32ull << 20, 1);
    cuts += r.cuts;
    EXPECT_EQ(r.failures, 0u) << r.first_failure;
  }
  EXPECT_GT(cuts, 300u);  // the harness really cut power many times
}

TEST(Crash, EveryPersistPointOfFallocateWorkloads) {
  // Small files: every operation fits one transaction, so none may show half applied.
  auto generate = [](uint64_t seed, int count, std::vector<Model>* models) {
    return GenerateFallocate(seed, count, 96u << 10, 24u << 10, models);
  };
  uint64_t cuts = 0;
  for (uint64_t seed : {1, 2}) {
    Result_ r = RunWorkload(generate, seed, 50, 32ull << 20, 1);
    cuts += r.cuts;
    EXPECT_EQ(r.failures, 0u) << r.first_failure;
  }
  EXPECT_GT(cuts, 300u);
}

TEST(Crash, MultiTransactionShiftsWithASmallJournal) {
  // A 16 KiB journal: a transaction holds ~120 reverse-map records, so collapsing or
  // inserting in files of a few hundred AUs takes several, and a cut between two of them
  // must leave a documented intermediate state.
  auto generate = [](uint64_t seed, int count, std::vector<Model>* models) {
    return GenerateFallocate(seed, count, 2u << 20, 512u << 10, models);
  };
  uint64_t cuts = 0, intermediate = 0;
  for (uint64_t seed : {4, 5}) {
    Result_ r = RunWorkload(generate, seed, 40, 32ull << 20, 1, 16u << 10);
    cuts += r.cuts;
    intermediate += r.intermediate;
    EXPECT_EQ(r.failures, 0u) << r.first_failure;
  }
  EXPECT_GT(cuts, 200u);
  EXPECT_GT(intermediate, 10u);  // cuts really fell between the steps of a shift
}

TEST(Crash, SampledPointsOfALongWorkloadNearlyFull) {
  // 16 MiB: the writes run the filesystem close to full, through ENOSPC-free margins.
  Result_ r = RunWorkload(Generate, 42, 250, 16ull << 20, 7);
  EXPECT_GT(r.cuts, 50u);
  EXPECT_EQ(r.failures, 0u) << r.first_failure;
}

}  // namespace
}  // namespace udax
