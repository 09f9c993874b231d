// fuzz_common.cc -- see fuzz_common.h.
#include "tests/fuzz/fuzz_common.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <set>

#include "fs/format/crc32c.h"

namespace udax::fuzz {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

template <typename T>
T Load(const MemImage& img, uint64_t off) {
  T v{};
  if (off <= img.size() && sizeof(T) <= img.size() - off) {
    std::memcpy(&v, const_cast<MemImage&>(img).data() + off, sizeof(T));
  }
  return v;
}

template <typename T>
void Store(MemImage* img, uint64_t off, const T& v) {
  if (off <= img->size() && sizeof(T) <= img->size() - off) std::memcpy(img->data() + off, &v, sizeof(T));
}

void ResealSuperblock(MemImage* img, uint64_t off) {
  auto sb = Load<DiskSuperblock>(*img, off);
  if (std::memcmp(sb.magic, kSuperMagic, sizeof(sb.magic)) != 0) return;
  SuperblockSeal(&sb);
  Store(img, off, sb);
}

void ResealTxn(MemImage* img, const DiskSuperblock& sb) {
  const uint64_t slot = sb.journal_off + kBlockSize;
  auto h = Load<DiskTxnHeader>(*img, slot);
  if (h.magic != kTxnMagic || h.bytes > sb.journal_len - kBlockSize - sizeof(h)) return;
  h.crc = 0;
  const size_t from = offsetof(DiskTxnHeader, magic);
  uint32_t crc = Crc32c(reinterpret_cast<const uint8_t*>(&h) + from, sizeof(h) - from);
  h.crc = Crc32c(img->data() + slot + sizeof(h), h.bytes, crc);
  Store(img, slot, h);
}

void ResealDirBlocks(MemImage* img, const DiskSuperblock& sb, const DiskExtent& e) {
  for (uint64_t off = e.phys_au * sb.au_size, n = 0;
       off < (e.phys_au + e.len) * sb.au_size && n < 2048; off += kBlockSize, ++n) {
    if (off + kBlockSize > img->size()) return;
    uint8_t* block = img->data() + off;
    uint32_t magic;
    std::memcpy(&magic, block, 4);
    if (magic != kDirBlockMagic) continue;
    std::memset(block + offsetof(DiskDirBlockHeader, crc), 0, 4);
    const uint32_t crc = Crc32c(block, kBlockSize);
    std::memcpy(block + offsetof(DiskDirBlockHeader, crc), &crc, 4);
  }
}

void ResealInode(MemImage* img, const DiskSuperblock& sb, uint64_t ino) {
  auto d = Load<DiskInode>(*img, InodeOffset(sb, ino));
  if (d.magic != kInodeMagic) return;
  std::vector<DiskExtent> extents;
  const bool inline_data = d.flags & kInodeInlineData;
  const uint64_t count = inline_data ? 0 : d.ext_count;
  for (uint64_t s = 0; s < count && s < kInlineExtents; ++s) {
    if (d.extents[s].len == 0) continue;
    ExtentSeal(&d.extents[s], ino);
    extents.push_back(d.extents[s]);
  }
  const uint64_t per = ExtentsPerBlock(sb);
  uint64_t au = d.ext_block;
  for (uint64_t i = 0, s = kInlineExtents; s < count && i < 64; ++i) {
    if (au < FirstDataAu(sb) || au >= LastDataAu(sb)) break;
    const uint64_t off = au * sb.au_size;
    auto h = Load<DiskExtentBlockHeader>(*img, off);
    if (h.magic != kExtentBlockMagic) break;
    ExtentBlockSeal(&h);
    Store(img, off, h);
    for (uint64_t j = 0; j < per && s < count; ++j, ++s) {
      const uint64_t slot = off + sizeof(h) + j * sizeof(DiskExtent);
      auto e = Load<DiskExtent>(*img, slot);
      if (e.len == 0) continue;
      ExtentSeal(&e, ino);
      Store(img, slot, e);
      extents.push_back(e);
    }
    au = h.next;
  }
  if (S_ISDIR(d.mode)) {
    for (const DiskExtent& e : extents) {
      if (e.phys_au >= FirstDataAu(sb) && e.phys_au < LastDataAu(sb) && e.len <= 4096) {
        ResealDirBlocks(img, sb, e);
      }
    }
  }
  InodeSeal(&d);
  Store(img, InodeOffset(sb, ino), d);
}

}  // namespace

void Violated(const std::string& what) {
  fprintf(stderr, "udaxfs fuzz: property violated: %s\n", what.c_str());
  fflush(stderr);
  abort();
}

void MaybeDump(const MemImage& image) {
  const char* path = getenv("UDAX_FUZZ_DUMP");
  if (!path) return;
  FILE* f = fopen(path, "wb");
  if (!f) return;
  fwrite(const_cast<MemImage&>(image).data(), 1, image.size(), f);
  fclose(f);
}

