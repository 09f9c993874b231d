// test_util.h -- what the notify/ tests share: status assertions, a scratch directory.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "notify/event_queue.h"

namespace udax {

#ifndef ASSERT_OK  // one definition for tests that use both fixtures
#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const ::udax::Status _st = (expr);                        \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                       \
  do {                                                        \
    const ::udax::Status _st = (expr);                        \
    EXPECT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (0)
#endif

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

// Pops one event or fails the test after `ms` milliseconds.
inline bool PopWithin(EventQueue* q, MediaEvent* e, int ms = 5000) {
  return q->Pop(e, std::chrono::milliseconds(ms));
}

}  // namespace udax
