# shellcheck shell=bash
# lib.sh -- sourced by bench/run.sh and bench/profile.sh: the filesystems under test,
# mounted and unmounted the same way every time, and a cleanup that leaves nothing behind.
#
# The caller sets, before bench_setup: ROOT, BIN (udaxfs build/bin), PT (passthrough_ll
# binary), DATA (a fresh directory on tmpfs for images and mount points), LOGDIR, and
# REGION_BYTES (size of the udaxfs region and of the ext4 image).
#
# One filesystem is mounted at a time, on $DATA/mnt. State: FS (its name), DAEMON (pid).

# udaxfs-direct: -o cache=none; udaxfs-uring: -o uring (FUSE over io_uring, Linux 6.14+);
# udaxfs-nocopies: an image made with mkfs --no-metadata-copies (what the copies cost);
# udaxfs-2dev: one filesystem over two images of half the size each (issue 22: what a
# second device costs)
FS_ALL=(udaxfs tmpfs passthrough_ll fuse2fs udaxfs-direct udaxfs-uring udaxfs-nocopies udaxfs-2dev)
FS=''
DAEMON=''
MNT=''
CHILD=''
UDAX_MOUNT_OPTS=${UDAX_MOUNT_OPTS:-}

# Messages go to the stderr the script started with (fd 3), also from inside a command
# whose output is redirected to a log (a trap runs with that command's redirections).
exec 3>&2
log() { printf '%s\n' "$*" >&3; }
die() { printf 'bench: error: %s\n' "$*" >&3; exit 1; }

# Runs a command in the background and waits for it: a trapped SIGINT/SIGTERM interrupts
# `wait` at once (bash would otherwise act on it only after a foreground command ends, and
# not at all when that command, like timeout(1), runs in a process group of its own).
# bench_cleanup stops the command. Returns its exit status.
run_bg() {
  local rc=0
  "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=''
  return "$rc"
}

mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }

is_fuse() { [[ $1 != tmpfs ]]; }

# Starts the daemon of $FS in the foreground (so we know its pid) and waits for the mount.
_start_daemon() {
  local dlog=$LOGDIR/$FS.daemon.log
  case $FS in
    udaxfs|udaxfs-nocopies)
      # shellcheck disable=SC2086
      "$BIN/udaxfs" "$DATA/udaxfs.img" "$MNT" -f $UDAX_MOUNT_OPTS >>"$dlog" 2>&1 3>&- &
      ;;
    udaxfs-2dev)
      # shellcheck disable=SC2086
      "$BIN/udaxfs" "$DATA/udaxfs.img,$DATA/udaxfs2.img" "$MNT" -f $UDAX_MOUNT_OPTS >>"$dlog" 2>&1 3>&- &
      ;;
    udaxfs-direct)
      # shellcheck disable=SC2086
      "$BIN/udaxfs" "$DATA/udaxfs.img" "$MNT" -f -o cache=none $UDAX_MOUNT_OPTS >>"$dlog" 2>&1 3>&- &
      ;;
    udaxfs-uring)
      # shellcheck disable=SC2086
      "$BIN/udaxfs" "$DATA/udaxfs.img" "$MNT" -f -o uring $UDAX_MOUNT_OPTS >>"$dlog" 2>&1 3>&- &
      ;;
    passthrough_ll)
      "$PT" -o source="$DATA/pt-src" "$MNT" -f >>"$dlog" 2>&1 3>&- &
      ;;
    fuse2fs)
      fuse2fs "$DATA/ext4.img" "$MNT" -f >>"$dlog" 2>&1 3>&- &
      ;;
    *) die "no daemon for $FS" ;;
  esac
  DAEMON=$!
  for _ in $(seq 1 300); do
    mounted "$MNT" && return 0
    if ! kill -0 "$DAEMON" 2>/dev/null; then
      DAEMON=''
      tail -n 20 "$dlog" >&2
      die "$FS: the daemon exited before the mount appeared (log: $dlog)"
    fi
    sleep 0.1
  done
  die "$FS: no mount on $MNT after 30 s (log: $dlog)"
}

