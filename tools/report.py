#!/usr/bin/python3
"""A self-contained HTML page of a ddpm_dist run, or of several runs side by side.

    tools/report.py RUN                      writes RUN/report.html
    tools/report.py RUN RUN... --out FILE    the runs' tables and curves together in FILE

RUN is a run folder or its run.h5. Only run.h5 is read (and, for a latent run, autoencoder/run.h5
beside it), so a report can be rebuilt at any moment, also while the run trains: run.h5 is never
changed in place (each update renames a new file over it), so what is read is one consistent
version. Images and curves are embedded; the page fetches nothing and runs no script.

`ddpm_dist report` runs this file; every run writes its report when it ends. Needs Debian's
python3-h5py, python3-matplotlib and python3-yaml (launch/setup.sh installs them).
"""
import argparse
import base64
import html
import io
import math
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

# The final evaluation's figures, in the order of the log's table: (name in /eval/<w>/, header,
# format). "pm" figures have a standard error beside them (<name>_se).
FIGURES = [("fid", "FID", "pm"), ("kid", "KID", "pm"), ("fid_inf", "FID at N=inf", "pm"),
           ("precision", "precision", "3f"), ("recall", "recall", "3f"), ("memorised", "memorised", "pct1")]
SCALE = 3  # every picture drawn at 3x, nearest neighbour (28-pixel digits as 84 pixels)
BORDER = 96  # grey between digits: visible against their black background


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def fmt(value, how):
    """The text a cell shows; the same rounding as the log's table (src/eval/run_eval.cpp)."""
    if value is None or not math.isfinite(value):
        return "-"
    if how == "3f":
        return f"{value:.3f}"
    if how == "pct1":
        return f"{100 * value:.1f}%"
    if how == "pct2":
        return f"{100 * value:.2f}%"
    raise ValueError(how)


class Cell:
    """A table cell holding a figure of run.h5: the page shows it rounded and keeps the stored value
    (and its path) in data- attributes, so a test can compare the page with the file."""

    def __init__(self, path, value, how, se=None):
        self.path, self.value, self.how, self.se = path, value, how, se

    def shown(self):
        if self.how == "pm":
            if self.value is None or not math.isfinite(self.value):
                return "-"
            return f"{self.value:.2f} ± {self.se:.2f}"
        return fmt(self.value, self.how)

    def html(self):
        attrs = f' data-h5="{html.escape(self.path)}" data-value="{self.value!r}" data-format="{self.how}"'
        if self.se is not None:
            attrs += f' data-se="{self.se!r}"'
        return f"<td class=num{attrs}>{html.escape(self.shown())}</td>"


def scalar(group, name):
    return float(group[name][()]) if name in group else None


class EvalGroup:
    """One group of the final evaluation: /eval/<weights> or /eval/<weights>/guidance_<w>."""

    def __init__(self, g):
        self.path = g.name
        self.attrs = {k: g.attrs[k] for k in g.attrs}
        self.weights = text(g.attrs.get("weights", g.name.split("/")[2]))
        self.guidance = float(g.attrs["guidance"]) if "guidance" in g.attrs else None
        self.figures = {n: (scalar(g, n), scalar(g, n + "_se")) for n, _, _ in FIGURES}
        self.floor = {n: (scalar(g["floor"], n), scalar(g["floor"], n + "_se")) for n, _, _ in FIGURES} \
            if "floor" in g else None
        self.per_seed = {n: g["per_seed"][n][:] for n in g["per_seed"]} if "per_seed" in g else {}
        self.seeds = [int(s) for s in text(g.attrs.get("sample_seeds", "")).split(",") if s.strip()]
        self.confidence = scalar(g, "mean_confidence")
        self.classes_present = scalar(g, "classes_present")
        self.cond_accuracy = scalar(g, "cond_accuracy")
        self.reconstruction_fid = scalar(g, "reconstruction_fid")
        self.images = g["images"][:100] if "images" in g else None
        self.labels = g["labels_asked"][:100] if "labels_asked" in g else None
        self.n = int(g.attrs.get("n_samples", 0))

    def label(self):
        sigma_rel = float(self.attrs.get("ema_sigma_rel", 0))
        return self.weights + (f" (post-hoc, sigma_rel {sigma_rel:g})" if sigma_rel > 0 else "") + \
            (f", guidance {self.guidance:g}" if self.guidance is not None else "")


