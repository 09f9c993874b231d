// rmap_maps_test.cc -- the reverse map against the forward maps: random operations checked
// after every step, and owner queries answered for every extent bmap reports.
#include "rmap/rmap.h"

#include <fcntl.h>

#include <map>
#include <random>

#include "fs/core/core_test_util.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

void ExpectMapsAgree(Filesystem* fs, const char* when) {
  auto report = Must(fs->checker().CrossCheckMaps());
  EXPECT_EQ(report.problems, 0u) << when << ": "
                                 << (report.messages.empty() ? "" : report.messages[0]);
}

TEST(ReverseMap, FreshFilesystemIsConsistentAndStaticAreasAreNamed) {
  TestImage img;
  auto fs = img.Mount();
  ExpectMapsAgree(fs.get(), "fresh");
  auto owners = Must(fs->Owners(0, 4096));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].owner.kind, OwnerKind::kSuperblock);
  const auto& sb = fs->superblock();
  owners = Must(fs->Owners(sb.itable_off + 300, 10));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].owner.kind, OwnerKind::kInodeTable);
  owners = Must(fs->Owners(sb.region_size - 100, 100));
  EXPECT_EQ(owners[0].owner.kind, OwnerKind::kReplica);
  EXPECT_FALSE(fs->Owners(sb.region_size, 1).ok());
}

TEST(ReverseMap, BmapAndOwnersAgreeBothWays) {
  TestImage img;
  auto fs = img.Mount();
  auto [e, f] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
  auto [e2, g] = Must(fs->Create(kRootIno, "g", 0644, O_RDWR, kRoot));
  std::string block(4096, 'x');
  for (int i = 0; i < 40; ++i) {
    Must(fs->Write(i % 3 ? f : g, uint64_t(i) * 4096 * 2, block.data(), block.size()));
  }
  for (auto [ino, file] : {std::pair{e.ino, f}, std::pair{e2.ino, g}}) {
    for (const BmapExtent& x : Must(fs->Bmap(ino))) {
      auto owners = Must(fs->Owners(x.phys_offset, x.length));
      ASSERT_EQ(owners.size(), 1u);
      EXPECT_EQ(owners[0].owner.ino, ino);
      EXPECT_EQ(owners[0].owner.kind, OwnerKind::kFileData);
      EXPECT_EQ(owners[0].offset, x.file_offset);
      EXPECT_EQ(owners[0].len, x.length);
    }
  }
  EXPECT_EQ(Must(fs->PathOf(e.ino)), "/f");
  auto d = Must(fs->Mkdir(kRootIno, "d", 0755, kRoot));
  ASSERT_OK(fs->Rename(kRootIno, "g", d.ino, "moved", 0));
  EXPECT_EQ(Must(fs->PathOf(e2.ino)), "/d/moved");
  EXPECT_EQ(Must(fs->PathOf(kRootIno)), "/");
  // A bad cacheline in the middle of an extent narrows to 64 bytes of one file.
  auto ext = Must(fs->Bmap(e.ino));
  auto owners = Must(fs->Owners(ext[1].phys_offset + 128, 64));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].offset, ext[1].file_offset + 128);
  EXPECT_EQ(owners[0].len, 64u);
  fs->Release(f);
  fs->Release(g);
}

// Random operations against the filesystem; after every step the reverse map must equal
// the one derived from the forward maps.
TEST(ReverseMap, PropertyRandomOperationsKeepMapsEqual) {
  TestImage img(64ull << 20);
  auto fs = img.Mount();
  std::mt19937_64 rng(20261123);
  std::map<std::string, uint64_t> files;  // name -> ino
  std::vector<std::string> dirs = {""};
  int created = 0;
  auto pick = [&](auto& container) {
    auto it = container.begin();
    std::advance(it, rng() % container.size());
    return it;
  };
  for (int step = 0; step < 400; ++step) {
    const int op = static_cast<int>(rng() % 8);
    if (op == 0 || files.empty()) {
      const std::string name = "f" + std::to_string(created++);
      auto r = fs->Mknod(kRootIno, name, S_IFREG | 0644, 0, kRoot);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      files[name] = r->ino;
    } else if (op <= 3) {  // write somewhere, often sparse, sometimes large
      auto it = pick(files);
      Inode* f = Must(fs->Open(it->second, O_RDWR));
      const uint64_t off = (rng() % 512) * 1000;
      std::string data(1 + rng() % (op == 3 ? 300000 : 9000), 'a' + step % 26);
      auto n = fs->Write(f, off, data.data(), data.size());
      ASSERT_TRUE(n.ok() || n.status().code() == ENOSPC) << n.status().ToString();
      fs->Release(f);
    } else if (op == 4) {  // truncate
      auto it = pick(files);
      SetAttrIn in;
      in.size = true;
      in.attr.st_size = static_cast<off_t>(rng() % 400000);
      ASSERT_TRUE(fs->SetAttr(it->second, in).ok());
    } else if (op == 5) {  // unlink
      auto it = pick(files);
      ASSERT_OK(fs->Unlink(kRootIno, it->first));
      fs->Forget(it->second, 1);
      files.erase(it);
    } else if (op == 6) {  // rename over another file
      auto a = pick(files), b = pick(files);
      if (a != b) {
        ASSERT_OK(fs->Rename(kRootIno, a->first, kRootIno, b->first, 0));
        fs->Forget(b->second, 1);
        b->second = a->second;
        files.erase(a);
      }
    } else {  // directories and long symlinks (they own AUs too)
      const std::string name = "d" + std::to_string(created++);
      auto d = Must(fs->Mkdir(kRootIno, name, 0755, kRoot));
      Must(fs->Symlink(d.ino, "l", std::string(200 + rng() % 3000, 's'), kRoot));
      if (rng() % 2) {
        ASSERT_OK(fs->Unlink(d.ino, "l"));
        ASSERT_OK(fs->Rmdir(kRootIno, name));
      }
    }
    ExpectMapsAgree(fs.get(), ("step " + std::to_string(step)).c_str());
    if (::testing::Test::HasFailure()) return;
  }
  ASSERT_OK(fs->Unmount());
  fs.reset();
  fs = img.Mount();
  ExpectMapsAgree(fs.get(), "after remount");
}

}  // namespace
}  // namespace udax
