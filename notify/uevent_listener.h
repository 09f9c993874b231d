// uevent_listener.h -- turns kernel uevents about the target's device into device-removed.
//
// Listens on NETLINK_KOBJECT_UEVENT, group 1 (the kernel's own broadcasts, which need no
// privilege to receive), and pushes one `device-removed` MediaEvent covering the whole
// region whenever an unbind or remove names a watched devpath or an ancestor of one
// (uevent.h has the rule). Datagrams not sent by the kernel (sender port id != 0) are
// dropped: any local process may send to our socket, and a forged removal would shut the
// filesystem down. If the socket overflowed (ENOBUFS: a uevent storm), a removal may
// have been lost, so the listener checks whether each watched device is still in sysfs
// and reports the ones that are gone.
//
// Thread-safety: Start and Stop from the owner; counters from any thread; the observer
// runs on the listener's thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "notify/event_queue.h"
#include "fs/base/source_thread.h"
#include "notify/uevent.h"

namespace udax {

class UeventListener {
 public:
  struct Options {
    uint64_t region_size = UINT64_MAX;  // the length of the device-removed events
    uint64_t base = 0;                  // their offset: the device's start in the region
    std::string sysfs_root = "/sys";    // where watched devpaths are checked after ENOBUFS
    // Sees every kernel uevent parsed (for the event log and tests), matching or not.
    std::function<void(const Uevent&)> observer;
  };

  // Opens and binds the netlink socket. Errors: EPROTONOSUPPORT/EPERM/EMFILE from
  // socket or bind (a container without uevents), each naming the call.
  static Result<std::unique_ptr<UeventListener>> Start(std::vector<std::string> devpaths,
                                                       EventQueue* queue, Options options);
  // The same on a datagram socket the caller made: a netlink socket (then the sender
  // check applies) or, in tests, one end of an AF_UNIX SOCK_DGRAM socketpair.
  static Result<std::unique_ptr<UeventListener>> StartOnSocket(UniqueFd sock,
                                                               std::vector<std::string> devpaths,
                                                               EventQueue* queue, Options options);
  ~UeventListener() { Stop(); }
  UeventListener(const UeventListener&) = delete;
  UeventListener& operator=(const UeventListener&) = delete;

  void Stop() { thread_.Stop(); }

  uint64_t received() const { return received_.load(); }  // datagrams read
  uint64_t rejected() const { return rejected_.load(); }  // not from the kernel, or unparsable
  uint64_t removals() const { return removals_.load(); }  // device-removed events pushed

 private:
  UeventListener(UniqueFd sock, std::vector<std::string> devpaths, EventQueue* queue,
                 Options options, SourceThread thread);
  void Run();
  void Handle(const char* buf, size_t n);
  void PushRemoved(const std::string& why);
  void CheckStillPresent();

  UniqueFd sock_;
  const std::vector<std::string> devpaths_;
  EventQueue* const queue_;
  const Options options_;
  bool netlink_ = false;
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> removals_{0};
  SourceThread thread_;  // last: stopped before the members it reads go away
};

}  // namespace udax
