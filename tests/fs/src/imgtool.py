#!/usr/bin/env python3
"""imgtool.py -- damages udaxfs images in precise ways for the bad-input tests.

  corrupt-magic IMG      flip the magic of every superblock copy (primary and replica)
  set-version IMG N      set the format version of every superblock copy to N and reseal
                         its CRC32C, so only the version is wrong
  superblocks IMG        print the byte offsets of the superblock copies
A superblock is a 4 KiB block that starts with the magic "UDAXFS01"; the version is the
little-endian u32 at offset 8 and the CRC32C (of the block with the field zeroed) the u32
at offset 4092 (see fs/format/disk_format.h). Prints what it changed on stderr.
"""
import struct
import sys

MAGIC = b"UDAXFS01"
BLOCK = 4096


def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = _table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def superblocks(f):
    offs = []
    off = 0
    f.seek(0)
    while True:
        head = f.read(BLOCK)
        if len(head) < len(MAGIC):
            break
        if head.startswith(MAGIC):
            offs.append(off)
        off += BLOCK
    return offs


def main():
    assert crc32c(b"123456789") == 0xE3069283
    op, img = sys.argv[1], sys.argv[2]
    with open(img, "r+b") as f:
        offs = superblocks(f)
        if op == "superblocks":
            print(" ".join(str(o) for o in offs))
            return
        for o in offs:
            f.seek(o)
            blk = bytearray(f.read(BLOCK))
            if op == "corrupt-magic":
                blk[0:8] = b"XXXXXXXX"
            elif op == "set-version":
                blk[8:12] = struct.pack("<I", int(sys.argv[3]))
                blk[4092:4096] = b"\0\0\0\0"
                blk[4092:4096] = struct.pack("<I", crc32c(bytes(blk)))
            else:
                raise SystemExit(__doc__)
            f.seek(o)
            f.write(blk)
        print("%s: changed %d superblock copies at %s" % (op, len(offs), offs), file=sys.stderr)


if __name__ == "__main__":
    main()
