#!/usr/bin/env bash
# kernel.sh -- prints the path of the guest kernel to boot, preparing it once.
#
#   scripts/lab/kernel.sh            -> LAB_CACHE/KVER/vmlinux (cached)
#
# The stock bzImage decompresses itself with XZ, which under TCG takes 4-6 s of every
# boot; the ELF vmlinux inside it boots directly through its PVH entry point. So we cut
# the compressed payload out of the bzImage (setup header: setup_sects at 0x1f1,
# payload_offset/payload_length at 0x248, per Documentation/x86/boot.rst), decompress it
# once and keep it. Falls back to the bzImage when extraction fails.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

kver=$(lab_kernel_version) || lab_die "no Debian kernel in /boot (scripts/setup.sh installs linux-image-amd64)"
bz=/boot/vmlinuz-$kver
[[ -r $bz ]] || lab_die "$bz not readable"
out=$LAB_CACHE/$kver/vmlinux
if [[ -s $out && $out -nt $bz ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$(dirname "$out")"

# u8 / u32 little-endian fields of the setup header.
field() { od -An -t "u$2" -j "$1" -N "$2" "$bz" | tr -d ' '; }
setup_sects=$(field $((0x1f1)) 1)
((setup_sects == 0)) && setup_sects=4
payload_off=$(field $((0x248)) 4)
payload_len=$(field $((0x24c)) 4)
start=$(((setup_sects + 1) * 512 + payload_off))

tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# xz stops with an error at the size word the kernel's build appends to the stream, after
# writing everything: judge the output, not xz's status. Complete means an ELF whose
# section header table (the last thing in the file) is all there.
tail -c +$((start + 1)) "$bz" | head -c "$payload_len" | xz -dc >"$tmp" 2>/dev/null || true
elf_field() { od -An -t "u$2" -j "$1" -N "$2" "$tmp" | tr -d ' '; }
if [[ $(head -c 4 "$tmp" | od -An -c | tr -d ' ') == '177ELF' ]] &&
  (($(elf_field $((0x28)) 8) + $(elf_field $((0x3a)) 2) * $(elf_field $((0x3c)) 2) <= $(stat -c %s "$tmp"))); then
  mv "$tmp" "$out"
  echo "$out"
else
  lab_log "could not extract an ELF vmlinux from $bz (not XZ?); booting the bzImage"
  echo "$bz"
fi
