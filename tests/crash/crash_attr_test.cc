// crash_attr_test.cc -- power cuts at every persist point of workloads with extended
// attributes, POSIX ACLs and fallocate, and of allocation near full.
//
// Attributes: set, replace and remove, values up to 64 KiB so the blob grows into new AUs
// and shrinks out of them; attributes on directories and on short symlinks (whose inline
// target then moves out to an AU); default ACLs inherited by the files and directories
// created below them; and every fallocate mode, copies, renames over, links and unlinks on
// attributed files. Near full: a ballast file takes all but a few AUs, then the same mix
// runs into ENOSPC, including the ballast growing into the last AUs and giving them back.
// Both are dynamic workloads (crash_harness.h): ENOSPC and the blob's own limit decide
// outcomes the generator cannot know, so a dry run decides them first.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/xattr.h>

#include <random>

#include "fs/core/core_test_util.h"
#include "fs/format/posix_acl.h"
#include "tests/crash/crash_harness.h"

namespace udax::crash {
namespace {

Model::Node* NodeOf(Model* m, const std::string& p) {
  auto it = m->paths.find(p);
  return it == m->paths.end() ? nullptr : &m->nodes[it->second];
}

// posix_acl_create: what a new node under `dir` starts with.
void Inherit(Model* m, const std::string& dir, Model::Node* n) {
  Model::Node* parent = NodeOf(m, dir);
  if (!parent) return;
  auto it = parent->xattrs.find(kAclDefaultXattr);
  if (it == parent->xattrs.end()) return;
  auto acl = AclDecode(it->second);
  if (!acl.ok()) return;
  uint32_t mode = n->type == 'd' ? S_IFDIR | 0755 : S_IFREG | 0644;
  if (n->type == 'd') n->xattrs[kAclDefaultXattr] = it->second;
  if (AclCreateMasq(&acl.value(), &mode)) n->xattrs[kAclAccessXattr] = AclEncode(*acl);
}

struct Mix {
  uint64_t max_file;  // file offsets and sizes stay about this small
  bool near_full;     // a ballast takes the space first; ENOSPC is an expected outcome
};

class AttrGenerator {
 public:
  AttrGenerator(uint64_t seed, const Mix& mix) : rng_(seed), mix_(mix) {}

  std::vector<Op> Generate(int count) {
    if (mix_.near_full) {  // preallocations of halving sizes fill all but a few AUs
      Add(CreateOp("/ballast", 'b'));
      for (uint64_t len = 16u << 20; len >= kAu; len /= 2) Add(BallastOp(int64_t(len)));
    }
    while (static_cast<int>(ops_.size()) < count) Next();
    return std::move(ops_);
  }

