# shellcheck shell=bash disable=SC2034  # sourced: TARGET, PHYS are for the scenarios
# media.sh -- the media-error scenarios' common steps (guest; sourced after lib.sh).
#
# media_setup MODE MNT     devdax: format /dev/daxX.Y; fsdax: a 256 MiB region file on
#                          xfs -o dax. Mounts udaxfs (under strace). Sets TARGET.
# media_files MNT NAME...  one 64 KiB file each, distinct contents, fsynced; on devdax
#                          every file has its own 2 MiB allocation unit, so poison of one
#                          file's page (granule 2 MiB there) leaves the others' alone.
# media_owner NAME         PHYS = the region offset of NAME's first byte, and its owners
#                          as the reverse map gives them (udaxctl rmap)
# media_observe NAME WHAT  after an injection: the daemon's signals, the kernel's log,
#                          reads of NAME and of every other file; checks the daemon lives
#                          and the others are intact; with an event log, checks it names
#                          NAME and that NAME reads EIO
# media_region_size        the size of TARGET in bytes (the range udaxctl rmap may ask)
# media_teardown MNT       unmount (checked clean) and fsck -n (logged)

declare -A MEDIA_SUM=()
MEDIA_FILES=()
MEDIA_POISONED=" "
MEDIA_DMESG_SEEN=0
MEDIA_SIGNALS_SEEN=0

media_setup() {
  local mode=$1 mnt=$2
  lab_step "set-up: udaxfs on $mode"
  case $mode in
    devdax)
      TARGET=$(lab_devdax) || { echo "no devdax namespace"; exit 1; }
      "$MKFS" -f "$TARGET" | sed 's/^/   /' ;;
    fsdax)
      lab_fsdax /mnt/pmem >/dev/null || { echo "no fsdax namespace"; exit 1; }
      TARGET=/mnt/pmem/region.img
      "$MKFS" -f -s 256M "$TARGET" | sed 's/^/   /' ;;
    *) echo "unknown mode $mode"; exit 2 ;;
  esac
  lab_mount "$TARGET" "$mnt" || exit 1
  lab_info "target $TARGET, daemon pid $LAB_DAEMON_PID, mounted on $mnt"
  # The daemon gets BUS_MCEERR_AO only if it opted into early kill (its own prctl, not
  # visible from outside) or the system default says so.
  lab_info "vm.memory_failure_early_kill=$(cat /proc/sys/vm/memory_failure_early_kill)"
  "$UDAXCTL" list --media-errors "$mnt" --json 2>&1 | tr -d ' \n' | cut -c1-200 | sed 's/^/   media list: /'
  echo
  MEDIA_DMESG_SEEN=$(dmesg | wc -l)
}

media_files() {
  local mnt=$1 f
  shift
  for f in "$@"; do
    # yes dies of SIGPIPE when head has enough: that is the point, not an error.
    { yes "$f $(printf '%0100d' 0)" || true; } | head -c 65536 >"$mnt/$f"
    sync "$mnt/$f"
    MEDIA_SUM[$f]=$(md5sum <"$mnt/$f")
    MEDIA_FILES+=("$f")
  done
  lab_info "files: $* (64 KiB each, fsynced)"
}

media_owner() {
  local name=$1
  PHYS=$(lab_phys "$MNT/$name")
  lab_info "$name byte 0 is at region offset $PHYS ($(printf '%#x' "$PHYS"))"
  "$UDAXCTL" rmap "$MNT" "$PHYS" 2>&1 | sed 's/^/   owners (udaxctl rmap): /'
}

# media_read FILE: "ok intact", "ok CHANGED" or the error of a full read (cache dropped).
media_read() {
  local f=$1 name=$2
  if ! dd if="$f" of=/dev/null bs=64k status=none 2>"$LAB_OUT/dd.err"; then
    echo "error: $(sed 's/.*: //' "$LAB_OUT/dd.err" | head -n1)"
  elif [[ $(md5sum <"$f") == "${MEDIA_SUM[$name]}" ]]; then
    echo "ok intact"
  else
    echo "ok CHANGED"
  fi
}

