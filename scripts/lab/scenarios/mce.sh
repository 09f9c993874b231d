#!/usr/bin/env bash
# mce.sh -- (guest) machine checks from the QEMU monitor under a mounted udaxfs.
#
#   mce.sh devdax|fsdax
# The host agent (scripts/lab/monitor.py) injects `mce` on CPU 0, bank 1, only while the
# vCPU runs the user-mode loop of a direct-map client of the page (lab_poke spin), as the
# kernel expects of a consumed error (shared/lab/README.md):
#   SRAO  status 0xBD000000000000C0 mcgstatus 0x5  on a page of file data (client: early kill)
#   SRAR  status 0xBD80000000000134 mcgstatus 0x7  on a page of file data (the client consumes)
#   SRAO  on the first page of the region: metadata (superblock, journal)
#   SRAO  on a directory block (metadata with a second copy, issue 17): repaired online
#         from the copy; the directory lists the same names, nothing shuts down
# For each: the injected event, what the client and the daemon received, the kernel's
# account, the nvdimm's badblocks, the owners (udaxctl rmap), reads after. Asserts: the
# client got the expected code, the daemon survives, other files intact, clean unmount.
set -euo pipefail
# shellcheck source=../guest/lib.sh
. "$LAB_REPO/scripts/lab/guest/lib.sh"
# shellcheck source=../guest/media.sh
. "$LAB_REPO/scripts/lab/guest/media.sh"
lab_require_build
mode=${1:?devdax or fsdax}
MNT=/mnt/u
SRAO=(0xBD000000000000C0 0x5)
SRAR=(0xBD80000000000134 0x7)

media_setup "$mode" "$MNT"
media_files "$MNT" victim-ao victim-ar bystander

# inject KIND STATUS MCGSTATUS OFFSET CLIENT_FLAGS: a client spins on the page at region
# OFFSET, the host injects the MCE there, the client reports.
inject() {
  local kind=$1 status=$2 mcg=$3 off=$4 flags=$5 client pfn text i
  # shellcheck disable=SC2086  # flags: zero or more words
  "$POKE" spin "$TARGET" "$off" 60 $flags >"$LAB_OUT/client.log" 2>&1 &
  client=$!
  for ((i = 0; i < 100; i++)); do grep -q '^ready' "$LAB_OUT/client.log" && break; sleep 0.1; done
  pfn=$(sed -n 's/^ready pfn=\(0x[0-9a-f]*\).*/\1/p' "$LAB_OUT/client.log")
  text=$(sed -n 's/^ready .* text=\(.*\)/\1/p' "$LAB_OUT/client.log")
  [[ -n $pfn && $pfn != 0x0 ]] || { cat "$LAB_OUT/client.log"; kill "$client"; return 1; }
  local addr
  addr=$(printf '%#x' $((pfn * 4096)))
  lab_info "injected: mce 0 1 $status $mcg $addr 0x8c ($kind, guest physical $addr, pfn $pfn)"
  lab_host mce-user 0 1 "$status" "$mcg" "$addr" 0x8c "${text%-*}" "${text#*-}" | sed 's/^/   monitor: /'
  wait "$client" || true
  sed 's/^/   client: /' "$LAB_OUT/client.log"
}

lab_step "SRAO on victim-ao's page (client with early kill)"
media_owner victim-ao
inject SRAO "${SRAO[@]}" "$PHYS" early
lab_check "the early-kill client got BUS_MCEERR_AO" grep -q 'si_code=5 (BUS_MCEERR_AO)' "$LAB_OUT/client.log"
media_observe victim-ao "SRAO"

lab_step "SRAR on victim-ar's page (the client's loop consumes it)"
media_owner victim-ar
inject SRAR "${SRAR[@]}" "$PHYS" ""
lab_check "the consuming client got BUS_MCEERR_AR" grep -q 'si_code=4 (BUS_MCEERR_AR)' "$LAB_OUT/client.log"
media_observe victim-ar "SRAR"

