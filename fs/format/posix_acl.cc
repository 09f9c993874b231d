// posix_acl.cc -- POSIX ACL xattrs: parse, encode, and the mode arithmetic of
// fs/posix_acl.c.
#include "fs/format/posix_acl.h"

#include <cerrno>
#include <cstring>

namespace udax {
namespace {

constexpr uint32_t kAclXattrVersion = 2;
constexpr size_t kAclHeaderSize = 4;
constexpr size_t kAclEntrySize = 8;
constexpr uint32_t kRwx = 07;

// Tags in the order posix_acl_valid() demands; user and group entries sorted by id.
int TagRank(uint16_t tag) {
  switch (tag) {
    case kAclUserObj: return 0;
    case kAclUser: return 1;
    case kAclGroupObj: return 2;
    case kAclGroup: return 3;
    case kAclMask: return 4;
    case kAclOther: return 5;
    default: return -1;
  }
}

Status Invalid(const std::string& why) { return Status::Error(EINVAL, "ACL: " + why); }

}  // namespace

Result<Acl> AclDecode(std::string_view value) {
  if (value.size() < kAclHeaderSize || (value.size() - kAclHeaderSize) % kAclEntrySize != 0) {
    return Invalid("bad size");
  }
  uint32_t version;
  std::memcpy(&version, value.data(), sizeof(version));
  if (version != kAclXattrVersion) return Invalid("unknown version");
  Acl acl((value.size() - kAclHeaderSize) / kAclEntrySize);
  int last_rank = -1;
  uint32_t last_id = 0;
  int seen[6] = {};
  for (size_t i = 0; i < acl.size(); ++i) {
    const char* p = value.data() + kAclHeaderSize + i * kAclEntrySize;
    AclEntry& e = acl[i];
    std::memcpy(&e.tag, p, 2);
    std::memcpy(&e.perm, p + 2, 2);
    std::memcpy(&e.id, p + 4, 4);
    const int rank = TagRank(e.tag);
    if (rank < 0) return Invalid("unknown tag");
    if (e.perm & ~kRwx) return Invalid("bad permission bits");
    if (rank < last_rank) return Invalid("entries out of order");
    const bool has_id = e.tag == kAclUser || e.tag == kAclGroup;
    if (rank == last_rank && (!has_id || e.id <= last_id)) return Invalid("duplicate entry");
    if (!has_id) e.id = 0;  // the kernel sends ACL_UNDEFINED_ID there
    last_rank = rank;
    last_id = e.id;
    seen[rank]++;
  }
  if (acl.empty()) return acl;  // an empty ACL is valid (it clears)
  if (!seen[0] || !seen[2] || !seen[5]) return Invalid("owner, group or other entry missing");
  if ((seen[1] || seen[3]) && !seen[4]) return Invalid("mask entry missing");
  return acl;
}

std::string AclEncode(const Acl& acl) {
  std::string out(kAclHeaderSize + acl.size() * kAclEntrySize, '\0');
  std::memcpy(out.data(), &kAclXattrVersion, sizeof(kAclXattrVersion));
  for (size_t i = 0; i < acl.size(); ++i) {
    char* p = out.data() + kAclHeaderSize + i * kAclEntrySize;
    const AclEntry& e = acl[i];
    const bool has_id = e.tag == kAclUser || e.tag == kAclGroup;
    const uint32_t id = has_id ? e.id : UINT32_MAX;  // ACL_UNDEFINED_ID, as the kernel writes
    std::memcpy(p, &e.tag, 2);
    std::memcpy(p + 2, &e.perm, 2);
    std::memcpy(p + 4, &id, 4);
  }
  return out;
}

bool AclCreateMasq(Acl* acl, uint32_t* mode_p) {
  uint32_t mode = *mode_p;
  AclEntry* group_obj = nullptr;
  AclEntry* mask = nullptr;
  bool not_equiv = false;
  for (AclEntry& e : *acl) {
    switch (e.tag) {
      case kAclUserObj:
        e.perm &= (mode >> 6) & kRwx;
        mode &= (e.perm << 6) | ~0700u;
        break;
      case kAclUser:
      case kAclGroup:
        not_equiv = true;
        break;
      case kAclGroupObj:
        group_obj = &e;
        break;
      case kAclOther:
        e.perm &= mode & kRwx;
        mode &= e.perm | ~0007u;
        break;
      case kAclMask:
        mask = &e;
        not_equiv = true;
        break;
    }
  }
  AclEntry* group_bits = mask ? mask : group_obj;
  if (group_bits) {
    group_bits->perm &= (mode >> 3) & kRwx;
    mode &= (group_bits->perm << 3) | ~0070u;
  }
  *mode_p = (*mode_p & ~0777u) | (mode & 0777u);
  return not_equiv;
}

bool AclEquivMode(const Acl& acl, uint32_t* mode_p) {
  uint32_t mode = 0;
  bool not_equiv = false;
  for (const AclEntry& e : acl) {
    switch (e.tag) {
      case kAclUserObj: mode |= (e.perm & kRwx) << 6; break;
      case kAclGroupObj: mode |= (e.perm & kRwx) << 3; break;
      case kAclOther: mode |= e.perm & kRwx; break;
      case kAclMask:
        mode = (mode & ~0070u) | ((e.perm & kRwx) << 3);
        not_equiv = true;
        break;
      case kAclUser:
      case kAclGroup: not_equiv = true; break;
    }
  }
  *mode_p = (*mode_p & ~0777u) | mode;
  return not_equiv;
}

void AclChmod(Acl* acl, uint32_t mode) {
  AclEntry* group_obj = nullptr;
  AclEntry* mask = nullptr;
  for (AclEntry& e : *acl) {
    switch (e.tag) {
      case kAclUserObj: e.perm = (mode >> 6) & kRwx; break;
      case kAclGroupObj: group_obj = &e; break;
      case kAclMask: mask = &e; break;
      case kAclOther: e.perm = mode & kRwx; break;
      default: break;
    }
  }
  if (mask) {
    mask->perm = (mode >> 3) & kRwx;
  } else if (group_obj) {
    group_obj->perm = (mode >> 3) & kRwx;
  }
}

}  // namespace udax
