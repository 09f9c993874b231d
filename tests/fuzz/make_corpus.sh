#!/usr/bin/env bash
# make_corpus.sh -- regenerates the seed corpus of the fuzz targets (tests/fuzz/corpus).
#
#   tests/fuzz/make_corpus.sh [BUILD_DIR]      (default build/; needs udax_fuzz_seeds)
#
# 1. In-process seeds for every target (udax_fuzz_seeds seeds): a populated 16 MiB image
#    clean, after a crash (committed journal transaction, an orphan), resealed, and a
#    128 MiB image with 2 MiB AUs; its superblocks, journal slot and records.
# 2. When root with FUSE: images made by mkfs.udaxfs and populated through a real mount,
#    one unmounted cleanly and one whose daemon was killed with a file open and unlinked.
# Inputs of fixed crashes (crash-*) are left alone. Images are kept to 16 MiB (with 64 KiB
# per inode) so that each seed is a sparse file of a few hundred KiB.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$ROOT/build}
bin=$build/bin
corpus=$ROOT/tests/fuzz/corpus
mkdir -p "$corpus"/{superblock,journal,records,image}
"$bin/udax_fuzz_seeds" seeds "$corpus"

if [[ $(id -u) -ne 0 || ! -e /dev/fuse ]]; then
  echo "make_corpus.sh: not root or no /dev/fuse: only the in-process seeds"
  exit 0
fi
work=$(mktemp -d /dev/shm/udax-corpus.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
  mountpoint -q "$mnt" && { umount "$mnt" 2>/dev/null || umount -l "$mnt"; }
  rm -rf "$work"
}
trap cleanup EXIT

populate() {
  local m=$1 i
  mkdir -p "$m/a/b/c" "$m/empty" "$m/many"
  echo hello >"$m/a/hello"
  head -c 9000 /dev/urandom >"$m/a/b/random"
  # Empty files cost no data AU: only directory buckets (enough names for a split).
  for i in $(seq 1 120); do : >"$m/many/file-with-a-longer-name-$i"; done
  for i in $(seq 0 7); do  # alternating appends: fragmented files with an extent block
    dd if=/dev/urandom of="$m/frag1" bs=64 count=1 seek=$((i * 64)) conv=notrunc status=none
    dd if=/dev/urandom of="$m/frag2" bs=64 count=1 seek=$((i * 64)) conv=notrunc status=none
  done
  truncate -s 1M "$m/sparse" && echo tail >>"$m/sparse"
  ln "$m/a/hello" "$m/hardlink"
  ln -s a/hello "$m/short-symlink"
  ln -s "$(printf 'x%.0s' $(seq 1 300))" "$m/long-symlink"
  mkfifo "$m/fifo"
  mv "$m/a/b/c" "$m/moved"
  rm -f "$m/many/file-with-a-longer-name-7"
}

img=$work/img
daemon=
# The daemon in the foreground of a background job, so that its pid is known.
start() {
  "$bin/mkfs.udaxfs" -q -f -s 16M -i 65536 "$img"
  "$bin/udaxfs" "$img" "$mnt" -f &
  daemon=$!
  for _ in $(seq 1 100); do mountpoint -q "$mnt" && return 0; sleep 0.1; done
  echo "make_corpus.sh: mount failed" >&2
  exit 1
}

start
populate "$mnt"
umount "$mnt"
wait "$daemon" || true
"$bin/udax_fuzz_seeds" sparse "$img" "$corpus/image/mkfs-populated"

start
populate "$mnt"
exec 3<>"$mnt/open-unlinked"
echo "still open" >&3
rm "$mnt/open-unlinked"
kill -9 "$daemon"
wait "$daemon" 2>/dev/null || true
exec 3>&-
umount -l "$mnt" 2>/dev/null || true
"$bin/udax_fuzz_seeds" sparse "$img" "$corpus/image/mkfs-killed"
ls -l "$corpus"/*