 private:
  uint64_t Rand(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  // A path of the planning model of `type` ('f', 'd', 'l'; 'd' includes the root ""),
  // or "!" when there is none.
  std::string Pick(char type) {
    std::vector<std::string> v;
    for (const auto& [p, id] : plan_.paths) {
      if (plan_.nodes[id].type == type && p != "/ballast") v.push_back(p);
    }
    if (type == 'd') v.push_back("");
    return v.empty() ? "!" : v[Rand(v.size())];
  }
  // Every name of the file at `p` (an interrupted write may leave any byte old or new).
  std::set<std::string> NamesOf(const std::string& p) {
    std::set<std::string> s;
    auto it = plan_.paths.find(p);
    if (it == plan_.paths.end()) return s;
    for (const auto& [q, id] : plan_.paths) {
      if (id == it->second) s.insert(q);
    }
    return s;
  }
  // ENOSPC is an outcome only near full (and for the attribute blob, which has a limit).
  bool NoSpaceOk(const Status& st) const { return mix_.near_full && st.code() == ENOSPC; }

  void Add(Op op) {
    // The planning model assumes success; the dry run finds out.
    op.apply(&plan_, Status::Ok(), planned_n_);
    ops_.push_back(std::move(op));
  }

  Op CreateOp(const std::string& p, char type) {
    Op op;
    op.desc = (type == 'd' ? "mkdir " : "create ") + p;  // type 'b': a ballast
    op.run_n = [=](Filesystem* fs, uint64_t*) {
      const uint64_t dir = Resolve(fs, Parent(p));
      if (dir == 0) return Status::NotFound(Parent(p));
      return type == 'd' ? fs->Mkdir(dir, Base(p), 0755, kRoot).status()
                         : fs->Mknod(dir, Base(p), S_IFREG | 0644, 0, kRoot).status();
    };
    const bool near_full = mix_.near_full;
    op.apply = [=](Model* m, const Status& st, uint64_t) {
      const bool parent = Parent(p).empty() || NodeOf(m, Parent(p));
      if (!st.ok()) return (st.code() == ENOENT && !parent) || (near_full && st.code() == ENOSPC);
      m->paths[p] = m->next_id;
      Model::Node& n = m->nodes[m->next_id++];
      n.type = type;
      if (type == 'b') n.data = "0";  // compared by size alone (crash_harness.h)
      Inherit(m, Parent(p), &n);
      return parent;
    };
    planned_n_ = 0;
    return op;
  }

  Op WriteOp(const std::string& p, uint64_t off, uint64_t len) {
    const std::string bytes = Pattern(rng_, len);
    Op op;
    op.desc = "write " + p + " @" + std::to_string(off) + "+" + std::to_string(len);
    op.written_paths = NamesOf(p);
    op.run_n = [=](Filesystem* fs, uint64_t* n) {
      return WithFile(fs, p, [&](Inode* f) {
        auto r = fs->Write(f, off, bytes.data(), bytes.size());
        if (!r.ok()) return r.status();
        *n = *r;
        return fs->Fsync(f, false);
      });
    };
    const bool near_full = mix_.near_full;
    op.apply = [=](Model* m, const Status& st, uint64_t n) {
      Model::Node* node = NodeOf(m, p);
      if (!st.ok()) return (st.code() == ENOENT && !node) || (near_full && st.code() == ENOSPC);
      if (!node || n == 0 || n > bytes.size() || (n < bytes.size() && !near_full)) return false;
      if (node->data.size() < off + n) node->data.resize(off + n, '\0');
      node->data.replace(off, n, bytes.substr(0, n));
      return true;
    };
    planned_n_ = len;
    return op;
  }

  Op SetXattrOp(const std::string& p, const std::string& name, std::string value, int flags) {
    Op op;
    op.desc = "setxattr " + p + " " + name + " (" + std::to_string(value.size()) + " bytes, flags " +
              std::to_string(flags) + ")";
    op.run_n = [=](Filesystem* fs, uint64_t*) {
      const uint64_t ino = Resolve(fs, p);
      if (ino == 0) return Status::NotFound(p);
      return fs->SetXattr(ino, name, value, flags, kRoot);
    };
    op.apply = [=](Model* m, const Status& st, uint64_t) {
      Model::Node* node = NodeOf(m, p);
      if (!node) return st.code() == ENOENT;
      const bool exists = node->xattrs.count(name) != 0;
      if ((flags & XATTR_CREATE) && exists) return st.code() == EEXIST;
      if ((flags & XATTR_REPLACE) && !exists) return st.code() == ENODATA;
      if (st.code() == ENOSPC) return true;  // the blob is full (or the filesystem)
      if (!st.ok()) return false;
      node->xattrs[name] = value;
      return true;
    };
    planned_n_ = 0;
    return op;
  }

  Op RemoveXattrOp(const std::string& p, const std::string& name) {
    Op op;
    op.desc = "removexattr " + p + " " + name;
    op.run_n = [=](Filesystem* fs, uint64_t*) {
      const uint64_t ino = Resolve(fs, p);
      if (ino == 0) return Status::NotFound(p);
      return fs->RemoveXattr(ino, name);
    };
    op.apply = [=](Model* m, const Status& st, uint64_t) {
      Model::Node* node = NodeOf(m, p);
      if (!node) return st.code() == ENOENT;
      if (!node->xattrs.count(name)) return st.code() == ENODATA;
      if (!st.ok()) return false;
      node->xattrs.erase(name);
      return true;
    };
    planned_n_ = 0;
    return op;
  }

  // Namespace operations whose model effect is a function of the paths alone.
  Op NameOp(const std::string& desc, std::function<Status(Filesystem*)> run,
            std::vector<std::string> need, std::function<void(Model*)> effect) {
    Op op;
    op.desc = desc;
    op.run_n = [run](Filesystem* fs, uint64_t*) { return run(fs); };
    const bool near_full = mix_.near_full;
    op.apply = [=](Model* m, const Status& st, uint64_t) {
      bool present = true;
      for (const std::string& q : need) present = present && (q.empty() || NodeOf(m, q));
      if (!st.ok()) return (st.code() == ENOENT && !present) || (near_full && st.code() == ENOSPC);
      if (!present) return false;
      effect(m);
      return true;
    };
    planned_n_ = 0;
    return op;
  }

  // fallocate(2) on `p`; `effect` gives the bytes after it from the bytes before.
  Op FallocOp(const std::string& p, int mode, uint64_t off, uint64_t len,
              std::function<void(std::string*)> effect) {
    Op op;
    op.desc = "fallocate " + p + " mode " + std::to_string(mode) + " @" + std::to_string(off) +
              "+" + std::to_string(len);
    if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) op.written_paths = NamesOf(p);
    op.run_n = [=](Filesystem* fs, uint64_t*) {
      return WithFile(fs, p, [&](Inode* f) { return fs->Fallocate(f, mode, off, len); });
    };
    const bool near_full = mix_.near_full;
    op.apply = [=](Model* m, const Status& st, uint64_t) {
      Model::Node* node = NodeOf(m, p);
      if (!st.ok()) return (st.code() == ENOENT && !node) || (near_full && st.code() == ENOSPC);
      if (!node) return false;
      effect(&node->data);
      return true;
    };
    planned_n_ = 0;
    return op;
  }

