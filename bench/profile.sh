#!/usr/bin/env bash
# profile.sh -- where the udaxfs daemon spends its time on the hot paths of bench/run.sh:
# perf record (system-wide, call graphs) while one fio job runs on a fresh udaxfs mount,
# then the top symbols of the daemon's threads and of fio's (the kernel side of FUSE).
#
#   sudo bench/profile.sh [--size SIZE] [--seconds S] [--jobs LIST] [--freq HZ] [--no-build]
#
#   --size SIZE    file size (default 3G: one cold sequential pass lasts a few seconds)
#   --seconds S    cap of each job (default 8)
#   --jobs LIST    any of seqread,seqwrite,randwrite,randread (each also as NAME-mmap: fio's mmap
#                  engine), create and delete (default seqread,seqwrite,randwrite)
#   --freq HZ      perf sampling frequency (default 999)
#   --syscalls     count the daemon's system calls per job (perf trace -s) instead of sampling
#   --fs NAME      profile another daemon of run.sh instead (passthrough_ll, fuse2fs; run.sh
#                  must have built passthrough_ll)
#   --ra KB        set the mount's read_ahead_kb (/sys/class/bdi) before each job
#
# Output: $WORK/profile-<timestamp>/ (WORK as in run.sh, default /var/tmp/udaxfs-bench):
# JOB.perf.data, JOB.daemon.txt and JOB.fio.txt (self time by symbol), JOB.callers.txt
# (the daemon's call graph), JOB.fio.json; with --syscalls JOB.syscalls.txt (calls per
# fio I/O, all daemon threads summed). Needs linux-perf (installed if missing).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

SIZE=3G SECONDS_CAP=8 JOBLIST=seqread,seqwrite,randwrite FREQ=999 BUILD=1 SYSCALLS=0 PFS=udaxfs RA=''
WORK=${WORK:-/var/tmp/udaxfs-bench}
while (($#)); do
  case $1 in
    --size) SIZE=${2:?}; shift ;;
    --seconds) SECONDS_CAP=${2:?}; shift ;;
    --jobs) JOBLIST=${2:?}; shift ;;
    --freq) FREQ=${2:?}; shift ;;
    --no-build) BUILD=0 ;;
    --syscalls) SYSCALLS=1 ;;
    --fs) PFS=${2:?}; shift ;;
    --ra) RA=${2:?}; shift ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (bench/profile.sh --help)" ;;
  esac
  shift
done
[[ $(id -u) -eq 0 ]] || die "run as root"
if ! command -v perf >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends linux-perf >/dev/null || die "could not install linux-perf"
fi
perf record -q -o /dev/null -a -- true 2>/dev/null || die "perf record does not work here (perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid))"
SIZE_BYTES=$(numfmt --from=iec "${SIZE^^}") || die "bad size '$SIZE'"

