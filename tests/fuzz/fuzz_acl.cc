// fuzz_acl.cc -- POSIX ACL xattr decoding and the mode arithmetic on decoded ACLs
// (fs/format/posix_acl).
//
// ACL values come from setxattr callers and from the image's attribute blobs alike.
// Input: 2 bytes of mode (little-endian, permission and special bits), then the value of
// a system.posix_acl_* attribute. Properties, for every value AclDecode accepts:
//  - encode -> decode gives the same ACL, and that encoding is canonical;
//  - AclEquivMode says "equivalent to a mode" exactly for the three-entry ACLs;
//  - AclChmod then AclEquivMode gives back the chmod's permission bits, and keeps the
//    mode's other bits;
//  - AclCreateMasq only takes permissions away (from the ACL and from the mode), the
//    masked ACL still decodes, and the mode it leaves is the one the ACL now implies.
#include <cstring>
#include <string>

#include "fs/format/posix_acl.h"
#include "tests/fuzz/fuzz_common.h"

using namespace udax;

namespace {

bool SameAcl(const Acl& a, const Acl& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].tag != b[i].tag || a[i].perm != b[i].perm || a[i].id != b[i].id) return false;
  }
  return true;
}

Acl MustDecode(const std::string& value, const char* what) {
  Result<Acl> acl = AclDecode(value);
  if (!acl.ok()) fuzz::Violated(std::string(what) + ": " + acl.status().message());
  return *acl;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint16_t mode16;
  std::memcpy(&mode16, data, sizeof(mode16));
  const uint32_t mode = mode16 & 07777u;
  const std::string value(reinterpret_cast<const char*>(data + 2), size - 2);
  Result<Acl> decoded = AclDecode(value);
  if (!decoded.ok()) return 0;
  const Acl acl = *decoded;

  const std::string encoded = AclEncode(acl);
  const Acl round = MustDecode(encoded, "encoded ACL does not decode");
  if (!SameAcl(round, acl)) fuzz::Violated("decode -> encode -> decode changed the ACL");
  if (AclEncode(round) != encoded) fuzz::Violated("ACL encoding is not canonical");
  if (acl.empty()) return 0;

  uint32_t equiv = mode;
  const bool not_equiv = AclEquivMode(acl, &equiv);
  if (not_equiv != (acl.size() != 3)) fuzz::Violated("AclEquivMode misjudged equivalence");
  if ((equiv & ~0777u) != (mode & ~0777u)) fuzz::Violated("AclEquivMode changed special bits");

  Acl chmodded = acl;
  AclChmod(&chmodded, mode);
  uint32_t after_chmod = 0;
  AclEquivMode(chmodded, &after_chmod);
  if ((after_chmod & 0777u) != (mode & 0777u)) fuzz::Violated("chmod's bits lost in the ACL");
  MustDecode(AclEncode(chmodded), "ACL after chmod does not decode");

  Acl masked = acl;
  uint32_t created = mode;
  const bool masq_not_equiv = AclCreateMasq(&masked, &created);
  if (masq_not_equiv != not_equiv) fuzz::Violated("AclCreateMasq misjudged equivalence");
  if ((created & ~mode) != 0 || (created & ~0777u) != (mode & ~0777u)) {
    fuzz::Violated("AclCreateMasq granted a mode bit");
  }
  for (size_t i = 0; i < acl.size(); ++i) {
    if (masked[i].perm & ~acl[i].perm) fuzz::Violated("AclCreateMasq granted a permission");
  }
  const Acl masked_round = MustDecode(AclEncode(masked), "masked ACL does not decode");
  uint32_t implied = 0;
  AclEquivMode(masked_round, &implied);
  if ((implied & 0777u) != (created & 0777u)) {
    fuzz::Violated("the mode AclCreateMasq left is not the one its ACL implies");
  }
  return 0;
}
