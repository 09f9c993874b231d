// xattr_access_test.cc -- the trusted.* listing filter and who counts as CAP_SYS_ADMIN.
#include "fs/fuse/xattr_access.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace udax {
namespace {

using std::string_literals::operator""s;

constexpr char kRootStatus[] =
    "Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"
    "CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";
// Root of a container without CAP_SYS_ADMIN (docker's default set).
constexpr char kCappedRootStatus[] =
    "Uid:\t0\t0\t0\t0\nCapEff:\t00000000a80425fb\n";
constexpr char kNobodyStatus[] = "Uid:\t65534\t65534\t65534\t65534\nCapEff:\t0000000000000000\n";

TEST(XattrAccess, ListingLosesOnlyTrustedNames) {
  const std::string names = "security.selinux\0trusted.secret\0user.a\0trusted.x\0"s;
  EXPECT_TRUE(HasTrustedXattr(names));
  EXPECT_EQ(WithoutTrustedXattrs(names), "security.selinux\0user.a\0"s);
  EXPECT_FALSE(HasTrustedXattr("user.a\0system.posix_acl_access\0"s));
  EXPECT_EQ(WithoutTrustedXattrs(""), "");
  // "trusted" alone or "trustedfoo" is no trusted.* name.
  EXPECT_EQ(WithoutTrustedXattrs("trustedx\0"s), "trustedx\0"s);
}

TEST(XattrAccess, ParsesProcStatus) {
  auto root = ParseProcStatus(kRootStatus);
  ASSERT_TRUE(root);
  EXPECT_EQ(root->fsuid, 0u);
  EXPECT_EQ(root->cap_eff, 0x1ffffffffffull);
  auto setfsuid = ParseProcStatus("Uid:\t1000\t1000\t1000\t4242\nCapEff:\t0\n");
  ASSERT_TRUE(setfsuid);
  EXPECT_EQ(setfsuid->fsuid, 4242u);
  EXPECT_FALSE(ParseProcStatus("Uid:\t0\t0\nCapEff:\t0\n"));  // truncated
  EXPECT_FALSE(ParseProcStatus("Uid:\t0\t0\t0\t0\n"));         // no CapEff
  EXPECT_FALSE(ParseProcStatus(""));
}

TEST(XattrAccess, CapSysAdminDecides) {
  EXPECT_TRUE(MayUseTrustedXattrs(0, ParseProcStatus(kRootStatus), true));
  EXPECT_FALSE(MayUseTrustedXattrs(0, ParseProcStatus(kCappedRootStatus), true));
  EXPECT_FALSE(MayUseTrustedXattrs(65534, ParseProcStatus(kNobodyStatus), true));
  // Root of its own user namespace: every bit, no power over our files.
  EXPECT_FALSE(MayUseTrustedXattrs(0, ParseProcStatus(kRootStatus), false));
  // Nothing readable: no.
  EXPECT_FALSE(MayUseTrustedXattrs(0, std::nullopt, true));
}

TEST(XattrAccess, OtherCredentialsThanTheTasks) {
  // overlayfs over udaxfs runs a user's request on its mounter's credentials (fsuid 0).
  EXPECT_TRUE(MayUseTrustedXattrs(0, ParseProcStatus(kNobodyStatus), true));
  // A pid that now names root while the request came from a user: no.
  EXPECT_FALSE(MayUseTrustedXattrs(65534, ParseProcStatus(kRootStatus), true));
}

TEST(XattrAccess, ThisProcess) {
  // The test runs as whatever it runs as: the answer must match its own CapEff.
  const bool expect = [] {
    FILE* f = fopen("/proc/self/status", "r");
    if (!f) return false;
    std::string text(8192, '\0');
    text.resize(fread(text.data(), 1, text.size(), f));
    fclose(f);
    const auto creds = ParseProcStatus(text);
    return creds && ((creds->cap_eff >> kCapSysAdmin) & 1);
  }();
  EXPECT_EQ(CallerMayUseTrustedXattrs(getpid(), geteuid()), expect);
  EXPECT_FALSE(CallerMayUseTrustedXattrs(0, 0));
}

}  // namespace
}  // namespace udax
