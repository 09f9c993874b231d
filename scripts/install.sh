#!/usr/bin/env bash
# install.sh -- installs udaxfs from a build: `cmake --install`, nothing else.
#
#   scripts/install.sh [BUILD_DIR] [PREFIX]     (as root)
#
# BUILD_DIR (default build/) must be built. Installs the daemon and tools into
# PREFIX/sbin (default /usr/local), the mount(8) helpers mount.udaxfs and
# mount.fuse.udaxfs into /sbin (where mount(8) looks; they find the daemon beside
# themselves or in PATH), libudax, the preload shim, headers, udax.pc, the man pages and
# the patrol's systemd units (PREFIX/lib/systemd/system). For a package that dpkg can
# upgrade and remove, use scripts/package.sh instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case ${1:-} in
  -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
build=${1:-$ROOT/build}
prefix=${2:-/usr/local}
[[ $build = /* ]] || build=$PWD/$build
[[ $(id -u) -eq 0 ]] || { echo "install.sh: must run as root" >&2; exit 1; }
[[ -x $build/bin/udaxfs ]] || { echo "install.sh: $build/bin/udaxfs not found (build first: scripts/build.sh)" >&2; exit 1; }
cmake --install "$build" --prefix "$prefix" > >(grep -v -- '-- Up-to-date') ||
  { echo "install.sh: cmake --install failed" >&2; exit 1; }
# The helpers in /sbin look for the daemon beside themselves, in PATH and in
# /usr/local/sbin, /usr/sbin, /sbin: for another prefix they become links to a copy
# beside the daemon (which mount(8), running /sbin/mount.udaxfs, then finds).
sbin=$(realpath -m "$prefix/sbin")
case $sbin in
  /usr/local/sbin|/usr/sbin|/sbin) ;;
  *)
    install -m 0755 "$build/bin/mount.udaxfs" "$sbin/mount.udaxfs"
    for h in mount.udaxfs mount.fuse.udaxfs; do ln -sfn "$sbin/mount.udaxfs" "/sbin/$h"; done
    echo "install.sh: /sbin/mount.udaxfs and /sbin/mount.fuse.udaxfs -> $sbin/mount.udaxfs"
    ;;
esac
ldconfig 2>/dev/null || true  # libudax, for programs that link it
echo "install.sh: done; mount with: mount -t udaxfs IMAGE DIR [-o OPTS]"
