// xattr_blob.cc -- encoding and checking of extended-attribute blobs.
#include "fs/format/xattr_blob.h"

#include <cstring>

#include "fs/format/crc32c.h"

namespace udax {
namespace {

uint32_t BlobCrc(const uint8_t* blob, size_t len, uint64_t ino) {
  // Seeded with the owner's inode number, so a blob read through a wrong map fails.
  constexpr size_t kCrcEnd = offsetof(DiskXattrHeader, crc) + sizeof(uint32_t);
  const uint8_t zero[sizeof(uint32_t)] = {};
  uint32_t crc = Crc32c(blob, offsetof(DiskXattrHeader, crc), static_cast<uint32_t>(ino));
  crc = Crc32c(zero, sizeof(zero), crc);
  return Crc32c(blob + kCrcEnd, len - kCrcEnd, crc);
}

}  // namespace

size_t XattrBlobSize(const XattrMap& attrs) {
  if (attrs.empty()) return 0;
  size_t n = sizeof(DiskXattrHeader);
  for (const auto& [name, value] : attrs) n += kXattrEntryFixed + name.size() + value.size();
  return n;
}

std::vector<uint8_t> XattrBlobEncode(const XattrMap& attrs, uint64_t ino) {
  std::vector<uint8_t> blob(XattrBlobSize(attrs));
  if (blob.empty()) return blob;
  DiskXattrHeader h{};
  h.magic = kXattrMagic;
  h.count = static_cast<uint32_t>(attrs.size());
  size_t pos = sizeof(h);
  for (const auto& [name, value] : attrs) {
    uint8_t fixed[kXattrEntryFixed] = {};
    fixed[0] = static_cast<uint8_t>(name.size());
    const uint32_t value_len = static_cast<uint32_t>(value.size());
    std::memcpy(fixed + 4, &value_len, sizeof(value_len));
    std::memcpy(blob.data() + pos, fixed, sizeof(fixed));
    pos += sizeof(fixed);
    std::memcpy(blob.data() + pos, name.data(), name.size());
    pos += name.size();
    std::memcpy(blob.data() + pos, value.data(), value.size());
    pos += value.size();
  }
  std::memcpy(blob.data(), &h, sizeof(h));
  XattrBlobSeal(blob.data(), blob.size(), ino);
  return blob;
}

void XattrBlobSeal(uint8_t* blob, size_t len, uint64_t ino) {
  if (len < sizeof(DiskXattrHeader)) return;
  DiskXattrHeader h;
  std::memcpy(&h, blob, sizeof(h));
  h.crc = BlobCrc(blob, len, ino);
  std::memcpy(blob, &h, sizeof(h));
}

Status XattrBlobDecode(const uint8_t* blob, size_t len, uint64_t ino, XattrMap* attrs) {
  attrs->clear();
  if (len == 0) return Status::Ok();
  const std::string who = "inode " + std::to_string(ino) + ": extended attributes: ";
  if (len < sizeof(DiskXattrHeader) || len > kMaxXattrBytes) {
    return Status::Corruption(who + "bad length " + std::to_string(len));
  }
  DiskXattrHeader h;
  std::memcpy(&h, blob, sizeof(h));
  if (h.magic != kXattrMagic) return Status::Corruption(who + "bad magic");
  if (BlobCrc(blob, len, ino) != h.crc) return Status::Corruption(who + "checksum mismatch");
  size_t pos = sizeof(h);
  for (uint32_t i = 0; i < h.count; ++i) {
    if (len - pos < kXattrEntryFixed) return Status::Corruption(who + "entry overruns the blob");
    const size_t name_len = blob[pos];
    uint32_t value_len;
    std::memcpy(&value_len, blob + pos + 4, sizeof(value_len));
    pos += kXattrEntryFixed;
    if (name_len == 0 || len - pos < name_len || len - pos - name_len < value_len) {
      return Status::Corruption(who + "entry overruns the blob");
    }
    std::string name(reinterpret_cast<const char*>(blob + pos), name_len);
    // listxattr separates names with NUL: one inside a name would split it in two there
    // (and no name the daemon is given can hold one).
    if (name.find('\0') != std::string::npos) return Status::Corruption(who + "NUL in a name");
    pos += name_len;
    std::string value(reinterpret_cast<const char*>(blob + pos), value_len);
    pos += value_len;
    if (!attrs->emplace(std::move(name), std::move(value)).second) {
      return Status::Corruption(who + "duplicate name");
    }
  }
  if (pos != len) return Status::Corruption(who + "trailing bytes");
  return Status::Ok();
}

}  // namespace udax
