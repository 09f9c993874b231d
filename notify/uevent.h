// uevent.h -- kernel uevent messages: parsing, and "does this one remove our device?".
//
// A kernel uevent on NETLINK_KOBJECT_UEVENT (multicast group 1) is one datagram:
//   "ACTION@DEVPATH\0ACTION=...\0DEVPATH=...\0SUBSYSTEM=...\0SEQNUM=...\0..."
// udevd re-broadcasts processed events on group 2 with a binary "libudev" header; those
// are not ours to parse (and the listener never joins group 2).
//
// The lab (shared/lab/README.md) saw, for devdax and fsdax being let go of:
//   unbind@/devices/.../region0/dax0.1/dax0.0   SUBSYSTEM=dax
//   remove@/devices/.../region0/dax0.1/dax0.0   SUBSYSTEM=dax
//   remove@/devices/.../region0/namespace0.0/block/pmem0   SUBSYSTEM=block
//   unbind@ / remove@ of .../dax0.1, .../pfn0.1, .../namespace0.0, .../region0
//                                               SUBSYSTEM=nd DEVTYPE=nd_dax|nd_pfn|nd_pmem|...
// so the rule is: an `unbind` or `remove` whose DEVPATH is the target's own device or any
// ancestor of it (its nd parents, the region, the bus) means the target is gone.
//
// Thread-safety: plain functions.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace udax {

struct Uevent {
  std::string action;   // "add", "remove", "bind", "unbind", "change", ...
  std::string devpath;  // "/devices/..." (relative to /sys)
  std::string subsystem;
  std::string devtype;
  std::map<std::string, std::string> env;  // every KEY=VALUE, the above included
};

// Parses one kernel uevent datagram. nullopt for anything else: a udev ("libudev")
// message, a header without '@', a DEVPATH or ACTION key disagreeing with the header,
// or an empty buffer. Tolerates a missing final NUL.
std::optional<Uevent> ParseUevent(std::string_view datagram);

// Is `ev` the removal (unbind or remove) of the device at `devpath` or of one of its
// ancestors? Paths compare component-wise: "/devices/a/region1" is not an ancestor of
// "/devices/a/region10/dax10.0".
bool IsRemovalOf(const Uevent& ev, std::string_view devpath);

}  // namespace udax
