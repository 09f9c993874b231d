#!/usr/bin/env bash
# install.sh -- installs the udaxfs tools and the mount(8) helpers from a build.
#
#   scripts/install.sh [BUILD_DIR] [PREFIX]     (as root)
#
# BUILD_DIR (default build/) must hold bin/ with the built tools. Installs udaxfs,
# mkfs.udaxfs, fsck.udaxfs, udaxctl and mount.udaxfs into PREFIX/sbin (default
# /usr/local), and mount.udaxfs + mount.fuse.udaxfs into /sbin, where mount(8) looks for
# helpers (`mount -t udaxfs`, `mount -t fuse.udaxfs`). The /sbin helpers are copies,
# so they keep working when the build directory goes away; they find the daemon in
# PATH or /usr/local/sbin, /usr/sbin, /sbin -- for any other PREFIX they are symlinks
# to PREFIX/sbin/mount.udaxfs, which finds the daemon beside itself. Idempotent: files
# already identical are left alone, others are replaced atomically (a running daemon
# keeps its old binary). UDAX_HELPER_DIR overrides /sbin (to try the script out).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case ${1:-} in
  -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
build=${1:-$ROOT/build}
prefix=${2:-/usr/local}
[[ $build = /* ]] || build=$PWD/$build
bin=$build/bin
sbin=$prefix/sbin
helpers=${UDAX_HELPER_DIR:-/sbin}  # overridable to try the script out

[[ $(id -u) -eq 0 ]] || { echo "install.sh: must run as root" >&2; exit 1; }
tools=(udaxfs mkfs.udaxfs fsck.udaxfs udaxctl mount.udaxfs)
for t in "${tools[@]}"; do
  [[ -x $bin/$t ]] || { echo "install.sh: $bin/$t not found (build first: scripts/build.sh)" >&2; exit 1; }
done

# put SRC DEST: copy SRC to DEST (mode 755) unless DEST is already identical.
put() {
  local src=$1 dest=$2 tmp
  if [[ -f $dest && ! -L $dest ]] && cmp -s "$src" "$dest"; then
    echo "  unchanged  $dest"
    return
  fi
  tmp=$(mktemp "$(dirname "$dest")/.install.XXXXXX")
  install -m 0755 "$src" "$tmp"
  mv -f "$tmp" "$dest"
  echo "  installed  $dest"
}

# link TARGET DEST: DEST becomes a symlink to TARGET.
link() {
  local target=$1 dest=$2
  if [[ -L $dest && $(readlink "$dest") == "$target" ]]; then
    echo "  unchanged  $dest -> $target"
    return
  fi
  ln -sfn "$target" "$dest.install.$$"
  mv -Tf "$dest.install.$$" "$dest"
  echo "  linked     $dest -> $target"
}

mkdir -p "$sbin"
for t in "${tools[@]}"; do put "$bin/$t" "$sbin/$t"; done

sbin_real=$(realpath "$sbin")
case $sbin_real in
  /usr/local/sbin|/usr/sbin|/sbin)
    for h in mount.udaxfs mount.fuse.udaxfs; do
      [[ $(realpath -m "$helpers/$h") == "$sbin_real/mount.udaxfs" ]] && continue  # same file
      put "$bin/mount.udaxfs" "$helpers/$h"
    done
    ;;
  *)
    for h in mount.udaxfs mount.fuse.udaxfs; do link "$sbin_real/mount.udaxfs" "$helpers/$h"; done
    ;;
esac
# libudax for applications: the library, the LD_PRELOAD shim, headers, pkg-config.
lib=$prefix/lib
if [[ -f $build/client/libudax.so.0.1.0 ]]; then
  mkdir -p "$lib/pkgconfig" "$prefix/include/udaxfs"
  put "$build/client/libudax.so.0.1.0" "$lib/libudax.so.0.1.0"
  link libudax.so.0.1.0 "$lib/libudax.so.0"
  link libudax.so.0 "$lib/libudax.so"
  put "$build/client/libudax-preload.so" "$lib/libudax-preload.so"
  install -m 0644 "$ROOT/include/udaxfs/udax.h" "$ROOT/include/udaxfs/udax.hpp" "$ROOT/include/udaxfs/control.h" "$prefix/include/udaxfs/"
  install -m 0644 "$build/client/udax.pc" "$lib/pkgconfig/udax.pc"
  ldconfig 2>/dev/null || true
  echo "  installed  libudax ($lib), headers ($prefix/include/udaxfs), udax.pc"
fi
echo "install.sh: done; mount with: mount -t udaxfs IMAGE DIR [-o OPTS]"
