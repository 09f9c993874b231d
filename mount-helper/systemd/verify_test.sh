#!/bin/bash
# verify_test.sh BIN -- systemd-analyze verify on every udaxfs unit in BIN/systemd (the
# build tree's copies, whose ExecStart names the build's BIN/udaxfs_patrol). The template is
# verified through an instance, as systemd would load it. Exit 77 (skipped) without
# systemd-analyze.
set -u
dir=$1
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$dir"/systemd/udaxfs-patrol@.service "$dir"/systemd/udaxfs-patrol-all.service \
  "$dir"/systemd/udaxfs-patrol-all.timer "$work"/
# An instance for a mount at /mnt/pm.
ln -s udaxfs-patrol@.service "$work/udaxfs-patrol@mnt-pm.service"
rc=0
for u in udaxfs-patrol@mnt-pm.service udaxfs-patrol-all.service udaxfs-patrol-all.timer; do
  # --man=no: the pages are checked by Man.*; warnings count as failures here.
  out=$(cd "$work" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$work/$u" 2>&1)
  # A container without a running systemd cannot reach its manager for the targets the
  # units name; that is the machine, not the unit.
  out=$(grep -v -e "Failed to connect to bus" -e "No such file or directory.*/proc/1" <<<"$out" | grep -v '^$')
  if [[ -n $out ]]; then
    echo "FAIL $u:"; echo "$out"; rc=1
  else
    echo "ok $u"
  fi
done
# The worker itself: a bad invocation is refused, --help answers.
"$dir/udaxfs_patrol" --help >/dev/null || { echo "FAIL udaxfs_patrol --help"; rc=1; }
"$dir/udaxfs_patrol" --rate x /mnt 2>/dev/null; [[ $? -eq 1 ]] || { echo "FAIL udaxfs_patrol --rate x"; rc=1; }
"$dir/udaxfs_patrol" 2>/dev/null; [[ $? -eq 1 ]] || { echo "FAIL udaxfs_patrol with no mount"; rc=1; }
exit $rc
