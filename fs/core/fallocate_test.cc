// fallocate_test.cc -- fallocate modes, SEEK_DATA/SEEK_HOLE and copy_file_range against a
// reference model (bytes and allocated AUs), with the maps cross-checked after every step.
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "fs/core/core_test_util.h"
#include "fs/format/crc32c.h"
#include "fs/format/layout.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};
constexpr int kKeep = FALLOC_FL_KEEP_SIZE;
constexpr int kPunch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
constexpr int kZero = FALLOC_FL_ZERO_RANGE;
constexpr int kCollapse = FALLOC_FL_COLLAPSE_RANGE;
constexpr int kInsert = FALLOC_FL_INSERT_RANGE;

// What a file should hold: its bytes, and which of its AUs are allocated (past EOF too).
struct ModelFile {
  std::string data;
  std::vector<bool> aus;

  bool Allocated(uint64_t a) const { return a < aus.size() && aus[a]; }
  void Alloc(uint64_t from, uint64_t to) {
    if (aus.size() < to) aus.resize(to, false);
    for (uint64_t a = from; a < to; ++a) aus[a] = true;
  }
  void Free(uint64_t from, uint64_t to) {
    for (uint64_t a = from; a < std::min<uint64_t>(to, aus.size()); ++a) aus[a] = false;
  }
  void Zero(uint64_t from, uint64_t to) {
    for (uint64_t p = from; p < std::min<uint64_t>(to, data.size()); ++p) data[p] = '\0';
  }
  void Grow(uint64_t size) {
    if (data.size() < size) data.resize(size, '\0');
  }
};

uint64_t AusCovering(uint64_t end, uint64_t au) { return (end + au - 1) / au; }

// The effect of each operation on the model, as Linux defines it (AU granularity).
void ModelWrite(ModelFile* m, uint64_t off, const std::string& bytes, uint64_t au) {
  m->Grow(off + bytes.size());
  m->data.replace(off, bytes.size(), bytes);
  m->Alloc(off / au, AusCovering(off + bytes.size(), au));
}
void ModelTruncate(ModelFile* m, uint64_t size, uint64_t au) {
  // Shrinking frees every AU past the new EOF; growing keeps preallocated ones.
  if (size < m->data.size()) m->Free(AusCovering(size, au), UINT64_MAX);
  m->data.resize(size, '\0');
}
void ModelFallocate(ModelFile* m, int mode, uint64_t off, uint64_t len, uint64_t au) {
  const uint64_t end = off + len;
  if (mode & FALLOC_FL_PUNCH_HOLE) {
    m->Zero(off, end);
    m->Free(AusCovering(off, au), end / au);
  } else if (mode & FALLOC_FL_COLLAPSE_RANGE) {
    m->data.erase(off, len);
    if (m->aus.size() > off / au) {
      m->aus.erase(m->aus.begin() + off / au,
                   m->aus.begin() + std::min<uint64_t>(end / au, m->aus.size()));
    }
  } else if (mode & FALLOC_FL_INSERT_RANGE) {
    m->data.insert(off, len, '\0');
    if (m->aus.size() > off / au) m->aus.insert(m->aus.begin() + off / au, len / au, false);
  } else {  // allocate, or zero
    m->Alloc(off / au, AusCovering(end, au));
    if (mode & FALLOC_FL_ZERO_RANGE) m->Zero(off, end);
    if (!(mode & FALLOC_FL_KEEP_SIZE)) m->Grow(end);
  }
}

// copy_file_range on the model, chunk by chunk as the filesystem walks the source: a run
// of data AUs is written (allocating), a run of hole AUs punches the destination's whole
// AUs inside it. Returns the bytes copied.
uint64_t ModelCopy(const ModelFile* in, uint64_t off_in, ModelFile* out, uint64_t off_out,
                   uint64_t len, uint64_t au) {
  len = off_in >= in->data.size() ? 0 : std::min<uint64_t>(len, in->data.size() - off_in);
  for (uint64_t done = 0; done < len;) {
    const uint64_t pos = off_in + done;
    const uint64_t limit = (len - done + pos % au + au - 1) / au;
    const bool data = in->Allocated(pos / au);
    uint64_t run = 1;
    while (run < limit && in->Allocated(pos / au + run) == data) ++run;
    uint64_t chunk = std::min(len - done, run * au - pos % au);
    if (data) chunk = std::min<uint64_t>(chunk, 1u << 20);  // the bounce buffer
    const std::string bytes = in->data.substr(pos, chunk);
    const uint64_t dst = off_out + done;
    if (data) {
      ModelWrite(out, dst, bytes, au);
    } else {
      out->Grow(dst + chunk);
      out->Zero(dst, dst + chunk);
      out->Free(AusCovering(dst, au), (dst + chunk) / au);
    }
    done += chunk;
  }
  return len;
}

