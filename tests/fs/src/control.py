#!/usr/bin/env python3
"""control.py -- a client of the udaxfs control socket (include/udaxfs/control.h).

  control.py hello PATH_ON_MOUNT            print the hello reply's stable fields
  control.py subscribe PATH_ON_MOUNT N DIR  subscribe, create DIR/ready, print N events
                                            (source, owners' kind/path/offset/action)
  control.py raw PATH_ON_MOUNT TEXT         send TEXT as one packet, print the reply
  control.py map FILE [many]                ask for a read map of the whole file (with
                                            "devices": "many"), print the outcome: the
                                            descriptors received and the places of
                                            the device descriptors the extents name
"""
import json
import os
import socket
import sys


def connect(path):
    st = os.stat(path)
    sock_path = "/run/udaxfs/%d:%d.sock" % (os.major(st.st_dev), os.minor(st.st_dev))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(20)
    s.connect(sock_path)
    return s


def ask(s, obj):
    s.send(obj if isinstance(obj, bytes) else json.dumps(obj).encode())
    return json.loads(s.recv(65536))


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    s = connect(path)
    if cmd == "hello":
        r = ask(s, {"op": "hello"})
        print("ok %s version %s au_size %s mce_policy %s" % (
            r["ok"], r["version"], r["au_size"], r["mce_policy"]))
    elif cmd == "map":
        req = {"op": "map", "offset": 0, "length": os.path.getsize(path), "prot": "r"}
        if sys.argv[3:] == ["many"]:
            req["devices"] = "many"
        with open(path, "rb") as f:
            socket.send_fds(s, [json.dumps(req).encode()], [f.fileno()])
        msg, fds, _, _ = socket.recv_fds(s, 65536, 17)
        for fd in fds:
            os.close(fd)
        r = json.loads(msg)
        if not r["ok"]:
            print("map:", r["error"])
        else:
            devs = sorted({e.get("descriptor", 0) for e in r["extents"]})
            print("map: ok, %d descriptors, %s devices, extents on %s" % (
                len(fds), r.get("devices", "no"), devs))
    elif cmd == "raw":
        print(ask(s, sys.argv[3].encode()))
    elif cmd == "subscribe":
        r = ask(s, {"op": "subscribe"})
        print("subscribe:", "ok" if r["ok"] else r["error"])
        sys.stdout.flush()
        if not r["ok"]:
            return
        open(os.path.join(sys.argv[4], "ready"), "w").close()
        for _ in range(int(sys.argv[3])):
            ev = json.loads(s.recv(65536))["event"]
            for o in ev["owners"]:
                print("event %s: %s %s offset %s: %s" % (
                    ev["source"], o["kind"], o.get("path", "-"), o.get("offset", "-"), o["action"]))
    else:
        sys.exit("control.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
