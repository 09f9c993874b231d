// udaxctl.h -- the udaxctl subcommands, one group per file (ndctl style).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fs/core/filesystem.h"

namespace udax {

// Opens an unmounted target read-only for a query; on failure prints one line naming
// `cmd` (with a hint when the target is mounted) and returns null.
std::unique_ptr<Filesystem> OpenTargetReadOnly(const std::string& target, const char* cmd);

// The owners of [phys, phys+len) from the daemon of the mount holding `dir` (UDAX_IOC_RMAP,
// paged); the errno of open or ioctl otherwise (ENOTTY: not a udaxfs mount).
Result<std::vector<OwnerRange>> RmapViaIoctl(const std::string& dir, uint64_t phys, uint64_t len);
// The path of `ino` as the daemon of the mount at `dir` knows it, or "" when it has none.
std::string PathViaIoctl(const std::string& dir, uint64_t ino);

// The image (or device) a udaxfs mount point serves (its mount source), or "" when DIR is
// not the top of a FUSE mount or its source is not an absolute path (udaxctl_media.cc).
std::string ImageOfMountPoint(const std::string& dir);
// The mount point of the udaxfs serving TARGET (an image or device), or "" when it is not
// mounted (udaxctl_media.cc).
std::string MountPointOf(const std::string& target);

// One device of a filesystem, as udaxctl names places: (device, offset on it).
struct DeviceSpan {
  uint64_t start = 0;   // in the filesystem's linear space
  uint64_t length = 0;
  std::string path;
};
// The devices of the mount holding `path` (UDAX_IOC_DEVICES); empty when it does not say.
std::vector<DeviceSpan> DevicesViaIoctl(const std::string& path);
// The devices of an open filesystem.
std::vector<DeviceSpan> DevicesOf(Filesystem* fs);
// The device holding linear byte `phys` (devices.size() when none does).
size_t DeviceAt(const std::vector<DeviceSpan>& devices, uint64_t phys);

int CmdBmap(const std::string& file, bool json);
int CmdRmap(const std::string& where, const std::string& range, bool json);
// Exit 0 clean, 2 checksum failures found, 1 could not scrub.
int CmdScrub(const std::string& where, bool json);
// Puts a mounted udaxfs in the shut-down state (XFS_IOC_GOINGDOWN).
int CmdShutdown(const std::string& mount);
// `remove-device MOUNT DEV`: device DEV of a multi-device filesystem goes; the filesystem
// serves on, degraded (udaxctl_devices.cc). Root only.
int CmdRemoveDevice(const std::string& mount, uint64_t device, bool json);
// `add-device MOUNT DEV [PATH]`: device DEV, lost, is back (mapped afresh from PATH when
// given): resynchronised, in service again (udaxctl_devices.cc). Root only.
int CmdAddDevice(const std::string& mount, uint64_t device, const std::string& path, bool json);
// `replace-device MOUNT DEV NEW`: the blank device or image NEW takes lost device DEV's
// place: resynchronised, in service; DEV's file data reads EIO (udaxctl_devices.cc).
// Root only.
int CmdReplaceDevice(const std::string& mount, uint64_t device, const std::string& path,
                     bool json);

// `inject-error`, shaped like ndctl inject-error on an emulated image (udaxctl_media.cc).
struct InjectErrorArgs {
  std::string target;
  std::string block;  // -B (512-byte blocks from the region start), "" when absent
  std::string count;  // -n, "" when absent (1 block)
  bool uninject = false;
  bool no_notify = false;  // -N: latent poison, found only by a read (ndctl's --no-notify)
  bool status = false;
  bool json = false;
};
int CmdInjectError(const InjectErrorArgs& args);
// `list --media-errors TARGET`: the bad ranges with their owners.
int CmdListMediaErrors(const std::string& target, bool json);
// `events TARGET|MOUNT [--follow] [--json]`: the event log of the daemon (udaxctl_events.cc).
int CmdEvents(const std::string& target, bool follow, bool json);
// `leases MOUNT [--json]`: the direct maps clients hold (udaxctl_leases.cc).
int CmdLeases(const std::string& mount, bool json);
// `verify-media MOUNT|TARGET [--rate MB] [--json]`: read everything the filesystem holds
// to find latent poison (udaxctl_verify.cc). Exit 0 nothing found, 2 bad media found
// (on a mount, already acted on), 1 could not verify.
int CmdVerifyMedia(const std::string& where, const std::string& rate_mb, bool json);

// One request to the daemon of the mount at `mount` over its control socket
// (include/udaxfs/control.h); its reply when "ok", else nothing (the error printed,
// naming `cmd`). udaxctl_control.cc.
std::optional<nlohmann::json> ControlCall(const std::string& mount, const nlohmann::json& request,
                                          const char* cmd);

// What those commands show, as data, for `health` to sum up. Each prints its own errors
// (naming `cmd`) and returns nothing when it has nothing to say.
// `list --media-errors --json`'s object for `target`; *partial when part of it (a kernel
// list, some owners) could not be read.
std::optional<nlohmann::json> FetchMediaErrors(const std::string& target, const char* cmd,
                                               bool* partial);
// The event log's records, oldest first (none when nothing has happened yet).
std::optional<std::vector<nlohmann::json>> FetchEvents(const std::string& target, const char* cmd);
// The daemon's answer to `leases`: {"leases": [...], "total": N}, paths filled in.
std::optional<nlohmann::json> FetchLeases(const std::string& mount, const char* cmd);
// `health MOUNT|TARGET [--json]`: the state in one screen (udaxctl_health.cc). Exit codes
// as fsck's: 0 healthy, 1 something happened and was dealt with, 4 damage left, 8 the
// state could not be told (not root, a log or list that does not read).
int CmdHealth(const std::string& target, bool json);
// `udaxctl upgrade TARGET`: metadata copies turned on in an unmounted image made without
// them. 0 upgraded (or had them), 1 could not (the files unchanged, some maybe moved), 4
// upgraded but the check after it found problems.
int CmdUpgrade(const std::string& target, bool json);

}  // namespace udax
