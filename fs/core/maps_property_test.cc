// maps_property_test.cc -- the property test of issue 4 over every path that allocates,
// frees or moves blocks: random operations against a model of names, bytes and extended
// attributes. After every step the reverse map must equal the map derived from the
// forward maps (CrossCheckMaps), and what the step touched must read back as the model
// says; every few steps the whole tree, every open orphan and the namespace are checked.
//
// The operations: create (some kept open), mkdir, rmdir, short and long symlinks, hard
// links, unlink (of open files too: orphans) and the release that frees them, rename (to
// a new name, over a file), writes (sparse, large, short at ENOSPC), truncate, fallocate
// in every mode (default, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE +/- KEEP_SIZE, COLLAPSE_RANGE,
// INSERT_RANGE), copy_file_range (between files and within one), attributes of up to
// 64 KiB set, grown, shrunk and removed (on files, directories and symlinks, which moves
// an inline target out), default ACLs inherited on create, bursts of names that split
// directory buckets and free overflow blocks, a filler file that runs the filesystem
// into ENOSPC (so every operation also runs nearly full), and remounts (which free the
// orphans left open).
//
// Default: three seeds of 500 steps (about 2 s; 6 s under ASan). UDAX_PROPERTY_STEPS=N
// and UDAX_PROPERTY_SEEDS=K run longer (3000 and 4: about 30 s).
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/xattr.h>

#include <map>
#include <random>
#include <set>

#include "fs/core/core_test_util.h"
#include "fs/format/posix_acl.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};
constexpr uint64_t kAu = 4096;

uint64_t EnvOr(const char* name, uint64_t def) {
  const char* v = getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : def;
}

struct Node {
  char type = 'f';  // f, d, l
  uint64_t ino = 0;
  std::string data;  // file bytes, symlink target
  std::map<std::string, std::string> xattrs;
  std::vector<Inode*> handles;
  int names = 0;
};

class PropertyRun {
 public:
  PropertyRun(uint64_t seed, uint64_t steps) : rng_(seed), steps_(steps), seed_(seed) {}

  void Run() {
    fs_ = img_.Mount();
    ASSERT_TRUE(fs_);
    nodes_[0] = Node{'d', kRootIno, "", {}, {}, 1};
    for (step_ = 0; step_ < steps_; ++step_) {
      touched_.clear();
      Step();
      if (::testing::Test::HasFatalFailure()) return;
      auto report = Must(fs_->checker().CrossCheckMaps());
      ASSERT_EQ(report.problems, 0u) << Where() << ": "
                                     << (report.messages.empty() ? "" : report.messages[0]);
      for (int id : touched_) {
        if (nodes_.count(id)) VerifyNode(id);
      }
      if (step_ % 40 == 39) VerifyAll();
      if (::testing::Test::HasFailure()) return;
    }
    VerifyAll();
    Remount();
    VerifyAll();
    ReleaseAll();
    auto report = Must(fs_->checker().CrossCheckMaps());
    EXPECT_EQ(report.problems, 0u) << "at the end";
    ASSERT_OK(fs_->Unmount());
    printf("[ seed %llu ] %llu steps: %s\n", static_cast<unsigned long long>(seed_),
           static_cast<unsigned long long>(steps_), Counts().c_str());
  }

