#!/usr/bin/env python3
"""sweep.py -- the poison sweep's tree (test 078, issue 17).

  populate DIR MANIFEST    a tree as a user has one: 12 directories of 36 files, one
                           directory of 3,000 names, two fragmented files (extent blocks),
                           attributes large and small, symlinks with long targets;
                           writes what each holds to MANIFEST (JSON)
  verify DIR MANIFEST [SKIP...]
                           reads everything back; prints each difference (files SKIP
                           aside, relative paths), then "verified N"
  picks RMAP_JSON SEED N   N random 512-byte blocks of every owner kind `udaxctl rmap
                           --json` names: "KIND BLOCK" lines
"""
import hashlib
import json
import os
import random
import sys


def digest(data):
    return hashlib.sha256(data).hexdigest()


def populate(top, manifest_path):
    rng = random.Random(17)
    m = {"files": {}, "links": {}, "xattrs": {}}

    def put(rel, data):
        with open(os.path.join(top, rel), "wb") as f:
            f.write(data)
        m["files"][rel] = digest(data)

    for d in range(12):
        os.mkdir(os.path.join(top, "d%02d" % d))
        for i in range(36):
            put("d%02d/f%02d" % (d, i), rng.randbytes(rng.randrange(0, 20000)))
    os.mkdir(os.path.join(top, "big"))
    for i in range(3000):
        put("big/entry-%04d-%s" % (i, "n" * (i % 40)), b"")
    # Two files written a block at a time in turn, with holes: one extent per block, more
    # than an inode holds inline, so extent blocks.
    pieces = {"frag0": [], "frag1": []}
    for i in range(400):
        for name in pieces:
            pieces[name].append(rng.randbytes(4096))
    for name in pieces:
        open(os.path.join(top, name), "wb").close()
    fds = {name: os.open(os.path.join(top, name), os.O_WRONLY) for name in pieces}
    for i in range(400):
        for name, fd in fds.items():
            os.pwrite(fd, pieces[name][i], i * 8192)
    for name, fd in fds.items():
        os.close(fd)
        with open(os.path.join(top, name), "rb") as f:
            m["files"][name] = digest(f.read())
    for i in range(40):
        rel = "d%02d/f%02d" % (i % 12, i % 36)
        value = rng.randbytes(6000 if i % 4 == 0 else 40)
        os.setxattr(os.path.join(top, rel), "user.a%d" % i, value)
        m["xattrs"].setdefault(rel, {})["user.a%d" % i] = digest(value)
    for i in range(24):
        target = "/some/where/far/" + "t" * (100 + 7 * i) + "/%d" % i
        os.symlink(target, os.path.join(top, "d%02d/l%02d" % (i % 12, i)))
        m["links"]["d%02d/l%02d" % (i % 12, i)] = target
    with open(manifest_path, "w") as f:
        json.dump(m, f)
    print("populated %d files, %d symlinks, %d files with attributes"
          % (len(m["files"]), len(m["links"]), len(m["xattrs"])))


def verify(top, manifest_path, skip):
    with open(manifest_path) as f:
        m = json.load(f)
    bad = []
    n = 0
    for rel, want in sorted(m["files"].items()):
        if rel in skip:
            continue
        n += 1
        try:
            with open(os.path.join(top, rel), "rb") as f:
                if digest(f.read()) != want:
                    bad.append(rel + ": differs")
        except OSError as e:
            bad.append("%s: %s" % (rel, e.strerror))
    for rel, want in sorted(m["links"].items()):
        if rel in skip:
            continue
        n += 1
        try:
            if os.readlink(os.path.join(top, rel)) != want:
                bad.append(rel + ": target differs")
        except OSError as e:
            bad.append("%s: %s" % (rel, e.strerror))
    for rel, attrs in sorted(m["xattrs"].items()):
        if rel in skip:
            continue
        for name, want in sorted(attrs.items()):
            try:
                if digest(os.getxattr(os.path.join(top, rel), name)) != want:
                    bad.append("%s %s: differs" % (rel, name))
            except OSError as e:
                bad.append("%s %s: %s" % (rel, name, e.strerror))
    names = set(os.listdir(os.path.join(top, "big")))
    if len(names) < 3000:
        bad.append("big: lists %d names" % len(names))
    for line in bad[:10]:
        print(line)
    print("verified %d, %d differ" % (n, len(bad)))


def picks(rmap_path, seed, count):
    with open(rmap_path) as f:
        owners = json.load(f)
    by_kind = {}
    for o in owners:
        if o["kind"] in ("free", "quarantined"):
            continue
        by_kind.setdefault(o["kind"], []).append(o)
    rng = random.Random(seed)
    for kind in sorted(by_kind):
        ranges = by_kind[kind]
        total = sum(o["length"] // 512 for o in ranges)
        for n in rng.sample(range(total), min(count, total)):
            for o in ranges:
                blocks = o["length"] // 512
                if n < blocks:
                    print(kind, o["phys"] // 512 + n)
                    break
                n -= blocks


def main():
    cmd = sys.argv[1]
    if cmd == "populate":
        populate(sys.argv[2], sys.argv[3])
    elif cmd == "verify":
        verify(sys.argv[2], sys.argv[3], set(sys.argv[4:]))
    elif cmd == "picks":
        picks(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit("usage: sweep.py populate|verify|picks ...")


if __name__ == "__main__":
    main()
