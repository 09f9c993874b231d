// crash_harness.cc -- see crash_harness.h.
#include "tests/crash/crash_harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>

#include "fs/core/core_test_util.h"
#include "fs/region/region_span.h"
#include "tests/crash/shadow_region.h"
#include "tests/fuzz/mem_region.h"

namespace udax::crash {
namespace {

// Does `actual` match `want`, allowing each file in `mixed` to have the size of
// `old_tree`'s or `want`'s version (with `any_size`, any size between) and each byte from
// either (old padded with zeros)?
bool Matches(const Tree& actual, const Tree& want, const Tree& old_tree,
             const std::set<std::string>& mixed, bool any_size) {
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
    auto old_it = old_tree.find(p);
    std::string o = old_it == old_tree.end() ? std::string() : old_it->second.second;
    if (any_size ? a.size() < std::min(n.size(), o.size()) || a.size() > std::max(n.size(), o.size())
                 : a.size() != n.size() && a.size() != o.size()) {
      return false;
    }
    o.resize(std::max(o.size(), n.size()), '\0');
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i] != n[i] && a[i] != o[i]) return false;
    }
  }
  return true;
}

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


Status CopyFile(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out << in.rdbuf();
  return in && out ? Status::Ok() : Status::IoError("cannot copy " + from);
}

// The dry run of a dynamic workload: runs `ops` on a copy of the image at `path` and
// builds models[i] from what operations 0..i-1 did; outcomes[i] = (errno, count).
bool DryRun(const std::string& path, const std::vector<Op>& ops, std::vector<Model>* models,
            std::vector<std::pair<int, uint64_t>>* outcomes, CrashReport* res) {
  // A copy of each device (a multi-device target is a list of them).
  std::vector<std::string> copies;
  std::string dry;
  Status st = Status::Ok();
  for (const std::string& p : SplitDeviceList(path)) {
    copies.push_back(p + ".dry");
    dry += (dry.empty() ? "" : ",") + copies.back();
    if (st.ok()) st = CopyFile(p, copies.back());
  }
  EXPECT_TRUE(st.ok()) << st.ToString();
  auto fs = Filesystem::Mount(dry, {});
  EXPECT_TRUE(fs.ok()) << fs.status().ToString();
  if (!st.ok() || !fs.ok()) return false;
  models->assign(1, Model{});
  bool ok = true;
  for (const Op& op : ops) {
    uint64_t n = 0;
    const Status r = op.run_n(fs->get(), &n);
    outcomes->emplace_back(r.code(), n);
    if (getenv("UDAX_CRASH_TRACE")) {
      fprintf(stderr, "dry %zu: %s -> %s n=%llu\n", outcomes->size() - 1, op.desc.c_str(),
              r.ToString().c_str(), static_cast<unsigned long long>(n));
    }
    if (r.code() == ENOSPC) ++res->nospc;
    Model m = models->back();
    if (!op.apply(&m, r, n)) {
      ADD_FAILURE() << "dry run: '" << op.desc << "' gave " << r.ToString() << " (n=" << n << ")";
      ok = false;
      break;
    }
    models->push_back(std::move(m));
  }
  Tree actual;
  st = ReadTree(fs->get(), kRootIno, "", &actual);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(!ok || actual == Flatten(models->back())) << "dry run: the model went wrong";
  (void)(*fs)->Unmount();
  fs->reset();
  for (const std::string& c : copies) unlink(c.c_str());
  return ok && st.ok();
}

}  // namespace

std::string FirstDifference(const Tree& a, const Tree& b) {
  auto describe = [](const std::pair<char, std::string>& v) {
    return std::string(1, v.first) + ":" + std::to_string(v.second.size()) + " bytes";
  };
  for (const auto& [p, v] : a) {
    auto it = b.find(p);
    if (it == b.end()) return p + " only in the image";
    if (it->second != v) {
      size_t i = 0;
      while (i < v.second.size() && i < it->second.second.size() && v.second[i] == it->second.second[i]) ++i;
      size_t j = i;
      while (j < v.second.size() && j < it->second.second.size() && v.second[j] != it->second.second[j]) ++j;
      return p + " differs (" + describe(v) + " vs " + describe(it->second) + ", first at byte " +
             std::to_string(i) + ", for " + std::to_string(j - i) + ")";
    }
  }
  for (const auto& [p, v] : b) {
    if (!a.count(p)) return p + " missing from the image";
  }
  return "none";
}

bool LongRun() {
  const char* v = getenv("UDAX_CRASH_LONG");
  return v && *v && *v != '0';
}

Tree Flatten(const Model& m) {
  Tree t;
  for (const auto& [p, id] : m.paths) {
    const auto& n = m.nodes.at(id);
    t[p] = {n.type, n.type == 'd' ? "" : n.data};
    for (const auto& [name, value] : n.xattrs) t[p + "//" + name] = {'x', value};
  }
  return t;
}

