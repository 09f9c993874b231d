// mount_main.cc -- mount.udaxfs (also mount.fuse.udaxfs): the mount(8) helper for udaxfs.
//
// mount(8) runs `mount.udaxfs SOURCE DIR [-sfnv] [-N NS] [-o OPTS] [-t TYPE]` for
// `mount -t udaxfs` and `mount.fuse.udaxfs` for `mount -t fuse.udaxfs` (what xfstests
// uses). A new mount starts the udaxfs daemon, once the previous daemon of SOURCE has let
// go of it, and returns only when the mount answers requests; options libfuse 3.14
// rejects are applied with a kernel remount afterwards. `-o remount` never starts a
// daemon: it is a kernel remount of DIR. Exit status as mount(8) documents for helpers:
// 0 mounted, 1 bad invocation, 32 mount failure.
#include <fcntl.h>
#include <getopt.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fs/base/file_reader.h"
#include "fs/base/safe_file.h"
#include "include/udaxfs/ioctl.h"
#include "mount-helper/mount_options.h"
#include "mount-helper/mount_table.h"

namespace {

constexpr int kExitUsage = 1;
constexpr int kExitMountFailure = 32;
// How long a previous daemon of the same target may take to exit after its umount, and
// how long a new mount may take to answer its first statfs.
constexpr auto kWaitForTarget = std::chrono::seconds(10);
constexpr auto kWaitForServe = std::chrono::seconds(10);
constexpr auto kPollInterval = std::chrono::milliseconds(10);

using Clock = std::chrono::steady_clock;

struct Invocation {
  std::string source;
  std::string dir;  // as given
  std::string canonical_dir;
  bool fake = false;
  bool verbose = false;
  bool sloppy = false;
  std::string ns;  // -N: a mount namespace (path or pid)
  udax::MountRequest req;
};

int Fail(const std::string& msg) {
  fprintf(stderr, "mount.udaxfs: %s\n", msg.c_str());
  return kExitMountFailure;
}

int Usage(const std::string& msg) {
  fprintf(stderr, "mount.udaxfs: %s (usage: mount.udaxfs SOURCE DIR [-sfnv] [-o OPTS])\n",
          msg.c_str());
  return kExitUsage;
}

std::string Join(const std::vector<std::string>& v, bool quote = false) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + (quote ? "'" + s + "'" : s);
  return out;
}

bool IsExecutable(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

// The daemon beside our own executable (the kernel resolves /proc/self/exe through every
// symlink, so a /sbin/mount.udaxfs symlink into a build finds that build's udaxfs), else
// the first in PATH, else the usual install places (mount(8) from systemd or fstab may
// run us with a minimal PATH).
std::string FindDaemon() {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    std::string dir(self, static_cast<size_t>(n));
    dir.resize(dir.rfind('/') + 1);
    if (IsExecutable(dir + "udaxfs")) return dir + "udaxfs";
  }
  if (const char* path = getenv("PATH")) {
    std::string p = path;
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find(':', start);
      if (end == std::string::npos) end = p.size();
      const std::string d = p.substr(start, end - start);
      if (!d.empty() && IsExecutable(d + "/udaxfs")) return d + "/udaxfs";
      start = end + 1;
    }
  }
  for (const char* d : {"/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin"}) {
    if (IsExecutable(std::string(d) + "/udaxfs")) return std::string(d) + "/udaxfs";
  }
  return "";
}

// -N: mount in another mount namespace, as mount(8) asks with --namespace.
bool EnterNamespace(const std::string& ns) {
  std::string path = ns;
  if (!ns.empty() && ns.find_first_not_of("0123456789") == std::string::npos) {
    path = "/proc/" + ns + "/ns/mnt";
  }
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = setns(fd, CLONE_NEWNS) == 0;
  close(fd);
  return ok;
}

