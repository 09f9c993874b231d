#!/usr/bin/env bash
# nfit_test.sh -- prints the directory of nfit_test modules for the guest kernel, building
# them once from Debian's linux-source.
#
#   scripts/lab/nfit_test.sh         -> LAB_CACHE/KVER/nfit_test/ (cached; *.ko + load order)
#
# nfit_test is the kernel's own NVDIMM test bus (tools/testing/nvdimm): an NFIT with
# error-injection DSMs, which `ndctl inject-error` needs and QEMU's nvdimm lacks. Built as
# out-of-tree modules against linux-headers-KVER; the headers lack the drivers' private
# headers, hence KCFLAGS -I into the source (shared/lab/README.md). Pristine 6.1 crashes
# the guest at the first DAX mapping: nfit_test/nfit_test-6.1.patch carries our fixes
# (translate the bus's fake address for device dax, device-memory pfns, recovery writes,
# clear page->mapping before vfree). Only the source tree's nvdimm, nfit and dax
# directories are unpacked, outside the repository.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

kver=$(lab_kernel_version) || lab_die "no Debian kernel in /boot"
series=${kver%%-*}                         # 6.1.0-56-amd64 -> 6.1.0 -> linux-source-6.1
series=${series%.*}
tarball=/usr/src/linux-source-$series.tar.xz
headers=/lib/modules/$kver/build
patch=$LAB_DIR/nfit_test/nfit_test-$series.patch
out=$LAB_CACHE/$kver/nfit_test
[[ -r $tarball ]] || lab_die "$tarball missing (scripts/setup.sh installs linux-source-$series)"
[[ -d $headers ]] || lab_die "$headers missing (linux-headers-$kver)"
[[ -r $patch ]] || lab_die "no patch for $series: $patch"

# Loaded in this order by guest/lib.sh (each after the modules it needs).
ORDER=(test/nfit_test_iomap libnvdimm nfit nd_btt nd_pmem device_dax dax_pmem test/nfit_test)
if [[ -f $out/order && $out/order -nt $tarball && $out/order -nt $patch ]]; then
  echo "$out"
  exit 0
fi
rm -rf "$out"
mkdir -p "$out"
src=$out/src
mkdir -p "$src"
lab_log "nfit_test: unpacking $(basename "$tarball") (nvdimm, nfit, dax)"
tar xJf "$tarball" -C "$src" --strip-components=1 "linux-source-$series/tools/testing/nvdimm" \
  "linux-source-$series/drivers/nvdimm" "linux-source-$series/drivers/acpi/nfit" \
  "linux-source-$series/drivers/dax"
patch -s -d "$src" -p1 <"$patch"
lab_log "nfit_test: building against $headers"
make -s -C "$headers" M="$src/tools/testing/nvdimm" \
  KCFLAGS="-I$src/drivers/nvdimm -I$src/drivers/acpi/nfit" -j "$(nproc)" modules \
  >"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log" >&2; lab_die "nfit_test build failed ($out/build.log)"; }
for m in "${ORDER[@]}"; do
  cp "$src/tools/testing/nvdimm/$m.ko" "$out/"
  basename "$m" >>"$out/order.tmp"
done
rm -rf "$src"
mv "$out/order.tmp" "$out/order"
echo "$out"
