// pmem2_util.cc -- PMEM2_E_* codes and pmem2_errormsg() turned into a Status.
#include "fs/region/pmem2_util.h"

#include <cerrno>
#include <cstring>

namespace udax {

int Pmem2Errno(int pmem2_ret) {
  if (pmem2_ret >= 0) return 0;
  // Anything above the PMEM2_E_* range is a negated errno from a system call.
  if (pmem2_ret > PMEM2_E_UNKNOWN) return -pmem2_ret;
  switch (pmem2_ret) {
    case PMEM2_E_NOSUPP:
    case PMEM2_E_GRANULARITY_NOT_SUPPORTED:
    case PMEM2_E_SOURCE_TYPE_NOT_SUPPORTED:
      return EOPNOTSUPP;
    case PMEM2_E_NO_ACCESS:
      return EACCES;
    case PMEM2_E_IO_FAIL:
    case PMEM2_E_CANNOT_READ_BOUNDS:
      return EIO;
    case PMEM2_E_MAPPING_EXISTS:
    case PMEM2_E_MAP_EXISTS:
      return EEXIST;
    case PMEM2_E_DAX_REGION_NOT_FOUND:
    case PMEM2_E_MAPPING_NOT_FOUND:
      return ENOENT;
    default:
      // The remaining codes all reject an argument: a length, an offset, a file type.
      return EINVAL;
  }
}

Status Pmem2Status(int pmem2_ret, const std::string& path, const char* call) {
  const int err = Pmem2Errno(pmem2_ret);
  const char* why = pmem2_errormsg();
  std::string text = (why != nullptr && why[0] != '\0') ? why : std::strerror(err);
  return Status::Error(err, path + ": " + call + ": " + text);
}

}  // namespace udax
