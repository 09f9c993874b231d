// status_testing.h -- GoogleTest helpers for Status and Result, for every layer's tests.
#pragma once

#include <gtest/gtest.h>

#include <stdexcept>
#include <utility>

#include "fs/base/status.h"

// Fails the test (ASSERT: returns from it) when `expr`, a Status, is not ok.
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

namespace udax {

// Returns the value or fails the test. It throws to leave a test body that cannot go on
// (gtest reports the exception), so it is for use inside tests only.
template <typename T>
T Must(Result<T> r, const char* what = "") {
  EXPECT_TRUE(r.ok()) << what << ": " << r.status().ToString();
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(r).value();
}

}  // namespace udax
