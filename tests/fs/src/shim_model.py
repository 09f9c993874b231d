#!/usr/bin/env python3
"""shim_model.py -- a model-checked random test of the preload shim (issue 21).

Two processes work on the same udaxfs file: this one through FUSE (no shim) and a child
under LD_PRELOAD=libudax-preload.so, whose pread/pwrite/write/fsync go through read and
write views. Each step one of them, at random, does a random operation: pwrite, write at
the file position, an O_APPEND write, truncate, punch a hole, an mmap store, fsync. The
same operation is applied to a reference copy on tmpfs, and after every step the whole
file is compared with it, read by this process through FUSE and, every few steps, by the
child through its view. The first mismatch stops the run with the step, the operation and
the first differing offset.

  shim_model.py FILE REFERENCE SHIM OPS SEED     the driver (prints a summary)
  shim_model.py --serve FILE                      the child (started by the driver)
"""
import ctypes
import json
import mmap
import os
import random
import subprocess
import sys

FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
MAX_SIZE = 1 << 20
PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def punch(fd, off, n):
    if libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Actor:
    """One process's descriptors of a file, and the operations on them."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR)
        self.append_fd = os.open(path, os.O_RDWR | os.O_APPEND)

    def do(self, op):
        kind = op["op"]
        if kind == "pwrite":
            data = bytes.fromhex(op["data"])
            return os.pwrite(self.fd, data, op["off"])
        if kind == "write":  # at the file position
            os.lseek(self.fd, op["off"], os.SEEK_SET)
            n = os.write(self.fd, bytes.fromhex(op["data"]))
            return [n, os.lseek(self.fd, 0, os.SEEK_CUR)]
        if kind == "append":
            os.write(self.append_fd, bytes.fromhex(op["data"]))
            return os.lseek(self.append_fd, 0, os.SEEK_CUR)
        if kind == "truncate":
            os.ftruncate(self.fd, op["size"])
            return 0
        if kind == "punch":
            punch(self.fd, op["off"], op["len"])
            return 0
        if kind == "fsync":
            os.fsync(self.fd)
            return 0
        if kind == "mmap":  # a store through a shared map of the page-aligned window
            m = mmap.mmap(self.fd, op["len"], offset=op["map_off"])
            data = bytes.fromhex(op["data"])
            m[op["off"] - op["map_off"]:op["off"] - op["map_off"] + len(data)] = data
            m.flush()
            m.close()
            return 0
        if kind == "read":
            size = os.fstat(self.fd).st_size
            return os.pread(self.fd, size + 4096, 0).hex()
        raise ValueError(kind)


def serve(path):
    actor = Actor(path)
    for line in sys.stdin:
        op = json.loads(line)
        try:
            out = {"ok": actor.do(op)}
        except OSError as e:
            out = {"errno": e.errno}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def apply_reference(ref_fd, op, size):
    """The operation on the reference; returns the new size."""
    kind = op["op"]
    if kind in ("pwrite", "write", "mmap"):
        data = bytes.fromhex(op["data"])
        os.pwrite(ref_fd, data, op["off"])
        return max(size, op["off"] + len(data))
    if kind == "append":
        data = bytes.fromhex(op["data"])
        os.pwrite(ref_fd, data, size)
        return size + len(data)
    if kind == "truncate":
        os.ftruncate(ref_fd, op["size"])
        return op["size"]
    if kind == "punch":
        punch(ref_fd, op["off"], op["len"])
        return size
    return size


def random_op(rng, size):
    kind = rng.choice(["pwrite"] * 6 + ["write"] * 2 + ["append", "truncate", "punch", "fsync", "mmap"])
    n = rng.choice([1, 7, 512, 4096, 5000, 65536])
    data = rng.randbytes(n).hex()
    if kind in ("pwrite", "write"):
        # Mostly overwrites (what views store), sometimes past the end or into a hole.
        off = rng.randrange(0, max(1, min(size + 8192, MAX_SIZE - n)))
        return {"op": kind, "off": off, "data": data}
    if kind == "append":
        if size + n > MAX_SIZE:
            return {"op": "fsync"}
        return {"op": kind, "data": data}
    if kind == "truncate":
        return {"op": kind, "size": rng.randrange(0, MAX_SIZE)}
    if kind == "punch":
        return {"op": kind, "off": rng.randrange(0, max(1, size)), "len": rng.choice([1, 4096, 65536])}
    if kind == "mmap":
        if size < PAGE:
            return {"op": "fsync"}
        map_off = rng.randrange(0, size // PAGE) * PAGE
        length = min(size - map_off, rng.choice([PAGE, 4 * PAGE]))
        n = min(n, length)
        off = map_off + rng.randrange(0, length - n + 1)
        return {"op": kind, "map_off": map_off, "len": length, "off": off, "data": data[: 2 * n]}
    return {"op": "fsync"}


def first_difference(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return min(len(a), len(b))


def drive(path, reference, shim, ops, seed):
    rng = random.Random(seed)
    plain = dict(os.environ)
    plain.pop("LD_PRELOAD", None)
    preloaded = dict(plain, LD_PRELOAD=shim)
    start = rng.randbytes(262144)
    with open(path, "wb") as f:
        f.write(start)
    with open(reference, "wb") as f:
        f.write(start)
    ref_fd = os.open(reference, os.O_RDWR)
    size = len(start)
    child = subprocess.Popen([sys.executable, __file__, "--serve", path], env=preloaded,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    me = Actor(path)

    def ask(op):
        child.stdin.write(json.dumps(op) + "\n")
        child.stdin.flush()
        return json.loads(child.stdout.readline())

    counts = {}
    try:
        for step in range(ops):
            op = random_op(rng, size)
            who = rng.choice(["shim", "fuse"])
            counts[who + ":" + op["op"]] = counts.get(who + ":" + op["op"], 0) + 1
            if who == "shim":
                out = ask(op)
                if "errno" in out:
                    print("step %d: %s through the shim failed: errno %d" % (step, op["op"], out["errno"]))
                    return 1
            else:
                me.do(op)
            size = apply_reference(ref_fd, op, size)
            want = os.pread(ref_fd, MAX_SIZE * 2, 0)
            got = bytes.fromhex(me.do({"op": "read"}))
            if got != want:
                print("step %d (%s %s): FUSE read differs at %d (sizes %d, %d)" %
                      (step, who, op["op"], first_difference(got, want), len(got), len(want)))
                return 1
            if step % 4 == 0 or who == "fuse":
                out = ask({"op": "read"})
                got = bytes.fromhex(out.get("ok", ""))
                if got != want:
                    print("step %d (%s %s): shim read differs at %d (sizes %d, %d)" %
                          (step, who, op["op"], first_difference(got, want), len(got), len(want)))
                    return 1
    finally:
        try:
            child.stdin.close()
        except BrokenPipeError:
            pass
        # How the preloaded child ended, when it did not end well (a signal: -N).
        if child.wait() != 0:
            print("the preloaded child exited with status %d" % child.returncode, file=sys.stderr)
    print("%d operations, no mismatch" % ops)
    print("by kind:", " ".join("%s=%d" % kv for kv in sorted(counts.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
    elif len(sys.argv) == 6:
        sys.exit(drive(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    else:
        sys.exit(__doc__)
