#!/usr/bin/env python3
"""check_layers.py -- the include graph between folders follows the layers, with no cycle.

Every C/C++ file's `#include "..."` of a project file is an edge from its folder to the
included file's folder. The layers, lowest first, and what each may include:

  include/udaxfs  the public ABI (ioctl.h, control.h, udax.h)
  fs/base         Status/Result, UniqueFd, stop signal, safe files, control packets
  fs/format       the on-media format, the badblocks list file and the state directory
  fs/region       the pmem region (libpmem2), SIGBUS-safe copies, emulated poison
  rmap            the reverse map's records and queries
  fs/core         the filesystem: journal, allocator, inodes, extents, names, repair
  notify          media-error sources, the event queue, the resolver and its actions
  fs/fuse         the daemon
  client          libudax and the preload shim (the ABI and fs/base only)
  mount-helper    mkfs, fsck, mount and udaxctl
  tests/*, bench  tests and benchmarks: anything

A folder may include itself and the folders LAYERS lists for it, and (transitively) what
those may include. The script fails (exit 1) on an edge the table does not allow, on a
folder missing from the table, and on a cycle in the table itself; it prints each
offending include as FILE: includes "HEADER" (FOLDER -> FOLDER).

  scripts/check_layers.py              check the repository (scripts/test.sh runs this)
  scripts/check_layers.py --root DIR   check another tree
  scripts/check_layers.py --graph      also print the folder graph
  scripts/check_layers.py --self-test  prove the check fails on a back edge (ctest runs it)
"""
import argparse
import os
import re
import sys
import tempfile

# Each folder and the folders directly below it that it may include.
LAYERS = {
    "include/udaxfs": [],
    "fs/base": ["include/udaxfs"],
    "fs/format": ["fs/base"],
    "fs/region": ["fs/format"],
    "rmap": ["fs/region"],
    "fs/core": ["rmap", "include/udaxfs"],
    "notify": ["fs/core"],
    "fs/fuse": ["notify"],
    "client": ["fs/base"],
    "mount-helper": ["fs/fuse"],
    "tests/crash": ["tests/fuzz"],  # shares the in-memory region
    "tests/fuzz": ["mount-helper"],
    "tests/fs": ["mount-helper", "client"],
    "bench": ["mount-helper", "client"],
}

SOURCE_SUFFIXES = (".h", ".hpp", ".cc", ".c", ".cpp")
SKIP_DIRS = {".git", "__pycache__"}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folder_of(rel_path):
    """The layer folder a repository path belongs to (fs/X and tests/X count apart)."""
    parts = rel_path.split("/")
    if parts[0] in ("fs", "tests", "include") and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0]


def allowed_closure(layers):
    """For each folder, every folder it may include (itself and all below); None on a cycle."""
    closure = {}
    visiting = set()

    def visit(name, path):
        if name in closure:
            return closure[name]
        if name in visiting:
            raise ValueError("the layer table has a cycle: " + " -> ".join(path + [name]))
        visiting.add(name)
        below = {name}
        for dep in layers.get(name, []):
            if dep not in layers:
                raise ValueError(f"the layer table names an unknown folder {dep!r}")
            below |= visit(dep, path + [name])
        visiting.discard(name)
        closure[name] = below
        return below

    for name in layers:
        visit(name, [])
    return closure


def source_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        # Build trees (build/, build-asan/ ...) and VCS data are not sources.
        dirnames[:] = [d for d in dirnames
                       if d not in SKIP_DIRS and not (rel_dir == "." and d.startswith("build"))]
        for name in filenames:
            if name.endswith(SOURCE_SUFFIXES):
                yield os.path.normpath(os.path.join(rel_dir, name))


def include_edges(root):
    """(file, header as written, resolved header path) for each include of a project file."""
    for rel in source_files(root):
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for m in INCLUDE_RE.finditer(text):
            header = m.group(1)
            # Project includes are written from the repository root; a bare name is a
            # sibling of the including file.
            for candidate in (header, os.path.join(os.path.dirname(rel), header)):
                candidate = os.path.normpath(candidate)
                if os.path.isfile(os.path.join(root, candidate)):
                    yield rel, header, candidate
                    break


def check(root, show_graph=False, out=sys.stdout):
    """Prints the problems found under `root`; returns how many there were."""
    try:
        closure = allowed_closure(LAYERS)
    except ValueError as e:
        print(f"check_layers: {e}", file=out)
        return 1
    problems = 0
    graph = {}
    unknown = set()
    for rel, header, target in include_edges(root):
        src, dst = folder_of(rel), folder_of(target)
        if src == dst:
            continue
        graph.setdefault(src, set()).add(dst)
        if src not in closure:
            if src not in unknown:
                print(f"check_layers: folder {src!r} is not in the layer table "
                      f"(scripts/check_layers.py LAYERS)", file=out)
                unknown.add(src)
                problems += 1
            continue
        if dst not in closure[src]:
            print(f'{rel}: includes "{header}" ({src} -> {dst}: not below {src})', file=out)
            problems += 1
    if show_graph:
        for src in sorted(graph):
            print(f"{src} -> {', '.join(sorted(graph[src]))}", file=out)
    return problems


def self_test():
    """A tree with one allowed edge and one back edge: the check must flag exactly one."""
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "fs/base/status.h": "#pragma once\n",
            "fs/core/filesystem.h": '#include "fs/base/status.h"\n',
            "fs/format/layout.h": '#include "fs/core/filesystem.h"\n',  # a back edge
        }
        for path, text in files.items():
            os.makedirs(os.path.join(tmp, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(tmp, path), "w", encoding="utf-8") as f:
                f.write(text)
        with open(os.devnull, "w", encoding="utf-8") as sink:
            found = check(tmp, out=sink)
        if found != 1:
            print(f"check_layers self-test: expected 1 problem, found {found}")
            return 1
        os.remove(os.path.join(tmp, "fs/format/layout.h"))
        if check(tmp) != 0:
            print("check_layers self-test: a clean tree was flagged")
            return 1
    bad = dict(LAYERS, **{"fs/base": ["fs/core"]})
    try:
        allowed_closure(bad)
    except ValueError:
        print("check_layers self-test: ok")
        return 0
    print("check_layers self-test: a cycle in the table went unnoticed")
    return 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("--graph", action="store_true", help="print the folder graph")
    parser.add_argument("--self-test", action="store_true",
                        help="check that a back edge is caught")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        print(f"check_layers: {root}: not a directory", file=sys.stderr)
        return 2
    problems = check(root, show_graph=args.graph)
    if problems:
        print(f"check_layers: {problems} include(s) against the layers")
        return 1
    print("check_layers: the include graph follows the layers (no cycle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
