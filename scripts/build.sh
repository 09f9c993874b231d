#!/usr/bin/env bash
# build.sh -- configures and builds udaxfs with CMake + Ninja.
#
#   scripts/build.sh              -> build/       (RelWithDebInfo)
#   scripts/build.sh --sanitize   -> build-asan/  (-DUDAX_SANITIZE=ON: ASan + UBSan), built
#                                 with clang, whose -Wthread-safety -Werror checks the
#                                 lock annotations (UDAX_SANITIZE_CXX=g++ to use gcc)
#
# Environment: UDAX_BUILD_DIR overrides the build directory (relative paths are taken
# from the repository root), UDAX_BUILD_TYPE the CMake build type, UDAX_JOBS the
# parallelism (default: number of cores), UDAX_CMAKE_ARGS extra cmake arguments.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sanitize=0
for arg in "$@"; do
  case $arg in
    --sanitize|--asan) sanitize=1 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument '$arg' (usage: build.sh [--sanitize])" >&2; exit 1 ;;
  esac
done

compilers=()
if ((sanitize)); then
  dir=${UDAX_BUILD_DIR:-build-asan}
  san=ON
  cxx=${UDAX_SANITIZE_CXX:-clang++}
  case $cxx in
    clang++*) cc=${cxx/clang++/clang} ;;
    g++*) cc=${cxx/g++/gcc} ;;
    *) cc=cc ;;
  esac
  compilers=(-DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx")
else
  dir=${UDAX_BUILD_DIR:-build}
  san=OFF
fi
[[ $dir = /* ]] || dir=$ROOT/$dir

extra=()
[[ -n ${UDAX_CMAKE_ARGS:-} ]] && read -r -a extra <<<"$UDAX_CMAKE_ARGS"

mkdir -p "$dir"
cmake -S "$ROOT" -B "$dir" -G Ninja \
  -DCMAKE_BUILD_TYPE="${UDAX_BUILD_TYPE:-RelWithDebInfo}" \
  -DUDAX_SANITIZE=$san "${compilers[@]}" "${extra[@]}" >"$dir/configure.log" 2>&1 || {
  cat "$dir/configure.log" >&2
  echo "build.sh: cmake configure failed ($dir)" >&2
  exit 1
}
cmake --build "$dir" -j "${UDAX_JOBS:-$(nproc)}"
echo "build.sh: built $dir"
