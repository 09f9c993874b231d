// media_sources.h -- every event source a mounted Region needs, started (and stopped) as one.
//
// What the daemon calls after opening its Region and before serving requests:
//   EventQueue queue;
//   auto sources = MediaSources::Start(region, &queue, {});
//   ... a resolver thread drains queue.Pop(...) ...
//   sources.reset(); queue.Close();       // before the Region goes away
// Start wires, according to the target:
//   * always: the Region's fault listener -> sigbus-ar/sigbus-ao events (synchronous
//     faults caught by ReadSafe and friends, real or emulated);
// (per device of the Region: a multi-device filesystem's devices each have their own,
// their events moved to the device's start in the Region)
//   * a regular file with state (Region::badblocks_path(), in the state directory): the
//     list-file watcher (injected events; its callback keeps the Region's emulated
//     poison current), and a second one for the latent list that announces nothing;
//   * real pmem (devdax, or a file on a pmem disk): the kernel badblocks poller (badblocks
//     events) and the uevent listener for the device and its nd parents (device-removed);
//   * with options.early_kill: PR_MCE_KILL_EARLY and the BUS_MCEERR_AO receiver for the
//     Region's mapping (sigbus-ao events).
// A source that cannot start where it is optional (no netlink in a container) is left
// out and named in skipped(); one that must work (the list file of an image) fails Start.
//
// Thread-safety: Start and Stop from the owner. Start sets the Region's fault listener
// (a set-once hook), so it must run before the Region is used by other threads, and the
// listener keeps pushing into `queue` after Stop: REQUIRES queue outlives the Region's
// last access, and region and queue outlive this object.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fs/base/mutex.h"
#include "fs/region/region.h"
#include "notify/badblock_watcher.h"
#include "notify/badblocks_poller.h"
#include "notify/event_queue.h"
#include "notify/sigbus_source.h"
#include "notify/uevent_listener.h"

namespace udax {

class MediaSources {
 public:
  struct Options {
    bool early_kill = false;  // opt into BUS_MCEERR_AO (policy notify|kill)
    std::string sysfs_root = "/sys";
  };
  static Result<std::unique_ptr<MediaSources>> Start(Region* region, EventQueue* queue,
                                                     const Options& options);
  ~MediaSources() { Stop(); }
  MediaSources(const MediaSources&) = delete;
  MediaSources& operator=(const MediaSources&) = delete;

  // Stops the watcher, poller and uevent threads. Idempotent. The AO receiver runs until
  // destruction (with early kill on, the next BUS_MCEERR_AO would otherwise kill us).
  void Stop() EXCLUDES(mu_);

  // "uevents: <why>" for each optional source that could not start.
  const std::vector<std::string>& skipped() const { return skipped_; }
  // The kernel's view of the target, when it is real pmem.
  const KernelBadblocks* kernel() const { return kernel_ ? &*kernel_ : nullptr; }
  // Has the kernel badblocks poller reread its list now (after a scrub), if there is one.
  void RescanKernelBadblocks() EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    for (DeviceSources& d : devices_) {
      for (auto& p : d.pollers) p->Rescan();
    }
  }
  // Device d of the region, lost when Start ran and back now (udaxctl add-device): its
  // sources start. Nothing when they run already (a device lost after Start kept them).
  Status AddDevice(size_t d, EventQueue* queue, const Options& options) EXCLUDES(mu_);
  // Device d's sources stop (before udaxctl replace-device puts another device in its
  // place: the old one's list, badblocks and uevents must not speak for the new one).
  // AddDevice starts them again, for whatever device is there then.
  void StopDevice(size_t d) EXCLUDES(mu_);

 private:
  MediaSources() = default;

  // The sources' lists grow by AddDevice (the control thread) while the patrol may
  // rescan them: mu_ guards them. No source thread takes it.
  // One device's sources: its list file and latent list (an image), or its kernel poller
  // and uevent listener (real pmem).
  struct DeviceSources {
    bool started = false;
    std::vector<std::unique_ptr<BadblockListWatcher>> watchers;
    std::vector<std::unique_ptr<BadblocksPoller>> pollers;
    std::vector<std::unique_ptr<UeventListener>> uevents;
    void Stop();
  };

  Mutex mu_;
  Region* region_ GUARDED_BY(mu_) = nullptr;  // null once stopped
  std::optional<KernelBadblocks> kernel_;      // set by Start (the first device's bus)
  // The sources of device d of the region (Region::device), whose offsets start at
  // device_start(d) in the region.
  // `at_start`: from Start, which alone sets kernel_ and skipped_ (read without a lock).
  Status StartDevice(size_t d, EventQueue* queue, const Options& options, bool at_start)
      REQUIRES(mu_);

  std::vector<DeviceSources> devices_ GUARDED_BY(mu_);  // per device of the region
  std::unique_ptr<SigbusAoReceiver> ao_;
  std::vector<std::string> skipped_;
};

}  // namespace udax
