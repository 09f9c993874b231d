#!/usr/bin/env python3
"""handles.py -- file handles (name_to_handle_at / open_by_handle_at) for the tests.

  save PATH FILE       writes PATH's handle to FILE (hex), prints "saved"
  open MOUNT FILE      opens the handle in FILE relative to MOUNT, prints "OK <first
                       line of the file>" or the errno name (ESTALE ...)
  forge MOUNT FILE N   like open, with the handle's node id replaced by N (FUSE handles
                       carry the node id in their first 8 bytes and the generation next)
"""
import ctypes
import errno
import os
import struct
import sys

LIBC = ctypes.CDLL(None, use_errno=True)
MAX_HANDLE = 128
AT_FDCWD = -100


class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * MAX_HANDLE)]


def fail(what):
    e = ctypes.get_errno()
    raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def save(path, out):
    fh = FileHandle()
    fh.handle_bytes = MAX_HANDLE
    mount_id = ctypes.c_int()
    if LIBC.name_to_handle_at(AT_FDCWD, path.encode(), ctypes.byref(fh),
                              ctypes.byref(mount_id), 0) != 0:
        fail("name_to_handle_at")
    with open(out, "w") as f:
        f.write("%d %s\n" % (fh.handle_type, bytes(fh.f_handle[:fh.handle_bytes]).hex()))
    return "saved"


def open_handle(mount, saved, node=None):
    with open(saved) as f:
        htype, hexbytes = f.read().split()
    raw = bytearray.fromhex(hexbytes)
    if node is not None:
        raw[0:8] = struct.pack("<Q", node)
    fh = FileHandle()
    fh.handle_bytes = len(raw)
    fh.handle_type = int(htype)
    for i, b in enumerate(raw):
        fh.f_handle[i] = b
    mfd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = LIBC.open_by_handle_at(mfd, ctypes.byref(fh), os.O_RDONLY)
        if fd < 0:
            fail("open_by_handle_at")
        try:
            return "OK " + os.read(fd, 200).decode(errors="replace").split("\n")[0]
        finally:
            os.close(fd)
    finally:
        os.close(mfd)


def main():
    op, a = sys.argv[1], sys.argv[2:]
    try:
        if op == "save":
            print(save(a[0], a[1]))
        elif op == "open":
            print(open_handle(a[0], a[1]))
        elif op == "forge":
            print(open_handle(a[0], a[1], int(a[2])))
        else:
            raise SystemExit(__doc__)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))


if __name__ == "__main__":
    main()