class Run:
    """Everything the page shows, read in one go from run.h5 (and autoencoder/run.h5)."""

    def __init__(self, path):
        self.file = os.path.join(path, "run.h5") if os.path.isdir(path) else path
        if not os.path.isfile(self.file):
            sys.exit(f"report: {self.file}: no such file (give a run folder or its run.h5)")
        self.dir = os.path.dirname(os.path.abspath(self.file))
        self.name = os.path.basename(self.dir)
        try:
            with h5py.File(self.file, "r") as f:
                self._read(f)
        except OSError as e:
            sys.exit(f"report: {self.file}: cannot be read ({e}); is it a run.h5 written by ddpm_dist?")
        self.autoencoder = None
        ae = os.path.join(self.dir, "autoencoder", "run.h5")
        if os.path.isfile(ae):
            with h5py.File(ae, "r") as f:
                self.autoencoder = {
                    "train": {k: f["train"][k][:] for k in f["train"]} if "train" in f else {},
                    "summary": {k: f["autoencoder"].attrs[k] for k in f["autoencoder"].attrs} if "autoencoder" in f else {},
                    "reconstructions": f["autoencoder/reconstructions"][:] if "autoencoder/reconstructions" in f else None,
                }

    def _read(self, f):
        if "config" not in f:
            sys.exit(f"report: {self.file}: no /config: not a run.h5 of ddpm_dist")
        self.config_attrs = {k: text(v) if isinstance(v, (bytes, str)) else v for k, v in f["config"].attrs.items()}
        self.yaml = self.config_attrs.get("yaml", "")
        self.config = yaml.safe_load(self.yaml) or {}
        self.train = {k: f["train"][k][:] for k in f["train"]} if "train" in f else {}
        self.history = {k: f["eval_history"][k][:] for k in f["eval_history"]} if "eval_history" in f else {}
        self.history_attrs = dict(f["eval_history"].attrs) if "eval_history" in f else {}
        self.eval_attrs = {k: text(v) if isinstance(v, bytes) else v for k, v in f["eval"].attrs.items()} \
            if "eval" in f else {}
        self.evals = []
        if "eval" in f:
            for w in ("ema", "raw"):
                if w not in f["eval"]:
                    continue
                g = f["eval"][w]
                guided = sorted((k for k in g if k.startswith("guidance_")), key=lambda k: float(g[k].attrs["guidance"]))
                self.evals += [EvalGroup(g[k]) for k in guided] if guided else [EvalGroup(g)]
        self.samples = None
        if "samples/images" in f:
            d = f["samples/images"]
            self.samples = {"images": d[:100], "attrs": {k: d.attrs[k] for k in d.attrs},
                            "labels": f["samples/labels"][:100] if "samples/labels" in f else None}
        self.trajectory = {}
        for name in ("forward", "reverse"):
            if f"trajectory/{name}" in f:
                self.trajectory[name] = (f[f"trajectory/{name}"][:], f[f"trajectory/{name}_timesteps"][:])
        self.sweep = None
        if "sweep" in f:
            g = f["sweep"]
            self.sweep = {"attrs": {k: text(v) if isinstance(v, bytes) else v for k, v in g.attrs.items()},
                          "columns": {k: g[k][:] for k in g if isinstance(g[k], h5py.Dataset)},
                          "guides": {k: text(v) for k, v in g["guides"].attrs.items()} if "guides" in g else {},
                          "floor": {n: (scalar(g["floor"], n), scalar(g["floor"], n + "_se")) for n, _, _ in FIGURES}
                          if "floor" in g else None}
        self.launch = {k: text(v) if isinstance(v, bytes) else v for k, v in f["launch"].attrs.items()} \
            if "launch" in f else {}
        self.wall = []  # (stage, seconds) of the latest command, in the order of the log's line
        if "wall_time/seconds" in f:
            d = f["wall_time/seconds"]
            self.wall = list(zip(text(d.attrs["stages"]).split(","), (float(s) for s in d[:])))

    def classifier(self):
        return text(self.eval_attrs.get("classifier_fingerprint", self.history_attrs.get("classifier_fingerprint", "")))

    def steps_done(self):
        return int(self.train["step"][-1]) if len(self.train.get("step", [])) else 0

    def steps_planned(self):
        return int(self.config.get("train", {}).get("steps", 0))

    def status(self):
        done, planned = self.steps_done(), self.steps_planned()
        if self.evals:
            step = int(self.evals[0].attrs.get("checkpoint_step", done))
            return f"evaluated at step {step:,} of {planned:,}"
        if done < planned:
            return f"training: step {done:,} of {planned:,} at the latest log line"
        return f"trained {done:,} steps; no final evaluation yet"


