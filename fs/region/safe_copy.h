// safe_copy.h -- machine-check-safe access to mapped pmem: a SIGBUS becomes a return value.
//
// A load from a poisoned pmem line, from a page beyond the end of a truncated backing file,
// or from a removed device raises SIGBUS in the thread that touched it. The daemon must
// survive that (DESIGN.md G3/G4), so every access to mapped pmem runs "armed": a
// process-wide SIGBUS handler, installed once, checks a thread-local flag and, when the
// fault lies in the range the thread declared, records what the kernel said and
// siglongjmp()s back to RunSigbusGuarded, which returns false instead of crashing.
//
// A SIGBUS that is not ours -- no armed section on this thread, a fault outside the guarded
// range, or an asynchronous one (kill(), BUS_MCEERR_AO) -- is passed on as if this handler
// did not exist: to the handler that was installed before ours, or to the default action
// (the process dies with SIGBUS and the kernel's siginfo). The one exception: once an
// asynchronous-SIGBUS sink is set (SetAsyncSigbusSink), BUS_MCEERR_AO goes to the sink
// instead, so a daemon that opted into early kill hears of poison instead of dying of it.
//
// SI_KERNEL is the machine check the kernel could not tie to an address (no valid restart
// IP, si_addr NULL). Raised while a thread is armed it can only come from the armed access,
// so it is caught like the others and covers the whole guarded range.
//
// REQUIRES: whoever installs a SIGBUS handler after InstallSigbusHandler() must chain to the
// previous one, or armed copies lose their protection.
// Thread-safety: every function here may be called from any thread at any time.
#pragma once

#include <libpmem2.h>
#include <signal.h>

#include <cstddef>
#include <cstdint>

namespace udax {

// What the kernel reported for a SIGBUS caught inside an armed section.
struct CaughtSigbus {
  int si_code = 0;       // BUS_MCEERR_AR, BUS_ADRERR, BUS_OBJERR, BUS_ADRALN, SI_KERNEL
  uintptr_t addr = 0;    // si_addr: the faulting virtual address (0 for SI_KERNEL)
  uint64_t granule = 0;  // 1 << si_addr_lsb, or the page size when the kernel gave no lsb
  // The bad virtual range as far as the kernel told: the granule around addr, or the
  // whole guarded range for SI_KERNEL.
  uintptr_t first = 0;
  uintptr_t last = 0;
};

// Receives BUS_MCEERR_AO signals, inside the signal handler: it must be
// async-signal-safe (no locks, no allocation; atomics and write(2) are fine).
using AsyncSigbusSink = void (*)(const siginfo_t* info);
// Sets (or, with nullptr, clears) the sink for BUS_MCEERR_AO. Installs the handler.
void SetAsyncSigbusSink(AsyncSigbusSink sink);

// Installs the process-wide SIGBUS handler (SA_SIGINFO). The first call installs it and
// remembers the previous disposition for chaining; later and concurrent calls are no-ops.
// RunSigbusGuarded calls it too, so calling it up front only moves the cost.
void InstallSigbusHandler();

// Runs fn(arg) with this thread armed against SIGBUS in [guard, guard + guard_len).
// Returns true when fn ran to completion. Returns false when a synchronous SIGBUS whose
// granule overlaps the guarded range interrupted fn: fn was abandoned midway (so it must
// not hold locks or own resources) and *caught (if non-null) says what was hit.
// REQUIRES: not called from inside fn (armed sections do not nest); fn touches only
// memory that the guard covers or that cannot fault.
bool RunSigbusGuarded(const void* guard, size_t guard_len, void (*fn)(void*), void* arg,
                      CaughtSigbus* caught);

// Copies n bytes from mapped pmem at src into dst with plain memcpy (reads need no
// flushing). Guarded range: the source.
bool SafeCopyFromPmem(void* dst, const void* pmem_src, size_t n, CaughtSigbus* caught);

// Copies n bytes from src into mapped pmem with a libpmem2 memcpy (flags are PMEM2_F_MEM_*).
// Guarded range: the destination.
bool SafeCopyToPmem(pmem2_memcpy_fn memcpy_fn, void* pmem_dst, const void* src, size_t n,
                    unsigned flags, CaughtSigbus* caught);

// Fills n bytes of mapped pmem with c using a libpmem2 memset. Guarded range: the target.
bool SafeSetPmem(pmem2_memset_fn memset_fn, void* pmem_dst, int c, size_t n, unsigned flags,
                 CaughtSigbus* caught);

// Runs a libpmem2 flush or persist function over mapped pmem (cache-line flushes fault on
// a vanished mapping too). Guarded range: the flushed one.
bool SafeFlushPmem(void (*flush_fn)(const void*, size_t), const void* pmem, size_t n,
                   CaughtSigbus* caught);

// Human name of a SIGBUS si_code ("BUS_MCEERR_AR", "BUS_ADRERR", ...), for messages.
const char* SigbusCodeName(int si_code);

}  // namespace udax
