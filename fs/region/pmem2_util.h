// pmem2_util.h -- RAII owners for libpmem2 handles and PMEM2_E_* codes turned into Status.
#pragma once

#include <libpmem2.h>

#include <memory>
#include <string>

#include "fs/base/status.h"

namespace udax {

// pmem2_*_delete take a pointer to the caller's handle and null it; a unique_ptr deleter
// gets the handle by value, so each passes the address of its own copy.
struct Pmem2ConfigDeleter {
  void operator()(pmem2_config* cfg) const { pmem2_config_delete(&cfg); }
};
struct Pmem2SourceDeleter {
  void operator()(pmem2_source* src) const { pmem2_source_delete(&src); }
};
// Deleting the map unmaps it. It must go before its source (and the fd behind it).
struct Pmem2MapDeleter {
  void operator()(pmem2_map* map) const { pmem2_map_delete(&map); }
};

// Deleting a reservation unmaps it; every map placed in it must be deleted first.
struct Pmem2ReservationDeleter {
  void operator()(pmem2_vm_reservation* rsv) const { pmem2_vm_reservation_delete(&rsv); }
};

using Pmem2ConfigPtr = std::unique_ptr<pmem2_config, Pmem2ConfigDeleter>;
using Pmem2SourcePtr = std::unique_ptr<pmem2_source, Pmem2SourceDeleter>;
using Pmem2MapPtr = std::unique_ptr<pmem2_map, Pmem2MapDeleter>;
using Pmem2ReservationPtr = std::unique_ptr<pmem2_vm_reservation, Pmem2ReservationDeleter>;

// The errno a libpmem2 return value stands for: libpmem2 returns either -errno or one of
// its own PMEM2_E_* codes. (libpmem2 1.12 declares pmem2_err_to_errno in its header but
// does not export it, so the mapping lives here.)
int Pmem2Errno(int pmem2_ret);

// A Status for a failed libpmem2 call: "<path>: <call>: <pmem2_errormsg()>". Call it right
// after the failing call: the message is thread-local and the next libpmem2 call replaces
// it. Falls back to strerror when libpmem2 left no message.
Status Pmem2Status(int pmem2_ret, const std::string& path, const char* call);

}  // namespace udax
