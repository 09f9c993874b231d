// posix_acl.h -- POSIX ACLs in their xattr form ("system.posix_acl_access" and
// "system.posix_acl_default"), and the mode arithmetic Linux filesystems do with them.
//
// With FUSE_CAP_POSIX_ACL the kernel enforces ACLs but leaves it to the filesystem to
// store them, keep the mode in sync and inherit default ACLs on create. These functions
// follow fs/posix_acl.c (posix_acl_create_masq, posix_acl_equiv_mode, __posix_acl_chmod)
// so udaxfs answers exactly as ext4 or XFS would.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fs/base/status.h"

namespace udax {

inline constexpr char kAclAccessXattr[] = "system.posix_acl_access";
inline constexpr char kAclDefaultXattr[] = "system.posix_acl_default";

enum AclTag : uint16_t {
  kAclUserObj = 0x01,
  kAclUser = 0x02,
  kAclGroupObj = 0x04,
  kAclGroup = 0x08,
  kAclMask = 0x10,
  kAclOther = 0x20,
};

struct AclEntry {
  uint16_t tag = 0;
  uint16_t perm = 0;  // rwx bits
  uint32_t id = 0;    // uid or gid for kAclUser / kAclGroup
};

using Acl = std::vector<AclEntry>;

// Parses and validates the xattr form (version 2 header, 8-byte entries in the order the
// kernel keeps them, the required entries present); EINVAL when malformed.
Result<Acl> AclDecode(std::string_view value);
std::string AclEncode(const Acl& acl);

// New inode under a default ACL: masks `acl` (a copy of the parent's default) with the
// requested permission bits and the ACL with them (*mode keeps its type and special bits).
// Returns true when the ACL says more than the mode (so it must be stored).
bool AclCreateMasq(Acl* acl, uint32_t* mode);
// The permission bits an access ACL implies (*mode keeps the rest); true when the ACL is
// not equivalent to a mode (so it must be stored).
bool AclEquivMode(const Acl& acl, uint32_t* mode);
// chmod: the owner, group-or-mask and other entries take the new permission bits.
void AclChmod(Acl* acl, uint32_t mode);

}  // namespace udax