# media_udax_client NAME DIR: starts a libudax direct-map client of NAME's 64 KiB (a lease
# granted over the daemon's control socket, the way applications map udaxfs files): it
# maps, touches every page, creates DIR/ready, then waits for DIR/go and touches again.
# Its log ($LAB_OUT/udax-client-NAME.log) gets "SIGBUS <si_code> at map offset N" when a
# signal comes (then it exits) or "second touch: no signal". Sets UDAX_CLIENT (its pid).
media_udax_client() {
  local name=$1 dir=$2 i
  rm -rf "$dir"
  mkdir -p "$dir"
  "$BIN/udax_client_test" hold "$MNT/$name" 0 65536 "$dir" >"$LAB_OUT/udax-client-$name.log" 2>&1 &
  UDAX_CLIENT=$!
  for ((i = 0; i < 200; i++)); do
    [[ -e $dir/ready ]] && return 0
    kill -0 "$UDAX_CLIENT" 2>/dev/null || break
    sleep 0.1
  done
  sed 's/^/   libudax client: /' "$LAB_OUT/udax-client-$name.log"
  return 1
}

# media_udax_client_end NAME DIR: lets the client touch its map again and waits for it.
media_udax_client_end() {
  local name=$1 dir=$2 i
  for ((i = 0; i < 50; i++)); do kill -0 "$UDAX_CLIENT" 2>/dev/null || break; sleep 0.1; done
  touch "$dir/go"
  wait "$UDAX_CLIENT" 2>/dev/null || true
  sed 's/^/   libudax client: /' "$LAB_OUT/udax-client-$name.log"
}

media_observe() {
  local name=$1 what=$2 f r sigs n
  MEDIA_POISONED+="$name "
  sleep 1
  lab_info "-- after $what:"
  sigs=$(lab_daemon_signals || true)
  n=$(grep -c . <<<"$sigs" || true)
  if ((n > MEDIA_SIGNALS_SEEN)); then
    tail -n $((n - MEDIA_SIGNALS_SEEN)) <<<"$sigs" | sed 's/^/   daemon received: /'
  else
    lab_info "daemon received: no signal"
  fi
  MEDIA_SIGNALS_SEEN=$n
  dmesg | tail -n +$((MEDIA_DMESG_SEEN + 1)) | grep -iE 'memory failure|mce|hwpoison|kill|poison|sigbus' |
    sed 's/^/   kernel: /' || lab_info "kernel: nothing logged"
  MEDIA_DMESG_SEEN=$(dmesg | wc -l)
  echo 3 >/proc/sys/vm/drop_caches
  for f in "${MEDIA_FILES[@]}"; do
    r=$(media_read "$MNT/$f" "$f")
    lab_info "read $f: $r"
    if [[ $MEDIA_POISONED != *" $f "* ]]; then
      lab_check "$f (not poisoned) reads back intact" test "$r" = "ok intact"
    fi
  done
  lab_check "the daemon is alive and the mount answers" lab_daemon_alive "$MNT"
  if lab_events "$MNT"; then
    if [[ $name == "("* ]]; then
      # Metadata: repaired from its copy or a clean shutdown (G6), never a file's EIO.
      lab_check "the event log names a metadata owner" \
        grep -qE '"kind": ?"(superblock|replica|journal|inode-table|au-bitmap|inode-bitmap|rmap|directory|extent-block)"' "$LAB_OUT/events.json"
      lab_info "actions logged: $(grep -oE '"action": ?"[a-z,-]+"' "$LAB_OUT/events.json" | sort -u | tr '\n' ' ')"
    else
      lab_check "the event log names $name" grep -q "$name" "$LAB_OUT/events.json"
      r=$(media_read "$MNT/$name" "$name")
      lab_check "$name reads EIO" test "$r" = "error: Input/output error"
    fi
  fi
}

media_region_size() {
  if [[ -c $TARGET ]]; then
    cat "/sys/bus/dax/devices/$(basename "$TARGET")/size"
  else
    stat -c %s "$TARGET"
  fi
}

media_teardown() {
  local mnt=$1
  lab_step "teardown"
  lab_check "unmount: the daemon exits by itself" lab_unmount "$mnt"
  local rc=0
  "$FSCK" -n "$TARGET" >"$LAB_OUT/fsck.log" 2>&1 || rc=$?
  if ((rc == 0)); then
    lab_info "fsck -n: clean"
  else
    lab_info "fsck -n: status $rc ($(tail -n1 "$LAB_OUT/fsck.log"))"
  fi
  lab_info "daemon signals, all: $(lab_daemon_signals | wc -l) (strace log: $LAB_STRACE)"
  lab_daemon_signals | sed 's/^/   daemon received (whole run): /' || true
}
