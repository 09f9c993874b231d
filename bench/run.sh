#!/usr/bin/env bash
# run.sh -- the benchmark suite of issue 9: the same fio jobs on udaxfs (emulated region on
# tmpfs), tmpfs, libfuse's passthrough_ll over tmpfs and fuse2fs over an ext4 image on
# tmpfs, file create/stat/delete rates, the region's raw copy bandwidth, and the daemon's
# memory at 10^3 and 10^6 files. Prints one table (absolute figures, ratios, the goals
# with PASS/MISS), writes it as JSON and draws a PNG chart. Run as root, from anywhere:
#
#   sudo bench/run.sh            # full run: 1 GiB files, about 15 min on a 2-core machine
#   sudo bench/run.sh --quick    # harness check: small files, short runs, < 3 min
#
# Options:
#   --quick             64 MiB files, 1 s per read job, 1,000 files per metadata thread, RSS at 10^3 files
#   --size SIZE         fio file size per job (default 1G; fio syntax: 256M, 1G ...)
#   --runtime S         cap on each read job and metadata phase, seconds (default 6); write jobs
#                       do a fixed amount (below) and are capped at 10 x S only against a hang
#   --meta-files N      files per thread in the create/stat/delete phases (default 4000)
#   --meta-rounds N     rounds of create/stat/delete, the median is reported (default 5)
#   --repeat N          run all the filesystems N times over, alternating them, and report
#                       the median of each figure (default 1; 3 on a shared, noisy machine)
#   --rss-files LIST    file counts for the daemon-memory report (default 1000,1000000; none: skip)
#   --fs LIST           filesystems (default udaxfs,tmpfs,passthrough_ll,fuse2fs, and udaxfs-uring
#                       when the kernel has FUSE over io_uring; none: only raw and RSS;
#                       udaxfs-direct adds udaxfs -o cache=none as a column of its own,
#                       udaxfs-nocopies an image without metadata copies: what they cost,
#                       udaxfs-2dev one filesystem over two images of half the size: what a
#                       second device costs)
#   --out DIR           where <timestamp>.{json,txt,png} go (default bench/results)
#   --work DIR          build directory for passthrough_ll and raw fio logs (default /var/tmp/udaxfs-bench)
#   --no-install        skip apt-get;  --no-build: skip scripts/build.sh
#
# udaxfs-uring is udaxfs -o uring: FUSE over io_uring (Linux 6.14+). For it the run sets the
# fuse module's enable_uring parameter to Y and puts back the value it found at exit;
# libfuse 3.14's daemons (passthrough_ll, fuse2fs) never ask for it.
#
# Environment: UDAX_BUILD_DIR (default build), BENCH_SHM (tmpfs for images and mount
# points, default /dev/shm), UDAX_MOUNT_OPTS (extra udaxfs options, e.g. "-o cache=none").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

QUICK=0 SIZE=1G RUNTIME=6 META_FILES=4000 META_ROUNDS=5 REPEAT=1 RSS_FILES=1000,1000000
FS_LIST=udaxfs,tmpfs,passthrough_ll,fuse2fs
[[ -w $URING_PARAM ]] && FS_LIST+=,udaxfs-uring
OUT=$ROOT/bench/results WORK=/var/tmp/udaxfs-bench INSTALL=1 BUILD=1
size_set=0 runtime_set=0 meta_set=0 rss_set=0 rounds_set=0
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --size) SIZE=${2:?--size needs a value}; size_set=1; shift ;;
    --runtime) RUNTIME=${2:?--runtime needs a value}; runtime_set=1; shift ;;
    --meta-files) META_FILES=${2:?}; meta_set=1; shift ;;
    --meta-rounds) META_ROUNDS=${2:?}; rounds_set=1; shift ;;
    --repeat) REPEAT=${2:?}; shift ;;
    --rss-files) RSS_FILES=${2:?}; rss_set=1; shift ;;
    --fs) FS_LIST=${2:?}; shift ;;
    --out) OUT=${2:?}; shift ;;
    --work) WORK=${2:?}; shift ;;
    --no-install) INSTALL=0 ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (bench/run.sh --help)" ;;
  esac
  shift
done
if ((QUICK)); then
  ((size_set)) || SIZE=64M
  ((runtime_set)) || RUNTIME=1
  ((meta_set)) || META_FILES=1000
  ((rounds_set)) || META_ROUNDS=1
  ((rss_set)) || RSS_FILES=1000
