// safe_copy.cc -- the process-wide SIGBUS handler and the thread-local armed sections.
#include "fs/region/safe_copy.h"

#include <setjmp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace udax {
namespace {

// State shared by RunSigbusGuarded and the handler, one per thread (a synchronous SIGBUS
// is delivered to the thread that faulted). Plain data with zero initialisation, so no
// lazy constructor runs on first access; initial-exec keeps the access a plain TLS load
// rather than a __tls_get_addr call, which may allocate and is not async-signal-safe.
struct ArmedSection {
  sigjmp_buf env;
  volatile sig_atomic_t armed;
  uintptr_t lo;  // guarded range [lo, hi)
  uintptr_t hi;
  // Written by the handler just before it jumps back.
  int si_code;
  uintptr_t addr;
  uint64_t granule;
  uintptr_t first;
  uintptr_t last;
};
thread_local ArmedSection tls_section __attribute__((tls_model("initial-exec")));

// Both written once, before our handler is installed, and only read afterwards.
struct sigaction g_previous;
uint64_t g_page_size = 4096;
std::once_flag g_install_once;
// Lock-free, so the handler may read it.
std::atomic<AsyncSigbusSink> g_async_sink{nullptr};
static_assert(std::atomic<AsyncSigbusSink>::is_always_lock_free);

// Faults the kernel raises for the instruction that is executing. BUS_MCEERR_AO (poison
// found elsewhere, reported early) and user-sent signals (si_code <= 0) are asynchronous:
// the copy in progress did not cause them and must not be abandoned for them.
bool IsSynchronousFault(int si_code) {
  return si_code == BUS_ADRALN || si_code == BUS_ADRERR || si_code == BUS_OBJERR ||
         si_code == BUS_MCEERR_AR;
}

// The kernel sets si_addr_lsb only for memory-failure signals (12 for a 4 KiB page, 21
// for a 2 MiB devdax page); a truncated file or removed device leaves it 0 and the unit
// that vanished is a page.
uint64_t GranuleOf(const siginfo_t& info) {
  const int lsb = info.si_addr_lsb;
  if (lsb > 0 && lsb < 48) return uint64_t{1} << lsb;
  return g_page_size;
}

// Hands a SIGBUS that is not ours to whoever would have had it without us.
void PassOn(int sig, siginfo_t* info, void* ucontext) {
  const int saved_errno = errno;
  ArmedSection& s = tls_section;
  // Disarm while a foreign handler runs: if it leaves by longjmp of its own, a later fault
  // must not jump into this thread's dead RunSigbusGuarded frame.
  const sig_atomic_t was_armed = s.armed;
  s.armed = 0;
  const struct sigaction& prev = g_previous;
  const bool synchronous = IsSynchronousFault(info->si_code);
  if ((prev.sa_flags & SA_SIGINFO) != 0) {
    prev.sa_sigaction(sig, info, ucontext);
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
  } else if (prev.sa_handler == SIG_IGN && !synchronous) {
    // An ignored asynchronous SIGBUS stays ignored.
  } else {
    // The default action. A fault cannot be ignored either: the kernel forces SIG_DFL for
    // it. Restoring SIG_DFL and returning re-executes the faulting access, so the process
    // dies with the kernel's own siginfo (and core); an asynchronous signal would not come
    // back by itself, so it is raised again and delivered, fatally, once we return.
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGBUS, &dfl, nullptr);
    if (!synchronous) raise(SIGBUS);
  }
  s.armed = was_armed;
  errno = saved_errno;
}

void OnSigbus(int sig, siginfo_t* info, void* ucontext) {
  ArmedSection& s = tls_section;
  if (info->si_code == BUS_MCEERR_AO) {
    const AsyncSigbusSink sink = g_async_sink.load(std::memory_order_acquire);
    if (sink != nullptr) {
      const int saved_errno = errno;
      sink(info);
      errno = saved_errno;
      return;
    }
  }
  const bool unattributed = info->si_code == SI_KERNEL;
  if (s.armed != 0 && (IsSynchronousFault(info->si_code) || unattributed)) {
    const uintptr_t addr = unattributed ? 0 : reinterpret_cast<uintptr_t>(info->si_addr);
    const uint64_t granule = GranuleOf(*info);
    uintptr_t first = addr & ~static_cast<uintptr_t>(granule - 1);
    uintptr_t last = first + granule;
    if (unattributed) {
      first = s.lo;
      last = s.hi;
    }
    // Only faults in the range this thread declared are media faults of the copy; a
    // fault anywhere else (the caller's buffer, a stray pointer) is a bug and must not be
    // disguised as bad media.
    if (first < s.hi && s.lo < last) {
      s.armed = 0;
      s.si_code = info->si_code;
      s.addr = addr;
      s.granule = granule;
      s.first = first;
      s.last = last;
      // The kernel blocked SIGBUS for the handler's duration and only a normal return
      // would unblock it; jumping out leaves it blocked, and the next fault on this
      // thread would then kill the process. SIGBUS cannot have been blocked when the
      // armed section was entered (the kernel kills a thread that faults with SIGBUS
      // blocked instead of calling us), so unblocking it restores exactly the mask the
      // section started with. Doing it here, on the rare fault path, spares every armed
      // section the rt_sigprocmask call that sigsetjmp(env, 1) makes to save the mask
      // (about 230 ns here, 80 times the cost of a 64-byte copy).
      sigset_t bus;
      sigemptyset(&bus);
      sigaddset(&bus, SIGBUS);
      sigprocmask(SIG_UNBLOCK, &bus, nullptr);
      siglongjmp(s.env, 1);
    }
  }
  PassOn(sig, info, ucontext);
}