// A mounted image with two open files and their models.
class Bench {
 public:
  Bench(uint64_t au, uint64_t image, uint64_t journal = 0, bool meta_copies = true)
      : au_(au), img_(image, au, journal, meta_copies), fs_(img_.Mount()) {
    for (int i = 0; i < 2; ++i) {
      files_[i] = Must(fs_->Create(kRootIno, "f" + std::to_string(i), 0644, O_RDWR, kRoot)).second;
    }
  }
  ~Bench() {
    for (Inode* f : files_) fs_->Release(f);
  }
  Filesystem* fs() { return fs_.get(); }
  Inode* file(int i) { return files_[i]; }
  ModelFile& model(int i) { return models_[i]; }
  uint64_t au() const { return au_; }

  void Write(int i, uint64_t off, const std::string& bytes) {
    ASSERT_EQ(Must(fs_->Write(files_[i], off, bytes.data(), bytes.size())), bytes.size());
    ModelWrite(&models_[i], off, bytes, au_);
  }
  void Truncate(int i, uint64_t size) {
    SetAttrIn in;
    in.size = true;
    in.attr.st_size = static_cast<off_t>(size);
    Must(fs_->SetAttr(files_[i]->ino, in));
    ModelTruncate(&models_[i], size, au_);
  }
  void Fallocate(int i, int mode, uint64_t off, uint64_t len) {
    ASSERT_OK(fs_->Fallocate(files_[i], mode, off, len));
    ModelFallocate(&models_[i], mode, off, len, au_);
  }
  void Copy(int from, uint64_t off_in, int to, uint64_t off_out, uint64_t len) {
    const uint64_t want = ModelCopy(&models_[from], off_in, &models_[to], off_out, len, au_);
    EXPECT_EQ(Must(fs_->CopyFileRange(files_[from], off_in, files_[to], off_out, len)), want);
  }

  // File i equals its model: size, bytes, allocated AUs; and the maps agree.
  void Check(int i, const std::string& step) {
    const ModelFile& m = models_[i];
    Inode* f = files_[i];
    ASSERT_EQ(f->d.size, m.data.size()) << step;
    std::string got(m.data.size(), 'X');
    ASSERT_EQ(Must(fs_->Read(f, 0, got.size(), got.data())), got.size());
    if (got != m.data) {
      size_t p = 0;
      while (got[p] == m.data[p]) ++p;
      FAIL() << step << ": first different byte at " << p;
    }
    std::vector<bool> actual;
    for (const BmapExtent& e : Must(fs_->Bmap(f->ino))) {
      for (uint64_t a = e.file_offset / au_; a < (e.file_offset + e.length) / au_; ++a) {
        if (actual.size() <= a) actual.resize(a + 1, false);
        actual[a] = true;
      }
    }
    std::vector<bool> want = m.aus;
    while (!want.empty() && !want.back()) want.pop_back();
    ASSERT_EQ(actual, want) << step << ": allocated AUs differ";
    CheckMaps(step);
  }
  void CheckMaps(const std::string& step) {
    CheckReport report = Must(fs_->checker().CrossCheckMaps());
    ASSERT_EQ(report.problems, 0u) << step << ": " << report.messages[0];
  }

 private:
  uint64_t au_;
  TestImage img_;
  std::unique_ptr<Filesystem> fs_;
  Inode* files_[2];
  ModelFile models_[2];
};

// Random offsets that hit AU boundaries often: aligned, a little off, or anywhere.
uint64_t PickOffset(std::mt19937_64& rng, uint64_t limit, uint64_t au) {
  switch (rng() % 3) {
    case 0: return rng() % (limit / au + 1) * au;
    case 1: return std::min(limit, rng() % (limit / au + 1) * au + rng() % 64);
    default: return rng() % (limit + 1);
  }
}

// Never zero, and different at every position, so a misplaced AU shows.
std::string Bytes(std::mt19937_64& rng, uint64_t n) {
  const uint64_t r = rng();
  std::string s(n, '\0');
  for (uint64_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (r + i + i / 4093) % 26);
  return s;
}