fi
[[ $(id -u) -eq 0 ]] || die "run as root (FUSE mounts with allow_other, apt-get, fallocate on /dev/shm)"
[[ $RUNTIME =~ ^[0-9]+$ && $RUNTIME -ge 1 ]] || die "--runtime wants whole seconds >= 1"
[[ $META_FILES =~ ^[0-9]+$ && $META_FILES -ge 1 ]] || die "--meta-files wants a positive integer"
[[ $META_ROUNDS =~ ^[0-9]+$ && $META_ROUNDS -ge 1 ]] || die "--meta-rounds wants a positive integer"
[[ $REPEAT =~ ^[0-9]+$ && $REPEAT -ge 1 ]] || die "--repeat wants a positive integer"
FSES=()
[[ $FS_LIST == none ]] || IFS=, read -r -a FSES <<<"$FS_LIST"
for f in "${FSES[@]}"; do
  [[ " ${FS_ALL[*]} " == *" $f "* ]] || die "unknown filesystem '$f' in --fs (known: ${FS_ALL[*]})"
done
size_bytes() {
  numfmt --from=iec "${1^^}" 2>/dev/null || die "bad size '$1'"
}
SIZE_BYTES=$(size_bytes "${SIZE%B}")
((SIZE_BYTES >= 4 * 1024 * 1024)) || die "--size must be at least 4M"
PY=/usr/bin/python3  # Debian's, where python3-matplotlib is (not a pyenv shim)
# passthrough_ll keeps an O_PATH descriptor open for every inode the kernel knows: give every
# daemon the most descriptors allowed (containers often cap the hard limit; see bench/README.md).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- install and build
PACKAGES=(fio fuse2fs e2fsprogs fuse3 libfuse3-dev pkg-config build-essential python3 python3-matplotlib util-linux coreutils)
if ((INSTALL)); then
  "$ROOT/scripts/setup.sh"
  missing=()
  for p in "${PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) == installed ]] || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "bench: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
  fi
fi
for t in fio fuse2fs mkfs.ext4 pkg-config cc numfmt fallocate fincore dd; do
  command -v "$t" >/dev/null || die "$t not found (run without --no-install)"
done
[[ -e /dev/fuse ]] || die "/dev/fuse is missing (modprobe fuse)"

