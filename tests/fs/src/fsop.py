#!/usr/bin/env python3
"""fsop.py -- one file-system call, its outcome printed as "OP ARGS: OK|ERRNAME[ result]".

Used by the mounted-filesystem tests so that expected errors show up in golden output as
errno names (ENOTEMPTY) instead of tool-specific messages. Exit status is 0 either way.

  mkdir PATH [MODE]          rmdir PATH           unlink PATH
  rename OLD NEW             link OLD NEW         symlink TARGET PATH
  create PATH [MODE]         (O_CREAT|O_EXCL|O_WRONLY)
  open PATH FLAGS            FLAGS: r, w, rw, plus c (O_CREAT) x (O_EXCL) t (O_TRUNC)
                             a (O_APPEND) d (O_DIRECTORY) n (O_NOFOLLOW), e.g. "wc"
  read PATH [LEN]            prints the bytes read (repr)
  pread PATH OFFSET LEN      prints the bytes read at OFFSET (repr)
  write PATH OFFSET TEXT     pwrite without truncation
  append PATH TEXT           O_APPEND write
  readlink PATH              prints the target (or its length and start when > 100 chars)
  chmod PATH MODE            chown PATH UID GID      truncate PATH SIZE
  mknod PATH TYPE [MAJ MIN]  TYPE: fifo, sock, chr, blk, reg
  utime PATH ATIME_NS MTIME_NS
  stat PATH / lstat PATH     prints type, mode, nlink, uid, gid, size
  access PATH MODE           MODE: r, w, x, f or combinations
  opendir PATH               lists the names (sorted)
  bindsock PATH              binds an AF_UNIX socket to PATH
  setxattr PATH NAME VALUE [create|replace]   VALUE "@N" = N bytes of 'v'
  getxattr PATH NAME [SIZE]  prints the value (repr, or its length when > 60 bytes);
                             SIZE 0 prints the length the filesystem reports
  listxattr PATH [SIZE]      prints the names (sorted); SIZE as for getxattr
  removexattr PATH NAME      lgetxattr PATH NAME / lsetxattr PATH NAME VALUE (the symlink itself)
  rename2 OLD NEW FLAGS      renameat2; FLAGS: noreplace, exchange, whiteout (joined by +)
  fallocate PATH MODE OFF LEN   MODE: 0 or keep, punch, zero, collapse, insert (joined by +)
  ufallocate PATH MODE OFF LEN  the same through udaxfs' UDAX_IOC_FALLOCATE ioctl
  seek PATH OFF data|hole    lseek SEEK_DATA / SEEK_HOLE, prints the offset
  copyrange SRC OFF DST OFF LEN  copy_file_range, prints the bytes copied
  getflags PATH / setflags PATH HEX   FS_IOC_GETFLAGS / SETFLAGS (flags in hex)
  label PATH [NEW]           FS_IOC_GETFSLABEL, or FS_IOC_SETFSLABEL with NEW
  fitrim PATH START LEN MINLEN   FITRIM; prints the bytes trimmed
"""
import ctypes
import errno
import os
import socket
import stat
import sys


def ftype(mode):
    for test, name in ((stat.S_ISREG, "reg"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "lnk"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "sock"), (stat.S_ISCHR, "chr"),
                       (stat.S_ISBLK, "blk")):
        if test(mode):
            return name
    return "?"


def describe(st):
    """Stable fields only; directory sizes are filesystem-specific and left out."""
    out = "%s mode=%o nlink=%d uid=%d gid=%d" % (
        ftype(st.st_mode), stat.S_IMODE(st.st_mode), st.st_nlink, st.st_uid, st.st_gid)
    if not stat.S_ISDIR(st.st_mode):
        out += " size=%d" % st.st_size
    return out


def open_flags(spec):
    if spec.startswith("rw"):
        flags, rest = os.O_RDWR, spec[2:]
    else:
        flags, rest = {"r": os.O_RDONLY, "w": os.O_WRONLY}[spec[0]], spec[1:]
    for c in rest:
        flags |= {"c": os.O_CREAT, "x": os.O_EXCL, "t": os.O_TRUNC, "a": os.O_APPEND,
                  "d": os.O_DIRECTORY, "n": os.O_NOFOLLOW}[c]
    return flags


LIBC = ctypes.CDLL(None, use_errno=True)


def xattr_call(fn, *args):
    """getxattr/listxattr with an explicit buffer size (os.* hides ERANGE and size 0)."""
    n = fn(*args)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return n


