// sigbus_source.h -- SIGBUS as a source of media events: translation, early kill, AO.
//
// Three ways a SIGBUS reaches the daemon (shared/lab/README.md has what each looked like):
//   * synchronous, in the daemon's own access of pmem: BUS_MCEERR_AR with si_addr_lsb 12
//     (fsdax) or 21 (devdax), BUS_ADRERR with lsb 0 (badblocks on fsdax, a removed
//     device), SI_KERNEL with no address (a machine check without a valid restart IP).
//     The machine-check-safe routines of fs/region catch these; the Region's fault
//     listener gets a MediaFault, and MediaEventFromFault (media_event.h) makes the event.
//   * asynchronous BUS_MCEERR_AO: the kernel found poison in a page the daemon maps, and
//     tells only processes that opted into early kill (EnableEarlyMceKill). Its handler
//     must be async-signal-safe, so SigbusAoReceiver records the signal in a lock-free
//     ring from inside the handler and pushes the event from its own thread.
//   * anything else (user-sent, BUS_ADRALN) is not a media event.
// MediaEventFromSiginfo is the one translation of a siginfo into region terms.
//
// Thread-safety: MediaEventFromSiginfo is a pure function; at most one SigbusAoReceiver
// may run in a process (the handler is process-wide).
#pragma once

#include <signal.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "notify/event_queue.h"
#include "fs/base/source_thread.h"

namespace udax {

// The event a SIGBUS stands for, for a mapping of `size` bytes at `base` (region offset 0):
// the granule (1 << si_addr_lsb, or a page when the kernel gave no lsb) around si_addr,
// clipped to the mapping; the whole mapping for SI_KERNEL (no address). nullopt when the
// signal is not a media error (user-sent, BUS_ADRALN, other signals) or its address lies
// outside the mapping.
std::optional<MediaEvent> MediaEventFromSiginfo(const siginfo_t& info, const void* base,
                                                uint64_t size);

// Opts this process into early kill: BUS_MCEERR_AO for poison in any page it maps, as
// soon as the kernel finds it, instead of nothing until the page is touched.
// REQUIRES: a SigbusAoReceiver is running (otherwise the default action kills the process
// on the first AO signal). Errors: the errno of prctl.
Status EnableEarlyMceKill();
// The PR_MCE_KILL_GET value (PR_MCE_KILL_EARLY, PR_MCE_KILL_LATE or PR_MCE_KILL_DEFAULT).
Result<int> MceKillPolicy();

class SigbusAoReceiver {
 public:
  // Routes BUS_MCEERR_AO for the mapping [base, base+size) into `queue` as sigbus-ao
  // events. Errors: EBUSY if another receiver runs in this process; eventfd errors.
  static Result<std::unique_ptr<SigbusAoReceiver>> Start(const void* base, uint64_t size,
                                                         EventQueue* queue);
  // Stop passes AO signals on again (to the default action: only stop at exit).
  ~SigbusAoReceiver() { Stop(); }
  SigbusAoReceiver(const SigbusAoReceiver&) = delete;
  SigbusAoReceiver& operator=(const SigbusAoReceiver&) = delete;
  void Stop();

  // Signals received and turned into events; signals lost because the ring was full
  // (each loss is reported as one whole-mapping event); signals for other addresses.
  uint64_t received() const { return received_.load(); }
  uint64_t lost() const { return lost_.load(); }
  uint64_t foreign() const { return foreign_.load(); }

 private:
  SigbusAoReceiver(const void* base, uint64_t size, EventQueue* queue, SourceThread thread)
      : base_(base), size_(size), queue_(queue), thread_(std::move(thread)) {}
  void Run();
  void Drain();

  const void* const base_;
  const uint64_t size_;
  EventQueue* const queue_;
  bool stopped_ = false;
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> lost_{0};
  std::atomic<uint64_t> foreign_{0};
  SourceThread thread_;  // last: stopped before the members it reads go away
};

}  // namespace udax
