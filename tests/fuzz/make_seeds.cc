// make_seeds.cc -- udax_fuzz_seeds: writes seed inputs for the fuzz targets, and turns
// image files into sparse fuzz inputs (tests/fuzz/make_corpus.sh drives it).
//
//   udax_fuzz_seeds seeds CORPUS_DIR      in-process seeds for every target
//   udax_fuzz_seeds sparse IMAGE OUT      IMAGE (16..128 MiB) as a fuzz_image input
//   udax_fuzz_seeds image INPUT OUT       a fuzz_image input as the image it stands for
//                                         (resealed if it says so): to debug with fsck
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "fs/format/posix_acl.h"
#include "fs/format/xattr_blob.h"
#include "tests/fuzz/fuzz_common.h"

using namespace udax;

namespace {

bool Write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) fprintf(stderr, "udax_fuzz_seeds: cannot write %s\n", path.c_str());
  return static_cast<bool>(out);
}

std::string Bytes(const MemImage& img, uint64_t off, uint64_t n) {
  return std::string(reinterpret_cast<const char*>(const_cast<MemImage&>(img).data() + off), n);
}

// Seeds of fuzz_xattr ({flags, ino, blob}) and fuzz_acl ({mode, value}): sealed blobs of
// every namespace, an empty and a resealed one; access and default ACLs, minimal and with
// named entries, as setfacl sends them.
bool AttributeSeeds(const std::string& dir) {
  bool ok = true;
  for (const char* sub : {"/xattr", "/acl"}) mkdir((dir + sub).c_str(), 0755);
  auto acl = [](std::initializer_list<AclEntry> entries) { return AclEncode(Acl(entries)); };
  const std::string minimal = acl({{kAclUserObj, 6, 0}, {kAclGroupObj, 4, 0}, {kAclOther, 4, 0}});
  const std::string named = acl({{kAclUserObj, 7, 0}, {kAclUser, 6, 1000}, {kAclUser, 4, 65534},
                                 {kAclGroupObj, 5, 0}, {kAclGroup, 7, 100}, {kAclMask, 7, 0},
                                 {kAclOther, 1, 0}});
  const std::string mask_only = acl({{kAclUserObj, 7, 0}, {kAclGroupObj, 7, 0}, {kAclMask, 5, 0},
                                     {kAclOther, 0, 0}});
  auto xattr_input = [](uint8_t flags, uint64_t ino, const XattrMap& attrs) {
    const std::vector<uint8_t> blob = XattrBlobEncode(attrs, ino);
    std::string in(1, static_cast<char>(flags));
    in.append(reinterpret_cast<const char*>(&ino), sizeof(ino));
    in.append(blob.begin(), blob.end());
    return in;
  };
  const XattrMap every{{"user.mime_type", "text/plain"},
                       {"trusted.overlay.opaque", "y"},
                       {"security.selinux", std::string("system_u:object_r:tmp_t:s0\0", 27)},
                       {kAclAccessXattr, named},
                       {kAclDefaultXattr, minimal}};
  ok &= Write(dir + "/xattr/every-namespace", xattr_input(0, 42, every));
  ok &= Write(dir + "/xattr/one-user", xattr_input(0, 2, {{"user.a", "1"}}));
  ok &= Write(dir + "/xattr/big-value",
              xattr_input(0, 77, {{"user.big", std::string(kMaxXattrValue, 'v')}}));
  ok &= Write(dir + "/xattr/empty", xattr_input(0, 5, {}));
  ok &= Write(dir + "/xattr/reseal", xattr_input(1, 9, {{"user.x", ""}, {"user.y", "yy"}}));
  auto acl_input = [](uint16_t mode, const std::string& value) {
    return std::string(reinterpret_cast<const char*>(&mode), sizeof(mode)) + value;
  };
  ok &= Write(dir + "/acl/minimal", acl_input(0644, minimal));
  ok &= Write(dir + "/acl/named", acl_input(02775, named));
  ok &= Write(dir + "/acl/mask-only", acl_input(0750, mask_only));
  ok &= Write(dir + "/acl/empty", acl_input(0600, acl({})));
  return ok;
}

