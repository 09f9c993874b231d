#!/usr/bin/env python3
"""monitor.py -- the host-side agent of a lab guest: QEMU monitor commands on request.

A test inside the guest cannot reach QEMU's monitor, so it drops a request file into the
results share (REQ_DIR/NAME.req, written then renamed) and waits for NAME.done. This
agent, started by run.sh next to QEMU, watches that directory, runs each request on the
QMP socket and writes the answer: first line "ok" or "error: WHY", then the output.

Requests (one line):
  hmp COMMAND...                     any human-monitor command, e.g. "info registers"
  mce-user CPU BANK STATUS MCGSTATUS ADDR MISC [RIP_LO RIP_HI]
      a machine check, injected only while the vCPU runs in user mode (CPL 3) and, when
      RIP_LO/RIP_HI are given, inside that code range (the guest's spinning victim): an
      MCE that lands in kernel mode can panic the guest (shared/lab/README.md). The VM is
      stopped, its registers read, and either the MCE injected or the VM resumed for a
      moment and tried again.
  hotadd-nvdimm ID SIZE              a new sparse backing file beside the QMP socket (the
      run's private directory, removed with it), object-add of a memory backend on it and
      device_add of an nvdimm (run.sh's nvdimm flavour leaves slots and maxmem for it)
Usage: monitor.py QMP_SOCKET REQ_DIR LOG_FILE   (runs until the socket closes)
"""
import json
import os
import re
import socket
import sys
import time


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        for _ in range(200):  # QEMU creates the socket shortly after it starts
            try:
                self.sock.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise OSError(f"cannot connect to {path}")
        self.file = self.sock.makefile("rw")
        self._read()  # greeting
        self.command("qmp_capabilities")

    def _read(self):
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("QMP socket closed")
            msg = json.loads(line)
            if "event" not in msg:  # events (STOP, RESUME...) are not answers
                return msg

    def command(self, name, **args):
        self.file.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.file.flush()
        msg = self._read()
        if "error" in msg:
            raise RuntimeError(f"{name}: {msg['error'].get('desc', msg['error'])}")
        return msg.get("return")

    def hmp(self, line):
        return self.command("human-monitor-command", **{"command-line": line})


def cpu_state(qmp):
    """(cpl, rip) of the current vCPU from 'info registers' (VM stopped)."""
    regs = qmp.hmp("info registers")
    cpl = re.search(r"CPL=(\d)", regs)
    rip = re.search(r"RIP=([0-9a-fA-F]+)", regs)
    return (int(cpl.group(1)) if cpl else -1, int(rip.group(1), 16) if rip else 0)


def mce_user(qmp, args, log):
    if len(args) not in (6, 8):
        raise ValueError("mce-user CPU BANK STATUS MCGSTATUS ADDR MISC [RIP_LO RIP_HI]")
    cpu, bank, status, mcg, addr, misc = args[:6]
    lo, hi = (int(args[6], 0), int(args[7], 0)) if len(args) == 8 else (0, 2**64)
    deadline = time.monotonic() + 30
    tries = 0
    while time.monotonic() < deadline:
        tries += 1
        qmp.hmp("stop")
        cpl, rip = cpu_state(qmp)
        if cpl == 3 and lo <= rip < hi:
            out = qmp.hmp(f"mce {cpu} {bank} {status} {mcg} {addr} {misc}")
            qmp.hmp("cont")
            log(f"mce injected after {tries} tries at CPL 3, RIP {rip:#x}")
            return f"tries={tries} rip={rip:#x}\n{out}"
        qmp.hmp("cont")
        time.sleep(0.01 * min(tries, 20))
    raise TimeoutError(f"vCPU not in the user range after {tries} tries")


def hotadd_nvdimm(qmp, args, work_dir):
    ident, size = args
    if not re.fullmatch(r"[A-Za-z0-9_-]+", ident):
        raise ValueError(f"bad id {ident}")
    path = os.path.join(work_dir, f"{ident}.img")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    size = int(size[:-1], 0) * units[size[-1]] if size[-1:] in units else int(size, 0)
    with open(path, "wb") as f:
        f.truncate(size)
    qmp.command("object-add", **{"qom-type": "memory-backend-file", "id": f"mem-{ident}",
                                 "mem-path": path, "size": size, "share": True})
    qmp.command("device_add", driver="nvdimm", id=ident, memdev=f"mem-{ident}")
    return qmp.hmp("info memory-devices")


def handle(qmp, line, log, work_dir):
    words = line.split()
    if not words:
        raise ValueError("empty request")
    if words[0] == "hmp":
        return qmp.hmp(" ".join(words[1:]))
    if words[0] == "mce-user":
        return mce_user(qmp, words[1:], log)
    if words[0] == "hotadd-nvdimm":
        return hotadd_nvdimm(qmp, words[1:], work_dir)
    raise ValueError(f"unknown request {words[0]}")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sock_path, req_dir, log_path = sys.argv[1:]
    logf = open(log_path, "a", buffering=1)

    def log(msg):
        logf.write(f"{time.strftime('%H:%M:%S')} {msg}\n")

    qmp = Qmp(sock_path)
    log("connected")
    os.makedirs(req_dir, exist_ok=True)
    try:
        while True:
            for name in sorted(os.listdir(req_dir)):
                if not name.endswith(".req"):
                    continue
                path = os.path.join(req_dir, name)
                with open(path) as f:
                    line = f.read().strip()
                os.unlink(path)
                log(f"request {name}: {line}")
                try:
                    answer = "ok\n" + (handle(qmp, line, log, os.path.dirname(sock_path)) or "")
                except (EOFError, BrokenPipeError):
                    raise
                except Exception as e:  # noqa: BLE001 -- every failure goes back to the guest
                    answer = f"error: {e}\n"
                log(f"answer {name}: {answer.splitlines()[0]}")
                done = os.path.join(req_dir, name[:-4] + ".done")
                with open(done + ".tmp", "w") as f:
                    f.write(answer)
                os.rename(done + ".tmp", done)
            # Also notices QEMU's exit: a closed socket ends the agent.
            qmp.command("query-status")
            time.sleep(0.05)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        log("QEMU gone")


if __name__ == "__main__":
    main()
