// main.cc -- the udaxfs daemon: `udaxfs TARGET MOUNTPOINT [-f] [-d] [-o opts]`.
//
// Mounts first (so the caller sees a serving mount when we return), then daemonizes
// unless -f, then serves requests on libfuse's multi-threaded loop until unmounted.
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "fs/fuse/fuse_ops.h"
#include "fs/fuse/killpriv_v2.h"
#include "fs/fuse/media_watch.h"
#include "fs/fuse/mount_watch.h"
#include "fs/fuse/readahead.h"
#include "fs/fuse/uring_transport.h"

namespace {

struct CmdLine {
  const char* target = nullptr;
  const char* mountpoint = nullptr;
  int foreground = 0;
  int debug = 0;
  int help = 0;
  int version = 0;
  int sync = 0;
  int read_only = 0;
  int noacl = 0;
  char* cache = nullptr;
  char* mce_policy = nullptr;
  char* patrol = nullptr;       // hours between media patrol passes
  int patrol_rate_mb = 64;      // MB/s a patrol pass reads at most
  int lease_timeout_ms = 100;
  int readahead_kb = 1024;
  int uring = 0;  // opt-in: -o uring (README, "FUSE over io_uring")
  int writeback_cache = 0;  // opt-in: -o writeback_cache (README, "Mount options")
  int degraded = 0;  // several devices: mount without one that is gone (README)
};

enum { kKeyHelp, kKeyVersion, kKeyForeground, kKeyDebug, kKeyRo };

#define UDAX_OPT(t, p, v) {t, offsetof(CmdLine, p), v}
const fuse_opt kOptions[] = {
    UDAX_OPT("sync", sync, 1),
    UDAX_OPT("cache=%s", cache, 0),
    UDAX_OPT("mce_policy=%s", mce_policy, 0),
    UDAX_OPT("patrol=%s", patrol, 0),
    UDAX_OPT("patrol_rate=%d", patrol_rate_mb, 0),
    UDAX_OPT("lease_timeout=%d", lease_timeout_ms, 0),
    UDAX_OPT("readahead=%d", readahead_kb, 0),
    UDAX_OPT("acl", noacl, 0),
    UDAX_OPT("noacl", noacl, 1),
    UDAX_OPT("uring", uring, 1),
    UDAX_OPT("nouring", uring, 0),
    UDAX_OPT("writeback_cache", writeback_cache, 1),
    UDAX_OPT("nowriteback_cache", writeback_cache, 0),
    UDAX_OPT("degraded", degraded, 1),
    FUSE_OPT_KEY("-h", kKeyHelp),
    FUSE_OPT_KEY("--help", kKeyHelp),
    FUSE_OPT_KEY("-V", kKeyVersion),
    FUSE_OPT_KEY("--version", kKeyVersion),
    FUSE_OPT_KEY("-f", kKeyForeground),
    FUSE_OPT_KEY("-d", kKeyDebug),
    FUSE_OPT_KEY("debug", kKeyDebug),
    FUSE_OPT_KEY("ro", kKeyRo),
    FUSE_OPT_END,
};

int OptProc(void* data, const char* arg, int key, fuse_args*) {
  auto* cmd = static_cast<CmdLine*>(data);
  switch (key) {
    case kKeyHelp:
      cmd->help = 1;
      return 0;
    case kKeyVersion:
      cmd->version = 1;
      return 0;
    case kKeyForeground:
      cmd->foreground = 1;
      return 0;
    case kKeyDebug:
      cmd->debug = 1;
      cmd->foreground = 1;
      return 1;  // libfuse prints requests too
    case kKeyRo:
      cmd->read_only = 1;
      return 1;  // and the kernel mount is read-only
    case FUSE_OPT_KEY_NONOPT:
      if (!cmd->target) {
        cmd->target = arg;
        return 0;
      }
      if (!cmd->mountpoint) {
        cmd->mountpoint = arg;
        return 0;
      }
      fprintf(stderr, "udaxfs: unexpected argument '%s'\n", arg);
      return -1;
    default:
      return 1;
  }
}

void Usage(const char* prog) {
  printf(
      "usage: %s TARGET MOUNTPOINT [-f] [-d] [-o opt[,opt...]]\n"
      "\n"
      "TARGET is a devdax device (/dev/daxX.Y), a file on a DAX filesystem, or an\n"
      "image file (emulated region) made by mkfs.udaxfs.\n"
      "\n"
      "udaxfs options:\n"
      "    -f                     stay in the foreground\n"
      "    -d, -o debug           foreground, print every request\n"
      "    -o sync                every write is durable when it returns\n"
      "    -o cache=auto|none     kernel page cache for file data (auto, default) or\n"
      "                           direct I/O to pmem (none)\n"
      "    -o ro                  read-only\n"
      "    -o suid, -o dev        honour setuid/setgid bits and device nodes on the\n"
      "                           image (default nosuid,nodev, for root too: only for\n"
      "                           images you trust)\n"
      "    -o acl|noacl           POSIX ACLs enforced by the kernel (acl, default) or\n"
      "                           only the mode bits (noacl)\n"
      "    -o mce_policy=notify|kill|ignore\n"
      "                           processes with a FUSE mmap of a range whose media\n"
      "                           went bad: page cache dropped, next touch SIGBUS\n"
      "                           (notify, default), SIGKILL (kill), left alone (ignore)\n"
      "    -o patrol=HOURS        read every allocated block every HOURS (a decimal)\n"
      "                           to find latent poison before a user does: the media\n"
      "                           patrol (default: only on udaxctl verify-media)\n"
      "    -o patrol_rate=MB      MB/s a patrol pass reads at most (default 64)\n"
      "    -o lease_timeout=MS    how long a direct-map client may take to give a map\n"
      "                           back before it is killed (default 100)\n"
      "    -o writeback_cache     the kernel's write-back cache (opt-in, needs\n"
      "                           cache=auto): writes reach media at write-back,\n"
      "                           fsync or unmount; no direct maps or views\n"
      "    -o uring|nouring       FUSE over io_uring when the kernel offers it (Linux\n"
      "                           6.14+ with fuse.enable_uring=1): a request queue per\n"
      "                           CPU, served on that CPU (uring), or /dev/fuse\n"
      "                           whatever the kernel offers (nouring, the default)\n"
      "    -o degraded            several devices: mount without ones the superblocks\n"
      "                           do not call lost (gone while unmounted); they are\n"
      "                           lost from then on (udaxctl replace-device)\n"
      "    -o readahead=KB        the kernel's readahead window for this mount, which\n"
      "                           also caps the size of its read requests (default\n"
      "                           1024; 0 keeps the kernel's 128)\n"
      "\n"
      "FUSE options:\n",
      prog);
  fuse_lowlevel_help();
}

}  // namespace