// statfs(DIR) on a thread, so that a daemon that never answers cannot hang mount(8): we
// give up after kWaitForServe (exiting kills the blocked thread; FUSE waits are killable).
bool ServesStatfs(const std::string& dir, std::string* why) {
  auto result = std::make_shared<std::promise<std::pair<int, long>>>();
  std::future<std::pair<int, long>> done = result->get_future();
  std::thread([dir, result] {
    struct statfs sf;
    const int rc = statfs(dir.c_str(), &sf);
    result->set_value({rc == 0 ? 0 : errno, rc == 0 ? static_cast<long>(sf.f_type) : 0});
  }).detach();
  if (done.wait_for(kWaitForServe) != std::future_status::ready) {
    *why = "the daemon does not answer statfs";
    return false;
  }
  const auto [err, type] = done.get();
  if (err != 0) {
    *why = std::string("statfs: ") + strerror(err);
    return false;
  }
  if (type != FUSE_SUPER_MAGIC) {
    *why = "statfs does not report a FUSE filesystem";
    return false;
  }
  return true;
}

// Runs the daemon to completion (it returns once mounted, leaving a daemonized child).
// Returns its exit status (-1 if it could not run) and its stderr in *err.
int RunDaemon(const std::string& daemon, const std::vector<std::string>& args, std::string* err) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    *err = std::string("pipe: ") + strerror(errno);
    return -1;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    *err = std::string("fork: ") + strerror(errno);
    close(pipefd[0]);
    close(pipefd[1]);
    return -1;
  }
  if (pid == 0) {
    // Nothing of ours must stay open in a daemon that lives on: every fd we open is
    // O_CLOEXEC, and stdin/stdout go to /dev/null (mount(8)'s caller may wait on them).
    const int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, STDIN_FILENO);
      dup2(devnull, STDOUT_FILENO);
    }
    dup2(pipefd[1], STDERR_FILENO);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(daemon.c_str()));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(daemon.c_str(), argv.data());
    dprintf(STDERR_FILENO, "cannot run %s: %s\n", daemon.c_str(), strerror(errno));
    _exit(127);
  }
  close(pipefd[1]);
  // EOF comes when the daemon has daemonized (its child points stderr at /dev/null) or died.
  // A pipe fails a read only with EINTR, which ReadCapped retries.
  const udax::Result<std::string> out =
      udax::ReadCapped(pipefd[0], "the daemon's stderr", udax::kNoSizeLimit);
  if (out.ok()) err->append(out.value());
  close(pipefd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  *err += std::string("killed by signal ") + std::to_string(WTERMSIG(status));
  return -1;
}

void PrintLines(const std::string& text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) fprintf(stderr, "%s\n", text.substr(start, end - start).c_str());
    start = end + 1;
  }
}

// Takes a mount we made but cannot vouch for away again.
void Undo(const Invocation& inv) {
  if (umount2(inv.canonical_dir.c_str(), 0) != 0) umount2(inv.canonical_dir.c_str(), MNT_DETACH);
}

