#!/usr/bin/env bash
# inject.sh -- (guest, flavour nfit_test) `ndctl inject-error` under a mounted udaxfs.
#
#   inject.sh devdax|fsdax
# On the kernel's NVDIMM test bus (nfit_test.0, the one with error injection): a devdax
# namespace (4 KiB alignment: the bus maps 4 KiB pages only), or fsdax with ext4 -o dax
# (the regions are too small for xfs). udaxfs on it, then ndctl inject-error on the
# blocks holding a file's first page: logs the kernel's badblocks (sysfs, ndctl list
# --media-errors), the owners udaxfs resolves (udaxctl list --media-errors), the daemon's
# signals and what reads return. Then a latent error (inject-error -N: the kernel lists
# nothing until a scrub) that `udaxctl verify-media` finds through its Address Range
# Scrub (libndctl) and hands to the resolver. Then uninject + clear-errors. Checks: the
# injected blocks show up in the kernel's list, udaxctl names the file that owns them,
# the scrub finds the latent block and the event log names its file, the other file
# stays intact, the daemon survives, clean unmount.
set -euo pipefail
# shellcheck source=../guest/lib.sh
. "$LAB_REPO/scripts/lab/guest/lib.sh"
# shellcheck source=../guest/media.sh
. "$LAB_REPO/scripts/lab/guest/media.sh"
lab_require_build
mode=${1:?devdax or fsdax}
MNT=/mnt/u
BUS=nfit_test.0
[[ $LAB_FLAVOUR == nfit_test ]] || lab_skip "needs the nfit_test flavour"

lab_step "nfit_test: $BUS, labels, a $mode namespace"
ndctl disable-region -b "$BUS" all >/dev/null
ndctl init-labels -f -b "$BUS" all >/dev/null 2>&1 || true
ndctl enable-region -b "$BUS" all >/dev/null
if [[ $mode == devdax ]]; then
  ns=$(ndctl create-namespace -b "$BUS" -m devdax -a 4k | sed -n 's/.*"dev":"\([^"]*\)".*/\1/p' | head -n1)
  TARGET=/dev/$(ndctl list -N -n "$ns" | sed -n 's/.*"chardev":"\([^"]*\)".*/\1/p')
  "$MKFS" -f "$TARGET" | sed 's/^/   /'
else
  ns=$(ndctl create-namespace -b "$BUS" -m fsdax | sed -n 's/.*"dev":"\([^"]*\)".*/\1/p' | head -n1)
  blk=/dev/$(ndctl list -N -n "$ns" | sed -n 's/.*"blockdev":"\([^"]*\)".*/\1/p')
  mkfs.ext4 -q -F -b 4096 "$blk"
  mkdir -p /mnt/pmem && mount -o dax "$blk" /mnt/pmem
  TARGET=/mnt/pmem/region.img
  "$MKFS" -f -s 24M "$TARGET" | sed 's/^/   /'
fi
lab_info "namespace $ns -> $TARGET"
lab_mount "$TARGET" "$MNT" || exit 1
# shellcheck disable=SC2034  # read by media_observe: report only what comes after here
MEDIA_DMESG_SEEN=$(dmesg | wc -l)
media_files "$MNT" victim bystander latent
media_owner victim

