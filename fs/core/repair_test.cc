// repair_test.cc -- fsck --repair: every kind of damage it claims to fix is fixed, a second
// check is clean, and file data the repair could keep is still there.
#include <dirent.h>
#include <fcntl.h>

#include <cstring>
#include <map>

#include "fs/core/core_test_util.h"
#include "fs/core/repair.h"
#include "fs/format/crc32c.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

// Raw access to an unmounted image, for damaging it.
class Raw {
 public:
  explicit Raw(const std::string& path) : region_(Must(Region::Open(path, RegionOptions{}))) {
    EXPECT_TRUE(region_->ReadSafe(0, &sb_, sizeof(sb_)).ok());
  }
  const DiskSuperblock& sb() const { return sb_; }
  template <typename T>
  T Get(uint64_t off) {
    T v;
    EXPECT_TRUE(region_->ReadSafe(off, &v, sizeof(v)).ok());
    return v;
  }
  template <typename T>
  void Put(uint64_t off, const T& v) {
    EXPECT_TRUE(region_->WriteSafe(off, &v, sizeof(v), true).ok());
  }
  void Xor(uint64_t off, uint8_t mask) { Put<uint8_t>(off, Get<uint8_t>(off) ^ mask); }
  DiskInode Inode(uint64_t ino) { return Get<DiskInode>(InodeOffset(sb_, ino)); }
  void PutInode(uint64_t ino, DiskInode d, bool seal = true) {
    if (seal) InodeSeal(&d);
    Put(InodeOffset(sb_, ino), d);
  }
  void FlipAuBit(uint64_t au) { Xor(sb_.abitmap_off + au / 8, static_cast<uint8_t>(1u << (au % 8))); }
  void FlipInodeBit(uint64_t ino) {
    Xor(sb_.ibitmap_off + ino / 8, static_cast<uint8_t>(1u << (ino % 8)));
  }
  uint64_t RmapOffset(uint64_t au) const { return sb_.rmap_off + au * sizeof(DiskRmapRecord); }
  // Rewrites a directory bucket at byte offset `off` with `edit` applied to its entries.
  template <typename F>
  void EditBucket(uint64_t off, F edit) {
    uint8_t buf[kBlockSize];
    ASSERT_TRUE(region_->ReadSafe(off, buf, kBlockSize).ok());
    DirBlock b;
    ASSERT_TRUE(DirBlockDecode(buf, &b).ok());
    edit(&b.entries);
    DirBlockEncode(b, buf);
    ASSERT_TRUE(region_->WriteSafe(off, buf, kBlockSize, true).ok());
  }

 private:
  std::unique_ptr<Region> region_;
  DiskSuperblock sb_;
};

FsckOutcome Fsck(const std::string& path, bool repair, bool read_only = false) {
  FsckOptions o;
  o.repair = repair;
  o.read_only = read_only;
  return Must(Repairer::Run(path, o));
}

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7 + i / 4096);
  return s;
}

void WriteFile(Filesystem* fs, uint64_t ino, const std::string& data, uint64_t off = 0) {
  Inode* f = Must(fs->Open(ino, O_RDWR));
  ASSERT_EQ(Must(fs->Write(f, off, data.data(), data.size())), data.size());
  fs->Release(f);
}

std::string ReadFile(Filesystem* fs, uint64_t ino) {
  struct stat st = Must(fs->GetAttr(ino));
  Inode* f = Must(fs->Open(ino, O_RDONLY));
  std::string data(static_cast<size_t>(st.st_size), '\0');
  auto n = fs->Read(f, 0, data.size(), data.data());
  fs->Release(f);
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  return data;
}

uint64_t LookupPath(Filesystem* fs, const std::string& path) {
  uint64_t ino = kRootIno;
  size_t pos = 1;
  while (pos < path.size()) {
    const size_t slash = path.find('/', pos);
    const std::string name = path.substr(pos, slash == std::string::npos ? slash : slash - pos);
    auto e = fs->Lookup(ino, name);
    if (!e.ok()) return 0;
    ino = e->ino;
    pos = slash == std::string::npos ? path.size() : slash + 1;
  }
  return ino;
}

