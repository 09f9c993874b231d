// test_util.h -- what the notify/ tests share: status assertions, a scratch directory.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "fs/base/status_testing.h"
#include "fs/format/disk_format.h"
#include "fs/format/state_dir_testing.h"
#include "notify/event_queue.h"

namespace udax {

// A fresh directory under /dev/shm (or /tmp), removed with everything in it.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp") +
                       std::string("/udax_notify_test.XXXXXX");
    if (mkdtemp(tmpl.data()) == nullptr) abort();
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  // Writes `text` to `name` (creating parent directories) and returns the path.
  std::string Write(const std::string& name, const std::string& text) const {
    const std::string p = *this / name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

// Gives a raw image file a superblock's magic and a random UUID -- all the state key
// needs (fs/format/state_dir.h) -- so that its Region finds a list file. Returns false on
// an I/O error.
inline bool StampTestSuperblock(const std::string& image) {
  DiskSuperblock sb{};
  std::memcpy(sb.magic, kSuperMagic, sizeof(sb.magic));
  if (getrandom(sb.uuid, sizeof(sb.uuid), 0) != static_cast<ssize_t>(sizeof(sb.uuid))) return false;
  const int fd = open(image.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = pwrite(fd, &sb, sizeof(sb), 0) == static_cast<ssize_t>(sizeof(sb));
  close(fd);
  return ok;
}

// Pops one event or fails the test after `ms` milliseconds.
inline bool PopWithin(EventQueue* q, MediaEvent* e, int ms = 5000) {
  return q->Pop(e, std::chrono::milliseconds(ms));
}

}  // namespace udax