 private:
  std::string Where() const {
    return "seed " + std::to_string(seed_) + " step " + std::to_string(step_) + " (" + last_ + ")";
  }
  std::string Counts() const {
    std::string s;
    for (const auto& [op, n] : counts_) s += op + "=" + std::to_string(n) + " ";
    return s;
  }
  void Did(const std::string& op, const std::string& detail) {
    ++counts_[op];
    last_ = op + " " + detail;
  }
  uint64_t Rand(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  uint64_t FreeAus() { return fs_->StatFs().f_bavail; }
  // Nearly full: few AUs, few inodes, or (with metadata copies) few free pairs kept back
  // for metadata, which file data can leave scarce before the AUs run out.
  bool Low() {
    const struct statvfs s = fs_->StatFs();
    return s.f_bavail < 256 || s.f_ffree < 8 || fs_->PooledMetaPairs() < 16;
  }

  // --- picking ---
  std::vector<int> Of(char type, bool orphans_too = false) {
    std::vector<int> v;
    for (const auto& [id, n] : nodes_) {
      if (n.type == type && (n.names > 0 || (orphans_too && !n.handles.empty()))) v.push_back(id);
    }
    return v;
  }
  int PickNode(char type, bool orphans_too = false) {
    auto v = Of(type, orphans_too);
    if (type == 'f' && filler_) std::erase(v, filler_);
    if (type == 'f' && Rand(2)) {  // bursts leave many empty files: prefer the others
      std::vector<int> full;
      for (int id : v) {
        if (!nodes_[id].data.empty()) full.push_back(id);
      }
      if (!full.empty()) v = full;
    }
    return v.empty() ? -1 : v[Rand(v.size())];
  }
  // A (dir, name) pair naming a node of `type` (0: any but a directory).
  std::optional<std::pair<int, std::string>> PickName(char type) {
    std::vector<std::pair<int, std::string>> v;
    for (const auto& [key, id] : names_) {
      const char t = nodes_[id].type;
      if (id != filler_ && (type ? t == type : t != 'd')) v.push_back(key);
    }
    if (v.empty()) return std::nullopt;
    return v[Rand(v.size())];
  }
  std::string NewName() { return "n" + std::to_string(serial_++); }

  void Forget(uint64_t ino) { fs_->Forget(ino, 1); }  // the kernel drops its reference

  // A new node named (dir, name) for what a creation returned.
  int Add(int dir, const std::string& name, char type, uint64_t ino) {
    const int id = next_id_++;
    Node& n = nodes_[id];
    n.type = type;
    n.ino = ino;
    n.names = 1;
    names_[{dir, name}] = id;
    if (type != 'l') Inherit(dir, &n);
    touched_.insert(id);
    touched_.insert(dir);
    return id;
  }
  // posix_acl_create: what a new inode under `dir` starts with.
  void Inherit(int dir, Node* n) {
    auto it = nodes_[dir].xattrs.find(kAclDefaultXattr);
    if (it == nodes_[dir].xattrs.end()) return;
    Acl acl = Must(AclDecode(it->second));
    uint32_t mode = (n->type == 'd' ? S_IFDIR | 0755 : S_IFREG | 0644);
    if (n->type == 'd') n->xattrs[kAclDefaultXattr] = it->second;
    if (AclCreateMasq(&acl, &mode)) n->xattrs[kAclAccessXattr] = AclEncode(acl);
  }
  // An operation may fail with ENOSPC only when the filesystem is nearly full (`any`: or
  // whenever, for one that asks for more than may be free), and with nothing else.
  bool NoSpaceOk(const Status& st, bool any = false) {
    if (st.code() != ENOSPC) {
      ADD_FAILURE() << Where() << ": " << st.ToString();
      return false;
    }
    if (!any && !Low()) ADD_FAILURE() << Where() << ": ENOSPC with " << FreeAus() << " AUs free, pool " << fs_->PooledMetaPairs();
    ++counts_["enospc"];
    return true;
  }
  void NoSpace(const Status& st) { NoSpaceOk(st); }

  // Drops one name; the node goes when it has no name and no handle (an orphan while open).
  void DropName(int dir, const std::string& name) {
    const int id = names_.at({dir, name});
    names_.erase({dir, name});
    Node& n = nodes_[id];
    n.names--;
    touched_.insert(dir);
    if (n.names == 0 && n.handles.empty()) {
      nodes_.erase(id);
      if (id == filler_) filler_ = 0;
    } else {
      touched_.insert(id);
    }
  }

  Inode* Handle(int id, bool* opened) {
    Node& n = nodes_[id];
    *opened = n.handles.empty();
    if (!*opened) return n.handles[Rand(n.handles.size())];
    return Must(fs_->Open(n.ino, O_RDWR));
  }
  void Done(int id, Inode* f, bool opened) {
    if (opened) fs_->Release(f);
    (void)id;
  }

  // --- the operations ---
  void Step() {
    const uint64_t r = Rand(100);
    if (r < 7) return Create();
    if (r < 10) return MkdirOp();
    if (r < 12) return RmdirOp();
    if (r < 15) return SymlinkOp();
    if (r < 18) return LinkOp();
    if (r < 23) return UnlinkOp();
    if (r < 28) return RenameOp();
    if (r < 40) return WriteOp();
    if (r < 44) return TruncateOp();
    if (r < 60) return FallocateOp();
    if (r < 66) return CopyOp();
    if (r < 75) return SetXattrOp();
    if (r < 78) return RemoveXattrOp();
    if (r < 83) return OpenOp();
    if (r < 87) return ReleaseOp();
    if (r < 90) return Burst();
    if (r < 92) return BurstRemove();
    if (r < 95) return FillOrDrain();
    if (r < 97) return AclDir();
    if (r < 99) return UnlinkOp(true);
    Remount();
  }

  void Create() {
    auto dirs = Of('d');
    const int dir = dirs[Rand(dirs.size())];
    const std::string name = NewName();
    if (Rand(3) == 0) {  // create(2): an open handle comes with it
      auto r = fs_->Create(nodes_[dir].ino, name, 0644, O_RDWR, kRoot);
      Did("create-open", name);
      if (!r.ok()) return NoSpace(r.status());
      Forget(r->first.ino);
      nodes_[Add(dir, name, 'f', r->first.ino)].handles.push_back(r->second);
    } else {
      auto r = fs_->Mknod(nodes_[dir].ino, name, S_IFREG | 0644, 0, kRoot);
      Did("create", name);
      if (!r.ok()) return NoSpace(r.status());
      Forget(r->ino);
      Add(dir, name, 'f', r->ino);
    }
  }

  void MkdirOp() {
    auto dirs = Of('d');
    if (dirs.size() > 12) return;
    const int dir = dirs[Rand(dirs.size())];
    const std::string name = NewName();
    auto r = fs_->Mkdir(nodes_[dir].ino, name, 0755, kRoot);
    Did("mkdir", name);
    if (!r.ok()) return NoSpace(r.status());
    Forget(r->ino);
    Add(dir, name, 'd', r->ino);
  }

  void RmdirOp() {
    for (const auto& [key, id] : names_) {
      if (nodes_[id].type != 'd') continue;
      bool empty = true;
      for (const auto& [k2, id2] : names_) empty = empty && k2.first != id;
      if (!empty) continue;
      const auto [dir, name] = key;
      ASSERT_OK(fs_->Rmdir(nodes_[dir].ino, name));
      Did("rmdir", name);
      DropName(dir, name);
      return;
    }
  }

  void SymlinkOp() {
    auto dirs = Of('d');
    const int dir = dirs[Rand(dirs.size())];
    const std::string name = NewName();
    // Short targets stay inline in the inode; long ones take an AU.
    std::string target(Rand(2) ? 1 + Rand(40) : 200 + Rand(3800), 'a' + Rand(26));
    auto r = fs_->Symlink(nodes_[dir].ino, name, target, kRoot);
    Did(target.size() > 40 ? "symlink-long" : "symlink-short", name);
    if (!r.ok()) return NoSpace(r.status());
    Forget(r->ino);
    nodes_[Add(dir, name, 'l', r->ino)].data = target;
  }

  void LinkOp() {
    const int id = PickNode('f');
    if (id < 0) return;
    auto dirs = Of('d');
    const int dir = dirs[Rand(dirs.size())];
    const std::string name = NewName();
    auto r = fs_->Link(nodes_[id].ino, nodes_[dir].ino, name);
    Did("link", name);
    if (!r.ok()) return NoSpace(r.status());
    Forget(r->ino);
    names_[{dir, name}] = id;
    nodes_[id].names++;
    touched_.insert(id);
    touched_.insert(dir);
  }

  // `open_only`: the last name of an open file (it becomes an orphan).
  void UnlinkOp(bool open_only = false) {
    auto key = PickName(0);
    if (open_only) {
      key.reset();
      for (const auto& [k, id] : names_) {
        if (nodes_[id].names == 1 && !nodes_[id].handles.empty() && id != filler_) key = k;
      }
    }
    if (!key) return;
    const bool open = !nodes_[names_[*key]].handles.empty();
    ASSERT_OK(fs_->Unlink(nodes_[key->first].ino, key->second));
    Did(open ? "unlink-open" : "unlink", key->second);
    DropName(key->first, key->second);
  }

  void RenameOp() {
    auto src = PickName(0);
    if (!src) return;
    std::optional<std::pair<int, std::string>> dst;
    if (Rand(2)) dst = PickName(0);  // over another file (or symlink)
    if (!dst || dst == src) {
      auto dirs = Of('d');
      dst = std::make_pair(dirs[Rand(dirs.size())], NewName());
    }
    const int id = names_[*src];
    const bool over = names_.count(*dst) != 0;
    if (over && names_[*dst] == id) return;  // two names of one file: POSIX does nothing
    Status st = fs_->Rename(nodes_[src->first].ino, src->second, nodes_[dst->first].ino,
                            dst->second, 0);
    Did(over ? "rename-over" : "rename", src->second + " -> " + dst->second);
    if (!st.ok()) return NoSpace(st);
    if (over) DropName(dst->first, dst->second);
    names_.erase(*src);
    names_[*dst] = id;
    touched_.insert(id);
    touched_.insert(src->first);
    touched_.insert(dst->first);
  }

  // Random bytes that differ at every position, so that a misplaced AU shows.
  std::string Bytes(uint64_t n) {
    const uint64_t r = rng_();
    std::string s(n, '\0');
    for (uint64_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (r + i + i / 4093) % 26);
    return s;
  }
  uint64_t Offset(uint64_t limit) {  // aligned half of the time
    const uint64_t a = Rand(limit / kAu + 1) * kAu;
    return Rand(2) ? a : a + Rand(kAu);
  }

  void WriteOp() {
    const int id = PickNode('f', true);
    if (id < 0) return;
    std::string& data = nodes_[id].data;
    const uint64_t off = Rand(3) ? Offset(data.size() + 64 * 1024) : data.size();
    const uint64_t len = 1 + (Rand(6) == 0 ? Rand(600 * 1024) : Rand(24 * 1024));
    const std::string bytes = Bytes(len);
    bool opened;
    Inode* f = Handle(id, &opened);
    auto n = fs_->Write(f, off, bytes.data(), bytes.size());
    Done(id, f, opened);
    Did("write", std::to_string(off) + "+" + std::to_string(len));
    touched_.insert(id);
    if (!n.ok()) return NoSpace(n.status());
    if (*n < len) {
      ++counts_["write-short"];
      EXPECT_TRUE(Low()) << Where() << ": short write with " << FreeAus() << " AUs free";
    }
    if (data.size() < off + *n) data.resize(off + *n, '\0');
    data.replace(off, *n, bytes.substr(0, *n));
  }

  void TruncateOp() {
    const int id = PickNode('f', true);
    if (id < 0) return;
    std::string& data = nodes_[id].data;
    const uint64_t size = Rand(2) ? Rand(data.size() + 1) : Offset(data.size() + 200 * 1024);
    SetAttrIn in;
    in.size = true;
    in.attr.st_size = static_cast<off_t>(size);
    auto r = fs_->SetAttr(nodes_[id].ino, in);
    Did("truncate", std::to_string(size));
    ASSERT_TRUE(r.ok()) << Where() << r.status().ToString();
    data.resize(size, '\0');
    touched_.insert(id);
  }

  void FallocateOp() {
    const int id = PickNode('f', true);
    if (id < 0) return;
    std::string& data = nodes_[id].data;
    const uint64_t size = data.size();
    std::string want = data;
    int mode = 0;
    uint64_t off = Offset(size + 32 * 1024), len = 1 + Offset(std::max<uint64_t>(size, 64 * 1024));
    std::string what;
    switch (Rand(7)) {
      case 0:
      case 1:
        mode = Rand(2) ? 0 : FALLOC_FL_KEEP_SIZE;
        what = mode ? "falloc-keep" : "falloc";
        if (!mode && want.size() < off + len) want.resize(off + len, '\0');
        break;
      case 2:
        mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
        what = "punch";
        for (uint64_t i = off; i < std::min(off + len, size); ++i) want[i] = '\0';
        break;
      case 3:
        mode = FALLOC_FL_ZERO_RANGE | (Rand(2) ? FALLOC_FL_KEEP_SIZE : 0);
        what = mode & FALLOC_FL_KEEP_SIZE ? "zero-keep" : "zero";
        for (uint64_t i = off; i < std::min(off + len, size); ++i) want[i] = '\0';
        if (!(mode & FALLOC_FL_KEEP_SIZE) && want.size() < off + len) want.resize(off + len, '\0');
        break;
      case 4:
      case 5: {  // collapse an aligned range ending before EOF
        if (size <= kAu + 1) return;
        off = Rand((size - 1 - kAu) / kAu + 1) * kAu;
        len = (1 + Rand((size - 1 - off) / kAu)) * kAu;
        mode = FALLOC_FL_COLLAPSE_RANGE;
        what = "collapse";
        want.erase(off, len);
        break;
      }
      default: {  // insert a hole at an aligned offset before EOF
        if (size == 0 || size > (8u << 20)) return;
        off = Rand((size + kAu - 1) / kAu) * kAu;
        len = (1 + Rand(64)) * kAu;
        mode = FALLOC_FL_INSERT_RANGE;
        what = "insert";
        want.insert(off, len, '\0');
      }
    }
    bool opened;
    Inode* f = Handle(id, &opened);
    Status st = fs_->Fallocate(f, mode, off, len);
    Done(id, f, opened);
    Did(what, std::to_string(off) + "+" + std::to_string(len));
    touched_.insert(id);
    if (!st.ok()) {
      // Allocations may ask for more than is free; the others only fail nearly full.
      const bool allocates = !(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE |
                                       FALLOC_FL_INSERT_RANGE));
      ASSERT_TRUE(NoSpaceOk(st, allocates));
      ++counts_[what + "-enospc"];
      // Nothing changed, or (allocations) part of the holes preallocated: zeros either way.
      return;
    }
    data = want;
  }