// A small tree: /d/a (3 AUs), /d/b (1 AU), /big (an extent-block chain: one-AU extents
// that cannot merge), /link (hard link of /d/a), /sym (long symlink), /e (empty dir).
struct Tree {
  uint64_t d, a, b, big, sym, e;
  std::map<uint64_t, std::string> data;
};

Tree Populate(TestImage* img) {
  Tree t;
  auto fs = img->Mount();
  t.d = Must(fs->Mkdir(kRootIno, "d", 0755, kRoot)).ino;
  t.e = Must(fs->Mkdir(kRootIno, "e", 0755, kRoot)).ino;
  t.a = Must(fs->Mknod(t.d, "a", S_IFREG | 0644, 0, kRoot)).ino;
  t.b = Must(fs->Mknod(t.d, "b", S_IFREG | 0644, 0, kRoot)).ino;
  t.big = Must(fs->Mknod(kRootIno, "big", S_IFREG | 0644, 0, kRoot)).ino;
  const uint64_t filler = Must(fs->Mknod(kRootIno, "filler", S_IFREG | 0644, 0, kRoot)).ino;
  t.data[t.a] = Pattern(3 * 4096 - 100, 'a');
  t.data[t.b] = Pattern(4096, 'b');
  WriteFile(fs.get(), t.a, t.data[t.a]);
  WriteFile(fs.get(), t.b, t.data[t.b]);
  // One-AU writes with a hole after each, so big's extents cannot merge wherever its AUs
  // land (allocation groups keep one file's AUs contiguous, whatever else is written).
  std::string big, fill;
  for (int i = 0; i < 12; ++i) {
    const std::string chunk = Pattern(4096, static_cast<char>('A' + i));
    if (i > 0) big += std::string(4096, '\0');
    WriteFile(fs.get(), t.big, chunk, big.size());
    WriteFile(fs.get(), filler, chunk, i * 4096);
    big += chunk;
    fill += chunk;
  }
  t.data[t.big] = big;
  t.data[filler] = fill;
  Must(fs->Link(t.a, kRootIno, "link"));
  t.sym = Must(fs->Symlink(kRootIno, "sym", std::string(300, 's'), kRoot)).ino;
  EXPECT_OK(fs->Unmount());
  return t;
}

// Every file of the tree still holds its data (wherever it now is).
void ExpectData(TestImage* img, const Tree& t) {
  auto fs = img->Mount();
  ASSERT_TRUE(fs);
  for (const auto& [ino, want] : t.data) {
    EXPECT_EQ(ReadFile(fs.get(), ino), want) << "inode " << ino;
  }
  EXPECT_EQ(Must(fs->ReadLink(t.sym)), std::string(300, 's'));
}

// Found problems, repaired them all, and a second fsck finds nothing.
void ExpectRepaired(TestImage* img) {
  FsckOutcome before = Fsck(img->path(), false, true);
  EXPECT_GT(before.found.problems, 0u);
  EXPECT_EQ(before.ExitCode(), kFsckUncorrected);
  FsckOutcome fix = Fsck(img->path(), true);
  std::string log;
  for (const auto& m : fix.found.messages) log += "found: " + m + "\n";
  for (const auto& m : fix.fixed) log += "fixed: " + m + "\n";
  for (const auto& m : fix.remaining.messages) log += "left: " + m + "\n";
  EXPECT_EQ(fix.ExitCode(), kFsckFixed) << log;
  EXPECT_FALSE(fix.fixed.empty()) << log;
  FsckOutcome after = Fsck(img->path(), false);
  EXPECT_EQ(after.ExitCode(), kFsckClean) << (after.found.messages.empty() ? log : after.found.messages[0]);
}

