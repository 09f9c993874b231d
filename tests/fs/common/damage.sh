# tests/fs/common/damage.sh -- damaging an unmounted udaxfs image from the shell (sourced).
#
# Reads the geometry from the primary superblock (fs/format/disk_format.h: little-endian
# u64 fields) with od, writes with dd conv=notrunc. Every function takes the image first.

# _img_u64 IMG OFFSET: the little-endian u64 at OFFSET.
_img_u64() { od -An -tu8 -j "$2" -N8 "$1" | tr -d ' '; }
# _img_u32 IMG OFFSET
_img_u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }

# _sb IMG FIELD: a superblock field by name.
# _last_data_au IMAGE: the first AU past the data area (the second inode table's, or the
# replica's on an image without metadata copies).
_last_data_au() {
  local t2
  t2=$(_sb "$1" itable2_off)
  if ((t2 != 0)); then echo $((t2 / $(_sb "$1" au_size))); else echo $(($(_sb "$1" au_count) - 1)); fi
}
_sb() {
  local off
  case $2 in
    au_size) _img_u32 "$1" 32; return ;;
    au_count) off=40 ;; journal_off) off=48 ;; ibitmap_off) off=64 ;; itable_off) off=80 ;;
    inode_count) off=96 ;; abitmap_off) off=112 ;; rmap_off) off=128 ;; data_off) off=144 ;;
    replica_off) off=152 ;; itable2_off) off=216 ;;
    *) echo "_sb: unknown field $2" >&2; return 1 ;;
  esac
  _img_u64 "$1" "$off"
}

# _inode_off IMG INO: byte offset of inode INO (256-byte inodes).
_inode_off() { echo $(($(_sb "$1" itable_off) + $2 * 256)); }
# _inline_phys_au IMG INO [SLOT]: physical AU of the inode's inline extent slot (0..2).
_inline_phys_au() { _img_u64 "$1" $(($(_inode_off "$1" "$2") + 152 + ${3:-0} * 32 + 8)); }

# _xor_byte IMG OFFSET MASK: flip the bits of MASK (decimal) in the byte at OFFSET.
_xor_byte() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ $3)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# _fill IMG OFFSET COUNT BYTE: COUNT copies of BYTE (decimal) at OFFSET.
_fill() {
  head -c "$3" /dev/zero | tr '\0' "$(printf '\\%03o' "$4")" |
    dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# _flip_au_bit IMG AU: toggle AU's bit in the allocation bitmap.
_flip_au_bit() { _xor_byte "$1" $(($(_sb "$1" abitmap_off) + $2 / 8)) $((1 << ($2 % 8))); }