# Creates the backing store of $1 and mounts it on $DATA/mnt.
fs_setup() {
  FS=$1
  MNT=$DATA/mnt
  mkdir -p "$MNT"
  case $FS in
    udaxfs|udaxfs-direct|udaxfs-uring|udaxfs-nocopies)
      # The region is allocated up front (fallocate), as memory is: the first write to an
      # AU must not pay for tmpfs allocating the page.
      fallocate -l "$REGION_BYTES" "$DATA/udaxfs.img" || die "fallocate $DATA/udaxfs.img"
      # shellcheck disable=SC2086  # UDAX_MKFS_OPTS is a list of options
      local copies=()
      [[ $FS == udaxfs-nocopies ]] && copies=(--no-metadata-copies)
      "$BIN/mkfs.udaxfs" -q -f "${copies[@]}" ${UDAX_MKFS_OPTS:-} "$DATA/udaxfs.img" >>"$LOGDIR/udaxfs.mkfs.log" 2>&1 ||
        die "mkfs.udaxfs failed (log: $LOGDIR/udaxfs.mkfs.log)"
      _start_daemon
      ;;
    udaxfs-2dev)
      # The same room as udaxfs's one image, in two halves (whole 2 MiB units: a device's
      # share of the space is).
      local half=$(((REGION_BYTES / 2 + (2 << 20) - 1) / (2 << 20) * (2 << 20)))
      fallocate -l "$half" "$DATA/udaxfs.img" || die "fallocate $DATA/udaxfs.img"
      fallocate -l "$half" "$DATA/udaxfs2.img" || die "fallocate $DATA/udaxfs2.img"
      # shellcheck disable=SC2086
      "$BIN/mkfs.udaxfs" -q -f ${UDAX_MKFS_OPTS:-} "$DATA/udaxfs.img" "$DATA/udaxfs2.img" >>"$LOGDIR/udaxfs.mkfs.log" 2>&1 ||
        die "mkfs.udaxfs of two images failed (log: $LOGDIR/udaxfs.mkfs.log)"
      _start_daemon
      ;;
    tmpfs)
      # A directory of the tmpfs that holds everything else ($DATA is on it).
      mkdir -p "$DATA/tmpfs-dir"
      MNT=$DATA/tmpfs-dir
      ;;
    passthrough_ll)
      mkdir -p "$DATA/pt-src"
      _start_daemon
      ;;
    fuse2fs)
      # No journal: fuse2fs 1.47 never writes one (it says so at every mount).
      fallocate -l "$REGION_BYTES" "$DATA/ext4.img" || die "fallocate $DATA/ext4.img"
      mkfs.ext4 -F -q -O ^has_journal "$DATA/ext4.img" >>"$LOGDIR/fuse2fs.mkfs.log" 2>&1 ||
        die "mkfs.ext4 failed (log: $LOGDIR/fuse2fs.mkfs.log)"
      _start_daemon
      ;;
    *) die "unknown filesystem '$FS' (one of: ${FS_ALL[*]})" ;;
  esac
}