TEST(Repair, CleanImageNeedsNothing) {
  TestImage img;
  Tree t = Populate(&img);
  FsckOutcome o = Fsck(img.path(), true);
  EXPECT_EQ(o.ExitCode(), kFsckClean);
  EXPECT_TRUE(o.fixed.empty());
  ExpectData(&img, t);
}

TEST(Repair, FlippedBitmapBits) {
  TestImage img;
  Tree t = Populate(&img);
  uint64_t used_au, free_au;
  {
    auto fs = img.Mount();
    used_au = Must(fs->Bmap(t.b))[0].phys_offset / 4096;
    free_au = fs->superblock().au_count - 100;  // far past what the tree uses
  }
  {
    Raw raw(img.path());
    raw.FlipAuBit(used_au);  // in use, marked free: the next write would reuse it
    raw.FlipAuBit(free_au);  // free, marked in use: a leak
    raw.FlipInodeBit(t.e);   // an in-use directory marked free
    raw.FlipInodeBit(raw.sb().inode_count - 3);  // a free inode marked in use
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
  auto fs = img.Mount();
  EXPECT_EQ(LookupPath(fs.get(), "/e"), t.e);
}

TEST(Repair, CorruptReverseMapRecords) {
  TestImage img;
  Tree t = Populate(&img);
  uint64_t au;
  {
    auto fs = img.Mount();
    au = Must(fs->Bmap(t.a))[0].phys_offset / 4096;
  }
  {
    Raw raw(img.path());
    raw.Put(raw.RmapOffset(au), uint64_t{0x1234567812345678});  // bad CRC
    raw.Put(raw.RmapOffset(au + 1),
            ReverseMap::Encode(au + 1, Owner{OwnerKind::kFileData, t.b, 1, 9}));  // wrong owner
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
}

// A damaged extent slot is dropped; the reverse map still names the inode, offset and
// generation of its AUs, so they come back.
TEST(Repair, DamagedInlineExtentSlotRestoredFromReverseMap) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    DiskInode d = raw.Inode(t.a);
    d.extents[0].crc ^= 0x5a5a;  // only the slot's own checksum is wrong
    raw.PutInode(t.a, d);
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
}

TEST(Repair, DamagedExtentBlockSlotAndHeader) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    DiskInode d = raw.Inode(t.big);
    ASSERT_GT(d.ext_count, kInlineExtents);
    const uint64_t block = d.ext_block * raw.sb().au_size;
    raw.Xor(block + sizeof(DiskExtentBlockHeader) + 8, 0x10);  // a slot in the block
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
  {
    Raw raw(img.path());
    DiskInode d = raw.Inode(t.big);
    raw.Xor(d.ext_block * raw.sb().au_size + 4, 0x01);  // the header: the whole block goes
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
}

TEST(Repair, WrongLinkCounts) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    DiskInode a = raw.Inode(t.a);
    a.nlink = 7;
    raw.PutInode(t.a, a);
    DiskInode d = raw.Inode(t.d);
    d.nlink = 0;
    d.parent = t.e;
    raw.PutInode(t.d, d);
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
  auto fs = img.Mount();
  EXPECT_EQ(Must(fs->GetAttr(t.a)).st_nlink, 2u);
  EXPECT_EQ(Must(fs->GetAttr(t.d)).st_nlink, 2u);
  EXPECT_EQ(Must(fs->Lookup(t.d, "..")).ino, kRootIno);
}

TEST(Repair, DanglingEntryIsCleared) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    DiskInode d{};
    d.generation = raw.Inode(t.b).generation;
    raw.PutInode(t.b, d);  // /d/b's inode is free now, its entry and AU are not
    raw.FlipInodeBit(t.b);
  }
  ExpectRepaired(&img);
  t.data.erase(t.b);
  ExpectData(&img, t);
  auto fs = img.Mount();
  EXPECT_FALSE(fs->Lookup(t.d, "b").ok());
  EXPECT_EQ(Must(fs->Lookup(t.d, "a")).ino, t.a);
}