def xattr_value(spec):
    return b"v" * int(spec[1:]) if spec.startswith("@") else spec.encode()


def show_value(v):
    return repr(v) if len(v) <= 60 else "len=%d" % len(v)


def sized_get(path, name, size, follow=True):
    fn = LIBC.getxattr if follow else LIBC.lgetxattr
    buf = ctypes.create_string_buffer(max(size, 1))
    n = xattr_call(fn, path.encode(), name.encode(), buf if size else None, ctypes.c_size_t(size))
    return "size=%d" % n if size == 0 else show_value(buf.raw[:n])


FALLOC_MODES = {"0": 0, "keep": 1, "punch": 2, "collapse": 8, "zero": 16, "insert": 32}
UDAX_IOC_FALLOCATE = 0x40185505


def falloc_mode(spec):
    mode = 0
    for m in spec.split("+"):
        mode |= FALLOC_MODES[m]
    return mode


def run(op, a):
    if op == "mkdir":
        os.mkdir(a[0], int(a[1], 8) if len(a) > 1 else 0o777)
    elif op == "rmdir":
        os.rmdir(a[0])
    elif op == "unlink":
        os.unlink(a[0])
    elif op == "rename":
        os.rename(a[0], a[1])
    elif op == "link":
        os.link(a[0], a[1])
    elif op == "symlink":
        os.symlink(a[0], a[1])
    elif op == "create":
        os.close(os.open(a[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                         int(a[1], 8) if len(a) > 1 else 0o666))
    elif op == "open":
        os.close(os.open(a[0], open_flags(a[1]), 0o644))
    elif op == "read":
        fd = os.open(a[0], os.O_RDONLY)
        try:
            return repr(os.read(fd, int(a[1]) if len(a) > 1 else 1 << 20))
        finally:
            os.close(fd)
    elif op == "pread":
        fd = os.open(a[0], os.O_RDONLY)
        try:
            return repr(os.pread(fd, int(a[2]), int(a[1])))
        finally:
            os.close(fd)
    elif op == "write":
        fd = os.open(a[0], os.O_WRONLY)
        try:
            return "wrote %d" % os.pwrite(fd, a[2].encode(), int(a[1]))
        finally:
            os.close(fd)
    elif op == "append":
        fd = os.open(a[0], os.O_WRONLY | os.O_APPEND)
        try:
            return "wrote %d" % os.write(fd, a[1].encode())
        finally:
            os.close(fd)
    elif op == "readlink":
        t = os.readlink(a[0])
        return t if len(t) <= 100 else "len=%d %s..." % (len(t), t[:20])
    elif op == "chmod":
        os.chmod(a[0], int(a[1], 8))
    elif op == "chown":
        os.chown(a[0], int(a[1]), int(a[2]))
    elif op == "truncate":
        os.truncate(a[0], int(a[1]))
    elif op == "mknod":
        kinds = {"fifo": stat.S_IFIFO, "sock": stat.S_IFSOCK, "chr": stat.S_IFCHR,
                 "blk": stat.S_IFBLK, "reg": stat.S_IFREG}
        dev = os.makedev(int(a[2]), int(a[3])) if len(a) > 3 else 0
        os.mknod(a[0], kinds[a[1]] | 0o644, dev)
    elif op == "utime":
        os.utime(a[0], ns=(int(a[1]), int(a[2])))
    elif op == "stat":
        return describe(os.stat(a[0]))
    elif op == "lstat":
        return describe(os.lstat(a[0]))
    elif op == "access":
        mode = 0
        for c in a[1]:
            mode |= {"r": os.R_OK, "w": os.W_OK, "x": os.X_OK, "f": os.F_OK}[c]
        if not os.access(a[0], mode):
            raise PermissionError(errno.EACCES, "access")
    elif op == "opendir":
        return " ".join(sorted(os.listdir(a[0])))
    elif op == "setxattr":
        flags = {"create": os.XATTR_CREATE, "replace": os.XATTR_REPLACE}.get(
            a[3] if len(a) > 3 else "", 0)
        os.setxattr(a[0], a[1], xattr_value(a[2]), flags)
    elif op == "lsetxattr":
        os.setxattr(a[0], a[1], xattr_value(a[2]), 0, follow_symlinks=False)
    elif op == "getxattr":
        if len(a) > 2:
            return sized_get(a[0], a[1], int(a[2]))
        return show_value(os.getxattr(a[0], a[1]))
    elif op == "lgetxattr":
        return sized_get(a[0], a[1], 1 << 16, follow=False)
    elif op == "listxattr":
        if len(a) > 1:
            size = int(a[1])
            buf = ctypes.create_string_buffer(max(size, 1))
            n = xattr_call(LIBC.listxattr, a[0].encode(), buf if size else None,
                           ctypes.c_size_t(size))
            if size == 0:
                return "size=%d" % n
            return " ".join(sorted(shorten(x.decode()) for x in buf.raw[:n].split(b"\0") if x))
        return " ".join(sorted(shorten(x) for x in os.listxattr(a[0])))
    elif op == "removexattr":
        os.removexattr(a[0], a[1])
    elif op == "rename2":
        flags = 0
        for f in a[2].split("+"):
            flags |= {"noreplace": 1, "exchange": 2, "whiteout": 4}[f]
        AT_FDCWD = -100
        if LIBC.renameat2(AT_FDCWD, a[0].encode(), AT_FDCWD, a[1].encode(), flags) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    elif op == "fallocate":
        fd = os.open(a[0], os.O_RDWR)
        try:
            if LIBC.fallocate(fd, falloc_mode(a[1]), ctypes.c_long(int(a[2])),
                              ctypes.c_long(int(a[3]))) != 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
        finally:
            os.close(fd)
    elif op == "ufallocate":
        import fcntl
        import struct
        fd = os.open(a[0], os.O_RDWR)
        try:
            fcntl.ioctl(fd, UDAX_IOC_FALLOCATE,
                        struct.pack("<IIQQ", falloc_mode(a[1]), 0, int(a[2]), int(a[3])))
        finally:
            os.close(fd)
    elif op == "seek":
        fd = os.open(a[0], os.O_RDONLY)
        try:
            return str(os.lseek(fd, int(a[1]), os.SEEK_DATA if a[2] == "data" else os.SEEK_HOLE))
        finally:
            os.close(fd)
    elif op == "copyrange":
        src = os.open(a[0], os.O_RDONLY)
        dst = os.open(a[2], os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            return str(os.copy_file_range(src, dst, int(a[4]), int(a[1]), int(a[3])))
        finally:
            os.close(src)
            os.close(dst)
    elif op in ("getflags", "setflags"):
        import array
        import fcntl
        fd = os.open(a[0], os.O_RDONLY | os.O_NONBLOCK)
        try:
            buf = array.array("i", [int(a[1], 16) if op == "setflags" else 0])
            fcntl.ioctl(fd, 0x40086602 if op == "setflags" else 0x80086601, buf, True)
            return None if op == "setflags" else "%x" % (buf[0] & 0xffffffff)
        finally:
            os.close(fd)
    elif op == "label":
        import fcntl
        fd = os.open(a[0], os.O_RDONLY)
        try:
            if len(a) > 1:
                fcntl.ioctl(fd, 0x41009432, a[1].encode().ljust(256, b"\0")[:256])
                return None
            out = fcntl.ioctl(fd, 0x81009431, bytes(256))
            return repr(out.split(b"\0")[0].decode())
        finally:
            os.close(fd)
    elif op == "fitrim":
        import fcntl
        import struct
        fd = os.open(a[0], os.O_RDONLY)
        try:
            out = fcntl.ioctl(fd, 0xc0185879, struct.pack("<QQQ", int(a[1]), int(a[2]), int(a[3])))
            return "trimmed %d" % struct.unpack("<QQQ", out)[1]
        finally:
            os.close(fd)
    elif op == "bindsock":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(a[0])
        s.close()
    else:
        raise SystemExit("fsop.py: unknown op " + op)
    return None


def shorten(arg):
    """Long path components become NAME...(N chars) so golden lines stay readable."""
    parts = arg.split("/")
    arg = "/".join(p if len(p) <= 40 else p[:8] + "...(%d chars)" % len(p) for p in parts)
    return arg if len(arg) <= 160 else arg[:20] + "...(%d chars)" % len(arg)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    op, args = sys.argv[1], sys.argv[2:]
    shown = " ".join(shorten(x) for x in args)
    try:
        out = run(op, args)
        print("%s %s: OK%s" % (op, shown, "" if out is None else " " + out))
    except OSError as e:
        print("%s %s: %s" % (op, shown, errno.errorcode.get(e.errno, str(e.errno))))


if __name__ == "__main__":
    main()