lab_step "SRAO on the region's first page (metadata)"
"$UDAXCTL" rmap "$MNT" 0+4096 2>&1 | sed 's/^/   owners (udaxctl rmap): /'
inject SRAO "${SRAO[@]}" 0 early
media_observe "(metadata)" "SRAO on metadata"
lab_check "a metadata operation still works (mkdir)" mkdir "$MNT/after-metadata-mce"

lab_step "SRAO on a directory block (first copy; the second lives in the partner AU)"
DIR_NAMES=$LAB_OUT/dir-mce.names
mkdir "$MNT/dir-mce"
for ((i = 0; i < 40; i++)); do echo "$i" >"$MNT/dir-mce/entry-$i"; done
sync "$MNT/dir-mce"
ls "$MNT/dir-mce" >"$DIR_NAMES"
size=$(media_region_size)
"$UDAXCTL" rmap --json "$MNT" "0+$size" >"$LAB_OUT/rmap.json"
DIR_PHYS=$(python3 -c '
import json, sys
for o in json.load(open(sys.argv[1])):
    if o["kind"] == "directory" and o.get("path") == sys.argv[2] and "copy" not in o:
        print(o["phys"]); break
else:
    sys.exit("no first copy of " + sys.argv[2] + " in the reverse map")' "$LAB_OUT/rmap.json" "$MNT/dir-mce")
lab_info "/dir-mce's first copy is at region offset $DIR_PHYS ($(printf '%#x' "$DIR_PHYS"))"
"$UDAXCTL" rmap "$MNT" "$DIR_PHYS" 2>&1 | sed 's/^/   owners (udaxctl rmap): /'
inject SRAO "${SRAO[@]}" "$DIR_PHYS" early
media_observe "(directory)" "SRAO on a directory block"
if [[ -f $LAB_OUT/events.json ]]; then
  lab_check "the event log says the directory block was repaired" python3 -c '
import json, sys
text = open(sys.argv[1]).read()
events = json.loads(text) if text.lstrip().startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]
sys.exit(0 if any(o.get("kind") == "directory" and o.get("action") == "repaired"
                  for e in events for o in e.get("owners", [])) else 1)' "$LAB_OUT/events.json"
fi
echo 3 >/proc/sys/vm/drop_caches
lab_check "/dir-mce lists the same 40 names" diff <(ls "$MNT/dir-mce") "$DIR_NAMES"
lab_check "an entry of /dir-mce reads back" grep -qx 17 "$MNT/dir-mce/entry-17"
lab_check "/dir-mce takes a new entry" touch "$MNT/dir-mce/after-mce"
"$UDAXCTL" health "$MNT" 2>&1 | sed 's/^/   udaxctl health: /' || true

lab_step "the kernel's badblocks after the machine checks"
if [[ $LAB_FLAVOUR == nvdimm ]]; then
  for f in /sys/bus/nd/devices/region*/badblocks; do lab_info "$f: $(tr '\n' ' ' <"$f")"; done
  ndctl list --media-errors 2>&1 | tr -d ' \n' | cut -c1-400 | sed 's/^/   ndctl list --media-errors: /'
  echo
fi
"$UDAXCTL" list --media-errors "$MNT" >"$LAB_OUT/media-errors.txt" 2>&1 || true
sed 's/^/   udaxctl list --media-errors: /' "$LAB_OUT/media-errors.txt"
# The NFIT driver records every machine check's page in the region's badblocks; udaxfs's
# reverse map names their owners (through the daemon).
if [[ $LAB_FLAVOUR == nvdimm ]]; then
  for owner in "path $MNT/victim-ao" "path $MNT/victim-ar" "superblock"; do
    lab_check "udaxctl list --media-errors names the owner: $owner" grep -q "$owner" "$LAB_OUT/media-errors.txt"
  done
fi

media_teardown "$MNT"
lab_finish