// A name listed twice, once for a free inode: the live entry must be the one that stays.
TEST(Repair, DuplicateNameKeepsTheLiveEntry) {
  TestImage img;
  Tree t = Populate(&img);
  uint64_t bucket;
  {
    auto fs = img.Mount();
    bucket = Must(fs->Bmap(t.d))[0].phys_offset;
  }
  {
    Raw raw(img.path());
    raw.EditBucket(bucket, [&](std::vector<DirEntry>* entries) {
      for (const DirEntry& e : *entries) {
        if (e.name != "b") continue;
        DirEntry dead = e;
        dead.ino = raw.sb().inode_count - 5;
        entries->insert(entries->begin(), dead);  // listed first
        break;
      }
    });
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
  auto fs = img.Mount();
  EXPECT_EQ(Must(fs->Lookup(t.d, "b")).ino, t.b);
}

// An entry whose bytes were changed and the bucket resealed: the block verifies, but a
// lookup can never find it. The check says so; the repair finds the file another home.
TEST(Repair, EntryNotWhereItsNameHashes) {
  TestImage img;
  Tree t = Populate(&img);
  uint64_t bucket;
  {
    auto fs = img.Mount();
    bucket = Must(fs->Bmap(t.d))[0].phys_offset;
  }
  {
    Raw raw(img.path());
    raw.EditBucket(bucket, [](std::vector<DirEntry>* entries) {
      for (DirEntry& e : *entries) {
        if (e.name == "b") e.name = "z";  // the stored hash stays b's
      }
    });
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
  auto fs = img.Mount();
  EXPECT_FALSE(fs->Lookup(t.d, "z").ok());
  EXPECT_EQ(LookupPath(fs.get(), "/lost+found/#" + std::to_string(t.b)), t.b);
}

TEST(Repair, UnreachableInodesGoToLostAndFound) {
  TestImage img;
  Tree t = Populate(&img);
  uint64_t bucket;
  {
    auto fs = img.Mount();
    bucket = Must(fs->Bmap(kRootIno))[0].phys_offset;
  }
  {
    Raw raw(img.path());
    // Drop the names of /big and of directory /d (and so of /d/a's first name, /d/b).
    raw.EditBucket(bucket, [](std::vector<DirEntry>* entries) {
      std::erase_if(*entries, [](const DirEntry& e) { return e.name == "big" || e.name == "d"; });
    });
    DiskInode root = raw.Inode(kRootIno);
    root.dir_entries -= 2;
    raw.PutInode(kRootIno, root);
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
  auto fs = img.Mount();
  EXPECT_EQ(LookupPath(fs.get(), "/lost+found/#" + std::to_string(t.big)), t.big);
  EXPECT_EQ(LookupPath(fs.get(), "/lost+found/#" + std::to_string(t.d) + "/b"), t.b);
  EXPECT_EQ(Must(fs->GetAttr(t.a)).st_nlink, 2u);
}

TEST(Repair, DamagedPrimarySuperblockAndReplica) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    raw.Xor(100, 0xff);  // primary: checksum mismatch
  }
  // A mount falls back to the replica on its own; fsck reports and restores the primary.
  ExpectRepaired(&img);
  ExpectData(&img, t);
  {
    Raw raw(img.path());
    raw.Xor(raw.sb().replica_off + 8, 0x01);  // replica: version
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
}

TEST(Repair, NoValidSuperblockIsOperational) {
  TestImage img;
  {
    Raw raw(img.path());
    raw.Xor(0, 0xff);
    raw.Xor(raw.sb().replica_off, 0xff);
  }
  FsckOptions o;
  o.repair = true;
  auto r = Repairer::Run(img.path(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no valid superblock"), std::string::npos);
}

TEST(Repair, DamagedJournalStateAndTransaction) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    raw.Xor(raw.sb().journal_off + 100, 0x40);  // state block
    // A committed transaction whose one record points at the superblock.
    std::vector<uint8_t> slot(sizeof(DiskTxnHeader) + sizeof(DiskTxnRecord) + 8, 0);
    DiskTxnHeader h{};
    h.magic = kTxnMagic;
    h.seq = h.commit = 77;
    h.nrec = 1;
    h.bytes = sizeof(DiskTxnRecord) + 8;
    DiskTxnRecord r{0, 8, 0};
    std::memcpy(slot.data() + sizeof(h), &r, sizeof(r));
    std::memcpy(slot.data(), &h, sizeof(h));
    // The CRC as journal.cc computes it: header from `magic` (crc zero), then the records.
    const size_t from = offsetof(DiskTxnHeader, magic);
    uint32_t crc = Crc32c(slot.data() + from, sizeof(h) - from);
    crc = Crc32c(slot.data() + sizeof(h), h.bytes, crc);
    h.crc = crc;
    std::memcpy(slot.data(), &h, sizeof(h));
    for (size_t i = 0; i < slot.size(); i += 8) {
      raw.Put(raw.sb().journal_off + kBlockSize + i, *reinterpret_cast<uint64_t*>(&slot[i]));
    }
  }
  {
    auto m = Filesystem::Mount(img.path(), {});
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find("journal"), std::string::npos) << m.status().ToString();
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
}

TEST(Repair, OrphansAreFreed) {
  TestImage img;
  uint64_t orphan;
  {
    auto fs = img.Mount();
    auto [e, f] = Must(fs->Create(kRootIno, "o", 0644, O_RDWR, kRoot));
    Must(fs->Write(f, 0, "orphan data", 11));
    ASSERT_OK(fs->Unlink(kRootIno, "o"));
    orphan = e.ino;
    // No Release and no Unmount: the process died with the file open.
  }
  FsckOutcome o = Fsck(img.path(), true);
  EXPECT_EQ(o.ExitCode(), kFsckClean);
  EXPECT_TRUE(o.repaired);
  {
    Raw raw(img.path());
    EXPECT_EQ(raw.Inode(orphan).magic, 0u);
  }
  EXPECT_EQ(Fsck(img.path(), false).ExitCode(), kFsckClean);
}

TEST(Repair, DamagedDirectoryBucketIsRebuiltFromSurvivingEntries) {
  TestImage img;
  Tree t = Populate(&img);
  uint64_t bucket;
  {
    auto fs = img.Mount();
    for (int i = 0; i < 30; ++i) {
      Must(fs->Mknod(t.d, "n" + std::to_string(i), S_IFREG | 0600, 0, kRoot));
    }
    bucket = Must(fs->Bmap(t.d))[0].phys_offset;
    ASSERT_OK(fs->Unmount());
  }
  {
    Raw raw(img.path());
    // Garble the middle of the bucket: one or two entries lose their bytes.
    for (int i = 0; i < 16; ++i) raw.Xor(bucket + 200 + i, 0xa5);
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
  auto fs = img.Mount();
  int found = 0;
  for (int i = 0; i < 30; ++i) found += fs->Lookup(t.d, "n" + std::to_string(i)).ok();
  EXPECT_GE(found, 27);  // the garbled bytes may take a few names; not the rest
  EXPECT_EQ(Must(fs->Lookup(t.d, "a")).ino, t.a);
}

TEST(Repair, DamagedInodeChecksumIsResealed) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    raw.Xor(InodeOffset(raw.sb(), t.big) + offsetof(DiskInode, mtime_sec), 0x01);
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
}

TEST(Repair, InodeDamagedBeyondRepairIsCleared) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    DiskInode d = raw.Inode(t.b);
    std::memset(&d, 0x5c, 64);  // magic, mode, everything at the front
    raw.PutInode(t.b, d, false);
  }
  ExpectRepaired(&img);
  t.data.erase(t.b);
  ExpectData(&img, t);
}

