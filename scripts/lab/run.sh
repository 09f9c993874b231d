#!/usr/bin/env bash
# run.sh -- boots a lab guest, runs ONE test script inside it, brings the results out.
#
# usage: scripts/lab/run.sh [-f FLAVOUR] [-p SIZE] [-m MEM] [-c CPUS] [-t SECONDS]
#                           [-o OUT_DIR] [-b BUILD_DIR] SCRIPT [ARGS...]
#   -f FLAVOUR   pmem in the guest: none, memmap (e820: memmap=SIZE!4G), nvdimm (QEMU
#                NVDIMM, an NFIT bus for ndctl; default), nvdimm2 (two QEMU NVDIMMs of SIZE
#                each: two regions, namespace0.0 and namespace1.0) or nfit_test (the kernel's
#                test bus with error injection, built by nfit_test.sh; -p does not apply)
#   -p SIZE      pmem size, QEMU syntax (default 1G)
#   -m MEM       guest RAM (default 2G; memmap adds 3G below the pmem at 4G)
#   -c CPUS      vCPUs (default 1: machine checks are injected on CPU 0)
#   -t SECONDS   the test's time limit inside the guest (default 600); QEMU is killed 60 s
#                after it
#   -o OUT_DIR   keep the results there (default: a temporary directory, removed)
#   -b BUILD_DIR udaxfs build the guest uses (default build/); exported as LAB_BUILD
# SCRIPT runs as root in the guest (bash) with LAB_REPO, LAB_BUILD, LAB_OUT (the results
# share, also where scripts/lab/guest/lib.sh puts requests for the host agent) and
# LAB_FLAVOUR set. Its output is shown as it runs (the guest's serial console) and kept in
# OUT/test.log; OUT also gets console.log, dmesg.txt, syslog.txt and monitor.log.
# Exit status: the script's; 77 when QEMU cannot boot a guest here (skipped, with the
# reason); 1 when the guest died or hung before the script ended.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

flavour=nvdimm pmem=1G mem=2G cpus=1 tmo=600 out='' build=$LAB_ROOT/build
usage() { sed -n '4,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts f:p:m:c:t:o:b:h opt; do
  case $opt in
    f) flavour=$OPTARG ;;
    p) pmem=$OPTARG ;;
    m) mem=$OPTARG ;;
    c) cpus=$OPTARG ;;
    t) tmo=$OPTARG ;;
    o) out=$OPTARG ;;
    b) build=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
