// check_copies.cc -- the scrub of metadata copies: both copies of every record in use
// read, compared, and the bad one named (and mended, where the filesystem may write).
#include <cstring>

#include "fs/core/checker.h"
#include "fs/core/filesystem.h"
#include "fs/format/xattr_blob.h"

namespace udax {

void Checker::CompareCopies(Filesystem* fs, const std::string& what, uint64_t off, uint64_t n,
                            const CopyCheck& valid, CheckReport* report) {
  fs->mu_.AssertHeld();
  const uint64_t copy = CopyOffset(fs->sb_, off);
  if (copy == 0 || n == 0) return;
  // A copy on a lost device is gone by design: fsck counts those (DegradedSummary).
  if (fs->region_->device_lost(DeviceOfOffset(fs->sb_, off)) ||
      fs->region_->device_lost(DeviceOfOffset(fs->sb_, copy))) {
    return;
  }
  std::vector<uint8_t> first(n), second(n);
  const bool read1 = fs->region_->ReadSafe(off, first.data(), n).ok();
  const bool read2 = fs->region_->ReadSafe(copy, second.data(), n).ok();
  if (read1 && read2 && std::memcmp(first.data(), second.data(), n) == 0) return;
  const bool good1 = read1 && (!valid || valid(first.data()));
  const bool good2 = read2 && (!valid || valid(second.data()));
  const bool mend = fs->mend_copies_ && !fs->options_.read_only;
  auto mended = [&](uint64_t good, uint64_t bad, bool bad_reads) {
    fs->mu_.AssertHeld();  // a lambda is analysed on its own
    if (!mend) return std::string();
    // A copy that reads but fails its check gets exactly the record back, not its
    // neighbours (their own copies may be the bad ones); one that does not read, whole
    // 512-byte blocks, to clear its poison.
    Status st = fs->MendCopy(good, bad, n, /*whole_blocks=*/!bad_reads);
    return st.ok() ? std::string(": rewritten from the other copy")
                   : ": could not be rewritten (" + st.message() + ")";
  };
  if (good1 && !good2) {
    report->Add("second copy of " + what + (read2 ? " is damaged" : " does not read") +
                mended(off, copy, read2));
  } else if (good2 && !good1) {
    report->Add("first copy of " + what + (read1 ? " is damaged" : " does not read") +
                mended(copy, off, read1));
  } else if (good1 && good2) {
    // Both pass their checks and differ: a record without a checksum (a symlink target)
    // or a torn repair. The first copy is the one every read takes.
    report->Add("the two copies of " + what + " differ" + mended(off, copy, true));
  } else {
    report->Add("both copies of " + what + " are damaged");
  }
}

void Checker::CheckCopiesOf(Filesystem* fs, const DiskSuperblock& sb, Inode* inode,
                            CheckReport* report) {
  fs->mu_.AssertHeld();
  const uint64_t ino = inode->ino;
  const std::string who = "inode " + std::to_string(ino);
  const uint64_t au = sb.au_size;
  const ExtentMap& m = inode->extents;
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const uint64_t at = m.blocks[i] * au;
    const std::string what = "extent block " + std::to_string(i) + " of " + who;
    CompareCopies(fs, what, at, sizeof(DiskExtentBlockHeader), [&](const uint8_t* p) {
      DiskExtentBlockHeader h;
      std::memcpy(&h, p, sizeof(h));
      return ExtentBlockValid(h, ino) && h.index == i;
    }, report);
    // The slots in use in this block (what lies past them is never read).
    const uint64_t per = ExtentsPerBlock(sb);
    const uint64_t used = inode->d.ext_count > kInlineExtents + i * per
                              ? std::min<uint64_t>(per, inode->d.ext_count - kInlineExtents - i * per)
                              : 0;
    for (uint64_t s = 0; s < used; ++s) {
      CompareCopies(fs, what + " slot " + std::to_string(s),
                    at + sizeof(DiskExtentBlockHeader) + s * sizeof(DiskExtent), sizeof(DiskExtent),
                    [&](const uint8_t* p) {
                      DiskExtent e;
                      std::memcpy(&e, p, sizeof(e));
                      return ExtentValid(e, ino);
                    }, report);
    }
  }
  auto offset_of = [&](uint64_t byte) -> uint64_t {
    uint64_t run;
    const uint64_t phys = fs->MapAu(*inode, byte / au, 1, &run);
    return phys == 0 ? 0 : phys * au + byte % au;
  };
  if (S_ISDIR(inode->d.mode)) {
    // The blocks in use that the map holds (a damaged count must not make the walk, or a
    // list of blocks, as large as the counts say: the walk of the entries reports those).
    std::vector<uint64_t> logical;
    for (const auto& [file_au, e] : m.by_file) {
      if (file_au >= kXattrFileAu) break;
      for (uint64_t b = file_au * au / kBlockSize; b < (file_au + e.len) * au / kBlockSize; ++b) {
        if (b < inode->d.dir_buckets || (b >= kDirOvfBase && b - kDirOvfBase < inode->d.dir_ovf_next)) {
          logical.push_back(b);
        }
      }
    }
    for (uint64_t l : logical) {
      const uint64_t at = offset_of(l * kBlockSize);
      CompareCopies(fs, "directory block " + std::to_string(l) + " of " + who, at, kBlockSize,
                    [](const uint8_t* p) {
                      DirBlock block;
                      return DirBlockDecode(p, &block).ok();
                    }, report);
    }
  } else if (S_ISLNK(inode->d.mode) && !(inode->d.flags & kInodeInlineData)) {
    const uint64_t at = offset_of(0);
    if (at != 0 && inode->d.size <= kMaxSymlinkLen) {
      CompareCopies(fs, "the symlink target of " + who, at, inode->d.size, nullptr, report);
    }
  }
  // The attribute blob: its checksum covers the whole blob, so each AU's piece is judged
  // by whether the blob it makes with the other pieces of its copy decodes.
  const uint32_t len = inode->d.xattr_bytes;
  if (len == 0 || len > kMaxXattrBytes) return;
  std::vector<uint8_t> blob1(len), blob2(len);
  bool read1 = true, read2 = true;
  for (uint64_t done = 0; done < len; done += au) {
    const uint64_t at = offset_of(kXattrFileAu * au + done);
    const uint64_t n = std::min<uint64_t>(au, len - done);
    if (at == 0) return;  // the scrub of the blob reports it
    read1 = read1 && fs->region_->ReadSafe(at, blob1.data() + done, n).ok();
    read2 = read2 && fs->region_->ReadSafe(CopyOffset(sb, at), blob2.data() + done, n).ok();
  }
  XattrMap attrs;
  const bool good1 = read1 && XattrBlobDecode(blob1.data(), len, ino, &attrs).ok();
  attrs.clear();
  const bool good2 = read2 && XattrBlobDecode(blob2.data(), len, ino, &attrs).ok();
  for (uint64_t done = 0; done < len; done += au) {
    const uint64_t at = offset_of(kXattrFileAu * au + done);
    const uint64_t n = std::min<uint64_t>(au, len - done);
    CompareCopies(fs, "the extended attributes of " + who, at, n,
                  [&](const uint8_t* p) {
                    // A piece is good when it is the piece of a copy whose blob decodes.
                    return (good1 && std::memcmp(p, blob1.data() + done, n) == 0) ||
                           (good2 && std::memcmp(p, blob2.data() + done, n) == 0);
                  },
                  report);
  }
}

}  // namespace udax