// /d/b is made to map /d/a's first AU: the reverse map says /d/a owns it, so /d/a keeps
// it, and /d/b gets its own AU back from the reverse map.
TEST(Repair, CrossLinkedAuGoesToTheOwnerTheReverseMapNames) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    DiskInode a = raw.Inode(t.a), b = raw.Inode(t.b);
    b.extents[0].phys_au = a.extents[0].phys_au;
    ExtentSeal(&b.extents[0], t.b);
    raw.PutInode(t.b, b);
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
}

// A root whose link count reads 0 (checksum resealed) and a file nobody names:
// /lost+found must still be made in the root.
TEST(Repair, RootWithoutLinks) {
  TestImage img;
  Tree t = Populate(&img);
  uint64_t bucket;
  {
    auto fs = img.Mount();
    bucket = Must(fs->Bmap(kRootIno))[0].phys_offset;
  }
  {
    Raw raw(img.path());
    raw.EditBucket(bucket, [](std::vector<DirEntry>* entries) {
      std::erase_if(*entries, [](const DirEntry& e) { return e.name == "big"; });
    });
    DiskInode root = raw.Inode(kRootIno);
    root.nlink = 0;
    root.dir_entries--;
    raw.PutInode(kRootIno, root);
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
  auto fs = img.Mount();
  EXPECT_EQ(LookupPath(fs.get(), "/lost+found/#" + std::to_string(t.big)), t.big);
  EXPECT_EQ(Must(fs->GetAttr(kRootIno)).st_nlink, 5u);  // ., .., d, e, lost+found
}

// With metadata copies the root's second copy brings it back (Copies tests); without,
// it is recreated.
TEST(Repair, DestroyedRootIsRecreatedAndItsTreeFound) {
  TestImage img(64ull << 20, kAuSize4K, 0, /*meta_copies=*/false);
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    DiskInode d{};
    raw.PutInode(kRootIno, d, false);
  }
  {
    auto m = Filesystem::Mount(img.path(), {});
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find("root inode"), std::string::npos);
  }
  ExpectRepaired(&img);
  ExpectData(&img, t);
  auto fs = img.Mount();
  EXPECT_EQ(LookupPath(fs.get(), "/lost+found/#" + std::to_string(t.d) + "/a"), t.a);
}

