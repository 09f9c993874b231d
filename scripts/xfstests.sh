#!/usr/bin/env python3
r"""xfstests.sh -- runs xfstests (fstests) against udaxfs, one test at a time.

  sudo scripts/xfstests.sh [OPTIONS] XFSTESTS_DIR [TEST...]

XFSTESTS_DIR is your own xfstests checkout (runs `make` in it first if it is not built).
Installs udaxfs from a build (scripts/install.sh), creates the users xfstests needs
(fsgqa, fsgqa2, 123456-fsgqa), formats a TEST and a SCRATCH image with mkfs.udaxfs,
writes WORK/local.config (FSTYP=fuse, FUSE_SUBTYP=.udaxfs) and runs each test as its own
`./check TEST` under a watchdog. Default: the group generic/quick.

Options:
  -g, --group GROUP        run GROUP (repeatable): generic/quick, or quick (= generic/quick)
  -x, --exclude-group G    leave out the tests of group G (repeatable)
  -e, --exclude TEST       leave out TEST, e.g. generic/001 (repeatable)
  -b, --build DIR          udaxfs build to install (default build/)
      --no-install         use the udaxfs tools already installed
  -w, --work DIR           mount points, config, results (default /var/tmp/udaxfs-xfstests)
  -r, --results DIR        results (default WORK/results/YYYYmmdd-HHMMSS)
  -i, --image-dir DIR      where the TEST and SCRATCH images go (default
                           /dev/shm/udaxfs-xfstests: an emulated pmem region should live
                           in memory; on a disk file every commit's msync reaches the disk)
      --test-size SIZE     TEST image size (default 4G, sparse)
      --scratch-size SIZE  SCRATCH image size (default 4G, sparse)
  -t, --timeout SECONDS    per-test time limit (default 300); a test past it is killed,
                           its mounts are torn down (FUSE abort, umount -l) and it fails
  -o, --mount-options OPTS extra mount options for both mounts (e.g. cache=none); both
                           always get allow_dev,allow_suid (dev,suid through mount(8)),
                           which xfstests expects of a disk filesystem (udaxfs' own
                           default is nosuid,nodev)
      --keep-images        leave the images in place after the run (default: removed)
      --no-syslog          do not capture the daemons' syslog when nothing listens on /dev/log
  -l, --list               print the tests that would run, and exit
  -h, --help

Per test: the SCRATCH image is reformatted when the previous test ran (with FSTYP=fuse,
xfstests' own mkfs only empties the mounted scratch fs), the daemons' exit statuses are
watched (a daemon killed by a signal is a bug), and after the test fsck.udaxfs checks the
TEST image (and SCRATCH if the test ran); problems fail the test. At the end fsck.udaxfs
checks the TEST image once more. No udaxfs mount is left behind, even on Ctrl-C.

Results: RESULTS/summary.txt and summary.json (counts, failures with their cause,
not-run reasons, bugs, run time, fsck verdict), RESULTS/results.tsv (one line a test),
RESULTS/check.log (all check output), RESULTS/xfstests/ (xfstests' own .out.bad, .full,
.dmesg, plus .hang stacks, .fsck, .syslog). The last line printed is
"xfstests: N passed, M failed, K skipped". Exit status: 0 no failure, 1 failures,
2 set-up error, 130 interrupted.

By hand afterwards: cd XFSTESTS_DIR && HOST_OPTIONS=WORK/local.config ./check generic/001
"""
# This is a Python program that keeps the name xfstests.sh so that the command line people
# and notes use stays the same (it was bash with four Python heredocs: issue 18). Only the
# standard library is used. The docstring above is what --help prints.

import argparse
import collections
import ctypes
import fcntl
import json
import os
import platform
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
PROG = "xfstests.sh"
PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """Raised by the signal handler: unwinds to main(), which stops the test and unmounts."""


def interrupt(*_):
    """The handler of SIGINT, SIGTERM and SIGHUP once there is something to clean up.
    Further signals are ignored while we stop the test and unmount."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted()


def die(msg):
    """A set-up error: message on stderr, exit status 2 (try/finally blocks still unmount)."""
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(2)


def usage(file=sys.stdout):
    print(__doc__, end="", file=file)


# ---------------------------------------------------------------- small helpers

def exit_code(returncode):
    """A subprocess return code as a shell reports it: 128+N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def succeeds(cmd, timeout=None):
    """Runs CMD quietly; True if it exited 0 within TIMEOUT seconds (killed otherwise)."""
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False
    except OSError:  # no such command
        return False


def output_of(cmd):
    """CMD's stdout, stripped, or None when it fails."""
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, errors="replace")
    except OSError:
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def read_text(path, default=""):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return default


def append_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        f.write(text)


def wait_until(done, tries, interval=0.1):
    """Polls DONE() up to TRIES times, INTERVAL apart; True as soon as it holds."""
    for _ in range(tries):
        if done():
            return True
        time.sleep(interval)
    return False


def clean1(s):
    """One line of at most 300 characters, for the TSV and the report."""
    return s.replace("\t", " ").replace("\n", " ").rstrip(" ")[:300]


def join_lines(lines):
    """Lines joined with " | " (a "|" inside a line is spaced out the same way)."""
    return "|".join(lines).replace("|", " | ")


def lines_of(text):
    """TEXT's lines, split at newlines only (as grep does; str.splitlines knows more)."""
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def nonblank_lines(text):
    return [l for l in lines_of(text) if l.strip()]


def fsck_verdict(text):
    lines = nonblank_lines(text)
    return lines[-1] if lines else ""


def fsck_problem(text):
    """First line and verdict of a failed fsck."""
    lines = nonblank_lines(text)
    if not lines:
        return ""
    return lines[-1] if lines[0] == lines[-1] else f"{lines[0]} ... {lines[-1]}"


_BASH_SPECIAL = set(" \t\n'\"\\|&;()<>!{}*[?]^$`,")


