// event_queue_test.cc -- ordering, coalescing, blocking pop, close.
#include "notify/event_queue.h"

#include <signal.h>

#include <thread>
#include <vector>

#include "notify/test_util.h"

namespace udax {
namespace {

MediaEvent Ev(MediaEventSource s, uint64_t off, uint64_t len) {
  MediaEvent e;
  e.source = s;
  e.offset = off;
  e.length = len;
  e.time = std::chrono::system_clock::now();
  return e;
}

TEST(MediaEventTest, SourceNamesRoundTrip) {
  for (auto s : {MediaEventSource::kSigbusAr, MediaEventSource::kSigbusAo,
                 MediaEventSource::kBadblocks, MediaEventSource::kInjected,
                 MediaEventSource::kDeviceRemoved, MediaEventSource::kDeviceAdded}) {
    EXPECT_EQ(MediaEventSourceFromName(MediaEventSourceName(s)), s);
  }
  EXPECT_STREQ(MediaEventSourceName(MediaEventSource::kDeviceRemoved), "device-removed");
  EXPECT_FALSE(MediaEventSourceFromName("sigbus"));
}

TEST(MediaEventTest, FromRegionFault) {
  MediaFault f{4096, 4096, BUS_MCEERR_AR};
  MediaEvent e = MediaEventFromFault(f);
  EXPECT_EQ(e.source, MediaEventSource::kSigbusAr);
  EXPECT_EQ(e.offset, 4096u);
  EXPECT_EQ(e.length, 4096u);
  EXPECT_EQ(e.si_code, BUS_MCEERR_AR);
  EXPECT_EQ(MediaEventToString(e), "sigbus-ar [0x1000, +0x1000) BUS_MCEERR_AR");
  f.si_code = BUS_MCEERR_AO;
  EXPECT_EQ(MediaEventFromFault(f).source, MediaEventSource::kSigbusAo);
  f.si_code = BUS_ADRERR;
  EXPECT_EQ(MediaEventFromFault(f).source, MediaEventSource::kSigbusAr);
}

TEST(EventQueueTest, FifoAndTimeout) {
  EventQueue q;
  MediaEvent e;
  EXPECT_FALSE(q.TryPop(&e));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(q.Pop(&e, std::chrono::milliseconds(50)));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(45));
  EXPECT_FALSE(q.closed());
  ASSERT_TRUE(q.Push(Ev(MediaEventSource::kInjected, 0, 512)));
  ASSERT_TRUE(q.Push(Ev(MediaEventSource::kInjected, 4096, 512)));
  ASSERT_TRUE(q.Push(Ev(MediaEventSource::kSigbusAr, 0, 4096)));  // other source: kept apart
  EXPECT_EQ(q.size(), 3u);
  ASSERT_TRUE(q.TryPop(&e));
  EXPECT_EQ(e.offset, 0u);
  EXPECT_EQ(e.source, MediaEventSource::kInjected);
  ASSERT_TRUE(q.TryPop(&e));
  EXPECT_EQ(e.offset, 4096u);
  ASSERT_TRUE(q.TryPop(&e));
  EXPECT_EQ(e.source, MediaEventSource::kSigbusAr);
}

TEST(EventQueueTest, CoalescesDuplicatesAndOverlapsOfOneSource) {
  EventQueue q;
  MediaEvent first = Ev(MediaEventSource::kSigbusAr, 8192, 4096);
  first.si_code = BUS_MCEERR_AR;
  first.time -= std::chrono::seconds(5);
  q.Push(first);
  for (int i = 0; i < 100; ++i) q.Push(Ev(MediaEventSource::kSigbusAr, 8192, 4096));
  q.Push(Ev(MediaEventSource::kSigbusAr, 12000, 4096));  // overlaps: grows to 16096
  q.Push(Ev(MediaEventSource::kSigbusAr, 16096, 10));    // adjacent only: separate
  MediaEvent removed = Ev(MediaEventSource::kDeviceRemoved, 0, UINT64_MAX);
  removed.detail = "unbind@/devices/x";
  q.Push(removed);
  q.Push(Ev(MediaEventSource::kDeviceRemoved, 0, UINT64_MAX));
  EXPECT_EQ(q.size(), 3u);
  {
    // Two devices of one filesystem, removed together: two events.
    EventQueue two;
    two.Push(Ev(MediaEventSource::kDeviceRemoved, 64 << 20, 64 << 20));
    two.Push(Ev(MediaEventSource::kDeviceRemoved, 128 << 20, 64 << 20));
    two.Push(Ev(MediaEventSource::kDeviceRemoved, 64 << 20, 64 << 20));  // a repeat
    EXPECT_EQ(two.size(), 2u);
  }
  EXPECT_EQ(q.coalesced(), 102u);
  MediaEvent e;
  ASSERT_TRUE(q.TryPop(&e));
  EXPECT_EQ(e.offset, 8192u);
  EXPECT_EQ(e.length, 16096u - 8192u);
  EXPECT_EQ(e.time, first.time);  // the earliest
  EXPECT_EQ(e.si_code, BUS_MCEERR_AR);
  ASSERT_TRUE(q.TryPop(&e));
  EXPECT_EQ(e.offset, 16096u);
  ASSERT_TRUE(q.TryPop(&e));
  EXPECT_EQ(e.source, MediaEventSource::kDeviceRemoved);
  EXPECT_EQ(e.detail, "unbind@/devices/x");
  // Once popped, the same range is news again.
  q.Push(Ev(MediaEventSource::kSigbusAr, 8192, 4096));
  EXPECT_EQ(q.size(), 1u);
}

TEST(EventQueueTest, CloseWakesWaitersAndKeepsPendingEvents) {
  EventQueue q;
  std::thread waiter([&] {
    MediaEvent e;
    EXPECT_FALSE(q.Pop(&e, std::chrono::seconds(30)));
    EXPECT_TRUE(q.closed());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  q.Close();
  waiter.join();

  EventQueue q2;
  q2.Push(Ev(MediaEventSource::kBadblocks, 0, 512));
  q2.Close();
  q2.Close();
  EXPECT_FALSE(q2.Push(Ev(MediaEventSource::kBadblocks, 1024, 512)));
  MediaEvent e;
  EXPECT_TRUE(q2.Pop(&e, std::chrono::seconds(1)));  // queued before Close
  EXPECT_FALSE(q2.Pop(&e, std::chrono::seconds(1)));
}

TEST(EventQueueTest, ManyProducersOneConsumer) {
  EventQueue q;
  constexpr int kProducers = 4, kEach = 500;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kEach; ++i) {
        // Distinct ranges: nothing coalesces.
        q.Push(Ev(MediaEventSource::kSigbusAr, static_cast<uint64_t>(p * kEach + i) * 8192, 4096));
      }
    });
  }
  int got = 0;
  MediaEvent e;
  while (got < kProducers * kEach && q.Pop(&e, std::chrono::seconds(10))) ++got;
  for (auto& t : producers) t.join();
  EXPECT_EQ(got, kProducers * kEach);
  EXPECT_EQ(q.coalesced(), 0u);
}

}  // namespace
}  // namespace udax
