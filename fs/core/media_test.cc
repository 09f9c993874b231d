// media_test.cc -- bad media, owner by owner: EIO, relocation, quarantine, repair, shutdown.
//
// Poison is emulated the way `udaxctl inject-error` does it: 512-byte sectors in the
// image's list file (in the state directory), which the Region then fails reads of.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "fs/core/core_test_util.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};
constexpr uint64_t kAu = 4096;

// Replaces the image's emulated poison with the given byte ranges (512-byte aligned).
void Poison(Filesystem* fs, const std::string& /*image*/, std::vector<RegionRange> ranges) {
  std::ofstream out(fs->region()->badblocks_path(), std::ios::trunc);
  out << "# udaxfs badblocks v1\n";
  for (const RegionRange& r : ranges) out << r.offset / 512 << " " << r.length / 512 << "\n";
  out.close();
  ASSERT_OK(fs->region()->ReloadEmulatedPoison());
}

std::string Pattern(char c, size_t n) { return std::string(n, c); }

struct Fixture {
  TestImage image;
  std::unique_ptr<Filesystem> fs = image.Mount();
  uint64_t ino = 0;
  Inode* file = nullptr;

  // A file of three AUs: 'a', 'b', 'c'.
  void MakeFile() {
    auto [e, f] = Must(fs->Create(kRootIno, "victim", 0644, O_RDWR, kRoot));
    ino = e.ino;
    file = f;
    const std::string data = Pattern('a', kAu) + Pattern('b', kAu) + Pattern('c', kAu);
    ASSERT_EQ(Must(fs->Write(f, 0, data.data(), data.size())), data.size());
  }
  uint64_t PhysOf(uint64_t file_off) {
    for (const BmapExtent& e : Must(fs->Bmap(ino))) {
      if (file_off >= e.file_offset && file_off < e.file_offset + e.length) {
        return e.phys_offset + (file_off - e.file_offset);
      }
    }
    return 0;
  }
  Status ReadAt(uint64_t off, size_t n, std::string* out) {
    out->assign(n, '\0');
    auto r = fs->Read(file, off, n, out->data());
    if (!r.ok()) return r.status();
    out->resize(r.value());
    return Status::Ok();
  }
  void ExpectClean() {
    CheckReport maps = Must(fs->checker().CrossCheckMaps());
    EXPECT_EQ(maps.problems, 0u) << (maps.messages.empty() ? "" : maps.messages[0]);
  }
};

TEST(Media, DataHitFailsOnlyTheBadBlocksThenAWriteRelocates) {
  Fixture t;
  t.MakeFile();
  const uint64_t bad = t.PhysOf(kAu + 1024);  // the third 512-byte block of the 2nd AU
  Poison(t.fs.get(), t.image.path(), {{bad, 512}});
  auto owners = Must(t.fs->media().HandleError(bad, 512));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].range.owner.kind, OwnerKind::kFileData);
  EXPECT_EQ(owners[0].range.owner.ino, t.ino);
  EXPECT_EQ(owners[0].range.offset, kAu + 1024);
  EXPECT_EQ(owners[0].range.len, 512u);
  EXPECT_EQ(owners[0].action, MediaAction::kFileEio);
  EXPECT_EQ(owners[0].path, "/victim");

  std::string got;
  EXPECT_EQ(t.ReadAt(kAu + 1024, 512, &got).code(), EIO);
  EXPECT_EQ(t.ReadAt(kAu, 2 * kAu, &got).code(), EIO);
  ASSERT_OK(t.ReadAt(0, kAu, &got));
  EXPECT_EQ(got, Pattern('a', kAu));
  ASSERT_OK(t.ReadAt(2 * kAu, kAu, &got));
  EXPECT_EQ(got, Pattern('c', kAu));
  ASSERT_OK(t.ReadAt(kAu, 1024, &got));  // the healthy blocks of the same AU
  EXPECT_EQ(got, Pattern('b', 1024));

  // A write over part of the bad block cannot be done in place.
  EXPECT_EQ(t.fs->Write(t.file, kAu + 1024, "x", 1).status().code(), EIO);
  // One covering it whole moves the AU; the AU's other bytes move with it.
  const std::string fresh = Pattern('X', 512);
  ASSERT_EQ(Must(t.fs->Write(t.file, kAu + 1024, fresh.data(), fresh.size())), 512u);
  EXPECT_NE(t.PhysOf(kAu), bad - 1024);
  ASSERT_OK(t.ReadAt(kAu, kAu, &got));
  EXPECT_EQ(got, Pattern('b', 1024) + fresh + Pattern('b', kAu - 1536));
  auto old = Must(t.fs->Owners(bad - 1024, kAu));
  ASSERT_EQ(old.size(), 1u);
  EXPECT_EQ(old[0].owner.kind, OwnerKind::kQuarantined);
  t.ExpectClean();

  // Quarantine and the relocated data survive a remount.
  t.fs->Release(t.file);
  ASSERT_OK(t.fs->Unmount());
  t.fs.reset();
  t.fs = t.image.Mount();
  t.file = Must(t.fs->Open(t.ino, O_RDWR));
  ASSERT_OK(t.ReadAt(0, 3 * kAu, &got));
  EXPECT_EQ(got, Pattern('a', kAu) + Pattern('b', 1024) + fresh + Pattern('b', kAu - 1536) +
                     Pattern('c', kAu));
  old = Must(t.fs->Owners(bad - 1024, kAu));
  EXPECT_EQ(old[0].owner.kind, OwnerKind::kQuarantined);
  t.ExpectClean();
  t.fs->Release(t.file);
}

