#!/usr/bin/python3
"""One markdown row of the quality study (docs/journal/quality.md) from a run's run.h5 and its log.

    tools/study_row.py NAME "OVERRIDES"   reads results/NAME/run.h5 and results/NAME/log.txt

Columns: run, overrides, training s, sampling s (network evaluations per image), FID / floor at
N = the final sample count, confidence, smallest and largest class share, and the FID / floor of
each evaluation during training.
"""
import re
import sys

import h5py

name, overrides = sys.argv[1], sys.argv[2]
log = open(f"results/{name}/log.txt", errors="replace").read()
# Training without the evaluations during it (inspect's line), sampling of the final evaluation.
train = re.findall(r"training: \d+ steps logged in \d+ rows, ([\d.]+) s of wall time", log)
sample = re.findall(r"wall time:\s+train [\d.]+ s\s+sample ([\d.]+) s", log)
nfe = re.findall(r"\((\d+) network evaluations per image", log)
train_s, sample_s = train[-1] if train else "nan", sample[-1] if sample else "nan"
with h5py.File(f"results/{name}/run.h5", "r") as f:
    e = f["eval/ema"]
    fid, floor = float(e["fid"][()]), float(e["fid_floor"][()])
    hist = e["class_histogram"][:]
    share = hist / hist.sum()
    h = f["eval_history"] if "eval_history" in f else None
    during = ", ".join(f"{a:.0f}/{b:.1f}@{int(s)}" for a, b, s in zip(h["fid"][:], h["fid_floor"][:], h["step"][:])) if h else ""
    print(f"| {name} | `{overrides}` | {float(train_s):.0f} | {float(sample_s):.1f} ({nfe[-1] if nfe else '?'}) | "
          f"{fid:.1f} / {floor:.2f} = {fid / floor:.1f}x | {100 * float(e['mean_confidence'][()]):.1f}% | "
          f"{100 * share.min():.1f}-{100 * share.max():.1f}% | {during} |")
