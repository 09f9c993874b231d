#!/usr/bin/env bash
# demo.sh -- README set-up command 1: install, build, format a 1 GiB emulated pmem region,
# mount it, and show what udaxfs is for: a bad block under a file fails only that page,
# the reverse map names its owner, a write moves it to fresh media, and a hit in
# metadata is repaired online. Leaves the filesystem mounted.
#
# Environment: UDAX_DEMO_IMG (default /var/tmp/udaxfs.img), UDAX_DEMO_MNT (default
# /mnt/udaxfs), UDAX_DEMO_SIZE (default 1G), UDAX_BUILD_DIR (default build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/as_root.sh"
udax_as_root "$@"
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

say "Using it: an ordinary filesystem"
printf 'Hello from udaxfs, a userspace DAX filesystem.\nWritten at %s\n' "$(date)" >"$MNT/hello.txt"
run cp "$ROOT/README.md" "$MNT/"
run mkdir -p "$MNT/docs/nested"
run ln -s ../hello.txt "$MNT/docs/link-to-hello"
printf '$ head -c 1M /dev/urandom > %s; head -c 256K /dev/urandom > %s\n' "$MNT/data.bin" "$MNT/other.bin"
head -c 1M /dev/urandom >"$MNT/data.bin"
head -c 256K /dev/urandom >"$MNT/other.bin"
run ls -l "$MNT"
run cat "$MNT/docs/link-to-hello"
run df -h "$MNT"

# What udaxfs is for: one bad block costs exactly what it holds.
CTL=$BIN/udaxctl
nevents() { "$CTL" events --json "$MNT" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
wait_event() {  # until the daemon has acted on event number $1
  for _ in $(seq 1 100); do (($(nevents) >= $1)) && return 0; sleep 0.1; done
  echo "demo.sh: the daemon did not act on the injected error" >&2
  exit 1
}
explain() { printf '%s# %s%s\n' "$B" "$*" "$N"; }
phys_of() {  # FILE OFFSET -> its byte offset in the region
  "$CTL" bmap --json "$1" | python3 -c '
import json, sys
off = int(sys.argv[1])
for e in json.load(sys.stdin)["extents"]:
    if e["file_offset"] <= off < e["file_offset"] + e["length"]:
        print(e["phys_offset"] + off - e["file_offset"])' "$2"
}
sum_of() { md5sum <"$1" | cut -c1-32; }
other_sum=$(sum_of "$MNT/other.bin")

say "Where a file lives: the region's bytes behind data.bin"
explain "udaxfs maps the region and keeps files in it; bmap shows the extents"
run "$CTL" bmap "$MNT/data.bin"

say "A memory error under it: one 512-byte block at file offset 64 KiB"
bad=$(phys_of "$MNT/data.bin" 65536)
explain "inject-error poisons the emulated region, as ndctl inject-error does real pmem"
run "$CTL" inject-error "$MNT" -B $((bad / 512))
wait_event 1
explain "the 4 KiB page holding the bad block fails with EIO..."
run dd if="$MNT/data.bin" of=/dev/null bs=4k skip=16 count=1 status=none || true
explain "...the pages beside it, and every other file, read fine"
run dd if="$MNT/data.bin" of=/dev/null bs=4k skip=15 count=1 status=none && echo "page 15: read"
run dd if="$MNT/data.bin" of=/dev/null bs=4k skip=17 count=1 status=none && echo "page 17: read"
[[ $(sum_of "$MNT/other.bin") == "$other_sum" ]] && echo "other.bin: intact"

say "Who was hit: the reverse map names the owner at once"
explain "list --media-errors: each bad block, its owner and its path"
run "$CTL" list --media-errors "$MNT"
explain "the event log: what happened and what the daemon did"
run "$CTL" events "$MNT"

say "Healing: a write over the bad block moves it to fresh media"
run dd if=/dev/urandom of="$MNT/data.bin" bs=4k seek=16 count=1 conv=notrunc status=none
run dd if="$MNT/data.bin" of=/dev/null bs=4k skip=16 count=1 status=none && echo "page 16: read"
explain "the file's page now lives elsewhere (a new extent)..."
run "$CTL" bmap "$MNT/data.bin"
explain "...and the bad unit is quarantined: never handed out again"
run "$CTL" rmap "$MNT" "$(printf '0x%x' $((bad / 4096 * 4096)))+4096"

say "A hit in metadata: the reverse map's own records"
rmap_area=$("$CTL" rmap --json "$MNT" 0+16M | python3 -c '
import json, sys
print(next(o["phys"] for o in json.load(sys.stdin) if o["kind"] == "rmap"))')
explain "the reverse map is derived from the files' maps: a bad block of it is rebuilt online"
run "$CTL" inject-error "$MNT" -B $(((rmap_area + bad / 4096 * 16) / 512))
wait_event 3  # 1: the data block, 2: its relocation, 3: this
"$CTL" events "$MNT" | tail -n 1
run touch "$MNT/still-serving" && echo "still serving: created a file"

cat <<MSG

udaxfs is mounted on $MNT (image $IMG). Try: cp, ls, cat, mkdir ... on it, and
udaxctl (in $BIN) for the tour above: bmap, inject-error, list --media-errors, events, rmap.
To unmount:   umount $MNT        (or: fusermount3 -u $MNT)
To mount again later (data persists):   $BIN/udaxfs $IMG $MNT
MSG
