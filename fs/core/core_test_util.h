// core_test_util.h -- shared fixtures for the core tests: a fresh emulated image.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "fs/core/filesystem.h"

namespace udax {

#ifndef ASSERT_OK  // one definition for tests that use both fixtures
#define ASSERT_OK(expr)                                      \
  do {                                                       \
    ::udax::Status _st = (expr);                             \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                      \
  do {                                                       \
    ::udax::Status _st = (expr);                             \
    EXPECT_TRUE(_st.ok()) << #expr << ": " << _st.ToString(); \
  } while (0)
#endif

// A formatted image file in /dev/shm (tmpfs), removed at destruction.
class TestImage {
 public:
  // journal_size 0 = mkfs's choice; tests of multi-transaction operations ask for less.
  explicit TestImage(uint64_t size = 64ull << 20, uint64_t au = kAuSize4K,
                     uint64_t journal_size = 0);
  ~TestImage();
  const std::string& path() const { return path_; }
  std::unique_ptr<Filesystem> Mount(MountOptions options = {});

 private:
  std::string path_;
};

// Returns the value or fails the test (for use inside tests only).
template <typename T>
T Must(Result<T> r, const char* what = "") {
  EXPECT_TRUE(r.ok()) << what << ": " << r.status().ToString();
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(r).value();
}

}  // namespace udax
