#!/usr/bin/env bash
# multidev.sh -- (guest) one udaxfs over two NVDIMM namespaces, and one of them unplugged
# (issue 22). Needs the nvdimm2 flavour: two QEMU NVDIMMs, namespace0.0 and namespace1.0,
# each made a devdax device.
#
# A libudax client holds a direct map (a lease) of a file on each device. Then
# `daxctl disable-device` unbinds device 1 while udaxfs serves both. Asserts: the daemon
# loses that one device and serves on, degraded (its uevent, not a shutdown); the client
# of device 1 is revoked (SIGBUS on its next touch) while the client of device 0 keeps
# its map and its data; files on device 0 read back intact, files on device 1 give EIO;
# a new file can be written; and a hwpoison (madvise(MADV_HWPOISON)) on the surviving
# device is handled as on one device -- that file's range EIO, the others intact.
# Then the device comes back while mounted: `daxctl enable-device` makes its node again
# (the daemon's old mapping is dead), `udaxctl add-device MNT 1 /dev/daxN.M` maps it afresh
# in its place, its files read back, a libudax client maps one through the new
# descriptor, and fsck is clean.
# Last, device 1 fails for good: disabled again, and `udaxctl replace-device` puts a blank
# image (tmpfs) in its place: device 0's files read intact, device 1's read EIO (gone
# for good, not zeros), new files go on, and the filesystem mounts over the devdax
# device and the image, fsck saying DEGRADED with the lost files.
set -euo pipefail
# shellcheck source=../guest/lib.sh
. "$LAB_REPO/scripts/lab/guest/lib.sh"
# shellcheck source=../guest/media.sh
. "$LAB_REPO/scripts/lab/guest/media.sh"
lab_require_build
[[ $LAB_FLAVOUR == nvdimm2 ]] || lab_skip "needs the nvdimm2 flavour (two NVDIMMs)"
MNT=/mnt/u

