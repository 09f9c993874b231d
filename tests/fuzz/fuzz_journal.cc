// fuzz_journal.cc -- journal replay of a mutated transaction slot, then mount and fsck.
//
// The base image is a populated filesystem whose journal slot still holds its last
// committed transaction (as after a crash). Input: a flags byte, then bytes written over
// the slot. flags bit 0 makes the slot look committed (magic, commit == seq, CRC resealed)
// so replay gets past its integrity checks and applies the records. Properties: replay
// never writes the superblock's AU or the replica's; mount refuses or serves; a repair
// leaves nothing for a second check to find.
#include <cstring>

#include "fs/core/journal.h"
#include "fs/core/repair.h"
#include "fs/format/crc32c.h"
#include "tests/fuzz/fuzz_common.h"

using namespace udax;

namespace {

fuzz::BaseImage* base;
std::shared_ptr<MemImage> work;  // the base image; each input's changes are undone

void Seal(uint8_t* slot, uint64_t slot_len) {
  DiskTxnHeader h;
  std::memcpy(&h, slot, sizeof(h));
  h.magic = kTxnMagic;
  if (h.seq == 0) h.seq = 1;
  h.commit = h.seq;
  if (h.bytes > slot_len - sizeof(h)) h.bytes %= slot_len - sizeof(h);
  h.crc = 0;
  const size_t from = offsetof(DiskTxnHeader, magic);
  uint32_t crc = Crc32c(reinterpret_cast<const uint8_t*>(&h) + from, sizeof(h) - from);
  h.crc = Crc32c(slot + sizeof(h), h.bytes, crc);
  std::memcpy(slot, &h, sizeof(h));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  base = new fuzz::BaseImage(fuzz::MakeBaseImage(16 << 20, kAuSize4K, false));
  work = fuzz::CopyImage(*base->image);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::shared_ptr<MemImage>& image = work;
  image->Undo();  // the last input's changes
  DiskSuperblock sb;
  std::memcpy(&sb, image->data(), sizeof(sb));
  const uint64_t slot_off = sb.journal_off + kBlockSize;
  const uint64_t slot_len = sb.journal_len - kBlockSize;
  image->MarkDirty(slot_off, std::max<uint64_t>(std::min<uint64_t>(size - 1, slot_len),
                                                 sizeof(DiskTxnHeader)));
  std::memcpy(image->data() + slot_off, data + 1, std::min<uint64_t>(size - 1, slot_len));
  if (data[0] & 1) Seal(image->data() + slot_off, slot_len);

  const auto first_au = std::string(reinterpret_cast<char*>(image->data()), sb.au_size);
  const uint64_t last_off = (sb.au_count - 1) * sb.au_size;
  const auto last_au = std::string(reinterpret_cast<char*>(image->data() + last_off), sb.au_size);
  {
    MemRegion region(image);
    Journal journal(&region, sb);
    (void)journal.NeedsReplay();
    (void)journal.Replay();
  }
  if (std::memcmp(image->data(), first_au.data(), first_au.size()) != 0 ||
      std::memcmp(image->data() + last_off, last_au.data(), last_au.size()) != 0) {
    fuzz::Violated("journal replay wrote a superblock AU");
  }
  {
    auto fs = Filesystem::MountRegion(std::make_unique<MemRegion>(image), MountOptions{});
    if (fs.ok()) {
      fuzz::ReadEverything(fs->get());
      (void)(*fs)->Unmount();
    }
  }
  fuzz::MaybeDump(*image);
  FsckOptions repair;
  repair.repair = true;
  auto outcome = Repairer::RunOnRegion(std::make_unique<MemRegion>(image), repair);
  if (outcome.ok() && outcome->remaining.problems) {
    fuzz::Violated("problems left after repair: " + outcome->remaining.messages.front());
  }
  return 0;
}
