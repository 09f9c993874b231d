#!/usr/bin/env bash
# patrol.sh -- the media patrol at scale (issue 17, item 5): `udaxctl verify-media` on a
# mount holding 10^5 files with latent poison (inject-error --no-notify) in file data and
# in metadata. Reports whether every injected block was found and acted on, the pass's
# rate and CPU cost (unbounded and at the patrol's rate), and the throughput a reader of
# unaffected files keeps while a bounded pass runs, against the same reader alone,
# measured in the same run (ratio; the bar is 0.90).
#
#   sudo bench/patrol.sh [BUILD_DIR] [--files N] [--bad N] [--rate MB] [--repeat N]
#
# --files N   files to create (default 100000; 100 directories, 4 KiB each)
# --bad N     latent blocks to inject (default 50: 3/5 under files, 2/5 in metadata the
#             daemon can rewrite: reverse map, allocation bitmap, journal, superblock)
# --rate MB   the bounded pass's rate (default 64, the patrol's own)
# --repeat N  reader alone / reader during a pass, N times each, alternating; medians
# JSON goes to bench/results/patrol-DATE.json.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$ROOT/build files=100000 bad=50 rate=64 repeat=1
while (($#)); do
  case $1 in
    --files) files=$2; shift ;;
    --bad) bad=$2; shift ;;
    --rate) rate=$2; shift ;;
    --repeat) repeat=$2; shift ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) build=$1 ;;
  esac
  shift
done
[[ $(id -u) -eq 0 ]] || { echo "patrol.sh: run as root" >&2; exit 1; }
command -v fio >/dev/null || { echo "patrol.sh: fio not installed (scripts/setup.sh)" >&2; exit 1; }
bin=$build/bin
[[ -x $bin/udaxfs && -x $bin/udaxctl ]] || { echo "patrol.sh: build first (scripts/build.sh)" >&2; exit 1; }
work=$(mktemp -d /dev/shm/udax-patrol.XXXXXX)
mnt=$(mktemp -d /tmp/udax-patrol.XXXXXX)
export UDAX_STATE_DIR=$work/state  # this run's poison lists and event log
mkdir -m 700 "$UDAX_STATE_DIR"
cleanup() {
  umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  rm -rf "$work" "$mnt"
}
trap cleanup EXIT
img=$work/pm.img
"$bin/mkfs.udaxfs" -s 2G "$img" >/dev/null
# cache=none: the reader's bytes come from the daemon (and pmem) every time, as the pass's do.
"$bin/udaxfs" "$img" "$mnt" -o cache=none

echo "== $files files in 100 directories, and a 256 MiB file for the reader"
t0=$SECONDS
python3 - "$mnt" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
block = os.urandom(4096)
for d in range(100):
    os.mkdir(f"{root}/d{d:02d}")
for i in range(n):
    fd = os.open(f"{root}/d{i % 100:02d}/f{i}", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, block)
    os.close(fd)
PY
head -c 256M /dev/urandom >"$mnt/reader"
echo "   created in $((SECONDS - t0)) s"

echo "== $bad latent blocks"
python3 - "$bin/udaxctl" "$mnt" "$files" "$bad" "$work/injected.json" <<'PY'
import json, random, subprocess, sys
udaxctl, mnt, files, bad, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = random.Random(17)
def run(*a):
    return subprocess.run([udaxctl, *a], check=True, capture_output=True, text=True).stdout
# The static areas come first (superblock, journal, bitmaps, inode table, reverse map).
areas = {}
for o in json.loads(run("rmap", "--json", mnt, "0+256M")):
    areas.setdefault(o["kind"], o)