def bash_quote(arg):
    """ARG quoted the way bash's printf %q does it (for the command line in the report)."""
    if arg == "":
        return "''"
    if not arg.isprintable():
        escapes = {"\a": "\\a", "\b": "\\b", "\x1b": "\\E", "\f": "\\f", "\n": "\\n",
                   "\r": "\\r", "\t": "\\t", "\v": "\\v", "\\": "\\\\", "'": "\\'"}
        body = "".join(escapes.get(c, c if c.isprintable() else f"\\{ord(c):03o}")
                       for c in arg)
        return f"$'{body}'"
    out = []
    for i, c in enumerate(arg):
        if (c in _BASH_SPECIAL or (c == "#" and i == 0)
                or (c == "~" and (i == 0 or arg[i - 1] in "=:"))):
            out.append("\\")
        out.append(c)
    return "".join(out)


# ---------------------------------------------------------------- command line

VALUE_OPTIONS = {"-g", "--group", "-x", "--exclude-group", "-e", "--exclude", "-b", "--build",
                 "-w", "--work", "-r", "--results", "--test-size", "--scratch-size",
                 "-t", "--timeout", "-o", "--mount-options", "-i", "--image-dir"}


class UsageAction(argparse.Action):
    """-h/--help: our own text (the docstring), at once, like the bash version did."""

    def __call__(self, parser, namespace, values, option_string=None):
        usage()
        sys.exit(0)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        m = re.match(r"unrecognized arguments: (\S+)", message)
        if m:
            die(f"unknown option {m.group(1)} (see --help)")
        die(f"{message} (see --help)")


def glue_option_values(argv):
    """OPTION VALUE -> OPTION=VALUE, so that argparse takes VALUE as given even when it starts
    with "-" (as the bash version did). A missing or empty value exits with status 1 and the
    bash version's message ("${2:?...}" failed that way)."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            return out + argv[i:]
        if a in VALUE_OPTIONS:
            if i + 1 >= len(argv) or argv[i + 1] == "":
                print(f"{PROG}: {a} needs a value", file=sys.stderr)
                sys.exit(1)
            out.append(f"{a}={argv[i + 1]}")
            i += 2
        else:
            out.append(a)
            i += 1
    return out


def parse_args(argv):
    p = Parser(prog=PROG, add_help=False, allow_abbrev=False)
    p.add_argument("-h", "--help", nargs=0, action=UsageAction)
    p.add_argument("-g", "--group", dest="groups", action="append", default=[])
    p.add_argument("-x", "--exclude-group", dest="xgroups", action="append", default=[])
    p.add_argument("-e", "--exclude", dest="excludes", action="append", default=[])
    p.add_argument("-b", "--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--no-install", dest="install", action="store_false")
    p.add_argument("-w", "--work", default="/var/tmp/udaxfs-xfstests")
    p.add_argument("-r", "--results", default="")
    p.add_argument("-i", "--image-dir", default="/dev/shm/udaxfs-xfstests")
    p.add_argument("--test-size", default="4G")
    p.add_argument("--scratch-size", default="4G")
    p.add_argument("-t", "--timeout", default="300")
    p.add_argument("-o", "--mount-options", default="")
    p.add_argument("--keep-images", action="store_true")
    p.add_argument("--no-syslog", dest="syslog", action="store_false")
    p.add_argument("-l", "--list", action="store_true")
    p.add_argument("words", nargs="*")  # XFSTESTS_DIR [TEST...], options may come between
    args = p.parse_intermixed_args(glue_option_values(argv))

    if not args.words:
        usage(sys.stderr)
        sys.exit(2)
    args.xfstests, args.tests = args.words[0], args.words[1:]
    if not (re.fullmatch(r"[0-9]+", args.timeout) and int(args.timeout) > 0):
        die("--timeout wants a number of seconds")
    args.timeout = int(args.timeout)
    if not (os.path.isdir(args.xfstests) and os.access(f"{args.xfstests}/check", os.X_OK)):
        die(f"{args.xfstests} is not an xfstests checkout (no ./check)")
    args.xfstests = os.path.realpath(args.xfstests)
    if not args.build.startswith("/"):
        args.build = os.path.join(os.getcwd(), args.build)
    if not args.groups and not args.tests:
        args.groups = ["generic/quick"]
    return args


# ---------------------------------------------------------------- test list

def group_tests(xfstests, group):
    """The tests of GROUP (DIR/GROUP or GROUP = generic/GROUP), from xfstests' group.list
    files. A missing list is reported and yields no test: the caller decides if it is fatal."""
    d, name = group.split("/", 1) if "/" in group else ("generic", group)
    gl = f"{xfstests}/tests/{d}/group.list"
    if not os.path.isfile(gl):
        print(f"{PROG}: no {gl} (is xfstests built?)", file=sys.stderr)
        return []
    tests = []
    with open(gl, errors="replace") as f:
        for line in f:
            fields = line.split()
            if line.startswith("#") or not fields:
                continue
            if name in fields[1:]:
                tests.append(f"{d}/{fields[0]}")
    return tests


def build_xfstests(xfstests):
    if os.access(f"{xfstests}/ltp/fsstress", os.X_OK) and \
            os.path.isfile(f"{xfstests}/tests/generic/group.list"):
        return
    print(f"{PROG}: {xfstests} is not built: running make there (it needs its build")
    print("  dependencies: autoconf automake libtool-bin make gcc libacl1-dev libattr1-dev")
    print("  libaio-dev uuid-dev xfslibs-dev libgdbm-dev liburing-dev libcap-dev; and to run:")
    print("  xfsprogs e2fsprogs attr acl quota bc psmisc gawk fio dbench)")
    log = os.path.join(os.environ.get("TMPDIR") or "/tmp", "xfstests-make.log")
    with open(log, "w") as f:
        rc = subprocess.run(["make", "-C", xfstests, f"-j{os.cpu_count() or 1}"],
                            stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        die(f"make failed in {xfstests}; see {log}")


def test_list(args):
    """The tests to run, in order, without duplicates or excluded ones."""
    excluded = set()
    for g in args.xgroups:
        excluded.update(group_tests(args.xfstests, g))  # a bad -x group is reported, not fatal
    for t in args.excludes:
        excluded.add(t if "/" in t else f"generic/{t}")
    chosen = []

    def add(t):
        t = t if "/" in t else f"generic/{t}"
        if not os.path.isfile(f"{args.xfstests}/tests/{t}"):
            die(f"no test {t} in {args.xfstests}/tests")
        if t not in chosen and t not in excluded:
            chosen.append(t)

    for g in args.groups:
        tests = group_tests(args.xfstests, g)
        if not tests:
            die(f"group {g} has no tests")
        for t in tests:
            add(t)
    for t in args.tests:
        add(t)
    if not chosen:
        die("no test to run")
    return chosen


# ---------------------------------------------------------------- processes

def proc_pids():
    """The pids in /proc, in the order bash's /proc/[0-9]* glob gives them."""
    return sorted(p for p in os.listdir("/proc") if p.isdigit())