  Op CopyOp(const std::string& q, uint64_t from, const std::string& p, uint64_t at, uint64_t len) {
    Op op;
    op.desc = "copy " + q + " @" + std::to_string(from) + " -> " + p + " @" + std::to_string(at) +
              "+" + std::to_string(len);
    op.written_paths = NamesOf(p);
    op.grows_in_steps = true;
    op.run_n = [=](Filesystem* fs, uint64_t* n) {
      const uint64_t in_ino = Resolve(fs, q);
      if (in_ino == 0) return Status::NotFound(q);
      auto in = fs->Open(in_ino, O_RDONLY);
      if (!in.ok()) return in.status();
      Status st = WithFile(fs, p, [&](Inode* out) {
        // Bytes copied in place are durable at fsync, as a write's are.
        auto r = fs->CopyFileRange(*in, from, out, at, len);
        if (!r.ok()) return r.status();
        *n = *r;
        return fs->Fsync(out, false);
      });
      fs->Release(*in);
      return st;
    };
    const bool near_full = mix_.near_full;
    op.apply = [=](Model* m, const Status& st, uint64_t n) {
      Model::Node* src = NodeOf(m, q);
      Model::Node* dst = NodeOf(m, p);
      if (!st.ok() && st.code() != EINVAL) {
        return (st.code() == ENOENT && (!src || !dst)) || (near_full && st.code() == ENOSPC);
      }
      if (!src || !dst) return false;
      const uint64_t want = from >= src->data.size() ? 0 : std::min(len, src->data.size() - from);
      if (src == dst && at < from + want && from < at + want) return st.code() == EINVAL;
      if (!st.ok()) return false;
      if (n > want || (n < want && !near_full)) return false;
      if (n == 0) return true;
      const std::string bytes = src->data.substr(from, n);
      if (dst->data.size() < at + n) dst->data.resize(at + n, '\0');
      dst->data.replace(at, n, bytes);
      return true;
    };
    planned_n_ = len;
    return op;
  }

