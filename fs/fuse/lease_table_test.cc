// lease_table_test.cc -- revokes with one deadline, kill and wait, limits, reaping.
#include "fs/fuse/lease_table.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace udax {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// A stand-in pin: the table only stores and hands back the pointer.
Inode* FakePin(uintptr_t n) { return reinterpret_cast<Inode*>(n * 64); }

// A child process that holds nothing but waits to be killed, as a holder that ignores
// its revokes would.
struct Holder {
  pid_t pid = -1;
  std::shared_ptr<const UniqueFd> pidfd;
  Holder() {
    pid = fork();
    if (pid == 0) {
      while (true) pause();
    }
    pidfd = std::make_shared<const UniqueFd>(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  }
  ~Holder() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  bool Alive() const { return waitpid(pid, nullptr, WNOHANG) == 0; }
};

// A lease of bytes [off, off+len) of inode 7; *client receives the client's end.
std::unique_ptr<Lease> MakeLease(uid_t uid, uint64_t off, uint64_t len, UniqueFd* client,
                                 std::shared_ptr<const UniqueFd> pidfd = nullptr) {
  int pair[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  auto l = std::make_unique<Lease>();
  l->sock = UniqueFd(pair[0]);
  *client = UniqueFd(pair[1]);
  l->uid = uid;
  l->pid = getpid();
  l->ino = 7;
  l->offset = off;
  l->length = len;
  l->pin = FakePin(off / 4096 + 1);
  l->pidfd = std::move(pidfd);
  return l;
}

uint64_t AddGranted(LeaseTable* t, std::unique_ptr<Lease> l) {
  std::unique_ptr<Lease> refused;
  auto id = t->Add(std::move(l), &refused);
  EXPECT_TRUE(id.ok());
  EXPECT_TRUE(t->Grant(*id, {}));
  return *id;
}

TEST(LeaseTable, UnansweredHoldersShareOneDeadlineAndAreKilled) {
  // Long enough that a loaded CI machine's scheduling delays stay well inside the margin
  // between one deadline (500 ms) and three (1500 ms).
  LeaseTable t(milliseconds(500));
  Holder holder;
  UniqueFd c1, c2, c3;
  AddGranted(&t, MakeLease(1000, 0, 4096, &c1, holder.pidfd));
  AddGranted(&t, MakeLease(1000, 4096, 4096, &c2, holder.pidfd));
  AddGranted(&t, MakeLease(1000, 8192, 4096, &c3, holder.pidfd));
  const auto start = Clock::now();
  LeaseTable::RevokeResult r = t.Revoke(7, 0, UINT64_MAX);
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.holders.size(), 3u);
  for (const auto& h : r.holders) EXPECT_TRUE(h.killed);
  EXPECT_FALSE(holder.Alive());
  // One deadline for the three, not one each (which took three deadlines and more).
  EXPECT_GE(took.count(), 500);
  EXPECT_LT(took.count(), 1450);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.TakeUnpinned().size(), 3u);
}

TEST(LeaseTable, AnAckOrAHangUpGivesTheMapBackWithoutAKill) {
  LeaseTable t(milliseconds(2000));
  Holder holder;
  UniqueFd acker, leaver;
  const uint64_t id = AddGranted(&t, MakeLease(1000, 0, 4096, &acker, holder.pidfd));
  AddGranted(&t, MakeLease(1000, 4096, 4096, &leaver, holder.pidfd));
  std::thread client([&] {
    char buf[256];
    ASSERT_GT(recv(acker.get(), buf, sizeof(buf), 0), 0);  // the revoke
    const std::string ack = "{\"ack\": " + std::to_string(id) + "}";
    send(acker.get(), ack.data(), ack.size(), 0);
    leaver.Reset();  // the other holder is gone
  });
  const auto start = Clock::now();
  LeaseTable::RevokeResult r = t.Revoke(7, 0, UINT64_MAX);
  client.join();
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count(), 1000);
  ASSERT_EQ(r.holders.size(), 2u);
  for (const auto& h : r.holders) EXPECT_EQ(h.action, "revoked");
  EXPECT_TRUE(holder.Alive());
}

