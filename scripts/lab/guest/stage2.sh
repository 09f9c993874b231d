#!/bin/bash
# stage2.sh -- the guest's second stage: PID 1 on the overlay of the host root.
#
# Reads the job the host wrote to /lab-out/job.env (LAB_TEST, LAB_ARGS, LAB_FLAVOUR,
# LAB_TIMEOUT, LAB_REPO), prepares the system a test expects (tmpfs /tmp and /dev/shm,
# debugfs, the pmem driver of the flavour, fuse, a syslog daemon so udaxfs's messages are
# kept), runs the ONE test script, and leaves in /lab-out: test.log (its output), rc (its
# exit status), dmesg.txt, syslog.txt. Then powers off. Never exits: PID 1 exiting panics.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
OUT=/lab-out

poweroff_now() {
  sync
  echo o >/proc/sysrq-trigger
  # Spin (a builtin): the host root may already be gone for /usr/bin/sleep.
  while :; do :; done
}
trap poweroff_now EXIT

echo "lab stage2: running on $(uname -r), $(nproc) cpu(s)"
# shellcheck source=/dev/null
. "$OUT/job.env"
: "${LAB_TEST:?}" "${LAB_FLAVOUR:=none}" "${LAB_TIMEOUT:=600}"
# A checkout under /tmp, /run or /dev/shm (a CI clone in /tmp, say) would vanish under the
# guest's own tmpfs mounts there: keep it visible at the same path.
keep_repo=
case $LAB_REPO in
  /tmp/*|/run/*|/dev/shm/*) mkdir -p /lab-repo && mount --bind "$LAB_REPO" /lab-repo && keep_repo=1 ;;
esac
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
if [[ -n $keep_repo ]]; then
  mkdir -p "$LAB_REPO" && mount --bind /lab-repo "$LAB_REPO"
fi
mount -t devpts devpts /dev/pts
# What udev would add to devtmpfs: bash's process substitution needs /dev/fd.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t debugfs debugfs /sys/kernel/debug
mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true
hostname udaxfs-lab

export LAB_REPO LAB_FLAVOUR LAB_OUT=$OUT LAB_BUILD=${LAB_BUILD:-$LAB_REPO/build}

# No udevd here: load what a pmem test needs by hand (shared/lab/README.md). Without
# device_dax, /dev/daxX.Y opens with ENXIO.
case $LAB_FLAVOUR in
  memmap) modprobe -a nd_e820 nd_pmem dax_pmem device_dax ;;
  nvdimm|nvdimm2) modprobe -a nfit nd_pmem dax_pmem device_dax ;;
  nfit_test)
    # Our build of the test bus and of the drivers it wraps, by path and in order (the
    # depmod route costs ~40 s over 9p); a guest crash must power off, not hang.
    echo 1 >/proc/sys/kernel/panic_on_oops
    while read -r m; do insmod "$LAB_NFIT_DIR/$m.ko" || echo "lab stage2: insmod $m failed"; done <"$LAB_NFIT_DIR/order"
    ndctl wait-scrub all >/dev/null 2>&1 || true ;;
esac
modprobe -a fuse hwpoison_inject xfs 2>/dev/null || true
mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true

# busybox syslogd: the daemon logs to syslog once it daemonizes.
busybox syslogd -n -O "$OUT/syslog.txt" -S &
echo "lab stage2: ready"

args=()
[[ -n ${LAB_ARGS:-} ]] && eval "args=($LAB_ARGS)"
cd /tmp || exit 1
timeout -k 10 "$LAB_TIMEOUT" bash "$LAB_TEST" "${args[@]}" </dev/null 2>&1 | tee "$OUT/test.log.tmp"
rc=${PIPESTATUS[0]}
mv "$OUT/test.log.tmp" "$OUT/test.log"
dmesg >"$OUT/dmesg.txt" 2>&1
echo "$rc" >"$OUT/rc"
echo "lab stage2: test exited with status $rc"