lab_step "set-up: one udaxfs over two devdax namespaces"
D0=$(lab_devdax 2M namespace0.0) || { echo "no devdax namespace0.0"; exit 1; }
D1=$(lab_devdax 2M namespace1.0) || { echo "no devdax namespace1.0"; exit 1; }
lab_info "devices: $D0 $D1"
"$MKFS" -f "$D0" "$D1" | sed 's/^/   /'
TARGET=$D0,$D1
lab_mount "$TARGET" "$MNT" || exit 1
lab_info "daemon pid $LAB_DAEMON_PID, mounted on $MNT"
MEDIA_DMESG_SEEN=$(dmesg | wc -l)
media_files "$MNT" a b c d e f
# device_of NAME: the device holding NAME's first byte; devoff_of NAME: its offset there.
device_of() { "$UDAXCTL" bmap --json "$MNT/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["extents"][0]["device"])'; }
devoff_of() { "$UDAXCTL" bmap --json "$MNT/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["extents"][0]["device_offset"])'; }
# check_reads WHAT EXPECTED FILE...: each FILE read through the mount gives EXPECTED
# (media_read's "ok intact" or "error: ..."); WHAT names the files in the check.
check_reads() {
  local what=$1 want=$2 f r
  shift 2
  for f in "$@"; do
    r=$(media_read "$MNT/$f" "$f")
    lab_check "$f ($what) reads: $want" test "$r" = "$want"
  done
}
on0=() on1=()
for f in a b c d e f; do
  if [[ $(device_of "$f") == 0 ]]; then on0+=("$f"); else on1+=("$f"); fi
done
lab_info "on device 0: ${on0[*]}; on device 1: ${on1[*]}"
lab_check "files landed on both devices" test "${#on0[@]}" -ge 3 -a "${#on1[@]}" -ge 2

lab_check "a libudax client maps ${on0[0]} (device 0) under a lease" media_udax_client "${on0[0]}" /tmp/udax-hold0
client0=$UDAX_CLIENT
lab_check "a libudax client maps ${on1[0]} (device 1) under a lease" media_udax_client "${on1[0]}" /tmp/udax-hold1
client1=$UDAX_CLIENT
"$UDAXCTL" leases "$MNT" | sed 's/^/   leases before: /'

dax1=${D1#/dev/}
lab_step "daxctl disable-device $dax1 (device 1; udaxfs mounted, both clients mapped)"
lab_check "daxctl disable-device succeeds" daxctl disable-device "$dax1"
lab_info "disabled at t=$(lab_uptime)s"
for ((i = 0; i < 100; i++)); do
  "$UDAXCTL" events "$MNT" 2>/dev/null | grep -q device-removed && break
  sleep 0.1
done
lab_info "device 1 lost at t=$(lab_uptime)s"
health=$("$UDAXCTL" health "$MNT" 2>&1 | head -n1 || true)
lab_info "health: $health (t=$(lab_uptime)s)"
lab_check "the filesystem serves on, degraded" grep -q 'serving, degraded' <<<"$health"
# The daemon let go of the removed device: a descriptor of it held across enable-device
# would break the new node once closed (every open ENXIO after that, on 6.1).
holds=$( (ls -l "/proc/$LAB_DAEMON_PID/fd" 2>/dev/null; cat "/proc/$LAB_DAEMON_PID/maps" 2>/dev/null) |
  grep -c "$D1" || true)
lab_check "the daemon holds $D1 neither open nor mapped" test "$holds" -eq 0

UDAX_CLIENT=$client1
media_udax_client_end "${on1[0]}" /tmp/udax-hold1
lab_check "device 1's client was revoked: SIGBUS on its next touch" \
  grep -q '^SIGBUS ' "$LAB_OUT/udax-client-${on1[0]}.log"
UDAX_CLIENT=$client0
media_udax_client_end "${on0[0]}" /tmp/udax-hold0
lab_check "device 0's client kept its map: no signal on its next touch" \
  grep -q 'second touch: no signal' "$LAB_OUT/udax-client-${on0[0]}.log"

lab_step "the mount after the unplug of device 1"
echo 3 >/proc/sys/vm/drop_caches
check_reads "device 0" "ok intact" "${on0[@]}"
check_reads "device 1, never stale data" "error: Input/output error" "${on1[@]}"
lab_check "a new file can be written" sh -c "head -c 65536 /dev/urandom >$MNT/after-unplug && sync $MNT/after-unplug"
lab_check "the daemon is alive and the mount answers" lab_daemon_alive "$MNT"
if lab_events "$MNT" >/dev/null; then
  lab_check "the event log records device 1's removal" grep -q 'device-removed' "$LAB_OUT/events.json"
fi

lab_step "madvise(MADV_HWPOISON) on device 0, under ${on0[1]}"
off=$(devoff_of "${on0[1]}")
lab_info "${on0[1]} byte 0 is at offset $off of $D0"
"$POKE" madvise "$D0" "$off" | sed 's/^/   poisoner: /'
sleep 1
echo 3 >/proc/sys/vm/drop_caches
r=$(media_read "$MNT/${on0[1]}" "${on0[1]}")
lab_check "${on0[1]} (poisoned) reads EIO" test "$r" = "error: Input/output error"
r=$(media_read "$MNT/${on0[2]}" "${on0[2]}")
lab_check "${on0[2]} (device 0, not poisoned) reads back intact" test "$r" = "ok intact"
lab_check "the daemon is alive and the mount answers" lab_daemon_alive "$MNT"
if lab_events "$MNT" >/dev/null; then
  lab_check "the event log names ${on0[1]}" grep -q "${on0[1]}" "$LAB_OUT/events.json"
fi

lab_step "device 1 comes back while mounted: daxctl enable-device, udaxctl add-device with its path"
lab_check "daxctl enable-device $dax1" daxctl enable-device "$dax1"
for ((i = 0; i < 50; i++)); do [[ -c $D1 ]] && break; sleep 0.1; done
# The node is made again; the daemon's mapping of the old one is dead (SIGBUS), so the
# device is mapped afresh from the path, in its place, while the filesystem serves.
rc=0
"$UDAXCTL" add-device "$MNT" 1 "$D1" >"$LAB_OUT/add.log" 2>&1 || rc=$?
sed 's/^/   /' "$LAB_OUT/add.log"
lab_check "add-device $D1 takes device 1 back while mounted" test "$rc" -eq 0
echo 3 >/proc/sys/vm/drop_caches
check_reads "device 1, back" "ok intact" "${on1[@]}"
health=$("$UDAXCTL" health "$MNT" 2>&1 | head -n1 || true)
lab_info "health: $health"
lab_check "health no longer says degraded" test "${health/degraded/}" = "$health"
lab_check "a libudax client maps ${on1[1]} (device 1) through its new descriptor" \
  media_udax_client "${on1[1]}" /tmp/udax-hold2
media_udax_client_end "${on1[1]}" /tmp/udax-hold2
lab_check "the client of the device back touched its map twice, no signal" \
  grep -q 'second touch: no signal' "$LAB_OUT/udax-client-${on1[1]}.log"
lab_check "unmount: the daemon exits by itself" lab_unmount "$MNT"
rc=0
"$FSCK" -n "$TARGET" >"$LAB_OUT/fsck.log" 2>&1 || rc=$?
sed 's/^/   fsck: /' "$LAB_OUT/fsck.log"
# The poisoned page is known bad and the file's range marked: fsck may report it, but
# nothing about the devices.
lab_check "fsck does not call the filesystem degraded" sh -c "! grep -qi degraded $LAB_OUT/fsck.log"

lab_step "device 1 fails for good: udaxctl replace-device with a blank image"
lab_mount "$TARGET" "$MNT" || exit 1
lab_check "daxctl disable-device $dax1 (again)" daxctl disable-device "$dax1"
# (health exits 4 when degraded: pipefail must not hide what it printed.)
for ((i = 0; i < 100; i++)); do
  { "$UDAXCTL" health "$MNT" 2>/dev/null || true; } | head -n1 | grep -q 'degraded' && break
  sleep 0.1
done
lab_info "device 1 lost again at t=$(lab_uptime)s"
NEW=/dev/shm/replacement.img
truncate -s 512M "$NEW"
rc=0
"$UDAXCTL" replace-device "$MNT" 1 "$NEW" >"$LAB_OUT/replace.log" 2>&1 || rc=$?
sed 's/^/   /' "$LAB_OUT/replace.log"
lab_check "replace-device puts the image in device 1's place" test "$rc" -eq 0
lab_info "replaced at t=$(lab_uptime)s"
echo 3 >/proc/sys/vm/drop_caches
check_reads "device 0" "ok intact" "${on0[@]:2}"
check_reads "device 1, replaced: never zeros" "error: Input/output error" "${on1[@]}"
lab_check "health says degraded, with the lost files" sh -c "'$UDAXCTL' health '$MNT' | head -n1 | grep -q degraded"
lab_check "new files go on" sh -c "for i in 0 1 2 3; do head -c 65536 /dev/urandom >$MNT/after-replace\$i || exit 1; done; sync"
lab_check "the daemon is alive and the mount answers" lab_daemon_alive "$MNT"
lab_check "unmount: the daemon exits by itself" lab_unmount "$MNT"
lab_mount "$D0,$NEW" "$MNT" || exit 1
r=$(media_read "$MNT/${on0[2]}" "${on0[2]}")
lab_check "mounted over $D0 and the image: ${on0[2]} reads back intact" test "$r" = "ok intact"
lab_check "unmount: the daemon exits by itself" lab_unmount "$MNT"
rc=0
"$FSCK" -n "$D0,$NEW" >"$LAB_OUT/fsck-replaced.log" 2>&1 || rc=$?
sed 's/^/   fsck: /' "$LAB_OUT/fsck-replaced.log"
lab_check "fsck says DEGRADED (exit 4) with the lost files" \
  sh -c "test $rc -eq 4 && grep -q 'file(s) lost' $LAB_OUT/fsck-replaced.log"
rm -f "$NEW"
lab_finish
