// stop_signal.cc -- eventfd-backed wake-ups for the source threads.
#include "fs/base/stop_signal.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace udax {

Result<StopSignal> StopSignal::Create() {
  UniqueFd fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return Status::FromErrno("eventfd");
  return StopSignal(std::move(fd));
}

void StopSignal::Notify() const {
  const uint64_t one = 1;
  // Only EAGAIN (counter saturated: already readable) can fail here; both are fine.
  ssize_t r;
  do {
    r = write(fd_.get(), &one, sizeof(one));
  } while (r < 0 && errno == EINTR);
}

uint64_t StopSignal::Drain() const {
  uint64_t n = 0;
  if (read(fd_.get(), &n, sizeof(n)) != sizeof(n)) return 0;
  return n;
}

}  // namespace udax
