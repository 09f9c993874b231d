// mount_options.h -- sorts mount(8)'s -o string into daemon options, kernel flags, ignored.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace udax {

// Access-time policy asked for; kUnset leaves the kernel's (relatime on a new mount, the
// current policy on a remount).
enum class AtimeMode { kUnset, kRelatime, kNoatime, kStrictatime };

// What one `-o` string asks for. Later options override earlier ones, as in mount(8):
// on a remount, mount(8) puts the mount's current options first and the new ones after.
struct MountRequest {
  bool remount = false;
  bool read_only = false;
  // Unset means the default, nosuid and nodev for every mount, root's included: the image
  // may come from anyone, and a setuid-root binary or a device node on it must not
  // become a way to root. suid and dev are honoured when asked for; mount(8) drops them
  // before it runs a helper (they are the kernel's defaults), so allow_suid and allow_dev
  // say the same and get through.
  std::optional<bool> nosuid;
  std::optional<bool> nodev;
  bool noexec = false;
  bool sync = false;
  bool dirsync = false;
  bool lazytime = false;
  bool nodiratime = false;
  // norecovery (XFS) / noload (ext4): do not replay the journal. A read-only udaxfs mount
  // never replays it, so this is what `ro` does already; with rw it is refused.
  bool norecovery = false;
  AtimeMode atime = AtimeMode::kUnset;
  // Options handed to the daemon verbatim: udaxfs' own (cache=) and libfuse ones.
  std::vector<std::string> daemon_options;
  // Accepted with nothing to do (fstab-only options, SELinux contexts, dax...).
  std::vector<std::string> ignored;
  // Options nobody understands; an error unless mount(8) said -s (sloppy).
  std::vector<std::string> unknown;
  // Options known but with a value we cannot use, quoted, with the reason; always an error.
  std::vector<std::string> bad;
};

// Splits a comma-separated option list; a comma inside double quotes (context="a,b")
// does not split. Empty items are dropped.
std::vector<std::string> SplitOptions(std::string_view text);

// Parses TEXT into REQ (which may already hold earlier -o strings).
void ParseMountOptions(std::string_view text, MountRequest* req);

// The -o string for `udaxfs SOURCE DIR -o ...` on a new mount: what libfuse 3.14 and
// udaxfs accept. The rest is applied by KernelRemountFlags() after the mount. nosuid and
// nodev are spelled out even though the daemon defaults to them, so the mount never
// exists without them whatever daemon is found; suid and dev only when asked for (a
// non-root mount gets them refused by fusermount3).
std::string DaemonOptionString(const MountRequest& req);

// Does a new mount need a kernel remount after the daemon mounted, for options that
// libfuse 3.14 rejects (relatime, strictatime, nodiratime, lazytime) or we keep from it?
bool NeedsKernelRemount(const MountRequest& req);

// A remount changes only what it names: fills REQ's unset nosuid and nodev from the mount's
// current per-mount options (mountinfo's "rw,nosuid,relatime"), so that `-o remount,ro`
// of a mount made with suid does not quietly turn it nosuid, nor the other way round.
void KeepCurrentFlags(std::string_view vfs_options, MountRequest* req);

// mount(2) flags for an MS_REMOUNT that sets everything REQ asks of the kernel. A remount
// replaces ro, nosuid, nodev, noexec and (when any atime option is given) the atime policy;
// nosuid and nodev still unset mean set (the default).
unsigned long KernelRemountFlags(const MountRequest& req);

// "ro,nosuid,noatime": the flags above in words, for -v.
std::string DescribeRemountFlags(unsigned long flags);

}  // namespace udax
