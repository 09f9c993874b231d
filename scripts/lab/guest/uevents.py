#!/usr/bin/env python3
"""uevents.py -- prints kernel uevents (NETLINK_KOBJECT_UEVENT, group 1) as they arrive.

There is no udevd in the lab guest; this is what a daemon's uevent listener sees:
one line per event, "ACTION@DEVPATH KEY=VALUE ...". Runs until killed.
"""
import socket
import sys

NETLINK_KOBJECT_UEVENT = 15
s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
s.bind((0, 1))
while True:
    fields = s.recv(65536).split(b"\0")
    keys = [f.decode(errors="replace") for f in fields[1:] if f and not f.startswith(b"SEQNUM")]
    print(fields[0].decode(errors="replace"), " ".join(keys), flush=True)
    sys.stdout.flush()
