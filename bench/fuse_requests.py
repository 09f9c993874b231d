#!/usr/bin/python3
"""fuse_requests.py -- summarises the fuse:fuse_request_send/end tracepoints of one mount
(from `perf script -F event,trace` on stdin) for bench/profile.sh: requests per opcode,
per fio I/O, and the mean bytes sent to the daemon and returned by it.

    perf script -i X.fuse.data -F event,trace | fuse_requests.py CONNECTION JOB [FIO_JSON]
"""
import json
import re
import sys

LINE = re.compile(r"connection (\d+) req (\d+) (?:opcode \d+ \((\w+)\) )?len (\d+)")


def main():
    conn, job = sys.argv[1], sys.argv[2]
    ios = 0
    if len(sys.argv) > 3:
        try:
            with open(sys.argv[3]) as f:
                t = f.read()
            j = json.loads(t[t.index("{"):])["jobs"][0]
            ios = j["read"]["total_ios"] + j["write"]["total_ios"]
        except (OSError, ValueError, KeyError, IndexError):
            ios = 0
    op_of, count, sent, returned = {}, {}, {}, {}
    for line in sys.stdin:
        m = LINE.search(line)
        if not m or m.group(1) != conn:
            continue
        req, op, n = m.group(2), m.group(3), int(m.group(4))
        if op:
            op_of[req] = op
            count[op] = count.get(op, 0) + 1
            sent[op] = sent.get(op, 0) + n
        elif req in op_of:
            returned[op_of[req]] = returned.get(op_of[req], 0) + n
    print(f"== {job}: FUSE requests of the mount ({ios} fio I/Os)")
    print("%-20s %9s %12s %10s %11s" % ("opcode", "count", "per fio I/O", "mean in B", "mean out B"))
    for op in sorted(count, key=lambda o: -count[o]):
        c = count[op]
        print("%-20s %9d %12.2f %10.0f %11.0f" % (op, c, c / ios if ios else 0, sent[op] / c,
                                                  returned.get(op, 0) / c))


if __name__ == "__main__":
    main()
