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

  udax::InjectErrorArgs inject;
  auto* inj = app.add_subcommand(
      "inject-error", "poison (or, with --uninject, heal) 512-byte blocks of an emulated image");
  inj->add_option("target", inject.target, "an image, or the udaxfs mount point serving it")
      ->required();
  inj->add_option("-B,--block", inject.block, "first block (512 bytes) from the region start");
  inj->add_option("-n,--count", inject.count, "number of blocks (default 1)");
  inj->add_flag("-d,--uninject", inject.uninject, "remove the blocks from the bad list");
  inj->add_flag("-t,--status", inject.status, "print the injected bad blocks");
  inj->add_flag("--json", inject.json, "print JSON");

  std::string list_target;
  bool media_errors = false;
  auto* list = app.add_subcommand("list", "print the media errors of a target and their owners");
  list->add_option("target", list_target, "an image, a devdax device, or a udaxfs mount point")
      ->required();
  list->add_flag("-M,--media-errors", media_errors, "list the bad blocks (required for now)");
  list->add_flag("--json", json, "print JSON");

  std::string events_target;
  bool follow = false;
  auto* events = app.add_subcommand(
      "events", "print the media events of a target and what was done about each");
  events->add_option("target", events_target, "an image, a device, or a udaxfs mount point")
      ->required();
  events->add_flag("-f,--follow", follow, "keep printing new events as they come");
  events->add_flag("--json", json, "print JSON (an array; one object a line with --follow)");

  std::string leases_mount;
  auto* leases = app.add_subcommand("leases", "list the direct maps clients hold (pid, file, range)");
  leases->add_option("mount", leases_mount, "a udaxfs mount point")->required();
  leases->add_flag("--json", json, "print JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  if (*bmap) return udax::CmdBmap(file, json);
  if (*rmap) return udax::CmdRmap(where, range, json);
  if (*scrub) return udax::CmdScrub(scrub_target, json);
  if (*leases) return udax::CmdLeases(leases_mount, json);
  if (*events) return udax::CmdEvents(events_target, follow, json);
  if (*shutdown) return udax::CmdShutdown(shutdown_mount);

  if (*inj) {
    inject.json = inject.json || json;
    return udax::CmdInjectError(inject);
  }
  if (*list) {
    if (!media_errors) {
      fprintf(stderr, "udaxctl: list: only --media-errors is implemented (--help for usage)\n");
      return 1;
    }
    return udax::CmdListMediaErrors(list_target, json);
  }
  return 1;
}
