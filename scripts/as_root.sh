# as_root.sh -- sourced by the README's set-up commands (demo.sh, test.sh): they run as
# root. Started by another user, the script runs itself again through sudo when sudo is
# installed, keeping the UDAX_* and CI settings (passed through env(1), so no sudoers
# rule about preserving the environment is needed); without sudo it says how to run it.
# A fresh Debian machine where one is root often has no sudo at all, hence no "sudo" in
# the README's commands.
udax_as_root() {
  [[ $(id -u) -eq 0 ]] && return 0
  local self name settings=()
  self=$(realpath -- "$0")
  name=$(basename -- "$0")
  if ! command -v sudo >/dev/null 2>&1; then
    local line
    line=$(printf '%q ' "$self" "$@")
    echo "$name: run it as root (this machine has no sudo): su -c \"${line% }\"" >&2
    exit 1
  fi
  for name in $(compgen -e); do
    [[ $name == UDAX_* || $name == CI ]] && settings+=("$name=${!name}")
  done
  echo "$(basename -- "$0"): not root: running it again through sudo" >&2
  # Through bash, so a script without the exec bit (or on a noexec mount) runs too.
  exec sudo -- env "${settings[@]}" "$BASH" "$self" "$@"
}
