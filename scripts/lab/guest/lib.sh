# shellcheck shell=bash disable=SC2034  # sourced: BIN, FSCK... are for the scenarios
# lib.sh -- helpers for lab test scripts running inside the guest (sourced, bash).
#
# stage2.sh exports LAB_REPO, LAB_BUILD, LAB_OUT (the results share) and LAB_FLAVOUR.
# Conventions: a scenario prints what it did and saw as "== step" headers and
# "KEY: value" lines (the log is the report), asserts with lab_check, and ends with
# lab_finish, whose exit status is the scenario's: 0 all checks passed, 1 otherwise.
# lab_skip exits 77.

BIN=${LAB_BUILD:?}/bin
UDAXFS=$BIN/udaxfs
MKFS=$BIN/mkfs.udaxfs
FSCK=$BIN/fsck.udaxfs
UDAXCTL=$BIN/udaxctl
POKE=$BIN/lab_poke
LAB_FAILS=0
LAB_CHECKS=0

lab_uptime() { cut -d' ' -f1 /proc/uptime; }
lab_step() { echo; echo "== $* (t=$(lab_uptime)s)"; }
lab_info() { echo "   $*"; }

# lab_check DESCRIPTION CMD...: one assertion, printed as PASS/FAIL.
lab_check() {
  local what=$1
  shift
  LAB_CHECKS=$((LAB_CHECKS + 1))
  if "$@"; then
    echo "   PASS: $what"
  else
    echo "   FAIL: $what"
    LAB_FAILS=$((LAB_FAILS + 1))
  fi
}
lab_skip() { echo "SKIP: $*"; exit 77; }
lab_finish() {
  echo
  echo "lab checks: $((LAB_CHECKS - LAB_FAILS)) passed, $LAB_FAILS failed"
  ((LAB_FAILS == 0))
}

lab_require_build() {
  local b
  for b in "$UDAXFS" "$MKFS" "$UDAXCTL" "$POKE"; do
    [[ -x $b ]] || lab_skip "$b missing (scripts/build.sh)"
  done
}

# ---- pmem namespaces (ndctl; flavours memmap and nvdimm) --------------------------------

# lab_devdax [ALIGN] [NAMESPACE]: reconfigures NAMESPACE (default namespace0.0; nvdimm2 has
# namespace1.0 too) as devdax (default 2 MiB alignment, so
# udaxfs takes 2 MiB allocation units); prints /dev/daxX.Y.
lab_devdax() {
  local ns=${2:-namespace0.0} d
  ndctl create-namespace -f -e "$ns" -m devdax --align "${1:-2M}" >/dev/null || return 1
  d=$(ndctl list -N -n "$ns" | sed -n 's/.*"chardev":"\([^"]*\)".*/\1/p' | head -n1)
  [[ -n $d && -c /dev/$d ]] || return 1
  echo "/dev/$d"
}

# lab_fsdax MOUNTPOINT: namespace0.0 as fsdax, xfs on it (no reflink: DAX and reflink do
# not mix on 6.1), mounted -o dax=always. Prints the block device.
lab_fsdax() {
  local mnt=$1 blk
  ndctl create-namespace -f -e namespace0.0 -m fsdax --align 2M >/dev/null || return 1
  blk=$(ndctl list -N -n namespace0.0 | sed -n 's/.*"blockdev":"\([^"]*\)".*/\1/p' | head -n1)
  [[ -n $blk && -b /dev/$blk ]] || return 1
  mkfs.xfs -q -f -m reflink=0 "/dev/$blk" || return 1
  mkdir -p "$mnt"
  mount -o dax=always "/dev/$blk" "$mnt" || return 1
  echo "/dev/$blk"
}

# ---- the daemon, observed ----------------------------------------------------------------