def proc_stat_fields(pid):
    """The fields of /proc/PID/stat after the command name: state ppid pgrp session ..."""
    line = read_text(f"/proc/{pid}/stat")
    return line.rsplit(") ", 1)[-1].split() if line else []


def session_pids(sid):
    """The pids of the processes of session SID."""
    if not sid:
        return []
    return [p for p in proc_pids() if proc_stat_fields(p)[3:4] == [sid]]


def children_of(ppid):
    return [p for p in proc_pids() if proc_stat_fields(p)[1:2] == [str(ppid)]]


def signal_all(pids, sig):
    for p in pids:
        try:
            os.kill(int(p), sig)
        except OSError:
            pass


def holders(image):
    """The pids of the udaxfs daemons that hold IMAGE open."""
    found = []
    for pid in proc_pids():
        if read_text(f"/proc/{pid}/comm").strip() != "udaxfs":
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == image:
                    found.append(pid)
                    break
            except OSError:
                pass
    return found


def abort_conn(dev):
    """Fails every request of the FUSE connection of the mount with device number DEV
    (MAJ:MIN): the way out of a mount whose daemon is dead or hung."""
    major, _, minor = dev.partition(":")
    path = f"/sys/fs/fuse/connections/{minor}/abort"
    if major == "0" and os.access(path, os.W_OK):
        try:
            with open(path, "w") as f:
                f.write("1\n")
        except OSError:
            pass