mkdir -p "$WORK"
BUILD_DIR=${UDAX_BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
if ((BUILD)); then
  log "bench: building udaxfs ($BUILD_DIR, RelWithDebInfo)"
  UDAX_BUILD_DIR=$BUILD_DIR UDAX_BUILD_TYPE=RelWithDebInfo "$ROOT/scripts/build.sh" >"$WORK/build.log" 2>&1 ||
    { tail -n 30 "$WORK/build.log" >&2; die "scripts/build.sh failed (log: $WORK/build.log)"; }
fi
BIN=$BUILD_DIR/bin
for t in udaxfs mkfs.udaxfs rawcopy metarate; do
  [[ -x $BIN/$t ]] || die "$BIN/$t missing: build first (scripts/build.sh) or drop --no-build"
done
SHIM=$BUILD_DIR/client/libudax-preload.so  # the direct-map shim (issue 7)
[[ -f $SHIM ]] || die "$SHIM missing: build first (scripts/build.sh) or drop --no-build"

# libfuse's passthrough_ll, from the example Debian ships (possibly gzipped), built
# outside the repository with the header it includes.
mkdir -p "$WORK/passthrough_ll"
PT=$WORK/passthrough_ll/passthrough_ll
EX=/usr/share/doc/libfuse3-dev/examples
if [[ ! -x $PT || $EX/passthrough_ll.c -nt $PT || $EX/passthrough_ll.c.gz -nt $PT ]]; then
  for f in passthrough_ll.c passthrough_helpers.h; do
    if [[ -e $EX/$f ]]; then
      cp "$EX/$f" "$WORK/passthrough_ll/$f"
    elif [[ -e $EX/$f.gz ]]; then
      gzip -dc "$EX/$f.gz" >"$WORK/passthrough_ll/$f"
    else
      die "$EX/$f not found: is libfuse3-dev installed?"
    fi
  done
  # shellcheck disable=SC2046
  cc -O2 -Wall -o "$PT" "$WORK/passthrough_ll/passthrough_ll.c" $(pkg-config --cflags --libs fuse3) \
    >"$WORK/passthrough_ll/build.log" 2>&1 ||
    { cat "$WORK/passthrough_ll/build.log" >&2; die "could not build passthrough_ll"; }
fi

# ---------------------------------------------------------------- where things go
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW=$WORK/$STAMP
LOGDIR=$RAW
mkdir -p "$RAW" "$OUT"
MANIFEST=$RAW/manifest.tsv
: >"$MANIFEST"
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$MANIFEST"; }  # kind fs test value-or-path

BENCH_SHM=${BENCH_SHM:-/dev/shm}
DATA=$(mktemp -d "$BENCH_SHM/udaxfs-bench.XXXXXX") || die "cannot create a directory on $BENCH_SHM"
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Room for two read files and two write files, plus metadata and slack.
REGION_BYTES=$((4 * SIZE_BYTES + 512 * 1024 * 1024))
avail=$(($(df --output=avail -B1 "$BENCH_SHM" | tail -n 1)))
((avail > REGION_BYTES + SIZE_BYTES)) ||
  die "$BENCH_SHM has $((avail >> 20)) MiB free; this run needs about $(((REGION_BYTES + SIZE_BYTES) >> 20)) MiB (try --size)"

record meta - - "stamp=$STAMP"
record meta - - "size=$SIZE_BYTES"
record meta - - "runtime=$RUNTIME"
record meta - - "meta_files=$META_FILES"
record meta - - "meta_rounds=$META_ROUNDS"
record meta - - "repeat=$REPEAT"
record meta - - "quick=$QUICK"
record meta - - "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
record meta - - "udaxfs_opts=${UDAX_MOUNT_OPTS:-default}"
if [[ " ${FSES[*]} " == *" udaxfs-uring "* ]] && ! uring_enable; then
  die "udaxfs-uring: this kernel has no FUSE over io_uring ($URING_PARAM)"
fi
t_start=$(date +%s)

# ---------------------------------------------------------------- the fio jobs
# name rw bs  (each with engines psync and mmap, numjobs 1 and 2; and on udaxfs and tmpfs
# "shim": fio's mmap engine under LD_PRELOAD=libudax-preload.so, which turns udaxfs's
# shared maps into direct maps of the region; on tmpfs it passes every call through, so
# the tmpfs figure of a shim row is its mmap job again, measured beside udaxfs's;
# "pshim": fio's psync engine under the same shim, whose read(2) family is served from
# read views of the region (issue 21); on tmpfs, tmpfs's psync job again)
# "...rewrite": the same writes over the laid-out read files, which are all allocated
# (overwrites: what the shim stores through writable views), psync and pshim only; the
# plain write jobs write fresh files, which allocate as they go.
# "appendwrite": 4 KiB appends to fresh files, an fsync every 64 (a log), psync and pshim
# only: the shim stores them into space the daemon reserves past EOF (issue 21).
JOBS=("seqread read 1M" "seqwrite write 1M" "randread randread 4k" "randwrite randwrite 4k"
  "seqrewrite write 1M" "randrewrite randwrite 4k" "appendwrite write 4k")
NUMJOBS=(1 2)
engines_of() {
  case $1 in
    udaxfs|udaxfs-2dev|tmpfs) echo psync mmap shim pshim ;;
    *) echo psync mmap ;;
  esac
}

# run_fio TEST NAME RW BS ENGINE NUMJOBS: one fio run on $MNT, its JSON kept in $RAW.
# Reads stop after one pass or $RUNTIME s. Writes do a fixed amount -- the whole file
# sequentially, a quarter of it in random 4 KiB blocks -- and end with fsync, so the time
# fio measures includes making the data durable (when a job is stopped by its runtime
# instead, fio's clock stops before the fsync: report.py flags such rows).
run_fio() {
  local test=$1 name=$2 rw=$3 bs=$4 eng=$5 nj=$6
  local out=$RAW/$FS.$test.r$PASS_NO.json
  local pre=()
  if [[ $eng == shim ]]; then eng=mmap pre=(env "LD_PRELOAD=$SHIM"); fi
  if [[ $eng == pshim ]]; then eng=psync pre=(env "LD_PRELOAD=$SHIM" UDAX_PRELOAD_WRITES=1); fi
  local args=(--name="$name" --directory="$MNT" --ioengine="$eng" --rw="$rw" --bs="$bs"
    --size="$SIZE_BYTES" --numjobs="$nj" --group_reporting
    --fallocate=none --invalidate=1 --output-format=json --output="$out")
  if [[ $rw == *write* ]]; then
    args+=(--end_fsync=1 --runtime=$((RUNTIME * 10)))
    if [[ $test == appendwrite-* ]]; then args+=(--fsync=64); fi
    if [[ $rw == randwrite ]]; then args+=(--io_size=$((SIZE_BYTES / 4))); fi
  else
    args+=(--runtime="$RUNTIME")
  fi
  # Runtime caps the I/O; layout, fsync and a slow FUSE daemon get generous extra time.
  if run_bg timeout --kill-after=10 $((RUNTIME * 20 + 300)) "${pre[@]}" fio "${args[@]}" >>"$RAW/$FS.fio.log" 2>&1; then
    record fio "$FS" "$test" "$out"
  else
    log "bench: $FS $test: fio failed (exit $?; see $RAW/$FS.fio.log)"
    record fail "$FS" "$test" "fio exit status"
  fi
}

