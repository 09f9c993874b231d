// xattr_blob.h -- the on-media form of an inode's extended attributes (see
// DiskXattrHeader in disk_format.h): one sealed blob holding every name and value.
//
// A blob is small (at most kMaxXattrBytes) and rewritten whole on every change, which keeps
// the format trivial to check and lets one journal transaction carry the new version.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fs/format/disk_format.h"
#include "fs/base/status.h"

namespace udax {

// Full names ("user.foo", "system.posix_acl_access") -> values, in name order.
using XattrMap = std::map<std::string, std::string, std::less<>>;

// Bytes the blob of `attrs` takes (header included); 0 for no attributes.
size_t XattrBlobSize(const XattrMap& attrs);
// Encodes and seals (the CRC is bound to the owner inode). Empty map -> empty blob.
std::vector<uint8_t> XattrBlobEncode(const XattrMap& attrs, uint64_t ino);
// Recomputes the CRC of a blob of `len` bytes (at least a header) for owner `ino`: what
// Encode does last; the fuzzer uses it to reach the checks behind the checksum.
void XattrBlobSeal(uint8_t* blob, size_t len, uint64_t ino);
// Decodes a blob of `len` bytes; Corruption names what is wrong. len 0 -> empty map.
Status XattrBlobDecode(const uint8_t* blob, size_t len, uint64_t ino, XattrMap* attrs);

}  // namespace udax
