// media_event.h -- one report of bad or vanished media, whatever noticed it.
//
// Every event source of notify/ (the SIGBUS paths, the badblocks poller, the list-file
// watcher, the uevent listener) describes what it saw as a MediaEvent: a byte range of
// the region and where the news came from. The consumer (the daemon's resolver) turns the
// range into owners through the reverse map; it never needs to know the source's details.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fs/region/region.h"

namespace udax {

enum class MediaEventSource {
  kSigbusAr,       // a synchronous fault in the daemon's own access (BUS_MCEERR_AR,
                   // BUS_ADRERR, SI_KERNEL), caught by the machine-check-safe routines
  kSigbusAo,       // BUS_MCEERR_AO: poison found in a page the daemon maps (early kill)
  kBadblocks,      // a new entry in the kernel's badblocks list (sysfs, libndctl)
  kInjected,       // a new entry in an emulated image's badblocks list file
  kDeviceRemoved,  // the device (or an nd parent) was unbound or removed: everything is gone
  kDeviceAdded,    // a lost device of several is back in service, resynchronised (udaxctl
                   // add-device): logged, nothing to act on
  kDeviceReplaced,  // a blank device took a lost one's place (udaxctl replace-device):
                    // logged, nothing to act on
};

// "sigbus-ar", "sigbus-ao", "badblocks", "injected", "device-removed", "device-added",
// "device-replaced" (event log, JSON).
const char* MediaEventSourceName(MediaEventSource source);
std::optional<MediaEventSource> MediaEventSourceFromName(std::string_view name);

struct MediaEvent {
  MediaEventSource source = MediaEventSource::kSigbusAr;
  // The bad bytes [offset, offset+length) of the region. A device-removed event covers
  // the whole region (offset 0, length = region size, or UINT64_MAX when unknown).
  uint64_t offset = 0;
  uint64_t length = 0;
  std::chrono::system_clock::time_point time;
  // The SIGBUS si_code for the sigbus-* sources, 0 otherwise.
  int si_code = 0;
  // Free text for the log: the uevent's devpath, the sysfs file, ...
  std::string detail;
  // Asked for (udaxctl remove-device), not reported by the hardware: a removal the
  // filesystem refuses is then an answer, logged, not a shutdown -- the device is there.
  bool requested = false;

  uint64_t end() const { return length > UINT64_MAX - offset ? UINT64_MAX : offset + length; }
};

// A fault the Region caught (its fault listener's argument) as an event: sigbus-ao for
// BUS_MCEERR_AO, sigbus-ar for every synchronous code (AR, ADRERR, SI_KERNEL, ...).
MediaEvent MediaEventFromFault(const MediaFault& fault);

// "sigbus-ar [0x1000, +0x1000) BUS_MCEERR_AR" -- one line for logs and test failures.
std::string MediaEventToString(const MediaEvent& event);

}  // namespace udax
