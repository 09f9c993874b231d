#!/usr/bin/python3
"""report.py -- turns one bench/run.sh run (its manifest.tsv) into the table, the JSON and
the PNG chart.

    report.py MANIFEST --out PREFIX     # writes PREFIX.json, PREFIX.txt, PREFIX.png
    report.py --from-json FILE.json     # prints the table of an earlier run again

The manifest has one line per measurement: kind, filesystem, test, value (a path to fio's
JSON output, metarate's or rawcopy's JSON line, or "VmRSS RssAnon RssFile RssShmem" in KiB).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

FS_ORDER = ["udaxfs", "tmpfs", "passthrough_ll", "fuse2fs"]
# Columns shown only when measured: udaxfs -o cache=none, and udaxfs -o uring (FUSE over
# io_uring, which run.sh measures whenever the kernel has it).
EXTRA_FS = ["udaxfs-direct", "udaxfs-uring", "udaxfs-nocopies", "udaxfs-2dev"]
PEER = "passthrough_ll"

# Goals of issue 9: (label, test, reference, minimum ratio udaxfs/reference).
GOALS = [
    ("seq 1 MiB read >= 1.5 x passthrough_ll", "seqread-psync-1j", PEER, 1.5),
    ("seq 1 MiB read >= 0.6 x tmpfs", "seqread-psync-1j", "tmpfs", 0.6),
    ("seq 1 MiB write (+fsync) >= 2 x passthrough_ll", "seqwrite-psync-1j", PEER, 2.0),
    ("random 4 KiB read >= 1.3 x passthrough_ll", "randread-psync-1j", PEER, 1.3),
    ("random 4 KiB write >= 1.3 x passthrough_ll", "randwrite-psync-1j", PEER, 1.3),
    ("create >= 1.5 x passthrough_ll", "create-1t", PEER, 1.5),
    ("stat >= 1.5 x passthrough_ll", "stat-1t", PEER, 1.5),
    ("delete >= 1.5 x passthrough_ll", "delete-1t", PEER, 1.5),
]
# What metadata copies cost (issue 17): udaxfs (an image made with copies, mkfs's default)
# against udaxfs-nocopies (mkfs --no-metadata-copies), measured in the same run: within
# 15% of each other, both ways.
COPY_GOALS = [
    ("create with copies within 15% of without", "create-1t"),
    ("stat with copies within 15% of without", "stat-1t"),
    ("delete with copies within 15% of without", "delete-1t"),
    ("append (seq 1 MiB write) with copies within 15%", "seqwrite-psync-1j"),
]
COPY_TOLERANCE = 0.15
# What a second device costs (issue 22): udaxfs over two images of half the size each
# (udaxfs-2dev) against udaxfs on one, in the same run: every throughput row measured on
# both no more than 5% worse. Files alternate between the devices (their home device is
# ino % devices), so the 2-job rows run one file on each.
TWO_DEVICE_TOLERANCE = 0.05
# The mmap goals: fio's mmap engine through the direct-map shim (the "shim" rows, udaxfs
# under LD_PRELOAD=libudax-preload.so) against tmpfs's mmap job; FUSE mmap shown beside.
MMAP_GOALS = [
    ("mmap read via direct-map shim >= 0.9 x tmpfs", "seqread-shim-1j", "seqread-mmap-1j"),
    ("mmap write via direct-map shim >= 0.9 x tmpfs", "seqwrite-shim-1j", "seqwrite-mmap-1j"),
]
# The POSIX I/O goals of issue 21: fio's psync engine under the shim (the "pshim" rows)
# against tmpfs's psync job. Reads are served from read views, overwrites, appends and
# writes into holes (randwrite on a fresh file: fills) through writable views.
PSHIM_GOALS = [
    (f"{what} via shim >= 1.0 x tmpfs ({nj}j)", f"{test}-pshim-{nj}j", f"{test}-psync-{nj}j")
    for test, what in (("randread", "random 4 KiB read"), ("randwrite", "random 4 KiB write"),
                       ("seqread", "seq 1 MiB read"), ("seqwrite", "seq 1 MiB write"),
                       ("randrewrite", "random 4 KiB overwrite"), ("seqrewrite", "seq 1 MiB overwrite"))
    for nj in (1, 2)
]
# Appends through the shim (issue 21): fio's 4 KiB appends with an fsync every 64 under
# the shim, at least 3x the same job through FUSE (udaxfs's own psync row).
APPEND_GOALS = [(f"4 KiB appends (fsync every 64) via shim >= 3 x FUSE ({nj}j)",
                 f"appendwrite-pshim-{nj}j", f"appendwrite-psync-{nj}j") for nj in (1, 2)]
APPEND_TARGET = 3.0
# The FUSE path of issue 21, udaxfs's psync rows: a sequential 1 MiB write (+fsync) at
# least 1.5x passthrough_ll's, and writes that allocate (a fresh file) within 20% of the
# same writes over the file laid out before (the rewrite rows).
FUSE_PATH_GOALS = [("seq 1 MiB write (+fsync) >= 1.5 x passthrough_ll (issue 21)", "seqwrite-psync-1j", 1.5)]
ALLOC_GOALS = [(f"{what} allocating within 20% of overwriting ({nj}j)", f"{test}-psync-{nj}j", f"{re}-psync-{nj}j")
               for test, re, what in (("seqwrite", "seqrewrite", "seq 1 MiB write"),
                                      ("randwrite", "randrewrite", "random 4 KiB write"))
               for nj in (1, 2)]
ALLOC_TOLERANCE = 0.2
RSS_GROWTH_LIMIT_KIB = 64 * 1024
# Allocating writes scale with threads (issue 18): each 2-job write row at least 1.7x the
# same row's 1-job figure, and no slower than passthrough_ll's 2-job row, in the same run.
SCALE_GOALS = [("seq 1 MiB write", "seqwrite-psync"), ("random 4 KiB write", "randwrite-psync")]
SCALE_TARGET = 1.7


def test_order():
    tests = []
    for name in ("seqread", "seqwrite", "randread", "randwrite"):
        for eng in ("psync", "mmap", "shim", "pshim"):
            for nj in (1, 2):
                tests.append(f"{name}-{eng}-{nj}j")
    for name in ("seqrewrite", "randrewrite", "appendwrite"):
        for eng in ("psync", "pshim"):
            for nj in (1, 2):
                tests.append(f"{name}-{eng}-{nj}j")
    for th in (1, 2):
        for phase in ("create", "stat", "delete"):
            tests.append(f"{phase}-{th}t")
    return tests


def unit_of(test):
    if test.startswith("seq"):
        return "MB/s"
    if test.startswith(("rand", "append")):
        return "IOPS"
    return "ops/s"


def fio_value(path, test):
    """(value, capped): capped when a write job was stopped by its runtime before doing its
    whole amount, so that fio's clock stopped before the final fsync."""
    with open(path) as f:
        text = f.read()
    # fio may print warnings before the JSON document.
    doc = json.loads(text[text.index("{"):])
    job = doc["jobs"][0]
    if job.get("error"):
        raise ValueError(f"fio job error {job['error']}")
    side = job["write"] if "write" in test else job["read"]
    capped = False
    if "write" in test:
        opts = job.get("job options", {})
        per_job = int(opts.get("io_size") or opts.get("size") or 0)
        nj = int(opts.get("numjobs") or 1)
        capped = per_job > 0 and side["io_bytes"] < per_job * nj
    value = side["bw_bytes"] / 1e6 if test.startswith("seq") else side["iops"]
    return value, capped


