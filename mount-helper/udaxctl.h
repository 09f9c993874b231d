// udaxctl.h -- the udaxctl subcommands, one group per file (ndctl style).
#pragma once

#include <memory>
#include <string>

#include "fs/core/filesystem.h"

namespace udax {

// Opens an unmounted target read-only for a query; on failure prints one line naming
// `cmd` (with a hint when the target is mounted) and returns null.
std::unique_ptr<Filesystem> OpenTargetReadOnly(const std::string& target, const char* cmd);

int CmdBmap(const std::string& file, bool json);
int CmdRmap(const std::string& where, const std::string& range, bool json);
// Exit 0 clean, 2 checksum failures found, 1 could not scrub.
int CmdScrub(const std::string& where, bool json);
// Puts a mounted udaxfs in the shut-down state (XFS_IOC_GOINGDOWN).
int CmdShutdown(const std::string& mount);

}  // namespace udax
