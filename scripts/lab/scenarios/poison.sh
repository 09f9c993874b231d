#!/usr/bin/env bash
# poison.sh -- (guest) software-injected poison under a mounted udaxfs.
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