def parse_manifest(path):
    meta, results, raw, rss, failures, capped = {}, {}, {}, {}, [], []
    rounds = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            kind, fs, test, value = line.split("\t", 3)
            if kind == "meta":
                k, _, v = value.partition("=")
                meta[k] = v
            elif kind == "fio":
                try:
                    v, cap = fio_value(value, test)
                    rounds.setdefault((fs, test), []).append(v)
                    if cap and f"{fs}/{test}" not in capped:
                        capped.append(f"{fs}/{test}")
                except (OSError, ValueError, KeyError, IndexError) as e:
                    failures.append({"fs": fs, "test": test, "why": f"unreadable fio output: {e}"})
            elif kind == "metarate":
                d = json.loads(value)
                if d.get("ok") and d.get("ops", 0) > 0:
                    rounds.setdefault((fs, test), []).append(d["ops_per_s"])
                else:
                    failures.append({"fs": fs, "test": test, "why": "metarate reported an error"})
            elif kind == "raw":
                raw[test] = json.loads(value)
            elif kind == "rss":
                v = [int(x) for x in value.split()]
                rss[test] = dict(zip(("VmRSS", "RssAnon", "RssFile", "RssShmem"), v))
            elif kind == "fail":
                failures.append({"fs": fs, "test": test, "why": value})
    for (fs, test), values in rounds.items():  # the median of the rounds and passes
        results.setdefault(fs, {})[test] = statistics.median(values)
    return meta, results, raw, rss, failures, capped