Status ReadTree(Filesystem* fs, uint64_t dir, const std::string& prefix, Tree* out) {
  UDAX_ASSIGN_OR_RETURN(auto entries, fs->ListDir(dir));
  for (const DirListEntry& e : entries) {
    if (e.name == "." || e.name == "..") continue;
    UDAX_ASSIGN_OR_RETURN(EntryOut entry, fs->Lookup(dir, e.name));
    const std::string path = prefix + "/" + e.name;
    const mode_t mode = entry.attr.st_mode;
    UDAX_ASSIGN_OR_RETURN(std::string names, fs->ListXattr(entry.ino));
    for (size_t at = 0; at < names.size();) {
      const std::string name = names.c_str() + at;
      at += name.size() + 1;
      UDAX_ASSIGN_OR_RETURN(std::string value, fs->GetXattr(entry.ino, name));
      (*out)[path + "//" + name] = {'x', value};
    }
    if (S_ISDIR(mode)) {
      (*out)[path] = {'d', ""};
      UDAX_RETURN_IF_ERROR(ReadTree(fs, entry.ino, path, out));
    } else if (S_ISLNK(mode)) {
      UDAX_ASSIGN_OR_RETURN(std::string target, fs->ReadLink(entry.ino));
      (*out)[path] = {'l', target};
    } else if (e.name.starts_with("ballast")) {
      (*out)[path] = {'b', std::to_string(entry.attr.st_size)};
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

std::string Pattern(std::mt19937_64& rng, uint64_t n) {
  const uint64_t r = rng();
  std::string s(n, '\0');
  for (uint64_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (r + i + i / 4093) % 26);
  return s;
}

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

Status WithFile(Filesystem* fs, const std::string& path,
                const std::function<Status(Inode*)>& body) {
  const uint64_t ino = Resolve(fs, path);
  if (ino == 0) return Status::NotFound(path);
  auto f = fs->Open(ino, O_RDWR);
  if (!f.ok()) return f.status();
  Status st = body(*f);
  fs->Release(*f);
  return st;
}

// `devices` images of `size` bytes each, formatted as one filesystem (mkfs's order).
class TestSpan {
 public:
  TestSpan(int devices, uint64_t size, uint64_t journal_size) {
    static int counter = 0;
    MkfsParams params;
    params.journal_size = journal_size;
    params.allow_tiny_journal = true;
    std::vector<uint64_t> lengths;
    for (int i = 0; i < devices; ++i) {
      paths_.push_back("/dev/shm/udax_crash_span_" + std::to_string(getpid()) + "_" +
                       std::to_string(counter) + "_" + std::to_string(i) + ".img");
      const int fd = open(paths_.back().c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
      EXPECT_GE(fd, 0);
      EXPECT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
      close(fd);
      params.device_sizes.push_back(size);
    }
    ++counter;
    auto sb = ComputeGeometry(params);
    EXPECT_TRUE(sb.ok()) << sb.status().ToString();
    if (!sb.ok()) return;
    for (uint32_t d = 0; d < sb->device_count; ++d) lengths.push_back(sb->devices[d].length);
    auto span = SpanRegion::Create(paths_, lengths, RegionOptions{});
    EXPECT_TRUE(span.ok()) << span.status().ToString();
    if (span.ok()) {
      EXPECT_TRUE(Filesystem::Format(span->get(), params).ok());
    }
  }
  ~TestSpan() {
    for (const std::string& p : paths_) unlink(p.c_str());
  }
  std::string List() const {
    std::string s;
    for (const std::string& p : paths_) s += (s.empty() ? "" : ",") + p;
    return s;
  }

 private:
  std::vector<std::string> paths_;
};

CrashReport RunWorkload(const std::string& name, const Generator& generate, uint64_t seed,
                        int nops, uint64_t image_size, int stride, uint64_t journal_size,
                        const SkipPersist& skip_persist, int devices) {
  const auto start = std::chrono::steady_clock::now();
  CrashReport res;
  std::vector<Model> models;
  std::vector<Op> ops = generate(seed, nops, &models);
  res.ops = ops.size();
  const bool dynamic = !ops.empty() && ops[0].apply;

  // One image, or (devices > 1) that many, each of image_size, as one filesystem.
  std::optional<TestImage> img;
  std::optional<TestSpan> span;
  if (devices > 1) {
    span.emplace(devices, image_size, journal_size);
  } else {
    img.emplace(image_size, kAuSize4K, journal_size);
  }
  const std::string target = devices > 1 ? span->List() : img->path();
  std::vector<std::pair<int, uint64_t>> outcomes;  // dynamic: what the dry run saw
  if (dynamic && !DryRun(target, ops, &models, &outcomes, &res)) return res;
  std::vector<Tree> trees;
  for (const Model& m : models) trees.push_back(Flatten(m));

  auto inner = Region::Open(target, RegionOptions{});
  EXPECT_TRUE(inner.ok());
  auto shadow_owned = std::make_unique<ShadowRegion>(std::move(inner).value());
  ShadowRegion* shadow = shadow_owned.get();
  // The crash image lives in memory and is kept equal to the durable bytes incrementally;
  // each cut adds its dirty lines, and undoes them and the check mount's writes afterwards.
  auto image = std::make_shared<MemImage>(shadow->size());
  shadow->StartCrashImage(image.get());
  auto fs = Filesystem::MountRegion(std::move(shadow_owned), {});
  EXPECT_TRUE(fs.ok()) << fs.status().ToString();
  if (!fs.ok()) return res;
  if (skip_persist) {
    const DiskSuperblock sb = (*fs)->superblock();
    shadow->set_skip_persist([sb, skip_persist](uint64_t off, uint64_t n) {
      return skip_persist(sb, off, n);
    });
  }

  std::mt19937_64 rng(seed * 7 + 1);
  int in_flight = 0;  // operations acknowledged so far
  auto check = [&](uint64_t point) {
    if (point % stride != 0) return;
    ++res.cuts;
    const double keep = (point / stride) % 3 == 0 ? 0.0 : ((point / stride) % 3 == 1 ? 0.5 : 1.0);
    std::vector<uint64_t> kept;
    shadow->SyncCrashImage(image.get(), &rng, keep, &kept);
    std::string why;
    // The cut image is one buffer; it keeps the devices' places in it.
    auto cut = std::make_unique<MemRegion>(image);
    std::vector<uint64_t> starts;
    for (size_t d = 0; d < shadow->device_count(); ++d) starts.push_back(shadow->device_start(d));
    cut->set_device_starts(starts);
    if (auto cfs = Filesystem::MountRegion(std::move(cut), {}); !cfs.ok()) {
      why = "mount failed: " + cfs.status().ToString();
    } else {
      auto maps = (*cfs)->checker().CrossCheckMaps();
      auto names = (*cfs)->checker().CheckNamespace();
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
                                         op->written_paths, op->grows_in_steps);
        const bool between = op && Between(actual, trees[in_flight], *op);
        if (!before && !after && !between) {
          why = "tree matches neither before nor after '" + (op ? op->desc : "end") +
                "' (against before: " + FirstDifference(actual, trees[in_flight]) +
                (op ? "; after: " + FirstDifference(actual, trees[in_flight + 1]) : "") + ")";
        }
        if (!before && !after && between) ++res.intermediate;
      }
    }
    image->Undo();  // back to the durable bytes
    if (!why.empty()) {
      if (res.failures == 0 && getenv("UDAX_CRASH_KEEP")) {
        // The image before replay: the durable bytes and the lines this cut kept.
        const std::string keep_path = std::string(getenv("UDAX_CRASH_KEEP")) + "." + name +
                                      "." + std::to_string(seed) + "." + std::to_string(point);
        std::vector<uint8_t> bytes(image->data(), image->data() + image->size());
        shadow->OverlayLines(kept, bytes.data());
        const int kfd = open(keep_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (kfd >= 0) {
          (void)!pwrite(kfd, bytes.data(), bytes.size(), 0);
          close(kfd);
        }
      }
      ++res.failures;
      if (res.first_failure.empty()) {
        res.first_failure = name + " seed " + std::to_string(seed) + " point " +
                            std::to_string(point) + " during op " + std::to_string(in_flight) +
                            " (" + (in_flight < static_cast<int>(ops.size()) ? ops[in_flight].desc : std::string("end")) + "): " + why;
      }
    }
  };
  shadow->set_on_point(check);
  for (; in_flight < static_cast<int>(ops.size()); ++in_flight) {
    const Op& op = ops[in_flight];
    if (dynamic) {
      uint64_t n = 0;
      const Status st = op.run_n(fs->get(), &n);
      const std::pair<int, uint64_t> got(st.code(), n);
      EXPECT_EQ(got, outcomes[in_flight]) << op.desc << ": not what the dry run did: "
                                          << st.ToString();
      if (got != outcomes[in_flight]) break;
    } else {
      const Status st = op.run(fs->get());
      EXPECT_TRUE(st.ok()) << op.desc << ": " << st.ToString();
      if (!st.ok()) break;
    }
  }
  shadow->set_on_point(nullptr);
  res.points = shadow->points();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char line[512];
  snprintf(line, sizeof(line),
           "[ crash ] %s seed %llu: %llu ops, %llu persist points, %llu cuts checked "
           "(%llu intermediate), %llu ENOSPC, %llu failures, %.1f s\n",
           name.c_str(), static_cast<unsigned long long>(seed),
           static_cast<unsigned long long>(res.ops), static_cast<unsigned long long>(res.points),
           static_cast<unsigned long long>(res.cuts),
           static_cast<unsigned long long>(res.intermediate),
           static_cast<unsigned long long>(res.nospc),
           static_cast<unsigned long long>(res.failures), res.seconds);
  fputs(line, stdout);
  if (const char* report = getenv("UDAX_CRASH_REPORT"); report && *report) {
    if (FILE* f = fopen(report, "a")) {
      fputs(line, f);
      fclose(f);
    }
  }
  return res;
}

}  // namespace udax::crash