int main(int argc, char* argv[]) {
  fuse_args args = FUSE_ARGS_INIT(argc, argv);
  CmdLine cmd;
  // fuse_opt_parse copies the argument list and string options: free them on every path.
  struct Cleanup {
    fuse_args* args;
    CmdLine* cmd;
    ~Cleanup() {
      fuse_opt_free_args(args);
      free(cmd->cache);
      free(cmd->mce_policy);
      free(cmd->patrol);
    }
  } cleanup{&args, &cmd};
  if (fuse_opt_parse(&args, &cmd, kOptions, OptProc) != 0) return 1;
  if (cmd.help) {
    Usage(argv[0]);
    return 0;
  }
  if (cmd.version) {
    printf("udaxfs version 0.1.0, FUSE library %s\n", fuse_pkgversion());
    return 0;
  }
  if (!cmd.target || !cmd.mountpoint) {
    fprintf(stderr, "usage: udaxfs TARGET MOUNTPOINT [-f] [-o opts]  (-h for help)\n");
    return 1;
  }
  udax::FuseContext ctx;
  ctx.config.posix_acl = !cmd.noacl;
  if (cmd.cache) {
    if (std::strcmp(cmd.cache, "auto") == 0) {
      ctx.config.cache_auto = true;
    } else if (std::strcmp(cmd.cache, "none") == 0) {
      ctx.config.cache_auto = false;
    } else {
      fprintf(stderr, "udaxfs: bad option cache=%s (expected auto or none)\n", cmd.cache);
      return 1;
    }
  }
  if (cmd.writeback_cache && !ctx.config.cache_auto) {
    fprintf(stderr, "udaxfs: writeback_cache needs the page cache: it cannot go with cache=none\n");
    return 1;
  }
  ctx.config.writeback_cache = cmd.writeback_cache;
  udax::McePolicy policy = udax::McePolicy::kNotify;
  if (cmd.mce_policy) {
    auto p = udax::McePolicyFromName(cmd.mce_policy);
    if (!p) {
      fprintf(stderr, "udaxfs: bad option mce_policy=%s (expected notify, kill or ignore)\n",
              cmd.mce_policy);
      return 1;
    }
    policy = *p;
  }
  if (cmd.readahead_kb < 0 || cmd.readahead_kb > 65536) {
    fprintf(stderr, "udaxfs: bad option readahead=%d (expected 0 to 65536 KiB)\n",
            cmd.readahead_kb);
    return 1;
  }
  udax::MediaPatrol::Options patrol;
  if (cmd.patrol) {
    char* end = nullptr;
    errno = 0;
    const double hours = strtod(cmd.patrol, &end);
    if (errno != 0 || end == cmd.patrol || *end != '\0' || !(hours > 0) || hours > 24 * 366) {
      fprintf(stderr, "udaxfs: bad option patrol=%s (expected hours, more than 0 and at most 8784)\n",
              cmd.patrol);
      return 1;
    }
    patrol.interval = std::chrono::seconds(std::max<int64_t>(1, static_cast<int64_t>(hours * 3600)));
  }
  if (cmd.patrol_rate_mb < 1 || cmd.patrol_rate_mb > 1000000) {
    fprintf(stderr, "udaxfs: bad option patrol_rate=%d (expected 1 to 1000000 MB/s)\n",
            cmd.patrol_rate_mb);
    return 1;
  }
  patrol.rate_bytes_per_s = static_cast<uint64_t>(cmd.patrol_rate_mb) * 1000000;
  if (cmd.lease_timeout_ms < 1 || cmd.lease_timeout_ms > 60000) {
    fprintf(stderr, "udaxfs: bad option lease_timeout=%d (expected 1 to 60000 ms)\n",
            cmd.lease_timeout_ms);
    return 1;
  }
  // Mount options every udaxfs mount has: the kernel checks permissions from our
  // attributes, and the source is the target string (xfstests finds mounts by it).
  // nosuid,nodev for root too (libfuse's own default, said here so that nothing else
  // decides it): the image may be anyone's, and its setuid-root binaries and device
  // nodes must not work unless -o suid / -o dev, which come later and win, ask for them.
  std::string fsname;
  for (const char* p = cmd.target; *p; ++p) {
    if (*p == ',' || *p == '\\') fsname += '\\';  // fuse_opt escapes
    fsname += *p;
  }
  std::string base = "-odefault_permissions,nosuid,nodev,fsname=" + fsname;
  if (getuid() == 0) base += ",allow_other";
  fuse_opt_insert_arg(&args, 1, base.c_str());

  {
    // A mount point that cannot be mounted on must fail before the target is touched.
    struct stat st;
    if (stat(cmd.mountpoint, &st) != 0) {
      fprintf(stderr, "udaxfs: mount point %s: %s\n", cmd.mountpoint, strerror(errno));
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      fprintf(stderr, "udaxfs: mount point %s: not a directory\n", cmd.mountpoint);
      return 1;
    }
  }
  char* real = realpath(cmd.mountpoint, nullptr);  // how mountinfo will name it
  const std::string mountpoint = real ? real : cmd.mountpoint;
  free(real);
  // Parse the FUSE options before touching the target: a bad option must not write.
  fuse_lowlevel_ops ops;
  udax::AssignOperations(&ops);
  fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), &ctx);
  fuse_opt_free_args(&args);
  if (!se) return 1;  // libfuse said why (e.g. an unknown option)

  openlog("udaxfs", LOG_PID, LOG_DAEMON);  // where messages go once we daemonize
  udax::MountOptions mopts;
  mopts.read_only = cmd.read_only;
  mopts.upgradable = cmd.read_only;  // mount -o remount,rw (UDAX_IOC_MAKE_WRITABLE)
  mopts.sync = cmd.sync;
  mopts.degraded = cmd.degraded;
  auto fs = udax::Filesystem::Mount(cmd.target, mopts);
  if (!fs.ok()) {
    fprintf(stderr, "udaxfs: %s\n", fs.status().message().c_str());
    fuse_session_destroy(se);
    return 1;
  }
  ctx.fs = fs.value().get();
  ctx.session = se;
  if (!udax::HasMetaCopies(ctx.fs->superblock())) {
    // An image from before metadata copies (or made without them) keeps mounting; the
    // explicit command that adds them is named where an administrator looks.
    syslog(LOG_NOTICE,
           "%s: no metadata copies (made before them, or with mkfs.udaxfs "
           "--no-metadata-copies): a bad block in a directory or extent block costs its inode; "
           "`udaxctl upgrade %s` on the unmounted target adds them",
           cmd.target, cmd.target);
  }
  int rc = 1;
  udax::ReadaheadSetter readahead;  // joined after the unmount below
  if (fuse_set_signal_handlers(se) == 0) {
    if (fuse_session_mount(se, cmd.mountpoint) == 0) {
      if (cmd.uring) {
        udax::RequestUringWhenOffered();
        // The kernel says yes or no only in INIT, after the daemon has detached: say now,
        // while stderr is still the user's, when it cannot say yes.
        if (!udax::KernelMayOfferUring()) {
          fprintf(stderr, "udaxfs: -o uring: this kernel does not offer FUSE over io_uring "
                          "(needs Linux 6.14+ with fuse.enable_uring=Y); serving /dev/fuse\n");
        }
      }
      if (udax::InstallKillprivV2(se) == 0 && fuse_daemonize(cmd.foreground) == 0) {
        // After daemonize: its fork keeps no threads.
        udax::MountWatch watch;
        udax::Status ws = watch.Start(ctx.fs, mountpoint);
        if (!ws.ok()) syslog(LOG_WARNING, "atime policy fixed at relatime: %s", ws.ToString().c_str());
        udax::MediaWatch media(std::chrono::milliseconds(cmd.lease_timeout_ms));
        // Under a write-back cache the kernel's dirty pages are the newest bytes: no
        // direct maps or views, which would read (and write) around them.
        media.Start(ctx.fs, se, cmd.target, mountpoint, policy, patrol, !cmd.writeback_cache);
        readahead.Start(mountpoint, static_cast<unsigned>(cmd.readahead_kb));
        fuse_loop_config* cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(cfg, 1);
        fuse_loop_cfg_set_max_threads(cfg, 16);
        const int loop_rc = fuse_session_loop_mt(se, cfg);
        if (loop_rc == -ECONNABORTED) {
          // The kernel tore the connection down under a read in progress: an unmount racing
          // a request being handed over (generic/530: 20,000 RELEASEs as a process exits),
          // or an abort through fusectl. Either way the mount has ended; libfuse 3.14 only
          // takes ENODEV as the normal end. What is pending is persisted below as usual.
          syslog(LOG_NOTICE, "%s: the kernel aborted the FUSE connection: mount ended", cmd.target);
          rc = 0;
        } else if (loop_rc != 0) {
          // Once daemonized stderr is gone: say why the exit status is 1 where it is read.
          syslog(LOG_ERR, "%s: the FUSE session loop ended with %d (%s)", cmd.target, loop_rc,
                 loop_rc < 0 ? strerror(-loop_rc) : "signal or error");
          rc = 1;
        } else {
          rc = 0;
        }
        fuse_loop_cfg_destroy(cfg);
        udax::StopUringTransport();
        media.Stop();
        watch.Stop();
      }
      fuse_session_unmount(se);
      readahead.Join();
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  // DESTROY does not arrive on plain fuse mounts at umount: persist what is pending here.
  udax::Status st = ctx.fs->Unmount();
  if (!st.ok()) {
    fprintf(stderr, "udaxfs: %s: unmount: %s\n", cmd.target, st.ToString().c_str());
    syslog(LOG_ERR, "%s: unmount: %s", cmd.target, st.ToString().c_str());
    rc = 1;
  }
  return rc;
}
