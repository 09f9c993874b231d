#!/usr/bin/env bash
# xfstests.sh -- runs xfstests (fstests) against udaxfs, one test at a time.
#
#   sudo scripts/xfstests.sh [OPTIONS] XFSTESTS_DIR [TEST...]
#
# XFSTESTS_DIR is your own xfstests checkout (runs `make` in it first if it is not built).
# Installs udaxfs from a build (scripts/install.sh), creates the users xfstests needs
# (fsgqa, fsgqa2, 123456-fsgqa), formats a TEST and a SCRATCH image with mkfs.udaxfs,
# writes WORK/local.config (FSTYP=fuse, FUSE_SUBTYP=.udaxfs) and runs each test as its own
# `./check TEST` under a watchdog. Default: the group generic/quick.
#
# Options:
#   -g, --group GROUP        run GROUP (repeatable): generic/quick, or quick (= generic/quick)
#   -x, --exclude-group G    leave out the tests of group G (repeatable)
#   -e, --exclude TEST       leave out TEST, e.g. generic/001 (repeatable)
#   -b, --build DIR          udaxfs build to install (default build/)
#       --no-install         use the udaxfs tools already installed
#   -w, --work DIR           mount points, config, results (default /var/tmp/udaxfs-xfstests)
#   -r, --results DIR        results (default WORK/results/YYYYmmdd-HHMMSS)
#   -i, --image-dir DIR      where the TEST and SCRATCH images go (default
#                            /dev/shm/udaxfs-xfstests: an emulated pmem region should live
#                            in memory; on a disk file every commit's msync reaches the disk)
#       --test-size SIZE     TEST image size (default 4G, sparse)
#       --scratch-size SIZE  SCRATCH image size (default 4G, sparse)
#   -t, --timeout SECONDS    per-test time limit (default 300); a test past it is killed,
#                            its mounts are torn down (FUSE abort, umount -l) and it fails
#   -o, --mount-options OPTS extra mount options for both mounts (e.g. cache=none); both
#                            always get allow_dev,allow_suid (dev,suid through mount(8)),
#                            which xfstests expects of a disk filesystem (udaxfs' own
#                            default is nosuid,nodev)
#       --keep-images        leave the images in place after the run (default: removed)
#       --no-syslog          do not capture the daemons' syslog when nothing listens on /dev/log
#   -l, --list               print the tests that would run, and exit
#   -h, --help
#
# Per test: the SCRATCH image is reformatted when the previous test ran (with FSTYP=fuse,
# xfstests' own mkfs only empties the mounted scratch fs), the daemons' exit statuses are
# watched (a daemon killed by a signal is a bug), and after the test fsck.udaxfs checks the
# TEST image (and SCRATCH if the test ran); problems fail the test. At the end fsck.udaxfs
# checks the TEST image once more. No udaxfs mount is left behind, even on Ctrl-C.
#
# Results: RESULTS/summary.txt and summary.json (counts, failures with their cause,
# not-run reasons, bugs, run time, fsck verdict), RESULTS/results.tsv (one line a test),
# RESULTS/check.log (all check output), RESULTS/xfstests/ (xfstests' own .out.bad, .full,
# .dmesg, plus .hang stacks, .fsck, .syslog). The last line printed is
# "xfstests: N passed, M failed, K skipped". Exit status: 0 no failure, 1 failures,
# 2 set-up error, 130 interrupted.
#
# By hand afterwards: cd XFSTESTS_DIR && HOST_OPTIONS=WORK/local.config ./check generic/001
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command_line="scripts/xfstests.sh${*:+ $(printf '%q ' "$@")}"
command_line=${command_line% }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "xfstests.sh: $*" >&2; exit 2; }

groups=() xgroups=() excludes=() tests=()
build=$ROOT/build install=1 work=/var/tmp/udaxfs-xfstests results=''
test_size=4G scratch_size=4G timeout=300 mount_opts='' keep_images=0 syslog=1 image_dir=/dev/shm/udaxfs-xfstests list_only=0
xfstests=''
while (($#)); do
  case $1 in
    -h|--help) usage; exit 0 ;;
    -g|--group) groups+=("${2:?$1 needs a value}"); shift ;;
    -x|--exclude-group) xgroups+=("${2:?$1 needs a value}"); shift ;;
    -e|--exclude) excludes+=("${2:?$1 needs a value}"); shift ;;
    -b|--build) build=${2:?$1 needs a value}; shift ;;
    --no-install) install=0 ;;
    -w|--work) work=${2:?$1 needs a value}; shift ;;
    -r|--results) results=${2:?$1 needs a value}; shift ;;
    --test-size) test_size=${2:?$1 needs a value}; shift ;;
    --scratch-size) scratch_size=${2:?$1 needs a value}; shift ;;
    -t|--timeout) timeout=${2:?$1 needs a value}; shift ;;
    -o|--mount-options) mount_opts=${2:?$1 needs a value}; shift ;;
    --keep-images) keep_images=1 ;;
    -i|--image-dir) image_dir=${2:?$1 needs a value}; shift ;;
    --no-syslog) syslog=0 ;;
    -l|--list) list_only=1 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) if [[ -z $xfstests ]]; then xfstests=$1; else tests+=("$1"); fi ;;
  esac
  shift