  // The ballast grows by `delta` bytes (preallocated past its size: ENOSPC near full) or
  // shrinks by -delta (giving AUs back).
  Op BallastOp(int64_t delta) {
    Op op;
    op.desc = "ballast " + std::to_string(delta);
    op.run_n = [=](Filesystem* fs, uint64_t*) {
      return WithFile(fs, "/ballast", [&](Inode* f) -> Status {
        UDAX_ASSIGN_OR_RETURN(struct stat st, fs->GetAttr(f->ino));
        const uint64_t size = static_cast<uint64_t>(st.st_size);
        if (delta > 0) return fs->Fallocate(f, 0, size, static_cast<uint64_t>(delta));
        SetAttrIn in;
        in.size = true;
        in.attr.st_size = static_cast<off_t>(size - std::min<uint64_t>(size, -delta));
        return fs->SetAttr(f->ino, in).status();
      });
    };
    op.apply = [=](Model* m, const Status& st, uint64_t) {
      Model::Node* node = NodeOf(m, "/ballast");
      if (!node) return false;
      if (st.code() == ENOSPC && delta > 0) return true;
      if (!st.ok()) return false;
      const uint64_t size = std::stoull(node->data);
      node->data = std::to_string(delta > 0 ? size + delta : size - std::min<uint64_t>(size, -delta));
      return true;
    };
    planned_n_ = 0;
    return op;
  }

  std::string Value() {  // small, a few KiB, or up to 64 KiB (the blob takes new AUs)
    const uint64_t r = Rand(10);
    const uint64_t n = r < 4 ? Rand(100) : r < 7 ? 1000 + Rand(8000) : 20000 + Rand(45000);
    return Pattern(rng_, n);
  }
  std::string Acl() {
    return AclEncode(udax::Acl{{kAclUserObj, 7, 0},
                               {kAclUser, static_cast<uint16_t>(Rand(8)), 1000 + static_cast<uint32_t>(Rand(9))},
                               {kAclGroupObj, 5, 0},
                               {kAclMask, 7, 0},
                               {kAclOther, static_cast<uint16_t>(Rand(8)), 0}});
  }

