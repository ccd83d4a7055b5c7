#!/usr/bin/env python3
"""Turn infomax run directories into pictures (PNG).

usage: python3 tools/plot_run.py RUN_DIR [RUN_DIR ...] [--eval DIR] [--out DIR] [--side S]
                                 [--title TEXT]

Reads what `infomax train` leaves in RUN_DIR (metrics.jsonl, summary.json,
config.yaml, layer1_W.npy) and what `infomax eval RUN_DIR --out RUN_DIR/eval`
writes (eval.json, correlation.npy, winners.npy, eigenvalues.npy; --eval DIR
names another directory, for one run), and writes into --out (default
RUN_DIR/plots):

  training.png     loss, every objective term and |grad| per iteration
  correlation.png  the output correlation matrix R of the trained layer
  winners.png      how often each unit wins argmax r (sorted), with the uniform level
  spectrum.png     eigenvalues of the output covariance C, with the effective rank
  probe.png        linear-probe test (and train) accuracy: model against the baselines
  prototypes.png   the rows of W as images, for image data (IDX data, --side S, or
                   n = S*S with S >= 8)

Every picture says which split it shows and how many rows: training.png the
objective on the N training rows; correlation, winners and spectrum the train
split `infomax eval` measured (its eval.json: data and N); probe.png both
splits. With a softmax, top-k or sparsemax layer the outputs of every row sum
to 1, so C has one structural zero eigenvalue (C 1 = 0): spectrum.png leaves it
off the log axis and names its value instead.

Several RUN_DIRs are overlaid, one legend entry each (the run directory's
name): training, winners, spectrum and probe in one picture each, correlation
one panel per run, prototypes one picture per run (prototypes-NAME.png); --out
is then required.

Pictures whose inputs are missing are skipped with a note (e.g. without an
eval directory only training.png and prototypes.png). Needs numpy and
matplotlib (Debian: python3-numpy, python3-matplotlib); no display. When the
python3 that runs it lacks them (a pyenv or venv python3 first on PATH), it
runs itself again with the first interpreter that has both: $PLOT_RUN_PYTHON
if set, else /usr/bin/python3, /usr/local/bin/python3, then each python3 on
PATH; it says which, or exits 2 naming what it tried.
"""
import json
import math
import os
import shutil
import subprocess
import sys

# The environment variable that marks the re-run (so it happens at most once).
REEXEC = "PLOT_RUN_REEXEC"