// The media part tells its relocation listener after the metadata lock is released
// (media.h), so a listener that blocks stalls the one writer, not every metadata
// operation. Here another thread's StatFs (which takes the metadata lock) must finish
// while the listener still runs; under the lock it would wait for the listener.
TEST(Media, RelocationListenerRunsWithoutTheMetadataLock) {
  Fixture t;
  t.MakeFile();
  const uint64_t bad = t.PhysOf(kAu);
  Poison(t.fs.get(), t.image.path(), {{bad, 512}});
  (void)Must(t.fs->media().HandleError(bad, 512));
  std::future<void> statfs;
  std::vector<MediaRelocation> told;
  bool statfs_done_inside = false;
  t.fs->media().set_relocation_listener([&](const MediaRelocation& m) {
    told.push_back(m);
    statfs = std::async(std::launch::async, [&] { (void)t.fs->StatFs(); });
    statfs_done_inside = statfs.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  });
  const std::string fresh = Pattern('X', kAu);
  ASSERT_EQ(Must(t.fs->Write(t.file, kAu, fresh.data(), fresh.size())), kAu);
  statfs.wait();
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].ino, t.ino);
  EXPECT_EQ(told[0].file_offset, kAu);
  EXPECT_EQ(told[0].old_phys, bad);
  EXPECT_EQ(told[0].new_phys, t.PhysOf(kAu));
  EXPECT_TRUE(statfs_done_inside) << "the listener ran under the metadata lock";
  t.fs->media().set_relocation_listener(nullptr);
  t.ExpectClean();
  t.fs->Release(t.file);
}

// The rule of the in-place reply (filesystem.h): `send` runs with the inode's rw held and
// must take no lock. One that calls back into the filesystem aborts with the reason
// instead of deadlocking on the next truncate.
TEST(Media, InPlaceReplyTakesNoLocks) {
  // "fast": the child is forked at the statement and dies holding the parent's image,
  // which the parent removes. A "threadsafe" child runs the test from the start, makes an
  // image of its own and aborts before it can remove it (one left in /dev/shm per run).
  GTEST_FLAG_SET(death_test_style, "fast");
  Fixture t;
  t.MakeFile();
  ASSERT_TRUE(t.fs->region()->volatile_backing());
  auto reenter = [&](const char*, size_t) { (void)t.fs->GetAttr(t.ino); };
  EXPECT_DEATH((void)t.fs->ReadInPlace(t.file, 0, 100, reenter),
               "lock taken inside the in-place read reply");
  std::string got;
  EXPECT_TRUE(Must(t.fs->ReadInPlace(t.file, 0, 3, [&](const char* p, size_t n) {
    got.assign(p, n);
  })));
  EXPECT_EQ(got, "aaa");
  t.fs->Release(t.file);
}

