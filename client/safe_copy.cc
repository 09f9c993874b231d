// safe_copy.cc -- SafeCopy and its SIGBUS/SIGSEGV guard (safe_copy.h).
#include "client/safe_copy.h"

#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace udax_client {
namespace {

// Per thread: where to jump back to, and the source range being copied. Initial-exec TLS:
// the handler reads it, and a preloaded library's static TLS never allocates.
struct Guard {
  sigjmp_buf env;
  uintptr_t lo = 0, hi = 0;    // the map side: its SIGBUS is the map's (poison, a revoke)
  uintptr_t ulo = 0, uhi = 0;  // the program's buffer: its faults are the caller's EFAULT
  volatile sig_atomic_t active = 0;
  uintptr_t addr = 0;
  int code = 0;
  int lsb = 0;
  bool program = false;  // the fault was on the program's buffer
};
__attribute__((tls_model("initial-exec"))) thread_local Guard tls_guard;

using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);

// The C library's sigaction: under the shim the name sigaction is the shim's own.
SigactionFn RealSigaction() {
  static SigactionFn fn = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
  return fn != nullptr ? fn : &::sigaction;
}

std::mutex program_mu;  // serializes changes of the program's actions
// What SIGBUS and SIGSEGV do outside a guarded copy: the program's own actions.
struct sigaction program_bus_action;
struct sigaction program_segv_action;
std::atomic<bool> installed{false};

struct sigaction* ProgramAction(int sig) {
  return sig == SIGSEGV ? &program_segv_action : &program_bus_action;
}

// The handler runs with its signal blocked, and a siglongjmp without a saved mask (which
// would cost a system call per copy) leaves it so: the jump's landing unblocks both.
void UnblockFaultSignals() {
  sigset_t faults;
  sigemptyset(&faults);
  sigaddset(&faults, SIGBUS);
  sigaddset(&faults, SIGSEGV);
  pthread_sigmask(SIG_UNBLOCK, &faults, nullptr);
}

bool Synchronous(const siginfo_t* si) { return si->si_code > 0 && si->si_code != BUS_MCEERR_AO; }

// Not a fault of a guarded copy: what the program asked for.
void Chain(int sig, siginfo_t* si, void* ctx) {
  struct sigaction a;
  std::memcpy(&a, ProgramAction(sig), sizeof(a));  // a racing change: either is fine
  if (a.sa_flags & SA_SIGINFO) {
    if (a.sa_sigaction != nullptr) a.sa_sigaction(sig, si, ctx);
    return;
  }
  if (a.sa_handler == SIG_IGN && !Synchronous(si)) return;
  if (a.sa_handler == SIG_DFL || a.sa_handler == SIG_IGN) {
    // The default action, as the kernel would have taken it: a fault repeats when the
    // handler returns and now kills; a queued signal is queued again (it is blocked until
    // this handler returns).
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    RealSigaction()(sig, &dfl, nullptr);
    if (!Synchronous(si)) {
      syscall(SYS_rt_tgsigqueueinfo, getpid(), static_cast<pid_t>(syscall(SYS_gettid)), sig, si);
    }
    return;
  }
  a.sa_handler(sig);
}

// SIGBUS and SIGSEGV.
void OnFault(int sig, siginfo_t* si, void* ctx) {
  Guard& g = tls_guard;
  uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
  // The program's buffer, on either signal (unmapped, read-only, a file map past its
  // end): the system call the shim stands in for would have failed with EFAULT.
  if (g.active && si->si_code > 0 && si->si_code != BUS_MCEERR_AO && a >= g.ulo && a < g.uhi) {
    g.active = 0;
    g.addr = a;
    g.lsb = 0;
    g.code = si->si_code;
    g.program = true;
    siglongjmp(g.env, 1);
  }
  if (sig != SIGBUS) {
    Chain(sig, si, ctx);
    return;
  }
  // A machine check reports the start of the poisoned unit (a page, or 2 MiB on devdax):
  // the copy may have begun inside it.
  uintptr_t unit = 1;
  if ((si->si_code == BUS_MCEERR_AR || si->si_code == BUS_MCEERR_AO) && si->si_addr_lsb > 0 &&
      si->si_addr_lsb < static_cast<short>(8 * sizeof(uintptr_t))) {
    unit = uintptr_t{1} << si->si_addr_lsb;
  }
  if (g.active && Synchronous(si) && a < g.hi && a + unit > g.lo) {
    g.active = 0;
    g.addr = a < g.lo ? g.lo : a;
    g.lsb = unit > 1 ? si->si_addr_lsb : 0;
    g.code = si->si_code;
    g.program = false;
    siglongjmp(g.env, 1);
  }
  Chain(sig, si, ctx);
}

}  // namespace