  void CopyOp() {
    const int src = PickNode('f', true), dst = Rand(4) ? PickNode('f', true) : src;
    if (src < 0 || dst < 0) return;
    const std::string in = nodes_[src].data;
    std::string& out = nodes_[dst].data;
    const uint64_t off_in = Offset(in.size() + kAu);
    uint64_t off_out = Offset(out.size() + 32 * 1024);
    const uint64_t len = 1 + Rand(Rand(4) ? 40 * 1024 : 400 * 1024);
    if (src == dst && off_out < off_in + len && off_in < off_out + len) off_out = off_in + len + Rand(kAu);
    const uint64_t expect = off_in >= in.size() ? 0 : std::min<uint64_t>(len, in.size() - off_in);
    bool o1 = false, o2 = false;
    Inode* fi = Handle(src, &o1);
    Inode* fo = src == dst ? fi : Handle(dst, &o2);
    auto n = fs_->CopyFileRange(fi, off_in, fo, off_out, len);
    if (src != dst) Done(dst, fo, o2);
    Done(src, fi, o1);
    Did(src == dst ? "copy-within" : "copy", std::to_string(off_in) + "->" + std::to_string(off_out) + "+" + std::to_string(len));
    touched_.insert(dst);
    if (!n.ok()) return NoSpace(n.status());
    EXPECT_LE(*n, expect) << Where();
    if (*n < expect) {
      EXPECT_TRUE(Low()) << Where() << ": short copy";
    }
    if (*n == 0) return;
    if (out.size() < off_out + *n) out.resize(off_out + *n, '\0');
    out.replace(off_out, *n, in.substr(off_in, *n));
  }

