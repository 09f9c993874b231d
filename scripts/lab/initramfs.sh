#!/usr/bin/env bash
# initramfs.sh -- prints the path of the lab's initramfs, building it once per kernel.
#
#   scripts/lab/initramfs.sh         -> LAB_CACHE/KVER/initramfs.cpio.gz (cached)
#
# Contents: busybox-static, guest/init, and the modules that must be loaded before the
# host root is reachable (virtio PCI, 9p, overlay), in dependency order. Everything else
# is loaded with modprobe from the host's /lib/modules once the guest runs on it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

kver=$(lab_kernel_version) || lab_die "no Debian kernel in /boot"
out=$LAB_CACHE/$kver/initramfs.cpio.gz
busybox=/bin/busybox
# A dynamic busybox would need its libraries in the initramfs too.
if [[ ! -x $busybox ]] || readelf -l "$busybox" 2>/dev/null | grep -q INTERP; then
  lab_die "$busybox is not busybox-static (scripts/setup.sh installs it)"
fi
# Loaded by guest/init in this order (each after its dependencies).
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
         netfs fscache 9pnet 9pnet_virtio 9p overlay)

if [[ -s $out && $out -nt $LAB_DIR/guest/init && $out -nt $LAB_DIR/initramfs.sh ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$(dirname "$out")"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree"/{bin,dev,proc,sys,modules}
cp "$busybox" "$tree/bin/busybox"
install -m 755 "$LAB_DIR/guest/init" "$tree/init"
for m in "${MODULES[@]}"; do
  f=$(modinfo -k "$kver" -F filename "$m") || lab_die "module $m not found for $kver"
  case $f in
    *.ko) cp "$f" "$tree/modules/$m.ko" ;;
    *.ko.xz) xz -dc "$f" >"$tree/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$tree/modules/$m.ko" ;;
    *) lab_die "module $m: unexpected file $f" ;;
  esac
  echo "$m" >>"$tree/modules.order"
done
(cd "$tree" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