def raw_ref(test, raw):
    """The physical limit for a sequential row: memcpy out of (read) or into (write) the mapping."""
    if not test.startswith("seq"):
        return None
    nj = test.rsplit("-", 1)[1].rstrip("j")
    r = raw.get(f"{nj}t")
    if not r:
        return None
    return r["read_MBps"] if "read" in test else r["write_MBps"]


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def tool_versions():
    out = {}
    for name, cmd in (("fio", ["fio", "--version"]), ("libfuse", ["pkg-config", "--modversion", "fuse3"])):
        try:
            out[name] = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            out[name] = None
    return out


def build(manifest):
    meta, results, raw, rss, failures, capped = parse_manifest(manifest)
    tests = test_order()
    columns = FS_ORDER + [fs for fs in EXTRA_FS if fs in results]
    table = []
    for t in tests:
        row = {"test": t, "unit": unit_of(t)}
        for fs in columns:
            row[fs] = results.get(fs, {}).get(t)
        row["raw"] = raw_ref(t, raw)
        u = row["udaxfs"]
        row["udaxfs/passthrough_ll"] = ratio(u, row[PEER])
        row["udaxfs/tmpfs"] = ratio(u, row["tmpfs"])
        row["udaxfs/raw"] = ratio(u, row["raw"])
        table.append(row)
    rows = {r["test"]: r for r in table}

    goals = []
    extra = [fs for fs in columns if fs in EXTRA_FS]
    for label, test, ref, target in GOALS:
        r = ratio(rows[test]["udaxfs"], rows[test][ref])
        status = "n/a" if r is None else ("PASS" if r >= target else "MISS")
        goal = {"goal": label, "test": test, "ratio": r, "target": target, "status": status}
        # The same ratio for the other udaxfs columns (a mount option away), for comparison.
        others = [(fs, ratio(rows[test][fs], rows[test][ref])) for fs in extra]
        if others:
            goal["others"] = {fs: v for fs, v in others}
            goal["note"] = "; ".join(f"{fs} {'n/a' if v is None else f'{v:.2f}'}" for fs, v in others)
        goals.append(goal)
    for what, test in SCALE_GOALS:
        one, two = rows[f"{test}-1j"], rows[f"{test}-2j"]
        r = ratio(two["udaxfs"], one["udaxfs"])
        goals.append({"goal": f"{what}: 2 jobs >= {SCALE_TARGET} x 1 job", "test": f"{test}-2j",
                      "ratio": r, "target": SCALE_TARGET,
                      "status": "n/a" if r is None else ("PASS" if r >= SCALE_TARGET else "MISS"),
                      "note": f"udaxfs {test}-2j / -1j"})
        r = ratio(two["udaxfs"], two[PEER])
        goals.append({"goal": f"{what}: 2 jobs >= passthrough_ll's 2 jobs", "test": f"{test}-2j",
                      "ratio": r, "target": 1.0,
                      "status": "n/a" if r is None else ("PASS" if r >= 1.0 else "MISS")})
    if "udaxfs-nocopies" in columns:
        for label, test in COPY_GOALS:
            r = ratio(rows[test]["udaxfs"], rows[test]["udaxfs-nocopies"])
            ok = r is not None and 1 - COPY_TOLERANCE <= r <= 1 / (1 - COPY_TOLERANCE)
            goals.append({"goal": label, "test": test, "ratio": r, "target": 1 - COPY_TOLERANCE,
                          "status": "n/a" if r is None else ("PASS" if ok else "MISS"),
                          "note": "udaxfs / udaxfs-nocopies"})
    if "udaxfs-2dev" in columns:
        for test in test_order():
            if test not in rows:
                continue
            r = ratio(rows[test]["udaxfs-2dev"], rows[test]["udaxfs"])
            if r is None:
                continue
            goals.append({"goal": f"two devices: {test} no worse than 5%", "test": test,
                          "ratio": r, "target": 1 - TWO_DEVICE_TOLERANCE,
                          "status": "PASS" if r >= 1 - TWO_DEVICE_TOLERANCE else "MISS",
                          "note": "udaxfs-2dev / udaxfs"})
    for label, test, fuse_test in MMAP_GOALS:
        # tmpfs's own mmap job is the reference (its shim row is the same job again).
        r = ratio(rows[test]["udaxfs"], rows[fuse_test]["tmpfs"])
        f = ratio(rows[fuse_test]["udaxfs"], rows[fuse_test]["tmpfs"])
        status = "n/a" if r is None else ("PASS" if r >= 0.9 else "MISS")
        goals.append({"goal": label, "test": test, "ratio": r, "target": 0.9, "status": status,
                      "note": "FUSE mmap without the shim: " + ("n/a" if f is None else f"{f:.2f} x tmpfs")})
    for label, test, ref_test in PSHIM_GOALS:
        # tmpfs's own psync job is the reference (its pshim row is the same job again).
        r = ratio(rows[test]["udaxfs"], rows[ref_test]["tmpfs"])
        f = ratio(rows[ref_test]["udaxfs"], rows[ref_test]["tmpfs"])
        goals.append({"goal": label, "test": test, "ratio": r, "target": 1.0,
                      "status": "n/a" if r is None else ("PASS" if r >= 1.0 else "MISS"),
                      "note": "FUSE psync: " + ("n/a" if f is None else f"{f:.2f} x tmpfs")})
    for label, test, fuse_test in APPEND_GOALS:
        if test not in rows:
            continue
        r = ratio(rows[test]["udaxfs"], rows[fuse_test]["udaxfs"])
        t = ratio(rows[test]["udaxfs"], rows[fuse_test]["tmpfs"])
        goals.append({"goal": label, "test": test, "ratio": r, "target": APPEND_TARGET,
                      "status": "n/a" if r is None else ("PASS" if r >= APPEND_TARGET else "MISS"),
                      "note": "udaxfs pshim / psync; against tmpfs: " + ("n/a" if t is None else f"{t:.2f}")})
    for label, test, target in FUSE_PATH_GOALS:
        r = ratio(rows[test]["udaxfs"], rows[test][PEER]) if test in rows else None
        goals.append({"goal": label, "test": test, "ratio": r, "target": target,
                      "status": "n/a" if r is None else ("PASS" if r >= target else "MISS"), "note": ""})
    for label, test, over in ALLOC_GOALS:
        r = ratio(rows[test]["udaxfs"], rows[over]["udaxfs"]) if test in rows and over in rows else None
        goals.append({"goal": label, "test": test, "ratio": r, "target": 1 - ALLOC_TOLERANCE,
                      "status": "n/a" if r is None else ("PASS" if r >= 1 - ALLOC_TOLERANCE else "MISS"),
                      "note": f"udaxfs {test} / {over}"})
    counts = sorted(int(k.split("-")[1]) for k in rss if k.startswith("files-") and k.count("-") == 1)
    stated = [c for c in counts if c > 0]
    want = [1000, 1000000]
    goals.append({"goal": "daemon RSS stated at 10^3 and 10^6 files", "test": "rss",
                  "ratio": None, "target": None,
                  "status": "PASS" if all(c in stated for c in want) else "MISS",
                  "note": ("measured at " + ", ".join(f"{c:,}" for c in stated) + " files") if stated
                  else "not measured (--rss-files none)"})
    if "after-mount" in rss and "after-data" in rss:
        growth = rss["after-data"]["RssAnon"] - rss["after-mount"]["RssAnon"]
        goals.append({"goal": "daemon holds no file data (RssAnon growth over the data jobs < 64 MiB)",
                      "test": "rss", "ratio": None, "target": None,
                      "status": "PASS" if growth < RSS_GROWTH_LIMIT_KIB else "MISS",
                      "note": f"RssAnon {rss['after-mount']['RssAnon'] / 1024:.1f} -> "
                              f"{rss['after-data']['RssAnon'] / 1024:.1f} MiB"})

    doc = {
        "stamp": meta.get("stamp"),
        "filesystems": columns,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": {
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "load_start": meta.get("load_start"),
            "load_end": meta.get("load_end"),
            **tool_versions(),
        },
        "params": {
            "file_size_bytes": int(meta.get("size", 0)),
            "runtime_cap_s": int(meta.get("runtime", 0)),
            "meta_files_per_thread": int(meta.get("meta_files", 0)),
            "meta_rounds": int(meta.get("meta_rounds", 1)),
            "repeat": int(meta.get("repeat", 1)),
            "quick": meta.get("quick") == "1",
            "elapsed_s": int(meta.get("elapsed", 0) or 0),
            "udaxfs_opts": meta.get("udaxfs_opts"),
            "transports": {k[len("transport_"):]: v for k, v in meta.items() if k.startswith("transport_")},
        },
        "table": table,
        "raw_copy_MBps": raw,
        "goals": goals,
        "rss_kib": rss,
        "failures": failures,
        "capped": capped,
    }
    return doc