TEST(LeaseTable, AMalformedAckIsNoAck) {
  LeaseTable t(milliseconds(100));
  Holder holder;
  UniqueFd c;
  AddGranted(&t, MakeLease(1000, 0, 4096, &c, holder.pidfd));
  for (const char* junk : {"{\"ack\": \"1\"}", "{\"ack\": -1}", "[1]", "not json"}) {
    send(c.get(), junk, strlen(junk), 0);
  }
  LeaseTable::RevokeResult r = t.Revoke(7, 0, UINT64_MAX);  // must not throw
  ASSERT_EQ(r.holders.size(), 1u);
  EXPECT_TRUE(r.holders[0].killed);
  EXPECT_FALSE(holder.Alive());
}

TEST(LeaseTable, ARevokeOnlyTakesOverlappingLeases) {
  LeaseTable t(milliseconds(50));
  UniqueFd c1, c2;
  AddGranted(&t, MakeLease(1000, 0, 4096, &c1));
  AddGranted(&t, MakeLease(1000, 8192, 4096, &c2));
  c1.Reset();  // hung up: given back
  LeaseTable::RevokeResult r = t.Revoke(7, 0, 4096);
  EXPECT_EQ(r.holders.size(), 1u);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_TRUE(t.Revoke(8, 0, UINT64_MAX).holders.empty());  // another inode
}

TEST(LeaseTable, ReadViewsCoverTheWholeFileAndAloneAnswerViewsOnlyRevokes) {
  LeaseTable t(milliseconds(50));
  UniqueFd map_client, view_client;
  AddGranted(&t, MakeLease(1000, 0, 4096, &map_client));
  auto view = MakeLease(1000, 0, UINT64_MAX, &view_client);
  view->view = true;
  AddGranted(&t, std::move(view));
  map_client.Reset();   // hung up: each revoke that takes a lease finds it given back
  view_client.Reset();
  // An allocation: only the view goes, the map's blocks stay where they are.
  LeaseTable::RevokeResult r = t.Revoke(7, 0, UINT64_MAX, /*views_only=*/true);
  EXPECT_EQ(r.holders.size(), 1u);
  EXPECT_EQ(t.size(), 1u);
  auto listed = t.List();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["kind"], "map");
  // A view answers any range of its file, however far from its other leases.
  UniqueFd c2;
  auto v2 = MakeLease(1000, 0, UINT64_MAX, &c2);
  v2->view = true;
  AddGranted(&t, std::move(v2));
  c2.Reset();
  EXPECT_EQ(t.Revoke(7, 1ULL << 40, (1ULL << 40) + 4096).holders.size(), 1u);
  EXPECT_EQ(t.size(), 1u);  // the map of [0, 4096) stays
}

TEST(LeaseTable, AViewRevokeIsNotWaitedForAndNeverKills) {
  LeaseTable t(milliseconds(200));
  Holder holder;  // never answers
  UniqueFd c;
  auto view = MakeLease(1000, 0, UINT64_MAX, &c, holder.pidfd);
  view->view = true;
  AddGranted(&t, std::move(view));
  const auto start = Clock::now();
  LeaseTable::RevokeResult r = t.Revoke(7, 0, 4096);
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count(), 150);
  ASSERT_EQ(r.holders.size(), 1u);
  EXPECT_FALSE(r.holders[0].killed);
  EXPECT_TRUE(r.status.ok());
  EXPECT_TRUE(holder.Alive());
  EXPECT_EQ(t.size(), 0u);
  char buf[256];
  const ssize_t n = recv(c.get(), buf, sizeof(buf), MSG_DONTWAIT);  // told all the same
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf, n).find("revoke"), std::string::npos);
}

