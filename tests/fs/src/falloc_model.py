#!/usr/bin/env python3
"""falloc_model.py PATH STEPS SEED -- random writes, truncates and every fallocate mode on
PATH (a file on a udaxfs mount), mirrored on a bytearray model; checks the file's size
and bytes after every step and SEEK_DATA/SEEK_HOLE at the end. Collapse and insert go
through UDAX_IOC_FALLOCATE (the kernel's FUSE client refuses them). Prints a summary;
exit 1 at the first mismatch, naming the step."""
import ctypes
import fcntl
import os
import random
import struct
import sys

AU = 4096
LIBC = ctypes.CDLL(None, use_errno=True)
KEEP, PUNCH, COLLAPSE, ZERO, INSERT = 1, 2, 8, 16, 32
UDAX_IOC_FALLOCATE = 0x40185505


def falloc(fd, mode, off, length):
    if mode & (COLLAPSE | INSERT):
        fcntl.ioctl(fd, UDAX_IOC_FALLOCATE, struct.pack("<IIQQ", mode, 0, off, length))
    elif LIBC.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(length)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def main():
    path, steps, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rnd = random.Random(seed)
    model = bytearray()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    counts = {}
    limit = 64 * AU
    for step in range(steps):
        op = rnd.choice(["write", "write", "truncate", "alloc", "keep", "punch", "zero",
                         "zero-keep", "collapse", "insert"])
        off = rnd.randrange(0, limit)
        length = rnd.randrange(1, 8 * AU)
        try:
            if op == "write":
                data = bytes([rnd.randrange(1, 256)]) * length
                os.pwrite(fd, data, off)
                if off > len(model):
                    model.extend(bytes(off - len(model)))
                model[off:off + length] = data
            elif op == "truncate":
                os.ftruncate(fd, off)
                model = model[:off] + bytes(max(0, off - len(model)))
            elif op in ("alloc", "keep"):
                falloc(fd, 0 if op == "alloc" else KEEP, off, length)
                if op == "alloc" and off + length > len(model):
                    model.extend(bytes(off + length - len(model)))
            elif op == "punch":
                falloc(fd, PUNCH | KEEP, off, length)
                end = min(off + length, len(model))
                if off < end:
                    model[off:end] = bytes(end - off)
            elif op in ("zero", "zero-keep"):
                falloc(fd, ZERO | (KEEP if op == "zero-keep" else 0), off, length)
                end = min(off + length, len(model))
                if off < end:
                    model[off:end] = bytes(end - off)
                if op == "zero" and off + length > len(model):
                    model.extend(bytes(off + length - len(model)))
            elif op == "collapse":
                off, length = off // AU * AU, max(1, length // AU) * AU
                if off + length >= len(model):
                    continue
                falloc(fd, COLLAPSE, off, length)
                del model[off:off + length]
            elif op == "insert":
                off, length = off // AU * AU, max(1, length // AU) * AU
                if off >= len(model):
                    continue
                falloc(fd, INSERT, off, length)
                model[off:off] = bytes(length)
        except OSError as e:
            print("step %d: %s(%d, %d) failed: %s" % (step, op, off, length, e))
            return 1
        counts[op] = counts.get(op, 0) + 1
        size = os.fstat(fd).st_size
        got = os.pread(fd, size + 1, 0)
        if size != len(model) or got != bytes(model):
            first = next((i for i in range(min(len(got), len(model))) if got[i] != model[i]), None)
            print("step %d: after %s(%d, %d): size %d, model %d, first difference at %s" %
                  (step, op, off, length, size, len(model), first))
            return 1
    # SEEK_DATA / SEEK_HOLE: every hole reads as zeros, the walk covers the file, EOF is a hole.
    size = os.fstat(fd).st_size
    pos, holes_ok = 0, True
    while pos < size:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            data = size
        if any(model[pos:data]):
            holes_ok = False
        if data >= size:
            break
        pos = os.lseek(fd, data, os.SEEK_HOLE)
        if pos <= data:
            holes_ok = False
            break
    os.close(fd)
    print("%d steps (%s): size and bytes match the model after every step; holes read as "
          "zeros: %s" % (steps, ", ".join("%s %d" % kv for kv in sorted(counts.items())),
                         "yes" if holes_ok else "no"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