  void SetXattrOp() {
    const char type = "ffffddl"[Rand(7)];
    const int id = PickNode(type, type == 'f');
    if (id < 0) return;
    Node& n = nodes_[id];
    const std::string name = std::string(type == 'l' ? "trusted." : "user.") + "a" + std::to_string(Rand(5));
    // Small values share one AU; large ones make the blob grow into more AUs (and shrink).
    const uint64_t r = Rand(10);
    const uint64_t size = r < 5 ? Rand(200) : r < 8 ? Rand(9000) : 20000 + Rand(kMaxXattrValue - 20000);
    const std::string value = Bytes(size);
    const int flags = Rand(4) == 0 ? XATTR_CREATE : Rand(4) == 0 ? XATTR_REPLACE : 0;
    const bool exists = n.xattrs.count(name) != 0;
    Status st = fs_->SetXattr(n.ino, name, value, flags, kRoot);
    Did("setxattr", name + " " + std::to_string(size));
    touched_.insert(id);
    if ((flags & XATTR_CREATE) && exists) {
      EXPECT_EQ(st.code(), EEXIST) << Where();
      return;
    }
    if ((flags & XATTR_REPLACE) && !exists) {
      EXPECT_EQ(st.code(), ENODATA) << Where();
      return;
    }
    if (st.code() == ENOSPC) {  // the blob is full, or the filesystem nearly
      ++counts_["setxattr-enospc"];
      return;
    }
    ASSERT_OK(st);
    n.xattrs[name] = value;
  }

