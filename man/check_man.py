#!/usr/bin/env python3
"""check_man.py -- the man pages say everything the tools' --help says.

For each tool, runs its --help (for udaxctl, each command's too), takes every option
it lists, and fails when the tool's page (the .scd source) does not name it, or when a
page lacks its EXIT STATUS (RETURN VALUE for section 3) section.

  check_man.py --bin BUILD/bin --man SRC/man
"""
import argparse
import os
import re
import subprocess
import sys


def run_help(argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return p.stdout + p.stderr


def cli11_options(text):
    """Options of a CLI11 --help: the first column of each line under Options:."""
    opts, in_options = set(), False
    for line in text.splitlines():
        if line.startswith("Options:"):
            in_options = True
            continue
        if in_options and line and not line.startswith(" "):
            in_options = False
        m = re.match(r"^\s+(-[^\s]+)", line) if in_options else None
        if m:
            opts.update(o for o in m.group(1).split(",") if o.startswith("-"))
    opts.discard("-h")
    opts.discard("--help")
    return opts


def cli11_commands(text):
    cmds, in_cmds = [], False
    for line in text.splitlines():
        if line.startswith("Subcommands:"):
            in_cmds = True
            continue
        m = re.match(r"^  ([a-z][a-z-]*)\s", line) if in_cmds else None
        if m:
            cmds.append(m.group(1))
    return cmds


def daemon_options(text):
    """udaxfs's own --help: -X flags and -o names (each of a|b alternatives)."""
    opts = set()
    for line in text.splitlines():
        if not re.match(r"^ {4}-", line):
            continue
        first = re.split(r"\s{2,}", line.strip())[0]
        for m in re.finditer(r"-o ([a-z_]+(?:\|[a-z_]+)*)", first):
            opts.update("-o " + n for n in m.group(1).split("|"))
        opts.update(re.findall(r"(?<![\w-])-[a-zA-Z](?![\w-])", first))
    return opts


def named(page, opt):
    """Whether the page names `opt` (scdoc: *-f*, *--force*, *-o sync*, *cache=...)."""
    if opt.startswith("-o "):
        name = opt[3:]
        return re.search(r"(?<![\w])" + re.escape(name) + r"(?![\w])", page) is not None
    return re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", page) is not None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--man", required=True)
    a = ap.parse_args()
    pages = {f: open(os.path.join(a.man, f)).read() for f in os.listdir(a.man) if f.endswith(".scd")}
    problems = []

    def need(page_name, opts, what):
        page = pages.get(page_name)
        if page is None:
            problems.append(f"{page_name}: missing")
            return
        for o in sorted(opts):
            if not named(page, o):
                problems.append(f"{page_name}: {what} lists {o}, the page does not")

    binp = lambda t: os.path.join(a.bin, t)
    need("mkfs.udaxfs.8.scd", cli11_options(run_help([binp("mkfs.udaxfs"), "--help"])), "mkfs.udaxfs --help")
    need("fsck.udaxfs.8.scd", cli11_options(run_help([binp("fsck.udaxfs"), "--help"])), "fsck.udaxfs --help")
    need("udaxfs.8.scd", daemon_options(run_help([binp("udaxfs"), "--help"])), "udaxfs --help")
    usage = run_help([binp("mount.udaxfs"), "-h"])
    flags = set()
    for group in re.findall(r"\[-([a-zA-Z]+)(?:\s+[A-Z]+)?\]", usage):
        flags.update("-" + c for c in group)
    if not flags:
        problems.append("mount.udaxfs -h: no usage line to check")
    need("mount.udaxfs.8.scd", flags, "mount.udaxfs -h")
    # udaxfs_patrol's --help: "  --rate MB   ..." lines.
    patrol = set(re.findall(r"^\s+(--?[a-z][a-z-]*)", run_help([binp("udaxfs_patrol"), "--help"]), re.M))
    if not patrol:
        problems.append("udaxfs_patrol --help: no options to check")
    need("udaxfs-patrol.8.scd", patrol, "udaxfs_patrol --help")
    top = run_help([binp("udaxctl"), "--help"])
    commands = cli11_commands(top)
    if not commands:
        problems.append("udaxctl --help: no commands to check")
    page = pages.get("udaxctl.8.scd", "")
    for c in commands:
        if f"*{c}*" not in page:
            problems.append(f"udaxctl.8.scd: udaxctl --help lists the command {c}, the page does not")
        need("udaxctl.8.scd", cli11_options(run_help([binp("udaxctl"), c, "--help"])), f"udaxctl {c} --help")
    for name, text in pages.items():
        section = "# RETURN VALUE" if ".3." in name else "# EXIT STATUS"
        if section not in text:
            problems.append(f"{name}: no {section[2:]} section")
    for p in problems:
        print(p)
    print(f"check_man: {len(pages)} pages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
