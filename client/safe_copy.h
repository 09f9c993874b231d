// safe_copy.h -- a copy out of a direct map that survives the map's SIGBUS.
//
// A load from a direct map raises SIGBUS when the memory is poisoned (a machine check the
// kernel reports as BUS_MCEERR_AR) or when the daemon revoked the map (its pages are then
// an empty memfd's, as after a devdax removal). The preload shim's read(2) copies out of
// its read views through SafeCopy: such a fault abandons the copy and is returned as a
// value, so the read fails with EIO for that page, or is retried through FUSE, instead of
// killing the program.
//
// The guard is a process-wide SIGBUS and SIGSEGV handler that jumps back into the copying
// thread when the fault is on the map range that thread is copying (SIGBUS), or on the
// program's buffer of that copy (either signal: where the kernel's read(2) or write(2)
// would have returned EFAULT, the shim must not crash the program). Every other signal
// goes to the action the program asked for (kept by SetProgramFaultAction, which the
// shim's sigaction(2) and signal(2) call once the guard is installed), or the default one.
//
// Thread-safety: SafeCopy may run on any number of threads at once (the guard is per
// thread). InstallSigbusGuard is idempotent.
#pragma once

#include <signal.h>
#include <stddef.h>

namespace udax_client {

struct CopyResult {
  bool faulted = false;
  // The fault was on the program's side of the copy (the destination of SafeCopy, the
  // source of SafeStore): an unmapped or read-only buffer, a file map past its end. The
  // system call the shim stands in for fails with EFAULT there (or is short): the caller
  // hands the call to the kernel. fault_offset then counts from that buffer.
  bool program_fault = false;
  size_t fault_offset = 0;  // from the guarded start: the byte whose access faulted
  int si_code = 0;          // BUS_MCEERR_AR (poison), BUS_ADRERR (a revoked map), ...
  int addr_lsb = 0;         // poison: the bad unit is 1 << addr_lsb bytes (a page, 2 MiB)
};

// Installs the handler once, taking the disposition in place as the program's. False when
// sigaction fails: SafeCopy must not be used then.
bool InstallSigbusGuard();
bool SigbusGuardInstalled();

// memcpy(dst, src, n), abandoned at the first SIGBUS on [src, src+n), or at the first
// SIGSEGV or SIGBUS on the destination, the program's buffer (program_fault).
// Inside a signal handler that interrupted a guarded copy of the same thread, copies
// nothing and reports a fault with si_code 0 (use another path).
CopyResult SafeCopy(void* dst, const void* src, size_t n);

// The same guard on the destination instead: a store into a writable view (the shim's
// write(2)) that faults -- poisoned, or a view already taken away -- is abandoned and
// reported, fault_offset counting from dst. A fault on the source, the program's
// buffer, is reported as program_fault.
CopyResult SafeStore(void* dst, const void* src, size_t n);

// Whether every page of the program's buffer [p, p+n) can be read: one load per page,
// under the guard (a SIGSEGV or SIGBUS there is a false, not a crash). The shim's write
// touches its source so before it opens a store.
bool ProbeReadable(const void* p, size_t n);

// The program's sigaction(sig, act, old) for SIGBUS or SIGSEGV once the guard is
// installed: records `act` as what signals the guard does not take get, and returns the
// previous one in `old`. Returns 0.
int SetProgramFaultAction(int sig, const struct sigaction* act, struct sigaction* old);

}  // namespace udax_client
