// state_dir_testing.h -- a scratch state directory for every test process.
//
// Image state (poison lists, event logs) lives in the state directory (state_dir.h),
// /var/lib/udaxfs unless UDAX_STATE_DIR says otherwise. A test process must never touch
// the host's: including this header sets UDAX_STATE_DIR to a fresh directory under
// /dev/shm before main (unless the environment already names one) and removes it at exit.
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace udax {

inline const std::string kTestStateDir = [] {
  if (const char* set = getenv("UDAX_STATE_DIR"); set != nullptr) return std::string(set);
  char tmpl[] = "/dev/shm/udax_test_state.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) abort();
  setenv("UDAX_STATE_DIR", tmpl, 1);
  static std::string dir = tmpl;
  atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  });
  return dir;
}();

}  // namespace udax
