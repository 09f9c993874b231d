// udaxctl_upgrade.cc -- `udaxctl upgrade TARGET [--json]`: metadata copies turned on in an
// unmounted image or device made without them (fs/core/upgrade.h), then checked.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "fs/core/repair.h"
#include "fs/core/upgrade.h"
#include "mount-helper/udaxctl.h"

namespace udax {

int CmdUpgrade(const std::string& target, bool json) {
  constexpr const char* kCmd = "udaxctl upgrade";
  struct stat st;
  if (stat(target.c_str(), &st) != 0) {
    fprintf(stderr, "%s: %s: %s\n", kCmd, target.c_str(), strerror(errno));
    return 1;
  }
  if (S_ISDIR(st.st_mode)) {
    fprintf(stderr, "%s: %s: a directory; name the unmounted image or device (an upgrade runs "
                    "offline)\n", kCmd, target.c_str());
    return 1;
  }
  Result<UpgradeReport> r = Upgrader::Run(target);
  if (!r.ok()) {
    const int code = r.status().code();
    fprintf(stderr, "%s: %s: %s%s\n", kCmd, target.c_str(), r.status().message().c_str(),
            code == EBUSY ? " (unmount it first)" : "");
    return 1;
  }
  // The result checked as fsck -n would.
  FsckOptions check;
  check.read_only = true;
  Result<FsckOutcome> fsck = Repairer::Run(target, check);
  const bool clean = fsck.ok() && fsck->ExitCode() == kFsckClean;
  const double mib = static_cast<double>(r->au_size) / 1048576.0;
  if (json) {
    nlohmann::json j{{"target", target},
                     {"already", r->already},
                     {"rounds", r->rounds},
                     {"moved_data_aus", r->moved_data_aus},
                     {"moved_metadata_aus", r->moved_meta_aus},
                     {"metadata_aus", r->metadata_aus},
                     {"itable2_aus", r->itable2_aus},
                     {"au_size", r->au_size},
                     {"fsck_clean", clean}};
    printf("%s\n", j.dump(2).c_str());
  } else if (r->already) {
    printf("%s: already has metadata copies\n", target.c_str());
  } else {
    printf("%s: metadata copies on: a second inode table of %.1f MiB, second copies of %llu "
           "metadata AUs (%.1f MiB)\n",
           target.c_str(), static_cast<double>(r->itable2_aus) * mib,
           static_cast<unsigned long long>(r->metadata_aus),
           static_cast<double>(r->metadata_aus) * mib);
    printf("%s: moved out of the way: %llu AUs of file data, %llu metadata AUs (%llu rounds)\n",
           target.c_str(), static_cast<unsigned long long>(r->moved_data_aus),
           static_cast<unsigned long long>(r->moved_meta_aus),
           static_cast<unsigned long long>(r->rounds));
  }
  if (!clean) {
    fprintf(stderr, "%s: %s: the check after the upgrade %s: run fsck.udaxfs\n", kCmd,
            target.c_str(), fsck.ok() ? "found problems" : fsck.status().message().c_str());
    return 4;
  }
  return 0;
}

}  // namespace udax
