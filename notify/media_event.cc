// media_event.cc -- event source names and conversions.
#include "notify/media_event.h"

#include <cinttypes>
#include <cstdio>
#include <csignal>

#include "fs/region/safe_copy.h"

namespace udax {
namespace {

constexpr struct {
  MediaEventSource source;
  const char* name;
} kNames[] = {
    {MediaEventSource::kSigbusAr, "sigbus-ar"},
    {MediaEventSource::kSigbusAo, "sigbus-ao"},
    {MediaEventSource::kBadblocks, "badblocks"},
    {MediaEventSource::kInjected, "injected"},
    {MediaEventSource::kDeviceRemoved, "device-removed"},
    {MediaEventSource::kDeviceAdded, "device-added"},
    {MediaEventSource::kDeviceReplaced, "device-replaced"},
};

}  // namespace

const char* MediaEventSourceName(MediaEventSource source) {
  for (const auto& n : kNames) {
    if (n.source == source) return n.name;
  }
  return "unknown";
}

std::optional<MediaEventSource> MediaEventSourceFromName(std::string_view name) {
  for (const auto& n : kNames) {
    if (name == n.name) return n.source;
  }
  return std::nullopt;
}

MediaEvent MediaEventFromFault(const MediaFault& fault) {
  MediaEvent e;
  e.source = fault.si_code == BUS_MCEERR_AO ? MediaEventSource::kSigbusAo
                                            : MediaEventSource::kSigbusAr;
  e.offset = fault.offset;
  e.length = fault.length;
  e.si_code = fault.si_code;
  e.time = std::chrono::system_clock::now();
  if (fault.origin != nullptr) e.detail = std::string("found by the ") + fault.origin;
  return e;
}

std::string MediaEventToString(const MediaEvent& event) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), " [%#" PRIx64 ", +%#" PRIx64 ")", event.offset, event.length);
  std::string s = std::string(MediaEventSourceName(event.source)) + buf;
  if (event.si_code != 0) s += std::string(" ") + SigbusCodeName(event.si_code);
  if (!event.detail.empty()) s += " " + event.detail;
  return s;
}

}  // namespace udax
