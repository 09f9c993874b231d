#!/usr/bin/env python3
"""media.py -- helpers for the media-error tests: stable views of udaxctl's JSON, preads.

  media.py extent FILE_JSON            first extent of `udaxctl bmap --json`: "FOFF PHYS LEN"
  media.py list BASE_SECTOR < JSON     `udaxctl list --media-errors --json`, one line per bad
                                       range, sectors relative to BASE_SECTOR ("B+16"), or
                                       as they are with BASE_SECTOR "abs"
  media.py preads FILE OFF:LEN...      one pread each: "OFF+LEN: ok" or "OFF+LEN: EIO"
  media.py events [SKIP] < JSON        `udaxctl events --json` after the first SKIP events, one
                                       line per owner and per process, without times and
                                       physical offsets
  media.py mmaphold FILE OFF DIR       maps FILE shared, reads the byte at OFF, creates
                                       DIR/ready, waits for DIR/go, reads it again and
                                       prints "second touch: ok" (SIGBUS or SIGKILL end it)
"""
import errno
import json
import os
import sys


def rel(sector, base):
    if base is None:
        return str(sector)
    d = sector - base
    return "B%+d" % d if abs(d) < 1 << 20 else str(sector)


def main():
    cmd = sys.argv[1]
    if cmd == "extent":
        e = json.load(sys.stdin)["extents"][0]
        print(e["file_offset"], e["phys_offset"], e["length"])
    elif cmd == "list":
        base = None if sys.argv[2] == "abs" else int(sys.argv[2])
        (ns,) = json.load(sys.stdin)
        print("dev %s mode %s badblock_count %d" % (
            os.path.basename(ns["dev"]), ns["mode"], ns["badblock_count"]))
        for bb in ns["badblocks"]:
            owners = []
            for o in bb.get("owners", []):
                s = "%s %d bytes" % (o["kind"], o["length"])
                if "ino" in o:
                    s += " at offset %d of %s" % (o["offset"], o.get("path", "?"))
                owners.append(s)
            if "owners_error" in bb:
                owners.append("error: " + bb["owners_error"])
            print("  offset %s length %d %s: %s" % (
                rel(bb["offset"], base), bb["length"], bb["source"], "; ".join(owners)))
    elif cmd == "preads":
        fd = os.open(sys.argv[2], os.O_RDONLY)
        for spec in sys.argv[3:]:
            off, n = (int(x, 0) for x in spec.split(":"))
            try:
                got = len(os.pread(fd, n, off))
                print("%d+%d: ok%s" % (off, n, "" if got == n else " (%d bytes)" % got))
            except OSError as e:
                print("%d+%d: %s" % (off, n, errno.errorcode.get(e.errno, e.errno)))
        os.close(fd)
    elif cmd == "events":
        skip = int(sys.argv[2]) if len(sys.argv) > 2 else 0
        for ev in json.load(sys.stdin)[skip:]:
            print("event %s: %s" % (ev["source"], ev["action"]))
            for o in ev["owners"]:
                s = "  %s" % o["kind"]
                if "ino" in o:
                    s += " %s offset %d length %d" % (o.get("path", "?"), o["offset"], o["length"])
                else:
                    s += " length %d" % o["length"]
                print("%s: %s" % (s, o["action"]))
            for p in ev["processes"]:
                print("  process %s: %s" % (p["comm"], p["action"].split(" (")[0]))
    elif cmd == "mmaphold":
        import mmap
        import time
        path, off, d = sys.argv[2], int(sys.argv[3], 0), sys.argv[4]
        fd = os.open(path, os.O_RDONLY)
        m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
        _ = m[off]
        open(os.path.join(d, "ready"), "w").close()
        while not os.path.exists(os.path.join(d, "go")):
            time.sleep(0.02)
        _ = m[off]
        print("second touch: ok")
    else:
        sys.exit("media.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