  void Next() {
    const uint64_t max = mix_.max_file;
    const uint64_t k = Rand(mix_.near_full ? 22 : 20);
    const std::string file = Pick('f'), dir = Pick('d');
    if (k < 3 || file == "!") {  // create, mkdir (and often give a new directory a default ACL)
      const bool is_dir = k == 0;
      const std::string p = dir + (is_dir ? "/d" : "/f") + std::to_string(serial_++);
      Add(CreateOp(p, is_dir ? 'd' : 'f'));
      if (is_dir && Rand(2)) Add(SetXattrOp(p, kAclDefaultXattr, Acl(), 0));
    } else if (k < 5) {  // write (and fsync)
      const uint64_t size = NodeOf(&plan_, file)->data.size();
      const uint64_t off = Rand(2) ? size : Rand(std::min(size + 8192, max));
      Add(WriteOp(file, off, 1 + Rand(max / 2)));
    } else if (k < 9) {  // attributes on files, directories and symlinks
      const char type = "ffdl"[Rand(4)];
      const std::string p = Pick(type);
      if (p == "!" || p.empty()) return;
      const std::string name = std::string(type == 'l' ? "trusted.t" : "user.u") + std::to_string(Rand(4));
      const bool exists = NodeOf(&plan_, p)->xattrs.count(name) != 0;
      const int flags = Rand(5) == 0 ? (exists ? XATTR_CREATE : XATTR_REPLACE)
                                     : Rand(3) == 0 ? (exists ? XATTR_REPLACE : XATTR_CREATE) : 0;
      Add(SetXattrOp(p, name, Value(), flags));
    } else if (k < 11) {  // remove an attribute (or one that is not there)
      std::vector<std::pair<std::string, std::string>> v;
      for (const auto& [p, id] : plan_.paths) {
        for (const auto& [name, value] : plan_.nodes[id].xattrs) v.emplace_back(p, name);
      }
      if (v.empty() || Rand(8) == 0) return Add(RemoveXattrOp(file, "user.none"));
      const auto& [p, name] = v[Rand(v.size())];
      Add(RemoveXattrOp(p, name));
    } else if (k == 11) {  // a symlink, short (inline) or long, soon with an attribute
      const std::string p = dir + "/s" + std::to_string(serial_++);
      const std::string target(Rand(2) ? 10 + Rand(30) : 300 + Rand(1500), 't');
      Add(NameOp("symlink " + p, [=](Filesystem* fs) {
        const uint64_t d = Resolve(fs, Parent(p));
        if (d == 0) return Status::NotFound(p);
        return fs->Symlink(d, Base(p), target, kRoot).status();
      }, {Parent(p)}, [=](Model* m) {
        m->paths[p] = m->next_id;
        m->nodes[m->next_id++] = Model::Node{'l', target, {}};
      }));
    } else if (k == 12) {  // link, rename (often over an attributed file), unlink
      const std::string other = Pick('f');
      const uint64_t how = Rand(3);
      if (how == 0) {
        const std::string b = dir + "/h" + std::to_string(serial_++);
        Add(NameOp("link " + file + " " + b, [=](Filesystem* fs) {
          const uint64_t ino = Resolve(fs, file), d = Resolve(fs, Parent(b));
          if (ino == 0 || d == 0) return Status::NotFound(b);
          return fs->Link(ino, d, Base(b)).status();
        }, {file, Parent(b)}, [=](Model* m) { m->paths[b] = m->paths[file]; }));
      } else if (how == 1) {
        const std::string b = Rand(2) && other != file ? other : dir + "/r" + std::to_string(serial_++);
        Add(NameOp("rename " + file + " " + b, [=](Filesystem* fs) {
          const uint64_t s = Resolve(fs, Parent(file)), d = Resolve(fs, Parent(b));
          if (s == 0 || d == 0) return Status::NotFound(b);
          return fs->Rename(s, Base(file), d, Base(b), 0);
        }, {file, Parent(b)}, [=](Model* m) {
          const int id = m->paths[file];
          if (m->paths.count(b) && m->paths[b] == id) return;  // two names of one file
          m->paths.erase(file);
          m->paths[b] = id;
        }));
      } else {
        Add(NameOp("unlink " + file, [=](Filesystem* fs) {
          const uint64_t d = Resolve(fs, Parent(file));
          if (d == 0) return Status::NotFound(file);
          return fs->Unlink(d, Base(file));
        }, {file}, [=](Model* m) { m->paths.erase(file); }));
      }
    } else if (k < 18) {  // fallocate, every mode
      const uint64_t size = NodeOf(&plan_, file)->data.size();
      const uint64_t off = Rand(2) ? Rand(max / kAu) * kAu : Rand(max);
      const uint64_t len = 1 + (Rand(2) ? Rand(max / 2 / kAu) * kAu : Rand(max / 2));
      switch (Rand(6)) {
        case 0: {
          const int mode = Rand(2) ? FALLOC_FL_KEEP_SIZE : 0;
          return Add(FallocOp(file, mode, off, len, [=](std::string* d) {
            if (!mode && d->size() < off + len) d->resize(off + len, '\0');
          }));
        }
        case 1:
          return Add(FallocOp(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len,
                              [=](std::string* d) {
            for (uint64_t i = off; i < std::min<uint64_t>(off + len, d->size()); ++i) (*d)[i] = 0;
          }));
        case 2: {
          const int mode = FALLOC_FL_ZERO_RANGE | (Rand(2) ? FALLOC_FL_KEEP_SIZE : 0);
          return Add(FallocOp(file, mode, off, len, [=](std::string* d) {
            for (uint64_t i = off; i < std::min<uint64_t>(off + len, d->size()); ++i) (*d)[i] = 0;
            if (!(mode & FALLOC_FL_KEEP_SIZE) && d->size() < off + len) d->resize(off + len, '\0');
          }));
        }
        case 3:
        case 4: {  // collapse: aligned, ending before EOF (the planned size; else EINVAL)
          if (size <= kAu + 1) return;
          const uint64_t at = Rand((size - 1 - kAu) / kAu + 1) * kAu;
          const uint64_t n = (1 + Rand((size - 1 - at) / kAu)) * kAu;
          Op op = FallocOp(file, FALLOC_FL_COLLAPSE_RANGE, at, n,
                           [=](std::string* d) { d->erase(at, n); });
          op.apply = Sized(op.apply, file, size);
          return Add(op);
        }
        default: {  // insert: aligned, before EOF
          if (size == 0 || size > max) return;
          const uint64_t at = Rand((size + kAu - 1) / kAu) * kAu;
          const uint64_t n = (1 + Rand(8)) * kAu;
          Op op = FallocOp(file, FALLOC_FL_INSERT_RANGE, at, n,
                           [=](std::string* d) { d->insert(at, n, '\0'); });
          op.apply = Sized(op.apply, file, size);
          return Add(op);
        }
      }
    } else if (k < 19) {  // truncate
      const uint64_t to = Rand(max);
      Add(NameOp("truncate " + file + " " + std::to_string(to), [=](Filesystem* fs) {
        const uint64_t ino = Resolve(fs, file);
        if (ino == 0) return Status::NotFound(file);
        SetAttrIn in;
        in.size = true;
        in.attr.st_size = static_cast<off_t>(to);
        return fs->SetAttr(ino, in).status();
      }, {file}, [=](Model* m) { NodeOf(m, file)->data.resize(to, '\0'); }));
    } else if (k < 20) {  // copy between two files
      const std::string q = Pick('f');
      if (q == file) return;
      Add(CopyOp(q, Rand(max), file, Rand(max), 1 + Rand(max / 2)));
    } else if (k == 20) {  // near full: the ballast gives back some AUs
      Add(BallastOp(-int64_t((1 + Rand(24)) * kAu)));
    } else {  // near full: the ballast takes some back (or ENOSPC)
      Add(BallastOp(int64_t((1 + Rand(24)) * kAu)));
    }
  }

