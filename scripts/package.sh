#!/usr/bin/env bash
# package.sh -- builds the Debian package of udaxfs from a build directory.
#
#   scripts/package.sh [BUILD_DIR]      -> BUILD_DIR/udaxfs_VERSION_ARCH.deb (path printed)
#
# BUILD_DIR (default build/) is configured and built first when it is not (scripts/build.sh);
# a sanitized build is refused (its binaries need the ASan runtime). The package is
# CPack's DEB generator over the install rules (CMakeLists.txt, "The Debian package"):
# what `cmake --install` installs, under /usr, with the mount(8) helpers in /sbin and the
# dependencies dpkg-shlibdeps finds. Install it with `dpkg -i` (or `apt install ./FILE`),
# remove it with `dpkg -r udaxfs`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case ${1:-} in
  -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
build=${1:-$ROOT/build}
[[ $build = /* ]] || build=$PWD/$build
command -v dpkg-shlibdeps >/dev/null || { echo "package.sh: dpkg-shlibdeps missing (scripts/setup.sh installs dpkg-dev)" >&2; exit 1; }
if [[ ! -f $build/CMakeCache.txt ]]; then
  UDAX_BUILD_DIR=$build "$ROOT/scripts/build.sh"
fi
if grep -q '^UDAX_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then
  echo "package.sh: $build is a sanitized build: package an ordinary one (scripts/build.sh)" >&2
  exit 1
fi
cmake --build "$build" >/dev/null
(cd "$build" && cpack -G DEB >cpack.log 2>&1) || { cat "$build/cpack.log" >&2; echo "package.sh: cpack failed" >&2; exit 1; }
deb=$(sed -n 's/^CPack: - package: \(.*\.deb\) generated\.$/\1/p' "$build/cpack.log" | tail -1)
[[ -f $deb ]] || { cat "$build/cpack.log" >&2; echo "package.sh: no package made" >&2; exit 1; }
echo "$deb"