unique = {}  # block -> what it holds; a block picked twice counts once
ndata = bad * 3 // 5
for i in rng.sample(range(files), ndata):
    path = f"{mnt}/d{i % 100:02d}/f{i}"
    ext = json.loads(run("bmap", "--json", path))["extents"][0]
    unique.setdefault(ext["phys_offset"] // 512 + rng.randrange(8), "file-data")
meta = ["rmap", "au-bitmap", "journal"]
unique.setdefault(areas["superblock"]["phys"] // 512 + 1, "superblock")  # its one copy block
k = 0
while len(unique) < bad:
    kind = meta[k % len(meta)]
    k += 1
    a = areas[kind]
    unique.setdefault(a["phys"] // 512 + rng.randrange(a["length"] // 512), kind)
for blk in unique:
    run("inject-error", mnt, "-N", "-B", str(blk))
json.dump([{"block": b, "kind": w} for b, w in unique.items()], open(out, "w"))
kinds = sorted(set(unique.values()))
print(f"   {len(unique)} blocks: " + ", ".join(f"{sum(1 for w in unique.values() if w == k)} {k}" for k in kinds))
PY
sleep 1
events_before=$("$bin/udaxctl" events --json "$img" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "   events logged before the pass: $events_before"

reader() {  # MB/s of a 6 s sequential 1 MiB reader of the 256 MiB file
  fio --name=r --filename="$mnt/reader" --rw=read --bs=1M --direct=1 --time_based --runtime=6 \
      --output-format=json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["bw"] / 1024)'
}

echo "== the first pass, unbounded: finds the latent blocks"
"$bin/udaxctl" verify-media --json --rate 1000000 "$mnt" >"$work/pass1.json" || true
sleep 2  # the resolver logs what the pass found
python3 - "$work/pass1.json" "$work/injected.json" "$bin/udaxctl" "$img" >"$work/found.txt" <<'PY'
import json, subprocess, sys
p = json.load(open(sys.argv[1])); inj = json.load(open(sys.argv[2]))
events = json.loads(subprocess.run([sys.argv[3], "events", "--json", sys.argv[4]], capture_output=True, text=True).stdout)
def covered(ranges, blk):
    return any(r["offset"] <= blk * 512 < r["offset"] + r["length"] for r in ranges)
by_patrol = sum(1 for b in inj if covered(p["found"], b["block"]))
acted = sum(1 for b in inj if covered(events, b["block"]))
actions = {}
for e in events:
    for o in e["owners"]:
        actions[o["action"]] = actions.get(o["action"], 0) + 1
print(json.dumps({"injected": len(inj), "found_by_pass": by_patrol, "acted_on": acted,
                  "actions": actions, "mb_s": p["bytes_read"] / 1e6 / max(p["seconds"], 1e-9),
                  "seconds": p["seconds"], "cpu_seconds": p["cpu_seconds"], "bytes_read": p["bytes_read"]}))
PY
cat "$work/found.txt"

alone=() during=() bounded=()
for ((i = 0; i < repeat; i++)); do
  alone+=("$(reader)")
  "$bin/udaxctl" verify-media --json --rate "$rate" "$mnt" >"$work/pass-bounded.json" &
  vpid=$!
  sleep 1
  during+=("$(reader)")
  wait "$vpid" || true
  bounded+=("$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(p["bytes_read"]/1e6/p["seconds"], p["cpu_seconds"]/p["seconds"])' "$work/pass-bounded.json")")
done
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$ROOT/bench/results"
python3 - "$work/found.txt" "$rate" "${alone[*]}" "${during[*]}" "$(printf '%s;' "${bounded[@]}")" \
    "$ROOT/bench/results/patrol-$stamp.json" "$files" <<'PY'
import json, statistics, sys
found = json.loads(open(sys.argv[1]).read())
rate = float(sys.argv[2])
alone = [float(x) for x in sys.argv[3].split()]
during = [float(x) for x in sys.argv[4].split()]
bounded = [tuple(map(float, b.split())) for b in sys.argv[5].split(";") if b]
a, d = statistics.median(alone), statistics.median(during)
bmb = statistics.median(b[0] for b in bounded); bcpu = statistics.median(b[1] for b in bounded)
res = {"files": int(sys.argv[7]), "first_pass": found, "rate_cap_mb_s": rate,
       "bounded_pass_mb_s": bmb, "bounded_pass_cpu_fraction": bcpu,
       "reader_alone_mb_s": alone, "reader_during_mb_s": during, "reader_ratio": d / a}
json.dump(res, open(sys.argv[6], "w"), indent=2)
print(f"""
media patrol at {res['files']} files
  injected latent blocks        {found['injected']}
  found by the first pass       {found['found_by_pass']}
  acted on (event log)          {found['acted_on']}   actions: {found['actions']}
  unbounded pass                {found['mb_s']:.0f} MB/s, {found['bytes_read']/1e6:.0f} MB in {found['seconds']:.2f} s, CPU {found['cpu_seconds']:.2f} s ({100*found['cpu_seconds']/max(found['seconds'],1e-9):.0f}% of a core)
  bounded pass (--rate {rate:g})    {bmb:.1f} MB/s, {100*bcpu:.1f}% of a core
  reader alone                  {a:.0f} MB/s  (runs: {', '.join(f'{x:.0f}' for x in alone)})
  reader during a bounded pass  {d:.0f} MB/s  (runs: {', '.join(f'{x:.0f}' for x in during)})
  ratio                         {d/a:.2f}  (bar 0.90: {'PASS' if d/a >= 0.9 else 'MISS'})
  every block found             {'PASS' if found['acted_on'] == found['injected'] else 'MISS'}
results: {sys.argv[6]}""")
PY