TEST(Media, ReadInPlaceServesOneRunAndLeavesTheRestToTheSafeCopy) {
  Fixture t;
  t.MakeFile();
  ASSERT_TRUE(t.fs->region()->volatile_backing());  // test images live in /dev/shm
  std::string got;
  auto send = [&](const char* p, size_t n) { got.assign(p, n); };
  EXPECT_TRUE(Must(t.fs->ReadInPlace(t.file, 100, 5000, send)));
  EXPECT_EQ(got, Pattern('a', kAu - 100) + Pattern('b', 5000 - (kAu - 100)));
  EXPECT_TRUE(Must(t.fs->ReadInPlace(t.file, 3 * kAu - 10, 100, send)));  // clipped at EOF
  EXPECT_EQ(got, Pattern('c', 10));
  EXPECT_FALSE(Must(t.fs->ReadInPlace(t.file, 3 * kAu, 10, send)));  // at EOF: Read says 0
  // A hole, and a range that is data then hole: declined, so Read fills the zeros.
  ASSERT_EQ(Must(t.fs->Write(t.file, 10 * kAu, "z", 1)), 1u);
  EXPECT_FALSE(Must(t.fs->ReadInPlace(t.file, 5 * kAu, 100, send)));
  EXPECT_FALSE(Must(t.fs->ReadInPlace(t.file, 2 * kAu, 2 * kAu, send)));
  // Known-bad bytes anywhere in the range: declined, and Read answers EIO.
  Poison(t.fs.get(), t.image.path(), {{t.PhysOf(kAu + 1024), 512}});
  got.clear();
  EXPECT_FALSE(Must(t.fs->ReadInPlace(t.file, 0, 3 * kAu, send)));
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(Must(t.fs->ReadInPlace(t.file, 2 * kAu, 100, send)));  // the rest still served
  std::string out;
  EXPECT_EQ(t.ReadAt(0, 3 * kAu, &out).code(), EIO);
}

TEST(Media, BadAusLeavingAFileAreQuarantinedNotFreed) {
  Fixture t;
  t.MakeFile();
  const uint64_t bad_au = t.PhysOf(2 * kAu);
  Poison(t.fs.get(), t.image.path(), {{bad_au + 512, 512}});
  (void)Must(t.fs->media().HandleError(bad_au + 512, 512));
  SetAttrIn in;
  in.size = true;
  in.attr.st_size = kAu;
  (void)Must(t.fs->SetAttr(t.ino, in));
  auto owners = Must(t.fs->Owners(bad_au, kAu));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].owner.kind, OwnerKind::kQuarantined);
  t.ExpectClean();
  // Unlinking the rest frees healthy AUs as usual.
  const uint64_t good_au = t.PhysOf(0);
  t.fs->Release(t.file);
  ASSERT_OK(t.fs->Unlink(kRootIno, "victim"));
  t.fs->Forget(t.ino, 1);
  EXPECT_EQ(Must(t.fs->Owners(good_au, kAu))[0].owner.kind, OwnerKind::kFree);
  t.ExpectClean();
}

TEST(Media, AFreeBadAuIsQuarantinedAtOnceAndForGood) {
  Fixture t;
  const uint64_t data_off = t.fs->superblock().data_off;
  const uint64_t free_au = data_off + 100 * kAu;
  ASSERT_EQ(Must(t.fs->Owners(free_au, kAu))[0].owner.kind, OwnerKind::kFree);
  Poison(t.fs.get(), t.image.path(), {{free_au, 512}});
  auto owners = Must(t.fs->media().HandleError(free_au, 512));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].action, MediaAction::kQuarantined);
  EXPECT_EQ(Must(t.fs->Owners(free_au, kAu))[0].owner.kind, OwnerKind::kQuarantined);
  t.ExpectClean();
  ASSERT_OK(t.fs->Unmount());
  t.fs.reset();
  t.fs = t.image.Mount();
  EXPECT_EQ(Must(t.fs->Owners(free_au, kAu))[0].owner.kind, OwnerKind::kQuarantined);
  // Filling the filesystem never hands it out.
  auto [e, f] = Must(t.fs->Create(kRootIno, "fill", 0644, O_RDWR, kRoot));
  const std::string chunk(1 << 20, 'f');
  for (uint64_t off = 0;; off += chunk.size()) {
    auto w = t.fs->Write(f, off, chunk.data(), chunk.size());
    if (!w.ok() || w.value() < chunk.size()) break;
  }
  EXPECT_EQ(Must(t.fs->Owners(free_au, kAu))[0].owner.kind, OwnerKind::kQuarantined);
  t.fs->Release(f);
  t.ExpectClean();
}

