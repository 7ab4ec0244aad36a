#!/usr/bin/env python3
"""Sums Nsight Compute's kernel times (ncu --csv --page raw --metrics gpu__time_duration.sum) by
kernel name, for the training steps of one `tlm bench train` run: the launches between its two
GEMM-ceiling measurements. Both measurements issue the same launches, starting with a
broadcast_rows one: the second runs from the last broadcast_rows launch to the end, and as many
launches from the first broadcast_rows launch on are the first.

Usage: scripts/kernel_times.py profile.csv [--top N]
"""
import argparse
import csv
import sys
from collections import defaultdict

UNITS = {"nsecond": 1e-6, "ns": 1e-6, "usecond": 1e-3, "us": 1e-3, "msecond": 1.0, "ms": 1.0, "second": 1e3, "s": 1e3}


def launches(path):
    """[(name, grid, ms)] in launch order."""
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # ncu's own ==PROF== lines are not CSV
    rows = list(csv.reader(lines))
    if len(rows) < 2:
        sys.exit(f"{path}: no kernel rows (did ncu run and profile anything?)")
    header, units = rows[0], rows[1]
    try:
        name_col, grid_col, time_col = (header.index(h) for h in ("Kernel Name", "Grid Size", "gpu__time_duration.sum"))
    except ValueError as e:
        sys.exit(f"{path}: missing column ({e})")
    scale = UNITS.get(units[time_col])
    if scale is None:
        sys.exit(f"{path}: unknown time unit {units[time_col]!r}")
    return [(r[name_col], r[grid_col], float(r[time_col].replace(",", "")) * scale) for r in rows[2:]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    all_launches = launches(a.csv)
    marks = [i for i, (name, _, _) in enumerate(all_launches) if "broadcast_rows" in name]
    if len(marks) < 2:
        sys.exit(f"{a.csv}: expected two GEMM-ceiling measurements (broadcast_rows launches), found {len(marks)}")
    after = all_launches[marks[-1] :]
    before = all_launches[marks[0] : marks[0] + len(after)]
    if [(n, g) for n, g, _ in before] != [(n, g) for n, g, _ in after]:
        sys.exit(f"{a.csv}: the two GEMM-ceiling measurements launched different kernels")
    step = all_launches[marks[0] + len(after) : marks[-1]]
    by_name = defaultdict(lambda: [0, 0.0])
    for name, _, ms in step:
        short = name.split("(")[0].replace("tlm::<unnamed>::", "").replace("tlm::cuda::", "")
        by_name[short][0] += 1
        by_name[short][1] += ms
    total = sum(ms for _, _, ms in step)
    print(f"{len(step)} launches, {total:.2f} ms of kernel time (serialised by the profiler)")
    print(f"{'kernel':<72} {'launches':>8} {'ms':>9} {'share':>6}")
    for short, (count, ms) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[: a.top]:
        print(f"{short[:72]:<72} {count:>8} {ms:>9.3f} {100 * ms / total:>5.1f}%")


if __name__ == "__main__":
    main()
