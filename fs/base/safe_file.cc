// safe_file.cc -- checked opens, capped reads and O_EXCL replacement of state files.
#include "fs/base/safe_file.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>

namespace udax {
namespace {

Status WriteAll(int fd, const std::string& text, const std::string& path) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(path + ": write");
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// A name nobody can predict: a planted file or symlink under it would make the O_EXCL
// create fail (EEXIST) rather than be written through, and guessing it is hopeless.
std::string TempName(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  uint64_t random = 0;
  if (getrandom(&random, sizeof(random), GRND_NONBLOCK) != sizeof(random)) random = 0;
  char suffix[64];
  std::snprintf(suffix, sizeof(suffix), ".tmp.%d.%" PRIu64 ".%016" PRIx64,
                static_cast<int>(getpid()), counter++, random);
  const std::string dir = DirName(path);
  return (dir == "." ? std::string() : dir + "/") + "." + BaseName(path) + suffix;
}

}  // namespace

bool IsTrustedOwner(uid_t uid) { return uid == 0 || uid == geteuid(); }

Status CheckStateFileStat(const struct stat& st, const std::string& path) {
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument(path + ": not a regular file: refused");
  }
  if (!IsTrustedOwner(st.st_uid)) {
    return Status::Error(EPERM, path + ": owned by uid " + std::to_string(st.st_uid) +
                                    ", not by root or uid " + std::to_string(geteuid()) +
                                    ": refused");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status::Error(EPERM, path + ": writable by group or others: refused");
  }
  return Status::Ok();
}

Result<UniqueFd> OpenStateFile(const std::string& path, int flags, mode_t mode) {
  UniqueFd fd(open(path.c_str(), flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode));
  if (!fd.valid()) {
    if (errno == ELOOP) return Status::Error(ELOOP, path + ": a symbolic link: refused");
    return Status::FromErrno(path + ": open");
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return Status::FromErrno(path + ": fstat");
  UDAX_RETURN_IF_ERROR(CheckStateFileStat(st, path));
  return fd;
}

Result<std::string> ReadCapped(int fd, const std::string& path, size_t cap) {
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(path + ": read");
    }
    if (n == 0) break;
    if (text.size() + static_cast<size_t>(n) > cap) {
      return Status::Error(EFBIG, path + ": larger than " + std::to_string(cap) +
                                      " bytes: refused");
    }
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

Status ReplaceStateFile(const std::string& path, const std::string& text, mode_t mode) {
  const std::string tmp = TempName(path);
  {
    UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!fd.valid()) return Status::FromErrno(tmp + ": create");
    Status st = WriteAll(fd.get(), text, tmp);
    if (st.ok() && fsync(fd.get()) != 0) st = Status::FromErrno(tmp + ": fsync");
    if (!st.ok()) {
      unlink(tmp.c_str());
      return st;
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = Status::FromErrno(path + ": rename");
    unlink(tmp.c_str());
    return st;
  }
  // The rename is durable only once the directory entry is.
  const std::string dir = DirName(path);
  UniqueFd dfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid()) return Status::FromErrno(dir + ": open");
  if (fsync(dfd.get()) != 0) return Status::FromErrno(dir + ": fsync");
  return Status::Ok();
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace udax