TEST(LeaseTable, BadMediaUnderAViewIsToldWhateverThePolicy) {
  LeaseTable t(milliseconds(50));
  UniqueFd c;
  auto view = MakeLease(1000, 0, UINT64_MAX, &c);
  view->view = true;
  AddGranted(&t, std::move(view));
  for (const char* policy : {"kill", "notify", "ignore"}) {
    auto out = t.MediaError(7, 8192, 4096, policy);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_FALSE(out[0].killed);
    EXPECT_NE(out[0].action.find("read view"), std::string::npos) << out[0].action;
    char buf[256];
    const ssize_t n = recv(c.get(), buf, sizeof(buf), MSG_DONTWAIT);
    ASSERT_GT(n, 0);
    EXPECT_NE(std::string(buf, n).find("\"bad\""), std::string::npos);
  }
}

TEST(LeaseTable, ALeaseRevokedBeforeItIsGrantedIsCancelledWithoutAWait) {
  LeaseTable t(milliseconds(5000));
  UniqueFd c;
  std::unique_ptr<Lease> refused;
  auto id = t.Add(MakeLease(1000, 0, 4096, &c), &refused);
  ASSERT_TRUE(id.ok());
  const auto start = Clock::now();
  EXPECT_TRUE(t.Revoke(7, 0, UINT64_MAX).holders.empty());
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count(), 1000);
  EXPECT_FALSE(t.Grant(*id, {}));  // the map request fails: its extents may be gone
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.TakeUnpinned(), std::vector<Inode*>{FakePin(1)});
}

TEST(LeaseTable, UsersAreLimitedAndRootIsNot) {
  LeaseTable t(milliseconds(50), LeaseLimits{2, 3});
  std::vector<UniqueFd> ends(8);
  std::unique_ptr<Lease> refused;
  ASSERT_TRUE(t.Add(MakeLease(1000, 0, 1, &ends[0]), &refused).ok());
  ASSERT_TRUE(t.Add(MakeLease(1000, 0, 1, &ends[1]), &refused).ok());
  auto third = t.Add(MakeLease(1000, 0, 1, &ends[2]), &refused);
  EXPECT_EQ(third.status().code(), EMFILE);
  ASSERT_NE(refused, nullptr);  // handed back, pin and all
  EXPECT_EQ(refused->pin, FakePin(1));
  ASSERT_TRUE(t.Add(MakeLease(1001, 0, 1, &ends[3]), &refused).ok());
  EXPECT_EQ(t.Add(MakeLease(1002, 0, 1, &ends[4]), &refused).status().code(), ENFILE);
  EXPECT_TRUE(t.Add(MakeLease(0, 0, 1, &ends[5]), &refused).ok());  // root
  EXPECT_TRUE(t.Add(MakeLease(0, 0, 1, &ends[6]), &refused).ok());
  EXPECT_EQ(t.CountFor(1000), 2u);
}

TEST(LeaseTable, HungUpLeasesAreReapedAndTheirCountsFreed) {
  LeaseTable t(milliseconds(50), LeaseLimits{1, 10});
  UniqueFd c1, c2;
  const uint64_t id = AddGranted(&t, MakeLease(1000, 0, 4096, &c1));
  std::unique_ptr<Lease> refused;
  EXPECT_EQ(t.Add(MakeLease(1000, 0, 1, &c2), &refused).status().code(), EMFILE);
  EXPECT_EQ(t.ReapHungUp({id}), 0u);  // still connected
  c1.Reset();
  ASSERT_EQ(t.Sockets().size(), 1u);
  EXPECT_EQ(t.ReapHungUp({id}), 1u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.TakeUnpinned().size(), 1u);
  EXPECT_TRUE(t.Add(MakeLease(1000, 0, 1, &c2), &refused).ok());  // the slot came back
}

}  // namespace
}  // namespace udax