struct CopyArgs {
  void* dst;
  const void* src;
  size_t n;
};

struct PmemCopyArgs {
  pmem2_memcpy_fn fn;
  void* dst;
  const void* src;
  size_t n;
  unsigned flags;
};

struct PmemSetArgs {
  pmem2_memset_fn fn;
  void* dst;
  int c;
  size_t n;
  unsigned flags;
};

struct FlushArgs {
  void (*fn)(const void*, size_t);
  const void* p;
  size_t n;
};

void DoPlainCopy(void* arg) {
  const auto* a = static_cast<const CopyArgs*>(arg);
  std::memcpy(a->dst, a->src, a->n);
}

void DoPmemCopy(void* arg) {
  const auto* a = static_cast<const PmemCopyArgs*>(arg);
  a->fn(a->dst, a->src, a->n, a->flags);
}

void DoPmemSet(void* arg) {
  const auto* a = static_cast<const PmemSetArgs*>(arg);
  a->fn(a->dst, a->c, a->n, a->flags);
}

void DoFlush(void* arg) {
  const auto* a = static_cast<const FlushArgs*>(arg);
  a->fn(a->p, a->n);
}

}  // namespace

void InstallSigbusHandler() {
  std::call_once(g_install_once, [] {
    const long page = sysconf(_SC_PAGESIZE);
    if (page > 0) g_page_size = static_cast<uint64_t>(page);
    // Read the old disposition before installing ours (rather than through sigaction's
    // oldact), so g_previous is complete before our handler can first run.
    sigaction(SIGBUS, nullptr, &g_previous);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = OnSigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    // sigaction only fails for an invalid signal or handler; without the handler no pmem
    // access is safe, so there is no sensible way to continue.
    if (sigaction(SIGBUS, &sa, nullptr) != 0) std::abort();
  });
}

void SetAsyncSigbusSink(AsyncSigbusSink sink) {
  InstallSigbusHandler();
  g_async_sink.store(sink, std::memory_order_release);
}

bool RunSigbusGuarded(const void* guard, size_t guard_len, void (*fn)(void*), void* arg,
                      CaughtSigbus* caught) {
  InstallSigbusHandler();
  ArmedSection& s = tls_section;
  // Nested sections would overwrite the outer jump buffer; that is a programming error.
  if (s.armed != 0) std::abort();
  s.lo = reinterpret_cast<uintptr_t>(guard);
  s.hi = s.lo + guard_len;
  // savemask = 0: OnSigbus itself unblocks SIGBUS before jumping (see there), which is
  // all a saved mask would restore. No automatic variable is modified between here and
  // the jump (s, caught, fn and arg are only read), so none needs to be volatile.
  if (sigsetjmp(s.env, 0) != 0) {
    // Back from OnSigbus, which has disarmed the section; fn was abandoned midway.
    if (caught != nullptr) {
      caught->si_code = s.si_code;
      caught->addr = s.addr;
      caught->granule = s.granule;
      caught->first = s.first;
      caught->last = s.last;
    }
    return false;
  }
  // The signal fences keep the compiler from moving fn's accesses out of the armed window.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  s.armed = 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  fn(arg);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  s.armed = 0;
  return true;
}

// Empty accesses return before arming: they touch nothing, and memcpy with a null pointer
// is undefined even for zero bytes.
bool SafeCopyFromPmem(void* dst, const void* pmem_src, size_t n, CaughtSigbus* caught) {
  if (n == 0) return true;
  CopyArgs args{dst, pmem_src, n};
  return RunSigbusGuarded(pmem_src, n, DoPlainCopy, &args, caught);
}

bool SafeCopyToPmem(pmem2_memcpy_fn memcpy_fn, void* pmem_dst, const void* src, size_t n,
                    unsigned flags, CaughtSigbus* caught) {
  if (n == 0) return true;
  PmemCopyArgs args{memcpy_fn, pmem_dst, src, n, flags};
  return RunSigbusGuarded(pmem_dst, n, DoPmemCopy, &args, caught);
}

bool SafeSetPmem(pmem2_memset_fn memset_fn, void* pmem_dst, int c, size_t n, unsigned flags,
                 CaughtSigbus* caught) {
  if (n == 0) return true;
  PmemSetArgs args{memset_fn, pmem_dst, c, n, flags};
  return RunSigbusGuarded(pmem_dst, n, DoPmemSet, &args, caught);
}

bool SafeFlushPmem(void (*flush_fn)(const void*, size_t), const void* pmem, size_t n,
                   CaughtSigbus* caught) {
  if (n == 0) return true;
  FlushArgs args{flush_fn, pmem, n};
  return RunSigbusGuarded(pmem, n, DoFlush, &args, caught);
}

const char* SigbusCodeName(int si_code) {
  switch (si_code) {
    case BUS_ADRALN:
      return "BUS_ADRALN";
    case BUS_ADRERR:
      return "BUS_ADRERR";
    case BUS_OBJERR:
      return "BUS_OBJERR";
    case BUS_MCEERR_AR:
      return "BUS_MCEERR_AR";
    case BUS_MCEERR_AO:
      return "BUS_MCEERR_AO";
    case SI_KERNEL:
      return "SI_KERNEL";
    default:
      return "SIGBUS";
  }
}

}  // namespace udax