done
[[ -n $xfstests ]] || { usage >&2; exit 2; }
[[ $timeout =~ ^[0-9]+$ && $timeout -gt 0 ]] || die "--timeout wants a number of seconds"
[[ -d $xfstests && -x $xfstests/check ]] || die "$xfstests is not an xfstests checkout (no ./check)"
xfstests=$(realpath "$xfstests")
[[ $build = /* ]] || build=$PWD/$build
((${#groups[@]} || ${#tests[@]})) || groups=(generic/quick)

# ---------------------------------------------------------------- test list

# The tests of GROUP (DIR/GROUP or GROUP = generic/GROUP), from xfstests' group.list files.
group_tests() {
  local g=$1 dir=generic name
  [[ $g == */* ]] && { dir=${g%%/*}; name=${g#*/}; } || name=$g
  local gl=$xfstests/tests/$dir/group.list
  [[ -f $gl ]] || die "no $gl (is xfstests built?)"
  awk -v g="$name" -v d="$dir" '!/^#/ && NF { for (i = 2; i <= NF; i++) if ($i == g) { print d "/" $1; next } }' "$gl"
}

build_xfstests() {
  if [[ -x $xfstests/ltp/fsstress && -f $xfstests/tests/generic/group.list ]]; then return; fi
  echo "xfstests.sh: $xfstests is not built: running make there (it needs its build"
  echo "  dependencies: autoconf automake libtool-bin make gcc libacl1-dev libattr1-dev"
  echo "  libaio-dev uuid-dev xfslibs-dev libgdbm-dev liburing-dev libcap-dev; and to run:"
  echo "  xfsprogs e2fsprogs attr acl quota bc psmisc gawk fio dbench)"
  make -C "$xfstests" -j"$(nproc)" >"${TMPDIR:-/tmp}/xfstests-make.log" 2>&1 ||
    die "make failed in $xfstests; see ${TMPDIR:-/tmp}/xfstests-make.log"
}

