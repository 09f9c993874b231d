#!/usr/bin/env bash
# fuzz.sh -- builds the libFuzzer targets (tests/fuzz) with clang in build-fuzz/ and runs
# each for a while: superblock, journal, records, image, xattr, acl.
#
#   scripts/fuzz.sh                 20 s per target (what scripts/test.sh runs)
#   scripts/fuzz.sh --long          30 min per target (a soak)
#   scripts/fuzz.sh -t SECONDS      any duration per target
#   scripts/fuzz.sh TARGET...       only these targets
#
# The committed corpus (tests/fuzz/corpus/TARGET) is read, never written: new inputs go to
# BUILD/fuzz-work/TARGET, crashes to BUILD/fuzz-crashes/TARGET-*. Exits 1 if any target
# crashed or broke a property (each report says how to reproduce). A fixed crash's input
# belongs in the corpus, where ctest's FuzzRegression.TARGET replays it in every build.
# Environment: UDAX_FUZZ_BUILD_DIR (default build-fuzz), UDAX_JOBS (build parallelism).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALL_TARGETS=(superblock journal records image xattr acl badblocks events control)

seconds=20
targets=()
while (($#)); do
  case $1 in
    --long) seconds=1800; shift ;;
    -t) seconds=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")

dir=${UDAX_FUZZ_BUILD_DIR:-build-fuzz}
[[ $dir = /* ]] || dir=$ROOT/$dir

# libFuzzer ships with clang's runtime (Debian: clang, libclang-rt-14-dev).
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' >"$probe/p.cc"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cc" -o "$probe/p" 2>"$probe/err"; then
  echo "fuzz.sh: clang++ -fsanitize=fuzzer does not work (scripts/setup.sh installs clang and libclang-rt-14-dev):" >&2
  cat "$probe/err" >&2
  exit 1
fi

mkdir -p "$dir"
if ! CC=clang CXX=clang++ cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DUDAX_FUZZ=ON >"$dir/configure.log" 2>&1; then
  cat "$dir/configure.log" >&2
  echo "fuzz.sh: cmake configure failed ($dir)" >&2
  exit 1
fi
cmake --build "$dir" -j "${UDAX_JOBS:-$(nproc)}" --target udax_fuzz || exit 1

work=$dir/fuzz-work
crashes=$dir/fuzz-crashes
mkdir -p "$crashes"
failed=()
for t in "${targets[@]}"; do
  bin=$dir/bin/udax_fuzz_$t
  [[ -x $bin ]] || { echo "fuzz.sh: no target $t (${ALL_TARGETS[*]})" >&2; exit 2; }
  mkdir -p "$work/$t"
  log=$dir/fuzz-$t.log
  before=$(ls "$crashes" | wc -l)
  timeout -k 10 $((seconds * 2 + 120)) "$bin" -max_total_time="$seconds" -max_len=400000 \
    -print_final_stats=1 -artifact_prefix="$crashes/$t-" "$work/$t" "$ROOT/tests/fuzz/corpus/$t" \
    >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  new=$(($(ls "$crashes" | wc -l) - before))
  printf 'fuzz %-10s %8s inputs in %ss (%s/s), exit %d, %d new crash files\n' \
    "$t" "${execs:-?}" "$seconds" "${rate:-?}" "$rc" "$new"
  if ((rc != 0 || new > 0)); then
    failed+=("$t")
    grep -E 'property violated|ERROR: |SUMMARY' "$log" | head -n 5 | sed 's/^/    /'
    echo "    log $log; reproduce: $bin $crashes/$t-<file>"
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, no crashes"
