// udaxctl.h -- the udaxctl subcommands, one group per file (ndctl style).
#pragma once

#include <string>

namespace udax {

int CmdBmap(const std::string& file, bool json);
int CmdRmap(const std::string& where, const std::string& range, bool json);
// Exit 0 clean, 2 checksum failures found, 1 could not scrub.
int CmdScrub(const std::string& where, bool json);

}  // namespace udax