  void RemoveXattrOp() {
    std::vector<std::pair<int, std::string>> v;
    for (const auto& [id, n] : nodes_) {
      for (const auto& [name, value] : n.xattrs) {
        if (name.starts_with("user.") || name.starts_with("trusted.")) v.emplace_back(id, name);
      }
    }
    if (v.empty()) return;
    const auto [id, name] = v[Rand(v.size())];
    ASSERT_OK(fs_->RemoveXattr(nodes_[id].ino, name));
    Did("removexattr", name);
    nodes_[id].xattrs.erase(name);
    touched_.insert(id);
  }

  void OpenOp() {
    const int id = PickNode('f');
    if (id < 0) return;
    nodes_[id].handles.push_back(Must(fs_->Open(nodes_[id].ino, O_RDWR)));
    Did("open", std::to_string(nodes_[id].ino));
  }

  void ReleaseOp() {
    std::vector<int> v;
    for (const auto& [id, n] : nodes_) {
      if (!n.handles.empty()) v.push_back(id);
    }
    if (v.empty()) return;
    // Orphans first, half of the time: their release frees every block they own.
    std::vector<int> orphans;
    for (int id : v) {
      if (nodes_[id].names == 0) orphans.push_back(id);
    }
    const int id = !orphans.empty() && Rand(2) ? orphans[Rand(orphans.size())] : v[Rand(v.size())];
    Node& n = nodes_[id];
    fs_->Release(n.handles.back());
    n.handles.pop_back();
    Did(n.names == 0 && n.handles.empty() ? "release-orphan" : "release", std::to_string(n.ino));
    if (n.names == 0 && n.handles.empty()) {
      nodes_.erase(id);
    } else {
      touched_.insert(id);
    }
  }