(($#)) || usage
script=$(realpath "$1")
shift
[[ -f $script ]] || lab_die "no test script $script"
[[ $build = /* ]] || build=$LAB_ROOT/$build

skip() { echo "lab: SKIP: $*"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed (scripts/setup.sh)"
kernel=$("$LAB_DIR/kernel.sh") || skip "no bootable Debian kernel (linux-image-amd64)"
initrd=$("$LAB_DIR/initramfs.sh") || lab_die "could not build the initramfs"
kver=$(lab_kernel_version)

work=$(mktemp -d "${TMPDIR:-/tmp}/udaxfs-lab.XXXXXX")
qemu_pid='' agent_pid='' tail_pid=''
# shellcheck disable=SC2317  # a trap handler
cleanup() {
  local rc=$?
  for p in $qemu_pid $agent_pid $tail_pid; do kill "$p" 2>/dev/null || true; done
  for p in $qemu_pid $agent_pid $tail_pid; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ -n $out ]]; then
  mkdir -p "$out"
  out=$(realpath "$out")
  rm -rf "${out:?}"/{req,rc,test.log,console.log,dmesg.txt,syslog.txt,monitor.log,job.env}
else
  out=$work/out
  mkdir -p "$out"
fi
mkdir -p "$out/req"

# The job, for guest/stage2.sh (sourced there).
{
  printf 'LAB_TEST=%q\n' "$script"
  printf 'LAB_ARGS=%q\n' "$(printf '%q ' "$@")"
  printf 'LAB_FLAVOUR=%q\nLAB_TIMEOUT=%q\n' "$flavour" "$tmo"
  printf 'LAB_REPO=%q\nLAB_BUILD=%q\n' "$LAB_ROOT" "$build"
} >"$out/job.env"

# Debian's kernel under TCG (the KVM here cannot run it); Intel's vendor string so the
# guest takes Linux's Intel machine-check path for `mce` injection.
append="console=ttyS0 loglevel=4 panic=-1 oops=panic lab.stage2=$LAB_DIR/guest/stage2.sh"
# shellcheck disable=SC2054  # commas belong to QEMU's option syntax
qemu=(qemu-system-x86_64 -nodefaults -no-user-config -accel tcg -cpu max,vendor=GenuineIntel
      -smp "$cpus" -display none -no-reboot -net none
      -kernel "$kernel" -initrd "$initrd"
      -chardev "file,id=con,path=$out/console.log" -serial chardev:con
      -qmp "unix:$work/qmp.sock,server=on,wait=off"
      -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
      -virtfs "local,path=$out,mount_tag=labout,security_model=none,multidevs=remap")
case $flavour in
  none) qemu+=(-machine pc -m "$mem") ;;
  memmap)
    # e820 pmem: RAM above 4 GiB becomes legacy pmem (nd_e820). -m covers 3 GiB below the
    # PCI hole, then the pmem.
    qemu+=(-machine pc -m "$(( $(numfmt --from=iec "$mem") / 1048576 + 1024 + $(numfmt --from=iec "$pmem") / 1048576 ))M")
    append+=" memmap=$pmem!4G" ;;
  nfit_test)
    # The test bus puts its fake pmem at 4-8 GiB: keep guest RAM below (3 GiB at most).
    nfit=$("$LAB_DIR/nfit_test.sh") || lab_die "cannot build nfit_test (scripts/lab/nfit_test.sh)"
    printf 'LAB_NFIT_DIR=%q\n' "$nfit" >>"$out/job.env"
    qemu+=(-machine pc -m "$mem") ;;
  nvdimm)
    truncate -s "$pmem" "$work/nvdimm.img"
    # shellcheck disable=SC2054
    qemu+=(-machine pc,nvdimm=on -m "$mem,slots=4,maxmem=16G"
           -object "memory-backend-file,id=mem1,share=on,mem-path=$work/nvdimm.img,size=$pmem"
           -device nvdimm,id=nv1,memdev=mem1) ;;
  nvdimm2)
    truncate -s "$pmem" "$work/nvdimm.img" "$work/nvdimm2.img"
    # shellcheck disable=SC2054
    qemu+=(-machine pc,nvdimm=on -m "$mem,slots=4,maxmem=16G"
           -object "memory-backend-file,id=mem1,share=on,mem-path=$work/nvdimm.img,size=$pmem"
           -device nvdimm,id=nv1,memdev=mem1
           -object "memory-backend-file,id=mem2,share=on,mem-path=$work/nvdimm2.img,size=$pmem"
           -device nvdimm,id=nv2,memdev=mem2) ;;
  *) lab_die "unknown flavour $flavour (none, memmap, nvdimm, nvdimm2, nfit_test)" ;;
esac
qemu+=(-append "$append")

lab_log "guest: kernel $kver ($(basename "$kernel")), flavour $flavour$([[ $flavour == @(memmap|nvdimm|nvdimm2) ]] && echo " pmem $pmem"), $cpus cpu, test $(basename "$script")"
start=$SECONDS
: >"$out/console.log"
# timeout: QEMU must not outlive us even if we are SIGKILLed (ctest's own time limit).
timeout -k 5 $((tmo + 180)) "${qemu[@]}" 2>"$out/qemu.stderr" &
qemu_pid=$!
# shellcheck disable=SC2094  # both append to the same log, on purpose
python3 "$LAB_DIR/monitor.py" "$work/qmp.sock" "$out/req" "$out/monitor.log" 2>>"$out/monitor.log" &
agent_pid=$!
tail -n +1 -F "$out/console.log" 2>/dev/null &
tail_pid=$!

# Wait for the guest to end, with the test's limit plus boot and teardown time.
deadline=$((SECONDS + tmo + 60))
booted=0
done_at=0
while kill -0 "$qemu_pid" 2>/dev/null; do
  ((booted)) || ! grep -q 'lab stage2: ready' "$out/console.log" || booted=1
  # A guest that has not reached the second stage in 120 s will not.
  if ((SECONDS > deadline)) || { ((!booted)) && ((SECONDS - start > 120)); }; then
    lab_log "guest still running after $((SECONDS - start)) s: killing QEMU"
    kill "$qemu_pid" 2>/dev/null || true
    break
  fi
  # The result is in once stage 2 writes rc; the guest then only syncs and powers off.
  # A QEMU that does not exit after that (seen under TCG: "reboot: Power down" printed,
  # the process still there) must not hold the test until ctest's own limit kills it.
  if [[ -f $out/rc ]]; then
    ((done_at)) || done_at=$SECONDS
    if ((SECONDS - done_at > 15)); then
      lab_log "the test ended $((SECONDS - done_at)) s ago and QEMU has not exited: killing it"
      kill "$qemu_pid" 2>/dev/null || true
      break
    fi
  fi
  sleep 0.5
done
wait "$qemu_pid" 2>/dev/null && qrc=0 || qrc=$?
qemu_pid=''
sleep 0.3  # let tail print the last lines
kill "$tail_pid" 2>/dev/null || true
grep -q 'lab stage2: ready' "$out/console.log" && booted=1
lab_log "guest ran $((SECONDS - start)) s"

if [[ -f $out/rc ]]; then
  rc=$(cat "$out/rc")
  lab_log "test $(basename "$script") exited with status $rc (results: $out)"
  exit "$rc"
fi
if ((!booted)); then
  echo "--- qemu stderr:" >&2
  cat "$out/qemu.stderr" >&2
  skip "QEMU could not boot the guest (status $qrc; no second stage after $((SECONDS - start)) s; console in $out/console.log)"
fi
lab_log "the guest died or hung before the test ended (QEMU status $qrc): see $out/console.log"
exit 1