std::shared_ptr<MemImage> SparseToImage(const uint8_t* data, size_t n, uint8_t* flags) {
  if (n < 2) return nullptr;
  *flags = data[0];
  const uint64_t mib = std::min<uint64_t>(128, std::max<uint64_t>(16, data[1]));
  auto image = std::make_shared<MemImage>(mib * kMiB);
  const uint64_t blocks = image->size() / kBlockSize;
  for (size_t pos = 2; pos + kSparseRecord <= n; pos += kSparseRecord) {
    const uint64_t block = (data[pos] | uint64_t{data[pos + 1]} << 8) % blocks;
    std::memcpy(image->data() + block * kBlockSize, data + pos + 2, kBlockSize);
  }
  return image;
}

std::string ImageToSparse(const MemImage& image, uint8_t flags) {
  std::string out;
  out.push_back(static_cast<char>(flags));
  out.push_back(static_cast<char>(image.size() / kMiB));
  static const uint8_t kZero[kBlockSize] = {};
  const uint8_t* bytes = const_cast<MemImage&>(image).data();
  for (uint64_t b = 0; b < image.size() / kBlockSize; ++b) {
    if (std::memcmp(bytes + b * kBlockSize, kZero, kBlockSize) == 0) continue;
    out.push_back(static_cast<char>(b & 0xff));
    out.push_back(static_cast<char>(b >> 8));
    out.append(reinterpret_cast<const char*>(bytes + b * kBlockSize), kBlockSize);
  }
  return out;
}

void ResealAll(MemImage* img) {
  if (img->size() < kMinRegionSize / 2) return;
  ResealSuperblock(img, 0);
  auto sb = Load<DiskSuperblock>(*img, 0);
  if (!SuperblockVerify(sb, img->size()).ok()) {
    ResealSuperblock(img, img->size() - kBlockSize);
    sb = Load<DiskSuperblock>(*img, img->size() - kBlockSize);
    if (!SuperblockVerify(sb, img->size()).ok()) return;
  } else {
    ResealSuperblock(img, sb.replica_off);
  }
  auto state = Load<DiskJournalState>(*img, sb.journal_off);
  if (state.magic == kJournalStateMagic) {
    JournalStateSeal(&state);
    Store(img, sb.journal_off, state);
  }
  ResealTxn(img, sb);
  for (uint64_t au = 0; au < sb.au_count; ++au) {
    const uint64_t off = sb.rmap_off + au * sizeof(DiskRmapRecord);
    auto rec = Load<DiskRmapRecord>(*img, off);
    if (rec.ino == 0 && rec.kind == 0 && rec.file_au == 0 && rec.crc == 0) continue;
    Owner o;
    o.kind = static_cast<OwnerKind>(rec.kind);
    o.ino = rec.ino;
    o.generation = rec.generation;
    o.file_au = rec.file_au;
    DiskRmapRecord sealed = ReverseMap::Encode(au, o);
    sealed.flags = rec.flags;
    sealed.crc = 0;
    sealed.crc = Crc32c(&sealed, sizeof(sealed), static_cast<uint32_t>(au));
    Store(img, off, sealed);
  }
  for (uint64_t ino = 1; ino < sb.inode_count; ++ino) ResealInode(img, sb, ino);
}

BaseImage MakeBaseImage(uint64_t size, uint64_t au_size, bool retire) {
  BaseImage base;
  base.image = std::make_shared<MemImage>(size);
  auto region = std::make_unique<MemRegion>(base.image, false, "mem:base");
  MkfsParams params;
  params.au_size = au_size;
  params.bytes_per_inode = 65536;
  if (!Filesystem::Format(region.get(), params).ok()) Violated("base image: format failed");
  // Fixed uuid and name-hash seed: the same input must hash names the same way every run.
  for (uint64_t off : {uint64_t{0}, size - kBlockSize}) {
    auto sb = Load<DiskSuperblock>(*base.image, off);
    std::memset(sb.uuid, 0x5a, sizeof(sb.uuid));
    sb.hash_seed = 0x1234567;
    sb.mkfs_time_sec = 0;
    SuperblockSeal(&sb);
    Store(base.image.get(), off, sb);
  }
  auto mounted = Filesystem::MountRegion(std::move(region), MountOptions{});
  if (!mounted.ok()) Violated("base image: mount failed: " + mounted.status().ToString());
  Filesystem* fs = mounted->get();
  const Caller root{0, 0, 0};
  auto must = [](auto r, const char* what) {
    if (!r.ok()) Violated(std::string("base image: ") + what + ": " + r.status().ToString());
    return std::move(r).value();
  };
  base.dir_ino = must(fs->Mkdir(kRootIno, "d", 0755, root), "mkdir").ino;
  must(fs->Mkdir(base.dir_ino, "sub", 0700, root), "mkdir sub");
  std::string data(3 * 4096 + 123, 'x');  // small: seeds stay small with 2 MiB AUs too
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 13);
  for (int i = 0; i < 80; ++i) {  // enough names for the directory to split its bucket
    auto [e, f] = must(fs->Create(base.dir_ino, "f" + std::to_string(i), 0644, O_RDWR, root),
                       "create");
    if (i == 0) base.file_ino = e.ino;
    if (i < 4) must(fs->Write(f, 0, data.data(), i == 0 ? data.size() : 100 + i), "write");
    fs->Release(f);
  }
  auto [big, bigf] = must(fs->Create(kRootIno, "big", 0644, O_RDWR, root), "create big");
  auto [fill, fillf] = must(fs->Create(kRootIno, "fill", 0644, O_RDWR, root), "create fill");
  base.big_ino = big.ino;
  const std::string chunk(512, 'b');
  for (uint64_t i = 0; i < 8; ++i) {  // alternating one-AU appends: 8 extents, one block
    must(fs->Write(bigf, i * au_size, chunk.data(), chunk.size()), "write big");
    must(fs->Write(fillf, i * au_size, chunk.data(), chunk.size()), "write fill");
  }
  fs->Release(bigf);
  fs->Release(fillf);
  must(fs->Link(base.file_ino, kRootIno, "hardlink"), "link");
  must(fs->Symlink(kRootIno, "short", "d/f0", root), "symlink");
  must(fs->Symlink(base.dir_ino, "long", std::string(200, 'L'), root), "symlink long");
  auto [orphan, orphanf] = must(fs->Create(kRootIno, "orphan", 0600, O_RDWR, root), "orphan");
  must(fs->Write(orphanf, 0, "gone", 4), "write orphan");
  if (!fs->Unlink(kRootIno, "orphan").ok()) Violated("base image: unlink");
  (void)orphan;
  if (!fs->Rename(base.dir_ino, "f5", kRootIno, "moved", 0).ok()) Violated("base image: rename");
  if (retire) {
    fs->Release(orphanf);  // frees the orphan
    if (!fs->Unmount().ok()) Violated("base image: unmount");
  }
  return base;
}

