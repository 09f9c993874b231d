// file_reader.cc -- open, rewind and read to the end, on ReadCapped's loop.
#include "fs/base/file_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include "fs/base/safe_file.h"
#include "fs/base/unique_fd.h"

namespace udax {

Result<std::string> ReadWholeFile(const std::string& path, size_t cap) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(path);
  return ReadCapped(fd.get(), path, cap);
}

Result<std::string> ReadWholeFd(int fd, const std::string& what, size_t cap) {
  if (lseek(fd, 0, SEEK_SET) < 0) return Status::FromErrno(what + ": lseek");
  return ReadCapped(fd, what, cap);
}

}  // namespace udax
