# tests/fs/common/udax_helpers.sh -- helpers shared by the mounted-filesystem tests (sourced, bash).
#
# The runner (tests/fs/check) exports, for every test:
#   seq            test number ("001")
#   SRC_DIR        tests/fs
#   UDAX_BIN       directory holding udaxfs, mkfs.udaxfs (and fsck.udaxfs when built)
#   UDAXFS, MKFS_UDAXFS, FSCK_UDAXFS   the binaries (FSCK_UDAXFS empty when absent)
#   TEST_IMG       the freshly formatted image, mounted on TEST_DIR
#   TEST_DIR       the mount point
#   TEST_MOUNT_OPTS  the -o options it was mounted with (may be empty)
#   TEST_IMG_SIZE, TEST_AU   what mkfs was given
#   TMP_DIR        scratch directory outside the mount (the test's cwd), removed afterwards
#   FULL           log file for anything that must not go into the golden output
#                  (timings, raw listings); kept in the results directory
#   PYTHON         python3 interpreter for the helpers in tests/fs/src
#
# A test prints to stdout/stderr; both are compared with tests/fs/tests/NNN.out after the
# paths above are replaced by their names (TEST_DIR, TEST_IMG, TMP_DIR). Exit 77 = not run.

PYTHON=${PYTHON:-python3}
FULL=${FULL:-/dev/null}

# ---- outcome ----------------------------------------------------------------------------

# _notrun REASON: the test cannot run here (missing tool, not root, ...). Exit 77.
_notrun() {
  [[ -n ${NOTRUN_FILE:-} ]] && echo "$*" >"$NOTRUN_FILE"
  echo "not run: $*" >>"$FULL"
  exit 77
}

# _fail MESSAGE: print the message (it breaks the golden output) and stop with status 1.
_fail() {
  echo "FAIL: $*"
  echo "FAIL: $*" >>"$FULL"
  exit 1
}

# _log ...: to the full log only.
_log() { echo "$*" >>"$FULL"; }

# _require_root / _require_cmd CMD... / _require_user NAME
_require_root() { [[ $(id -u) -eq 0 ]] || _notrun "needs root"; }
_require_cmd() {
  local c
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || _notrun "needs command $c"; done
}
_require_user() {
  id "$1" >/dev/null 2>&1 || _notrun "needs user $1"
}
_require_fuse_daemon() {
  _udax_is_fuse "$TEST_DIR" || _notrun "TEST_DIR is not a FUSE mount"
  [[ -n $(_udax_daemon_pids "$TEST_IMG") ]] || _notrun "no udaxfs daemon found for TEST_IMG"
}

# ---- output helpers ---------------------------------------------------------------------

# _filter: replace the per-run paths by their names (stdin -> stdout).
# An image file is an "emulated" region, or "fsdax" on a DAX filesystem (the lab runs the
# suite there): both print as KIND.
_filter() {
  sed -e "s#${TEST_DIR}#TEST_DIR#g" -e "s#${TEST_IMG}#TEST_IMG#g" -e "s#${TMP_DIR}#TMP_DIR#g" \
    -e 's/\<emulated\>/KIND/g' -e 's/\<fsdax\>/KIND/g' -e 's#/var/lib/udaxfs/uuid-[0-9a-f]*#STATE#g'
}

# _fsop OP ARGS...: one system call through tests/fs/src/fsop.py; prints
# "OP ARGS: OK" or "OP ARGS: ERRNAME" with paths filtered. See fsop.py for the ops.
_fsop() { "$PYTHON" "$SRC_DIR/src/fsop.py" "$@" 2>&1 | _filter; }

# _as_nobody CMD...: run CMD as uid/gid 65534 with no supplementary groups.
_as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
# _as_user UID GID CMD...
_as_user() {
  local u=$1 g=$2
  shift 2
  setpriv --reuid="$u" --regid="$g" --clear-groups -- "$@"
}

# _stable_stat PATH...: type, mode, links, owner, group, size -- nothing that varies per run.
# Directory sizes are filesystem-specific and left out.
_stable_stat() {
  local p
  for p in "$@"; do
    if [[ -d $p && ! -L $p ]]; then
      stat -c '%n: %F mode=%a links=%h uid=%u gid=%g' "$p" | _filter
    else
      stat -c '%n: %F mode=%a links=%h uid=%u gid=%g size=%s' "$p" | _filter
    fi
  done
}

# ---- per-image state (fs/format/state_dir.h) ----------------------------------------------

