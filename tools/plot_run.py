#!/usr/bin/python3
"""Draws the loss curve, the FID during training and the sample grid of a ddpm_dist run.h5 to PNG.

    tools/plot_run.py results/<run>/run.h5 [--out DIR]

loss.png: the loss, and where the run evaluated during training (eval.every), the FID and its
floor against the step and against the training wall time beside it.

Needs Debian's python3-h5py and python3-matplotlib (launch/setup.sh installs them).
"""
import argparse
import os

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_loss(f, path):
    train = f["train"]
    step, loss = train["step"][:], train["loss"][:]
    history = f["eval_history"] if "eval_history" in f else None
    fig, axes = plt.subplots(1, 3 if history is not None else 1, figsize=(16 if history is not None else 6, 4))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    ax.plot(step, loss)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (mean over ranks and log interval)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    if history is not None:
        fid, floor = history["fid"][:], history["fid_floor"][:]
        for ax, x, label in ((axes[1], history["step"][:], "step"),
                             (axes[2], history["train_wall_s"][:] / 60.0, "training wall time (min)")):
            ax.plot(x, fid, marker="o", label="FID (EMA)")
            ax.plot(x, floor, linestyle="--", label="floor (real images, same N)")
            ax.plot(x, 3 * floor, linestyle=":", label="3x floor")
            ax.set_xlabel(label)
            ax.set_ylabel("FID")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_samples(f, path, n=100):
    images = f["samples/images"][:n]
    cols = 10
    rows = (len(images) + cols - 1) // cols
    grid = np.zeros((rows * 28, cols * 28), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28] = img
    attrs = f["samples/images"].attrs
    fig, ax = plt.subplots(figsize=(cols * 0.6, rows * 0.6 + 0.4))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255)
    ax.set_title(f"{attrs['sampler'].decode() if isinstance(attrs['sampler'], bytes) else attrs['sampler']}, "
                 f"{int(attrs['steps'])} steps, checkpoint step {int(attrs['checkpoint_step'])}", fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_file")
    parser.add_argument("--out", help="output folder (default: beside the run file)")
    args = parser.parse_args()
    out = args.out or os.path.dirname(os.path.abspath(args.run_file))
    os.makedirs(out, exist_ok=True)
    with h5py.File(args.run_file, "r") as f:
        if "train" in f:
            plot_loss(f, os.path.join(out, "loss.png"))
            print(os.path.join(out, "loss.png"))
        if "samples" in f:
            plot_samples(f, os.path.join(out, "samples_grid.png"))
            print(os.path.join(out, "samples_grid.png"))


if __name__ == "__main__":
    main()
