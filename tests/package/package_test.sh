#!/usr/bin/env bash
# package_test.sh BUILD_DIR -- the Debian package on this machine, end to end (issue 20):
# scripts/package.sh builds it; its control file declares the libraries; `dpkg -i`
# installs it; the installed units pass systemd-analyze verify and the installed pages
# open with man; an fstab line mounts with `mount -a` through the installed helper and
# daemon, which serve, patrol (udaxfs_patrol) and unmount; `dpkg -r` removes every
# file it installed, and `dpkg -P` purges it.
#
# It installs into the real system, so it runs as root, and only where neither a udaxfs
# package nor any file the package holds is there already (it would remove them): exit
# 77 (skipped) otherwise.
# Everything it mounts is unmounted and the package is purged, even when it fails.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$ROOT/build}
[[ $(id -u) -eq 0 ]] || { echo "package_test: needs root: skipped"; exit 77; }
command -v dpkg >/dev/null || { echo "package_test: not a Debian system: skipped"; exit 77; }
if dpkg-query -W -f='${db:Status-Status}' udaxfs 2>/dev/null | grep -qv not-installed; then
  echo "package_test: a udaxfs package is installed already: skipped (it would be removed)"
  exit 77
fi

work=$(mktemp -d /tmp/udax-package-test.XXXXXX)
mnt=$work/mnt
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
cleanup() {
  if mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt" 2>/dev/null || umount -l "$mnt"; fi
  if dpkg-query -W -f='${db:Status-Status}' udaxfs 2>/dev/null | grep -qv not-installed; then
    dpkg -P udaxfs >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$mnt" "$work/state"
chmod 700 "$work/state"
export UDAX_STATE_DIR=$work/state  # the mount's state, not the machine's

echo "== build the package"
deb=$("$ROOT/scripts/package.sh" "$build") || { echo "FAIL: scripts/package.sh"; exit 1; }
ok "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in fuse3 libfuse3-3 libpmem2 libisal2 liburing2 libstdc++6; do
  grep -qw "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
mapfile -t files < <(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print substr($6, 2)}')
for f in /usr/sbin/udaxfs /usr/sbin/mkfs.udaxfs /usr/sbin/fsck.udaxfs /usr/sbin/udaxctl \
         /usr/sbin/udaxfs_patrol /sbin/mount.udaxfs /sbin/mount.fuse.udaxfs /usr/lib/libudax.so.0 \
         /usr/lib/libudax-preload.so /usr/include/udaxfs/udax.h /usr/lib/pkgconfig/udax.pc \
         /usr/share/man/man8/udaxctl.8 /usr/share/man/man3/libudax.3 \
         /usr/lib/systemd/system/udaxfs-patrol@.service /usr/lib/systemd/system/udaxfs-patrol-all.timer; do
  printf '%s\n' "${files[@]}" | grep -qx "$f" || fail "the package lacks $f"
done
ok "${#files[@]} files, dependencies: $depends"
# Files of another install (scripts/install.sh puts the helpers in /sbin) would be
# overwritten by dpkg -i and deleted by dpkg -r: not on a machine that has them.
for f in "${files[@]}"; do
  if [[ -e $f || -L $f ]]; then
    echo "package_test: $f exists already (another install): skipped"
    exit 77
  fi
done

echo "== dpkg -i"
if ! dpkg -i "$deb" >"$work/dpkg.log" 2>&1; then
  cat "$work/dpkg.log"
  fail "dpkg -i"
  exit 1
fi
ok "installed: $(dpkg-query -W -f='${Package} ${Version} ${db:Status-Status}' udaxfs)"
/usr/sbin/udaxctl --help >/dev/null || fail "the installed udaxctl does not run"
man -w udaxctl >/dev/null 2>&1 || fail "man does not find udaxctl(8)"
man -w udaxfs-patrol@.service >/dev/null 2>&1 || fail "man does not find udaxfs-patrol@.service(8)"
if command -v systemd-analyze >/dev/null; then
  for u in udaxfs-patrol-all.service udaxfs-patrol-all.timer; do
    out=$(systemd-analyze verify --man=no "/usr/lib/systemd/system/$u" 2>&1 | grep -v -e "Failed to connect to bus" -e '^$')
    [[ -z $out ]] || fail "systemd-analyze verify $u: $out"
  done
  ok "installed units verified"
fi
grep -q "^ExecStart=/usr/sbin/udaxfs_patrol" /usr/lib/systemd/system/udaxfs-patrol@.service ||
  fail "the installed unit does not name /usr/sbin/udaxfs_patrol"
# udax.pc is relative to where it lies (${pcfiledir}): its include directory is /usr/include.
inc=$(PKG_CONFIG_LIBDIR=/usr/lib/pkgconfig pkg-config --variable=includedir udax 2>&1)
[[ $(realpath -m "$inc") == /usr/include ]] || fail "udax.pc does not point at /usr: $inc"

echo "== an fstab line, mount -a"
img=$work/pm.img
/usr/sbin/mkfs.udaxfs -s 64M "$img" >/dev/null || fail "mkfs.udaxfs"
printf '%s %s udaxfs noatime,nofail,patrol=24 0 0\n' "$img" "$mnt" >"$work/fstab"
if mount -a -T "$work/fstab" && mountpoint -q "$mnt"; then
  ok "mount -a mounted $(findmnt -n -o FSTYPE,SOURCE "$mnt" | tr -s ' ')"
  daemon=$(pgrep -f "^/usr/sbin/udaxfs $img" | head -1)
  [[ -n $daemon ]] || fail "the daemon serving it is not the installed /usr/sbin/udaxfs"
  echo hello >"$mnt/f" && [[ $(cat "$mnt/f") == hello ]] || fail "the mount does not serve"
  /usr/sbin/udaxfs_patrol --rate 500 "$mnt" >"$work/patrol.log" 2>&1 || { cat "$work/patrol.log"; fail "udaxfs_patrol on the mount"; }
  ok "udaxfs_patrol: $(tail -1 "$work/patrol.log" | sed "s#$mnt#MOUNT#")"
  umount "$mnt" || fail "umount"
else
  fail "mount -a -T fstab"
fi

echo "== dpkg -r, dpkg -P"
dpkg -r udaxfs >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -r"; }
left=()
for f in "${files[@]}"; do [[ -e $f || -L $f ]] && left+=("$f"); done
((${#left[@]} == 0)) || fail "dpkg -r left ${left[*]}"
[[ -e /usr/sbin/udaxctl ]] && fail "/usr/sbin/udaxctl is still there after dpkg -r"
dpkg -P udaxfs >/dev/null 2>&1 || fail "dpkg -P"
[[ $(dpkg-query -W -f='${db:Status-Status}' udaxfs 2>/dev/null) =~ ^(not-installed)?$ ]] || fail "still known to dpkg"
((fails == 0)) && ok "removed: nothing left" 
echo "package_test: $fails failure(s)"
((fails == 0))