# ---- pictures -------------------------------------------------------------------------------------

def png_uri(image_u8):
    buf = io.BytesIO()
    plt.imsave(buf, image_u8, cmap="gray", vmin=0, vmax=255, format="png", pil_kwargs={"compress_level": 1})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def grid(images, columns):
    """Tiles uint8 [N, H, W] into a grid at SCALE x with a BORDER-grey line between images."""
    n, h, w = images.shape
    rows = (n + columns - 1) // columns
    out = np.full((rows * (h * SCALE + 1) + 1, columns * (w * SCALE + 1) + 1), BORDER, dtype=np.uint8)
    big = images.repeat(SCALE, axis=1).repeat(SCALE, axis=2)
    for i in range(min(n, rows * columns)):
        r, c = divmod(i, columns)
        out[1 + r * (h * SCALE + 1):1 + r * (h * SCALE + 1) + h * SCALE,
            1 + c * (w * SCALE + 1):1 + c * (w * SCALE + 1) + w * SCALE] = big[i]
    return out


def class_rows(images, labels, columns=10):
    """One row per class asked for (the class order), as samples.png draws a conditional model."""
    classes = np.unique(labels)
    rows = np.zeros((len(classes), columns) + images.shape[1:], dtype=np.uint8)
    for k, c in enumerate(classes):
        chosen = images[labels == c][:columns]
        rows[k, :len(chosen)] = chosen
    return rows.reshape((-1,) + images.shape[1:])


def sample_picture(images, labels):
    if labels is not None and len(np.unique(labels)) > 1:
        images = class_rows(images, labels)
    return grid(images, 10)


def img(uri, alt, title=None):
    cap = f"<figcaption>{html.escape(title)}</figcaption>" if title else ""
    return f'<figure><img src="{uri}" alt="{html.escape(alt)}">{cap}</figure>'


# ---- curves ---------------------------------------------------------------------------------------

def figure_uri(fig):
    buf = io.BytesIO()
    # Fast compression: the page is written at the end of every run.
    fig.savefig(buf, format="png", dpi=100, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def training_curves(runs):
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.4))
    panels = [("loss", "loss", True), ("lr", "learning rate", True), ("grad_norm", "gradient norm", True),
              ("img_per_s", "images / s (all ranks)", False)]
    for ax, (key, label, log) in zip(axes, panels):
        for i, run in enumerate(runs):
            if key in run.train and len(run.train[key]):
                ax.plot(run.train["step"], run.train[key], label=run.name, linewidth=1, color=f"C{i}")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        if log:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    if len(runs) > 1:
        axes[0].legend(fontsize=8)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.16, top=0.97, wspace=0.28)
    return figure_uri(fig)


def history_curves(runs):
    """The evaluations during training against the step and the training wall time, with their errors."""
    runs = [r for r in runs if len(r.history.get("step", []))]
    if not runs:
        return None
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.4))
    one = len(runs) == 1
    for i, run in enumerate(runs):
        h = run.history
        # One colour a run; the figure by its marker and line.
        colour = {} if one else {"color": f"C{i}"}
        name = "" if one else f"{run.name} "
        for ax, x in ((axes[0], h["step"]), (axes[1], h["train_wall_s"] / 60)):
            ax.errorbar(x, h["fid"], yerr=h.get("fid_se"), marker="o", capsize=3, label=name + "FID", **colour)
            if "fid_inf" in h:
                ax.errorbar(x, h["fid_inf"], yerr=h.get("fid_inf_se"), marker="s", capsize=3, linestyle="--",
                            label=name + "FID at N=inf", **colour)
            ax.plot(x, h["fid_floor"], linestyle=":", label=name + "floor (real images, same N)",
                    **({"color": "grey"} if one else colour))
        if "kid" in h:
            axes[2].errorbar(h["step"], h["kid"], yerr=h.get("kid_se"), marker="o", capsize=3, label=run.name,
                             **colour)
        if "precision" in h:
            axes[3].plot(h["step"], h["precision"], marker="o", label=name + "precision", **colour)
            axes[3].plot(h["step"], h["recall"], marker="s", linestyle="--", label=name + "recall", **colour)
    for ax, xl, yl in ((axes[0], "step", "FID"), (axes[1], "training wall time (min)", "FID"),
                       (axes[2], "step", "KID"), (axes[3], "step", "precision, recall")):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(True, alpha=0.3)
    axes[2].axhline(0, color="grey", linewidth=0.8)
    for ax in (axes[0], axes[3]):
        ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.16, top=0.97, wspace=0.28)
    return figure_uri(fig)


