// media_verify.h -- one pass of the media patrol: read what the filesystem holds, find poison.
//
// Latent poison (a bad cacheline no platform report has named yet) hurts whoever reads it
// first, maybe long after a healthy copy could have repaired it. A verify pass reads every
// static metadata area and every allocated AU through the machine-check-safe copy
// (Region::ReadSafe), so poison is met here, by the daemon, instead. A caught fault goes
// where every fault goes: the Region's fault listener (in the daemon, the media resolver,
// which repairs metadata and marks data; MediaFault::origin names the patrol), and the
// pass goes on after the bad range. Ranges already known bad are skipped: they were dealt
// with when they became known, and reading them again would only repeat it.
//
// The pass is bounded in rate (bytes per second, slept between chunks) so that a patrol
// on a busy mount takes a bounded share of the memory bandwidth, and it can be stopped.
// It takes no filesystem lock for its reads: an AU freed or reused while it is read is
// read all the same, which is harmless (a read changes nothing).
//
// Thread-safety: VerifyMedia may run beside every other operation of the filesystem;
// VerifyProgress is read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "fs/base/status.h"
#include "fs/region/poison_map.h"

namespace udax {

class Filesystem;

struct VerifyOptions {
  uint64_t rate_bytes_per_s = 0;  // 0: as fast as the media reads
  uint64_t chunk_bytes = 1 << 20;  // one rate check per chunk (copied 64 KiB at a time)
  const std::atomic<bool>* stop = nullptr;  // set: the pass ends early
};

// What a running pass has done so far.
struct VerifyProgress {
  std::atomic<uint64_t> bytes_total{0};  // what the pass set out to read
  std::atomic<uint64_t> bytes_done{0};   // read, or skipped as known bad
  std::atomic<uint64_t> found{0};        // bad ranges found
};

struct VerifyReport {
  uint64_t bytes_read = 0;         // read without a fault
  uint64_t bytes_known_bad = 0;    // skipped: known bad before the pass
  std::vector<RegionRange> found;  // the bad ranges the pass met, in region order
  double seconds = 0;              // wall time
  double cpu_seconds = 0;          // the pass's own thread (RUSAGE_THREAD)
  bool stopped = false;            // options.stop ended it early
};

// Reads the static areas and the allocated AUs of `fs`. Errors only for a filesystem
// that cannot be walked (shut down); faults are findings, not errors. *progress, when
// non-null, is updated as the pass goes.
Result<VerifyReport> VerifyMedia(Filesystem* fs, const VerifyOptions& options,
                                 VerifyProgress* progress = nullptr);

}  // namespace udax
