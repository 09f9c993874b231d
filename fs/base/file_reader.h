// file_reader.h -- a whole file's text, for the files udaxfs reads only to parse.
//
// sysfs attributes, /proc files and the mount table are read whole and parsed as text.
// They are the kernel's, not state files: opening one may follow links (sysfs is made of
// them), so nothing here is for a file someone else could plant; those go through
// OpenStateFile (safe_file.h). The read loop is ReadCapped's (safe_file.h): EINTR retried,
// EFBIG past the cap.
//
// Thread-safety: both functions may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "fs/base/status.h"

namespace udax {

inline constexpr size_t kNoSizeLimit = SIZE_MAX;

// Opens `path` read-only and reads it to its end. Errors: open's errno (the message is
// the path and strerror), read's ("PATH: read: ..."), EFBIG beyond `cap` bytes.
Result<std::string> ReadWholeFile(const std::string& path, size_t cap = kNoSizeLimit);

// Reads an open file from its start to its end, for a descriptor kept open to be polled
// (/proc/self/mountinfo): every read after a wake-up starts over. `what` names the file
// in errors, which are lseek's and ReadWholeFile's.
Result<std::string> ReadWholeFd(int fd, const std::string& what, size_t cap = kNoSizeLimit);

}  // namespace udax