def fmt(v, unit=None):
    if v is None:
        return "-"
    if unit is None:  # a ratio
        return f"{v:.2f}"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def render(doc):
    p, h = doc["params"], doc["host"]
    lines = []
    size = p["file_size_bytes"]
    size_s = f"{size / 2**30:g} GiB" if size >= 2**30 else f"{size / 2**20:g} MiB"
    lines.append(f"udaxfs benchmark {doc['stamp']}: fio {h.get('fio')}, libfuse {h.get('libfuse')}, "
                 f"kernel {h['kernel']}, {h['nproc']} cores")
    lines.append(f"file {size_s} per job; reads: one pass, at most {p['runtime_cap_s']} s; writes: the whole file "
                 f"(random: a quarter of it) + fsync, at most {10 * p['runtime_cap_s']} s; "
                 f"{p['meta_files_per_thread']:,} files per metadata thread (median of {p.get('meta_rounds', 1)})"
                 + (f"; every figure the median of {p['repeat']} passes" if p.get("repeat", 1) > 1 else "")
                 + f"{' (--quick)' if p['quick'] else ''}; load average {h.get('load_start')} at start, "
                 f"{h.get('load_end')} at end; {p['elapsed_s']} s in all; udaxfs options: {p.get('udaxfs_opts')}; "
                 "transports: " + (", ".join(f"{k} {v}" for k, v in p.get("transports", {}).items()) or "not measured"))
    lines.append("")
    fss = doc.get("filesystems", FS_ORDER)
    cols = ["test", "unit"] + fss + ["raw", "u/pt", "u/tmpfs", "u/raw"]
    keys = ["test", "unit"] + fss + ["raw", "udaxfs/passthrough_ll", "udaxfs/tmpfs", "udaxfs/raw"]
    widths = [18, 5] + [max(8, len(f)) for f in fss] + [7, 5, 7, 5]
    lines.append("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths))))
    for row in doc["table"]:
        cells = []
        for i, (k, w) in enumerate(zip(keys, widths)):
            v = row[k]
            if i < 2:
                cells.append(str(v).ljust(w))
            elif "/" in k:
                cells.append(fmt(v).rjust(w))
            else:
                mark = "*" if f"{k}/{row['test']}" in doc.get("capped", []) else ""
                cells.append((fmt(v, row["unit"]) + mark).rjust(w))
        lines.append("  ".join(cells))
    lines.append("")
    lines.append("raw = memcpy of a tmpfs-backed shared mapping (bench/rawcopy), 1 or 2 threads like the job")
    if doc.get("capped"):
        lines.append("* = write job stopped by its runtime cap before its whole amount: the final fsync is "
                     "not in the figure")
    lines.append("")
    lines.append("Goals of issue 9 (ratios of this run):")
    for g in doc["goals"]:
        r = "" if g["ratio"] is None else f"{g['ratio']:.2f}"
        note = f"  ({g['note']})" if g.get("note") else ""
        lines.append(f"  {g['status']:4}  {g['goal']:52} {r:>6}{note}")
    if doc["rss_kib"]:
        lines.append("")
        lines.append("udaxfs daemon memory (MiB; RssShmem = pages of the mapped region, i.e. the pmem itself):")
        lines.append(f"  {'when':28} {'VmRSS':>8} {'RssAnon':>8} {'RssShmem':>9}")
        for k, v in doc["rss_kib"].items():
            lines.append(f"  {k:28} {v['VmRSS'] / 1024:8.1f} {v['RssAnon'] / 1024:8.1f} {v['RssShmem'] / 1024:9.1f}")
    if doc["failures"]:
        lines.append("")
        lines.append("Failures:")
        for f in doc["failures"]:
            lines.append(f"  {f['fs']} {f['test']}: {f['why']}")
    return "\n".join(lines) + "\n"


def chart(doc, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("MB/s", "sequential 1 MiB (MB/s)"), ("IOPS", "random 4 KiB (IOPS)"),
              ("ops/s", "metadata (ops/s)")]
    colors = {"udaxfs": "#1f77b4", "tmpfs": "#7f7f7f", "passthrough_ll": "#ff7f0e",
              "fuse2fs": "#2ca02c", "raw": "#d62728", "udaxfs-direct": "#9467bd",
              "udaxfs-uring": "#8c564b", "udaxfs-nocopies": "#17becf", "udaxfs-2dev": "#bcbd22"}
    fig, axes = plt.subplots(3, 1, figsize=(13, 13))
    for ax, (unit, title) in zip(axes, groups):
        rows = [r for r in doc["table"] if r["unit"] == unit]
        series = doc.get("filesystems", FS_ORDER) + (["raw"] if unit == "MB/s" else [])
        n = len(series)
        width = 0.8 / n
        for i, fs in enumerate(series):
            xs = [j + (i - (n - 1) / 2) * width for j in range(len(rows))]
            ys = [r[fs] if r[fs] else 0 for r in rows]
            ax.bar(xs, ys, width, label=fs, color=colors[fs])
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r["test"] for r in rows], rotation=30, ha="right", fontsize=8)
        if any(r[fs] for r in rows for fs in series):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=n)
    h = doc["host"]
    fig.suptitle(f"udaxfs bench {doc['stamp']} ({h['nproc']} cores; load average {h.get('load_start')} at start, "
                 f"{h.get('load_end')} at end; log scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", nargs="?")
    ap.add_argument("--out", help="prefix of the .json, .txt and .png files")
    ap.add_argument("--from-json", help="print the table of an earlier run's JSON")
    a = ap.parse_args()
    if a.from_json:
        with open(a.from_json) as f:
            sys.stdout.write(render(json.load(f)))
        return 0
    if not a.manifest or not a.out:
        ap.error("MANIFEST and --out are required")
    doc = build(a.manifest)
    text = render(doc)
    sys.stdout.write(text)
    with open(a.out + ".json", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(a.out + ".txt", "w") as f:
        f.write(text)
    try:
        chart(doc, a.out + ".png")
        written = f"{a.out}.json, .txt, .png"
    except ImportError as e:
        written = f"{a.out}.json, .txt (no chart: {e})"
    print(f"\nwritten: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