def find_python():
    """Re-run this script with an interpreter that has numpy and matplotlib."""
    try:
        import numpy  # noqa: F401
        import matplotlib  # noqa: F401
        return
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
    if os.environ.get("PLOT_RUN_PYTHON"):
        candidates = [os.environ["PLOT_RUN_PYTHON"]]
    else:
        candidates = ["/usr/bin/python3", "/usr/local/bin/python3"]
        for d in os.environ.get("PATH", "").split(os.pathsep):
            p = os.path.join(d or ".", "python3")
            if os.path.isfile(p) and os.access(p, os.X_OK):
                candidates.append(p)
    tried = []
    for c in candidates:
        exe = shutil.which(c) or c
        if exe in tried:
            continue
        tried.append(exe)
        if os.environ.get(REEXEC) or not os.access(exe, os.X_OK):
            continue
        probe = subprocess.run([exe, "-c", "import numpy, matplotlib"], capture_output=True)
        if probe.returncode == 0:
            print("plot_run: %s has no %s: running with %s" % (sys.executable, missing, exe), file=sys.stderr)
            sys.stderr.flush()
            os.environ[REEXEC] = "1"
            os.execv(exe, [exe, os.path.abspath(__file__)] + sys.argv[1:])
    print("plot_run: needs numpy and matplotlib, and %s has no %s; %s. Install them "
          "(Debian: apt-get install python3-numpy python3-matplotlib) or name a python3 that "
          "has them in PLOT_RUN_PYTHON" % (sys.executable, missing,
                                            "nor has any of " + ", ".join(tried) if tried and
                                            not os.environ.get(REEXEC) else "no other python3 was tried"),
          file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    find_python()

import numpy as np  # noqa: E402  (after finding an interpreter that has it)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

# Activations whose outputs sum to 1 on every row (src/model/activation.c).
SIMPLEX = ("softmax", "topk", "sparsemax")


def note(msg):
    print("plot_run: " + msg, file=sys.stderr)


def load_json(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def load_jsonl(path):
    rows = []
    if os.path.exists(path):
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


class Run:
    """One run directory and its evaluation."""

    def __init__(self, path, ev_dir=None):
        self.path = path
        self.summary = load_json(os.path.join(path, "summary.json"))
        self.rows = load_jsonl(os.path.join(path, "metrics.jsonl"))
        self.ev_dir = ev_dir or os.path.join(path, "eval")
        self.ev = load_json(os.path.join(self.ev_dir, "eval.json"))
        self.name = os.path.basename(os.path.normpath(path))
        self.arrays = {}
        for a in ("correlation", "winners", "eigenvalues"):
            p = os.path.join(self.ev_dir, a + ".npy")
            if os.path.exists(p):
                self.arrays[a] = np.load(p)

    def model(self, key):
        if self.ev and key == "activation":
            return self.ev.get("activation")
        return (self.summary or {}).get("model", {}).get(key)

    def describe(self):
        if not self.summary:
            return self.name
        return "%s: K=%s %s, preset %s" % (self.name, self.model("K"), self.model("activation"),
                                           self.summary.get("objective", {}).get("preset"))

    def train_rows(self):
        """The training rows the objective of metrics.jsonl was taken over."""
        n = (self.summary or {}).get("data", {}).get("N")
        return "the train split, N=%s rows" % n if n is not None else "the train split"

    def eval_split(self):
        """What the arrays of the evaluation were measured on (eval.json)."""
        if not self.ev:
            return "the train split"
        return "the train split (%s), N=%s rows" % (os.path.basename(str(self.ev.get("data"))), self.ev.get("N"))

    def measures(self):
        return self.ev.get("measures") if self.ev else None


def labels_of(runs):
    """One legend label per run: the directory's name, or its path where names repeat."""
    names = [r.name for r in runs]
    return [r.name if names.count(r.name) == 1 else os.path.normpath(r.path) for r in runs]


def per_run(labels, texts, sep="\n"):
    """One text for all runs when they agree, else one "label: text" each."""
    if len(set(texts)) == 1:
        return texts[0]
    return sep.join("%s: %s" % (label, t) for label, t in zip(labels, texts))


def heading(runs, title, what):
    """A figure title: the run (or --title), then what the picture shows."""
    head = title or (runs[0].describe() if len(runs) == 1 else "%d runs" % len(runs))
    return head + "\n" + what


def plot_training(runs, labels, out, title):
    panels = ["loss"]
    for r in runs:
        for row in r.rows:
            for t in row.get("terms", {}):
                if t not in panels:
                    panels.append(t)
    panels.append("grad_norm")
    cols = min(3, len(panels))
    nrow = int(math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(nrow, cols, figsize=(4.2 * cols, 3.0 * nrow + 0.4), squeeze=False)
    for ax, name in zip(axes.flat, panels):
        logy = name == "grad_norm"
        for r, label in zip(runs, labels):
            it = [row["iter"] for row in r.rows]
            if name in ("loss", "grad_norm"):
                y = [row.get(name) for row in r.rows]
            else:
                y = [row.get("terms", {}).get(name) for row in r.rows]
            y = np.array([np.nan if v is None else v for v in y], dtype=float)
            ax.plot(it, y, lw=1.5, label=label)
            logy = logy and np.all(y[np.isfinite(y)] > 0)
        if logy:
            ax.set_yscale("log")
        ax.set_title("|grad|" if name == "grad_norm" else name)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    if len(runs) > 1:
        axes.flat[0].legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    rows = per_run(labels, [r.train_rows() for r in runs], "; ")
    fig.suptitle(heading(runs, title, "objective per iteration on " + rows), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_correlation(runs, labels, out, title):
    n = len(runs)
    fig, axes = plt.subplots(1, n, figsize=(5.6 * n + 0.6, 5.4), squeeze=False)
    im = None
    for ax, r, label in zip(axes.flat, runs, labels):
        im = ax.imshow(r.arrays["correlation"], cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        m = r.measures()
        sub = "max |corr| %.3g, mean |corr| %.3g, dead units %d" % (
            m.get("max_abs_corr") or float("nan"), m.get("mean_abs_corr") or float("nan"),
            m.get("dead_units", 0)) if m else ""
        ax.set_title(("%s\n" % label if n > 1 else "") + "on %s\n%s" % (r.eval_split(), sub), fontsize=8)
        ax.set_xlabel("unit")
        ax.set_ylabel("unit")
    fig.colorbar(im, ax=list(axes.flat), shrink=0.85, label="correlation")
    fig.suptitle(heading(runs, title, "output correlation matrix R"), fontsize=9)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_winners(runs, labels, out, title):
    fig, ax = plt.subplots(figsize=(7 if len(runs) == 1 else 8, 3.9 + 0.15 * len(runs)))
    subs, Ks = [], set()
    for r, label in zip(runs, labels):
        counts = np.asarray(r.arrays["winners"], dtype=float).ravel()
        K = counts.size
        freq = np.sort(counts / max(counts.sum(), 1))[::-1]
        if len(runs) == 1:
            ax.bar(np.arange(K), freq, width=1.0, color="#4878a8")
            color = "k"
        else:
            color = ax.step(np.arange(K), freq, where="mid", lw=1.5, label=label)[0].get_color()
        if K not in Ks:
            ax.axhline(1.0 / K, color=color, ls="--", lw=1, label="uniform 1/%d" % K)
            Ks.add(K)
        m = r.measures()
        if m:
            subs.append("winner entropy %.3f of %.3f bits, %d of %d units win" % (
                m.get("winner_entropy_bits") or 0, math.log2(K), m.get("winning_units", 0), K))
    ax.set_xlabel("unit (sorted by frequency)")
    ax.set_ylabel("fraction of rows won")
    what = "each unit's share of " + per_run(labels, [r.eval_split() for r in runs])
    if subs:
        what += "\n" + per_run(labels, subs)
    ax.set_title(heading(runs, title, what), fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def split_spectrum(eig, simplex):
    """(kept, structural, dropped): the eigenvalues for a log axis, the
    structural zero of a simplex activation (or None), and the count of other
    non-positive ones (rounding)."""
    eig = np.sort(np.asarray(eig, dtype=float).ravel())[::-1]
    structural = None
    if simplex and eig.size:
        i = int(np.argmin(np.abs(eig)))
        structural = eig[i]
        eig = np.delete(eig, i)
    pos = eig > 0
    return eig[pos], structural, int((~pos).sum())


def plot_spectrum(runs, labels, out, title):
    fig, ax = plt.subplots(figsize=(6.4 if len(runs) == 1 else 7.5, 4.0))
    notes = []
    for r, label in zip(runs, labels):
        act = r.model("activation")
        kept, structural, dropped = split_spectrum(r.arrays["eigenvalues"], act in SIMPLEX)
        m = r.measures()
        eff = " (effective rank %.2f)" % m["effective_rank"] if m and m.get("effective_rank") is not None else ""
        ax.semilogy(np.arange(1, kept.size + 1), kept, ".-", label=label + eff)
        who = "%s: " % label if len(runs) > 1 else ""
        if structural is not None:
            notes.append("%sstructural zero eigenvalue %.2g left out (%s rows sum to 1: C 1 = 0)"
                         % (who, structural, act))
        if dropped:
            notes.append("%s%d other eigenvalue%s <= 0 (rounding) left out" % (who, dropped, "s" if dropped > 1 else ""))
    ax.set_xlabel("index (largest first)")
    ax.set_ylabel("eigenvalue of C")
    if notes:
        ax.text(0.98, 0.98, "\n".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=7,
                bbox=dict(boxstyle="round", fc="white", alpha=0.8))
    split = per_run(labels, [r.eval_split() for r in runs])
    ax.set_title(heading(runs, title, "output covariance C on " + split), fontsize=8)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def probe_rows(runs, labels):
    """(name, train accuracy, test accuracy) per bar group: each run's model,
    then the baselines of the first run evaluated with them."""
    out = []
    for r, label in zip(runs, labels):
        p = r.ev.get("probe") if r.ev else None
        if p:
            out.append(("model" if len(runs) == 1 else label, p.get("train_accuracy"), p.get("test_accuracy")))
    for r in runs:
        bl = r.ev.get("baselines", {}) if r.ev else {}
        if bl:
            for key, b in bl.items():
                p = b.get("probe")
                if p:
                    out.append((b.get("name", key), p.get("train_accuracy"), p.get("test_accuracy")))
            break
    return out


def plot_probe(runs, labels, out, title):
    groups = probe_rows(runs, labels)
    if not groups:
        return False
    names = [g[0] for g in groups]
    tr = [np.nan if g[1] is None else g[1] for g in groups]
    te = [np.nan if g[2] is None else g[2] for g in groups]
    have_test = any(np.isfinite(te))
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 4.0))
    w = 0.38
    ax.bar(x - w / 2 if have_test else x, tr, w, label="train", color="#9ab8d8")
    if have_test:
        bars = ax.bar(x + w / 2, te, w, label="test", color="#2f5f8f")
        for b, v in zip(bars, te):
            if np.isfinite(v):
                ax.text(b.get_x() + b.get_width() / 2, v + 0.005, "%.3f" % v, ha="center", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=8)
    lo = np.nanmin([v for v in tr + (te if have_test else []) if np.isfinite(v)] + [1.0])
    ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    ax.set_ylabel("accuracy")
    ev = next(r.ev for r in runs if r.ev)
    split = "train split N=%s" % ev.get("N") + (", test split N=%s" % ev.get("N_test") if "N_test" in ev else "")
    ax.set_title(heading(runs, title, "linear probe (multinomial logistic regression): " + split), fontsize=8)
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
    fig.suptitle(title + "\nall %d prototypes w_j, rows of W (white > 0 > black)" % K, fontsize=9)
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
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    for run in args:
        if not os.path.isdir(run):
            print("plot_run: %s is not a directory" % run, file=sys.stderr)
            return 2
    if len(args) > 1 and "out" not in opts:
        print("plot_run: %d runs: name the directory for the pictures with --out DIR" % len(args), file=sys.stderr)
        return 2
    if len(args) > 1 and "eval" in opts:
        print("plot_run: --eval DIR is for one run (several runs read RUN_DIR/eval)", file=sys.stderr)
        return 2
    runs = [Run(a, opts.get("eval")) for a in args]
    labels = labels_of(runs)
    out = opts.get("out", os.path.join(args[0], "plots"))
    os.makedirs(out, exist_ok=True)
    title = opts.get("title")
    wrote = []

    with_rows = [r for r in runs if r.rows]
    for r in runs:
        if not r.rows:
            note("no iterations in %s: %s" % (os.path.join(r.path, "metrics.jsonl"),
                                              "skipping training.png" if len(runs) == 1 else "left out of training.png"))
    if with_rows:
        plot_training(with_rows, labels_of(with_rows), os.path.join(out, "training.png"), title)
        wrote.append("training.png")

    for name, png, fn in (("correlation", "correlation.png", plot_correlation),
                          ("winners", "winners.png", plot_winners),
                          ("eigenvalues", "spectrum.png", plot_spectrum)):
        have = [(r, label) for r, label in zip(runs, labels) if name in r.arrays]
        if have:
            fn([h[0] for h in have], [h[1] for h in have], os.path.join(out, png), title)
            wrote.append(png)
    if plot_probe(runs, labels, os.path.join(out, "probe.png"), title):
        wrote.append("probe.png")
    for r in runs:
        if not r.arrays:
            note("no evaluation in %s: run `infomax eval %s --out %s` for correlation.png, winners.png, "
                 "spectrum.png and probe.png" % (r.ev_dir, r.path, r.ev_dir))

    for r, label in zip(runs, labels):
        wpath = os.path.join(r.path, "layer1_W.npy")
        if not os.path.exists(wpath):
            continue
        W = np.load(wpath)
        side = image_side(r.path, W.shape[1], int(opts["side"]) if "side" in opts else 0)
        png = "prototypes.png" if len(runs) == 1 else "prototypes-%s.png" % label.replace(os.sep, "_")
        if side:
            plot_prototypes(W, side, os.path.join(out, png), title or r.describe())
            wrote.append(png)
        else:
            note("%s: n = %d does not look like images: skipping %s (use --side S)" % (r.name, W.shape[1], png))
    print("plot_run: wrote %s in %s" % (", ".join(wrote) if wrote else "nothing", out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