  // Collapse and insert are EINVAL unless the range suits the size: the size planned may
  // not be the real one near full, so the outcome is taken from the dry run's model.
  std::function<bool(Model*, const Status&, uint64_t)> Sized(
      std::function<bool(Model*, const Status&, uint64_t)> apply, const std::string& p,
      uint64_t planned) {
    return [=](Model* m, const Status& st, uint64_t n) {
      Model::Node* node = NodeOf(m, p);
      if (node && node->data.size() != planned && st.code() == EINVAL) return true;
      return apply(m, st, n);
    };
  }

  std::mt19937_64 rng_;
  Mix mix_;
  Model plan_;
  std::vector<Op> ops_;
  uint64_t planned_n_ = 0;
  uint64_t serial_ = 0;
};

std::vector<uint64_t> Seeds(std::vector<uint64_t> base, uint64_t long_count) {
  if (!LongRun()) return base;
  std::vector<uint64_t> s;
  for (uint64_t i = 0; i < long_count; ++i) s.push_back(base[0] + i);
  return s;
}

TEST(Crash, EveryPersistPointOfAttributeWorkloads) {
  auto generate = [](uint64_t seed, int count, std::vector<Model>*) {
    return AttrGenerator(seed, Mix{64u << 10, false}).Generate(count);
  };
  uint64_t cuts = 0;
  for (uint64_t seed : Seeds({11, 12, 13}, 12)) {
    CrashReport r = RunWorkload("attrs", generate, seed, LongRun() ? 250 : 120, 16ull << 20, 1);
    cuts += r.cuts;
    EXPECT_EQ(r.failures, 0u) << r.first_failure;
  }
  EXPECT_GT(cuts, 1000u);
}

TEST(Crash, EveryPersistPointNearlyFull) {
  auto generate = [](uint64_t seed, int count, std::vector<Model>*) {
    return AttrGenerator(seed, Mix{48u << 10, true}).Generate(count);
  };
  uint64_t cuts = 0, nospc = 0;
  for (uint64_t seed : Seeds({21, 22, 23}, 12)) {
    CrashReport r = RunWorkload("nearfull", generate, seed, LongRun() ? 250 : 120, 16ull << 20, 1);
    cuts += r.cuts;
    nospc += r.nospc;
    EXPECT_EQ(r.failures, 0u) << r.first_failure;
  }
  // Fewer cuts than on a roomier image: with metadata copies, metadata takes AU pairs and
  // more of the operations meet ENOSPC.
  EXPECT_GT(cuts, 200u);
  EXPECT_GT(nospc, 20u);  // the workload really ran out of space
}

}  // namespace
}  // namespace udax::crash