  // Directory growth: many names in one directory (bucket splits, overflow blocks).
  void Burst() {
    auto dirs = Of('d');
    const int dir = dirs[Rand(dirs.size())];
    const uint64_t count = 30 + Rand(150);
    Did("burst", std::to_string(count));
    for (uint64_t i = 0; i < count; ++i) {
      const std::string name = "b" + std::to_string(serial_++) + std::string(Rand(60), 'x');
      auto r = fs_->Mknod(nodes_[dir].ino, name, S_IFREG | 0644, 0, kRoot);
      if (!r.ok()) return NoSpace(r.status());
      Forget(r->ino);
      Add(dir, name, 'f', r->ino);
    }
  }

  void BurstRemove() {
    auto dirs = Of('d');
    const int dir = dirs[Rand(dirs.size())];
    std::vector<std::string> v;
    for (const auto& [key, id] : names_) {
      if (key.first == dir && nodes_[id].type != 'd' && id != filler_) v.push_back(key.second);
    }
    Did("burst-remove", std::to_string(v.size()));
    for (const std::string& name : v) {
      if (Rand(4) == 0) continue;
      ASSERT_OK(fs_->Unlink(nodes_[dir].ino, name));
      DropName(dir, name);
    }
  }

  // Near full: a filler file written until ENOSPC (the last writes short), dropped later.
  void FillOrDrain() {
    if (filler_) {
      auto it = std::find_if(names_.begin(), names_.end(),
                             [&](const auto& kv) { return kv.second == filler_; });
      ASSERT_TRUE(it != names_.end());
      const auto key = it->first;
      ASSERT_OK(fs_->Unlink(nodes_[key.first].ino, key.second));
      Did("drain", key.second);
      DropName(key.first, key.second);
      return;
    }
    const std::string name = "filler" + std::to_string(serial_++);
    auto r = fs_->Mknod(kRootIno, name, S_IFREG | 0644, 0, kRoot);
    Did("fill", name);
    if (!r.ok()) return NoSpace(r.status());
    Forget(r->ino);
    filler_ = Add(0, name, 'f', r->ino);
    std::string& data = nodes_[filler_].data;
    Inode* f = Must(fs_->Open(r->ino, O_RDWR));
    // Leave a few dozen AUs so that the operations that follow run at the edge.
    const uint64_t keep = 8 + Rand(64);
    while (FreeAus() > keep) {
      const uint64_t len = std::min<uint64_t>((FreeAus() - keep) * kAu, 1u << 20);
      const std::string bytes = Bytes(len);
      auto n = fs_->Write(f, data.size(), bytes.data(), len);
      if (!n.ok()) {
        EXPECT_EQ(n.status().code(), ENOSPC) << Where();
        break;
      }
      data += bytes.substr(0, *n);
      if (*n < len) break;
    }
    fs_->Release(f);
  }