// The reverse map is derived data (issue 17): a bad block of its records is rebuilt from
// the forward maps online, quarantine included, and owner queries that reach the block
// before the rebuild are answered from the forward maps.
TEST(Media, ReverseMapHitIsRebuiltFromTheForwardMaps) {
  Fixture t;
  t.MakeFile();
  const DiskSuperblock& sb = t.fs->superblock();
  const uint64_t data_au = t.PhysOf(kAu) / kAu;
  const uint64_t per_block = 512 / sizeof(DiskRmapRecord);
  // A free AU whose record shares the 512-byte block with the file's: quarantined first.
  uint64_t quarantined = 0;
  for (uint64_t a = data_au / per_block * per_block; a < (data_au / per_block + 1) * per_block; ++a) {
    if (Must(t.fs->Owners(a * kAu, kAu))[0].owner.kind == OwnerKind::kFree) quarantined = a;
  }
  ASSERT_NE(quarantined, 0u) << "no free AU beside the file's";
  const RegionRange bad_data{quarantined * kAu, 512};
  Poison(t.fs.get(), t.image.path(), {bad_data});
  ASSERT_EQ(Must(t.fs->media().HandleError(bad_data.offset, 512))[0].action,
            MediaAction::kQuarantined);

  const uint64_t block = (sb.rmap_off + data_au * sizeof(DiskRmapRecord)) / 512 * 512;
  Poison(t.fs.get(), t.image.path(), {bad_data, {block, 512}});
  // Before the event is handled: the forward maps answer.
  auto before = Must(t.fs->Owners(data_au * kAu, kAu));
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0].owner.kind, OwnerKind::kFileData);
  EXPECT_EQ(before[0].owner.ino, t.ino);
  EXPECT_EQ(before[0].offset, kAu);
  EXPECT_EQ(Must(t.fs->Owners(quarantined * kAu, kAu))[0].owner.kind, OwnerKind::kQuarantined);

  auto owners = Must(t.fs->media().HandleError(block, 512));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].range.owner.kind, OwnerKind::kRmap);
  EXPECT_EQ(owners[0].action, MediaAction::kRepaired) << owners[0].detail;
  EXPECT_NE(owners[0].detail.find("rebuilt from the forward maps"), std::string::npos);
  EXPECT_FALSE(t.fs->shut_down());
  ASSERT_EQ(t.fs->region()->EmulatedPoison().size(), 1u);  // the data AU's stays
  auto after = Must(t.fs->Owners(data_au * kAu, kAu));
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].owner.ino, t.ino);
  EXPECT_EQ(after[0].offset, kAu);
  EXPECT_EQ(Must(t.fs->Owners(quarantined * kAu, kAu))[0].owner.kind, OwnerKind::kQuarantined);
  t.ExpectClean();  // every record of the block agrees with the forward maps
  EXPECT_EQ(Must(t.fs->checker().Scrub()).problems, 0u);
  (void)Must(t.fs->Create(kRootIno, "after", 0644, O_RDWR, kRoot));

  t.fs->Release(t.file);
  ASSERT_OK(t.fs->Unmount());
  t.fs.reset();
  t.fs = t.image.Mount();
  t.ExpectClean();
  EXPECT_EQ(Must(t.fs->Owners(quarantined * kAu, kAu))[0].owner.kind, OwnerKind::kQuarantined);
}

