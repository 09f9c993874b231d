#!/usr/bin/env python3
"""crashload.py -- a metadata workload that logs every acknowledged operation, and its checker.

  run MNT LOG [MAX_ITER]   loop i = 0, 1, ...: on MNT/w/d<i> do
                              mkdir d<i>; create+write+fsync a; rename a -> b;
                              symlink s; link b -> h; chmod b 600; mkdir d<i>/sub;
                              rmdir of the previous iteration's sub
                           appending "OP i" to LOG (outside the mount) after each call
                           returns; stops at the first error (the daemon was killed)
  verify MNT LOG           checks that every logged operation is visible; prints a summary
                           and one line per missing effect
The operation that was in flight when the daemon died is not logged, so either outcome of
it is accepted; nothing a later logged operation undoes is checked.
"""
import os
import stat
import sys

OPS = ("mkdir", "write", "rename", "symlink", "link", "chmod", "mksub", "rmsub")


def payload(i):
    return ("payload of iteration %d\n" % i).encode() * 7


def run(mnt, log, max_iter):
    w = os.path.join(mnt, "w")
    os.makedirs(w, exist_ok=True)
    logfd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def done(op, i):
        os.write(logfd, ("%s %d\n" % (op, i)).encode())

    i = 0
    try:
        while i < max_iter:
            d = os.path.join(w, "d%d" % i)
            os.mkdir(d)
            done("mkdir", i)
            fd = os.open(os.path.join(d, "a"), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
            os.write(fd, payload(i))
            os.fsync(fd)
            os.close(fd)
            done("write", i)
            os.rename(os.path.join(d, "a"), os.path.join(d, "b"))
            done("rename", i)
            os.symlink("target-%d" % i, os.path.join(d, "s"))
            done("symlink", i)
            os.link(os.path.join(d, "b"), os.path.join(d, "h"))
            done("link", i)
            os.chmod(os.path.join(d, "b"), 0o600)
            done("chmod", i)
            os.mkdir(os.path.join(d, "sub"))
            done("mksub", i)
            if i > 0:
                os.rmdir(os.path.join(w, "d%d" % (i - 1), "sub"))
                done("rmsub", i - 1)
            i += 1
    except OSError as e:
        print("workload stopped at iteration %d: %s" % (i, e), file=sys.stderr)
    os.close(logfd)


def successor(op, i):
    """The operation the workload issues after (op, i)."""
    if op == "rmsub":
        return ("mkdir", i + 2)
    nxt = OPS[OPS.index(op) + 1] if op != "mksub" else "rmsub"
    if nxt == "rmsub":
        return ("rmsub", i - 1) if i > 0 else ("mkdir", i + 1)
    return (nxt, i)


def verify(mnt, log):
    w = os.path.join(mnt, "w")
    with open(log) as f:
        entries = [(line.split()[0], int(line.split()[1])) for line in f if line.strip()]
    logged = set(entries)
    inflight = successor(*entries[-1]) if entries else ("mkdir", 0)
    problems = []

    def check(cond, what):
        if not cond:
            problems.append(what)

    def content(path, i):
        with open(path, "rb") as f:
            return f.read() == payload(i)

    iters = sorted({i for _, i in logged})
    for i in iters:
        d = os.path.join(w, "d%d" % i)
        try:
            if ("mkdir", i) in logged:
                check(stat.S_ISDIR(os.lstat(d).st_mode), "d%d is not a directory" % i)
            a, b = os.path.join(d, "a"), os.path.join(d, "b")
            if ("rename", i) in logged:
                check(not os.path.lexists(a), "d%d/a still exists after the rename" % i)
                check(os.path.isfile(b) and content(b, i), "d%d/b missing or wrong" % i)
            elif ("write", i) in logged:
                if inflight == ("rename", i) and not os.path.lexists(a):
                    a = b
                check(os.path.isfile(a) and content(a, i), "d%d/a missing or wrong" % i)
            if ("symlink", i) in logged:
                check(os.readlink(os.path.join(d, "s")) == "target-%d" % i,
                      "d%d/s wrong target" % i)
            if ("link", i) in logged:
                sb, sh = os.lstat(b), os.lstat(os.path.join(d, "h"))
                check(sb.st_ino == sh.st_ino and sb.st_nlink == 2,
                      "d%d/h is not a second link of b" % i)
            if ("chmod", i) in logged:
                check(stat.S_IMODE(os.lstat(b).st_mode) == 0o600, "d%d/b mode is not 600" % i)
            sub = os.path.join(d, "sub")
            if ("rmsub", i) in logged:
                check(not os.path.lexists(sub), "d%d/sub still exists after rmdir" % i)
            elif ("mksub", i) in logged and inflight != ("rmsub", i):
                check(os.path.isdir(sub), "d%d/sub missing" % i)
        except OSError as e:
            problems.append("iteration %d: %s" % (i, e))
    # Nothing past the in-flight operation may exist.
    last = max(iters) if iters else -1
    extra = [n for n in os.listdir(w) if n.startswith("d") and int(n[1:]) > last + 1]
    check(not extra, "directories from operations never issued: %s" % extra[:5])
    print("logged operations: %d over %d iterations; in flight: %s %d" %
          ((len(logged), len(iters)) + inflight), file=sys.stderr)
    print("checked every logged operation: %s" % ("all present" if not problems else
                                                   "%d problems" % len(problems)))
    for p in problems[:30]:
        print("  " + p)


def main():
    op = sys.argv[1]
    if op == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1 << 30)
    elif op == "verify":
        verify(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