// `steps` random operations on two files of at most `max_aus` AUs, each checked.
void RunRandomOps(Bench* b, uint64_t seed, int steps, uint64_t max_aus) {
  std::mt19937_64 rng(seed);
  const uint64_t au = b->au(), limit = max_aus * au;
  for (int step = 0; step < steps; ++step) {
    const int target = rng() % 4 == 0 ? 1 : 0;
    const uint64_t size = b->model(target).data.size();
    const uint64_t off = PickOffset(rng, limit, au);
    const uint64_t len = 1 + PickOffset(rng, limit / 4, au);
    std::string what;
    switch (rng() % 11) {
      case 0:
      case 9:
      case 10: {  // writes most often, so that shifts move data
        const uint64_t n = std::min(len, limit - std::min(off, limit - 1));
        what = "write @" + std::to_string(off) + "+" + std::to_string(n);
        b->Write(target, off, Bytes(rng, n));
        break;
      }
      case 1: {
        const uint64_t to = PickOffset(rng, limit, au);
        what = "truncate " + std::to_string(to);
        b->Truncate(target, to);
        break;
      }
      case 2: {
        const int mode = rng() % 2 ? 0 : kKeep;
        what = "allocate mode " + std::to_string(mode) + " @" + std::to_string(off) + "+" +
               std::to_string(len);
        b->Fallocate(target, mode, off, len);
        break;
      }
      case 3:
        what = "punch @" + std::to_string(off) + "+" + std::to_string(len);
        b->Fallocate(target, kPunch, off, len);
        break;
      case 4: {
        const int mode = rng() % 2 ? kZero : kZero | kKeep;
        what = "zero mode " + std::to_string(mode) + " @" + std::to_string(off) + "+" +
               std::to_string(len);
        b->Fallocate(target, mode, off, len);
        break;
      }
      case 5: {  // collapse: an aligned range ending before EOF
        if (size <= au) continue;
        const uint64_t start = rng() % ((size - 1) / au) * au;
        const uint64_t n = (1 + rng() % ((size - 1 - start) / au)) * au;
        if (start + n >= size) continue;
        what = "collapse @" + std::to_string(start) + "+" + std::to_string(n);
        b->Fallocate(target, kCollapse, start, n);
        break;
      }
      case 6: {  // insert: an aligned offset before EOF, keeping the file under the limit
        if (size == 0 || size + au > limit) continue;
        const uint64_t start = rng() % ((size + au - 1) / au) * au;
        const uint64_t n = (1 + rng() % ((limit - size) / au)) * au;
        what = "insert @" + std::to_string(start) + "+" + std::to_string(n);
        b->Fallocate(target, kInsert, start, n);
        break;
      }
      case 7: {  // copy from the other file, anywhere
        const uint64_t off_out = PickOffset(rng, limit - std::min(limit, len), au);
        what = "copy " + std::to_string(1 - target) + "@" + std::to_string(off) + " -> " +
               std::to_string(target) + "@" + std::to_string(off_out) + "+" + std::to_string(len);
        b->Copy(1 - target, off, target, off_out, len);
        break;
      }
      case 8: {  // copy within the file, the ranges apart
        const uint64_t n = std::min(len, limit / 4);
        const uint64_t src = PickOffset(rng, limit / 2, au);
        const uint64_t dst = src + n + PickOffset(rng, limit / 4, au);
        what = "self-copy @" + std::to_string(src) + " -> @" + std::to_string(dst) + "+" +
               std::to_string(n);
        b->Copy(target, src, target, dst, n);
        break;
      }
    }
    if (::testing::Test::HasFatalFailure()) {
      ADD_FAILURE() << "seed " << seed << " step " << step << ": " << what;
      return;
    }
    b->Check(target, "seed " + std::to_string(seed) + " step " + std::to_string(step) + " " + what);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(Fallocate, RandomOperationsMatchTheModel4K) {
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    Bench b(kAuSize4K, 64ull << 20);
    RunRandomOps(&b, seed, 400, 64);
    if (HasFatalFailure()) return;
  }
}

TEST(Fallocate, RandomOperationsMatchTheModel2M) {
  Bench b(kAuSize2M, 256ull << 20);
  RunRandomOps(&b, 7, 120, 8);
}

// A 32 KiB journal lets a transaction carry ~360 reverse-map records, so shifting a file
// of a few MiB takes many transactions and moves large extents in pieces.
TEST(Fallocate, RandomOperationsMatchTheModelInSmallTransactions) {
  for (uint64_t seed : {11, 12}) {
    Bench b(kAuSize4K, 64ull << 20, 32u << 10);
    RunRandomOps(&b, seed, 250, 1536);
    if (HasFatalFailure()) return;
  }
}

TEST(Fallocate, LargeExtentsShiftInPiecesAndJoinAgain) {
  Bench b(kAuSize4K, 64ull << 20, 32u << 10);
  std::mt19937_64 rng(5);
  for (uint64_t off = 0; off < (8u << 20); off += 256u << 10) b.Write(0, off, Bytes(rng, 256u << 10));
  ASSERT_EQ(b.file(0)->d.ext_count, 1u);  // one contiguous run of 2048 AUs
  const uint64_t commits = b.fs()->journal_stats().commits;
  b.Fallocate(0, kCollapse, 4096, 64u << 10);
  b.Check(0, "collapse");
  EXPECT_GT(b.fs()->journal_stats().commits - commits, 3u);  // really in several steps
  EXPECT_EQ(b.file(0)->d.ext_count, 2u);                     // head + the moved rest, whole
  b.Fallocate(0, kInsert, 8192, 1u << 20);
  b.Check(0, "insert");
  EXPECT_EQ(b.file(0)->d.ext_count, 3u);
  b.Fallocate(0, kCollapse, 8192, 1u << 20);
  b.Check(0, "collapse back");
  EXPECT_EQ(b.file(0)->d.ext_count, 2u);
}

TEST(Fallocate, ErrnoOfEachBadCall) {
  Bench b(kAuSize4K, 64ull << 20);
  Filesystem* fs = b.fs();
  Inode* f = b.file(0);
  std::mt19937_64 rng(3);
  b.Write(0, 0, Bytes(rng, 40000));
  auto code = [&](int mode, uint64_t off, uint64_t len) {
    return fs->Fallocate(f, mode, off, len).code();
  };
  EXPECT_EQ(code(0, 0, 0), EINVAL);
  EXPECT_EQ(code(0, uint64_t{1} << 63, 4096), EINVAL);
  EXPECT_EQ(code(0x100, 0, 4096), EOPNOTSUPP);
  EXPECT_EQ(code(FALLOC_FL_NO_HIDE_STALE, 0, 4096), EOPNOTSUPP);
  EXPECT_EQ(code(FALLOC_FL_UNSHARE_RANGE, 0, 4096), EOPNOTSUPP);
  EXPECT_EQ(code(kPunch | kZero, 0, 4096), EOPNOTSUPP);
  EXPECT_EQ(code(FALLOC_FL_PUNCH_HOLE, 0, 4096), EOPNOTSUPP);  // punch needs KEEP_SIZE
  EXPECT_EQ(code(kCollapse | kKeep, 0, 4096), EINVAL);
  EXPECT_EQ(code(kInsert | kKeep, 0, 4096), EINVAL);
  EXPECT_EQ(code(kCollapse | kInsert, 0, 4096), EINVAL);
  EXPECT_EQ(code(kZero | kCollapse, 0, 4096), EINVAL);
  EXPECT_EQ(code(kCollapse, 100, 4096), EINVAL);        // unaligned offset
  EXPECT_EQ(code(kCollapse, 4096, 100), EINVAL);        // unaligned length
  EXPECT_EQ(code(kCollapse, 32768, 8192), EINVAL);      // ends past EOF (40000)
  EXPECT_EQ(code(kCollapse, 0, 40960), EINVAL);         // the whole file and more
  EXPECT_EQ(code(kInsert, 4096, 100), EINVAL);          // unaligned
  EXPECT_EQ(code(kInsert, 40960, 4096), EINVAL);        // at or past EOF
  const uint64_t max = fs->MaxFileSize();
  EXPECT_EQ(code(0, max - 4096, 8192), EFBIG);
  EXPECT_EQ(code(kKeep, max, 1), EFBIG);
  EXPECT_EQ(code(kInsert, 0, max), EFBIG);              // the size would pass the limit
  b.Check(0, "after the refused calls");
  // Preallocated AUs past EOF move with an insert and may not pass the limit either.
  // (Not in the model: its AU vector would need 2^32 entries.)
  ASSERT_OK(fs->Fallocate(f, kKeep, max - 4096, 4096));
  EXPECT_EQ(code(kInsert, 0, 4096), EFBIG);
  ASSERT_OK(fs->Fallocate(f, kPunch, max - 4096, 4096));
  b.Fallocate(0, kInsert, 0, 4096);
  b.Check(0, "insert once the top is free");
  // Not a regular file.
  auto dir = Must(fs->Mkdir(kRootIno, "d", 0755, kRoot));
  Inode* d = Must(fs->Open(dir.ino, O_RDONLY));
  EXPECT_EQ(fs->Fallocate(d, 0, 0, 4096).code(), EISDIR);
  fs->Release(d);
}

TEST(Fallocate, ReadOnlyAndShutDownRefuse) {
  TestImage img;
  uint64_t ino;
  {
    auto fs = img.Mount();
    auto [e, f] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
    ino = e.ino;
    fs->Release(f);
    ASSERT_OK(fs->Unmount());
  }
  {
    MountOptions ro;
    ro.read_only = true;
    auto fs = img.Mount(ro);
    Inode* f = Must(fs->Open(ino, O_RDONLY));
    EXPECT_EQ(fs->Fallocate(f, 0, 0, 4096).code(), EROFS);
    Inode* g = Must(fs->Open(ino, O_RDONLY));
    EXPECT_EQ(fs->CopyFileRange(f, 0, g, 4096, 10).status().code(), EROFS);
    fs->Release(g);
    fs->Release(f);
  }
  auto fs = img.Mount();
  Inode* f = Must(fs->Open(ino, O_RDWR));
  fs->Shutdown("test");
  EXPECT_EQ(fs->Fallocate(f, 0, 0, 4096).code(), EIO);
  EXPECT_EQ(fs->SeekDataHole(f, 0, SEEK_DATA).status().code(), EIO);
  fs->Release(f);
}

// The ENOSPC tests count free AUs one by one: on an image without metadata copies, where
// an extent block takes one AU, not a pair.
TEST(Fallocate, NoSpaceLeavesTheFileAndTheFreeCountAlone) {
  Bench b(kAuSize4K, 16ull << 20, 0, /*meta_copies=*/false);
  Filesystem* fs = b.fs();
  std::mt19937_64 rng(9);
  const std::string chunk = Bytes(rng, 1u << 20);
  for (uint64_t off = 0;; off += chunk.size()) {  // fill the filesystem with file 0
    auto n = fs->Write(b.file(0), off, chunk.data(), chunk.size());
    if (!n.ok() || *n < chunk.size()) break;
  }
  b.Truncate(0, 4u << 20);
  b.Write(1, 0, Bytes(rng, 5000));
  const uint64_t free = fs->StatFs().f_bfree;
  for (int mode : {0, kKeep, kZero, kZero | kKeep}) {
    EXPECT_EQ(fs->Fallocate(b.file(1), mode, 8192, (free + 1) * 4096).code(), ENOSPC);
    EXPECT_EQ(fs->StatFs().f_bfree, free);
    b.Check(1, "refused mode " + std::to_string(mode));
  }
  b.Fallocate(1, 0, 8192, free * 4096);  // exactly what is free (one run: one extent)
  EXPECT_EQ(fs->StatFs().f_bfree, 0u);
  b.Check(1, "all of it");
  // A full filesystem still punches, collapses and inserts (no new extent slot needed).
  b.Fallocate(1, kPunch, 0, 4096);
  b.Fallocate(1, kCollapse, 4096, 8192);
  b.Fallocate(1, kInsert, 0, 4096);
  b.Check(1, "shifts on a full filesystem");
}

TEST(Fallocate, NoSpaceForAnExtentBlockStopsPartWayWithoutLeaking) {
  Bench b(kAuSize4K, 16ull << 20, 0, /*meta_copies=*/false);
  Filesystem* fs = b.fs();
  std::mt19937_64 rng(13);
  for (uint64_t a = 0; a < 3; ++a) b.Write(1, a * 2 * 4096, Bytes(rng, 10));
  ASSERT_EQ(b.file(1)->d.ext_count, 3u);  // the inline slots are full
  const std::string chunk = Bytes(rng, 1u << 20);
  for (uint64_t off = 0;; off += chunk.size()) {  // fill the filesystem with file 0
    auto n = fs->Write(b.file(0), off, chunk.data(), chunk.size());
    if (!n.ok()) break;
  }
  ASSERT_OK(fs->Fallocate(b.file(0), kPunch, 0, 5 * 4096));
  const uint64_t free = fs->StatFs().f_bfree;
  ASSERT_GE(free, 5u);
  // As many AUs as are free, but the new extents need an extent block as well: all but
  // one are mapped, then ENOSPC.
  EXPECT_EQ(fs->Fallocate(b.file(1), kKeep, 1u << 20, free * 4096).code(), ENOSPC);
  EXPECT_EQ(fs->StatFs().f_bfree, 0u);
  b.CheckMaps("partial preallocation");
  uint64_t mapped = 0;
  for (const BmapExtent& e : Must(fs->Bmap(b.file(1)->ino))) mapped += e.length / 4096;
  EXPECT_EQ(mapped, 3 + free - 1);
  EXPECT_EQ(b.file(1)->d.size, 4 * 4096 + 10u);
  EXPECT_EQ(fs->Fallocate(b.file(1), kKeep, 4096, 4096).code(), ENOSPC);  // a hole
  b.CheckMaps("nothing left");
}

// An attribute blob lives at file AUs from kXattrFileAu in the file's own extent map.
// None of the range operations may touch it. Crafted on media here, as the xattr calls
// would leave it: one AU, owned (reverse map) by the inode at kXattrFileAu (on an image
// without copies, which would need a second, crafted too).
TEST(Fallocate, TheAttributeBlobIsNeverMoved) {
  TestImage img(64ull << 20, kAuSize4K, 0, /*meta_copies=*/false);
  uint64_t ino, blob_au;
  {
    auto fs = img.Mount();
    auto [e, f] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
    ino = e.ino;
    std::string data(40000, 'q');
    Must(fs->Write(f, 0, data.data(), data.size()));
    fs->Release(f);
    ASSERT_OK(fs->Unmount());
  }
  {
    auto region = Must(Region::Open(img.path(), RegionOptions{}));
    DiskSuperblock sb;
    ASSERT_OK(region->ReadSafe(0, &sb, sizeof(sb)));
    blob_au = LastDataAu(sb) - 1;  // free in a near-empty image
    uint64_t word;
    const uint64_t word_off = sb.abitmap_off + blob_au / 64 * 8;
    ASSERT_OK(region->ReadSafe(word_off, &word, 8));
    ASSERT_FALSE(word >> (blob_au % 64) & 1);
    word |= 1ull << (blob_au % 64);
    ASSERT_OK(region->WriteSafe(word_off, &word, 8, true));
    DiskInode d;
    ASSERT_OK(region->ReadSafe(InodeOffset(sb, ino), &d, sizeof(d)));
    ASSERT_LT(d.ext_count, kInlineExtents);
    DiskExtent& x = d.extents[d.ext_count++];
    x = DiskExtent{kXattrFileAu, blob_au, 1, 0, 0, 0};
    ExtentSeal(&x, ino);
    d.au_blocks++;
    DiskXattrHeader h{kXattrMagic, 0, 0, 0};
    h.crc = Crc32c(&h, sizeof(h), static_cast<uint32_t>(ino));
    d.xattr_bytes = sizeof(h);
    InodeSeal(&d);
    ASSERT_OK(region->WriteSafe(blob_au * sb.au_size, &h, sizeof(h), true));
    ASSERT_OK(region->WriteSafe(InodeOffset(sb, ino), &d, sizeof(d), true));
    const DiskRmapRecord rec = ReverseMap::Encode(
        blob_au, Owner{OwnerKind::kXattr, ino, d.generation, kXattrFileAu});
    ASSERT_OK(region->WriteSafe(sb.rmap_off + blob_au * sizeof(rec), &rec, sizeof(rec), true));
  }
  auto fs = img.Mount();
  Inode* f = Must(fs->Open(ino, O_RDWR));
  auto blob_intact = [&](const std::string& step) {
    CheckReport report = Must(fs->checker().CrossCheckMaps());
    ASSERT_EQ(report.problems, 0u) << step << ": " << report.messages[0];
    auto owners = Must(fs->Owners(blob_au * 4096, 4096));
    ASSERT_EQ(owners.size(), 1u);
    EXPECT_EQ(owners[0].owner.kind, OwnerKind::kXattr) << step;
    EXPECT_EQ(owners[0].owner.ino, ino) << step;
    EXPECT_EQ(owners[0].offset, kXattrFileAu * 4096) << step;
    for (const BmapExtent& e : Must(fs->Bmap(ino))) EXPECT_LT(e.file_offset, fs->MaxFileSize());
  };
  blob_intact("crafted");
  const uint64_t max = fs->MaxFileSize();
  ASSERT_OK(fs->Fallocate(f, kCollapse, 4096, 8192));
  blob_intact("collapse");
  ASSERT_OK(fs->Fallocate(f, kInsert, 0, 4096 * 3));
  blob_intact("insert");
  ASSERT_OK(fs->Fallocate(f, kKeep, max - 3 * 4096, 3 * 4096));  // right below the blob
  blob_intact("allocate below the blob");
  EXPECT_EQ(fs->Fallocate(f, kInsert, 0, 4096).code(), EFBIG);
  blob_intact("refused insert");
  ASSERT_OK(fs->Fallocate(f, kZero | kKeep, max - 4096, 4096));
  ASSERT_OK(fs->Fallocate(f, kPunch, 0, max));  // everything a file can have
  blob_intact("punch all");
  EXPECT_TRUE(Must(fs->Bmap(ino)).empty());
  fs->Release(f);
}

TEST(SeekDataHole, DataHolesPreallocationAndEof) {
  Bench b(kAuSize4K, 64ull << 20);
  Filesystem* fs = b.fs();
  Inode* f = b.file(0);
  auto seek = [&](uint64_t off, int whence) -> int64_t {
    auto r = fs->SeekDataHole(f, off, whence);
    return r.ok() ? static_cast<int64_t>(*r) : -r.status().code();
  };
  EXPECT_EQ(seek(0, SEEK_DATA), -ENXIO);  // empty file
  EXPECT_EQ(seek(0, SEEK_HOLE), -ENXIO);
  std::mt19937_64 rng(1);
  b.Write(0, 8192, Bytes(rng, 4096));
  b.Write(0, 20480, Bytes(rng, 10));  // size 20490
  EXPECT_EQ(seek(0, SEEK_DATA), 8192);
  EXPECT_EQ(seek(9000, SEEK_DATA), 9000);
  EXPECT_EQ(seek(12288, SEEK_DATA), 20480);
  EXPECT_EQ(seek(0, SEEK_HOLE), 0);
  EXPECT_EQ(seek(8192, SEEK_HOLE), 12288);
  EXPECT_EQ(seek(20480, SEEK_HOLE), 20490);  // the implicit hole at EOF
  EXPECT_EQ(seek(20489, SEEK_HOLE), 20490);
  EXPECT_EQ(seek(20490, SEEK_DATA), -ENXIO);
  EXPECT_EQ(seek(20490, SEEK_HOLE), -ENXIO);
  EXPECT_EQ(seek(0, SEEK_END), -EINVAL);
  b.Fallocate(0, kKeep, 4096, 4096);  // preallocated (zero-filled) AUs are data
  EXPECT_EQ(seek(0, SEEK_DATA), 4096);
  EXPECT_EQ(seek(0, SEEK_HOLE), 0);
  EXPECT_EQ(seek(4096, SEEK_HOLE), 12288);
  b.Truncate(0, 40000);
  EXPECT_EQ(seek(20490, SEEK_DATA), 20490);  // still inside the last data AU
  EXPECT_EQ(seek(24576, SEEK_DATA), -ENXIO);
  EXPECT_EQ(seek(24000, SEEK_HOLE), 24576);
  b.Fallocate(0, kKeep, 100000, 10000);  // past EOF: not data of the file's range
  EXPECT_EQ(seek(24576, SEEK_DATA), -ENXIO);
  b.Fallocate(0, kPunch, 8192, 4096);
  EXPECT_EQ(seek(8192, SEEK_DATA), 20480);
  EXPECT_EQ(seek(4096, SEEK_HOLE), 8192);
}

TEST(SeekDataHole, TwoMegabyteUnits) {
  Bench b(kAuSize2M, 256ull << 20);
  std::mt19937_64 rng(2);
  b.Write(0, (2u << 20) + 5, Bytes(rng, 100));
  EXPECT_EQ(Must(b.fs()->SeekDataHole(b.file(0), 0, SEEK_DATA)), 2u << 20);
  EXPECT_EQ(Must(b.fs()->SeekDataHole(b.file(0), (2u << 20) + 1, SEEK_HOLE)), (2u << 20) + 105);
}

TEST(CopyFileRange, BytesHolesShortCopiesAndErrors) {
  Bench b(kAuSize4K, 64ull << 20);
  Filesystem* fs = b.fs();
  std::mt19937_64 rng(4);
  b.Write(1, 0, Bytes(rng, 4096));
  b.Write(1, 3 * 4096, Bytes(rng, 5000));  // AUs 1-2 a hole; size 17288
  b.Write(0, 0, Bytes(rng, 6 * 4096));
  b.Copy(1, 0, 0, 0, 1u << 20);  // short: to the end of the input
  b.Check(0, "whole copy");
  EXPECT_FALSE(b.model(0).Allocated(1));  // the source's hole AUs are holes again
  EXPECT_FALSE(b.model(0).Allocated(2));
  b.Copy(1, 100, 0, 50000, 9000);  // unaligned, past the destination's EOF
  b.Check(0, "unaligned past EOF");
  EXPECT_EQ(Must(fs->CopyFileRange(b.file(1), 17288, b.file(0), 0, 10)), 0u);  // at EOF
  EXPECT_EQ(Must(fs->CopyFileRange(b.file(1), 99999, b.file(0), 0, 10)), 0u);  // past it
  // Same file: overlapping ranges are refused, apart ones copied.
  EXPECT_EQ(fs->CopyFileRange(b.file(0), 0, b.file(0), 4000, 5000).status().code(), EINVAL);
  EXPECT_EQ(fs->CopyFileRange(b.file(0), 4000, b.file(0), 0, 5000).status().code(), EINVAL);
  b.Copy(0, 0, 0, 8192, 8192);
  b.Check(0, "within the file");
  EXPECT_EQ(fs->CopyFileRange(b.file(1), 0, b.file(0), fs->MaxFileSize(), 10).status().code(),
            EFBIG);
  EXPECT_EQ(fs->CopyFileRange(b.file(1), UINT64_MAX - 5, b.file(0), 0, 10).status().code(),
            EINVAL);
  EXPECT_EQ(fs->CopyFileRange(b.file(1), 5, b.file(0), INT64_MAX - 5, 10).status().code(),
            EFBIG);
  EXPECT_EQ(fs->CopyFileRange(b.file(1), 5, b.file(0), 0, SIZE_MAX).status().code(), EOVERFLOW);
}

TEST(CopyFileRange, StaleBytesPastTheOldEofReadZero) {
  Bench b(kAuSize4K, 64ull << 20);
  std::mt19937_64 rng(8);
  b.Write(0, 0, Bytes(rng, 10000));
  b.Truncate(0, 5000);  // bytes 5000..8191 of AU 1 keep old data on media
  b.Write(1, 0, Bytes(rng, 100));
  b.Copy(1, 0, 0, 7000, 100);
  b.Check(0, "data after a gap");
  b.Truncate(0, 5000);
  b.Truncate(1, 9000);  // file 1 from 8192 on: a hole
  b.Copy(1, 8192, 0, 6000, 500);
  b.Check(0, "a hole after a gap");
}

TEST(CopyFileRange, OppositeCopiesDoNotDeadlock) {
  Bench b(kAuSize4K, 64ull << 20);
  std::mt19937_64 rng(6);
  b.Write(0, 0, Bytes(rng, 300000));
  b.Write(1, 0, Bytes(rng, 300000));
  Filesystem* fs = b.fs();
  auto copier = [fs](Inode* from, Inode* to, Inode* self) {
    for (int i = 0; i < 200; ++i) {
      if (!fs->CopyFileRange(from, 4096 * (i % 7), to, 100000 + 4096 * (i % 5), 50000).ok()) {
        return false;
      }
      if (!fs->CopyFileRange(self, 0, self, 200000, 90000).ok()) return false;
    }
    return true;
  };
  auto a = std::async(std::launch::async, copier, b.file(0), b.file(1), b.file(0));
  auto c = std::async(std::launch::async, copier, b.file(1), b.file(0), b.file(1));
  if (a.wait_for(std::chrono::seconds(120)) != std::future_status::ready ||
      c.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
    fprintf(stderr, "copy_file_range deadlocked\n");
    std::abort();  // the threads cannot be joined
  }
  EXPECT_TRUE(a.get());
  EXPECT_TRUE(c.get());
  b.CheckMaps("after the copies");
}

}  // namespace
}  // namespace udax