# Drops the kernel's page cache of the read files (POSIX_FADV_DONTNEED, as fio's
# invalidate=1 does too), so a read job is served by the daemon, not by pages an earlier
# job left; the daemon keeps running, warm, as a mount in use does. On tmpfs this is a
# no-op: its page cache is the data. Fails if pages stay cached.
drop_read_cache() {
  local f left
  for f in "$MNT"/r.*; do
    dd if="$f" iflag=nocache count=0 status=none
    if is_fuse "$FS"; then
      left=$(fincore -b -n -o RES "$f" | tr -d ' ')
      [[ $left == 0 ]] || die "$FS: $left bytes of $f still in the page cache after POSIX_FADV_DONTNEED"
    fi
  done
}

# The data jobs on the mounted $FS. Reads use two files laid out once (r.0.0, r.1.0), their
# page cache dropped before every read job; every write job writes fresh files (w.*).
data_jobs() {
  local t0 spec name rw bs eng nj test
  t0=$(date +%s)
  log "bench: $FS: laying out the read files (2 x $SIZE)"
  if ! run_bg fio --name=r --directory="$MNT" --ioengine=psync --rw=write --bs=1M --size="$SIZE_BYTES" \
      --numjobs=2 --end_fsync=1 --fallocate=none --output="$RAW/$FS.layout.txt" >>"$RAW/$FS.fio.log" 2>&1; then
    log "bench: $FS: layout failed (see $RAW/$FS.fio.log); skipping its read jobs"
    record fail "$FS" layout "fio exit status"
  fi
  for spec in "${JOBS[@]}"; do
    read -r name rw bs <<<"$spec"
    for eng in $(engines_of "$FS"); do
      for nj in "${NUMJOBS[@]}"; do
        test=$name-$eng-${nj}j
        if [[ $name == appendwrite ]]; then
          [[ $eng == psync || $eng == pshim ]] || continue
          rm -f "$MNT"/w.*
          run_fio "$test" w "$rw" "$bs" "$eng" "$nj"
          rm -f "$MNT"/w.*
        elif [[ $name == *rewrite ]]; then
          [[ $eng == psync || $eng == pshim ]] || continue
          [[ -e $MNT/r.$((nj - 1)).0 ]] || { record fail "$FS" "$test" "no read file"; continue; }
          run_fio "$test" r "$rw" "$bs" "$eng" "$nj"
        elif [[ $rw == *read ]]; then
          [[ -e $MNT/r.$((nj - 1)).0 ]] || { record fail "$FS" "$test" "no read file"; continue; }
          drop_read_cache
          run_fio "$test" r "$rw" "$bs" "$eng" "$nj"
        else
          rm -f "$MNT"/w.*
          run_fio "$test" w "$rw" "$bs" "$eng" "$nj"
          rm -f "$MNT"/w.*
        fi
        printf '.' >&2
      done
    done
  done
  printf '\n' >&2
  if [[ $FS == udaxfs && $PASS_NO == 1 ]]; then
    record rss udaxfs after-data "$(daemon_rss)"
  fi
  rm -f "$MNT"/r.*
  log "bench: $FS: data jobs took $(($(date +%s) - t0)) s"
}

