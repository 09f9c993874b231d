#!/usr/bin/env python3
"""attack.py -- what a hostile local user does to the control socket (tests 071-076).

Speaks include/udaxfs/control.h directly (one JSON object per SOCK_SEQPACKET packet,
descriptors by SCM_RIGHTS), so it can send what libudax never would.

  attack.py map FILE PROT [opath]        one map request for FILE ("r" or "rw"; with
                                         "opath" the descriptor sent is an O_PATH one);
                                         prints "granted" or "refused ERRNO_NAME"
  attack.py swap-race FILE LINK MINE SECRET SECRET_INO TRIES
                                         the symlink-swap race on the region's path: LINK
                                         (the path the filesystem was mounted from) flips
                                         between MINE (the attacker's own file) and SECRET
                                         while map requests for FILE go out; prints whether
                                         any region descriptor received was SECRET
  attack.py hold-conns FILE N READY      opens N control connections and holds them;
                                         prints how many the daemon kept, then touches READY
  attack.py hoard FILE N READY           N read-only maps of FILE, never unmapped (the lease
                                         sockets stay open); prints the outcome counts, then
                                         touches READY and sleeps
  attack.py ignore-revoke FILE N READY [FIRST]
                                         N maps of FILE (the first at page FIRST) whose
                                         revokes are never answered
  attack.py probe DIR FILE SECONDS       unrelated work on the mount for SECONDS: a create
                                         in DIR and an O_DIRECT read of FILE, over and over;
                                         prints the slowest one in ms
"""
import errno
import json
import os
import socket
import sys
import threading
import time


def control_path(path):
    st = os.stat(path)
    return "/run/udaxfs/%d:%d.sock" % (os.major(st.st_dev), os.minor(st.st_dev))


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(control_path(path))  # blocking: waits while the listen backlog is full
    s.settimeout(20)
    return s


def map_request(s, fd, prot, offset=0, length=4096):
    """Returns (reply, [region fd, lease socket fd]); the caller owns the descriptors."""
    req = json.dumps({"op": "map", "offset": offset, "length": length, "prot": prot}).encode()
    socket.send_fds(s, [req], [fd])
    data, fds, _, _ = socket.recv_fds(s, 65536, 4)
    return json.loads(data), fds


def refused(reply):
    e = reply.get("errno", 0)
    return "refused " + (errno.errorcode.get(e, str(e)) if e else reply.get("error", "?"))


def cmd_map(path, prot, how=""):
    flags = os.O_PATH if how == "opath" else (os.O_RDWR if prot == "rw" else os.O_RDONLY)
    fd = os.open(path, flags)
    s = connect(path)
    reply, fds = map_request(s, fd, prot)
    print("granted" if reply.get("ok") else refused(reply))
    for f in fds:
        os.close(f)


def cmd_swap_race(path, link, mine, secret, secret_ino, tries):
    stop = threading.Event()
    tmp = link + ".swap"

    def flip():
        # Atomic renames of a fresh symlink over LINK: the path is always there, pointing
        # now at the attacker's file (so a stat() of it says "readable"), now at SECRET.
        targets = [mine, secret]
        i = 0
        while not stop.is_set():
            try:
                os.symlink(targets[i % 2], tmp)
                os.rename(tmp, link)
            except OSError:
                pass
            i += 1

    t = threading.Thread(target=flip, daemon=True)
    t.start()
    fd = os.open(path, os.O_RDONLY)
    s = connect(path)
    won = granted = 0
    for _ in range(tries):
        reply, fds = map_request(s, fd, "r")
        if reply.get("ok"):
            granted += 1
            if fds and os.fstat(fds[0]).st_ino == secret_ino:
                won += 1
        for f in fds:
            os.close(f)
        if reply.get("ok"):
            s.send(json.dumps({"op": "unmap", "lease": reply["lease"]}).encode())
            s.recv(65536)
    stop.set()
    t.join()
    print("tries %d, secret descriptors received: %d" % (tries, won))
    print("maps granted: %s" % ("some" if granted else "none"))


def touch(path):
    open(path, "w").close()


def sleep_forever():
    while True:
        time.sleep(3600)


def cmd_hold_conns(path, n, ready):
    kept = [connect(path) for _ in range(n)]
    time.sleep(1)  # the daemon accepts (and refuses) in its own time
    # A connection the daemon refused carries its one error packet and is closed.
    alive = 0
    for s in kept:
        s.setblocking(False)
        try:
            s.recv(65536)
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    print("connections opened %d, kept by the daemon: %s" % (n, "all" if alive == n else "fewer"))
    sys.stdout.flush()
    touch(ready)
    sleep_forever()


def hold_maps(path, n, step, first=0):
    """N read maps of PATH at offsets FIRST, FIRST+STEP...; the lease sockets of those
    granted are kept open (never unmapped, never read). Returns (outcome counts, held
    sockets)."""
    fd = os.open(path, os.O_RDONLY)
    s = connect(path)
    outcomes = {}
    held = []
    for i in range(n):
        reply, fds = map_request(s, fd, "r", offset=first + i * step)
        key = "granted" if reply.get("ok") else refused(reply)
        outcomes[key] = outcomes.get(key, 0) + 1
        if reply.get("ok"):
            os.close(fds[0])     # the region descriptor is not what costs the daemon
            held.append(fds[1])  # the lease socket: what a hoarder keeps
        else:
            for f in fds:
                os.close(f)
    return outcomes, held


def cmd_hoard(path, n, ready):
    outcomes, held = hold_maps(path, n, 0)
    for k in sorted(outcomes):
        print("%s: %d" % (k, outcomes[k]))
    sys.stdout.flush()
    touch(ready)
    sleep_forever()


def cmd_ignore_revoke(path, n, ready, first="0"):
    outcomes, held = hold_maps(path, n, 4096, int(first) * 4096)  # revokes go unanswered
    if len(held) != n:
        sys.exit("maps: %s" % outcomes)
    print("maps held: %d" % len(held))
    sys.stdout.flush()
    touch(ready)
    sleep_forever()


def cmd_probe(directory, path, seconds):
    import mmap
    buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
    end = time.monotonic() + seconds
    worst = 0.0
    i = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        name = os.path.join(directory, "probe-%d" % i)
        os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        os.preadv(fd, [buf], 0)
        os.close(fd)
        os.unlink(name)
        worst = max(worst, time.monotonic() - t0)
        i += 1
        time.sleep(0.002)
    print("%.1f" % (worst * 1000))


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if len(a) >= 3 and cmd in ("hold-conns", "hoard", "ignore-revoke"):
        # Whatever happens, the test waiting for READY learns at once that we are done.
        try:
            return run(cmd, a)
        finally:
            touch(a[2])
    run(cmd, a)


def run(cmd, a):
    if cmd == "map":
        cmd_map(*a)
    elif cmd == "swap-race":
        cmd_swap_race(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]))
    elif cmd == "hold-conns":
        cmd_hold_conns(a[0], int(a[1]), a[2])
    elif cmd == "hoard":
        cmd_hoard(a[0], int(a[1]), a[2])
    elif cmd == "ignore-revoke":
        cmd_ignore_revoke(a[0], int(a[1]), *a[2:])
    elif cmd == "probe":
        cmd_probe(a[0], a[1], float(a[2]))
    else:
        sys.exit("attack.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
