#!/usr/bin/env python3
"""Renders a tlm reproduce report in headless Chromium, saves a screenshot, and checks that the
plots are there: in the rendered DOM (every svg.tlm-plot has drawn series or bars) and in the
pixels (the plot colours cover a real area of the screenshot).

Usage (Debian's python3 with numpy and PIL):
  /usr/bin/python3 scripts/report_screenshot.py REPORT.html --png OUT.png [--width W] [--height H] [--plots N]
Exit 77 (skip) when chromium is not installed."""
import argparse
import os
import re
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def run_chromium(exe, args, url):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"] + args + [url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--png", required=True)
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=9000)
    ap.add_argument("--plots", type=int, default=6, help="plots the report must show")
    a = ap.parse_args()
    exe = chromium()
    if exe is None:
        print("SKIP: chromium is not installed (scripts/install-deps.sh installs it)")
        return 77
    url = "file://" + os.path.abspath(a.report)
    dom = run_chromium(exe, ["--dump-dom"], url).stdout
    svgs = re.findall(r'<svg[^>]*class="tlm-plot"[^>]*data-plot="([^"]+)"(.*?)</svg>', dom, re.S)
    names = [n for n, _ in svgs]
    empty = [n for n, body in svgs if 'class="series"' not in body and 'class="bar"' not in body]
    if len(svgs) != a.plots or empty:
        print("FAIL: rendered DOM has plots %s (expected %d), without data: %s" % (names, a.plots, empty))
        return 1
    r = run_chromium(exe, ["--screenshot=" + os.path.abspath(a.png), "--window-size=%d,%d" % (a.width, a.height)],
                     url)
    if not os.path.exists(a.png):
        print("FAIL: no screenshot\n" + r.stderr[-2000:])
        return 1
    pixels = np.asarray(Image.open(a.png).convert("RGB")).astype(np.int16)
    height, width = pixels.shape[:2]

    # The first two plot colours (#1f77b4 blue, #d62728 red), within a small tolerance.
    def count(rgb):
        return int((np.abs(pixels - np.array(rgb, dtype=np.int16)).max(axis=2) < 24).sum())

    blue, red = count((31, 119, 180)), count((214, 39, 40))
    print("screenshot %s: %dx%d, %d plots in the DOM (%s), %d blue and %d red plot pixels"
          % (a.png, width, height, len(svgs), ", ".join(names), blue, red))
    if blue < 200 * a.plots or red < 200:
        print("FAIL: the plots did not render (too few plot-coloured pixels)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
