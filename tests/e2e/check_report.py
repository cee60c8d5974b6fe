#!/usr/bin/python3
"""Checks a report page as a person sees it: opened in headless Chromium from the file.

    check_report.py PAGE [--expect TEXT]... [--absent TEXT]... [--screenshot PNG]

- the page fetches nothing (no http(s) address, no script) and Chromium logs no error for it;
- its screenshot is not blank (many grey levels, a good share of pixels not white);
- every figure in a table (a <td data-h5=...>) shows the value of that dataset in the row's run.h5
  (data-file), rounded as the log's table rounds it, and keeps the exact value (data-value);
- every embedded picture decodes, and the sample grids are drawn at 3x or more;
- each --expect TEXT is in the page's text (e.g. a warning), each --absent TEXT is not.
Exits 1 with every failure listed.
"""
import argparse
import base64
import html.parser
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from PIL import Image


class Page(html.parser.HTMLParser):
    """The cells, images and text of the page as Chromium left its DOM."""

    def __init__(self):
        super().__init__()
        self.cells, self.images, self.text = [], [], []
        self.row_file, self.cell = None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self.row_file = a.get("data-file")
        elif tag == "td" and "data-h5" in a:
            self.cell = dict(a, file=self.row_file, shown="")
        elif tag == "img":
            self.images.append(a)

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.cells.append(self.cell)
            self.cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self.cell is not None:
            self.cell["shown"] += data


def shown(value, se, how):
    """What a cell must show: the rounding of src/eval/run_eval.cpp's report table, written again."""
    if not np.isfinite(value):
        return "-"
    return {"pm": lambda: f"{value:.2f} ± {se:.2f}", "3f": lambda: f"{value:.3f}", "2f": lambda: f"{value:.2f}",
            "pct1": lambda: f"{100 * value:.1f}%", "pct2": lambda: f"{100 * value:.2f}%"}[how]()


def read(f, path):
    """A scalar dataset, or element i of a 1-D one written as path[i]."""
    m = re.fullmatch(r"(.*)\[(\d+)\]", path)
    return float(f[m.group(1)][int(m.group(2))]) if m else float(f[path][()])


def chromium(*args):
    exe = shutil.which("chromium")
    if not exe:
        sys.exit("FAIL: chromium is not installed (tests/run.sh installs it: DDPM_SETUP_TESTS=1 launch/setup.sh)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
                              capture_output=True, text=True, timeout=120)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("page")
    parser.add_argument("--expect", action="append", default=[])
    parser.add_argument("--absent", action="append", default=[])
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    failures = []
    source = open(args.page, encoding="utf-8").read()
    for pattern in (r"https?://", r"<script", r"@import", r"url\("):
        if re.search(pattern, source):
            failures.append(f"the page refers to {pattern!r}: it must fetch and run nothing")
    url = "file://" + os.path.abspath(args.page)

    with tempfile.TemporaryDirectory() as tmp:
        shot = args.screenshot or os.path.join(tmp, "shot.png")
        run = chromium("--window-size=1280,2400", f"--screenshot={shot}", url)
        log = run.stdout + run.stderr
        for line in log.splitlines():
            if "CONSOLE" in line or "Uncaught" in line or "Failed to load" in line or "net::ERR" in line:
                failures.append(f"chromium logged for the page: {line}")
        if run.returncode != 0 or not os.path.exists(shot):
            sys.exit(f"FAIL: chromium could not take a screenshot (status {run.returncode}):\n{log}")
        pixels = np.asarray(Image.open(shot).convert("L"))
        levels, not_white = len(np.unique(pixels)), float((pixels < 240).mean())
        print(f"screenshot {pixels.shape[1]} x {pixels.shape[0]}: {levels} grey levels, {100 * not_white:.1f}% not white")
        if levels < 64 or not_white < 0.05:
            failures.append(f"the screenshot looks blank ({levels} grey levels, {100 * not_white:.1f}% not white)")
        dom = chromium("--dump-dom", url)
        if dom.returncode != 0:
            sys.exit(f"FAIL: chromium could not load the page:\n{dom.stderr}")

    page = Page()
    page.feed(dom.stdout)
    if len(page.cells) < 10:
        failures.append(f"only {len(page.cells)} figures in the page's tables")
    files = {}
    for c in page.cells:
        if not c["file"]:
            failures.append(f"cell {c['data-h5']} is in a row without data-file")
            continue
        f = files.setdefault(c["file"], h5py.File(c["file"], "r"))
        value = read(f, c["data-h5"])
        se = None
        if c["data-format"] == "pm":
            base = re.sub(r"\[\d+\]$", "", c["data-h5"])
            index = c["data-h5"][len(base):]
            se = read(f, base + "_se" + index)
        expected = shown(value, se, c["data-format"])
        if c["shown"].strip() != expected:
            failures.append(f"{c['file']}:{c['data-h5']}: the page shows {c['shown'].strip()!r}, the file says "
                            f"{expected!r}")
        if np.isfinite(value) and float(c["data-value"]) != value:
            failures.append(f"{c['data-h5']}: data-value {c['data-value']} is not the stored {value!r}")
    print(f"{len(page.cells)} figures match their datasets in {len(files)} file(s)")

    grids = 0
    for im in page.images:
        src = im.get("src", "")
        if not src.startswith("data:image/png;base64,"):
            failures.append(f"picture {im.get('alt')!r} is not embedded: {src[:60]}")
            continue
        picture = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        picture.load()
        if im.get("alt", "").startswith("samples"):
            grids += 1
            # Ten digits a row at 3x with one-pixel borders: at least 10 x 84 + 11 pixels wide.
            if picture.size[0] < 10 * 84 + 11:
                failures.append(f"sample grid {im.get('alt')!r} is {picture.size[0]} pixels wide: not drawn at 3x")
    print(f"{len(page.images)} pictures decode, {grids} sample grid(s)")
    text = " ".join(" ".join(page.text).split())
    for e in args.expect:
        if e not in text:
            failures.append(f"the page does not say {e!r}")
    for a in args.absent:
        if a in text:
            failures.append(f"the page says {a!r}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