def autoencoder_curve(run):
    t = run.autoencoder["train"] if run.autoencoder else {}
    if not len(t.get("step", [])):
        return None
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(t["step"], t["loss"])
    ax.set_xlabel("autoencoder step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    fig.subplots_adjust(left=0.17, right=0.97, bottom=0.17, top=0.96)
    return figure_uri(fig)


# ---- tables ---------------------------------------------------------------------------------------

def figure_cells(group_path, figures, floor=False):
    base = group_path + ("/floor" if floor else "")
    cells = []
    for name, _, how in FIGURES:
        value, se = figures[name]
        cells.append(Cell(f"{base}/{name}", value, how, se if how == "pm" else None))
    return cells


def final_table(runs):
    several = len(runs) > 1
    guided = any(e.guidance is not None for r in runs for e in r.evals)
    conditional = any(e.cond_accuracy is not None for r in runs for e in r.evals)
    head = (["run"] if several else []) + ["weights"] + (["guidance"] if guided else []) + \
        [h for _, h, _ in FIGURES] + ["confidence"] + (["cond. acc."] if conditional else []) + \
        ["classes", "samples", "sampler"]
    rows, row_files = [], []  # each row's run.h5, for whoever checks the page against the files
    for run in runs:
        for e in run.evals:
            cells = [Cell(f"{e.path}/mean_confidence", e.confidence, "pct2")]
            if conditional:
                cells.append(Cell(f"{e.path}/cond_accuracy", e.cond_accuracy, "pct2") if e.cond_accuracy is not None
                             else None)
            samples = f"{e.n} x{len(e.seeds)}" if len(e.seeds) > 1 else str(e.n)
            sampler = f"{text(e.attrs.get('sampler', ''))} x{int(e.attrs.get('steps', 0))}"
            classes = f"{round(10 * e.classes_present)}/10" if e.classes_present is not None else "-"
            row_files.append(os.path.abspath(run.file))
            sigma_rel = float(e.attrs.get("ema_sigma_rel", 0))
            weights = e.weights + (f" (post-hoc {sigma_rel:g})" if sigma_rel > 0 else "")
            rows.append(([run.name] if several else []) + [weights] +
                        ([f"{e.guidance:g}" if e.guidance is not None else ""] if guided else []) +
                        figure_cells(e.path, e.figures) + cells + [classes, samples, sampler])
        if run.evals and run.evals[0].floor:
            e = run.evals[0]
            row_files.append(os.path.abspath(run.file))
            rows.append(([run.name] if several else []) + ["real"] + ([""] if guided else []) +
                        figure_cells(e.path, e.floor, floor=True) + [""] + ([""] if conditional else []) +
                        ["", str(e.n), "training set"])
    if not rows:
        return "<p>No final evaluation yet.</p>"
    out = ["<table class=figures><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in rows:
        tds = []
        for c in row:
            tds.append(c.html() if isinstance(c, Cell) else f"<td>{html.escape(c or '-' if c is None else c)}</td>")
        cls = ' class=real' if row[1 if several else 0] == "real" else ""
        out.append(f'<tr{cls} data-file="{html.escape(row_files[len(out) - 1])}">' + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def seeds_table(e, file):
    if len(e.seeds) < 2 or not e.per_seed:
        return ""
    head = "<tr><th>sample seed</th>" + "".join(f"<th>{h}</th>" for n, h, _ in FIGURES if n in e.per_seed) + "</tr>"
    rows = []
    for i, seed in enumerate(e.seeds):
        tds = []
        for n, _, how in FIGURES:
            if n not in e.per_seed:
                continue
            se = float(e.per_seed[n + "_se"][i]) if how == "pm" and n + "_se" in e.per_seed else None
            tds.append(Cell(f"{e.path}/per_seed/{n}[{i}]", float(e.per_seed[n][i]), how, se).html())
        rows.append(f'<tr data-file="{html.escape(file)}"><td>{seed}</td>' + "".join(tds) + "</tr>")
    spread = []
    for n in ("fid", "kid"):
        if n in e.per_seed:
            spread.append(f"{n.upper()} {np.std(e.per_seed[n], ddof=1):.2f}")
    return (f"<h3>{html.escape(e.label())} weights, each sample seed</h3><table class=figures>{head}{''.join(rows)}"
            f"</table><p class=note>The seeds' spread (standard deviation): {', '.join(spread)}.</p>")


def kv_table(pairs):
    return "<table class=kv>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def comparability(runs):
    """What makes the runs' figures not compare, said once at the top."""
    warnings = []
    classifiers = {r.name: r.classifier() for r in runs if r.classifier()}
    if len(set(classifiers.values())) > 1:
        warnings.append("measured with different evaluation classifiers (" +
                        ", ".join(f"{n}: {c}" for n, c in classifiers.items()) +
                        "): FID, KID and precision are in different feature spaces and do not compare")
    counts = {r.name: r.evals[0].n for r in runs if r.evals}
    if len(set(counts.values())) > 1:
        warnings.append("measured on different sample counts (" + ", ".join(f"{n}: {c}" for n, c in counts.items()) +
                        "): FID depends on N; compare KID and FID at N=inf")
    hist = {r.name: int(r.config.get("eval", {}).get("during_samples", 0)) for r in runs if len(r.history.get("step", []))}
    if len(set(hist.values())) > 1:
        warnings.append("evaluated during training on different sample counts (" +
                        ", ".join(f"{n}: {c}" for n, c in hist.items()) + ")")
    return "".join(f'<p class=warning>WARNING: {html.escape(w)}</p>' for w in warnings)


def config_differences(runs):
    def flat(d, prefix=""):
        out = {}
        for k, v in (d or {}).items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[prefix + k] = v
        return out
    flats = [flat(r.config) for r in runs]
    keys = sorted(set().union(*flats))
    differing = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    if not differing:
        return "<p>The runs' configurations are the same.</p>"
    head = "<tr><th>key</th>" + "".join(f"<th>{html.escape(r.name)}</th>" for r in runs) + "</tr>"
    rows = "".join("<tr><th>" + html.escape(k) + "</th>" +
                   "".join(f"<td>{html.escape(str(f.get(k, '-')))}</td>" for f in flats) + "</tr>" for k in differing)
    return f"<table class=kv>{head}{rows}</table>"


# ---- the page -------------------------------------------------------------------------------------

CSS = """
body{font-family:sans-serif;margin:1.5em auto;max-width:1500px;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{padding:.25em .6em;border-bottom:1px solid #e4e4e4;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.real td{color:#555;font-style:italic} table.kv th{font-weight:normal;color:#555}
.note{color:#555;font-size:.9em;max-width:75em} .warning{color:#a00;font-weight:bold}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top} figcaption{font-size:.9em;color:#555}
img{image-rendering:pixelated;max-width:100%} pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.85em}
.status{color:#555}
"""


def evaluation_details(run):
    """Beside the final table: each sample seed's figures and how they were measured."""
    out = [seeds_table(e, os.path.abspath(run.file)) for e in run.evals]
    if run.evals:
        e = run.evals[0]
        accuracy = 100 * float(run.eval_attrs.get("classifier_test_accuracy", float("nan")))
        dataset = text(run.config.get("data", {}).get("dataset", "mnist"))
        facts = [("data set", html.escape(dataset)),
                 ("classifier", f"{html.escape(run.classifier())} (test accuracy {accuracy:.2f}%)"),
                 ("sampler", html.escape(f"{text(e.attrs.get('sampler', ''))}, {int(e.attrs.get('steps', 0))} network "
                                         f"evaluations, eta {float(e.attrs.get('eta', 0)):g}")),
                 ("weights of step", f"{int(e.attrs.get('checkpoint_step', 0)):,}" +
                  (f", post-hoc EMA of length {float(e.attrs['ema_sigma_rel']):g} (sigma_rel)"
                   if float(e.attrs.get("ema_sigma_rel", 0)) > 0 else "")),
                 ("network GFLOPs per sample", f"{float(e.attrs.get('flops_per_sample', 0)) / 1e9:.3f}")]
        guides = sorted({text(g.attrs["guide"]) for g in run.evals if "guide" in g.attrs})
        if guides:
            facts.append(("autoguidance", html.escape("guided by " + "; ".join(guides))))
        if e.reconstruction_fid is not None:
            floor = e.floor["fid"][0] if e.floor else None
            facts.append(("autoencoder reconstruction FID",
                          f"{e.reconstruction_fid:.3f}" + (f" (floor {floor:.3f})" if floor else "") +
                          ": what the first stage alone does to real images, not a bound on the samples"))
        out.append(kv_table(facts))
    return "".join(out)


def sweep_guide(c, i, guide_run):
    """The guide of sweep row i, as the log's table names it."""
    if c["guidance"][i] == 0:
        return "-"
    if c["guide_step"][i] == 0 and not guide_run:
        return "classifier-free"
    step = f"step {int(c['guide_step'][i])}" if c["guide_step"][i] > 0 else "newest"
    ema = f"{c['guide_ema_sigma_rel'][i]:g}" if c["guide_ema_sigma_rel"][i] > 0 else "ckpt"
    return ("other run " if guide_run else "") + f"{step} @{ema}"


def sweep_section(run):
    """`ddpm_dist sweep`'s grid: its metric against the guidance weight, a line per EMA length and
    guide, and the table with each row's difference from the best."""
    if not run.sweep:
        return ""
    a, c = run.sweep["attrs"], run.sweep["columns"]
    metric = text(a.get("metric", "kid"))
    name = "KID" if metric == "kid" else "FID"
    guide_run = text(a.get("guide_run", ""))
    n, best = len(c["guidance"]), int(a.get("best", 0))
    ema = lambda i: f"{c['ema_sigma_rel'][i]:g}" if c["ema_sigma_rel"][i] > 0 else "ckpt"
    lines = {}
    for i in range(n):
        if c["guidance"][i] == 0:
            continue
        lines.setdefault((ema(i), sweep_guide(c, i, guide_run)), []).append(i)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for k, ((e, g), rows) in enumerate(sorted(lines.items())):
        zero = [i for i in range(n) if c["guidance"][i] == 0 and ema(i) == e]
        rows = zero + rows
        ax.errorbar([c["guidance"][i] for i in rows], [c[metric][i] for i in rows],
                    yerr=[c[metric + "_se"][i] for i in rows], marker="o", capsize=2, color=f"C{k % 10}",
                    label=f"ema {e}, guide {g}")
    if not lines:
        xs = [i for i in range(n)]
        ax.errorbar(xs, [c[metric][i] for i in xs], yerr=[c[metric + "_se"][i] for i in xs], marker="o", linestyle="")
    ax.plot([c["guidance"][best]], [c[metric][best]], marker="*", markersize=14, color="black", linestyle="",
            label="best")
    floor = run.sweep["floor"]
    if floor and floor[metric][0] is not None:
        ax.axhline(floor[metric][0], linestyle=":", color="grey", label="real images (same N)")
    ax.set_xlabel("guidance weight w")
    ax.set_ylabel(name)
    ax.legend(fontsize=7, loc="best")
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.14, top=0.97)
    conditional = "cond_accuracy" in c and any(math.isfinite(v) for v in c["cond_accuracy"])
    head = ["ema", "guide", "w"] + [h for _, h, _ in FIGURES[:3]] + ["precision", "recall", "confidence"] + \
        (["cond. acc."] if conditional else []) + ["GFLOPs", f"{name} - best", ""]
    rows = []
    for i in range(n):
        cells = [html.escape(ema(i)), html.escape(sweep_guide(c, i, guide_run)), f"{c['guidance'][i]:g}"]
        cells = [f"<td>{x}</td>" for x in cells]
        for fig_name in ("fid", "kid", "fid_inf"):
            cells.append(Cell(f"/sweep/{fig_name}[{i}]", float(c[fig_name][i]), "pm", float(c[fig_name + "_se"][i])).html())
        cells += [Cell(f"/sweep/precision[{i}]", float(c["precision"][i]), "3f").html(),
                  Cell(f"/sweep/recall[{i}]", float(c["recall"][i]), "3f").html(),
                  Cell(f"/sweep/mean_confidence[{i}]", float(c["mean_confidence"][i]), "pct2").html()]
        if conditional:
            cells.append(Cell(f"/sweep/cond_accuracy[{i}]", float(c["cond_accuracy"][i]), "pct2").html())
        cells.append(f"<td class=num>{c['flops_per_sample'][i] / 1e9:.3f}</td>")
        cells.append("<td></td>" if i == best else
                     Cell(f"/sweep/vs_best[{i}]", float(c["vs_best"][i]), "pm", float(c["vs_best_se"][i])).html())
        mark = "best" if i == best else ("~" if c["within"][i] else "")
        cells.append(f"<td>{mark}</td>")
        title = run.sweep["guides"].get(f"row_{i}")
        rows.append(f'<tr data-file="{html.escape(os.path.abspath(run.file))}"' +
                    (f' title="{html.escape(title)}"' if title else "") + ">" + "".join(cells) + "</tr>")
    table = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"
    seeds = text(a.get("sample_seeds", ""))
    note = (f"<p class=note>{int(a.get('num_samples', 0))} images per cell and sample seed (seeds {html.escape(seeds)}), "
            f"{html.escape(text(a.get('sampler', '')))} x{int(a.get('steps', 0))}, weights of step "
            f"{int(a.get('checkpoint_step', 0)):,}. ema: the model's EMA length (ckpt: the checkpoint's EMA; else "
            "post-hoc EMA's sigma_rel); guide: autoguidance's guide (its step @ its EMA length) or classifier-free "
            f"guidance. Best: the lowest {name}" +
            (f" among the cells with a conditional accuracy of at least {100 * float(a['min_cond_accuracy']):g}%"
             if float(a.get("min_cond_accuracy", 0)) > 0 and int(a.get("min_cond_accuracy_met", 1)) else "") +
            "; ~: within two standard errors of it" +
            (" (KID's differences paired over the blocks of the same noise)" if metric == "kid" else "") +
            ". Error bars: one standard error.</p>")
    return "<h2>Sweep: EMA length, guide and guidance weight</h2>" + img(figure_uri(fig), "sweep") + table + note


def samples_section(run):
    """One grid per weight set and guidance weight (a class per row), else /samples."""
    pictures = [img(png_uri(sample_picture(e.images, e.labels)), f"samples {e.label()}",
                    f"{e.label()} weights: the first 100 samples" + (" (a row per class asked for)"
                                                                      if e.labels is not None else ""))
                for e in run.evals if e.images is not None]
    if not pictures and run.samples is not None:
        a = run.samples["attrs"]
        pictures.append(img(png_uri(sample_picture(run.samples["images"], run.samples["labels"])), "samples",
                            f"samples: {text(a.get('sampler', ''))} x{int(a.get('steps', 0))}, "
                            f"weights of step {int(a.get('checkpoint_step', 0)):,}"))
    return "<h2>Samples</h2>" + "".join(pictures) if pictures else ""


def history_grids(run):
    grids = run.history.get("grids")
    if grids is None or not len(grids):
        return ""
    # Each stored grid holds up to 4 x 4 digits of 28 pixels with 2-pixel borders
    # (src/eval/during_training.cpp): cut out again, so that the page draws them like every other picture.
    rows, columns = (grids.shape[1] - 2) // 30, (grids.shape[2] - 2) // 30
    cells = [[g[2 + r * 30:2 + r * 30 + 28, 2 + c * 30:2 + c * 30 + 28] for r in range(rows) for c in range(columns)]
             for g in grids]
    shown = [img(png_uri(grid(np.stack(c), columns)), f"step {int(s)}", f"step {int(s):,}")
             for c, s in zip(cells, run.history["step"])]
    return "<p class=note>The first 16 samples of each evaluation during training (EMA weights):</p>" + "".join(shown)


def processes_section(run):
    figs = []
    for name, (frames, steps) in run.trajectory.items():
        labels = ", ".join("x0" if t < 0 else f"t={t}" for t in steps)
        figs.append(img(png_uri(grid(frames.reshape((-1,) + frames.shape[2:]), frames.shape[1])), name,
                        f"{name} process, columns {labels}"))
    return "<h2>The forward and reverse processes</h2>" + "".join(figs) if figs else ""


def autoencoder_section(run):
    if not run.autoencoder:
        return ""
    parts = []
    rec = run.autoencoder.get("reconstructions")
    if rec is not None:
        parts.append(img(png_uri(grid(rec.reshape((-1,) + rec.shape[2:]), rec.shape[1])), "reconstructions",
                         "test images (top) and the autoencoder's reconstructions (bottom)"))
    curve = autoencoder_curve(run)
    if curve:
        parts.append(img(curve, "autoencoder loss", "the autoencoder's training loss"))
    summary = run.autoencoder.get("summary", {})
    if "test_mse" in summary:
        parts.append(kv_table([("test reconstruction MSE per pixel", f"{float(summary['test_mse']):.5f}"),
                               ("latent mean, std", f"{float(summary['latent_mean']):.4f}, "
                                                    f"{float(summary['latent_std']):.4f}")]))
    return "<h2>The autoencoder (first stage)</h2>" + "".join(parts) if parts else ""


def machine_and_time(run):
    a, launch = run.config_attrs, run.launch
    pairs = [("started", html.escape(text(a.get("created", "-")))),
             ("ddpm_dist, LibTorch", html.escape(f"{a.get('version', '-')}, {a.get('torch', '-')}")),
             ("ranks", str(a.get("world_size", "-")))]
    for key, label in (("threads", "threads per rank"), ("cpu", "CPU (rank 0)"), ("host", "host (rank 0)"),
                       ("device", "device"), ("backend", "communication"), ("ranks_by_host", "ranks by host")):
        if key in launch:
            pairs.append((label, html.escape(str(launch[key]))))
    # The stages of the latest command as it timed them; a run without that record: the histories'.
    stages = list(run.wall)
    if not stages:
        if run.autoencoder and len(run.autoencoder["train"].get("wall_s", [])):
            stages.append(("autoencoder training", float(run.autoencoder["train"]["wall_s"][-1])))
        if len(run.train.get("wall_s", [])):
            stages.append(("training", float(run.train["wall_s"][-1])))
    if len(run.history.get("eval_s", [])):
        # The command's "train" stage holds them; the history's training time leaves them out.
        stages.append(("of which evaluations during training" if run.wall else "evaluations during training",
                       float(np.nansum(run.history["eval_s"]))))
    pairs.append(("wall time", "<br>".join(f"{html.escape(k)}: {s:.1f} s" for k, s in stages) or "-"))
    img_s = run.train.get("img_per_s")
    if img_s is not None and len(img_s):
        pairs.append(("throughput", f"{np.median(img_s):.1f} images / s (median over the log lines)"))
    return kv_table(pairs)


def reproduce(run):
    a = run.config_attrs
    world = int(a.get("world_size", 1))
    launch = f"mpirun -np {world} " if world > 1 else ""
    lines = []
    if "command" in run.launch:
        lines.append(("as it was started", html.escape(str(run.launch["command"]))))
    uri = "data:text/yaml;base64," + base64.b64encode(run.yaml.encode()).decode()
    lines.append(("from the resolved configuration",
                  f'<code>{html.escape(launch)}ddpm_dist {html.escape(run.name)}.yaml</code> with '
                  f'<a download="{html.escape(run.name)}.yaml" href="{uri}">{html.escape(run.name)}.yaml</a> '
                  f'(the configuration below)'))
    return kv_table([(k, v if k != "as it was started" else f"<code>{v}</code>") for k, v in lines])


MEASURES_NOTE = ("<p class=note>± : standard errors (FID: bootstrap over the samples; KID: 10 disjoint blocks; FID at "
                 "N=inf: fit and sample); with several sample seeds, the mean over the seeds and the standard error of "
                 "that mean. real: as many training images as samples, measured the same way. docs/evaluation.md "
                 "says how each is computed.</p>")


def page(runs, title):
    several = len(runs) > 1
    body = [f"<h1>{html.escape(title)}</h1>", "<p class=status>" +
            " · ".join((f"{html.escape(r.name)}: " if several else "") + html.escape(r.status()) for r in runs) +
            ("" if several else f" · {html.escape(runs[0].file)}") + "</p>", comparability(runs),
            "<h2>Final evaluation</h2>" + final_table(runs) + MEASURES_NOTE]
    if several:
        body.append("<h2>What differs between the configurations</h2>" + config_differences(runs))
    else:
        body += [evaluation_details(runs[0]), sweep_section(runs[0]), samples_section(runs[0])]
    curves = history_curves(runs)
    if curves:
        body.append("<h2>Evaluations during training</h2><p class=note>Error bars: one standard error. "
                    "FID at N=inf and KID compare across N; plain FID does not (its floor moves with N).</p>" +
                    img(curves, "evaluations during training") + ("" if several else history_grids(runs[0])))
    if any(r.train for r in runs):
        body.append("<h2>Training</h2>" + img(training_curves(runs), "training curves"))
    for run in runs:
        if several:
            body += [f"<h2>{html.escape(run.name)}</h2>", evaluation_details(run), samples_section(run)]
        else:
            body += [processes_section(run), autoencoder_section(run)]
        body += ["<h2>Machine and time</h2>" + machine_and_time(run), "<h2>Reproduce</h2>" + reproduce(run),
                 f"<details><summary>The configuration as resolved</summary><pre>{html.escape(run.yaml)}</pre>"
                 "</details>"]
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body) +
            "\n</body></html>\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders or their run.h5")
    parser.add_argument("--out", help="the page to write (default with one run: RUN/report.html)")
    args = parser.parse_args()
    if len(args.runs) > 1 and not args.out:
        parser.error("several runs: say where the page goes with --out FILE")
    runs = [Run(p) for p in args.runs]
    out = args.out or os.path.join(runs[0].dir, "report.html")
    title = f"ddpm_dist run {runs[0].name}" if len(runs) == 1 else "ddpm_dist runs " + ", ".join(r.name for r in runs)
    tmp = f"{out}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page(runs, title))
    os.replace(tmp, out)
    print(os.path.abspath(out))


if __name__ == "__main__":
    main()
