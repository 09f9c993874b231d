#!/usr/bin/env python3
"""bulk.py -- many-entry directory operations for the large-directory test.

  create DIR N                create DIR/f000000 .. N-1 (open O_CREAT + close)
  lookup DIR N K SEED         stat K distinct random existing names and K missing ones;
                              prints the counts, the elapsed time goes to stderr
  readdir-unlink DIR          one readdir pass that unlinks every entry as it is returned;
                              prints how many were seen, duplicates, and what is left
Timings are printed on stderr as "time OP SECONDS" so they stay out of golden output.
"""
import os
import random
import sys
import time


def name(i):
    return "f%06d" % i


def create(d, n):
    t = time.monotonic()
    for i in range(n):
        os.close(os.open(os.path.join(d, name(i)), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
    print("time create %.3f" % (time.monotonic() - t), file=sys.stderr)
    print("created", n)


def lookup(d, n, k, seed):
    rnd = random.Random(seed)
    present = rnd.sample(range(n), k)
    missing = rnd.sample(range(n, 10 * n), k)
    t = time.monotonic()
    found = sum(1 for i in present if os.path.exists(os.path.join(d, name(i))))
    absent = sum(1 for i in missing if not os.path.lexists(os.path.join(d, name(i))))
    elapsed = time.monotonic() - t
    print("time lookup %.6f" % elapsed, file=sys.stderr)
    print("found %d of %d, correctly missing %d of %d" % (found, k, absent, k))
    return elapsed


def readdir_unlink(d):
    seen = set()
    dups = 0
    with os.scandir(d) as it:
        for e in it:
            if e.name in seen:
                dups += 1
            seen.add(e.name)
            os.unlink(os.path.join(d, e.name))
    left = os.listdir(d)
    print("seen %d, duplicates %d, left %d" % (len(seen), dups, len(left)))


def main():
    op = sys.argv[1]
    a = sys.argv[2:]
    if op == "create":
        create(a[0], int(a[1]))
    elif op == "lookup":
        lookup(a[0], int(a[1]), int(a[2]), int(a[3]))
    elif op == "readdir-unlink":
        readdir_unlink(a[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
