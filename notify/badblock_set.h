// badblock_set.h -- the bad-block list a watcher last read, and what each reread adds.
//
// BadblockListWatcher (an emulated image's list file) and BadblocksPoller (the kernel's
// badblocks attribute) keep the same state and do the same with every reread: a reread that
// failed leaves the previous list in force and says why; one that succeeded becomes the
// list, is handed whole to on_change, and only then is every range the previous list did
// not have pushed as a MediaEvent -- so a consumer that reacts to an event already sees
// reads of its range fail. Ranges that disappear produce no event.
//
// Thread-safety: Apply from one thread at a time (the owner's watcher thread, or Start);
// current and last_error from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "fs/format/badblock_list.h"
#include "notify/event_queue.h"
#include "notify/media_event.h"

namespace udax {

class BadblockSet {
 public:
  using OnChange = std::function<void(const BadblockList&)>;
  // What the events of new ranges say.
  struct EventSpec {
    MediaEventSource source = MediaEventSource::kBadblocks;
    std::string detail;  // the file the list came from
    // Ranges starting at or past it are not reported, and the rest are clipped to it.
    uint64_t region_size = UINT64_MAX;
    // Added to every offset: the list is one device's, and the events speak in the
    // offsets of the region over all of them (the device's start there).
    uint64_t base = 0;
  };

  BadblockSet(EventQueue* queue, EventSpec spec) : queue_(queue), spec_(std::move(spec)) {}

  // Takes a reread (see the file comment); `emit` false applies it without events (a
  // start that must not report what was already known). Returns the reread's status.
  Status Apply(Result<BadblockList> read, const OnChange& on_change, bool emit);
  // The list as last read successfully.
  BadblockList current() const;
  // Why the last reread failed, or OK.
  Status last_error() const;

 private:
  EventQueue* const queue_;
  const EventSpec spec_;
  mutable std::mutex mu_;
  BadblockList current_;  // GUARDED_BY(mu_)
  Status last_error_;     // GUARDED_BY(mu_)
};

}  // namespace udax
