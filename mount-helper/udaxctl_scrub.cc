// udaxctl_scrub.cc -- `udaxctl scrub TARGET_OR_MOUNT`: checksum every metadata record.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "fs/core/filesystem.h"
#include "fs/base/unique_fd.h"
#include "include/udaxfs/ioctl.h"
#include "mount-helper/udaxctl.h"

namespace udax {

int CmdScrub(const std::string& where, bool json) {
  struct stat st;
  if (stat(where.c_str(), &st) != 0) {
    fprintf(stderr, "udaxctl scrub: %s: %s\n", where.c_str(), strerror(errno));
    return 1;
  }
  CheckReport report;
  if (S_ISDIR(st.st_mode)) {  // a mount: the daemon scrubs
    const UniqueFd fd(open(where.c_str(), O_RDONLY | O_DIRECTORY));
    auto q = std::make_unique<udax_ioc_scrub>();
    if (!fd.valid() || ioctl(fd.get(), UDAX_IOC_SCRUB, q.get()) != 0) {
      const int err = errno;
      fprintf(stderr, "udaxctl scrub: %s: %s%s\n", where.c_str(), strerror(err),
              err == ENOTTY ? " (not a udaxfs mount)" : "");
      return 1;
    }
    report.inodes = q->inodes;
    report.allocated_aus = q->allocated_aus;
    report.problems = q->problems;
    for (uint64_t i = 0; i < q->problems && i < UDAX_SCRUB_MESSAGES; ++i) {
      report.messages.emplace_back(q->messages[i]);
    }
  } else {
    auto fs = OpenTargetReadOnly(where, "scrub");
    if (!fs) return 1;
    auto r = fs->checker().Scrub();
    if (!r.ok()) {
      fprintf(stderr, "udaxctl scrub: %s: %s\n", where.c_str(), r.status().message().c_str());
      return 1;
    }
    report = std::move(r).value();
  }
  if (json) {
    nlohmann::json j{{"target", where},          {"inodes", report.inodes},
                     {"allocated_aus", report.allocated_aus}, {"problems", report.problems},
                     {"messages", report.messages}};
    printf("%s\n", j.dump(2).c_str());
  } else {
    for (const std::string& m : report.messages) printf("%s: %s\n", where.c_str(), m.c_str());
    printf("%s: %llu checksum failures; %llu inodes and %llu allocation units checked\n",
           where.c_str(), static_cast<unsigned long long>(report.problems),
           static_cast<unsigned long long>(report.inodes),
           static_cast<unsigned long long>(report.allocated_aus));
  }
  return report.problems ? 2 : 0;
}

}  // namespace udax