def reaper(cmd, log_path, pid_path, rc_path):
    """Runs in a forked child: starts CMD in a new session with this process as its child
    subreaper, so that the daemonized udaxfs daemons stay our descendants; logs how every
    udaxfs daemon (and mount helper) ended; writes CMD's pid and, when it ends, its status;
    returns once no descendant is left."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("reaper: cannot become a child subreaper", file=sys.stderr)
    # Python ignores SIGPIPE and SIGXFSZ and posix_spawn keeps that: the tests must see the
    # defaults (generic/394 and 564 wait for "File size limit exceeded", generic/615 for a
    # stat(1) killed quietly by SIGPIPE).
    child = os.posix_spawnp(cmd[0], cmd, os.environ, setsid=True,
                            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    with open(pid_path, "w") as f:
        f.write(f"{child}\n")
    rc = 1
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            break
        if info is None:
            continue
        pid, code, status = info.si_pid, info.si_code, info.si_status
        comm = read_text(f"/proc/{pid}/comm", "?").strip()  # read before the zombie goes
        os.waitpid(pid, 0)
        if pid == child:
            rc = status if code == os.CLD_EXITED else 128 + status
            with open(rc_path, "w") as f:
                f.write(f"{rc}\n")
            continue
        if comm != "udaxfs" and not comm.startswith(("mount.udaxfs", "mount.fuse.uda")):
            continue
        if code == os.CLD_EXITED:
            what = f"exit status {status}"
        else:
            what = f"killed by {signal.Signals(status).name}" + \
                (" (core dumped)" if code == os.CLD_DUMPED else "")
        with open(log_path, "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {pid} {comm} {what}\n")
    return rc


def start_reaper(cmd, cwd, out_path, log_path, pid_path, rc_path, started):
    """Forks the reaper for CMD (stdin /dev/null, stdout and stderr to OUT_PATH) and hands
    its pid to STARTED before our signal handlers can run again (they must see it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    # No handler of ours may run in the child: block the signals across the fork.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            # Like the bash version's reaper: Ctrl-C ends it (the test has its own session).
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            os.chdir(cwd)
            null = os.open(os.devnull, os.O_RDONLY)
            out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            code = reaper(cmd, log_path, pid_path, rc_path)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    started(pid)
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


# ---------------------------------------------------------------- syslog

class SyslogCapture:
    """A minimal /dev/log listener in a thread: once daemonized the udaxfs daemons log to
    syslog (their stderr is gone), and a container often has no syslog daemon."""

    PATH = "/dev/log"

    def __init__(self, out_path):
        self.out_path = out_path
        self.sock = None
        self.inode = None
        self.stopping = threading.Event()
        self.thread = None

    def start(self):
        if os.path.exists(self.PATH):
            print(f"  {self.PATH} exists: the daemons' messages go to the system log")
            return
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(self.PATH)
            os.chmod(self.PATH, 0o666)
        except OSError:
            return
        sock.settimeout(0.5)  # so that the thread sees stop() soon
        self.sock = sock
        self.inode = os.stat(self.PATH).st_ino
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()
        print(f"  capturing syslog ({self.PATH}) into {self.out_path}")

    def _listen(self):
        with open(self.out_path, "ab", buffering=0) as f:
            while not self.stopping.is_set():
                try:
                    data = self.sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                f.write(time.strftime("%H:%M:%S ").encode() + data.rstrip(b"\0\n") + b"\n")

    def stop(self):
        if self.sock is None:
            return
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()
        self.sock = None
        # remove the socket only if it is still ours
        try:
            st = os.stat(self.PATH)
            if stat.S_ISSOCK(st.st_mode) and st.st_ino == self.inode:
                os.unlink(self.PATH)
        except OSError:
            pass


# ---------------------------------------------------------------- the run

class Run:
    """One run: the images, the mounts, the tests and their results."""

    def __init__(self, args, tests, command_line, mkfs, fsck):
        self.args = args
        self.tests = tests
        self.command_line = command_line
        self.mkfs, self.fsck = mkfs, fsck
        self.xfstests = args.xfstests
        self.work = args.work
        self.results = args.results
        self.test_dev = f"{args.image_dir}/test.img"
        self.scratch_dev = f"{args.image_dir}/scratch.img"
        self.mnt_root = f"{self.work}/mnt"
        self.test_dir = f"{self.mnt_root}/test"
        self.scratch_mnt = f"{self.mnt_root}/scratch"
        self.state = f"{self.work}/run"
        self.result_base = f"{self.results}/xfstests"
        self.tsv = f"{self.results}/results.tsv"
        self.daemons_log = f"{self.state}/daemons.log"
        self.check_pid = f"{self.state}/check.pid"
        self.check_rc = f"{self.state}/check.rc"
        self.syslog = SyslogCapture(f"{self.results}/syslog.log") if args.syslog else None
        # per test
        self.notes, self.bugs, self.harness_killed = [], [], set()
        # per run
        self.reaper_pid = None
        self.current_test = ""
        self.interrupted = self.cleaned = self.finished = self.loop_started = False
        self.counts = collections.Counter()
        self.scratch_dirty = False
        self.saved_images = 0
        self.run_start = 0
        self.started = ""

    def note(self, msg):
        self.notes.append(msg)

    def bug(self, msg):
        self.bugs.append(msg)

    # ------------------------------------------------ mounts and daemons

    def our_mounts(self):
        """Our mounts, last mounted first: (mount point, MAJ:MIN, fstype). Ours: under
        MNT_ROOT, or with one of our images as source."""
        mounts = []
        for line in read_text("/proc/self/mountinfo").splitlines():
            fields = line.split()
            try:
                sep = fields.index("-", 6)  # the optional fields end at "-"
            except ValueError:
                continue
            mp = fields[4].replace("\\040", " ")
            fstype = fields[sep + 1] if len(fields) > sep + 1 else ""
            source = fields[sep + 2] if len(fields) > sep + 2 else ""
            if (mp + "/").startswith(self.mnt_root + "/") or \
                    source in (self.test_dev, self.scratch_dev):
                mounts.append((mp, fields[2], fstype))
        return mounts[::-1]

    def detach_loops(self, why):
        """Loop devices on files in our mounts would keep them busy."""
        listing = output_of(["losetup", "-ln", "-O", "NAME,BACK-FILE"]) or ""
        for line in listing.splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[1].startswith(self.mnt_root + "/"):
                if succeeds(["losetup", "-d", fields[0]]):
                    self.note(f"{why}: detached {fields[0]} (a file in our mounts)")

    def unmount(self, why, mp, dev, fstype):
        """Unmounts MP: a mount that does not answer gets its FUSE connection aborted first,
        a busy one a lazy unmount."""
        self.note(f"{why}: {mp} was still mounted ({fstype})")
        if fstype.startswith("fuse") and not succeeds(["stat", "-f", mp], timeout=5):
            self.note(f"{why}: {mp} does not answer (dead or hung daemon): aborting its FUSE connection")
            abort_conn(dev)
        if succeeds(["umount", mp], timeout=20):
            return
        abort_conn(dev)
        if not (succeeds(["umount", "-l", mp]) or succeeds(["fusermount3", "-uz", mp])):
            self.note(f"{why}: could not unmount {mp}")

    def stop_holders(self, why, image):
        """Waits for the daemons of IMAGE to exit after their unmount; kills the ones that
        do not within 10 s (a bug)."""
        if wait_until(lambda: not holders(image), 100):
            return
        pids = holders(image)
        if not pids:
            return
        self.bug(f"{why}: udaxfs daemon(s) {' '.join(pids)} of {image} still running 10 s after unmount: killed")
        self.harness_killed.update(pids)
        signal_all(pids, signal.SIGTERM)
        wait_until(lambda: not holders(image), 50)
        signal_all(holders(image), signal.SIGKILL)
        wait_until(lambda: not holders(image), 50)

    def teardown(self, why):
        """Unmounts everything of ours, detaches loop devices on files in our mounts, then
        waits for the daemons of our images to exit (killing those that do not). WHY goes
        in the notes when there was something to do."""
        self.detach_loops(why)
        for mp, dev, fstype in self.our_mounts():
            self.unmount(why, mp, dev, fstype)
        for image in (self.test_dev, self.scratch_dev):
            self.stop_holders(why, image)

    def kill_session(self, sid):
        """Kills session SID: TERM, then KILL."""
        pids = session_pids(sid)
        if not pids:
            return
        signal_all(pids, signal.SIGTERM)
        for _ in range(50):
            pids = session_pids(sid)
            if not pids:
                return
            time.sleep(0.1)
        signal_all(pids, signal.SIGKILL)
        if not wait_until(lambda: not session_pids(sid), 100):
            self.note(f"processes of the test session {sid} did not die: "
                      + " ".join(session_pids(sid)))

    def dump_hang(self, path, sid):
        """Kernel and user stacks of a hung test, for the report."""
        daemons = holders(self.test_dev) + holders(self.scratch_dev)
        pids = session_pids(sid) + daemons
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as out:
            out.write(f"== processes of the test (session {sid}) and the udaxfs daemons\n")
            out.flush()
            subprocess.run(["ps", "-o", "pid,ppid,stat,wchan:30,etimes,args", "-p", ",".join(pids)],
                           stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            for p in pids:
                cmdline = read_text(f"/proc/{p}/cmdline").replace("\0", " ")[:150]
                out.write(f"== kernel stacks of {p}: {cmdline}\n")
                try:
                    tids = sorted(os.listdir(f"/proc/{p}/task"))
                except OSError:
                    tids = []
                for tid in tids:
                    out.write(f"-- {tid}\n{read_text(f'/proc/{p}/task/{tid}/stack')}")
            if shutil.which("gdb"):
                for pid in daemons:
                    out.write(f"== gdb backtrace of udaxfs {pid}\n")
                    out.write(self.gdb_backtrace(pid))

    @staticmethod
    def gdb_backtrace(pid):
        cmd = ["gdb", "-p", pid, "-batch", "-nx", "-ex", "thread apply all bt"]
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            text = r.stdout
        except subprocess.TimeoutExpired as e:  # killed: keep what it said
            text = e.output or b""
        lines = [l for l in text.decode(errors="replace").splitlines(keepends=True)
                 if not l.startswith("[New LWP")]
        return "".join(lines[:400])

    # ------------------------------------------------ set-up

    def format_scratch(self):
        return subprocess.run([self.mkfs, "-f", "-s", self.args.scratch_size, self.scratch_dev],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL).returncode

    def mkfs_test(self):
        """Formats the TEST image, printing mkfs' output indented. Returns its status."""
        cmd = [self.mkfs, "-f", "-s", self.args.test_size, self.test_dev]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                           errors="replace")
        for line in lines_of(r.stdout):
            print(f"  {line}")
        return r.returncode

    def local_config(self):
        opts = "allow_dev,allow_suid" + (f",{self.args.mount_options}" if self.args.mount_options else "")
        return "".join(line + "\n" for line in [
            "# written by udaxfs scripts/xfstests.sh",
            "export FSTYP=fuse",
            "export FUSE_SUBTYP=.udaxfs",
            f"export TEST_DEV={self.test_dev}",
            f"export TEST_DIR={self.test_dir}",
            f"export SCRATCH_DEV={self.scratch_dev}",
            f"export SCRATCH_MNT={self.scratch_mnt}",
            # allow_dev,allow_suid: udaxfs mounts nosuid,nodev unless asked, and xfstests
            # expects what a disk filesystem mounted by root has: device nodes that work
            # (generic/184 writes through a mknod'ed /dev/null) and setuid bits that count.
            # xfstests mounts through mount(8), which drops "dev" and "suid" before it runs
            # the helper: hence these names.
            f'export MOUNT_OPTIONS="-o {opts}"',
            f'export TEST_FS_MOUNT_OPTS="-o {opts}"',
            "# xfstests cannot re-create a fuse filesystem (its mkfs only empties the scratch",
            f"# mount): xfstests.sh reformats {self.scratch_dev} with mkfs.udaxfs between tests.",
        ])

    def prepare(self):
        """Images, local.config, syslog capture."""
        print(f"== images and config in {self.work}")
        self.teardown("start (left over from an earlier run)")
        for line in self.notes + self.bugs:
            print(f"  {line}")
        self.notes, self.bugs = [], []
        rc = self.mkfs_test()
        if rc != 0:
            print(f"{PROG}: mkfs.udaxfs failed on {self.test_dev}", file=sys.stderr)
            sys.exit(rc)
        rc = self.format_scratch()
        if rc != 0:
            print(f"{PROG}: mkfs.udaxfs failed on {self.scratch_dev}", file=sys.stderr)
            sys.exit(rc)
        config = self.local_config()
        for path in (f"{self.work}/local.config", f"{self.results}/local.config"):
            with open(path, "w") as f:
                f.write(config)
        for line in config.splitlines():
            print(f"  {line}")
        if self.syslog:
            self.syslog.start()

    # ------------------------------------------------ one test

    def run_check(self, t, out):
        """Runs ./check T under the reaper and the watchdog. Returns (check's exit status,
        timed out?, seconds)."""
        for path in (self.check_pid, self.check_rc):
            if os.path.exists(path):
                os.unlink(path)
        t0 = time.time()
        start_reaper(["./check", t], self.xfstests, out, self.daemons_log, self.check_pid,
                     self.check_rc, started=lambda pid: setattr(self, "reaper_pid", pid))
        timed_out, done_at, status = False, 0, None
        while True:
            pid, wstatus = os.waitpid(self.reaper_pid, os.WNOHANG)
            if pid:
                status = wstatus
                break
            now = int(time.time())
            if os.path.exists(self.check_rc):
                # check is done; the reaper waits for the daemons to exit after their umount
                done_at = done_at or now
                if now - done_at > 15:
                    self.teardown("after the test")
                    signal_all(children_of(self.reaper_pid), signal.SIGKILL)
            elif now - int(t0) >= self.args.timeout:
                timed_out = True
                sid = read_text(self.check_pid).strip()
                append_text(out, f" [timeout: killing the test after {self.args.timeout}s]\n")
                self.dump_hang(f"{self.result_base}/{t}.hang", sid)
                if sid:
                    self.kill_session(sid)
                self.teardown("timeout")
                signal_all(children_of(self.reaper_pid), signal.SIGKILL)
                break
            time.sleep(0.2)
        if status is None:
            status = os.waitpid(self.reaper_pid, 0)[1]
        self.reaper_pid = None
        reaper_rc = exit_code(os.waitstatus_to_exitcode(status))
        if not os.path.exists(self.check_rc) and reaper_rc in (129, 130, 143):
            interrupt()  # the reaper got the Ctrl-C (or a TERM/HUP) before we did
        rc = read_text(self.check_rc).strip()
        return (int(rc) if rc.isdigit() else 1), timed_out, int(time.time() - t0 + 0.5)

    def outcome(self, t, out, rc, timed_out):
        """(status, cause, not-run reason) of test T from check's output OUT."""
        base = f"{self.result_base}/{t}"
        lines = lines_of(out)
        if timed_out:
            hang = os.path.relpath(base, self.results) + ".hang"
            self.bug(f"hung: no progress within {self.args.timeout}s (see {hang})")
            return "fail", f"timed out after {self.args.timeout}s: killed (stacks in {hang})", ""
        if os.path.isfile(f"{base}.notrun"):
            first = read_text(f"{base}.notrun").split("\n", 1)[0]
            return "notrun", "", clean1(first)
        if rc == 0 and any(l.startswith("Passed all 1 tests") for l in lines):
            return "pass", "", ""
        if any(l.startswith("Failures:") for l in lines):
            line = next((l for l in lines if l.startswith(f"{t} ")), "")
            return "fail", failure_cause(t, line) or "failed", ""
        rest = [l for l in nonblank_lines(out) if "oom_score_adj" not in l]
        return "fail", f"check did not run the test: {rest[-1] if rest else ''}", ""

    def first_diff(self, t):
        """The first line that differs between the expected and the actual output."""
        bad = f"{self.result_base}/{t}.out.bad"
        if not os.path.isfile(bad):
            return ""
        r = subprocess.run(["diff", f"{self.xfstests}/tests/{t}.out", bad], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           errors="replace")
        return next((l for l in lines_of(r.stdout) if l[:1] in ("<", ">")), "")

    def check_daemons(self, new_daemons, timed_out):
        """A udaxfs daemon of this test that did not exit 0 is a bug, unless the watchdog or
        the teardown stopped it."""
        for line in new_daemons:
            parts = line.split(maxsplit=3)
            if len(parts) < 4:
                continue
            _, pid, comm, what = parts
            if pid in self.harness_killed or what == "exit status 0":
                continue
            if comm == "udaxfs" and not timed_out:
                self.bug(f"DAEMON DIED: udaxfs pid {pid} {what}")
            else:
                self.note(f"{comm} pid {pid}: {what}")  # mount helpers; daemons the watchdog stopped

    def check_dead_mount(self, t, out_path):
        base = f"{self.result_base}/{t}"
        for path in (out_path, f"{base}.out.bad", f"{base}.full"):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if b"Transport endpoint is not connected" in data or \
                    b"Software caused connection abort" in data:
                self.bug("DEAD MOUNT: ENOTCONN/ECONNABORTED in the test's output (daemon gone)")
                return

    def check_dmesg(self, t, new_daemons):
        """The kernel's log since xfstests' "run fstests T at" line. The kernel is shared with
        whatever else runs here: a udaxfs line counts only for a daemon of ours that died in
        this test; other reports are notes."""
        log = output_of(["dmesg"])
        if log is None:
            return
        lines = lines_of(log)
        marker = f"run fstests {t} at"
        starts = [i for i, l in enumerate(lines) if marker in l]
        if not starts:
            return
        pattern = re.compile(r"udaxfs\[[0-9]+\]|BUG:|WARNING:|Oops|hung_task|blocked for more than")
        hits = [l.strip() for l in lines[starts[-1]:] if pattern.search(l)][:5]
        for l in hits:
            m = re.search(r"udaxfs\[([0-9]+)\]", l)
            if m:
                if any(f" {m.group(1)} udaxfs " in d for d in new_daemons):
                    self.bug(f"KERNEL: {clean1(l)}")
            else:
                self.note(f"kernel: {clean1(l)}")

    def check_syslog(self, t, syslog_off, new_daemons):
        """Keeps the syslog lines of this test that are ours: those naming our images or a
        daemon of this test (others may run udaxfs here)."""
        path = f"{self.results}/syslog.log"
        if not os.path.isfile(path):
            return
        ours = [self.test_dev.encode(), self.scratch_dev.encode()]
        for d in new_daemons:
            parts = d.split()
            if len(parts) >= 3 and parts[2] == "udaxfs":
                ours.append(f"udaxfs[{parts[1]}]".encode())
        with open(path, "rb") as f:
            f.seek(syslog_off)
            data = f.read()
        mine = [l for l in data.split(b"\n") if any(o in l for o in ours)]
        if not mine:
            return
        os.makedirs(os.path.dirname(f"{self.result_base}/{t}"), exist_ok=True)
        with open(f"{self.result_base}/{t}.syslog", "wb") as f:
            f.write(b"".join(l + b"\n" for l in mine))
        first = mine[0].decode(errors="replace")
        self.note(f"syslog: {clean1(first.split(' ', 1)[-1])}")

    def check_image(self, t, which, image, reformat):
        """fsck.udaxfs IMAGE after test T; a problem is a bug (the first three failing images
        are kept). REFORMAT: reformat the image afterwards."""
        r = subprocess.run([self.fsck, image], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace")
        if r.returncode == 0:
            return
        append_text(f"{self.result_base}/{t}.fsck", f"== fsck.udaxfs {image} after {t}\n{r.stdout}")
        self.bug(f"FSCK {which}: {clean1(fsck_problem(r.stdout))}")
        copy = f"{t.replace('/', '-')}.{which.lower()}.img"
        if self.saved_images < 3 and \
                succeeds(["cp", "--sparse=always", image, f"{self.results}/{copy}"]):
            self.saved_images += 1
        if reformat:
            subprocess.run([self.mkfs, "-f", "-s", self.args.test_size, image],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            self.note(f"TEST image reformatted after its fsck failure (copy: {copy})")

    def run_test(self, t):
        """One test: appends its line to the TSV and prints one line."""
        out_path = f"{self.state}/out"
        self.notes, self.bugs, self.harness_killed = [], [], set()
        dlog_lines = len(lines_of(read_text(self.daemons_log)))
        syslog_path = f"{self.results}/syslog.log"
        syslog_off = os.path.getsize(syslog_path) if os.path.isfile(syslog_path) else 0
        if self.scratch_dirty:
            self.format_scratch()

        rc, timed_out, elapsed = self.run_check(t, out_path)
        self.teardown("after check exited")
        out = read_text(out_path)
        append_text(f"{self.results}/check.log", f"=== {t}\n" + "".join(
            l + "\n" for l in lines_of(out) if l and "oom_score_adj" not in l))

        status, cause, reason = self.outcome(t, out, rc, timed_out)
        diffl = self.first_diff(t)

        # anomalies
        new_daemons = lines_of(read_text(self.daemons_log))[dlog_lines:]
        self.check_daemons(new_daemons, timed_out)
        if not timed_out:
            self.check_dead_mount(t, out_path)
        self.check_dmesg(t, new_daemons)
        self.check_syslog(t, syslog_off, new_daemons)

        # fsck: TEST always, SCRATCH when the test ran
        self.check_image(t, "TEST", self.test_dev, reformat=True)
        if status != "notrun":
            self.check_image(t, "SCRATCH", self.scratch_dev, reformat=False)
        self.scratch_dirty = status != "notrun"

        if self.bugs and status != "fail":
            status, cause = "fail", f"BUG: {self.bugs[0]}"
        row = [t, status, str(elapsed), clean1(cause), reason, clean1(diffl),
               join_lines(self.bugs).replace("\t", " "), join_lines(self.notes).replace("\t", " ")]
        append_text(self.tsv, "\t".join(row) + "\n")
        self.counts[status] += 1
        if status == "pass":
            print(f"{t:<16} pass    {elapsed:>4}s")
        elif status == "notrun":
            print(f"{t:<16} notrun  {reason}")
        else:
            print(f"{t:<16} FAIL    {elapsed:>4}s  {clean1(cause)}")
        for b in self.bugs:
            print(f"                 !! {b}")

    # ------------------------------------------------ the whole run

    def run_all(self):
        for path in (self.tsv, f"{self.results}/check.log", self.daemons_log):
            open(path, "w").close()
        os.environ["HOST_OPTIONS"] = f"{self.work}/local.config"
        os.environ["RESULT_BASE"] = self.result_base
        self.run_start = int(time.time())
        self.started = time.strftime("%Y-%m-%d %H:%M:%S")
        self.loop_started = True
        print(f"== running {len(self.tests)} tests (timeout {self.args.timeout}s each); results in {self.results}")
        for t in self.tests:
            self.current_test = t
            try:
                self.run_test(t)
            except Exception:  # one test's oddity must not stop the run
                traceback.print_exc()
                print(f"{PROG}: internal error while running {t}", file=sys.stderr)
        self.notes, self.bugs = [], []
        self.finish()
        return 1 if self.counts["fail"] else 0

    def cleanup(self):
        """Stops the running check (its own session: a Ctrl-C does not reach it), unmounts,
        stops the reaper and the syslog capture. Runs on every way out; done once it has
        completed (a signal that cut it short gets it run again)."""
        if self.cleaned:
            return
        sid = read_text(self.check_pid).strip()
        if sid and not os.path.exists(self.check_rc):
            self.kill_session(sid)
        self.teardown("cleanup")
        if self.reaper_pid:
            signal_all([str(self.reaper_pid)], signal.SIGTERM)
            try:
                os.waitpid(self.reaper_pid, 0)
            except ChildProcessError:
                pass
            self.reaper_pid = None
        if self.syslog:
            self.syslog.stop()
        self.cleaned = True

    def final_fsck(self):
        path = f"{self.results}/final-fsck.txt"
        with open(path, "w") as f:
            rc = subprocess.run([self.fsck, self.test_dev], stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT).returncode
        verdict = fsck_verdict(read_text(path))
        if rc == 0:
            return f"clean ({verdict})"
        return f"PROBLEMS (exit {exit_code(rc)}): {verdict} -- see final-fsck.txt"

    def finish(self):
        self.finished = True
        self.cleanup()
        seconds = int(time.time()) - self.run_start
        final_fsck = self.final_fsck()
        if not self.args.keep_images:
            for image in (self.test_dev, self.scratch_dev):
                if os.path.lexists(image):
                    os.unlink(image)
        meta = dict(started=self.started, command=self.command_line,
                    udaxfs=output_of(["git", "-C", ROOT, "describe", "--always", "--dirty"]) or "unknown",
                    xfstests=output_of(["git", "-C", self.xfstests, "describe", "--always", "--dirty"]) or "unknown",
                    kernel=platform.release(), test_dev=self.test_dev,
                    scratch_dev=self.scratch_dev, test_size=self.args.test_size,
                    scratch_size=self.args.scratch_size, timeout=self.args.timeout,
                    seconds=seconds, interrupted=self.interrupted,
                    interrupted_test=self.current_test if self.interrupted else "",
                    final_fsck=final_fsck, harness_bugs=list(self.bugs), results=self.results)
        with open(f"{self.results}/meta.json", "w") as f:
            json.dump(meta, f, indent=2)
        print()
        write_summary(self.tsv, meta, f"{self.results}/summary.txt", f"{self.results}/summary.json")
        print()
        print(f"results: {self.results}/summary.txt, summary.json, results.tsv, check.log, xfstests/")
        print(f"xfstests: {self.counts['pass']} passed, {self.counts['fail']} failed, "
              f"{self.counts['notrun']} skipped")


def failure_cause(t, line):
    """The cause of a failure from check's line for T, e.g. "generic/001 5s ... [failed,
    exit status 1]- output mismatch (see ...)" -> "exit status 1; output mismatch"."""
    s = re.sub(r"^" + re.escape(t) + " *", "", line, count=1)
    s = re.sub(r" \(see [^)]*\)", "", s)
    s = re.sub(r"^ *[0-9]+s \.\.\. *", "", s, count=1)
    s = re.sub(r"\[failed, (exit status [0-9]+)\] *", r"\1; ", s, count=1)
    s = re.sub(r"(^|; )- ", r"\1", s, count=1)
    return re.sub(r"; *$", "", s, count=1)


# ---------------------------------------------------------------- summary

def read_tsv(tsv):
    rows = []
    with open(tsv) as f:
        for line in f:
            fld = line.rstrip("\n").split("\t")
            fld += [""] * (8 - len(fld))
            rows.append(dict(test=fld[0], status=fld[1], seconds=int(fld[2] or 0), cause=fld[3],
                             notrun_reason=fld[4], first_diff=fld[5],
                             bugs=[b for b in fld[6].split(" | ") if b],
                             notes=[n for n in fld[7].split(" | ") if n]))
    return rows


def write_summary(tsv, meta, out_txt, out_json):
    """summary.json and summary.txt from results.tsv and the run's META; prints the text."""
    rows = read_tsv(tsv)
    count = collections.Counter(r["status"] for r in rows)
    reasons = collections.Counter(r["notrun_reason"] for r in rows if r["status"] == "notrun")
    failed = [r for r in rows if r["status"] == "fail"]
    with_bugs = [r for r in rows if r["bugs"]]
    harness_bugs = meta.get("harness_bugs", [])
    summary = dict(meta, passed=count["pass"], failed=count["fail"], notrun=count["notrun"],
                   ran=len(rows),
                   failures=[dict(test=r["test"], cause=r["cause"], first_diff=r["first_diff"],
                                  bugs=r["bugs"]) for r in failed],
                   bugs=[dict(test=r["test"], bugs=r["bugs"]) for r in with_bugs]
                   + ([dict(test="(harness)", bugs=harness_bugs)] if harness_bugs else []),
                   notrun_reasons=[dict(reason=k, count=v) for k, v in reasons.most_common()],
                   tests=rows)
    with open(out_json, "w") as f:
        json.dump(summary, f, indent=2)

    def minutes(s):
        return f"{s // 60}m{s % 60:02d}s"

    lines = []
    p = lines.append
    interrupted = f"  (INTERRUPTED during {meta['interrupted_test']})" if meta.get("interrupted") else ""
    p(f"udaxfs xfstests run {meta['started']}{interrupted}")
    p(f"command:  {meta['command']}")
    p(f"udaxfs:   {meta['udaxfs']}    xfstests: {meta['xfstests']}    kernel: {meta['kernel']}")
    p(f"images:   TEST {meta['test_dev']} ({meta['test_size']}), SCRATCH {meta['scratch_dev']} "
      f"({meta['scratch_size']}); timeout {meta['timeout']} s per test")
    p("")
    p(f"{count['pass']} passed, {count['fail']} failed, {count['notrun']} not run "
      f"({len(rows)} tests) in {minutes(meta['seconds'])}")
    p(f"fsck.udaxfs of the TEST image at the end: {meta['final_fsck']}")
    p("")
    p(f"Failures ({len(failed)}):")
    for r in failed:
        p(f"  {r['test']:<14} {r['cause']}" + (f"   [{r['first_diff']}]" if r["first_diff"] else ""))
    p("")
    p(f"BUGS (daemon deaths, dead mounts, fsck problems, kernel reports, hangs): "
      f"{len(with_bugs) + bool(harness_bugs)}")
    for r in with_bugs:
        for b in r["bugs"]:
            p(f"  {r['test']:<14} {b}")
    for b in harness_bugs:
        p(f"  {'(harness)':<14} {b}")
    noted = [r for r in rows if r["notes"]]
    if noted:
        p("")
        p("Notes:")
        for r in noted:
            for n in r["notes"]:
                p(f"  {r['test']:<14} {n}")
    p("")
    p("Not run, by reason:")
    for k, v in reasons.most_common():
        p(f"  {v:4d}  {k}")
    p("")
    p(f"Failing tests: {' '.join(r['test'] for r in failed)}")
    text = "".join(l + "\n" for l in lines)
    with open(out_txt, "w") as f:
        f.write(text)
    print(text, end="")


# ---------------------------------------------------------------- set-up steps

def check_environment():
    if os.geteuid() != 0:
        die("must run as root (xfstests mounts and creates users)")
    try:
        fuse_is_char = stat.S_ISCHR(os.stat("/dev/fuse").st_mode)
    except OSError:
        fuse_is_char = False
    if not fuse_is_char:
        die("/dev/fuse is missing (modprobe fuse)")
    for c in ("xfs_io", "fusermount3", "findmnt"):
        if not shutil.which(c):
            die(f"{c} is missing (apt-get install python3 xfsprogs fuse3 util-linux)")


def lock_work(work):
    """One run per WORK directory. The lock file stays open (and locked) until we exit."""
    f = open(f"{work}/.lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        die(f"another xfstests.sh run uses {work}")
    return f


def must(cmd):
    """Runs CMD; if it fails, exits with its status (as the bash version's set -e did)."""
    rc = subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode
    if rc != 0:
        print(f"{PROG}: {' '.join(cmd)} failed (exit {exit_code(rc)})", file=sys.stderr)
        sys.exit(exit_code(rc))


def install(build):
    print(f"== installing udaxfs from {build}")
    r = subprocess.run([f"{ROOT}/scripts/install.sh", build], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, text=True, errors="replace")
    for line in lines_of(r.stdout):
        print(f"  {line}")
    if r.returncode != 0:
        print(f"{PROG}: scripts/install.sh failed (exit {exit_code(r.returncode)})", file=sys.stderr)
        sys.exit(exit_code(r.returncode))


def create_users():
    print("== users")
    if not succeeds(["getent", "group", "fsgqa"]):
        must(["groupadd", "fsgqa"])
    if not succeeds(["getent", "passwd", "fsgqa"]):
        must(["useradd", "-m", "-g", "fsgqa", "fsgqa"])
    if not succeeds(["getent", "passwd", "fsgqa2"]):
        must(["useradd", "fsgqa2"])
    if not succeeds(["getent", "passwd", "123456-fsgqa"]) and \
            subprocess.run(["useradd", "123456-fsgqa"], stdin=subprocess.DEVNULL).returncode != 0:
        print("  could not create 123456-fsgqa (a few tests will not run)")
    print("  fsgqa fsgqa2 123456-fsgqa")


def find_tools():
    """mkfs.udaxfs and fsck.udaxfs, also in the sbin directories a sudo PATH may lack."""
    os.environ["PATH"] = "/usr/local/sbin:/usr/sbin:/sbin:" + os.environ.get("PATH", "")
    mkfs = shutil.which("mkfs.udaxfs") or die("mkfs.udaxfs not found (install it: scripts/install.sh)")
    fsck = shutil.which("fsck.udaxfs") or die("fsck.udaxfs not found")
    if not os.access("/sbin/mount.fuse.udaxfs", os.X_OK):
        die("/sbin/mount.fuse.udaxfs is missing (scripts/install.sh)")
    return mkfs, fsck


def make_dirs(args):
    """Resolves and creates the image, results and mount directories."""
    args.image_dir = os.path.realpath(args.image_dir)
    os.makedirs(args.image_dir, exist_ok=True)
    results = args.results or f"{args.work}/results/{time.strftime('%Y%m%d-%H%M%S')}"
    os.makedirs(results, exist_ok=True)
    args.results = os.path.realpath(results)
    shutil.rmtree(f"{args.work}/run", ignore_errors=True)
    for d in (f"{args.work}/run", f"{args.work}/mnt/test", f"{args.work}/mnt/scratch",
              f"{args.results}/xfstests"):
        os.makedirs(d, exist_ok=True)


# ---------------------------------------------------------------- main



def main(argv):
    # Until the run has something to clean up, a Ctrl-C just ends us (no traceback).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.reconfigure(line_buffering=True)  # our lines and the tools' interleave right
    command_line = "scripts/xfstests.sh" + "".join(" " + bash_quote(a) for a in argv)
    args = parse_args(argv)
    build_xfstests(args.xfstests)
    tests = test_list(args)
    if args.list:
        print("\n".join(tests))
        return 0

    check_environment()
    args.work = os.path.realpath(args.work)
    os.makedirs(args.work, exist_ok=True)
    lock = lock_work(args.work)  # held (open) until we exit
    if args.install:
        install(args.build)
    mkfs, fsck = find_tools()
    create_users()
    make_dirs(args)

    run = Run(args, tests, command_line, mkfs, fsck)
    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)
    try:
        run.prepare()
        return run.run_all()
    except Interrupted:
        run.interrupted = True
        print()
        print(f"{PROG}: interrupted: stopping the running test and unmounting")
        run.cleanup()
        if run.loop_started and not run.finished:
            run.finish()
        return 130
    finally:
        # every way out: no udaxfs mount is left behind (and no signal cuts that short)
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        run.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