bool InstallSigbusGuard() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::lock_guard<std::mutex> lock(program_mu);
    struct sigaction ours {};
    ours.sa_sigaction = OnFault;
    ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&ours.sa_mask);
    // SIGSEGV first: without it, a bad buffer is the program's crash as before.
    (void)RealSigaction()(SIGSEGV, &ours, &program_segv_action);
    if (RealSigaction()(SIGBUS, &ours, &program_bus_action) == 0) installed.store(true);
  });
  return installed.load();
}

bool SigbusGuardInstalled() { return installed.load(std::memory_order_relaxed); }

namespace {

// Runs fn(arg) armed with the ranges set in tls_guard (the caller sets them). False when
// a fault on them abandoned fn midway: tls_guard then says where and what. The caller
// checks first that no guarded section of this thread is open (a handler interrupting
// one): arming again would clobber it.
bool RunArmed(void (*fn)(void*), void* arg) {
  // No saved mask (that would cost a system call per call): the fault path unblocks the
  // signal the handler ran with instead. (tls_guard by name throughout: a local reference
  // would not survive the jump back.)
  if (sigsetjmp(tls_guard.env, 0) != 0) {
    UnblockFaultSignals();
    return false;
  }
  tls_guard.active = 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  fn(arg);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  tls_guard.active = 0;
  return true;
}

struct Copy {
  void* dst;
  const void* src;
  size_t n;
};

void RunCopy(void* arg) {
  const Copy& c = *static_cast<const Copy*>(arg);
  std::memcpy(c.dst, c.src, c.n);
}

// memcpy(dst, src, n) with SIGBUS on [guarded, guarded+n), and any fault on the other
// side (the program's buffer), turned into a value.
CopyResult GuardedCopy(void* dst, const void* src, size_t n, const void* guarded) {
  CopyResult r;
  Guard& g = tls_guard;
  if (g.active) {
    // Called from a signal handler that interrupted a guarded copy on this thread:
    // arming would clobber the outer guard. A fault with no cause (si_code 0) sends the
    // caller to the kernel instead.
    r.faulted = true;
    r.fault_offset = 0;
    r.si_code = 0;
    return r;
  }
  g.lo = reinterpret_cast<uintptr_t>(guarded);
  g.hi = g.lo + n;
  g.ulo = reinterpret_cast<uintptr_t>(guarded == src ? dst : src);
  g.uhi = g.ulo + n;
  Copy copy{dst, src, n};
  if (!RunArmed(RunCopy, &copy)) {
    r.faulted = true;
    r.program_fault = g.program;
    r.fault_offset = g.program ? g.addr - g.ulo : g.addr - g.lo;
    r.si_code = g.code;
    r.addr_lsb = g.lsb;
  }
  return r;
}

struct Probe {
  const volatile unsigned char* p;
  size_t n;
  size_t page;
};

void TouchEachPage(void* arg) {
  const Probe& probe = *static_cast<const Probe*>(arg);
  for (size_t off = 0; off < probe.n; off += probe.page) (void)probe.p[off];
  (void)probe.p[probe.n - 1];
}

}  // namespace

CopyResult SafeCopy(void* dst, const void* src, size_t n) { return GuardedCopy(dst, src, n, src); }
CopyResult SafeStore(void* dst, const void* src, size_t n) { return GuardedCopy(dst, src, n, dst); }

bool ProbeReadable(const void* p, size_t n) {
  if (n == 0) return true;
  Guard& g = tls_guard;
  if (g.active) return false;  // inside a handler that interrupted a guarded section
  Probe probe{static_cast<const volatile unsigned char*>(p), n,
              static_cast<size_t>(sysconf(_SC_PAGESIZE))};
  g.lo = g.hi = 0;
  g.ulo = reinterpret_cast<uintptr_t>(p);
  g.uhi = g.ulo + n;
  return RunArmed(TouchEachPage, &probe);
}

int SetProgramFaultAction(int sig, const struct sigaction* act, struct sigaction* old) {
  std::lock_guard<std::mutex> lock(program_mu);
  if (old != nullptr) *old = *ProgramAction(sig);
  if (act != nullptr) *ProgramAction(sig) = *act;
  return 0;
}

}  // namespace udax_client
