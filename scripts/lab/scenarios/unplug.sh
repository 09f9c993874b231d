#!/usr/bin/env bash
# unplug.sh -- (guest) the devdax device goes away under a mounted udaxfs.
#
# A direct-map client maps a page of a file's data and keeps reading it, and a libudax
# client holds a lease on another file; then
# `daxctl disable-device` unbinds the device while udaxfs serves it. Logs the uevents (what
# the daemon's listener would get), the client's signal, the daemon's signals, and what
# reads, a write and statfs on the mount return afterwards. Asserts: the disable succeeds
# (the kernel lets it, shared/lab/README.md), the client sees SIGBUS on its next touch,
# the daemon revokes the lease (the libudax client's next touch gets SIGBUS; the event log
# and `udaxctl leases` show it),
# the daemon survives reads of the vanished device (the machine-check-safe routine turns
# the fault into EIO), and unmount ends the daemon cleanly.
set -euo pipefail
# shellcheck source=../guest/lib.sh
. "$LAB_REPO/scripts/lab/guest/lib.sh"
# shellcheck source=../guest/media.sh
. "$LAB_REPO/scripts/lab/guest/media.sh"
lab_require_build
MNT=/mnt/u

media_setup devdax "$MNT"
media_files "$MNT" client-file bystander
dax=${TARGET#/dev/}

python3 "$LAB_REPO/scripts/lab/guest/uevents.py" >"$LAB_OUT/uevents.log" 2>&1 &
listener=$!
media_owner client-file
"$POKE" spin "$TARGET" "$PHYS" 60 touch >"$LAB_OUT/client.log" 2>&1 &
client=$!
for ((i = 0; i < 100; i++)); do grep -q '^ready' "$LAB_OUT/client.log" && break; sleep 0.1; done

lab_check "a libudax client maps bystander under a lease" media_udax_client bystander /tmp/udax-hold
"$UDAXCTL" leases "$MNT" | sed 's/^/   leases before: /'

lab_step "daxctl disable-device $dax (udaxfs mounted, clients mapped)"
lab_check "daxctl disable-device succeeds" daxctl disable-device "$dax"
wait "$client" || true
sed 's/^/   client: /' "$LAB_OUT/client.log"
lab_check "the client got SIGBUS on its next touch" grep -q '^sigbus' "$LAB_OUT/client.log"
sleep 1
kill "$listener" 2>/dev/null || true
sed 's/^/   uevent: /' "$LAB_OUT/uevents.log"
lab_check "a uevent announced the unbind of $dax" grep -q "^unbind@.*/$dax " "$LAB_OUT/uevents.log"

media_udax_client_end bystander /tmp/udax-hold
lab_check "the lease was revoked: the libudax client got SIGBUS on its next touch" \
  grep -q '^SIGBUS ' "$LAB_OUT/udax-client-bystander.log"
leases=$("$UDAXCTL" leases "$MNT" 2>&1 || true)
sed 's/^/   leases after: /' <<<"$leases"
lab_check "no lease is left" grep -q 'no direct maps' <<<"$leases"

lab_step "the mount after the unplug"
echo 3 >/proc/sys/vm/drop_caches
for f in client-file bystander; do
  r=$(media_read "$MNT/$f" "$f")
  lab_info "read $f: $r"
  lab_check "$f reads EIO, never stale data" test "$r" = "error: Input/output error"
done
lab_info "statfs: $(timeout 10 stat -f -c 'blocks=%b free=%f' "$MNT" 2>&1)"
lab_check "the daemon survives reads of the vanished device" lab_daemon_alive "$MNT"
lab_info "write a new file: $(timeout 10 sh -c "echo x > $MNT/after-unplug && sync $MNT/after-unplug" 2>&1 && echo ok)"
lab_check "the daemon survives a write to the vanished device" lab_daemon_alive "$MNT"
lab_daemon_signals | sed 's/^/   daemon received: /' || lab_info "the daemon received no signal (it stopped touching the device at the uevent)"
if lab_events "$MNT"; then
  lab_check "the event log records the device removal" grep -q 'device-removed' "$LAB_OUT/events.json"
  lab_check "the event log records the lease revoked" grep -qE '"action": ?"revoked"' "$LAB_OUT/events.json"
fi

lab_step "teardown"
if kill -0 "$LAB_DAEMON_PID" 2>/dev/null; then
  lab_check "unmount: the daemon exits by itself" lab_unmount "$MNT"
else
  lab_info "the daemon is gone: $(grep -E '\+\+\+ (killed|exited)' "$LAB_STRACE" | tail -n1)"
  umount -l "$MNT" 2>/dev/null || true
fi
lab_finish
