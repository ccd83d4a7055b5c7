#!/usr/bin/env python3
"""Turn an infomax run directory into pictures (PNG).

usage: python3 tools/plot_run.py RUN_DIR [--eval DIR] [--out DIR] [--side S] [--title TEXT]

Reads what `infomax train` leaves in RUN_DIR (metrics.jsonl, summary.json,
config.yaml, layer1_W.npy) and what `infomax eval RUN_DIR --out RUN_DIR/eval`
writes (eval.json, correlation.npy, winners.npy, eigenvalues.npy; --eval DIR
names another directory), and writes into --out (default RUN_DIR/plots):

  training.png     loss, every objective term and |grad| per iteration
  correlation.png  the output correlation matrix R of the trained layer
  winners.png      how often each unit wins argmax r (sorted), with the uniform level
  spectrum.png     eigenvalues of the output covariance C, with the effective rank
  probe.png        linear-probe test (and train) accuracy: model against the baselines
  prototypes.png   the rows of W as images, for image data (IDX data, --side S, or
                   n = S*S with S >= 8)

Pictures whose inputs are missing are skipped with a note (e.g. without an
eval directory only training.png and prototypes.png). Needs numpy and
matplotlib from Debian (python3-numpy, python3-matplotlib); no display.
"""
import json
import math
import os
import sys

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


def note(msg):
    print("plot_run: " + msg, file=sys.stderr)