# The transport of the udaxfs daemon $DAEMON: "io_uring (N queues)" when it has ring
# threads (fs/fuse/uring_transport.cc names them udaxfs-ringN), else "/dev/fuse".
udaxfs_transport() {
  local n=0 t
  for t in /proc/"$DAEMON"/task/*; do
    [[ $(cat "$t/comm" 2>/dev/null) == udaxfs-ring* ]] && n=$((n + 1))
  done
  if ((n)); then echo "io_uring ($n queues)"; else echo /dev/fuse; fi
}

# FUSE over io_uring is offered to new mounts while the fuse module's enable_uring is Y
# (Linux 6.14+). uring_enable sets it and keeps what it was for uring_restore (the EXIT
# trap); libfuse 3.14's daemons (passthrough_ll, fuse2fs) never ask for it.
URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_SAVED=''
uring_enable() {
  [[ -w $URING_PARAM ]] || return 1
  [[ -n $URING_SAVED ]] || URING_SAVED=$(cat "$URING_PARAM")
  echo Y >"$URING_PARAM"
}
uring_restore() {
  [[ -n $URING_SAVED ]] || return 0
  echo "$URING_SAVED" >"$URING_PARAM" 2>/dev/null
  URING_SAVED=''
}

# Unmounts $FS (if it is a FUSE mount) and waits for its daemon to exit; kills it after 30 s.
fs_unmount() {
  is_fuse "$FS" || return 0
  if mounted "$MNT"; then
    for _ in 1 2 3 4 5; do
      umount "$MNT" 2>/dev/null && break
      sleep 1
    done
    if mounted "$MNT"; then
      log "bench: $MNT busy, detaching it (umount -l)"
      umount -l "$MNT" || true
    fi
  fi
  if [[ -n $DAEMON ]]; then
    for _ in $(seq 1 300); do
      kill -0 "$DAEMON" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$DAEMON" 2>/dev/null; then
      log "bench: $FS daemon $DAEMON still running 30 s after umount: killing it"
      kill -KILL "$DAEMON" 2>/dev/null || true
    fi
    wait "$DAEMON" 2>/dev/null || true
    DAEMON=''
  fi
}

# A cold start for the next measured phase: a FUSE filesystem is unmounted and mounted
# again, so neither the kernel's page, dentry and attribute caches nor the daemon keep
# anything from before. tmpfs has nothing to drop: its page cache is the data.
fs_remount() {
  is_fuse "$FS" || return 0
  fs_unmount
  _start_daemon
}

# Unmounts and removes the backing store.
fs_teardown() {
  [[ -n $FS ]] || return 0
  fs_unmount
  rm -rf "$DATA/udaxfs.img" "$DATA/udaxfs2.img" "$DATA/ext4.img" "$DATA/pt-src" "$DATA/tmpfs-dir"
  FS=''
}

# The EXIT trap: whatever happened, nothing stays mounted, running or allocated.
bench_cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  uring_restore
  if [[ -n ${CHILD:-} ]]; then  # a benchmark still running on the mount (timeout forwards TERM)
    kill -TERM "$CHILD" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$CHILD" 2>/dev/null
    pkill -KILL -P "$CHILD" 2>/dev/null
    wait "$CHILD" 2>/dev/null
  fi
  local p
  for p in ${PERF:-} ${PERF2:-}; do  # bench/profile.sh's perf record
    kill -INT "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  if [[ -n ${MNT:-} ]] && mounted "$MNT"; then
    for _ in 1 2 3 4 5; do umount "$MNT" 2>/dev/null && break; sleep 1; done
    mounted "$MNT" && umount -l "$MNT"
  fi
  if [[ -n ${DAEMON:-} ]]; then
    for _ in $(seq 1 100); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON" 2>/dev/null
    wait "$DAEMON" 2>/dev/null
  fi
  # Anything else mounted below $DATA (an interrupted helper run, say).
  if [[ -n ${DATA:-} && -d $DATA ]]; then
    awk -v d="$DATA/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
      while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
    rm -rf "$DATA"
  fi
  ((rc == 0)) || log $'\n'"bench: stopped (exit status $rc); everything it mounted is unmounted and its images removed"
  exit "$rc"
}

# The daemon's memory, from /proc/PID/status: "VmRSS RssAnon RssFile RssShmem" in KiB.
daemon_rss() {
  awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ { v[$1] = $2 }
       END { print v["VmRSS:"]+0, v["RssAnon:"]+0, v["RssFile:"]+0, v["RssShmem:"]+0 }' \
    "/proc/$DAEMON/status"
}
