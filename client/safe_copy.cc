// safe_copy.cc -- SafeCopy and its SIGBUS guard (safe_copy.h).
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
  uintptr_t lo = 0, hi = 0;
  volatile sig_atomic_t active = 0;
  uintptr_t addr = 0;
  int code = 0;
  int lsb = 0;
};
__attribute__((tls_model("initial-exec"))) thread_local Guard tls_guard;

using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);

// The C library's sigaction: under the shim the name sigaction is the shim's own.
SigactionFn RealSigaction() {
  static SigactionFn fn = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
  return fn != nullptr ? fn : &::sigaction;
}

std::mutex program_mu;           // serializes changes of program_action
struct sigaction program_action;  // what SIGBUS does outside a guarded copy
std::atomic<bool> installed{false};

bool Synchronous(const siginfo_t* si) { return si->si_code > 0 && si->si_code != BUS_MCEERR_AO; }

// Not a fault of a guarded copy: what the program asked for.
void Chain(int sig, siginfo_t* si, void* ctx) {
  struct sigaction a;
  std::memcpy(&a, &program_action, sizeof(a));  // a racing change: either is fine
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
    RealSigaction()(SIGBUS, &dfl, nullptr);
    if (!Synchronous(si)) {
      syscall(SYS_rt_tgsigqueueinfo, getpid(), static_cast<pid_t>(syscall(SYS_gettid)), sig, si);
    }
    return;
  }
  a.sa_handler(sig);
}

void OnSigbus(int sig, siginfo_t* si, void* ctx) {
  Guard& g = tls_guard;
  uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
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
    ours.sa_sigaction = OnSigbus;
    ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&ours.sa_mask);
    if (RealSigaction()(SIGBUS, &ours, &program_action) == 0) installed.store(true);
  });
  return installed.load();
}

bool SigbusGuardInstalled() { return installed.load(std::memory_order_relaxed); }

namespace {

// memcpy(dst, src, n) with SIGBUS on [guarded, guarded+n) turned into a value.
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
  // No saved mask (that would cost a system call per copy): the fault path unblocks the
  // SIGBUS the handler ran with instead.
  if (sigsetjmp(g.env, 0) != 0) {
    sigset_t bus;
    sigemptyset(&bus);
    sigaddset(&bus, SIGBUS);
    pthread_sigmask(SIG_UNBLOCK, &bus, nullptr);
    r.faulted = true;
    r.fault_offset = g.addr - g.lo;
    r.si_code = g.code;
    r.addr_lsb = g.lsb;
    return r;
  }
  g.active = 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  std::memcpy(dst, src, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  g.active = 0;
  return r;
}

}  // namespace

CopyResult SafeCopy(void* dst, const void* src, size_t n) { return GuardedCopy(dst, src, n, src); }
CopyResult SafeStore(void* dst, const void* src, size_t n) { return GuardedCopy(dst, src, n, dst); }

int SetProgramSigbusAction(const struct sigaction* act, struct sigaction* old) {
  std::lock_guard<std::mutex> lock(program_mu);
  if (old != nullptr) *old = program_action;
  if (act != nullptr) program_action = *act;
  return 0;
}

}  // namespace udax_client
