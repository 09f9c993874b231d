#!/usr/bin/env bash
# hotadd.sh -- (guest) an NVDIMM hot-added through the host agent, then udaxfs on it.
#
# The agent's hotadd-nvdimm request (object-add + device_add on QMP) plugs a 256 MiB
# nvdimm into the running guest; ACPI tells the NFIT driver, a second region appears, and
# udaxfs is formatted and mounted on a devdax namespace of it. Checks each step.
set -euo pipefail
# shellcheck source=../guest/lib.sh
. "$LAB_REPO/scripts/lab/guest/lib.sh"
lab_require_build
[[ $LAB_FLAVOUR == nvdimm ]] || lab_skip "needs the nvdimm flavour"

lab_step "before: $(ndctl list -R | grep -c '"dev"') region(s)"
lab_check "the host agent hot-adds an nvdimm" lab_host hotadd-nvdimm nv2 256M
new=
end=$((SECONDS + 30))
while ((SECONDS < end)); do
  new=$(ndctl list -N | sed -n 's/.*"dev":"\(namespace[1-9][0-9]*\.0\)".*/\1/p' | head -n1)
  [[ -n $new ]] && break
  sleep 1
done
lab_info "after: $(ndctl list -R | grep -c '"dev"') region(s); new namespace: ${new:-none}"
lab_check "a namespace appears on the new nvdimm" test -n "$new"
[[ -n $new ]] || lab_finish
ndctl create-namespace -f -e "$new" -m devdax --align 2M >/dev/null
dev=/dev/$(ndctl list -N -n "$new" | sed -n 's/.*"chardev":"\([^"]*\)".*/\1/p')
lab_info "devdax on the hot-added nvdimm: $dev"
"$MKFS" -f "$dev" | sed 's/^/   /'
lab_check "udaxfs mounts it" lab_mount "$dev" /mnt/hot
echo hot >/mnt/hot/f
lab_check "a file written there reads back" test "$(cat /mnt/hot/f)" = hot
lab_check "unmount: the daemon exits by itself" lab_unmount /mnt/hot
lab_finish
