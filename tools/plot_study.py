#!/usr/bin/python3
"""FID during training against training wall time for several runs in one figure.

    tools/plot_study.py OUT.png results/A/run.h5 results/B/run.h5 ...

Each run's line is labelled with its folder name; the floor (real images at the same N) is dashed.
Needs Debian's python3-h5py and python3-matplotlib (launch/setup.sh installs them).
"""
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out, paths = sys.argv[1], sys.argv[2:]
fig, ax = plt.subplots(figsize=(8, 5))
floor = None
for path in paths:
    with h5py.File(path, "r") as f:
        if "eval_history" not in f:
            continue
        h = f["eval_history"]
        ax.plot(h["train_wall_s"][:] / 60.0, h["fid"][:], marker="o", label=os.path.basename(os.path.dirname(path)))
        floor = h["fid_floor"][-1]
if floor is not None:
    ax.axhline(floor, linestyle="--", color="gray", label="floor (same N)")
    ax.axhline(3 * floor, linestyle=":", color="gray", label="3x floor")
ax.set_xlabel("training wall time (min)")
ax.set_ylabel("FID during training (EMA)")
ax.set_yscale("log")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out, dpi=90)
