#!/usr/bin/env bash
# demo.sh -- README set-up command 1: install, build, format a 1 GiB emulated pmem region,
# mount it and show it working. Leaves the filesystem mounted.
#
# Environment: UDAX_DEMO_IMG (default /var/tmp/udaxfs.img), UDAX_DEMO_MNT (default
# /mnt/udaxfs), UDAX_DEMO_SIZE (default 1G), UDAX_BUILD_DIR (default build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMG=${UDAX_DEMO_IMG:-/var/tmp/udaxfs.img}
MNT=${UDAX_DEMO_MNT:-/mnt/udaxfs}
SIZE=${UDAX_DEMO_SIZE:-1G}
BUILD=${UDAX_BUILD_DIR:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD

if [[ -t 1 ]]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
say() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
run() { printf '$ %s\n' "$*"; "$@"; }
mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
# pids of udaxfs daemons holding the image open
holders() {
  local img pid
  img=$(realpath -m "$IMG")
  for pid in $(grep -lsF -- "$img" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    readlink /proc/"$pid"/fd/* 2>/dev/null | grep -qxF -- "$img" && echo "$pid"
  done
  return 0
}

say "Installing dependencies"
"$ROOT/scripts/setup.sh"

say "Building ($BUILD)"
UDAX_BUILD_DIR=$BUILD "$ROOT/scripts/build.sh" | tail -n 3
BIN=$BUILD/bin

if mounted "$MNT"; then
  say "Unmounting the previous demo at $MNT"
  if ! umount "$MNT"; then
    echo "demo.sh: $MNT is busy; close what uses it (or: umount -l $MNT) and run again" >&2
    exit 1
  fi
fi
for _ in $(seq 1 100); do [[ -z $(holders) ]] && break; sleep 0.1; done
if [[ -n $(holders) ]]; then
  echo "demo.sh: $IMG is still held by udaxfs (pid $(holders | tr '\n' ' ')); unmount it first" >&2
  exit 1
fi

say "Creating a $SIZE emulated persistent-memory region and formatting it"
mkdir -p "$(dirname "$IMG")" "$MNT"
run "$BIN/mkfs.udaxfs" -f -s "$SIZE" "$IMG"

say "Mounting it on $MNT"
run "$BIN/udaxfs" "$IMG" "$MNT"
mounted "$MNT" || { echo "demo.sh: mount failed" >&2; exit 1; }

say "Using it"
printf 'Hello from udaxfs, a userspace DAX filesystem.\nWritten at %s\n' "$(date)" >/tmp/udaxfs-demo-hello.txt
run cp /tmp/udaxfs-demo-hello.txt "$MNT/hello.txt"
rm -f /tmp/udaxfs-demo-hello.txt
run cp "$ROOT/README.md" "$MNT/"
run mkdir -p "$MNT/docs/nested"
run ln -s ../hello.txt "$MNT/docs/link-to-hello"
run ls -l "$MNT" "$MNT/docs"
run cat "$MNT/hello.txt"
run cat "$MNT/docs/link-to-hello"
run df -h "$MNT"
run findmnt "$MNT"

cat <<MSG

udaxfs is mounted on $MNT (image $IMG). Try: cp, ls, cat, mkdir ... on it.
To unmount:   umount $MNT        (or: fusermount3 -u $MNT)
To mount again later (data persists):   $BIN/udaxfs $IMG $MNT
MSG