int Seeds(const std::string& dir) {
  const fuzz::BaseImage crashed = fuzz::MakeBaseImage(16 << 20, kAuSize4K, false);
  const fuzz::BaseImage clean = fuzz::MakeBaseImage(16 << 20, kAuSize4K, true);
  const fuzz::BaseImage big_au = fuzz::MakeBaseImage(128 << 20, kAuSize2M, true);
  DiskSuperblock sb;
  std::memcpy(&sb, clean.image->data(), sizeof(sb));
  bool ok = true;
  ok &= Write(dir + "/superblock/base-4k", std::string(1, '\0') + Bytes(*clean.image, 0, kBlockSize));
  ok &= Write(dir + "/superblock/base-2m", std::string(1, '\0') + Bytes(*big_au.image, 0, kBlockSize));
  // The committed transaction the crashed image's journal slot holds.
  DiskTxnHeader h;
  std::memcpy(&h, crashed.image->data() + sb.journal_off + kBlockSize, sizeof(h));
  ok &= Write(dir + "/journal/committed",
              std::string(1, '\0') + Bytes(*crashed.image, sb.journal_off + kBlockSize,
                                           sizeof(h) + std::min<uint64_t>(h.bytes, 1 << 16)));
  // Records: /d's inode and first bucket, /big's first extent block, as they are.
  DiskInode d, big;
  std::memcpy(&d, clean.image->data() + InodeOffset(sb, clean.dir_ino), sizeof(d));
  std::memcpy(&big, clean.image->data() + InodeOffset(sb, clean.big_ino), sizeof(big));
  uint64_t bucket = 0;
  for (uint32_t s = 0; s < d.ext_count && s < kInlineExtents; ++s) {
    if (d.extents[s].file_au == 0) bucket = d.extents[s].phys_au * sb.au_size;
  }
  ok &= Write(dir + "/records/base",
              std::string(1, '\0') + Bytes(*clean.image, InodeOffset(sb, clean.dir_ino), sizeof(d)) +
                  Bytes(*clean.image, bucket, kBlockSize) +
                  Bytes(*clean.image, big.ext_block * sb.au_size, kBlockSize));
  ok &= Write(dir + "/image/inproc-4k-clean", fuzz::ImageToSparse(*clean.image, 0));
  ok &= Write(dir + "/image/inproc-4k-crashed", fuzz::ImageToSparse(*crashed.image, 0));
  ok &= Write(dir + "/image/inproc-4k-reseal", fuzz::ImageToSparse(*clean.image, fuzz::kReseal));
  ok &= Write(dir + "/image/inproc-2m-clean", fuzz::ImageToSparse(*big_au.image, 0));
  ok &= AttributeSeeds(dir);
  return ok ? 0 : 1;
}

int Sparse(const std::string& in_path, const std::string& out_path) {
  std::ifstream in(in_path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() % (1 << 20) || bytes.size() < (16u << 20) || bytes.size() > (128u << 20)) {
    fprintf(stderr, "udax_fuzz_seeds: %s: need a whole number of MiB, 16 to 128\n",
            in_path.c_str());
    return 1;
  }
  MemImage image(bytes.size());
  std::memcpy(image.data(), bytes.data(), bytes.size());
  return Write(out_path, fuzz::ImageToSparse(image, 0)) ? 0 : 1;
}

int Image(const std::string& in_path, const std::string& out_path) {
  std::ifstream in(in_path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint8_t flags = 0;
  auto image = fuzz::SparseToImage(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                   &flags);
  if (!image) return 1;
  if (flags & fuzz::kReseal) fuzz::ResealAll(image.get());
  return Write(out_path, std::string(reinterpret_cast<const char*>(image->data()), image->size()))
             ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "seeds") return Seeds(argv[2]);
  if (argc == 4 && std::string(argv[1]) == "sparse") return Sparse(argv[2], argv[3]);
  if (argc == 4 && std::string(argv[1]) == "image") return Image(argv[2], argv[3]);
  fprintf(stderr, "usage: udax_fuzz_seeds seeds CORPUS_DIR | sparse IMAGE OUT | image INPUT OUT\n");
  return 2;
}
