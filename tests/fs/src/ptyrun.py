#!/usr/bin/env python3
"""ptyrun.py -- run a command with a pseudo-terminal as its stdin, stdout and stderr.

usage: ptyrun.py CMD [ARG...]
Prints what the command wrote to the terminal, with carriage returns and escape
sequences shown as <CR> and <ESC>, then "exit N". For testing what tools do on a tty
(progress lines) without a real terminal.
"""
import os
import pty
import sys


def main():
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.argv[1], sys.argv[1:])
    out = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    text = out.decode("utf-8", "replace").replace("\r\n", "\n")
    sys.stdout.write(text.replace("\r", "<CR>").replace("\x1b", "<ESC>"))
    if text and not text.endswith("\n"):
        sys.stdout.write("\n")
    print("exit", os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