# File create, stat and delete rates (bench/metarate), 1 and 2 threads, a cold remount
# before stat and before delete; $META_ROUNDS rounds (report.py takes the median).
meta_jobs() {
  local t0 th phase round
  t0=$(date +%s)
  for th in 1 2; do
    for round in $(seq 1 "$META_ROUNDS"); do
      for phase in create stat delete; do
        [[ $phase == create ]] || fs_remount
        if run_bg timeout --kill-after=10 $((RUNTIME * 4 + 300)) "$BIN/metarate" "$MNT/meta" --phase "$phase" \
            --files "$META_FILES" --threads "$th" --seconds "$RUNTIME" --json >"$RAW/out.json" 2>>"$RAW/$FS.meta.log"; then
          record metarate "$FS" "$phase-${th}t" "$(cat "$RAW/out.json")"
        else
          log "bench: $FS: metarate $phase ($th threads, round $round) failed (see $RAW/$FS.meta.log)"
          record fail "$FS" "$phase-${th}t" "metarate failed (round $round)"
        fi
      done
      rm -rf "$MNT/meta"
    done
  done
  log "bench: $FS: metadata phases took $(($(date +%s) - t0)) s"
}

# With --repeat, the filesystems take turns, so that a change in the machine's load falls on
# all of them; report.py takes the median of each figure.
for PASS_NO in $(seq 1 "$REPEAT"); do
  for f in "${FSES[@]}"; do
    pass_note=''
    if ((REPEAT > 1)); then pass_note=" (pass $PASS_NO of $REPEAT)"; fi
    log "bench: == $f$pass_note"
    fs_setup "$f"
    if [[ $f == udaxfs && $PASS_NO == 1 ]]; then record rss udaxfs after-mount "$(daemon_rss)"; fi
    if [[ $f == udaxfs* && $PASS_NO == 1 ]]; then
      transport=$(udaxfs_transport)
      record meta - - "transport_$f=$transport"
      log "bench: $f serves $transport"
    fi
    data_jobs
    meta_jobs
    fs_teardown
  done
done

# ---------------------------------------------------------------- the physical limit
log "bench: == raw copy bandwidth of a tmpfs mapping"
for th in 1 2; do
  if run_bg "$BIN/rawcopy" "$DATA/raw.img" --size "$SIZE_BYTES" --seconds "$(((RUNTIME + 1) / 2))" --threads "$th" \
      --json >"$RAW/out.json" 2>>"$RAW/raw.log"; then
    record raw - "${th}t" "$(cat "$RAW/out.json")"
  else
    record fail raw "${th}t" "rawcopy failed"
  fi
  rm -f "$DATA/raw.img"
done

# ---------------------------------------------------------------- daemon memory
# A fresh udaxfs with room for the largest count; files are created in steps up to each
# count (1,000 per directory), the daemon's RSS read after each step, and once more after
# a remount (what a mounted filesystem with that many files costs when nothing is open).
if [[ $RSS_FILES != none ]]; then
  IFS=, read -r -a counts <<<"$RSS_FILES"
  max=0
  for c in "${counts[@]}"; do
    [[ $c =~ ^[0-9]+$ ]] || die "--rss-files: '$c' is not a count"
    if ((c > max)); then max=$c; fi
  done
  log "bench: == udaxfs daemon memory at ${RSS_FILES//,/, } files"
  t0=$(date +%s)
  # 512 bytes of region per inode are plenty: 256-byte inodes, 4 KiB directory buckets.
  REGION_BYTES=$(((max * 2048 + (256 << 20) + (1 << 30) - 1) / (1 << 30) * (1 << 30)))
  UDAX_MKFS_OPTS="-i 1024" fs_setup udaxfs
  record rss udaxfs "files-0" "$(daemon_rss)"
  done_files=0 step=0
  for c in $(printf '%s\n' "${counts[@]}" | sort -n -u); do
    n=$((c - done_files))
    if ((n > 0)); then
      if ! run_bg timeout 3600 "$BIN/metarate" "$MNT/rss$step" --phase create --files "$n" --per-dir 1000 \
          --json >>"$RAW/rss.log" 2>&1; then
        log "bench: creating $c files failed (see $RAW/rss.log); stopping the memory report there"
        record fail udaxfs "rss-$c" "metarate failed"
        break
      fi
    fi
    done_files=$c step=$((step + 1))
    record rss udaxfs "files-$c" "$(daemon_rss)"
    fs_remount
    record rss udaxfs "files-$c-remounted" "$(daemon_rss)"
    log "bench: $c files: $(tail -n 2 "$MANIFEST" | cut -f3,4 | tr '\t\n' ': ')"
  done
  fs_teardown
  log "bench: memory report took $(($(date +%s) - t0)) s"
fi

record meta - - "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
record meta - - "elapsed=$(($(date +%s) - t_start))"
"$PY" "$ROOT/bench/report.py" "$MANIFEST" --out "$OUT/$STAMP" || die "report.py failed"
log "bench: raw fio output and logs in $RAW"
