// udaxctl_main.cc -- udaxctl: inspect and control udaxfs filesystems.
//
// The commands are one table, as daxctl and ndctl keep theirs (builtin.h's cmd_struct
// array): each entry is a name, the one line --help shows for it, how its operands and
// flags are declared, and what runs it. The usage text is generated from the table (by
// CLI11), and the command parsed is looked up in it; a command line naming none of them
// gets CLI11's one-line error and exit 1, as every other usage error.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <cstdio>
#include <string>

#include "mount-helper/udaxctl.h"

namespace {

// What the command line says, for whichever command it names (only one is parsed).
struct Args {
  bool json = false;         // --json, before the command or after it
  std::string file;          // bmap
  std::string target;        // rmap, scrub, list, events, health, verify-media, upgrade
  std::string range;         // rmap
  std::string mount;         // shutdown, leases
  bool media_errors = false;  // list
  bool follow = false;        // events
  std::string rate;           // verify-media
  uint64_t device = 0;        // remove-device, add-device, replace-device
  std::string new_device;     // replace-device NEW, add-device PATH
  udax::InjectErrorArgs inject;
};

struct Command {
  const char* name;
  const char* help;                             // its line in `udaxctl --help`
  const char* json_help;                        // its own --json flag, declared last; or null
  void (*declare)(CLI::App* cmd, Args* args);  // its operands and other flags
  int (*run)(Args& args);                      // its exit status
};

constexpr const char* kJson = "print JSON";

constexpr const char* kAnyTarget = "a udaxfs mount point, or an unmounted device or image";

constexpr Command kCommands[] = {
    {"bmap", "print a file's extents (file offset, physical offset)", kJson,
     [](CLI::App* c, Args* a) {
       c->add_option("file", a->file, "a file on a udaxfs mount")->required();
     },
     [](Args& a) { return udax::CmdBmap(a.file, a.json); }},
    {"rmap", "print the owners of a physical range of the region", kJson,
     [](CLI::App* c, Args* a) {
       c->add_option("target", a->target, kAnyTarget)->required();
       c->add_option("range", a->range, "PHYS[+LEN] in bytes (0x... or sizes like 4k)")->required();
     },
     [](Args& a) { return udax::CmdRmap(a.target, a.range, a.json); }},
    {"scrub", "verify the checksum of every metadata record", kJson,
     [](CLI::App* c, Args* a) {
       c->add_option("target", a->target, kAnyTarget)->required();
     },
     [](Args& a) { return udax::CmdScrub(a.target, a.json); }},
    {"verify-media", "read every allocated block to find latent poison before a user does "
                     "(exit 0 clean, 2 bad media found, 1 could not verify)",
     kJson,
     [](CLI::App* c, Args* a) {
       c->add_option("target", a->target, kAnyTarget)->required();
       c->add_option("--rate", a->rate,
                     "MB/s to read at most (default: a mount's patrol_rate; unmounted: no limit)");
     },
     [](Args& a) { return udax::CmdVerifyMedia(a.target, a.rate, a.json); }},
    {"shutdown", "stop a mounted udaxfs: later operations fail with EIO, nothing is written",
     nullptr,
     [](CLI::App* c, Args* a) {
       c->add_option("mount", a->mount, "a udaxfs mount point")->required();
     },
     [](Args& a) { return udax::CmdShutdown(a.mount); }},
    {"remove-device", "take one device out of a mounted multi-device filesystem, which serves on "
                      "without it (degraded): its files' bytes there fail with EIO, metadata is "
                      "served from the other copy",
     kJson,
     [](CLI::App* c, Args* a) {
       c->add_option("mount", a->mount, "a udaxfs mount point")->required();
       c->add_option("device", a->device, "the device's number (udaxctl bmap, rmap name it)")->required();
     },
     [](Args& a) { return udax::CmdRemoveDevice(a.mount, a.device, a.json); }},
    {"add-device", "take a lost device of a mounted multi-device filesystem back into service: "
                   "its metadata copies are rewritten from the other devices, its file data "
                   "reads again (mapped afresh from PATH when given: a device pulled for real "
                   "and back, moved, or not named at mount)",
     kJson,
     [](CLI::App* c, Args* a) {
       c->add_option("mount", a->mount, "a udaxfs mount point")->required();
       c->add_option("device", a->device, "the lost device's number (udaxctl health names it)")->required();
       c->add_option("path", a->new_device,
                     "where the device is now (a devdax node, a DAX file, an image); "
                     "without it, the device as the daemon has it mapped");
     },
     [](Args& a) { return udax::CmdAddDevice(a.mount, a.device, a.new_device, a.json); }},
    {"replace-device", "put a blank device or image in a lost device's place, in a mounted "
                       "multi-device filesystem: the metadata copies are written onto it, "
                       "redundancy is back; the lost device's file data reads EIO for good",
     kJson,
     [](CLI::App* c, Args* a) {
       c->add_option("mount", a->mount, "a udaxfs mount point")->required();
       c->add_option("device", a->device, "the lost device's number (udaxctl health names it)")->required();
       c->add_option("new", a->new_device,
                     "the blank device or image, at least as large as the lost one's share")
           ->required();
     },
     [](Args& a) { return udax::CmdReplaceDevice(a.mount, a.device, a.new_device, a.json); }},
    {"inject-error", "poison (or, with --uninject, heal) 512-byte blocks of an emulated image", kJson,
     [](CLI::App* c, Args* a) {
       udax::InjectErrorArgs& i = a->inject;
       c->add_option("target", i.target, "an image, or the udaxfs mount point serving it")
           ->required();
       c->add_option("-B,--block", i.block, "first block (512 bytes) from the region start");
       c->add_option("-n,--count", i.count, "number of blocks (default 1)");
       c->add_flag("-d,--uninject", i.uninject, "remove the blocks from the bad list");
       c->add_flag("-N,--no-notify", i.no_notify,
                   "latent poison: announce nothing; a read (or verify-media) finds it");
       c->add_flag("-t,--status", i.status, "print the injected bad blocks");
     },
     [](Args& a) {
       a.inject.json = a.json;  // its --json, or the one before the command
       return udax::CmdInjectError(a.inject);
     }},
    {"list", "print the media errors of a target and their owners", kJson,
     [](CLI::App* c, Args* a) {
       c->add_option("target", a->target, "an image, a devdax device, or a udaxfs mount point")
           ->required();
       c->add_flag("-M,--media-errors", a->media_errors, "list the bad blocks (required for now)");
     },
     [](Args& a) {
       if (!a.media_errors) {
         fprintf(stderr, "udaxctl: list: only --media-errors is implemented (--help for usage)\n");
         return 1;
       }
       return udax::CmdListMediaErrors(a.target, a.json);
     }},
    {"events", "print the media events of a target and what was done about each",
     "print JSON (an array; one object a line with --follow)",
     [](CLI::App* c, Args* a) {
       c->add_option("target", a->target, "an image, a device, or a udaxfs mount point")
           ->required();
       c->add_flag("-f,--follow", a->follow, "keep printing new events as they come");
     },
     [](Args& a) { return udax::CmdEvents(a.target, a.follow, a.json); }},
    {"health", "the state in one screen: serving, bad blocks and owners, events, maps "
               "(exit 0 healthy, 1 repaired, 4 damaged, 8 unknown)",
     kJson,
     [](CLI::App* c, Args* a) {
       c->add_option("target", a->target, "a udaxfs mount point, an image or a device")->required();
     },
     [](Args& a) { return udax::CmdHealth(a.target, a.json); }},
    {"upgrade", "turn metadata copies on in an unmounted image made without them "
                "(exit 0 done, 1 could not, 4 check failed after)",
     kJson,
     [](CLI::App* c, Args* a) {
       c->add_option("target", a->target, "an unmounted udaxfs image or device")->required();
     },
     [](Args& a) { return udax::CmdUpgrade(a.target, a.json); }},
    {"leases", "list the direct maps clients hold (pid, file, range)", kJson,
     [](CLI::App* c, Args* a) {
       c->add_option("mount", a->mount, "a udaxfs mount point")->required();
     },
     [](Args& a) { return udax::CmdLeases(a.mount, a.json); }},
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Inspect and control udaxfs filesystems."};
  // One line on stderr for a usage error, as every udaxfs tool.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("udaxctl: ") + e.what() + " (--help for usage)\n";
  });
  app.require_subcommand(1);
  Args args;
  app.add_flag("--json", args.json, kJson);
  for (const Command& c : kCommands) {
    CLI::App* cmd = app.add_subcommand(c.name, c.help);
    c.declare(cmd, &args);
    if (c.json_help != nullptr) cmd->add_flag("--json", args.json, c.json_help);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }
  // require_subcommand(1): a parse that got here named exactly one command of the table.
  const std::string chosen = app.get_subcommands().front()->get_name();
  for (const Command& c : kCommands) {
    if (chosen != c.name) continue;
    // A daemon (or a log) of another version may answer with a field of another type:
    // nlohmann's accessors throw then. One line and exit 1, as any other failure.
    try {
      return c.run(args);
    } catch (const nlohmann::json::exception& e) {
      fprintf(stderr, "udaxctl %s: unexpected answer: %s\n", c.name, e.what());
      return chosen == "health" ? 8 : 1;  // health's "could not tell"
    }
  }
  return 1;
}