  // A directory with a default ACL: what is created in it inherits attributes.
  void AclDir() {
    const int dir = PickNode('d');
    if (dir < 0) return;
    const std::string acl = AclEncode(Acl{{kAclUserObj, 7, 0},
                                          {kAclUser, 5, 1000 + static_cast<uint32_t>(Rand(50))},
                                          {kAclGroupObj, 5, 0},
                                          {kAclMask, 7, 0},
                                          {kAclOther, 4, 0}});
    Status st = fs_->SetXattr(nodes_[dir].ino, kAclDefaultXattr, acl, 0, kRoot);
    Did("acl-default", std::to_string(nodes_[dir].ino));
    if (st.code() == ENOSPC) return;
    ASSERT_OK(st);
    nodes_[dir].xattrs[kAclDefaultXattr] = acl;
    touched_.insert(dir);
  }

  // Unmount with files still open; the mount frees the orphans they leave.
  void Remount() {
    Did("remount", "");
    ASSERT_OK(fs_->Unmount());
    fs_.reset();
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      it->second.handles.clear();
      it = it->second.names == 0 ? nodes_.erase(it) : std::next(it);
    }
    fs_ = img_.Mount();
    ASSERT_TRUE(fs_);
  }

  void ReleaseAll() {
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      for (Inode* h : it->second.handles) fs_->Release(h);
      it->second.handles.clear();
      it = it->second.names == 0 ? nodes_.erase(it) : std::next(it);
    }
  }

  // --- checks ---
  void VerifyNode(int id) {
    const Node& n = nodes_[id];
    auto st = fs_->GetAttr(n.ino);
    ASSERT_TRUE(st.ok()) << Where() << ": ino " << n.ino << ": " << st.status().ToString();
    if (n.type != 'd') {
      EXPECT_EQ(st->st_nlink, static_cast<nlink_t>(n.names)) << Where();
    }
    if (n.type == 'f') {
      EXPECT_EQ(static_cast<uint64_t>(st->st_size), n.data.size()) << Where() << " ino " << n.ino;
      bool opened;
      Inode* f = n.handles.empty() ? Must(fs_->Open(n.ino, O_RDONLY)) : n.handles[0];
      opened = n.handles.empty();
      std::string got(n.data.size() + 100, '\x7f');
      auto r = fs_->Read(f, 0, got.size(), got.data());
      if (opened) fs_->Release(f);
      ASSERT_TRUE(r.ok()) << Where() << r.status().ToString();
      got.resize(*r);
      if (got != n.data) {
        size_t i = 0;
        while (i < std::min(got.size(), n.data.size()) && got[i] == n.data[i]) ++i;
        ADD_FAILURE() << Where() << ": ino " << n.ino << " reads " << got.size()
                      << " bytes, model " << n.data.size() << ", first difference at " << i;
      }
    } else if (n.type == 'l') {
      EXPECT_EQ(Must(fs_->ReadLink(n.ino)), n.data) << Where();
    } else {
      std::set<std::pair<std::string, uint64_t>> want, got;
      for (const auto& [key, child] : names_) {
        if (key.first == id) want.emplace(key.second, nodes_[child].ino);
      }
      for (const DirListEntry& e : Must(fs_->ListDir(n.ino))) {
        if (e.name != "." && e.name != "..") got.emplace(e.name, e.ino);
      }
      EXPECT_TRUE(want == got) << Where() << ": directory " << n.ino << " lists " << got.size()
                               << " names, model " << want.size();
    }
    std::string names;
    for (const auto& [name, value] : n.xattrs) {
      names += name + '\0';
      auto v = fs_->GetXattr(n.ino, name);
      EXPECT_TRUE(v.ok() && *v == value) << Where() << ": ino " << n.ino << " attribute " << name;
    }
    EXPECT_EQ(Must(fs_->ListXattr(n.ino)), names) << Where() << ": ino " << n.ino;
  }

  void VerifyAll() {
    for (const auto& [id, n] : nodes_) VerifyNode(id);
    auto names = Must(fs_->checker().CheckNamespace());
    EXPECT_EQ(names.problems, 0u) << Where() << ": "
                                  << (names.messages.empty() ? "" : names.messages[0]);
  }

  TestImage img_{24ull << 20};
  std::unique_ptr<Filesystem> fs_;
  std::mt19937_64 rng_;
  uint64_t steps_, step_ = 0, seed_;
  std::map<int, Node> nodes_;  // 0 is the root
  std::map<std::pair<int, std::string>, int> names_;
  std::set<int> touched_;
  std::map<std::string, uint64_t> counts_;
  std::string last_;
  int next_id_ = 1;
  int filler_ = 0;
  uint64_t serial_ = 0;
};

TEST(MapsProperty, EveryAllocatingPathKeepsTheMapsEqualAndTheDataRight) {
  const uint64_t steps = EnvOr("UDAX_PROPERTY_STEPS", 500);
  const uint64_t seeds = EnvOr("UDAX_PROPERTY_SEEDS", 3);
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    PropertyRun run(20261124 + seed, steps);
    run.Run();
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace udax
