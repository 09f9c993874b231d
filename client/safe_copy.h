// safe_copy.h -- a copy out of a direct map that survives the map's SIGBUS.
//
// A load from a direct map raises SIGBUS when the memory is poisoned (a machine check the
// kernel reports as BUS_MCEERR_AR) or when the daemon revoked the map (its pages are then
// an empty memfd's, as after a devdax removal). The preload shim's read(2) copies out of
// its read views through SafeCopy: such a fault abandons the copy and is returned as a
// value, so the read fails with EIO for that page, or is retried through FUSE, instead of
// killing the program.
//
// The guard is a process-wide SIGBUS handler that jumps back into the copying thread when
// the fault is on the source range that thread is copying; every other SIGBUS goes to the
// action the program asked for (kept by SetProgramSigbusAction, which the shim's
// sigaction(2) and signal(2) call once the guard is installed), or the default one.
//
// Thread-safety: SafeCopy may run on any number of threads at once (the guard is per
// thread). InstallSigbusGuard is idempotent.
#pragma once

#include <signal.h>
#include <stddef.h>

namespace udax_client {

struct CopyResult {
  bool faulted = false;
  size_t fault_offset = 0;  // from the guarded start: the byte whose access faulted
  int si_code = 0;          // BUS_MCEERR_AR (poison), BUS_ADRERR (a revoked map), ...
  int addr_lsb = 0;         // poison: the bad unit is 1 << addr_lsb bytes (a page, 2 MiB)
};

// Installs the handler once, taking the disposition in place as the program's. False when
// sigaction fails: SafeCopy must not be used then.
bool InstallSigbusGuard();
bool SigbusGuardInstalled();

// memcpy(dst, src, n), abandoned at the first SIGBUS on [src, src+n). The destination is
// the caller's memory: a fault there is the program's, as it would be without the shim.
// Inside a signal handler that interrupted a guarded copy of the same thread, copies
// nothing and reports a fault with si_code 0 (use another path).
CopyResult SafeCopy(void* dst, const void* src, size_t n);

// The same guard on the destination instead: a store into a writable view (the shim's
// write(2)) that faults -- poisoned, or a view already taken away -- is abandoned and
// reported, fault_offset counting from dst. A fault on the source is the program's.
CopyResult SafeStore(void* dst, const void* src, size_t n);

// The program's sigaction(SIGBUS, act, old) once the guard is installed: records `act`
// as what non-guard SIGBUS signals get and returns the previous one in `old`. Returns 0.
int SetProgramSigbusAction(const struct sigaction* act, struct sigaction* old);

}  // namespace udax_client
