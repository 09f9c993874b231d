#!/usr/bin/env bash
# mmap_shim.sh -- issue 7's goal: fio --ioengine=mmap sequential 1 MiB read and write of a
# 1 GiB file through the LD_PRELOAD shim (direct maps), against the same job on tmpfs,
# measured in the same run; the ordinary FUSE mmap of udaxfs beside them.
#
#   sudo bench/mmap_shim.sh [BUILD_DIR] [--size 1G] [--runs 3]
#
# Each job runs --runs times per configuration; the table shows the best run of each
# (other load on the machine only ever slows a run) and the ratios to tmpfs. JSON goes to
# bench/results/mmap_shim-DATE.json.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$ROOT/build size=1G runs=3
while (($#)); do
  case $1 in
    --size) size=$2; shift ;;
    --runs) runs=$2; shift ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) build=$1 ;;
  esac
  shift
done
[[ $(id -u) -eq 0 ]] || { echo "mmap_shim.sh: run as root" >&2; exit 1; }
command -v fio >/dev/null || { echo "mmap_shim.sh: fio not installed (scripts/setup.sh)" >&2; exit 1; }
shim=$build/client/libudax-preload.so
[[ -f $shim && -x $build/bin/udaxfs ]] || { echo "mmap_shim.sh: build first (scripts/build.sh)" >&2; exit 1; }
work=$(mktemp -d /dev/shm/udax-mmap-shim.XXXXXX)
mnt=$(mktemp -d /tmp/udax-mmap-shim.XXXXXX)
cleanup() { umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; rm -rf "$work" "$mnt"; }
trap cleanup EXIT
mkdir "$work/tmpfs"
bytes=$(numfmt --from=iec "$size")
"$build/bin/mkfs.udaxfs" -s $((bytes * 3)) "$work/pm.img" >/dev/null
"$build/bin/udaxfs" "$work/pm.img" "$mnt"
results=$work/rows.tsv
for rw in read write; do
  for cfg in "tmpfs:$work/tmpfs:" "shim:$mnt:$shim" "fuse-mmap:$mnt:"; do
    IFS=: read -r name dir pre <<<"$cfg"
    if [[ $rw == read ]]; then  # lay the file out once, with write(2)
      rm -f "$dir"/j.*
      fio --name=j --directory="$dir" --ioengine=psync --rw=write --bs=1M --size="$size" \
        --end_fsync=1 --output=/dev/null >/dev/null 2>&1
    fi
    for ((r = 1; r <= runs; r++)); do
      [[ $rw == write ]] && rm -f "$dir"/j.*
      LD_PRELOAD=$pre fio --name=j --directory="$dir" --ioengine=mmap --rw=$rw --bs=1M --size="$size" \
        --fallocate=none --invalidate=1 --output-format=json 2>/dev/null |
        python3 -c "import json,sys; print('$rw\t$name\t%d' % json.load(sys.stdin)['jobs'][0]['$rw']['bw_bytes'])" >>"$results"
    done
    rm -f "$dir"/j.*
  done
done
mkdir -p "$ROOT/bench/results"
python3 - "$results" "$ROOT/bench/results/mmap_shim-$(date +%Y%m%d-%H%M%S).json" "$size" "$runs" <<'PY'
import json, sys
best = {}
for line in open(sys.argv[1]):
    rw, name, bw = line.split("\t")
    best[(rw, name)] = max(best.get((rw, name), 0), int(bw))
print("fio --ioengine=mmap, 1 MiB sequential, %s file, best of %s runs" % (sys.argv[3], sys.argv[4]))
print("%-6s %10s %10s %10s %12s %12s" % ("", "tmpfs GB/s", "shim GB/s", "FUSE mmap", "shim/tmpfs", "FUSE/tmpfs"))
out = {}
for rw in ("read", "write"):
    t, s, f = (best.get((rw, n), 0) / 1e9 for n in ("tmpfs", "shim", "fuse-mmap"))
    print("%-6s %10.2f %10.2f %10.2f %11.2fx %11.2fx" % (rw, t, s, f, s / t, f / t))
    out[rw] = {"tmpfs": t, "shim": s, "fuse_mmap": f, "shim_ratio": s / t, "fuse_ratio": f / t}
json.dump(out, open(sys.argv[2], "w"), indent=2)
print("json:", sys.argv[2])
PY