int Remount(const Invocation& inv) {
  const auto top = udax::TopMountAt(udax::ReadMountInfo(), inv.canonical_dir);
  if (!top) return Fail(inv.dir + ": not mounted");
  if (top->fstype != "fuse" || top->source != inv.source) {
    return Fail(inv.dir + ": not a udaxfs mount of " + inv.source + " (it is " + top->fstype +
                " from " + top->source + ")");
  }
  // A FUSE mount of this target with no daemon holding the target's lock is not ours.
  if (udax::TargetLockHeld(inv.source) != 1) {
    return Fail(inv.dir + ": no udaxfs daemon serves " + inv.source);
  }
  if (!inv.req.read_only && !inv.fake) {
    // A daemon started read-only refuses every change itself: it must become writable
    // (UDAX_IOC_MAKE_WRITABLE) before the kernel's rw flag means anything.
    const auto opts = udax::DaemonOptions(inv.source, inv.canonical_dir);
    if (opts) {
      udax::MountRequest started;
      udax::ParseMountOptions(*opts, &started);
      if (started.read_only) {
        const int fd = open(inv.canonical_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        const int rc = fd < 0 ? -1 : ioctl(fd, UDAX_IOC_MAKE_WRITABLE);
        const int e = errno;
        if (fd >= 0) close(fd);
        if (rc != 0) {
          return Fail(inv.dir + ": the udaxfs daemon started read-only cannot become writable (" +
                      strerror(e) + "); umount and mount again");
        }
      }
    }
  }
  // Flags the options leave unset keep what the mount has (mount(8) passes the current
  // options first, but a direct `mount.udaxfs SRC DIR -o remount,ro` names none).
  udax::MountRequest req = inv.req;
  udax::KeepCurrentFlags(top->vfs_options, &req);
  const unsigned long flags = udax::KernelRemountFlags(req);
  if (inv.verbose) {
    printf("mount.udaxfs: remount %s (%s)\n", inv.dir.c_str(),
           udax::DescribeRemountFlags(flags).c_str());
    if (!inv.req.daemon_options.empty()) {
      printf("mount.udaxfs: not changed by a remount: %s\n", Join(inv.req.daemon_options).c_str());
    }
  }
  if (inv.fake) return 0;
  if (mount(inv.source.c_str(), inv.canonical_dir.c_str(), nullptr, flags, nullptr) != 0) {
    return Fail("remount " + inv.dir + ": " + strerror(errno));
  }
  return 0;
}

// Waits until no daemon holds SOURCE: after `umount DIR` the old daemon exits a moment
// later (no FUSE_DESTROY on plain fuse mounts), still holding the target until then.
// If SOURCE is mounted and served, sets *mounted_on to that mount point instead.
int WaitForTarget(const Invocation& inv, Clock::time_point deadline, std::string* mounted_on) {
  for (;;) {
    const int held = udax::TargetLockHeld(inv.source);
    if (held < 0) return Fail(inv.source + ": " + strerror(-held));
    if (held == 0) return 0;
    if (const auto m = udax::FuseMountOf(udax::ReadMountInfo(), inv.source)) {
      *mounted_on = m->mount_point;
      return 0;
    }
    if (Clock::now() >= deadline) {
      return Fail(inv.source + ": still in use by another udaxfs daemon after " +
                  std::to_string(kWaitForTarget.count()) + " s");
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

// A second mount of a mounted SOURCE shares its daemon, as a block filesystem mounted
// twice shares its superblock: a bind mount of the first, then the kernel flags of this
// one (ro, noatime, ...). The daemon options of the first mount (cache=, sync) hold.
int MountAgain(const Invocation& inv, const std::string& mounted_on, unsigned long flags) {
  if (mount(mounted_on.c_str(), inv.canonical_dir.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return Fail(inv.dir + ": bind of " + mounted_on + " (" + inv.source +
                " is already mounted there): " + strerror(errno));
  }
  // Always remounted: a bind copies the first mount's flags, and a first mount made with
  // suid or dev must not lend them to a second one that did not ask.
  const unsigned long bind_flags = flags | MS_BIND | (inv.req.read_only ? MS_RDONLY : 0);
  if (mount(nullptr, inv.canonical_dir.c_str(), nullptr, bind_flags, nullptr) != 0) {
    const int e = errno;
    Undo(inv);
    return Fail(inv.dir + ": remount (" + udax::DescribeRemountFlags(flags) + "): " + strerror(e));
  }
  return 0;
}

int Mount(const Invocation& inv) {
  struct stat st;
  if (stat(inv.source.c_str(), &st) != 0) return Fail(inv.source + ": " + strerror(errno));
  if (S_ISDIR(st.st_mode)) return Fail(inv.source + ": is a directory, not a udaxfs target");
  const std::string daemon = FindDaemon();
  if (daemon.empty()) return Fail("udaxfs daemon not found (beside mount.udaxfs or in PATH)");
  std::vector<std::string> args = {inv.source, inv.dir};
  args.push_back("-o");
  args.push_back(udax::DaemonOptionString(inv.req));
  const bool remount_after = udax::NeedsKernelRemount(inv.req);
  const unsigned long flags = udax::KernelRemountFlags(inv.req);
  if (inv.verbose) {
    std::string line = daemon;
    for (const std::string& a : args) line += " " + a;
    printf("mount.udaxfs: %s\n", line.c_str());
    if (remount_after) {
      printf("mount.udaxfs: then remount (%s)\n", udax::DescribeRemountFlags(flags).c_str());
    }
  }
  if (inv.fake) return 0;

  const Clock::time_point deadline = Clock::now() + kWaitForTarget;
  std::string err;
  for (;;) {
    std::string mounted_on;
    if (const int rc = WaitForTarget(inv, deadline, &mounted_on); rc != 0) return rc;
    if (!mounted_on.empty()) return MountAgain(inv, mounted_on, flags);
    err.clear();
    const int status = RunDaemon(daemon, args, &err);
    if (status == 0) break;
    // Lost a race for the target to another mount starting at the same time: wait again.
    if (err.find("(locked)") != std::string::npos && Clock::now() < deadline) continue;
    PrintLines(err.empty() ? "mount.udaxfs: udaxfs failed without a message\n" : err);
    return kExitMountFailure;
  }
  PrintLines(err);  // a daemon that mounted may still have warned

  const auto top = udax::TopMountAt(udax::ReadMountInfo(), inv.canonical_dir);
  if (!top || top->fstype != "fuse" || top->source != inv.source) {
    return Fail(inv.dir + ": udaxfs exited 0 but " + inv.source + " is not mounted there");
  }
  std::string why;
  if (!ServesStatfs(inv.canonical_dir, &why)) {
    Undo(inv);
    return Fail(inv.dir + ": " + why);
  }
  if (remount_after &&
      mount(inv.source.c_str(), inv.canonical_dir.c_str(), nullptr, flags, nullptr) != 0) {
    const int e = errno;
    Undo(inv);
    return Fail(inv.dir + ": remount (" + udax::DescribeRemountFlags(flags) + "): " + strerror(e));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Invocation inv;
  std::vector<std::string> positional;
  std::string options;
  opterr = 0;
  int c;
  // mount(8)'s helper interface (EXTERNAL HELPERS in mount(8)), plus -r/-w as libmount
  // helpers accept them. GNU getopt permutes: mount(8) puts SOURCE DIR first.
  while ((c = getopt(argc, argv, "sfnvrwho:t:N:")) != -1) {
    switch (c) {
      case 's':
        inv.sloppy = true;
        break;
      case 'f':
        inv.fake = true;
        break;
      case 'n':
        break;  // we never write /etc/mtab (it is /proc/self/mounts)
      case 'v':
        inv.verbose = true;
        break;
      case 'r':
        options += ",ro";
        break;
      case 'w':
        options += ",rw";
        break;
      case 'o':
        options += std::string(",") + optarg;
        break;
      case 't':
        break;  // udaxfs or fuse.udaxfs: we are that type
      case 'N':
        inv.ns = optarg;
        break;
      case 'h':
        printf("usage: mount.udaxfs SOURCE DIR [-sfnv] [-N NS] [-o OPTS]\n");
        return 0;
      default:
        return Usage(std::string("unknown option -") + static_cast<char>(optopt));
    }
  }
  for (int i = optind; i < argc; ++i) positional.emplace_back(argv[i]);
  if (positional.size() != 2) return Usage("expected SOURCE and DIR");
  inv.source = positional[0];
  inv.dir = positional[1];

  udax::ParseMountOptions(options, &inv.req);
  if (!inv.req.bad.empty()) return Fail("bad mount option " + Join(inv.req.bad));
  if (inv.req.norecovery && !inv.req.read_only && !inv.req.remount) {
    return Fail("norecovery needs ro (a read-write mount always replays the journal)");
  }
  if (!inv.req.unknown.empty()) {
    if (!inv.sloppy) {
      return Fail(std::string("unknown mount option") + (inv.req.unknown.size() > 1 ? "s " : " ") +
                  Join(inv.req.unknown, true));
    }
    if (inv.verbose)
      printf("mount.udaxfs: ignoring unknown %s (-s)\n", Join(inv.req.unknown).c_str());
  }
  if (inv.verbose && !inv.req.ignored.empty()) {
    printf("mount.udaxfs: accepted without effect: %s\n", Join(inv.req.ignored).c_str());
  }
  if (!inv.ns.empty() && !EnterNamespace(inv.ns)) {
    return Fail("namespace " + inv.ns + ": " + strerror(errno));
  }
  char resolved[PATH_MAX];
  if (!realpath(inv.dir.c_str(), resolved)) return Fail(inv.dir + ": " + strerror(errno));
  inv.canonical_dir = resolved;
  return inv.req.remount ? Remount(inv) : Mount(inv);
}