BUILD_DIR=${UDAX_BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
if ((BUILD)); then
  mkdir -p "$WORK"
  UDAX_BUILD_DIR=$BUILD_DIR "$ROOT/scripts/build.sh" >"$WORK/build.log" 2>&1 || die "build failed ($WORK/build.log)"
fi
BIN=$BUILD_DIR/bin
[[ -x $BIN/udaxfs ]] || die "$BIN/udaxfs missing: build first"
PT=$WORK/passthrough_ll/passthrough_ll
[[ $PFS != passthrough_ll || -x $PT ]] || die "$PT missing: run bench/run.sh once (it builds it)"
[[ $PFS == udaxfs || $PFS == passthrough_ll || $PFS == fuse2fs ]] || die "--fs: udaxfs, passthrough_ll or fuse2fs"

OUTDIR=$WORK/profile-$(date -u +%Y%m%dT%H%M%SZ)
LOGDIR=$OUTDIR
mkdir -p "$OUTDIR"
DATA=$(mktemp -d "${BENCH_SHM:-/dev/shm}/udaxfs-prof.XXXXXX")
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
REGION_BYTES=$((SIZE_BYTES + (1 << 30)))
PERF='' PERF2=''

# perf record of the whole machine while "$@" runs; the caller filters by pid.
profiled() {
  local job=$1
  shift
  if ((SYSCALLS)); then
    # System-wide: -p would miss the worker threads libfuse starts during the job.
    perf trace -a -s -o "$OUTDIR/$job.trace.txt" 2>>"$OUTDIR/perf.log" &
  else
    perf record -q -F "$FREQ" -a -g -o "$OUTDIR/$job.perf.data" 2>>"$OUTDIR/perf.log" &
  fi
  PERF=$!
  # FUSE requests of this mount (the tracepoints' connection is the mount's device number).
  CONN=$(stat -c %d "$MNT")
  if [[ -n $RA ]]; then
    echo "$RA" >"/sys/class/bdi/0:$CONN/read_ahead_kb" || die "cannot set read_ahead_kb"
  fi
  log "bench: $job: read_ahead_kb $(cat "/sys/class/bdi/0:$CONN/read_ahead_kb" 2>/dev/null || echo '?')"
  perf record -q -e fuse:fuse_request_send -e fuse:fuse_request_end -a -o "$OUTDIR/$job.fuse.data" \
    2>>"$OUTDIR/perf.log" &
  PERF2=$!
  sleep 0.5
  run_bg "$@" || log "bench: $job: the workload failed (see $OUTDIR)"
  ls "/proc/$DAEMON/task" >"$OUTDIR/$job.tids"
  kill -INT "$PERF" "$PERF2"
  wait "$PERF" 2>/dev/null || true
  wait "$PERF2" 2>/dev/null || true
  PERF='' PERF2=''
  requests "$job"
}

# The FUSE requests the job caused: count per opcode, per fio I/O, and the mean sizes.
requests() {
  local job=$1
  perf script -i "$OUTDIR/$job.fuse.data" -F event,trace 2>/dev/null |
    /usr/bin/python3 "$ROOT/bench/fuse_requests.py" "$CONN" "$job" "$OUTDIR/$job.fio.json" | tee "$OUTDIR/$job.requests.txt"
}

# Self time by symbol of some pids, as a share of those pids' samples.
top() {
  local data=$1 pids=$2 limit=$3 lines=$4
  perf report -i "$data" --pid "$pids" --no-children --sort dso,symbol --stdio --percentage relative \
    --percent-limit "$limit" -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/ *- *- *$//' | head -n "$lines"
}

# perf trace -s prints a table per thread: sum each system call over the daemon's threads
# and divide by the number of I/Os fio did.
syscalls() {
  local job=$1 ios
  ios=$(/usr/bin/python3 -c 'import json,sys; t=open(sys.argv[1]).read(); j=json.loads(t[t.index("{"):])["jobs"][0]; print(j["read"]["total_ios"]+j["write"]["total_ios"])' \
    "$OUTDIR/$job.fio.json" 2>/dev/null || echo 0)
  awk -v ios="$ios" -v job="$job" '
    FNR == NR { mine["(" $1 "),"] = 1; next }
    NF >= 4 && $NF ~ /%$/ && $(NF - 1) == "events," { take = ($(NF - 3) in mine); next }
    take && $1 ~ /^[a-z_0-9]+$/ && $2 ~ /^[0-9]+$/ && NF >= 8 { n[$1] += $2; ms[$1] += $4 }
    END {
      printf "== %s: daemon system calls, all threads (%d fio I/Os)\n", job, ios
      printf "%-20s %10s %12s %12s\n", "syscall", "calls", "per fio I/O", "total ms"
      for (s in n) printf "%-20s %10d %12.2f %12.1f\n", s, n[s], ios ? n[s] / ios : 0, ms[s]
    }' "$OUTDIR/$job.tids" "$OUTDIR/$job.trace.txt" | { read -r h1; read -r h2; echo "$h1"; echo "$h2"; sort -k2,2nr; } | head -n 16 |
    tee "$OUTDIR/$job.syscalls.txt"
  echo
}

summarize() {
  local job=$1 data=$OUTDIR/$1.perf.data fio_pids
  fio_pids=$(perf script -i "$data" -F comm,pid 2>/dev/null | awk '$1 == "fio" { print $2 }' | sort -u | paste -sd,)
  {
    echo "== $job: $PFS daemon (pid $DAEMON): self time by symbol, % of the daemon's samples"
    top "$data" "$DAEMON" 0.7 40
    perf report -i "$data" --pid "$DAEMON" --no-children --sort dso,symbol --stdio --percentage relative -g none \
      2>/dev/null | awk '$1 ~ /%$/ { v = $1 + 0; if ($2 == "[kernel.kallsyms]") k += v; else u[$2] += v }
        END { printf "-- %.1f%% in the kernel", k; for (d in u) if (u[d] >= 1) printf ", %.1f%% in %s", u[d], d; print "" }'
  } >"$OUTDIR/$job.daemon.txt"
  perf report -i "$data" --pid "$DAEMON" --no-children --sort symbol --stdio --percentage relative \
    --percent-limit 2 -g caller,0.5,callee --max-stack 24 2>/dev/null >"$OUTDIR/$job.callers.txt" || true
  {
    echo "== $job: fio (pids ${fio_pids:-none}): self time by symbol, % of fio's samples"
    if [[ -n $fio_pids ]]; then top "$data" "$fio_pids" 1 25; fi
  } >"$OUTDIR/$job.fio.txt"
  cat "$OUTDIR/$job.daemon.txt" "$OUTDIR/$job.fio.txt"
  echo
}

fs_setup "$PFS"
IFS=, read -r -a jobs <<<"$JOBLIST"
for job in "${jobs[@]}"; do
  # JOB or JOB-mmap (fio's mmap engine instead of psync)
  eng=psync
  [[ $job == *-mmap ]] && eng=mmap
  common=(--directory="$MNT" --ioengine="$eng" --numjobs=1 --fallocate=none --output-format=json)
  case ${job%-mmap} in
    seqread|randread)
      run_bg fio --name=r --rw=write --bs=1M --size="$SIZE_BYTES" --end_fsync=1 --directory="$MNT" \
        --ioengine=psync --fallocate=none --output-format=json --output="$OUTDIR/layout.json" >/dev/null
      dd if="$MNT/r.0.0" iflag=nocache count=0 status=none  # cold page cache, warm daemon (as run.sh)
      rw=${job%-mmap}
      bs=1M
      [[ $rw == randread ]] && bs=4k
      profiled "$job" fio --name=r --rw="${rw#seq}" --bs="$bs" --size="$SIZE_BYTES" --runtime="$SECONDS_CAP" \
        "${common[@]}" --output="$OUTDIR/$job.fio.json"
      rm -f "$MNT"/r.*
      ;;
    seqwrite|randwrite)
      rw=${job%-mmap}
      bs=1M
      [[ $rw == randwrite ]] && bs=4k
      profiled "$job" fio --name=w --rw="${rw#seq}" --bs="$bs" --size="$SIZE_BYTES" --runtime="$SECONDS_CAP" \
        --end_fsync=1 "${common[@]}" --output="$OUTDIR/$job.fio.json"
      rm -f "$MNT"/w.*
      ;;
    create)
      profiled "$job" "$BIN/metarate" "$MNT/meta" --phase create --files 100000 --seconds "$SECONDS_CAP"
      rm -rf "$MNT/meta"
      ;;
    delete)
      run_bg "$BIN/metarate" "$MNT/meta" --phase create --files 8000 >/dev/null
      fs_remount  # cold dentry cache (as run.sh)
      profiled "$job" "$BIN/metarate" "$MNT/meta" --phase delete --files 8000 --seconds "$SECONDS_CAP"
      rm -rf "$MNT/meta"
      ;;
    *) die "unknown job '$job'" ;;
  esac
  /usr/bin/python3 - "$OUTDIR/$job.fio.json" "$job" <<'EOF' 2>/dev/null || true
import json, sys
try:
    t = open(sys.argv[1]).read(); j = json.loads(t[t.index("{"):])["jobs"][0]
except Exception:
    sys.exit(0)
s = j["write"] if "write" in sys.argv[2] else j["read"]
print(f"{sys.argv[2]}: {s['bw_bytes'] / 1e6:.0f} MB/s, {s['iops']:.0f} IOPS while profiled")
EOF
  if ((SYSCALLS)); then syscalls "$job"; else summarize "$job"; fi
done
fs_teardown
log "bench: profiles in $OUTDIR"
