// udaxctl_main.cc -- udaxctl: inspect and control udaxfs filesystems.
#include <CLI/CLI.hpp>

#include "mount-helper/udaxctl.h"

int main(int argc, char** argv) {
  CLI::App app{"Inspect and control udaxfs filesystems."};
  // One line on stderr for a usage error, as every udaxfs tool.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("udaxctl: ") + e.what() + " (--help for usage)\n";
  });
  app.require_subcommand(1);
  bool json = false;
  app.add_flag("--json", json, "print JSON");

  std::string file;
  auto* bmap = app.add_subcommand("bmap", "print a file's extents (file offset, physical offset)");
  bmap->add_option("file", file, "a file on a udaxfs mount")->required();
  bmap->add_flag("--json", json, "print JSON");

  std::string where, range;
  auto* rmap = app.add_subcommand("rmap", "print the owners of a physical range of the region");
  rmap->add_option("target", where, "a udaxfs mount point, or an unmounted device or image")
      ->required();
  rmap->add_option("range", range, "PHYS[+LEN] in bytes (0x... or sizes like 4k)")->required();
  rmap->add_flag("--json", json, "print JSON");

  std::string scrub_target;
  auto* scrub = app.add_subcommand("scrub", "verify the checksum of every metadata record");
  scrub->add_option("target", scrub_target, "a udaxfs mount point, or an unmounted device or image")
      ->required();
  scrub->add_flag("--json", json, "print JSON");

  std::string shutdown_mount;
  auto* shutdown = app.add_subcommand(
      "shutdown", "stop a mounted udaxfs: later operations fail with EIO, nothing is written");
  shutdown->add_option("mount", shutdown_mount, "a udaxfs mount point")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  if (*bmap) return udax::CmdBmap(file, json);
  if (*rmap) return udax::CmdRmap(where, range, json);
  if (*scrub) return udax::CmdScrub(scrub_target, json);
  if (*shutdown) return udax::CmdShutdown(shutdown_mount);
  return 1;
}