// Read-only, the bad records are not rewritten and nothing shuts down: owner queries keep
// coming from the forward maps.
TEST(Media, ReverseMapHitOnAReadOnlyMountIsAnsweredFromTheForwardMaps) {
  Fixture t;
  t.MakeFile();
  const uint64_t data_au = t.PhysOf(kAu) / kAu;
  t.fs->Release(t.file);
  ASSERT_OK(t.fs->Unmount());
  t.fs.reset();
  MountOptions ro;
  ro.read_only = true;
  t.fs = t.image.Mount(ro);
  const uint64_t block =
      (t.fs->superblock().rmap_off + data_au * sizeof(DiskRmapRecord)) / 512 * 512;
  Poison(t.fs.get(), t.image.path(), {{block, 512}});
  auto owners = Must(t.fs->media().HandleError(block, 512));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].action, MediaAction::kNone) << owners[0].detail;
  EXPECT_FALSE(t.fs->shut_down());
  auto now = Must(t.fs->Owners(data_au * kAu, kAu));
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].owner.ino, t.ino);
  EXPECT_EQ(now[0].offset, kAu);
  Poison(t.fs.get(), t.image.path(), {});
}

// Metadata with a healthy copy (or derived, as the reverse map) is rewritten and its
// poison cleared (the inode table: from its second copy, on an image with copies).
struct MetaCase {
  const char* name;
  uint64_t DiskSuperblock::*off;  // nullptr: offset 0 (the primary superblock)
  MediaAction want;
};

class MediaMetadata : public ::testing::TestWithParam<MetaCase> {};

TEST_P(MediaMetadata, RepairedOrShutDown) {
  const MetaCase& c = GetParam();
  Fixture t;
  t.MakeFile();
  const uint64_t off = c.off ? t.fs->superblock().*c.off : 0;
  Poison(t.fs.get(), t.image.path(), {{off, 512}});
  auto owners = Must(t.fs->media().HandleError(off, 512));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].action, c.want) << owners[0].detail;
  if (c.want == MediaAction::kRepaired) {
    EXPECT_FALSE(t.fs->shut_down());
    EXPECT_TRUE(t.fs->region()->EmulatedPoison().empty());  // cleared by the rewrite
    std::string got;
    ASSERT_OK(t.ReadAt(0, kAu, &got));
    (void)Must(t.fs->Create(kRootIno, "after", 0644, O_RDWR, kRoot));
    t.ExpectClean();
    EXPECT_EQ(Must(t.fs->checker().Scrub()).problems, 0u);
  } else {
    EXPECT_TRUE(t.fs->shut_down());
    EXPECT_NE(owners[0].detail.find("shutting down"), std::string::npos);
    EXPECT_EQ(t.fs->Create(kRootIno, "after", 0644, O_RDWR, kRoot).status().code(), EIO);
    Poison(t.fs.get(), t.image.path(), {});  // uninject: the next mount is consistent
  }
  t.fs->Release(t.file);
  (void)t.fs->Unmount();
  t.fs.reset();
  t.fs = t.image.Mount();
  ASSERT_NE(t.fs, nullptr);
  t.ExpectClean();
  EXPECT_EQ(Must(t.fs->checker().Scrub()).problems, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, MediaMetadata,
    ::testing::Values(MetaCase{"superblock", nullptr, MediaAction::kRepaired},
                      MetaCase{"replica", &DiskSuperblock::replica_off, MediaAction::kRepaired},
                      MetaCase{"au_bitmap", &DiskSuperblock::abitmap_off, MediaAction::kRepaired},
                      MetaCase{"inode_bitmap", &DiskSuperblock::ibitmap_off, MediaAction::kRepaired},
                      MetaCase{"journal", &DiskSuperblock::journal_off, MediaAction::kRepaired},
                      MetaCase{"inode_table", &DiskSuperblock::itable_off, MediaAction::kRepaired},
                      MetaCase{"inode_table2", &DiskSuperblock::itable2_off, MediaAction::kRepaired},
                      MetaCase{"rmap", &DiskSuperblock::rmap_off, MediaAction::kRepaired}),
    [](const ::testing::TestParamInfo<MetaCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace udax