# lab_mount TARGET MNT [OPTS]: starts udaxfs in the foreground under strace, which records
# every signal the daemon's threads receive (with si_code and address) and nothing else
# (--seccomp-bpf: no system call stops). Sets LAB_DAEMON_PID (strace's child: the daemon)
# and LAB_STRACE (its log). Waits until the mount answers.
lab_mount() {
  local target=$1 mnt=$2 opts=${3:-} i
  mkdir -p "$mnt"
  LAB_STRACE=$LAB_OUT/daemon-$(basename "$mnt").strace
  strace -f -qq --seccomp-bpf -e trace=none -e signal=all -o "$LAB_STRACE" \
    "$UDAXFS" -f "$target" "$mnt" ${opts:+-o "$opts"} >"$LAB_OUT/daemon-$(basename "$mnt").log" 2>&1 &
  LAB_STRACE_PID=$!
  for ((i = 0; i < 300; i++)); do
    if grep -q " $mnt fuse" /proc/mounts; then
      LAB_DAEMON_PID=$(pgrep -P "$LAB_STRACE_PID" -x udaxfs | head -n1)
      [[ -n $LAB_DAEMON_PID ]] && return 0
    fi
    kill -0 "$LAB_STRACE_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "lab_mount: udaxfs did not mount $target on $mnt:"
  cat "$LAB_OUT/daemon-$(basename "$mnt").log"
  return 1
}

# lab_daemon_signals: the SIGBUS lines strace saw so far, one per signal.
lab_daemon_signals() { grep -h -- '--- SIGBUS' "$LAB_STRACE" 2>/dev/null; }

# lab_daemon_alive: the daemon process exists and the mount answers statfs.
lab_daemon_alive() {
  kill -0 "$LAB_DAEMON_PID" 2>/dev/null && timeout 10 stat -f "$1" >/dev/null 2>&1
}

# lab_unmount MNT: unmount; the daemon must exit by itself (strace then ends).
lab_unmount() {
  local mnt=$1 i
  umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$LAB_STRACE_PID" 2>/dev/null || { wait "$LAB_STRACE_PID" 2>/dev/null; return 0; }
    sleep 0.1
  done
  kill -9 "$LAB_DAEMON_PID" 2>/dev/null
  return 1
}

# lab_phys FILE [OFFSET]: the region offset holding byte OFFSET (default 0) of FILE
# (udaxctl bmap --json).
lab_phys() {
  "$UDAXCTL" bmap "$1" --json | python3 -c '
import json, sys
off = int(sys.argv[1])
for e in json.load(sys.stdin)["extents"]:
    if e["file_offset"] <= off < e["file_offset"] + e["length"]:
        print(e["phys_offset"] + off - e["file_offset"]); break
else:
    sys.exit("offset not mapped")' "${2:-0}"
}

# lab_events MNT: the hook for the event resolver (issue 6). When `udaxctl events` exists,
# prints its JSON log into the report and returns 0; otherwise says why and returns 2, so
# a scenario can assert owners and actions exactly when the daemon can report them.
lab_events() {
  local mnt=$1
  if ! "$UDAXCTL" --help 2>&1 | grep -qE '^ +events( |$)'; then
    echo "   (no 'udaxctl events' in this build: owner/action assertions skipped)"
    return 2
  fi
  "$UDAXCTL" events "$mnt" --json | tee "$LAB_OUT/events.json"
}

# ---- requests to the host agent (scripts/lab/monitor.py) ---------------------------------

# lab_host REQUEST...: runs a monitor request on the host; prints the answer's output and
# returns non-zero when the agent reported an error (or no answer came in 60 s).
LAB_REQ_SEQ=0
lab_host() {
  local name req i
  LAB_REQ_SEQ=$((LAB_REQ_SEQ + 1))
  name=$(printf 'r%03d' "$LAB_REQ_SEQ")
  req=$LAB_OUT/req/$name
  echo "$*" >"$req.tmp" && mv "$req.tmp" "$req.req"
  for ((i = 0; i < 600; i++)); do
    if [[ -f $req.done ]]; then
      tail -n +2 "$req.done"
      [[ $(head -n1 "$req.done") == ok ]]
      return
    fi
    sleep 0.1
  done
  echo "lab_host: no answer to '$*'"
  return 1
}
