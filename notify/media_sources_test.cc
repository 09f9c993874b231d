// media_sources_test.cc -- the sources a Region gets, end to end on an emulated image.
#include "notify/media_sources.h"

#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "notify/test_util.h"

namespace udax {
namespace {

std::unique_ptr<Region> MakeImage(const ScratchDir& dir) {
  RegionOptions ro;
  ro.create_size = 1 << 20;
  // Created, given a superblock's UUID (the key of its list file), then opened for real.
  if (!Region::Open(dir / "img", ro).ok() || !StampTestSuperblock(dir / "img")) return nullptr;
  ro.create_size = 0;
  auto r = Region::Open(dir / "img", ro);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

TEST(MediaSourcesTest, EmulatedImageGetsTheWatcherAndTheFaultListener) {
  ScratchDir dir;
  auto region = MakeImage(dir);
  ASSERT_NE(region, nullptr);
  EventQueue q;
  auto s = MediaSources::Start(region.get(), &q, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->kernel(), nullptr);  // an image on tmpfs: no kernel badblocks
  EXPECT_TRUE((*s)->skipped().empty());

  ASSERT_OK(UpdateBadblockListFile(region->badblocks_path(), [](BadblockList* l) {
    l->Add(16, 1);
    return Status::Ok();
  }));
  MediaEvent e;
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.source, MediaEventSource::kInjected);
  EXPECT_EQ(e.offset, 8192u);
  char buf[64];
  EXPECT_EQ(region->ReadSafe(8192, buf, sizeof(buf)).code(), EIO);
  ASSERT_TRUE(PopWithin(&q, &e));
  EXPECT_EQ(e.source, MediaEventSource::kSigbusAr);
  EXPECT_EQ(e.offset, 8192u);
  EXPECT_EQ(e.length, 512u);
  (*s)->Stop();
  (*s)->Stop();
}

TEST(MediaSourcesTest, MalformedListFailsStart) {
  ScratchDir dir;
  auto region = MakeImage(dir);
  ASSERT_NE(region, nullptr);
  std::ofstream(region->badblocks_path()) << "nonsense\n";
  EventQueue q;
  auto s = MediaSources::Start(region.get(), &q, {});
  EXPECT_EQ(s.status().code(), EINVAL);
}

// Early kill in a child (the policy and the AO receiver are process-wide): an AO signal
// for the Region's mapping becomes a sigbus-ao event instead of killing the process.
TEST(MediaSourcesTest, EarlyKillRoutesActionOptionalSignals) {
  ScratchDir dir;  // here, not in the child: its _Exit skips destructors (left 1 MiB behind)
  EXPECT_EXIT(
      {
        auto region = MakeImage(dir);
        EventQueue q;
        MediaSources::Options o;
        o.early_kill = true;
        auto s = MediaSources::Start(region.get(), &q, o);
        if (!s.ok()) std::_Exit(1);
        if (prctl(PR_MCE_KILL_GET, 0, 0, 0, 0) != PR_MCE_KILL_EARLY) std::_Exit(2);
        siginfo_t info;
        std::memset(&info, 0, sizeof(info));
        info.si_signo = SIGBUS;
        info.si_code = BUS_MCEERR_AO;
        info.si_addr = region->base() + 20000;
        info.si_addr_lsb = 12;
        syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGBUS, &info);
        MediaEvent e;
        if (!q.Pop(&e, std::chrono::seconds(5))) std::_Exit(3);
        if (e.source != MediaEventSource::kSigbusAo || e.offset != 16384 || e.length != 4096) {
          std::_Exit(4);
        }
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace udax
