// fuzz_xattr.cc -- decoding of an inode's extended-attribute blob (fs/format/xattr_blob).
//
// The blob is what a damaged or hostile image hands the daemon on every getxattr and
// listxattr, so its decoder must refuse anything it cannot account for byte by byte.
// Input: a flags byte, 8 bytes of owner inode number (little-endian), then the blob.
// flags bit 0 reseals the blob's CRC for that inode, so the fuzzer reaches the entry
// checks behind the checksum. Properties, for every blob that decodes:
//  - every name is 1..255 bytes without a NUL, and the entries account for every byte
//    (XattrBlobSize of the result is the blob's length; a bare header with no entries,
//    which the daemon never writes, is the one other way to say "none");
//  - encoding the result and decoding it again gives the same attributes, and that
//    encoding is canonical (a second round trip gives the same bytes);
//  - the blob is bound to its owner: the same bytes fail for another inode.
#include <cstring>
#include <vector>

#include "fs/format/xattr_blob.h"
#include "tests/fuzz/fuzz_common.h"

using namespace udax;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 + sizeof(uint64_t)) return 0;
  const uint8_t flags = data[0];
  uint64_t ino;
  std::memcpy(&ino, data + 1, sizeof(ino));
  std::vector<uint8_t> blob(data + 1 + sizeof(ino), data + size);
  if (flags & 1) XattrBlobSeal(blob.data(), blob.size(), ino);

  XattrMap attrs;
  if (!XattrBlobDecode(blob.data(), blob.size(), ino, &attrs).ok()) return 0;
  for (const auto& [name, value] : attrs) {
    if (name.empty() || name.size() > 255 || name.find('\0') != std::string::npos) {
      fuzz::Violated("decoded an attribute name no listxattr can carry");
    }
  }
  // No attributes are stored as no blob, but a bare header (count 0) decodes to none too:
  // the daemon never writes one, and reading it is harmless.
  const bool bare_header = attrs.empty() && !blob.empty();
  if (XattrBlobSize(attrs) + (bare_header ? sizeof(DiskXattrHeader) : 0) != blob.size()) {
    fuzz::Violated("decoded entries do not fill the blob");
  }

  const std::vector<uint8_t> again = XattrBlobEncode(attrs, ino);
  if (!bare_header && again.size() != blob.size()) {
    fuzz::Violated("re-encoding changed the blob's length");
  }
  XattrMap round;
  const Status st = XattrBlobDecode(again.data(), again.size(), ino, &round);
  if (!st.ok()) fuzz::Violated("re-encoded blob does not decode: " + st.message());
  if (round != attrs) fuzz::Violated("decode -> encode -> decode changed the attributes");
  if (XattrBlobEncode(round, ino) != again) fuzz::Violated("encoding is not canonical");

  if (!attrs.empty()) {
    XattrMap other;
    if (XattrBlobDecode(blob.data(), blob.size(), ino ^ 1, &other).ok()) {
      fuzz::Violated("a blob decoded for an inode it does not belong to");
    }
  }
  return 0;
}
