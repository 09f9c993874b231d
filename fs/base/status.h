// status.h -- errors as values: Status and Result<T>, shared by every udaxfs component.
//
// Nothing in udaxfs throws across a component boundary. A Status carries a POSIX errno
// (what a FUSE reply needs) and a human message (what a tool prints). OK is errno 0 and an
// empty message, so it costs one int and an empty string.
#pragma once

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace udax {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(int err, std::string msg) { return Status(err, std::move(msg)); }
  // errno-style factories; the message says what failed, the code what FUSE returns.
  static Status IoError(std::string msg) { return Status(EIO, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(EUCLEAN, std::move(msg)); }
  static Status InvalidArgument(std::string msg) { return Status(EINVAL, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(ENOENT, std::move(msg)); }
  static Status NoSpace(std::string msg) { return Status(ENOSPC, std::move(msg)); }
  static Status Busy(std::string msg) { return Status(EBUSY, std::move(msg)); }
  // Turns the current errno into a Status; `what` names the call that failed.
  static Status FromErrno(const std::string& what) { return FromErrno(errno, what); }
  static Status FromErrno(int err, const std::string& what) {
    return Status(err, what + ": " + std::strerror(err));
  }

  bool ok() const { return code_ == 0; }
  int code() const { return code_; }  // a positive errno, 0 when ok
  const std::string& message() const { return msg_; }
  std::string ToString() const { return ok() ? "ok" : msg_; }

 private:
  Status(int code, std::string msg) : code_(code), msg_(std::move(msg)) {}
  int code_ = 0;
  std::string msg_;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}       // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace udax

// Returns early from a function returning Status (or Result) when `expr` fails.
#define UDAX_RETURN_IF_ERROR(expr)        \
  do {                                    \
    ::udax::Status _udax_st = (expr);     \
    if (!_udax_st.ok()) return _udax_st;  \
  } while (0)

#define UDAX_CONCAT_INNER(a, b) a##b
#define UDAX_CONCAT(a, b) UDAX_CONCAT_INNER(a, b)
// `UDAX_ASSIGN_OR_RETURN(auto x, F());` binds the value or returns the error.
#define UDAX_ASSIGN_OR_RETURN(lhs, expr) \
  UDAX_ASSIGN_OR_RETURN_IMPL(UDAX_CONCAT(_udax_res_, __LINE__), lhs, expr)
#define UDAX_ASSIGN_OR_RETURN_IMPL(res, lhs, expr) \
  auto res = (expr);                               \
  if (!res.ok()) return res.status();              \
  lhs = std::move(res).value()