def load_jsonl(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def config_value(run_dir, section, key):
    """A scalar of the resolved config.yaml (flat two-level YAML, no parser needed)."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(path):
        return None
    current = None
    with open(path) as f:
        for line in f:
            text = line.split("#", 1)[0].rstrip()
            if not text:
                continue
            if not text.startswith(" ") and text.endswith(":"):
                current = text[:-1].strip()
            elif current == section and text.strip().startswith(key + ":"):
                return text.split(":", 1)[1].strip().strip('"')
    return None


def title_of(run_dir, summary):
    if not summary:
        return os.path.basename(os.path.normpath(run_dir))
    m, o = summary.get("model", {}), summary.get("objective", {})
    return "%s: K=%s %s, preset %s" % (os.path.basename(os.path.normpath(run_dir)), m.get("K"),
                                       m.get("activation"), o.get("preset"))


def plot_training(rows, out, title):
    terms = []
    for r in rows:
        for t in r.get("terms", {}):
            if t not in terms:
                terms.append(t)
    panels = ["loss"] + terms + ["grad_norm"]
    cols = min(3, len(panels))
    nrow = int(math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(nrow, cols, figsize=(4.2 * cols, 3.0 * nrow), squeeze=False)
    it = [r["iter"] for r in rows]
    for ax, name in zip(axes.flat, panels):
        if name == "loss":
            y = [r.get("loss") for r in rows]
        elif name == "grad_norm":
            y = [r.get("grad_norm") for r in rows]
        else:
            y = [r.get("terms", {}).get(name) for r in rows]
        y = np.array([np.nan if v is None else v for v in y], dtype=float)
        ax.plot(it, y, lw=1.5)
        if name == "grad_norm" and np.all(y[np.isfinite(y)] > 0):
            ax.set_yscale("log")
        ax.set_title("|grad|" if name == "grad_norm" else name)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_correlation(R, out, title, measures):
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    im = ax.imshow(R, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.85, label="correlation")
    sub = ""
    if measures:
        sub = "\nmax |corr| %.3g, mean |corr| %.3g, dead units %d" % (
            measures.get("max_abs_corr") or float("nan"), measures.get("mean_abs_corr") or float("nan"),
            measures.get("dead_units", 0))
    ax.set_title(title + sub, fontsize=9)
    ax.set_xlabel("unit")
    ax.set_ylabel("unit")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_winners(counts, out, title, measures):
    counts = np.asarray(counts, dtype=float).ravel()
    K = counts.size
    freq = np.sort(counts / max(counts.sum(), 1))[::-1]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.bar(np.arange(K), freq, width=1.0, color="#4878a8")
    ax.axhline(1.0 / K, color="k", ls="--", lw=1, label="uniform 1/K")
    ax.set_xlabel("unit (sorted by frequency)")
    ax.set_ylabel("fraction of samples won")
    sub = ""
    if measures:
        sub = "\nwinner entropy %.3f of %.3f bits, %d of %d units win" % (
            measures.get("winner_entropy_bits") or 0, math.log2(K), measures.get("winning_units", 0), K)
    ax.set_title(title + sub, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_spectrum(eig, out, title, measures):
    eig = np.asarray(eig, dtype=float).ravel()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    pos = eig > 0
    ax.semilogy(np.arange(1, eig.size + 1)[pos], eig[pos], ".-")
    ax.set_xlabel("index")
    ax.set_ylabel("eigenvalue of C")
    sub = ""
    if measures:
        sub = "\neffective rank %.2f of %d, Gaussian TC %s nats" % (
            measures.get("effective_rank") or float("nan"), eig.size,
            "inf" if measures.get("gaussian_tc") is None else "%.3g" % measures["gaussian_tc"])
    ax.set_title(title + sub, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_probe(ev, out, title):
    names, test, train = [], [], []

    def add(name, block):
        p = block.get("probe")
        if p:
            names.append(name)
            test.append(p.get("test_accuracy"))
            train.append(p.get("train_accuracy"))

    add("model", ev)
    for key, b in ev.get("baselines", {}).items():
        add(b.get("name", key), b)
    if not names:
        return False
    x = np.arange(len(names))
    have_test = any(v is not None for v in test)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.8))
    w = 0.38
    tr = [np.nan if v is None else v for v in train]
    ax.bar(x - w / 2 if have_test else x, tr, w, label="train", color="#9ab8d8")
    if have_test:
        te = [np.nan if v is None else v for v in test]
        bars = ax.bar(x + w / 2, te, w, label="test", color="#2f5f8f")
        for b, v in zip(bars, te):
            if np.isfinite(v):
                ax.text(b.get_x() + b.get_width() / 2, v + 0.005, "%.3f" % v, ha="center", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    lo = np.nanmin([v for v in tr + (te if have_test else []) if v is not None] + [1.0])
    ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    ax.set_ylabel("accuracy")
    ax.set_title(title + "\nlinear probe (multinomial logistic regression)", fontsize=9)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def plot_prototypes(W, side, out, title):
    K = W.shape[0]
    cols = int(math.ceil(math.sqrt(K)))
    rows = int(math.ceil(K / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols + 0.4, 0.9 * rows + 0.6), squeeze=False)
    for j, ax in enumerate(axes.flat):
        ax.axis("off")
        if j < K:
            w = W[j].reshape(side, -1)
            m = np.abs(w).max() or 1.0
            ax.imshow(w, cmap="gray", vmin=-m, vmax=m, interpolation="nearest")
    fig.suptitle(title + "\nprototypes w_j (white > 0 > black)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def image_side(run_dir, n, side):
    if side:
        return side if n % side == 0 else None
    s = int(round(math.sqrt(n)))
    if s * s != n:
        return None
    if config_value(run_dir, "data", "source") == "idx" or s >= 8:
        return s
    return None


def main(argv):
    args, opts = [], {}
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ("--eval", "--out", "--side", "--title"):
            if i + 1 >= len(argv):
                print("plot_run: %s needs a value" % a, file=sys.stderr)
                return 2
            opts[a[2:]] = argv[i + 1]
            i += 2
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            args.append(a)
            i += 1
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    run = args[0]
    if not os.path.isdir(run):
        print("plot_run: %s is not a directory" % run, file=sys.stderr)
        return 2
    out = opts.get("out", os.path.join(run, "plots"))
    ev_dir = opts.get("eval", os.path.join(run, "eval"))
    os.makedirs(out, exist_ok=True)
    summary = None
    if os.path.exists(os.path.join(run, "summary.json")):
        with open(os.path.join(run, "summary.json")) as f:
            summary = json.load(f)
    title = opts.get("title") or title_of(run, summary)
    wrote = []

    mpath = os.path.join(run, "metrics.jsonl")
    rows = load_jsonl(mpath) if os.path.exists(mpath) else []
    if rows:
        plot_training(rows, os.path.join(out, "training.png"), title)
        wrote.append("training.png")
    else:
        note("no iterations in %s: skipping training.png" % mpath)

    ev = None
    if os.path.exists(os.path.join(ev_dir, "eval.json")):
        with open(os.path.join(ev_dir, "eval.json")) as f:
            ev = json.load(f)
    measures = ev.get("measures") if ev else None
    have_eval = False
    for name, fn in (("correlation", plot_correlation), ("winners", plot_winners),
                     ("eigenvalues", plot_spectrum)):
        path = os.path.join(ev_dir, name + ".npy")
        if os.path.exists(path):
            png = {"eigenvalues": "spectrum.png"}.get(name, name + ".png")
            fn(np.load(path), os.path.join(out, png), title, measures)
            wrote.append(png)
            have_eval = True
    if ev and plot_probe(ev, os.path.join(out, "probe.png"), title):
        wrote.append("probe.png")
    if not have_eval:
        note("no evaluation in %s: run `infomax eval %s --out %s` for correlation.png, winners.png, "
             "spectrum.png and probe.png" % (ev_dir, run, ev_dir))

    wpath = os.path.join(run, "layer1_W.npy")
    if os.path.exists(wpath):
        W = np.load(wpath)
        side = image_side(run, W.shape[1], int(opts["side"]) if "side" in opts else 0)
        if side:
            plot_prototypes(W, side, os.path.join(out, "prototypes.png"), title)
            wrote.append("prototypes.png")
        else:
            note("n = %d does not look like images: skipping prototypes.png (use --side S)" % W.shape[1])
    print("plot_run: wrote %s in %s" % (", ".join(wrote) if wrote else "nothing", out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
