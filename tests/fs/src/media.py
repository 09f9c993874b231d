#!/usr/bin/env python3
"""media.py -- helpers for the media-error tests: stable views of udaxctl's JSON, preads.

  media.py extent FILE_JSON            first extent of `udaxctl bmap --json`: "FOFF PHYS LEN"
  media.py list BASE_SECTOR < JSON     `udaxctl list --media-errors --json`, one line per bad
                                       range, sectors relative to BASE_SECTOR ("B+16"), or
                                       as they are with BASE_SECTOR "abs"
  media.py preads FILE OFF:LEN...      one pread each: "OFF+LEN: ok" or "OFF+LEN: EIO"
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
    else:
        sys.exit("media.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
