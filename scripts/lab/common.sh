# shellcheck shell=bash disable=SC2034  # sourced: the variables are for the sourcing script
# common.sh -- shared settings of the pmem lab (sourced by the host-side scripts).
#
# The lab boots Debian's own kernel (linux-image-amd64) under QEMU TCG; everything it
# builds from that kernel (the uncompressed vmlinux, the initramfs, nfit_test modules) is
# cached outside the repository, keyed by the kernel version, so a run after the first
# costs only the boot.

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_ROOT=$(cd "$LAB_DIR/../.." && pwd)
LAB_CACHE=${UDAX_LAB_CACHE:-/var/cache/udaxfs-lab}

lab_log() { echo "lab: $*" >&2; }
lab_die() { echo "lab: error: $*" >&2; exit 1; }

# The guest kernel: the newest Debian image in /boot with its modules installed (the host
# may run another kernel entirely; only the packaged one is booted). UDAX_LAB_KVER picks
# one explicitly.
lab_kernel_version() {
  if [[ -n ${UDAX_LAB_KVER:-} ]]; then
    echo "$UDAX_LAB_KVER"
    return
  fi
  local v best=
  for v in /boot/vmlinuz-*-amd64; do
    [[ -e $v ]] || continue
    v=${v#/boot/vmlinuz-}
    [[ -d /lib/modules/$v/kernel ]] || continue
    if [[ -z $best ]] || [[ $(printf '%s\n%s\n' "$best" "$v" | sort -V | tail -n1) == "$v" ]]; then
      best=$v
    fi
  done
  [[ -n $best ]] || return 1
  echo "$best"
}
