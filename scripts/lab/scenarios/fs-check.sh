#!/usr/bin/env bash
# fs-check.sh -- (guest) the mounted-filesystem suite (tests/fs/check) on real DAX.
#
#   fs-check.sh devdax|fsdax [TEST...]
# devdax: namespace0.0 as /dev/daxX.Y with 4 KiB alignment, so mkfs takes 4 KiB allocation
#   units as on the suite's images (its space accounting assumes them; 022 asks for 2m);
#   every test reformats the device (UDAX_TEST_DEVICE). Tests that treat TEST_IMG as a
#   file are left out (below).
# fsdax: xfs -o dax on /dev/pmemN; every test's image is a file there, so udaxfs maps it
#   with MAP_SYNC (UDAX_TEST_BASE). All tests apply.
# Results (NNN.out.bad, NNN.full) go to LAB_OUT/fs-results-MODE.
set -euo pipefail
# shellcheck source=../guest/lib.sh
. "$LAB_REPO/scripts/lab/guest/lib.sh"
lab_require_build
mode=${1:?devdax or fsdax}
shift

# Tests that cannot run on a device target, and why:
#   014 statfs compares with the image's file size     015 checksums and mkfs the image file
#   017 sha256sum of the image (devdax has no read(2))  029 md5sum of the image
#   033 034 039 040 041 042 044   udaxctl inject-error refuses a device (its poison is
#                                 real: the lab's poison, mce and inject scenarios cover it)
#   036 037 038 damage the image with file writes     045 md5sum of the image
DEVICE_EXCLUDES=(014 015 017 029 033 034 036 037 038 039 040 041 042 044 045)

excl=()
case $mode in
  devdax)
    lab_step "devdax namespace"
    dev=$(lab_devdax 4K) || { echo "could not create a devdax namespace"; exit 1; }
    ndctl list -N -n namespace0.0
    daxctl list -d "${dev#/dev/}"
    export UDAX_TEST_DEVICE=$dev
    for t in "${DEVICE_EXCLUDES[@]}"; do excl+=(-x "$t"); done
    ;;
  fsdax)
    lab_step "fsdax namespace, xfs -o dax"
    lab_fsdax /mnt/pmem >/dev/null || { echo "could not create an fsdax namespace with xfs -o dax"; exit 1; }
    ndctl list -N -n namespace0.0
    grep " /mnt/pmem " /proc/mounts
    export UDAX_TEST_BASE=/mnt/pmem
    ;;
  *) echo "fs-check.sh: unknown mode $mode" >&2; exit 2 ;;
esac

lab_step "tests/fs/check on $mode: ${*:-all tests}"
# Under TCG a test takes about 20 times its host time: 600 s instead of check's 300.
"$LAB_REPO/tests/fs/check" -b "$LAB_BUILD" -t 600 -r "$LAB_OUT/fs-results-$mode" "${excl[@]}" "$@" |
  tee "$LAB_OUT/fs-check-$mode.log"
rc=${PIPESTATUS[0]}
# A run that ran nothing proves nothing.
grep -qE '^[1-9][0-9]* passed' "$LAB_OUT/fs-check-$mode.log" || { echo "no test passed"; exit 1; }
exit "$rc"
