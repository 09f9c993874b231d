// badblock_watcher.h -- follows an emulated image's badblocks list file while it is mounted.
//
// `udaxctl inject-error` replaces the image's list (STATE_DIR/uuid-HEX.badblocks,
// fs/format/state_dir.h) by rename (or removes it); the daemon learns of it through inotify
// on the state directory (watching the file itself would lose the watch at the first
// rename). Every reread is checked as fs/base/safe_file.h says (no symlink, no FIFO, ours,
// capped), so a refused file is a failed reread like a malformed one. On every change the watcher rereads the list,
// hands the whole new list to on_change -- the daemon passes it to
// Region::SetEmulatedPoison, so reads of the new ranges fail from then on -- and only
// then pushes an `injected` MediaEvent for every range that was not in the previous list.
// Ranges that disappear (uninject, ClearEmulatedPoison) produce no event: on_change
// already made them readable again.
//
// Thread-safety: Start and Stop from the owner; Rescan, current and last_error from any
// thread; on_change runs on the watcher's thread (and once in Start).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "fs/format/badblock_list.h"
#include "notify/badblock_set.h"
#include "notify/event_queue.h"
#include "fs/base/source_thread.h"
#include "fs/base/stop_signal.h"

namespace udax {

class BadblockListWatcher {
 public:
  using OnChange = std::function<void(const BadblockList&)>;
  struct Options {
    // Push the ranges already listed at Start as events (a mount must act on poison that
    // was injected while it was not running).
    bool emit_initial = true;
    // Push events at all: false for the latent list (poison nobody announced), whose
    // changes only reach on_change.
    bool announce = true;
    // The region size: ranges starting past it are not reported.
    uint64_t region_size = UINT64_MAX;
    // The list's device starts here in the region (a multi-device filesystem).
    uint64_t base = 0;
  };

  // Reads the list (calls on_change, emits the initial events) and starts the thread.
  // Errors: the directory cannot be watched (ENOENT, ENOSPC: inotify watch limit,
  // EMFILE), or the list is malformed (EINVAL naming file and line).
  static Result<std::unique_ptr<BadblockListWatcher>> Start(const std::string& list_path,
                                                            OnChange on_change,
                                                            EventQueue* queue,
                                                            const Options& options);
  static Result<std::unique_ptr<BadblockListWatcher>> Start(const std::string& list_path,
                                                            OnChange on_change,
                                                            EventQueue* queue) {
    return Start(list_path, std::move(on_change), queue, Options());
  }
  ~BadblockListWatcher() { Stop(); }
  BadblockListWatcher(const BadblockListWatcher&) = delete;
  BadblockListWatcher& operator=(const BadblockListWatcher&) = delete;

  // Rereads the list now, as if it had changed.
  void Rescan() { rescan_.Notify(); }
  // Stops and joins the thread. Idempotent.
  void Stop() { thread_.Stop(); }

  // The list as last read successfully.
  BadblockList current() const { return set_.current(); }
  // Why the last reread failed (a malformed file is kept out and reported here; the
  // previous list stays in force), or OK.
  Status last_error() const { return set_.last_error(); }

 private:
  BadblockListWatcher(std::string list_path, OnChange on_change, EventQueue* queue,
                      const Options& options, UniqueFd inotify, SourceThread thread,
                      StopSignal rescan);
  // Rereads the file, applies it, emits the new ranges. REQUIRES: watcher thread or Start.
  Status Reload(bool emit);
  void Run();

  const std::string path_;
  const std::string name_;  // the list file's name in its directory
  const OnChange on_change_;
  const bool announce_;
  UniqueFd inotify_;
  StopSignal rescan_;
  BadblockSet set_;
  SourceThread thread_;  // last: stopped before the members it reads go away
};

}  // namespace udax