// Quarantined media is allocated on purpose with no owner but the record: neither a leak
// for the check nor something a repair gives back.
TEST(Repair, QuarantinedAusStayOutOfUse) {
  TestImage img;
  Tree t = Populate(&img);
  uint64_t bad;
  {
    Raw raw(img.path());
    bad = LastDataAu(raw.sb()) - 10;
    raw.FlipAuBit(bad);
    raw.Put(raw.RmapOffset(bad), ReverseMap::Encode(bad, Owner{OwnerKind::kQuarantined, 0, 0, 0}));
  }
  EXPECT_EQ(Fsck(img.path(), false).ExitCode(), kFsckClean);
  {
    Raw raw(img.path());
    raw.FlipAuBit(bad + 1);  // a real leak beside it, so the repair runs
  }
  ExpectRepaired(&img);
  Raw raw(img.path());
  EXPECT_TRUE(raw.Get<uint8_t>(raw.sb().abitmap_off + bad / 8) >> (bad % 8) & 1);
  EXPECT_FALSE(raw.Get<uint8_t>(raw.sb().abitmap_off + (bad + 1) / 8) >> ((bad + 1) % 8) & 1);
}

TEST(Repair, TwoMegabyteAllocationUnits) {
  TestImage img(256ull << 20, kAuSize2M);
  uint64_t f;
  const std::string data = Pattern(5 << 20, 'z');
  {
    auto fs = img.Mount();
    f = Must(fs->Mknod(kRootIno, "f", S_IFREG | 0644, 0, kRoot)).ino;
    WriteFile(fs.get(), f, data);
    ASSERT_OK(fs->Unmount());
  }
  {
    Raw raw(img.path());
    DiskInode d = raw.Inode(f);
    d.extents[0].crc ^= 1;
    raw.PutInode(f, d);
  }
  ExpectRepaired(&img);
  auto fs = img.Mount();
  EXPECT_EQ(ReadFile(fs.get(), f), data);
}

