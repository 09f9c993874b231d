#!/usr/bin/env bash
# poison.sh -- (guest) software-injected poison under a mounted udaxfs.
# (c), between (a) and (b): a pread(2) reader under the preload shim, whose reads come
# from a read view of the file, gets EIO for the page poisoned under it and survives.
#
#   poison.sh devdax|fsdax
# On a page holding a file's data: (a) madvise(MADV_HWPOISON) through a direct mapping of
# that page (what the poisoner, and the daemon, receive), (b) debugfs hwpoison/corrupt-pfn
# (BUS_MCEERR_AO, delivered only to early-kill processes: a direct-map client that opted
# in shows what the daemon would get; a libudax client holding a lease on that file is
# notified by the daemon with BUS_MCEERR_AO, mce_policy=notify). Logs, for each: the injected event, the signals the
# daemon received (strace), the kernel's account (dmesg), the owners of the range
# (udaxctl rmap: the reverse map), what reads of the poisoned and of another file return.
# Asserts what the daemon does today: it survives, the other file stays intact, unmount
# is clean; with an event log (`udaxctl events`, issue 6) also the resolved owner and EIO.
set -euo pipefail
# shellcheck source=../guest/lib.sh
. "$LAB_REPO/scripts/lab/guest/lib.sh"
# shellcheck source=../guest/media.sh
. "$LAB_REPO/scripts/lab/guest/media.sh"
lab_require_build
mode=${1:?devdax or fsdax}
MNT=/mnt/u

media_setup "$mode" "$MNT"
media_files "$MNT" victim victim2 bystander

lab_step "(a) madvise(MADV_HWPOISON) on the page holding victim's first byte"
media_owner victim
"$POKE" madvise "$TARGET" "$PHYS" | sed 's/^/   poisoner: /'
media_observe victim "madvise"

lab_step "(c) a reader under the preload shim (read views, issue 21) when its page is poisoned"
# Its reads come from a read view (the region mapped into the reader): the poisoned page
# must give it EIO -- a machine check under the shim's copy, or the range the daemon
# learnt -- and never a SIGBUS; a page of another allocation unit reads as before.
SHIM=$LAB_BUILD/client/libudax-preload.so
head -c 4194304 /dev/urandom >"$MNT/shimread"
sync "$MNT/shimread"
media_owner shimread
rm -f /tmp/shim-go
LD_PRELOAD=$SHIM "$POKE" preads "$MNT/shimread" /tmp/shim-go 0 3145728 >"$LAB_OUT/shim-reader.log" 2>&1 &
reader=$!
for ((i = 0; i < 100; i++)); do grep -q '^ready' "$LAB_OUT/shim-reader.log" && break; sleep 0.1; done
"$UDAXCTL" leases "$MNT" | sed 's/^/   leases: /'
"$POKE" madvise "$TARGET" "$PHYS" | sed 's/^/   poisoner: /'
touch /tmp/shim-go
reader_status=0
wait "$reader" || reader_status=$?
sed 's/^/   reader: /' "$LAB_OUT/shim-reader.log"
lab_check "the preloaded reader held a read view" grep -q '^ready' "$LAB_OUT/shim-reader.log"
lab_check "the preloaded reader survived (exit $reader_status)" test "$reader_status" -eq 0
lab_check "the poisoned page reads EIO through the shim" \
  test "$(grep -c '^pread 0: EIO' "$LAB_OUT/shim-reader.log")" -eq 1
lab_check "another allocation unit of the file reads the same bytes after" \
  test "$(grep '^pread 3145728: ok' "$LAB_OUT/shim-reader.log" | sort -u | wc -l)" -eq 1 -a \
  "$(grep -c '^pread 3145728: ok' "$LAB_OUT/shim-reader.log")" -eq 2

lab_step "(b) debugfs hwpoison/corrupt-pfn on the page holding victim2's first byte"
[[ -w /sys/kernel/debug/hwpoison/corrupt-pfn ]] || lab_skip "no debugfs hwpoison (hwpoison_inject)"
media_owner victim2
# A libudax client holds a lease on victim2 (mce_policy=notify, the default): the daemon
# must pass the error on to it as BUS_MCEERR_AO inside its mapping.
lab_check "a libudax client maps victim2 under a lease" media_udax_client victim2 /tmp/udax-hold
"$UDAXCTL" leases "$MNT" | sed 's/^/   leases: /'
# A direct-map client of the page with early kill: shows who gets BUS_MCEERR_AO.
"$POKE" spin "$TARGET" "$PHYS" 30 early >"$LAB_OUT/client.log" 2>&1 &
client=$!
for ((i = 0; i < 100; i++)); do grep -q '^ready' "$LAB_OUT/client.log" && break; sleep 0.1; done
pfn=$(sed -n 's/^ready pfn=\(0x[0-9a-f]*\).*/\1/p' "$LAB_OUT/client.log")
lab_info "injected: echo $pfn > /sys/kernel/debug/hwpoison/corrupt-pfn"
echo "$pfn" >/sys/kernel/debug/hwpoison/corrupt-pfn || lab_info "the corrupt-pfn write failed"
wait "$client" || true
sed 's/^/   client (early kill): /' "$LAB_OUT/client.log"
lab_check "the early-kill direct-map client got BUS_MCEERR_AO" grep -q 'si_code=5 (BUS_MCEERR_AO)' "$LAB_OUT/client.log"
media_udax_client_end victim2 /tmp/udax-hold
lab_check "the daemon notified the libudax client: BUS_MCEERR_AO inside its map" \
  grep -q '^SIGBUS BUS_MCEERR_AO at map offset' "$LAB_OUT/udax-client-victim2.log"
media_observe victim2 "corrupt-pfn"
if [[ -s $LAB_OUT/events.json ]]; then
  lab_check "the event log records the libudax client as notified" \
    grep -qE '"action": ?"notified' "$LAB_OUT/events.json"
fi

media_teardown "$MNT"
lab_finish
