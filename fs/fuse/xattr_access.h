// xattr_access.h -- who may see and touch trusted.* extended attributes: callers with
// CAP_SYS_ADMIN, as Linux's xattr_permission() and ext4's listxattr decide.
//
// The kernel checks getxattr/setxattr/removexattr of trusted.* itself before FUSE sees
// them (EPERM to write, ENODATA to read); listxattr it leaves to the filesystem, which is
// how a user saw root's trusted.* names. FUSE tells us the caller's fsuid and pid, not its
// capabilities, so they are read from /proc/PID/status.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace udax {

// Is `name` in the trusted.* namespace?
bool IsTrustedXattr(std::string_view name);

// A listxattr answer (names, each NUL-terminated) without its trusted.* names.
std::string WithoutTrustedXattrs(std::string_view names);
// Does a listxattr answer hold any trusted.* name (so the caller's rights matter)?
bool HasTrustedXattr(std::string_view names);

// What /proc/PID/status says of a task's credentials.
struct TaskCreds {
  uint32_t fsuid = 0;    // the fourth field of "Uid:"
  uint64_t cap_eff = 0;  // "CapEff:", hex
};
std::optional<TaskCreds> ParseProcStatus(std::string_view status);

inline constexpr int kCapSysAdmin = 21;

// The decision, from what FUSE says (the request's fsuid) and what /proc says (nullopt
// when it could not be read; same_user_ns: the task is in the daemon's user namespace,
// where its capabilities mean something):
//  - /proc unreadable (the task is gone, or outside our pid namespace: pid 0): no. The
//    conservative answer: a privileged caller loses only the names of trusted.* in a
//    listing, an unprivileged one must never get them.
//  - the task acts as itself (its fsuid is the request's): CAP_SYS_ADMIN in its effective
//    set, in our user namespace (root of a user namespace of its own has every bit there
//    and no power here).
//  - it does not (the kernel runs the request on other credentials, as overlayfs does
//    with its mounter's; or the pid is no longer the caller's): only a request made as
//    fsuid 0 of our namespace, which nobody unprivileged can make.
bool MayUseTrustedXattrs(uint32_t request_fsuid, const std::optional<TaskCreds>& task,
                         bool same_user_ns);

// The same for a live caller: reads /proc/PID/status and /proc/PID/ns/user.
bool CallerMayUseTrustedXattrs(pid_t pid, uid_t fsuid);

}  // namespace udax