build_xfstests
list=()
declare -A seen=() excluded=()
for g in "${xgroups[@]}"; do while read -r t; do excluded[$t]=1; done < <(group_tests "$g"); done
for t in "${excludes[@]}"; do [[ $t == */* ]] || t=generic/$t; excluded[$t]=1; done
add_test() {
  local t=$1
  [[ $t == */* ]] || t=generic/$t
  [[ -f $xfstests/tests/$t ]] || die "no test $t in $xfstests/tests"
  [[ -n ${seen[$t]:-} || -n ${excluded[$t]:-} ]] && return
  seen[$t]=1
  list+=("$t")
}
for g in "${groups[@]}"; do
  mapfile -t gt < <(group_tests "$g")
  ((${#gt[@]})) || die "group $g has no tests"
  for t in "${gt[@]}"; do add_test "$t"; done
done
for t in "${tests[@]}"; do add_test "$t"; done
((${#list[@]})) || die "no test to run"
if ((list_only)); then printf '%s\n' "${list[@]}"; exit 0; fi

# ---------------------------------------------------------------- set-up

[[ $(id -u) -eq 0 ]] || die "must run as root (xfstests mounts and creates users)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing (modprobe fuse)"
for c in python3 xfs_io fusermount3 findmnt; do
  command -v "$c" >/dev/null || die "$c is missing (apt-get install python3 xfsprogs fuse3 util-linux)"
done

work=$(realpath -m "$work")
mkdir -p "$work"
exec 9>"$work/.lock"
flock -n 9 || die "another xfstests.sh run uses $work"

if ((install)); then
  echo "== installing udaxfs from $build"
  "$ROOT/scripts/install.sh" "$build" | sed 's/^/  /'
fi
PATH=/usr/local/sbin:/usr/sbin:/sbin:$PATH
MKFS=$(command -v mkfs.udaxfs) || die "mkfs.udaxfs not found (install it: scripts/install.sh)"
FSCK=$(command -v fsck.udaxfs) || die "fsck.udaxfs not found"
[[ -x /sbin/mount.fuse.udaxfs ]] || die "/sbin/mount.fuse.udaxfs is missing (scripts/install.sh)"

echo "== users"
getent group fsgqa >/dev/null || groupadd fsgqa
getent passwd fsgqa >/dev/null || useradd -m -g fsgqa fsgqa
getent passwd fsgqa2 >/dev/null || useradd fsgqa2
getent passwd 123456-fsgqa >/dev/null || useradd 123456-fsgqa ||
  echo "  could not create 123456-fsgqa (a few tests will not run)"
echo "  fsgqa fsgqa2 123456-fsgqa"

image_dir=$(realpath -m "$image_dir")
mkdir -p "$image_dir"
TEST_DEV=$image_dir/test.img SCRATCH_DEV=$image_dir/scratch.img
MNT_ROOT=$work/mnt
TEST_DIR=$MNT_ROOT/test SCRATCH_MNT=$MNT_ROOT/scratch
STATE=$work/run
results=${results:-$work/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$results"
results=$(realpath "$results")
RESULT_BASE=$results/xfstests
rm -rf "$STATE"
mkdir -p "$STATE" "$TEST_DIR" "$SCRATCH_MNT" "$RESULT_BASE"

# ---------------------------------------------------------------- mounts and daemons

note() { printf '%s\n' "$*" >>"$STATE/notes"; }
bug() { printf '%s\n' "$*" >>"$STATE/bugs"; }

# Our mounts, last mounted first: "MOUNTPOINT<TAB>MAJ:MIN<TAB>FSTYPE". Ours: under
# MNT_ROOT, or with one of our images as source.
our_mounts() {
  awk -v w="$MNT_ROOT/" -v t="$TEST_DEV" -v s="$SCRATCH_DEV" '
    { for (i = 7; i <= NF && $i != "-"; i++) ; mp = $5; gsub(/\\040/, " ", mp)
      if (index(mp "/", w) == 1 || $(i + 2) == t || $(i + 2) == s) print mp "\t" $3 "\t" $(i + 1) }
  ' /proc/self/mountinfo | tac
}

abort_conn() {  # abort_conn MAJ:MIN -- fails every request of that FUSE connection
  local f=/sys/fs/fuse/connections/${1#*:}/abort
  [[ ${1%%:*} == 0 && -w $f ]] && echo 1 >"$f" 2>/dev/null
  return 0
}

# pids of udaxfs daemons holding IMAGE open
holders() {
  local p pid
  local c
  for p in /proc/[0-9]*; do
    c=''
    read -r c 2>/dev/null <"$p/comm" || continue
    [[ $c == udaxfs ]] || continue
    pid=${p#/proc/}
    readlink "$p"/fd/* 2>/dev/null | grep -qxF -- "$1" && echo "$pid"
  done
  return 0
}

# Kernel and user stacks of a hung test, for the report.
dump_hang() (
  set +e
  out=$1 sid=$2
  daemons=$(holders "$TEST_DEV"; holders "$SCRATCH_DEV")
  pids=$(sess_pids "$sid"; echo "$daemons")
  {
    echo "== processes of the test (session $sid) and the udaxfs daemons"
    ps -o pid,ppid,stat,wchan:30,etimes,args -p "$(echo $pids | tr ' ' ,)"
    for p in $pids; do
      echo "== kernel stacks of $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-150)"
      for t in /proc/"$p"/task/*; do echo "-- ${t##*/}"; cat "$t/stack" 2>/dev/null; done
    done
    if command -v gdb >/dev/null; then
      for pid in $daemons; do
        echo "== gdb backtrace of udaxfs $pid"
        timeout -s KILL 60 gdb -p "$pid" -batch -nx -ex 'thread apply all bt' 2>&1 | grep -v '^\[New LWP' | head -n 400
      done
    fi
  } >"$out" 2>&1
  exit 0
)

# pids of the processes of session SID
sess_pids() {
  local f line rest s
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue
    rest=${line##*) }
    read -r _ _ _ s _ <<<"$rest"
    [[ $s == "$1" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
  done
  return 0
}

# Kills session SID: TERM, then KILL.
kill_session() (
  set +e
  sid=$1
  pids=$(sess_pids "$sid")
  [[ -n $pids ]] || return 0
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 50); do pids=$(sess_pids "$sid"); [[ -z $pids ]] && return 0; sleep 0.1; done
  kill -KILL $pids 2>/dev/null || true
  for _ in $(seq 100); do [[ -z $(sess_pids "$sid") ]] && return 0; sleep 0.1; done
  note "processes of the test session $sid did not die: $(sess_pids "$sid" | tr '\n' ' ')"
  exit 0
)

# Unmounts everything of ours (a mount that does not answer gets its FUSE connection
# aborted, a busy one a lazy unmount), detaches loop devices on files in our mounts, then
# waits for the daemons of our images to exit (killing those that do not). WHY goes in
# the notes when there was something to do.
teardown() (
  set +e
  why=$1
  while read -r dev_loop; do
    [[ -n $dev_loop ]] || continue
    losetup -d "$dev_loop" 2>/dev/null && note "$why: detached $dev_loop (a file in our mounts)"
  done < <(losetup -ln -O NAME,BACK-FILE 2>/dev/null | awk -v w="$MNT_ROOT/" 'index($2, w) == 1 { print $1 }')
  while IFS=$'\t' read -r mp dev fstype; do
    [[ -n $mp ]] || continue
    note "$why: $mp was still mounted ($fstype)"
    if [[ $fstype == fuse* ]] && ! timeout -s KILL 5 stat -f "$mp" >/dev/null 2>&1; then
      note "$why: $mp does not answer (dead or hung daemon): aborting its FUSE connection"
      abort_conn "$dev"
    fi
    timeout -s KILL 20 umount "$mp" 2>/dev/null && continue
    abort_conn "$dev"
    umount -l "$mp" 2>/dev/null || fusermount3 -uz "$mp" 2>/dev/null ||
      note "$why: could not unmount $mp"
  done < <(our_mounts)
  for img in "$TEST_DEV" "$SCRATCH_DEV"; do
    for _ in $(seq 100); do [[ -z $(holders "$img") ]] && break; sleep 0.1; done
    pids=$(holders "$img" | tr '\n' ' ')
    [[ -n $pids ]] || continue
    bug "$why: udaxfs daemon(s) $pids of $img still running 10 s after unmount: killed"
    echo "$pids" >>"$STATE/harness-killed"
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 50); do [[ -z $(holders "$img") ]] && break; sleep 0.1; done
    pids=$(holders "$img" | tr '\n' ' ')
    [[ -n $pids ]] && { kill -KILL $pids 2>/dev/null || true; }
    for _ in $(seq 50); do [[ -z $(holders "$img") ]] && break; sleep 0.1; done
  done
  exit 0
)

# ---------------------------------------------------------------- helpers in python

# reaper.py LOG PIDFILE RCFILE -- CMD...: runs CMD in a new session as a child subreaper,
# so that the daemonized udaxfs daemons stay our descendants: logs how every udaxfs
# daemon (and mount helper) ended; writes CMD's pid and, when it ends, its status; exits
# once no descendant is left.
cat >"$STATE/reaper.py" <<'PY'
import ctypes, os, signal, sys, time
log_path, pid_path, rc_path = sys.argv[1:4]
cmd = sys.argv[5:]
signal.signal(signal.SIGINT, signal.SIG_DFL)
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
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
    except InterruptedError:
        continue
    if info is None:
        continue
    pid, code, status = info.si_pid, info.si_code, info.si_status
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        comm = "?"
    os.waitpid(pid, 0)
    if pid == child:
        rc = status if code == os.CLD_EXITED else 128 + status
        with open(rc_path, "w") as f:
            f.write(f"{rc}\n")
        continue
    if comm != "udaxfs" and not comm.startswith("mount.udaxfs") and not comm.startswith("mount.fuse.uda"):
        continue
    if code == os.CLD_EXITED:
        what = f"exit status {status}"
    else:
        what = f"killed by {signal.Signals(status).name}" + (" (core dumped)" if code == os.CLD_DUMPED else "")
    with open(log_path, "a") as f:
        f.write(f"{time.strftime('%H:%M:%S')} {pid} {comm} {what}\n")
sys.exit(rc)
PY

# syslogd.py SOCKET OUT: a minimal /dev/log listener (the daemons log to syslog once
# daemonized: their stderr is gone).
cat >"$STATE/syslogd.py" <<'PY'
import os, signal, socket, sys, time
path, out = sys.argv[1:3]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(out, "ab", buffering=0) as f:
    while True:
        data = s.recv(65536).rstrip(b"\0\n")
        f.write(time.strftime("%H:%M:%S ").encode() + data + b"\n")
PY

# summary.py TSV META_JSON OUT_TXT OUT_JSON: the results files.
cat >"$STATE/summary.py" <<'PY'
import collections, json, sys
tsv, meta_path, out_txt, out_json = sys.argv[1:5]
meta = json.load(open(meta_path))
rows = []
for line in open(tsv):
    f = line.rstrip("\n").split("\t")
    f += [""] * (8 - len(f))
    rows.append(dict(test=f[0], status=f[1], seconds=int(f[2] or 0), cause=f[3],
                     notrun_reason=f[4], first_diff=f[5],
                     bugs=[b for b in f[6].split(" | ") if b], notes=[n for n in f[7].split(" | ") if n]))
count = collections.Counter(r["status"] for r in rows)
reasons = collections.Counter(r["notrun_reason"] for r in rows if r["status"] == "notrun")
failed = [r for r in rows if r["status"] == "fail"]
with_bugs = [r for r in rows if r["bugs"]]
summary = dict(meta, passed=count["pass"], failed=count["fail"], notrun=count["notrun"],
               ran=len(rows), failures=[dict(test=r["test"], cause=r["cause"], first_diff=r["first_diff"], bugs=r["bugs"]) for r in failed],
               bugs=[dict(test=r["test"], bugs=r["bugs"]) for r in with_bugs] + [dict(test="(harness)", bugs=meta.get("harness_bugs", []))] * bool(meta.get("harness_bugs")),
               notrun_reasons=[dict(reason=k, count=v) for k, v in reasons.most_common()],
               tests=rows)
json.dump(summary, open(out_json, "w"), indent=2)
m = lambda s: f"{s // 60}m{s % 60:02d}s"
with open(out_txt, "w") as o:
    p = lambda *a: print(*a, file=o)
    p(f"udaxfs xfstests run {meta['started']}{'  (INTERRUPTED during ' + meta['interrupted_test'] + ')' if meta.get('interrupted') else ''}")
    p(f"command:  {meta['command']}")
    p(f"udaxfs:   {meta['udaxfs']}    xfstests: {meta['xfstests']}    kernel: {meta['kernel']}")
    p(f"images:   TEST {meta['test_dev']} ({meta['test_size']}), SCRATCH {meta['scratch_dev']} ({meta['scratch_size']}); timeout {meta['timeout']} s per test")
    p()
    p(f"{count['pass']} passed, {count['fail']} failed, {count['notrun']} not run ({len(rows)} tests) in {m(meta['seconds'])}")
    p(f"fsck.udaxfs of the TEST image at the end: {meta['final_fsck']}")
    p()
    p(f"Failures ({len(failed)}):")
    for r in failed:
        p(f"  {r['test']:<14} {r['cause']}" + (f"   [{r['first_diff']}]" if r["first_diff"] else ""))
    p()
    p(f"BUGS (daemon deaths, dead mounts, fsck problems, kernel reports, hangs): {len(with_bugs) + bool(meta.get('harness_bugs'))}")
    for r in with_bugs:
        for b in r["bugs"]:
            p(f"  {r['test']:<14} {b}")
    for b in meta.get("harness_bugs", []):
        p(f"  {'(harness)':<14} {b}")
    notes = [r for r in rows if r["notes"]]
    if notes:
        p()
        p("Notes:")
        for r in notes:
            for n in r["notes"]:
                p(f"  {r['test']:<14} {n}")
    p()
    p("Not run, by reason:")
    for k, v in reasons.most_common():
        p(f"  {v:4d}  {k}")
    p()
    p(f"Failing tests: {' '.join(r['test'] for r in failed)}")
print(open(out_txt).read(), end="")
PY

SYSLOG_PID='' SYSLOG_SOCK=''
start_syslog() {
  ((syslog)) || return 0
  [[ -e /dev/log ]] && { echo "  /dev/log exists: the daemons' messages go to the system log"; return 0; }
  python3 "$STATE/syslogd.py" /dev/log "$results/syslog.log" </dev/null &
  SYSLOG_PID=$!
  for _ in $(seq 50); do [[ -S /dev/log ]] && break; sleep 0.1; done
  if [[ -S /dev/log ]]; then
    SYSLOG_SOCK=$(stat -c %i /dev/log)
    echo "  capturing syslog (/dev/log) into $results/syslog.log"
  else
    SYSLOG_PID=''
  fi
}
stop_syslog() {
  [[ -n $SYSLOG_PID ]] || return 0
  kill "$SYSLOG_PID" 2>/dev/null || true
  wait "$SYSLOG_PID" 2>/dev/null || true
  [[ -S /dev/log && $(stat -c %i /dev/log) == "$SYSLOG_SOCK" ]] && rm -f /dev/log
  SYSLOG_PID=''
  return 0
}

# ---------------------------------------------------------------- interruption

REAPER_PID='' CURRENT_TEST='' INTERRUPTED=0 CLEANED=0 FINISHED=0 LOOP_STARTED=0
cleanup() {
  ((CLEANED)) && return 0
  CLEANED=1
  set +e
  # the running check (its own session: a Ctrl-C does not reach it)
  if [[ -s $STATE/check.pid && ! -e $STATE/check.rc ]]; then
    kill_session "$(cat "$STATE/check.pid")"
  fi
  teardown "cleanup"
  [[ -n $REAPER_PID ]] && { kill "$REAPER_PID" 2>/dev/null; wait "$REAPER_PID" 2>/dev/null; }
  stop_syslog
  return 0
}
on_signal() {
  trap '' INT TERM HUP
  INTERRUPTED=1
  echo
  echo "xfstests.sh: interrupted: stopping the running test and unmounting"
  cleanup
  ((FINISHED || !LOOP_STARTED)) || finish
  exit 130
}
trap on_signal INT TERM HUP
trap cleanup EXIT

# ---------------------------------------------------------------- images and config

echo "== images and config in $work"
teardown "start (left over from an earlier run)"
cat "$STATE/notes" "$STATE/bugs" 2>/dev/null | sed "s/^/  /" || true
rm -f "$STATE/notes" "$STATE/bugs"
"$MKFS" -f -s "$test_size" "$TEST_DEV" | sed 's/^/  /' 
format_scratch() { "$MKFS" -f -s "$scratch_size" "$SCRATCH_DEV" >/dev/null; }
format_scratch
{
  echo "# written by udaxfs scripts/xfstests.sh"
  echo "export FSTYP=fuse"
  echo "export FUSE_SUBTYP=.udaxfs"
  echo "export TEST_DEV=$TEST_DEV"
  echo "export TEST_DIR=$TEST_DIR"
  echo "export SCRATCH_DEV=$SCRATCH_DEV"
  echo "export SCRATCH_MNT=$SCRATCH_MNT"
  # allow_dev,allow_suid: udaxfs mounts nosuid,nodev unless asked, and xfstests expects
  # what a disk filesystem mounted by root has: device nodes that work (generic/184 writes
  # through a mknod'ed /dev/null) and setuid bits that count. xfstests mounts through
  # mount(8), which drops "dev" and "suid" before it runs the helper: hence these names.
  echo "export MOUNT_OPTIONS=\"-o allow_dev,allow_suid${mount_opts:+,$mount_opts}\""
  echo "export TEST_FS_MOUNT_OPTS=\"-o allow_dev,allow_suid${mount_opts:+,$mount_opts}\""
  echo "# xfstests cannot re-create a fuse filesystem (its mkfs only empties the scratch"
  echo "# mount): xfstests.sh reformats $SCRATCH_DEV with mkfs.udaxfs between tests."
} >"$work/local.config"
cp "$work/local.config" "$results/local.config"
sed 's/^/  /' "$work/local.config"
start_syslog

# ---------------------------------------------------------------- running

TSV=$results/results.tsv
: >"$TSV"
: >"$results/check.log"
: >"$STATE/daemons.log"
export HOST_OPTIONS=$work/local.config RESULT_BASE
run_start=$(date +%s)
started=$(date '+%F %T')
clean1() { tr '\t\n' '  ' <<<"$1" | sed 's/ *$//' | cut -c1-300; }
join_lines() { [[ -s $1 ]] && paste -sd'|' "$1" | sed 's/|/ | /g'; return 0; }
fsck_verdict() { grep -v '^\s*$' "$1" | tail -n1; }
fsck_problem() {  # first line and verdict of a failed fsck
  local first last
  first=$(grep -v '^\s*$' "$1" | head -n1) last=$(fsck_verdict "$1")
  [[ $first == "$last" ]] && echo "$last" || echo "$first ... $last"
}

# run_test TEST: one test; appends its line to the TSV and prints one line.
run_test() {
  local t=$1 base=$RESULT_BASE/$1 out=$STATE/out rc timed_out=0 t0 t1 elapsed status cause='' reason='' diffl=''
  local dlog_lines syslog_off=0 harness_killed sid done_at=0 now
  rm -f "$STATE/notes" "$STATE/bugs" "$STATE/check.pid" "$STATE/check.rc" "$STATE/harness-killed"
  dlog_lines=$(wc -l <"$STATE/daemons.log")
  [[ -f $results/syslog.log ]] && syslog_off=$(stat -c %s "$results/syslog.log")
  ((scratch_dirty)) && format_scratch
  t0=$(date +%s.%N)
  (cd "$xfstests" && exec python3 "$STATE/reaper.py" "$STATE/daemons.log" "$STATE/check.pid" "$STATE/check.rc" -- ./check "$t") \
    >"$out" 2>&1 </dev/null &
  REAPER_PID=$!
  while kill -0 "$REAPER_PID" 2>/dev/null; do
    now=$(date +%s)
    if [[ -f $STATE/check.rc ]]; then
      # check is done; the reaper waits for the daemons to exit after their umount
      ((done_at)) || done_at=$now
      if ((now - done_at > 15)); then
        teardown "after the test"
        { ps -o pid= --ppid "$REAPER_PID" | xargs -r kill -KILL; } 2>/dev/null || true
      fi
    elif ((now - ${t0%.*} >= timeout)); then
      timed_out=1
      sid=$(cat "$STATE/check.pid" 2>/dev/null || true)
      echo " [timeout: killing the test after ${timeout}s]" >>"$out"
      dump_hang "$base.hang" "$sid"
      [[ -n $sid ]] && kill_session "$sid"
      teardown "timeout"
      { ps -o pid= --ppid "$REAPER_PID" | xargs -r kill -KILL; } 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  local reaper_rc=0
  wait "$REAPER_PID" 2>/dev/null || reaper_rc=$?
  REAPER_PID=''
  if [[ ! -f $STATE/check.rc ]] && ((reaper_rc == 130 || reaper_rc == 143 || reaper_rc == 129)); then
    # the reaper got our Ctrl-C (we may not: a shell started in the background ignores it)
    on_signal
  fi
  t1=$(date +%s.%N)
  elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", b - a + 0.5 }')
  rc=$(cat "$STATE/check.rc" 2>/dev/null || echo 1)
  teardown "after check exited"
  { echo "=== $t"; grep -v 'oom_score_adj\|^$' "$out"; } >>"$results/check.log"

  # outcome
  if ((timed_out)); then
    status=fail cause="timed out after ${timeout}s: killed (stacks in ${base#"$results/"}.hang)"
    bug "hung: no progress within ${timeout}s (see ${base#"$results/"}.hang)"
  elif [[ -f $base.notrun ]]; then
    status=notrun reason=$(clean1 "$(head -n1 "$base.notrun")")
  elif ((rc == 0)) && grep -q '^Passed all 1 tests' "$out"; then
    status=pass
  elif grep -q '^Failures:' "$out"; then
    status=fail
    cause=$(grep -m1 "^$t " "$out" | sed -E "s|^$t *||; s| \(see [^)]*\)||g; s|^ *[0-9]+s \.\.\. *||;
      s|\[failed, (exit status [0-9]+)\] *|\1; |; s|(^\|; )- |\1|; s|; *$||")
    [[ -n $cause ]] || cause="failed"
  else
    status=fail cause="check did not run the test: $(grep -v '^\s*$' "$out" | grep -v oom_score_adj | tail -n1)"
  fi
  if [[ -f $base.out.bad ]]; then
    diffl=$(diff "$xfstests/tests/$t.out" "$base.out.bad" 2>/dev/null | grep -m1 '^[<>]' || true)
  fi

  # anomalies
  harness_killed=$(cat "$STATE/harness-killed" 2>/dev/null || true)
  tail -n +"$((dlog_lines + 1))" "$STATE/daemons.log" | while read -r _ pid comm what; do
    [[ " $harness_killed " == *" $pid "* || $what == "exit status 0" ]] && continue
    if [[ $comm == udaxfs ]] && ! ((timed_out)); then
      bug "DAEMON DIED: udaxfs pid $pid $what"
    else
      note "$comm pid $pid: $what"  # mount helpers; daemons stopped by the watchdog
    fi
  done
  if ! ((timed_out)) && grep -lqs 'Transport endpoint is not connected\|Software caused connection abort' \
      "$out" "$base.out.bad" "$base.full"; then
    bug "DEAD MOUNT: ENOTCONN/ECONNABORTED in the test's output (daemon gone)"
  fi
  if dmesg >/dev/null 2>&1; then
    dmesg | awk -v m="run fstests $t at" 'index($0, m) { buf = ""; on = 1 } on { buf = buf $0 "\n" } END { printf "%s", buf }' \
      >"$STATE/dmesg"
    # the kernel is shared with whatever else runs here: a udaxfs line counts only for
    # a daemon of ours that died in this test, others are notes
    { grep -E 'udaxfs\[[0-9]+\]|BUG:|WARNING:|Oops|hung_task|blocked for more than' "$STATE/dmesg" || true; } |
      head -n5 | while read -r l; do
        if [[ $l =~ udaxfs\[([0-9]+)\] ]]; then
          tail -n +"$((dlog_lines + 1))" "$STATE/daemons.log" | grep -q " ${BASH_REMATCH[1]} udaxfs " &&
            bug "KERNEL: $(clean1 "$l")"
        else
          note "kernel: $(clean1 "$l")"
        fi
      done
  fi
  if [[ -f $results/syslog.log ]]; then
    # ours: lines naming our images or a daemon of this test (others may run udaxfs here)
    { echo "$TEST_DEV"; echo "$SCRATCH_DEV"
      tail -n +"$((dlog_lines + 1))" "$STATE/daemons.log" | awk '$3 == "udaxfs" { print "udaxfs[" $2 "]" }'
    } >"$STATE/ours"
    tail -c +"$((syslog_off + 1))" "$results/syslog.log" | grep -F -f "$STATE/ours" >"$STATE/syslog" || true
    if [[ -s $STATE/syslog ]]; then
      cp "$STATE/syslog" "$base.syslog"
      note "syslog: $(clean1 "$(head -n1 "$STATE/syslog" | cut -d' ' -f2-)")"
    fi
  fi

  # fsck: TEST always, SCRATCH when the test ran
  if ! "$FSCK" "$TEST_DEV" >"$STATE/fsck" 2>&1; then
    { echo "== fsck.udaxfs $TEST_DEV after $t"; cat "$STATE/fsck"; } >>"$base.fsck"
    bug "FSCK TEST: $(clean1 "$(fsck_problem "$STATE/fsck")")"
    if ((saved_images < 3)); then
      cp --sparse=always "$TEST_DEV" "$results/${t//\//-}.test.img" && ((saved_images++)) || true
    fi
    "$MKFS" -f -s "$test_size" "$TEST_DEV" >/dev/null
    note "TEST image reformatted after its fsck failure (copy: ${t//\//-}.test.img)"
  fi
  if [[ $status != notrun ]]; then
    if ! "$FSCK" "$SCRATCH_DEV" >"$STATE/fsck" 2>&1; then
      { echo "== fsck.udaxfs $SCRATCH_DEV after $t"; cat "$STATE/fsck"; } >>"$base.fsck"
      bug "FSCK SCRATCH: $(clean1 "$(fsck_problem "$STATE/fsck")")"
      if ((saved_images < 3)); then
        cp --sparse=always "$SCRATCH_DEV" "$results/${t//\//-}.scratch.img" && ((saved_images++)) || true
      fi
    fi
    scratch_dirty=1
  else
    scratch_dirty=0
  fi

  local bugs notes
  bugs=$(join_lines "$STATE/bugs")
  notes=$(join_lines "$STATE/notes")
  if [[ -n $bugs && $status != fail ]]; then
    status=fail cause="BUG: $(head -n1 "$STATE/bugs")"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$status" "$elapsed" "$(clean1 "$cause")" "$reason" \
    "$(clean1 "$diffl")" "$(tr '\t' ' ' <<<"$bugs")" "$(tr '\t' ' ' <<<"$notes")" >>"$TSV"
  case $status in
    pass) ((++npass)); printf '%-16s pass    %4ss\n' "$t" "$elapsed" ;;
    notrun) ((++nnotrun)); printf '%-16s notrun  %s\n' "$t" "$reason" ;;
    fail) ((++nfail)); printf '%-16s FAIL    %4ss  %s\n' "$t" "$elapsed" "$(clean1 "$cause")" ;;
  esac
  [[ -z $bugs ]] || sed 's/^/                 !! /' "$STATE/bugs"
  return 0
}

final_fsck='not run'
finish() {
  FINISHED=1
  set +e
  cleanup
  local seconds=$(($(date +%s) - run_start))
  if "$FSCK" "$TEST_DEV" >"$results/final-fsck.txt" 2>&1; then
    final_fsck="clean ($(fsck_verdict "$results/final-fsck.txt"))"
  else
    final_fsck="PROBLEMS (exit $?): $(fsck_verdict "$results/final-fsck.txt") -- see final-fsck.txt"
  fi
  ((keep_images)) || rm -f "$TEST_DEV" "$SCRATCH_DEV"
  UDAXFS_REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown) \
  XFSTESTS_REV=$(git -C "$xfstests" describe --always --dirty 2>/dev/null || echo unknown) \
  M_STARTED=$started M_COMMAND=$command_line M_TEST_DEV=$TEST_DEV M_SCRATCH_DEV=$SCRATCH_DEV \
  M_TEST_SIZE=$test_size M_SCRATCH_SIZE=$scratch_size M_TIMEOUT=$timeout M_SECONDS=$seconds \
  M_INTERRUPTED=$INTERRUPTED M_CURRENT=$CURRENT_TEST M_FINAL_FSCK=$final_fsck M_RESULTS=$results M_BUGS=$STATE/bugs \
  python3 - "$results/meta.json" <<'PY'
import json, os, platform, sys
e = os.environ
bugs = open(e["M_BUGS"]).read().splitlines() if os.path.exists(e["M_BUGS"]) else []
json.dump(dict(started=e["M_STARTED"], command=e["M_COMMAND"], udaxfs=e["UDAXFS_REV"],
               xfstests=e["XFSTESTS_REV"], kernel=platform.release(), test_dev=e["M_TEST_DEV"],
               scratch_dev=e["M_SCRATCH_DEV"], test_size=e["M_TEST_SIZE"],
               scratch_size=e["M_SCRATCH_SIZE"], timeout=int(e["M_TIMEOUT"]),
               seconds=int(e["M_SECONDS"]), interrupted=e["M_INTERRUPTED"] == "1",
               interrupted_test=e["M_CURRENT"] if e["M_INTERRUPTED"] == "1" else "",
               final_fsck=e["M_FINAL_FSCK"], harness_bugs=bugs, results=e["M_RESULTS"]),
          open(sys.argv[1], "w"), indent=2)
PY
  echo
  python3 "$STATE/summary.py" "$TSV" "$results/meta.json" "$results/summary.txt" "$results/summary.json"
  echo
  echo "results: $results/summary.txt, summary.json, results.tsv, check.log, xfstests/"
  echo "xfstests: $npass passed, $nfail failed, $nnotrun skipped"
}

npass=0 nfail=0 nnotrun=0 scratch_dirty=0 saved_images=0
LOOP_STARTED=1
echo "== running ${#list[@]} tests (timeout ${timeout}s each); results in $results"
for t in "${list[@]}"; do
  CURRENT_TEST=$t
  run_test "$t" || true  # (errexit is off inside: one test's oddity must not stop the run)
done
rm -f "$STATE/bugs" "$STATE/notes"
finish
((nfail == 0)) || exit 1
exit 0