# _udax_state_file IMAGE SUFFIX: the state file (badblocks, events) of IMAGE in
# /var/lib/udaxfs, keyed by its superblock UUID (DiskSuperblock::uuid, offset 168) as
# LocateTargetState keys it; _filter prints its prefix as STATE.
_udax_state_file() {
  local u
  u=$(od -An -tx1 -j168 -N16 "$1" | tr -d ' \n')
  echo "${UDAX_STATE_DIR:-/var/lib/udaxfs}/uuid-$u.$2"
}
# _udax_forget_state IMAGE: removes IMAGE's state files (what a test leaves in
# /var/lib/udaxfs otherwise outlives its image).
_udax_forget_state() {
  local f
  for f in badblocks badblocks.lock latent latent.lock events; do rm -f "$(_udax_state_file "$1" "$f")"; done
}

# _yesno COND-COMMAND...: prints "yes" when the command succeeds, else "no".
_yesno() { if "$@"; then echo yes; else echo no; fi; }

# ---- mount plumbing ---------------------------------------------------------------------

# _udax_mountinfo_line MNT: the /proc/self/mountinfo line of MNT (never stats MNT, so it
# cannot hang on a stuck daemon).
_udax_mountinfo_line() {
  awk -v m="$1" '$5 == m { print; exit }' /proc/self/mountinfo
}
_udax_mounted() { [[ -n $(_udax_mountinfo_line "$1") ]]; }
_udax_is_fuse() {
  local l
  l=$(_udax_mountinfo_line "$1")
  [[ -n $l ]] || return 1
  # after the optional fields comes " - FSTYPE SOURCE SUPEROPTS"
  [[ ${l#* - } == fuse* ]]
}

# _udax_daemon_pids IMG: pids of processes that hold IMG open (fd or mapping) and name it
# on their command line: the udaxfs daemon(s) serving it. Zombies are not counted.
_udax_daemon_pids() {
  local img f pid st
  img=$(realpath -m "$1")
  for f in $(grep -lsF -- "$img" /proc/[0-9]*/cmdline); do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || continue
    [[ -z $st || $st == Z || $st == X ]] && continue
    if readlink /proc/"$pid"/fd/* 2>/dev/null | grep -qxF -- "$img" ||
      grep -qF -- "$img" "/proc/$pid/maps" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

# _udax_wait_daemon_exit IMG [SECONDS]: wait until no daemon holds IMG; 1 on timeout.
# A killed daemon's main thread turns zombie (and drops out of _udax_daemon_pids) while
# its other threads are still exiting with the image open, so its lock is only gone once
# flock(1) can take it: fsck or a mount started sooner is refused as "in use".
_udax_wait_daemon_exit() {
  local img=$1 secs=${2:-10} i
  for ((i = 0; i < secs * 10; i++)); do
    if [[ -z $(_udax_daemon_pids "$img") ]]; then
      [[ -e $img ]] || return 0
      flock -n -x "$img" true 2>/dev/null && return 0
    fi
    sleep 0.1
  done
  return 1
}

# _udax_mount IMG MNT [OPTS]: mount and wait for it; retries for up to ~5 s while the
# image is still held by a daemon that is going away. Prints udaxfs' stderr on failure.
_udax_mount() {
  local img=$1 mnt=$2 opts=${3-${TEST_MOUNT_OPTS:-}} err i
  local args=("$img" "$mnt")
  [[ -n $opts ]] && args+=(-o "$opts")
  _udax_wait_daemon_exit "$img" 10 || true
  for ((i = 0; i < 50; i++)); do
    if err=$(timeout 30 "$UDAXFS" "${args[@]}" 2>&1 </dev/null); then
      [[ -n $err ]] && echo "$err" >>"$FULL"
      _udax_mounted "$mnt" && return 0
      err="udaxfs exited 0 but $mnt is not mounted"
      break
    fi
    grep -qiE 'lock|busy|in use' <<<"$err" || break
    sleep 0.1
  done
  echo "mount failed: $err" | _filter
  return 1
}

# _bg_wait SECONDS CMD...: run CMD in the background and wait at most SECONDS for it.
# Returns CMD's status, or 124 if it is still running (it is left running). Unlike
# timeout(1) this never blocks on a process stuck in the kernel (a umount or stat on a
# hung FUSE mount sits in uninterruptible sleep until the connection is aborted).
_bg_wait() {
  local secs=$1 pid i
  shift
  "$@" &
  pid=$!
  for ((i = 0; i < secs * 20; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      return
    fi
    sleep 0.05
  done
  return 124
}

# _udax_responsive MNT: does the daemon answer a statfs within 5 s? (An error is an answer.)
_udax_responsive() {
  _bg_wait 5 stat -f "$1" >/dev/null 2>&1
  [[ $? -ne 124 ]]
}

# _udax_stacks IMG: user-space stacks of the daemon(s) serving IMG (for hang reports).
_udax_stacks() {
  local pid
  command -v gdb >/dev/null 2>&1 || return 0
  for pid in $(_udax_daemon_pids "$1"); do
    echo "---- stacks of udaxfs pid $pid"
    timeout 60 gdb -p "$pid" -batch -ex 'thread apply all bt 20' 2>/dev/null </dev/null |
      grep -E '^(Thread|#)'
  done
}

# _udax_unmount MNT [IMG]: unmount, wait for the daemon of IMG to exit (10 s). If the
# daemon hangs or does not exit, kill it (which aborts the FUSE connection) and unmount
# lazily. Returns 1 if anything needed force.
_udax_unmount() {
  local mnt=$1 img=${2:-} ok=0 i pid
  if _udax_mounted "$mnt"; then
    for ((i = 0; i < 20; i++)); do
      _bg_wait 10 umount "$mnt" 2>>"$FULL" && break
      _udax_mounted "$mnt" || break
      _bg_wait 10 fusermount3 -u "$mnt" 2>>"$FULL" && break
      _udax_mounted "$mnt" || break
      if [[ -n $img && -n $(_udax_daemon_pids "$img") ]] && ! _udax_responsive "$mnt"; then
        echo "udaxfs daemon for $mnt does not answer: killed" >>"$FULL"
        _udax_stacks "$img" >>"$FULL"
        break
      fi
      sleep 0.25
    done
    if _udax_mounted "$mnt"; then
      echo "unmount of $mnt failed, killing the daemon and unmounting lazily" >>"$FULL"
      ok=1
      [[ -n $img ]] && for pid in $(_udax_daemon_pids "$img"); do kill -9 "$pid" 2>/dev/null; done
      umount -l "$mnt" 2>>"$FULL" || fusermount3 -uz "$mnt" 2>>"$FULL" || true
    fi
  fi
  if [[ -n $img ]] && ! _udax_wait_daemon_exit "$img" 10; then
    echo "udaxfs daemon for $img still running 10 s after unmount: killed" >>"$FULL"
    ok=1
    for pid in $(_udax_daemon_pids "$img"); do kill -9 "$pid" 2>/dev/null; done
    _udax_wait_daemon_exit "$img" 5 || true
  fi
  return $ok
}

# _udax_remount [OPTS]: unmount TEST_DIR (daemon must exit by itself) and mount TEST_IMG
# again with OPTS (default TEST_MOUNT_OPTS).
_udax_remount() {
  if ! _udax_unmount "$TEST_DIR" "$TEST_IMG"; then
    echo "remount: clean unmount failed (see $FULL)"
  fi
  _udax_mount "$TEST_IMG" "$TEST_DIR" "${1-${TEST_MOUNT_OPTS:-}}"
}

# _udax_kill9: SIGKILL the daemon serving TEST_IMG, wait for it to die, lazily unmount the
# dead mount. The caller remounts with _udax_mount "$TEST_IMG" "$TEST_DIR".
_udax_kill9() {
  local pids pid
  pids=$(_udax_daemon_pids "$TEST_IMG")
  [[ -n $pids ]] || _fail "no udaxfs daemon to kill"
  for pid in $pids; do kill -9 "$pid"; done
  _udax_wait_daemon_exit "$TEST_IMG" 10 || _fail "daemon survived SIGKILL"
  umount -l "$TEST_DIR" 2>>"$FULL" || fusermount3 -uz "$TEST_DIR" 2>>"$FULL" || true
  ! _udax_mounted "$TEST_DIR" || _fail "dead mount still present"
}

# _wait_until SECONDS CMD...: retry CMD every 0.1 s until it succeeds (0) or time runs out (1).
# For effects the kernel may deliver late, e.g. space freed when FUSE sends FORGET.
_wait_until() {
  local secs=$1 i
  shift
  for ((i = 0; i <= secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}
_free_at_least() { (($(_free_bytes "$1") >= $2)); }
_free_inodes_at_least() { (($(_free_inodes "$1") >= $2)); }

# _free_bytes PATH / _total_bytes PATH / _free_inodes PATH (statfs)
_free_bytes() { stat -f -c '%a %S' "$1" | awk '{ printf "%d\n", $1 * $2 }'; }
_total_bytes() { stat -f -c '%b %S' "$1" | awk '{ printf "%d\n", $1 * $2 }'; }
_free_inodes() { stat -f -c '%d' "$1"; }
