#!/usr/bin/env bash
# test.sh -- the whole default test suite (README set-up command 2; .ci/run calls it).
#
#   1. scripts/setup.sh                     dependencies (apt), skipped when all present
#      scripts/check_layers.py              the include graph follows the layers (no cycle)
#   2. scripts/build.sh                     -> build/        + ctest
#   3. tests/fs/check -b build              the mounted-filesystem suite, over /dev/fuse
#   4. ctest -L lab-quick (build/)          the pmem lab: QEMU guests with real devdax/fsdax
#                                           (scripts/lab; README "The pmem lab")
#      tests/package/package_test.sh        the Debian package: scripts/package.sh, dpkg -i,
#                                           an fstab line with mount -a, dpkg -r (skipped
#                                           where a udaxfs package is installed already)
#   5. scripts/build.sh --sanitize          -> build-asan/   + ctest (ASan + UBSan)
#   6. tests/fs/check -b build-asan         the suite again on the sanitized daemon
#                                           (all of it; see UDAX_ASAN_FS_EXCLUDE), over
#                                           FUSE over io_uring where the kernel has it
#   7. scripts/fuzz.sh                      -> build-fuzz/: each libFuzzer target for 20 s
# So that each transport runs the whole suite, step 6 mounts with -o uring (FUSE over
# io_uring) and turns the fuse module's enable_uring parameter on for it; the value
# found is put back at exit.
# Ends with one line "N passed, M failed[, K skipped]" counting the mounted-filesystem
# tests of both runs; exits non-zero if any step failed. Works without stdin and with
# CI=true. Environment:
#   UDAX_BUILD_DIR / UDAX_ASAN_BUILD_DIR   build directories (default build, build-asan)
#   UDAX_LAB=quick|all|full|off            step 4: ctest -L lab-quick (default, ~1.5 min),
#                                           -L lab (the five scenarios, ~10 min), also
#                                           -L 'pmem-extra|dax-suite' (the whole fs suite
#                                           on devdax and fsdax, ~1 h each), or none
#   UDAX_SKIP_PACKAGE=1                    skip the package test
#   UDAX_SKIP_ASAN=1                       skip steps 5 and 6
#   UDAX_SKIP_FUZZ=1                       skip step 7 (UDAX_FUZZ_SECONDS: per target)
#   UDAX_ASAN_FS_EXCLUDE                   tests left out of step 6 (default: none)
#   UDAX_FS_TESTS                          run only these fs tests (both runs)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/as_root.sh"
udax_as_root "$@"
cd "$ROOT" || exit 1
exec </dev/null

normal=${UDAX_BUILD_DIR:-build}
asan=${UDAX_ASAN_BUILD_DIR:-build-asan}
asan_exclude=${UDAX_ASAN_FS_EXCLUDE-}
read -r -a only <<<"${UDAX_FS_TESTS:-}"

start=$SECONDS
failed_steps=()
fs_pass=0 fs_fail=0 fs_skip=0

step() { echo; echo "==== $* ($((SECONDS - start))s)"; }

# FUSE over io_uring (Linux 6.14+, udaxfs -o uring) is offered to a new mount while the
# fuse module's enable_uring parameter is Y.
uring_param=/sys/module/fuse/parameters/enable_uring
uring_saved=
if [[ -w $uring_param ]]; then
  uring_saved=$(cat "$uring_param")
  trap 'echo "$uring_saved" >"$uring_param"' EXIT
fi

# count_fs LOG: add the "N passed, M failed[, K skipped]" line of a check run.
count_fs() {
  local line p f s
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n1)
  [[ -n $line ]] || return 1
  p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
  s=$(sed -nE 's/.*, ([0-9]+) skipped.*/\1/p' <<<"$line")
  fs_pass=$((fs_pass + p)) fs_fail=$((fs_fail + f)) fs_skip=$((fs_skip + ${s:-0}))
}

# The lab's guests run in their own step (one at a time), not among the unit tests.
run_ctest() {
  local dir=$1
  (cd "$dir" && ctest --output-on-failure --timeout 600 -j "$(nproc)" -LE 'lab|pmem-extra|dax-suite')
}

run_fs() {
  local dir=$1 log=$1/fs-check.log
  shift
  mkdir -p "$dir"
  tests/fs/check -b "$dir" "$@" "${only[@]}" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  count_fs "$log" || rc=1
  return "$rc"
}

step "setup"
scripts/setup.sh || failed_steps+=("setup")

step "layers: scripts/check_layers.py"
python3 scripts/check_layers.py || failed_steps+=("layers")

step "build ($normal)"
if UDAX_BUILD_DIR=$normal scripts/build.sh; then
  step "unit tests ($normal)"
  run_ctest "$normal" || failed_steps+=("ctest $normal")
  step "mounted-filesystem tests ($normal, /dev/fuse)"
  run_fs "$normal" || failed_steps+=("fs tests $normal")
  case ${UDAX_LAB:-quick} in
    off) labels= ;;
    all) labels=lab ;;
    full) labels='lab|pmem-extra|dax-suite' ;;
    *) labels=lab-quick ;;
  esac
  if [[ -n $labels ]]; then
    step "pmem lab: ctest -L '$labels' ($normal)"
    (cd "$normal" && ctest --output-on-failure -L "$labels") || failed_steps+=("pmem lab")
  fi
  if [[ ${UDAX_SKIP_PACKAGE:-0} != 1 ]]; then
    step "Debian package: build, dpkg -i, mount -a, dpkg -r ($normal)"
    pkg_rc=0
    tests/package/package_test.sh "$normal" || pkg_rc=$?
    ((pkg_rc == 0 || pkg_rc == 77)) || failed_steps+=("package")
  fi
else
  failed_steps+=("build $normal")
fi

if [[ ${UDAX_SKIP_ASAN:-0} != 1 ]]; then
  step "build with sanitizers ($asan)"
  if UDAX_BUILD_DIR=$asan scripts/build.sh --sanitize; then
    step "unit tests ($asan)"
    ASAN_OPTIONS=detect_leaks=1 run_ctest "$asan" || failed_steps+=("ctest $asan")
    transport="/dev/fuse: this kernel has no FUSE over io_uring" extra=
    if [[ -n $uring_saved ]]; then
      echo Y >"$uring_param"
      transport="FUSE over io_uring" extra=uring
    fi
    step "mounted-filesystem tests ($asan, $transport)"
    ex=()
    for t in $asan_exclude; do ex+=(-x "$t"); done
    UDAX_MOUNT_EXTRA=$extra run_fs "$asan" "${ex[@]}" || failed_steps+=("fs tests $asan")
  else
    failed_steps+=("build $asan")
  fi
fi

if [[ ${UDAX_SKIP_FUZZ:-0} != 1 ]]; then
  step "fuzzing, ${UDAX_FUZZ_SECONDS:-20} s per target (build-fuzz)"
  scripts/fuzz.sh -t "${UDAX_FUZZ_SECONDS:-20}" || failed_steps+=("fuzz")
fi

echo
echo "==== summary ($((SECONDS - start))s)"
if ((${#failed_steps[@]})); then
  echo "FAILED steps: $(IFS=,; echo "${failed_steps[*]}")"
else
  echo "all steps passed"
fi
line="$fs_pass passed, $fs_fail failed"
((fs_skip)) && line+=", $fs_skip skipped"
echo "$line"
((${#failed_steps[@]} == 0))
