// xattr_test.cc -- extended attributes and POSIX ACLs in the core: errors as Linux
// filesystems return them, persistence, exact maps, and ACL inheritance and mode sync.
#include <fcntl.h>
#include <sys/xattr.h>

#include <string>

#include "fs/core/core_test_util.h"
#include "fs/format/posix_acl.h"

namespace udax {
namespace {

const Caller kRoot{0, 0};

std::string AclOf(std::initializer_list<AclEntry> entries) { return AclEncode(Acl(entries)); }

void ExpectMapsExact(Filesystem* fs) {
  CheckReport r = Must(fs->checker().CrossCheckMaps());
  EXPECT_EQ(r.problems, 0u) << (r.messages.empty() ? "" : r.messages[0]);
}

class XattrTest : public ::testing::TestWithParam<uint64_t> {
 protected:
  TestImage img_{GetParam() == kAuSize2M ? 256ull << 20 : 64ull << 20, GetParam()};
};

TEST_P(XattrTest, SetGetListRemoveAndErrors) {
  auto fs = img_.Mount();
  const uint64_t f = Must(fs->Mknod(kRootIno, "f", S_IFREG | 0644, 0, kRoot)).ino;
  EXPECT_EQ(fs->GetXattr(f, "user.a").status().code(), ENODATA);
  EXPECT_EQ(Must(fs->ListXattr(f)), "");
  ASSERT_OK(fs->SetXattr(f, "user.a", "1", 0, kRoot));
  ASSERT_OK(fs->SetXattr(f, "trusted.b", std::string(1000, 'b'), 0, kRoot));
  ASSERT_OK(fs->SetXattr(f, "security.c", "", 0, kRoot));  // empty values are values
  EXPECT_EQ(Must(fs->GetXattr(f, "user.a")), "1");
  EXPECT_EQ(Must(fs->GetXattr(f, "security.c")), "");
  EXPECT_EQ(Must(fs->ListXattr(f)), std::string("security.c\0trusted.b\0user.a\0", 28));
  EXPECT_EQ(fs->SetXattr(f, "user.a", "2", XATTR_CREATE, kRoot).code(), EEXIST);
  EXPECT_EQ(fs->SetXattr(f, "user.z", "2", XATTR_REPLACE, kRoot).code(), ENODATA);
  ASSERT_OK(fs->SetXattr(f, "user.a", "22", XATTR_REPLACE, kRoot));
  EXPECT_EQ(Must(fs->GetXattr(f, "user.a")), "22");
  EXPECT_EQ(fs->SetXattr(f, "bogus.a", "1", 0, kRoot).code(), EOPNOTSUPP);
  EXPECT_EQ(fs->SetXattr(f, "system.foo", "1", 0, kRoot).code(), EOPNOTSUPP);
  EXPECT_EQ(fs->SetXattr(f, "user.", "1", 0, kRoot).code(), EINVAL);
  EXPECT_EQ(fs->SetXattr(f, "user." + std::string(251, 'n'), "1", 0, kRoot).code(), ERANGE);
  EXPECT_EQ(fs->SetXattr(f, "user.big", std::string(kMaxXattrValue + 1, 'x'), 0, kRoot).code(),
            E2BIG);
  // One value may be as large as Linux allows; the whole blob is bounded (by the journal
  // on this small image): the attribute that would overflow it is refused.
  ASSERT_OK(fs->SetXattr(f, "user.big", std::string(kMaxXattrValue, 'x'), 0, kRoot));
  int stored = 1;
  Status st;
  while ((st = fs->SetXattr(f, "user.more" + std::to_string(stored), std::string(kMaxXattrValue, 'y'),
                            0, kRoot)).ok()) {
    ++stored;
  }
  EXPECT_EQ(st.code(), ENOSPC);
  EXPECT_GE(stored, 3);
  for (int i = 1; i < stored; ++i) ASSERT_OK(fs->RemoveXattr(f, "user.more" + std::to_string(i)));
  EXPECT_EQ(fs->RemoveXattr(f, "user.nope").code(), ENODATA);
  ASSERT_OK(fs->RemoveXattr(f, "user.big"));
  EXPECT_EQ(fs->GetXattr(f, "user.big").status().code(), ENODATA);
  ExpectMapsExact(fs.get());
}

TEST_P(XattrTest, PersistAcrossRemountAndSurviveTruncate) {
  uint64_t f;
  {
    auto fs = img_.Mount();
    auto [e, file] = Must(fs->Create(kRootIno, "f", 0644, O_RDWR, kRoot));
    f = e.ino;
    ASSERT_OK(fs->SetXattr(f, "user.long", std::string(20000, 'L'), 0, kRoot));
    ASSERT_OK(fs->SetXattr(f, "user.short", "s", 0, kRoot));
    ASSERT_EQ(Must(fs->Write(file, 0, "data", 4)), 4u);
    SetAttrIn trunc;
    trunc.size = true;
    trunc.attr.st_size = 0;
    Must(fs->SetAttr(f, trunc));  // frees the data, keeps the blob
    fs->Release(file);
    ExpectMapsExact(fs.get());
    ASSERT_OK(fs->Unmount());
  }
  auto fs = img_.Mount();
  EXPECT_EQ(Must(fs->GetXattr(f, "user.long")), std::string(20000, 'L'));
  EXPECT_EQ(Must(fs->GetXattr(f, "user.short")), "s");
  EXPECT_TRUE(Must(fs->Bmap(f)).empty());  // the blob is not file data
  ExpectMapsExact(fs.get());
}

TEST_P(XattrTest, BlobIsOwnedInTheReverseMapAndFreedWithTheInode) {
  auto fs = img_.Mount();
  const uint64_t free_before = fs->StatFs().f_bfree;
  const uint64_t f = Must(fs->Mknod(kRootIno, "f", S_IFREG | 0644, 0, kRoot)).ino;
  ASSERT_OK(fs->SetXattr(f, "user.x", std::string(10000, 'x'), 0, kRoot));
  // Find the blob's AU through the reverse map: scan the data area for an xattr owner.
  bool found = false;
  const DiskSuperblock& sb = fs->superblock();
  for (uint64_t au = sb.data_off / sb.au_size; au < sb.au_count && !found; ++au) {
    auto owners = Must(fs->Owners(au * sb.au_size, 512));
    for (const OwnerRange& o : owners) {
      if (o.owner.kind == OwnerKind::kXattr && o.owner.ino == f) found = true;
    }
  }
  EXPECT_TRUE(found);
  ExpectMapsExact(fs.get());
  ASSERT_OK(fs->Unlink(kRootIno, "f"));
  fs->Forget(f, 1);
  EXPECT_EQ(fs->StatFs().f_bfree, free_before);
  ExpectMapsExact(fs.get());
}

TEST_P(XattrTest, AccessAclSetsTheModeAndChmodSetsTheAcl) {
  auto fs = img_.Mount();
  const uint64_t f = Must(fs->Mknod(kRootIno, "f", S_IFREG | 02640, 0, kRoot)).ino;
  // An ACL the mode says in full changes the mode and is not stored.
  ASSERT_OK(fs->SetXattr(f, kAclAccessXattr,
                         AclOf({{kAclUserObj, 7, 0}, {kAclGroupObj, 5, 0}, {kAclOther, 1, 0}}), 0,
                         kRoot));
  EXPECT_EQ(Must(fs->GetAttr(f)).st_mode & 07777, 02751u);
  EXPECT_EQ(fs->GetXattr(f, kAclAccessXattr).status().code(), ENODATA);
  // A named user needs a mask, and the mask shows as the group bits.
  const std::string acl = AclOf({{kAclUserObj, 6, 0},
                                 {kAclUser, 4, 1000},
                                 {kAclGroupObj, 4, 0},
                                 {kAclMask, 6, 0},
                                 {kAclOther, 0, 0}});
  Caller stranger{1000, 1000};
  ASSERT_OK(fs->SetXattr(f, kAclAccessXattr, acl, 0, stranger));
  EXPECT_EQ(Must(fs->GetAttr(f)).st_mode & 07777, 0660u);  // setgid dropped: not in group
  EXPECT_EQ(Must(fs->GetXattr(f, kAclAccessXattr)), acl);
  SetAttrIn chmod;
  chmod.mode = true;
  chmod.attr.st_mode = 0705;
  Must(fs->SetAttr(f, chmod));
  Acl after = Must(AclDecode(Must(fs->GetXattr(f, kAclAccessXattr))));
  ASSERT_EQ(after.size(), 5u);
  EXPECT_EQ(after[0].perm, 7);  // owner
  EXPECT_EQ(after[2].perm, 4);  // group entry untouched: the mask carries the group bits
  EXPECT_EQ(after[3].perm, 0);  // mask
  EXPECT_EQ(after[4].perm, 5);  // other
  EXPECT_EQ(fs->SetXattr(f, kAclDefaultXattr, acl, 0, kRoot).code(), EACCES);
  EXPECT_EQ(fs->SetXattr(f, kAclAccessXattr, "garbage", 0, kRoot).code(), EINVAL);
  ExpectMapsExact(fs.get());
}

TEST_P(XattrTest, KillPrivsDropsWhatFileRemovePrivsWould) {
  auto fs = img_.Mount();
  auto mode_of = [&](uint64_t ino) { return Must(fs->GetAttr(ino)).st_mode & 07777; };
  auto never_exempt = [](uint32_t) { return false; };
  auto always_exempt = [](uint32_t) { return true; };
  const uint64_t plain = Must(fs->Mknod(kRootIno, "plain", S_IFREG | 0755, 0, kRoot)).ino;
  EXPECT_FALSE(Must(fs->KillPrivs(plain, true, never_exempt)));  // nothing to drop
  const uint64_t suid = Must(fs->Mknod(kRootIno, "suid", S_IFREG | 06755, 0, kRoot)).ino;
  EXPECT_FALSE(Must(fs->KillPrivs(suid, false, never_exempt)));  // a privileged caller
  EXPECT_EQ(mode_of(suid), 06755u);
  EXPECT_TRUE(Must(fs->KillPrivs(suid, true, always_exempt)));  // group-exec: both go
  EXPECT_EQ(mode_of(suid), 0755u);
  // setgid without group-exec goes only for a caller outside the group.
  const uint64_t sgid = Must(fs->Mknod(kRootIno, "sgid", S_IFREG | 02745, 0, kRoot)).ino;
  EXPECT_FALSE(Must(fs->KillPrivs(sgid, true, always_exempt)));
  EXPECT_EQ(mode_of(sgid), 02745u);
  EXPECT_TRUE(Must(fs->KillPrivs(sgid, true, never_exempt)));
  EXPECT_EQ(mode_of(sgid), 0745u);
  // Capabilities go whoever writes; other attributes stay.
  ASSERT_OK(fs->SetXattr(plain, "security.capability", std::string(20, 'c'), 0, kRoot));
  ASSERT_OK(fs->SetXattr(plain, "user.keep", "1", 0, kRoot));
  EXPECT_TRUE(Must(fs->KillPrivs(plain, false, never_exempt)));
  EXPECT_EQ(fs->GetXattr(plain, "security.capability").status().code(), ENODATA);
  EXPECT_EQ(Must(fs->GetXattr(plain, "user.keep")), "1");
  // Directories keep their setgid (it is inheritance there, not privilege).
  const uint64_t dir = Must(fs->Mkdir(kRootIno, "d", 02775, kRoot)).ino;
  EXPECT_FALSE(Must(fs->KillPrivs(dir, true, never_exempt)));
  EXPECT_EQ(mode_of(dir), 02775u);
  ExpectMapsExact(fs.get());
  // On media, not only in DRAM.
  fs.reset();
  fs = img_.Mount();
  EXPECT_EQ(mode_of(suid), 0755u);
  EXPECT_EQ(fs->GetXattr(plain, "security.capability").status().code(), ENODATA);
}

// Item 4 of issue 18: the drop rides in the transaction of the change itself, so no
// crash can leave new data (or a new owner) with the old setuid bit.
TEST_P(XattrTest, PrivDropIsInTheChangesOwnTransaction) {
  auto fs = img_.Mount();
  const uint64_t au = fs->superblock().au_size;
  auto mode_of = [&](uint64_t ino) { return Must(fs->GetAttr(ino)).st_mode & 07777; };
  auto commits = [&] { return fs->journal_stats().commits; };
  auto user_drop = [] {
    PrivDrop d;
    d.suidgid = true;
    d.exempt_from_sgid = [](uint32_t) { return false; };
    return d;
  };
  auto [e, file] = Must(fs->Create(kRootIno, "f", S_IFREG | 06755, O_RDWR, kRoot));
  const std::string data(1000, 'x');

  // An allocating write: data, size and the drop in one commit.
  uint64_t before = commits();
  PrivDrop drop = user_drop();
  EXPECT_EQ(Must(fs->Write(file, 0, data.data(), data.size(), &drop)), data.size());
  EXPECT_TRUE(drop.changed);
  EXPECT_EQ(commits() - before, 1u);
  EXPECT_EQ(mode_of(e.ino), 0755u);

  // An overwrite in place: a drop-only commit (before the store), none without a drop.
  SetAttrIn chmod;
  chmod.mode = true;
  chmod.attr.st_mode = 06755;
  Must(fs->SetAttr(e.ino, chmod));
  before = commits();
  drop = user_drop();
  EXPECT_EQ(Must(fs->Write(file, 0, "y", 1, &drop)), 1u);
  EXPECT_TRUE(drop.changed);
  EXPECT_EQ(commits() - before, 1u);
  EXPECT_EQ(mode_of(e.ino), 0755u);
  before = commits();
  drop = user_drop();
  EXPECT_EQ(Must(fs->Write(file, 1, "y", 1, &drop)), 1u);  // nothing left to drop
  EXPECT_FALSE(drop.changed);
  EXPECT_EQ(commits(), before);

  // A privileged writer keeps the bits; capabilities go whoever writes.
  Must(fs->SetAttr(e.ino, chmod));
  ASSERT_OK(fs->SetXattr(e.ino, "security.capability", std::string(20, 'c'), 0, kRoot));
  drop = PrivDrop{};
  EXPECT_EQ(Must(fs->Write(file, au, "z", 1, &drop)), 1u);
  EXPECT_TRUE(drop.changed);
  EXPECT_EQ(mode_of(e.ino), 06755u);
  EXPECT_EQ(fs->GetXattr(e.ino, "security.capability").status().code(), ENODATA);

  // A truncate: the reply's attributes already show the drop.
  SetAttrIn trunc;
  trunc.size = true;
  trunc.attr.st_size = 10;
  drop = user_drop();
  trunc.drop = &drop;
  EXPECT_EQ(Must(fs->SetAttr(e.ino, trunc)).st_mode & 07777, 0755u);
  EXPECT_TRUE(drop.changed);

  // A chown drops setuid and, with group-exec, setgid, whoever asks.
  Must(fs->SetAttr(e.ino, chmod));
  SetAttrIn chown;
  chown.gid = true;
  chown.attr.st_gid = 100;
  drop = user_drop();
  drop.change = PrivChange::kOwner;
  chown.drop = &drop;
  EXPECT_EQ(Must(fs->SetAttr(e.ino, chown)).st_mode & 07777, 0755u);

  // fallocate and copy_file_range.
  Must(fs->SetAttr(e.ino, chmod));
  drop = user_drop();
  ASSERT_OK(fs->Fallocate(file, FALLOC_FL_KEEP_SIZE, 0, 4 * au, &drop));
  EXPECT_EQ(mode_of(e.ino), 0755u);
  auto [src_e, src] = Must(fs->Create(kRootIno, "src", S_IFREG | 0644, O_RDWR, kRoot));
  ASSERT_EQ(Must(fs->Write(src, 0, data.data(), data.size())), data.size());
  Must(fs->SetAttr(e.ino, chmod));
  drop = user_drop();
  EXPECT_EQ(Must(fs->CopyFileRange(src, 0, file, 8 * au, data.size(), &drop)), data.size());
  EXPECT_TRUE(drop.changed);
  EXPECT_EQ(mode_of(e.ino), 0755u);

  // A change that fails before it changes anything drops nothing.
  Must(fs->SetAttr(e.ino, chmod));
  SetAttrIn too_big;
  too_big.size = true;
  too_big.attr.st_size = static_cast<off_t>(fs->MaxFileSize() + 1);
  drop = user_drop();
  too_big.drop = &drop;
  EXPECT_EQ(fs->SetAttr(e.ino, too_big).status().code(), EFBIG);
  EXPECT_EQ(mode_of(e.ino), 06755u);
  EXPECT_EQ(fs->Write(file, fs->MaxFileSize(), "a", 1, &drop).status().code(), EFBIG);
  EXPECT_EQ(mode_of(e.ino), 06755u);

  fs->Release(file);
  fs->Release(src);
  ExpectMapsExact(fs.get());
  // On media, not only in DRAM.
  fs.reset();
  fs = img_.Mount();
  EXPECT_EQ(mode_of(e.ino), 06755u);
  EXPECT_EQ(Must(fs->GetAttr(e.ino)).st_gid, 100u);
}

TEST_P(XattrTest, DefaultAclIsInheritedInsteadOfTheUmask) {
  auto fs = img_.Mount();
  Caller user{0, 0, 022};
  const uint64_t plain = Must(fs->Mknod(kRootIno, "plain", S_IFREG | 0666, 0, user)).ino;
  EXPECT_EQ(Must(fs->GetAttr(plain)).st_mode & 0777, 0644u);  // umask applies
  const uint64_t d = Must(fs->Mkdir(kRootIno, "d", 0777, user)).ino;
  const std::string def = AclOf({{kAclUserObj, 7, 0},
                                 {kAclUser, 7, 1000},
                                 {kAclGroupObj, 5, 0},
                                 {kAclMask, 7, 0},
                                 {kAclOther, 0, 0}});
  ASSERT_OK(fs->SetXattr(d, kAclDefaultXattr, def, 0, kRoot));
  const uint64_t f = Must(fs->Mknod(d, "f", S_IFREG | 0666, 0, user)).ino;
  EXPECT_EQ(Must(fs->GetAttr(f)).st_mode & 0777, 0660u);  // masked by the ACL, not umask
  Acl access = Must(AclDecode(Must(fs->GetXattr(f, kAclAccessXattr))));
  EXPECT_EQ(access[1].tag, kAclUser);
  EXPECT_EQ(access[3].perm, 6);  // the mask took the requested group bits
  EXPECT_EQ(fs->GetXattr(f, kAclDefaultXattr).status().code(), ENODATA);
  const uint64_t sub = Must(fs->Mkdir(d, "sub", 0755, user)).ino;
  EXPECT_EQ(Must(fs->GetXattr(sub, kAclDefaultXattr)), def);  // directories pass it on
  EXPECT_EQ(Must(fs->GetAttr(sub)).st_mode & 0777, 0750u);
  ExpectMapsExact(fs.get());
}

TEST_P(XattrTest, DamagedBlobIsEioAndScrubNamesIt) {
  uint64_t f, blob_off = 0;
  {
    auto fs = img_.Mount();
    f = Must(fs->Mknod(kRootIno, "f", S_IFREG | 0644, 0, kRoot)).ino;
    ASSERT_OK(fs->SetXattr(f, "user.x", "precious", 0, kRoot));
    const DiskSuperblock& sb = fs->superblock();
    for (uint64_t au = sb.data_off / sb.au_size; au < sb.au_count && !blob_off; ++au) {
      for (const OwnerRange& o : Must(fs->Owners(au * sb.au_size, 512))) {
        if (o.owner.kind == OwnerKind::kXattr) blob_off = au * sb.au_size;
      }
    }
    ASSERT_NE(blob_off, 0u);
    EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
    ASSERT_OK(fs->Unmount());
  }
  auto damage = [&](uint64_t off) {
    FILE* img = fopen(img_.path().c_str(), "r+b");
    ASSERT_NE(img, nullptr);
    fseek(img, static_cast<long>(off + 20), SEEK_SET);
    fputc('X', img);
    fclose(img);
  };
  uint64_t copy_off;
  {
    auto fs = img_.Mount();
    copy_off = CopyOffset(fs->superblock(), blob_off);
    ASSERT_NE(copy_off, 0u);  // the image has metadata copies
  }
  // One copy damaged: reads take the other, which mends the first.
  damage(blob_off);
  {
    auto fs = img_.Mount();
    EXPECT_EQ(Must(fs->GetXattr(f, "user.x")), "precious");
    EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
    ASSERT_OK(fs->Unmount());
  }
  // Both: the attributes of that file fail, and only they.
  damage(blob_off);
  damage(copy_off);
  auto fs = img_.Mount();
  EXPECT_EQ(fs->GetXattr(f, "user.x").status().code(), EIO);
  CheckReport r = Must(fs->checker().Scrub());
  ASSERT_EQ(r.problems, 1u);
  EXPECT_NE(r.messages[0].find("extended attributes"), std::string::npos) << r.messages[0];
}

TEST_P(XattrTest, ShortSymlinkTakesAttributes) {
  uint64_t l;
  {
    auto fs = img_.Mount();
    l = Must(fs->Symlink(kRootIno, "l", "short-target", kRoot)).ino;
    ASSERT_OK(fs->SetXattr(l, "trusted.t", "v", 0, kRoot));
    EXPECT_EQ(Must(fs->ReadLink(l)), "short-target");
    ExpectMapsExact(fs.get());
    EXPECT_EQ(Must(fs->checker().Scrub()).problems, 0u);
    ASSERT_OK(fs->Unmount());
  }
  auto fs = img_.Mount();
  EXPECT_EQ(Must(fs->ReadLink(l)), "short-target");
  EXPECT_EQ(Must(fs->GetXattr(l, "trusted.t")), "v");
  ExpectMapsExact(fs.get());
  CheckReport ns = Must(fs->checker().CheckNamespace());
  EXPECT_EQ(ns.problems, 0u) << (ns.messages.empty() ? "" : ns.messages[0]);
}

INSTANTIATE_TEST_SUITE_P(AuSizes, XattrTest, ::testing::Values(kAuSize4K, kAuSize2M),
                         [](const auto& info) { return info.param == kAuSize4K ? "4K" : "2M"; });

TEST(XattrBlob, RejectsDamage) {
  XattrMap attrs{{"user.a", "1"}, {"user.b", std::string(300, 'b')}};
  std::vector<uint8_t> blob = XattrBlobEncode(attrs, 7);
  XattrMap out;
  ASSERT_OK(XattrBlobDecode(blob.data(), blob.size(), 7, &out));
  EXPECT_EQ(out, attrs);
  EXPECT_FALSE(XattrBlobDecode(blob.data(), blob.size(), 8, &out).ok());  // wrong owner
  EXPECT_FALSE(XattrBlobDecode(blob.data(), blob.size() - 1, 7, &out).ok());
  blob[20] ^= 1;
  EXPECT_FALSE(XattrBlobDecode(blob.data(), blob.size(), 7, &out).ok());
}

// A NUL would split the name in a listxattr answer ("user.a\0trusted.x" lists two
// names): a sealed blob holding one is damage, never a name.
TEST(XattrBlob, RejectsNulInName) {
  std::vector<uint8_t> blob = XattrBlobEncode({{"user.a_trusted.x", "v"}}, 7);
  const size_t name_at = sizeof(DiskXattrHeader) + kXattrEntryFixed;
  blob[name_at + 6] = '\0';
  XattrBlobSeal(blob.data(), blob.size(), 7);
  XattrMap out;
  EXPECT_FALSE(XattrBlobDecode(blob.data(), blob.size(), 7, &out).ok());
}

}  // namespace
}  // namespace udax
