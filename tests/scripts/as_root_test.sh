#!/usr/bin/env bash
# as_root_test.sh -- scripts/as_root.sh, as the README's set-up commands use it: root runs
# on; another user without sudo gets a clear message and exit 1; with sudo, the script
# runs itself again through it, keeping its arguments and the UDAX_* and CI settings.
# Runs as root (ctest), dropping to nobody with setpriv; a fake sudo records its call.
set -u
src=$1  # the repository root
[[ $(id -u) -eq 0 ]] || { echo "as_root_test: needs root to become nobody: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
cp "$src/scripts/as_root.sh" "$tmp/"
cat >"$tmp/setup-command" <<'SCRIPT'
#!/usr/bin/env bash
. "$(dirname "$0")/as_root.sh"
udax_as_root "$@"
echo "running as uid $(id -u) with: $*"
SCRIPT
chmod 755 "$tmp/setup-command" "$tmp/as_root.sh"
# Two PATHs with only what the helper and the scripts need: one with sudo, one without.
mkdir -p "$tmp/nosudo" "$tmp/withsudo"
for tool in bash env id realpath basename dirname; do
  ln -s "$(command -v "$tool")" "$tmp/nosudo/$tool"
  ln -s "$(command -v "$tool")" "$tmp/withsudo/$tool"
done
cat >"$tmp/withsudo/sudo" <<'SCRIPT'
#!/usr/bin/env bash
printf 'sudo'; printf ' %q' "$@"; echo
SCRIPT
chmod 755 "$tmp/withsudo/sudo"
as_nobody() {  # PATH, then the command
  local path=$1
  shift
  setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH="$path" UDAX_DEMO_MNT=/mnt/x \
    CI=true OTHER=dropped "$@"
}
fail=0
expect() {  # WHAT EXPECTED-RC EXPECTED-OUTPUT-PATTERN RC OUTPUT
  if [[ $4 -ne $2 || ! $5 =~ $3 ]]; then
    echo "FAIL: $1: exit $4, output: $5 (wanted exit $2 and /$3/)"
    fail=1
  else
    echo "ok: $1"
  fi
}
out=$("$tmp/setup-command" a b 2>&1); rc=$?
expect "root runs on" 0 "^running as uid 0 with: a b$" "$rc" "$out"
out=$(as_nobody "$tmp/nosudo" "$tmp/setup-command" a b 2>&1); rc=$?
expect "no sudo: a clear refusal" 1 "^setup-command: run it as root \\(this machine has no sudo\\): su -c \"$tmp/setup-command a b\"$" "$rc" "$out"
out=$(as_nobody "$tmp/withsudo" "$tmp/setup-command" "a b" c 2>&1); rc=$?
expect "sudo: the same script again, with its settings" 0 \
  "sudo -- env (.* )?CI=true (.* )?UDAX_DEMO_MNT=/mnt/x [^ ]*bash $tmp/setup-command a\\\\ b c$" "$rc" "$out"
[[ $out == *OTHER=* ]] && { echo "FAIL: a setting that is not UDAX_* or CI was passed"; fail=1; }
exit $fail
