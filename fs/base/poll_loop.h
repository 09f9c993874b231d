// poll_loop.h -- the one wait of every thread that sleeps on descriptors until told to stop.
//
// The notify/ sources, the mount watch, the control server and libudax's threads all
// sleep in poll(2) on what they watch plus, most of them, a StopSignal. Waiting here gives
// them the same rules: an interrupted poll (EINTR: a signal, such as the BUS_MCEERR_AO the
// daemon asks for) is retried for what is left of the timeout, and a signalled stop wins
// over whatever else became ready in the same wake-up.
//
// Thread-safety: both functions may be called from any thread.
#pragma once

#include <poll.h>

#include <span>

#include "fs/base/status.h"
#include "fs/base/stop_signal.h"

namespace udax {

// poll(2) on `fds` for up to timeout_ms (-1: no limit), retrying EINTR with the time left.
// Returns how many descriptors have events (0: the time ran out). A negative fd is skipped,
// as poll(2) does. Errors: poll's other errno values (EFAULT, EINVAL, ENOMEM).
Result<int> PollRetrying(std::span<pollfd> fds, int timeout_ms);

// Why PollOrStop returned.
enum class Wake {
  kReady,    // at least one of the descriptors has revents
  kTimeout,  // the time ran out: every revents is 0
  kStopped,  // the stop signal is readable (whatever else is ready)
};

// Waits until `stop` is signalled, one of `fds` has an event, or timeout_ms (-1: no limit)
// passes. Errors as PollRetrying.
Result<Wake> PollOrStop(const StopSignal& stop, std::span<pollfd> fds, int timeout_ms = -1);

}  // namespace udax
