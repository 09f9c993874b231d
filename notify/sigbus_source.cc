// sigbus_source.cc -- siginfo translation, PR_MCE_KILL, and the BUS_MCEERR_AO ring.
#include "notify/sigbus_source.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>

#include "fs/region/safe_copy.h"

namespace udax {
namespace {

uint64_t PageSize() {
  const long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? static_cast<uint64_t>(p) : 4096;
}

std::optional<MediaEvent> EventFromAddress(int si_code, uintptr_t addr, int lsb,
                                           const void* base, uint64_t size) {
  MediaEvent e;
  e.si_code = si_code;
  e.time = std::chrono::system_clock::now();
  e.source = si_code == BUS_MCEERR_AO ? MediaEventSource::kSigbusAo : MediaEventSource::kSigbusAr;
  if (si_code == SI_KERNEL) {
    // The kernel could not say where: everything the daemon maps is suspect.
    e.offset = 0;
    e.length = size;
    e.detail = "machine check without an address";
    return e;
  }
  const uint64_t granule = lsb > 0 && lsb < 48 ? uint64_t{1} << lsb : PageSize();
  const uintptr_t lo = reinterpret_cast<uintptr_t>(base);
  const uintptr_t first = addr & ~static_cast<uintptr_t>(granule - 1);
  const uintptr_t last = first + granule;
  if (last <= lo || first >= lo + size) return std::nullopt;  // not our mapping
  const uintptr_t s = std::max(first, lo);
  const uintptr_t t = std::min<uintptr_t>(last, lo + size);
  e.offset = s - lo;
  e.length = t - s;
  return e;
}

bool IsMediaCode(int si_code) {
  return si_code == BUS_MCEERR_AR || si_code == BUS_MCEERR_AO || si_code == BUS_ADRERR ||
         si_code == BUS_OBJERR || si_code == SI_KERNEL;
}

// --- the ring the signal handler writes into (process-wide, like the handler) ---

struct AoSlot {
  std::atomic<int> state{0};  // 0 free, 1 being written, 2 ready
  std::atomic<uintptr_t> addr{0};
  std::atomic<int> lsb{0};
};
constexpr size_t kSlots = 128;
AoSlot g_slots[kSlots];
std::atomic<uint32_t> g_next{0};
std::atomic<uint64_t> g_lost{0};
std::atomic<bool> g_active{false};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<uintptr_t>::is_always_lock_free);

// Created once and never closed: a handler still running on another thread while the
// receiver stops must not write into a descriptor number that has been reused.
int g_wake_fd = -1;
std::once_flag g_wake_once;

void AoSink(const siginfo_t* info) {
  const uint32_t start = g_next.fetch_add(1, std::memory_order_relaxed);
  bool stored = false;
  for (size_t k = 0; k < kSlots && !stored; ++k) {
    AoSlot& slot = g_slots[(start + k) % kSlots];
    int expected = 0;
    if (!slot.state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) continue;
    slot.addr.store(reinterpret_cast<uintptr_t>(info->si_addr), std::memory_order_relaxed);
    slot.lsb.store(info->si_addr_lsb, std::memory_order_relaxed);
    slot.state.store(2, std::memory_order_release);
    stored = true;
  }
  if (!stored) g_lost.fetch_add(1, std::memory_order_relaxed);
  const uint64_t one = 1;
  ssize_t r;
  do {
    r = write(g_wake_fd, &one, sizeof(one));
  } while (r < 0 && errno == EINTR);
}

}  // namespace

std::optional<MediaEvent> MediaEventFromSiginfo(const siginfo_t& info, const void* base,
                                                uint64_t size) {
  if (info.si_signo != SIGBUS || !IsMediaCode(info.si_code)) return std::nullopt;
  const int lsb = info.si_code == BUS_MCEERR_AR || info.si_code == BUS_MCEERR_AO
                      ? info.si_addr_lsb
                      : 0;
  return EventFromAddress(info.si_code, reinterpret_cast<uintptr_t>(info.si_addr), lsb, base,
                          size);
}

Status EnableEarlyMceKill() {
  if (prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0) != 0) {
    return Status::FromErrno("prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY)");
  }
  return Status::Ok();
}

Result<int> MceKillPolicy() {
  const int r = prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
  if (r < 0) return Status::FromErrno("prctl(PR_MCE_KILL_GET)");
  return r;
}

Result<std::unique_ptr<SigbusAoReceiver>> SigbusAoReceiver::Start(const void* base, uint64_t size,
                                                                  EventQueue* queue) {
  std::call_once(g_wake_once, [] { g_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); });
  if (g_wake_fd < 0) return Status::Error(EMFILE, "eventfd for BUS_MCEERR_AO wake-ups");
  bool expected = false;
  if (!g_active.compare_exchange_strong(expected, true)) {
    return Status::Busy("a BUS_MCEERR_AO receiver is already running in this process");
  }
  Result<SourceThread> thread = SourceThread::Create();
  if (!thread.ok()) {
    g_active.store(false);
    return thread.status();
  }
  std::unique_ptr<SigbusAoReceiver> r(
      new SigbusAoReceiver(base, size, queue, std::move(thread).value()));
  r->thread_.Start([raw = r.get()] { raw->Run(); });
  SetAsyncSigbusSink(AoSink);
  return r;
}

void SigbusAoReceiver::Stop() {
  if (stopped_) return;
  stopped_ = true;
  SetAsyncSigbusSink(nullptr);
  thread_.Stop();
  Drain();  // what arrived before the sink was cleared
  g_active.store(false);
}

void SigbusAoReceiver::Drain() {
  uint64_t n = 0;
  (void)!read(g_wake_fd, &n, sizeof(n));
  for (AoSlot& slot : g_slots) {
    if (slot.state.load(std::memory_order_acquire) != 2) continue;
    const uintptr_t addr = slot.addr.load(std::memory_order_relaxed);
    const int lsb = slot.lsb.load(std::memory_order_relaxed);
    slot.state.store(0, std::memory_order_release);
    std::optional<MediaEvent> e = EventFromAddress(BUS_MCEERR_AO, addr, lsb, base_, size_);
    if (!e) {
      foreign_.fetch_add(1);
      continue;
    }
    received_.fetch_add(1);
    queue_->Push(std::move(*e));
  }
  const uint64_t lost = g_lost.exchange(0);
  if (lost > 0) {
    lost_.fetch_add(lost);
    MediaEvent e;
    e.source = MediaEventSource::kSigbusAo;
    e.si_code = BUS_MCEERR_AO;
    e.offset = 0;
    e.length = size_;
    e.time = std::chrono::system_clock::now();
    e.detail = std::to_string(lost) + " BUS_MCEERR_AO signals lost (ring full)";
    queue_->Push(std::move(e));
  }
}

void SigbusAoReceiver::Run() {
  for (;;) {
    // Our own AO signals interrupt the wait (EINTR): Wait retries those.
    struct pollfd fds[1] = {{g_wake_fd, POLLIN, 0}};
    Result<Wake> wake = thread_.Wait(fds);
    if (!wake.ok() || *wake == Wake::kStopped) return;
    if (fds[0].revents != 0) Drain();
  }
}

}  // namespace udax