std::shared_ptr<MemImage> CopyImage(const MemImage& image) {
  auto copy = std::make_shared<MemImage>(image.size());
  std::memcpy(copy->data(), const_cast<MemImage&>(image).data(), image.size());
  return copy;
}

std::optional<DiskSuperblock> ValidSuperblock(const MemImage& image) {
  if (image.size() < 2 * kBlockSize) return std::nullopt;
  for (uint64_t off : {uint64_t{0}, image.size() - kBlockSize}) {
    auto sb = Load<DiskSuperblock>(image, off);
    if (SuperblockVerify(sb, image.size()).ok()) return sb;
  }
  return std::nullopt;
}

void ReadEverything(Filesystem* fs) {
  std::set<uint64_t> seen_dirs;
  std::vector<std::pair<uint64_t, int>> stack = {{kRootIno, 0}};
  std::vector<char> buf(1 << 16);
  while (!stack.empty()) {
    const auto [dir, depth] = stack.back();
    stack.pop_back();
    if (!seen_dirs.insert(dir).second || depth > 32) continue;
    auto entries = fs->ListDir(dir);
    if (!entries.ok()) continue;
    size_t asked_path = 0;
    for (const DirListEntry& e : *entries) {
      if (e.name == "." || e.name == "..") continue;
      auto found = fs->Lookup(dir, e.name);
      if (!found.ok()) continue;
      const uint64_t ino = found->ino;
      const mode_t mode = found->attr.st_mode;
      if (asked_path++ < 3) (void)fs->PathOf(ino);  // each lists the parent: a few suffice
      (void)fs->Bmap(ino);
      if (S_ISDIR(mode)) {
        stack.push_back({ino, depth + 1});
      } else if (S_ISLNK(mode)) {
        (void)fs->ReadLink(ino);
      } else if (S_ISREG(mode)) {
        auto f = fs->Open(ino, O_RDONLY);
        if (f.ok()) {
          for (uint64_t off = 0; off < (1u << 20); off += buf.size()) {
            auto n = fs->Read(*f, off, buf.size(), buf.data());
            if (!n.ok() || *n < buf.size()) break;
          }
          fs->Release(*f);
        }
      }
      fs->Forget(ino, 1);
    }
  }
  const DiskSuperblock& sb = fs->superblock();
  (void)fs->Owners(0, std::min<uint64_t>(sb.region_size, 64 * sb.au_size));
  (void)fs->StatFs();
}

void ChangeSomething(Filesystem* fs) {
  const Caller root{0, 0, 0};
  auto created = fs->Create(kRootIno, "fuzz-new", 0644, O_RDWR, root);
  if (created.ok()) {
    auto [entry, file] = *created;
    std::string data(10000, 'n');
    (void)fs->Write(file, 4096, data.data(), data.size());
    (void)fs->Fsync(file, false);
    fs->Release(file);
    (void)fs->Rename(kRootIno, "fuzz-new", kRootIno, "fuzz-renamed", 0);
    (void)fs->Unlink(kRootIno, "fuzz-renamed");
    fs->Forget(entry.ino, 1);
  }
  auto dir = fs->Mkdir(kRootIno, "fuzz-dir", 0755, root);
  if (dir.ok()) {
    (void)fs->Rmdir(kRootIno, "fuzz-dir");
    fs->Forget(dir->ino, 1);
  }
}

}  // namespace udax::fuzz