// --- mounts of damaged images: refuse naming the damage, or read-only; never write ---

std::string ImageBytes(const std::string& path) {
  auto region = Must(Region::Open(path, RegionOptions{}));
  std::string bytes(region->size(), '\0');
  EXPECT_TRUE(region->ReadSafe(0, bytes.data(), bytes.size()).ok());
  return bytes;
}

// A read-write mount fails with a message naming `what` and writes nothing; a read-only
// mount works and reads the tree.
void ExpectRefusedButReadOnlyWorks(TestImage* img, const Tree& t, const std::string& what) {
  const std::string before = ImageBytes(img->path());
  auto rw = Filesystem::Mount(img->path(), {});
  ASSERT_FALSE(rw.ok());
  EXPECT_NE(rw.status().message().find(what), std::string::npos) << rw.status().ToString();
  EXPECT_NE(rw.status().message().find("fsck.udaxfs --repair"), std::string::npos);
  EXPECT_TRUE(ImageBytes(img->path()) == before) << "a refused mount wrote";
  MountOptions ro;
  ro.read_only = true;
  {
    auto fs = img->Mount(ro);
    ASSERT_TRUE(fs);
    EXPECT_EQ(ReadFile(fs.get(), t.a), t.data.at(t.a));
  }
  EXPECT_TRUE(ImageBytes(img->path()) == before) << "a read-only mount wrote";
  ExpectRepaired(img);
  ExpectData(img, t);
}

TEST(MountDamaged, StaticAuMarkedFree) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    raw.FlipAuBit(raw.sb().itable_off / raw.sb().au_size);
  }
  ExpectRefusedButReadOnlyWorks(&img, t, "AU bitmap");
}

TEST(MountDamaged, JournalStateBlock) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    raw.Xor(raw.sb().journal_off + 16, 0x08);
  }
  ExpectRefusedButReadOnlyWorks(&img, t, "journal state block");
}

TEST(MountDamaged, OrphanListNamesAFreeInode) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    DiskJournalState st = raw.Get<DiskJournalState>(raw.sb().journal_off);
    st.orphan_head = raw.sb().inode_count - 2;
    JournalStateSeal(&st);
    raw.Put(raw.sb().journal_off, st);
  }
  ExpectRefusedButReadOnlyWorks(&img, t, "orphan list");
}

// An orphan whose extent names another file's AU: freeing it would free that file's data.
TEST(MountDamaged, OrphanMappingAnotherFilesAu) {
  TestImage img;
  Tree t = Populate(&img);
  uint64_t orphan;
  {
    auto fs = img.Mount();
    auto [e, f] = Must(fs->Create(kRootIno, "o", 0644, O_RDWR, kRoot));
    Must(fs->Write(f, 0, "x", 1));
    ASSERT_OK(fs->Unlink(kRootIno, "o"));
    orphan = e.ino;
  }
  {
    Raw raw(img.path());
    DiskInode o = raw.Inode(orphan), a = raw.Inode(t.a);
    o.extents[0].phys_au = a.extents[0].phys_au;
    ExtentSeal(&o.extents[0], orphan);
    raw.PutInode(orphan, o);
    // The journal still holds the unlink (the process died): retire it, or replay would
    // rewrite the inode as it was.
    raw.Put(raw.sb().journal_off + kBlockSize, uint64_t{0});
  }
  ExpectRefusedButReadOnlyWorks(&img, t, "orphan list");
}

TEST(MountDamaged, PrimarySuperblockIsRestoredByARegularMount) {
  TestImage img;
  Tree t = Populate(&img);
  {
    Raw raw(img.path());
    raw.Xor(40, 0x01);
  }
  { auto fs = img.Mount(); ASSERT_TRUE(fs); }
  EXPECT_EQ(Fsck(img.path(), false).ExitCode(), kFsckClean);
  ExpectData(&img, t);
}

}  // namespace
}  // namespace udax