# ns_block PHYS: the namespace-relative 512-byte block of region offset PHYS: on devdax
# the region offset is the device offset; on fsdax, the file's physical block on the
# ext4 device.
ns_block() {
  local phys=$1 fsblk
  if [[ $mode == devdax ]]; then
    echo $((phys / 512))
    return
  fi
  # filefrag -v lines: " 0:   0..  6143:   34816..  40959:   6144: ..." (4 KiB blocks).
  fsblk=$(filefrag -v -b4096 "$TARGET" | awk -v want=$((phys / 4096)) '
    /^ *[0-9]+:/ { gsub(/\.\.|:/, " "); if (want >= $2 && want <= $3) { print $4 + want - $2; exit } }')
  [[ -n $fsblk ]] || { echo "region offset $phys not found in filefrag -v $TARGET" >&2; return 1; }
  echo $((fsblk * 8 + phys % 4096 / 512))
}
block=$(ns_block "$PHYS")

lab_step "ndctl inject-error -B $block -n 8 $ns"
ndctl inject-error -B "$block" -n 8 "$ns" 2>&1 | tr -d ' \n' | sed 's/^/   /'; echo
ndctl inject-error --status "$ns" 2>&1 | tr -d ' \n' | sed 's/^/   status: /'; echo
sleep 3  # the kernel's badblocks update (and its POLLPRI) comes ~2 s after the inject
ndctl list --media-errors -n "$ns" 2>&1 | tr -d ' \n' | cut -c1-400 | sed 's/^/   ndctl list --media-errors: /'; echo
lab_check "the kernel lists the injected blocks" sh -c "ndctl list --media-errors -n $ns | grep -q badblock_count"
"$UDAXCTL" list --media-errors "$MNT" >"$LAB_OUT/media-errors.txt" 2>&1 || true
sed 's/^/   udaxctl list --media-errors: /' "$LAB_OUT/media-errors.txt"
lab_check "udaxctl list --media-errors names the owner: $MNT/victim" grep -q "path $MNT/victim" "$LAB_OUT/media-errors.txt"
media_observe victim "ndctl inject-error"

lab_step "a latent error: inject-error -N, found by udaxctl verify-media's scrub"
media_owner latent
latent_phys=$PHYS
latent_block=$(ns_block "$PHYS")
ndctl inject-error -N -B "$latent_block" -n 1 "$ns" 2>&1 | tr -d ' \n' | sed 's/^/   /'; echo
sleep 3
ndctl list --media-errors -n "$ns" 2>&1 | tr -d ' \n' | cut -c1-400 | sed 's/^/   before the scrub: /'; echo
"$UDAXCTL" verify-media "$MNT" --json >"$LAB_OUT/verify.json" 2>"$LAB_OUT/verify.err" || true
"$UDAXCTL" verify-media "$MNT" 2>&1 | sed 's/^/   udaxctl verify-media: /' || true
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("   kernel:", json.dumps(r.get("kernel"))); [print("   found:", json.dumps(f)) for f in r["found"]]' \
  "$LAB_OUT/verify.json" || cat "$LAB_OUT/verify.err"
lab_check "verify-media ran an Address Range Scrub on the bus" python3 -c '
import json, sys
sys.exit(0 if json.load(open(sys.argv[1]))["kernel"]["scrubbed"] else 1)' "$LAB_OUT/verify.json"
lab_check "verify-media found the latent block, from the kernel's list, owned by latent" python3 -c '
import json, sys
phys = int(sys.argv[2])
for f in json.load(open(sys.argv[1]))["found"]:
    if f["offset"] <= phys < f["offset"] + f["length"] and f["source"] == "kernel" and \
       any(o.get("path", "").endswith("/latent") for o in f["owners"]):
        sys.exit(0)
sys.exit(1)' "$LAB_OUT/verify.json" "$latent_phys"
for ((i = 0; i < 50; i++)); do
  "$UDAXCTL" events "$MNT" --json 2>/dev/null | grep -q '/latent' && break
  sleep 0.2
done
media_observe latent "the scrub's find"

lab_step "ndctl inject-error --uninject, ndctl clear-errors"
ndctl inject-error --uninject -B "$block" -n 8 "$ns" >/dev/null 2>&1 || lab_info "uninject: status $?"
ndctl inject-error --uninject -B "$latent_block" -n 1 "$ns" >/dev/null 2>&1 || lab_info "uninject: status $?"
ndctl clear-errors "$ns" 2>&1 | tail -n 2 | sed 's/^/   /' || true
sleep 3
ndctl list --media-errors -n "$ns" 2>&1 | tr -d ' \n' | cut -c1-300 | sed 's/^/   ndctl list --media-errors: /'; echo
{ "$UDAXCTL" list --media-errors "$MNT" 2>&1 || true; } | head -n 3 | sed 's/^/   udaxctl list --media-errors: /'
# On devdax, clear-errors rebinds the namespace (an unbind uevent): the daemon must take
# that as a device removal and shut the filesystem down cleanly, without exiting.
daemon_log=$LAB_OUT/daemon-$(basename "$MNT").log
if grep -q "shutting down: device removed" "$daemon_log"; then
  lab_info "$(grep -m1 "shutting down: device removed" "$daemon_log")"
  lab_check "the daemon survives the device removal clear-errors caused" kill -0 "$LAB_DAEMON_PID"
else
  lab_check "the daemon is alive after the errors are cleared" lab_daemon_alive "$MNT"
fi

media_teardown "$MNT"
[[ $mode == fsdax ]] && umount /mnt/pmem
lab_finish
