"""test_eval: `infomax eval` judges a trained layer end to end.

On small well separated Gaussian-mixture data with train and test splits
(.npy, labels as .npy vectors):
  - the JSON keeps the term keys and adds measures (train and test split),
    probe and baselines (raw input, PCA-K, random hyperplanes; k-means soft
    and triangle, gmm: tests/test_kmeans.py checks those);
  - every measure agrees with an independent numpy implementation (test split
    centered with the train split's mean);
  - the linear probe classifies the mixture (test accuracy >= 0.95 for the raw
    input and PCA, >= 0.9 for the layer);
  - the same evaluation on 1 and 3 ranks gives identical measures, probe and
    baselines (reproducible reductions);
  - --out DIR writes eval.json, correlation.npy, winners.npy, eigenvalues.npy;
    the table goes to standard error;
  - on synthetic ICA data the Amari distance matches numpy;
  - a test split with the wrong number of columns is refused (exit 5);
  - the run's supervised head (terms on z, head on r) is read and scored on
    both splits as numpy scores it, and not with --weights;
  - tools/plot_run.py turns the run directory into PNGs (headless), each
    saying which split and how many rows it shows, the softmax layer's
    structural zero eigenvalue off the spectrum's log axis; it overlays
    several runs with one legend entry each, and runs itself again with an
    interpreter that has numpy when the python3 first on PATH has none.
With --fmnist (suite slow): the probe on raw Fashion-MNIST pixels reaches the
published accuracy of multinomial logistic regression (84.2%) within one point.
"""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

sys.argv, FMNIST = [a for a in sys.argv if a != "--fmnist"], "--fmnist" in sys.argv
from clitest import ENV, check, finish, load_json, run, tmpdir, write  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PLOT = os.path.join(ROOT, "tools", "plot_run.py")
d = tmpdir()


def measures_numpy(Z, A, act):
    """The measures of include/imx/metrics.h, written independently."""
    N, K = A.shape
    C = np.cov(A, rowvar=False, bias=True).reshape(K, K)
    v = np.diag(C)
    live = np.where((v > 1e-12 * v.mean()) & (v > 0))[0]
    R = C[np.ix_(live, live)] / np.sqrt(np.outer(v[live], v[live]))
    off = np.abs(R[np.triu_indices(len(live), 1)])
    lam = np.linalg.eigvalsh(R)
    if act == "softmax":
        lam = lam[1:]
    tc = -0.5 * np.log(lam).sum() if lam.min() > 1e-12 else np.inf
    e = np.clip(np.linalg.eigvalsh(C), 0, None)
    p = e[e > 0] / e.sum()
    win = A.argmax(axis=1) if act == "softmax" else A.argmin(axis=1)
    counts = np.bincount(win, minlength=K)
    f = counts[counts > 0] / N
    pats, sizes = np.unique(Z > 0, axis=0, return_counts=True)
    q = (Z > 0).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.nan_to_num(-q * np.log2(q) - (1 - q) * np.log2(1 - q))
    return {"dead_units": K - len(live), "max_abs_corr": off.max(), "mean_abs_corr": off.mean(),
            "gaussian_tc": tc, "effective_rank": np.exp(-(p * np.log(p)).sum()),
            "regions": len(pats), "largest_region": sizes.max(), "winner_counts": counts,
            "winner_entropy_bits": -(f * np.log2(f)).sum(), "sign_entropy_bits": h,
            "sign_entropy_mean_bits": h.mean(), "sign_entropy_min_bits": h.min(),
            "constant_sign_units": int(((q == 0) | (q == 1)).sum())}


def compare(got, ref, what, tol=1e-9):
    worst, bad = 0.0, []
    for k, r in ref.items():
        g = got[k]
        if k == "winner_counts":
            ok = list(g) == list(r)
        elif k == "sign_entropy_bits":
            ok = len(g) == len(r) and np.abs(np.array(g) - r).max() < 1e-12
        elif isinstance(r, (int, np.integer)):
            ok = g == r
        elif np.isinf(r):
            ok = g is None and got.get("gaussian_tc_singular")
        else:
            err = abs(g - r) / max(abs(r), 1e-6)
            worst = max(worst, err)
            ok = err < tol
        if not ok:
            bad.append("%s: %s vs numpy %s" % (k, g, r))
    check(not bad, "%s: measures agree with numpy (max rel err %.1e, tol %g)%s"
          % (what, worst, tol, "; " + "; ".join(bad) if bad else ""))


def softmax(U):
    U = U - U.max(axis=1, keepdims=True)
    E = np.exp(U)
    return E / E.sum(axis=1, keepdims=True)


def fmnist():
    """Raw Fashion-MNIST pixels: the probe against the published accuracy."""
    fm = "/usr/share/datasets/fashion-mnist/"
    if not os.path.exists(fm + "t10k-images-idx3-ubyte.gz"):
        print("SKIP: Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
        sys.exit(77)
    # Any layer will do (K = 2 random units): the raw-input baseline is the point.
    W2 = np.random.default_rng(0).normal(size=(2, 784))
    np.save(os.path.join(d, "w2.npy"), W2 / np.linalg.norm(W2, axis=1, keepdims=True))
    code, out, err = run(["eval", os.path.join(ROOT, "configs", "fashion-mnist.yaml"), "--weights",
                          os.path.join(d, "w2.npy"), "--set", "model.units=2",
                          "--set", "eval.test_path=" + fm + "t10k-images-idx3-ubyte.gz",
                          "--set", "eval.test_labels=" + fm + "t10k-labels-idx1-ubyte.gz",
                          "--set", "eval.baselines=true"], ranks=2, timeout=1500)
    raw = json.loads(out)["baselines"]["raw"]["probe"] if code == 0 else {"test_accuracy": 0}
    check(code == 0 and abs(raw["test_accuracy"] - 0.842) <= 0.01,
          "Fashion-MNIST raw pixels: probe test accuracy %.4f (published multinomial logistic regression "
          "0.842, tol 0.01), %s iterations%s" % (raw["test_accuracy"], raw.get("iterations"),
                                                 "" if code == 0 else ": " + err.strip()[-300:]))
    finish()


if FMNIST:
    fmnist()

# Data: 4 well separated Gaussian components in n = 16 dimensions.
rng = np.random.default_rng(11)
n, Cn = 16, 4
means = rng.normal(size=(Cn, n)) * 3


def draw(N):
    y = rng.integers(0, Cn, size=N)
    return means[y] + rng.normal(size=(N, n)), y


Xtr, ytr = draw(3000)
Xte, yte = draw(1000)
for name, arr in (("xtr", Xtr), ("ytr", ytr.astype(np.int64)), ("xte", Xte), ("yte", yte.astype(np.int32))):
    np.save(os.path.join(d, name + ".npy"), arr)
K = 6
cfg = write(os.path.join(d, "gmm.yaml"),
            "data:\n  source: npy\n  path: %s\n  labels: %s\n  preprocess: center\n"
            "model:\n  units: %d\n  activation: softmax\n  temperature: 2.0\n"
            "objective:\n  preset: gaussian\n"
            "optimizer:\n  max_it: 25\n"
            "parallel:\n  block: 64\n"
            "eval:\n  test_path: %s\n  test_labels: %s\n  baselines: true\n  probe_max_it: 100\n"
            % (os.path.join(d, "xtr.npy"), os.path.join(d, "ytr.npy"), K, os.path.join(d, "xte.npy"),
               os.path.join(d, "yte.npy")))
rd = os.path.join(d, "run")
code, out, err = run(["train", cfg, "--out", rd], ranks=2)
check(code == 0, "train on the mixture exits 0" + ("" if code == 0 else ": " + err.strip()[-300:]))

# 1. eval on 2 ranks with --out.
evd = os.path.join(rd, "eval")
code, out, err = run(["eval", rd, "--out", evd], ranks=2, timeout=300)
check(code == 0, "eval with test split, probe and baselines exits 0" + ("" if code == 0 else ": " + err.strip()[-300:]))
ev = json.loads(out) if code == 0 else {}
check(all(k in ev for k in ("terms", "unavailable", "loss", "dead_units", "max_abs_corr", "measures",
                             "measures_test", "probe", "baselines")),
      "JSON keeps the term keys and adds measures, measures_test, probe, baselines")
check(sorted(ev.get("baselines", {})) == ["gmm", "kmeans", "kmeans-triangle", "pca", "random", "raw"]
      and ev["baselines"]["raw"]["K"] == n and ev["baselines"]["pca"]["K"] == K
      and ev["baselines"]["random"]["K"] == K and ev["baselines"]["kmeans"]["K"] == K
      and ev["baselines"]["kmeans-triangle"]["K"] == K and ev["baselines"]["gmm"]["K"] == K,
      "baselines: raw (K = n), pca-K, random-K, kmeans-K, kmeans-triangle-K, gmm-K")
check("probe test accuracy" in err and "measures on the test split" in err,
      "the tables go to standard error")

# 2. Measures against numpy (train and test split, model and baselines).
if ev:
    W = np.load(os.path.join(rd, "layer1_W.npy"))
    b = np.load(os.path.join(rd, "layer1_b.npy")).ravel()
    mu = Xtr.mean(axis=0)
    for split, X, key in (("train", Xtr, "measures"), ("test", Xte, "measures_test")):
        Z = (X - mu) @ W.T + b
        compare(ev[key], measures_numpy(Z, softmax(-Z / 2.0), "softmax"), "model, %s split" % split)
        Xc = X - mu
        compare(ev["baselines"]["raw"][key], measures_numpy(Xc, Xc, "identity"), "raw input, %s split" % split)
    rnd, raw = ev["baselines"]["random"]["measures"], ev["baselines"]["raw"]["measures"]
    check(rnd["random_regions"] == rnd["regions"] and raw["random_regions"] is None
          and isinstance(ev["measures"]["random_regions"], int)
          and 1 <= ev["measures"]["random_regions"] <= 3000,
          "random regions at the offsets b: the random baseline's own regions (%s = %s, offsets 0), "
          "null for the raw input, %s for the model"
          % (rnd["random_regions"], rnd["regions"], ev["measures"]["random_regions"]))
    wr = np.linalg.norm(W @ W.T - np.eye(K))
    check(abs(ev["measures"]["weight_redundancy"] - wr) < 1e-9 * wr,
          "weight redundancy %.12g = ||W W^T - I||_F %.12g" % (ev["measures"]["weight_redundancy"], wr))
    pca = ev["baselines"]["pca"]["measures"]
    lam = np.sort(np.linalg.eigvalsh(np.cov(Xtr, rowvar=False, bias=True)))[::-1][:K]
    p = lam / lam.sum()
    check(pca["max_abs_corr"] < 1e-10 and pca["weight_redundancy"] < 1e-12 and abs(pca["gaussian_tc"]) < 1e-10
          and abs(pca["effective_rank"] - np.exp(-(p * np.log(p)).sum())) < 1e-9,
          "pca baseline: uncorrelated (%.1e), orthonormal (%.1e), TC 0 (%.1e), effective rank of the top-K "
          "spectrum" % (pca["max_abs_corr"], pca["weight_redundancy"], pca["gaussian_tc"]))
    acc = {k: ev["baselines"][k]["probe"]["test_accuracy"] for k in ("raw", "pca", "random")}
    acc["model"] = ev["probe"]["test_accuracy"]
    check(acc["raw"] >= 0.95 and acc["pca"] >= 0.95 and acc["model"] >= 0.9,
          "probe test accuracy: model %.3f (>= 0.9), raw %.3f, pca %.3f (>= 0.95), random %.3f"
          % (acc["model"], acc["raw"], acc["pca"], acc["random"]))
    check(ev["probe"]["n_test"] == 1000 and ev["probe"]["classes"] == Cn and ev["probe"]["features"] == "activation",
          "probe: 1000 test rows, %d classes, features = activation (eval.features)" % Cn)
    # --out
    files = ("eval.json", "correlation.npy", "winners.npy", "eigenvalues.npy")
    ok = all(os.path.exists(os.path.join(evd, f)) for f in files)
    if ok:
        Rm = np.load(os.path.join(evd, "correlation.npy"))
        Z = (Xtr - mu) @ W.T + b
        ok = (Rm.shape == (K, K) and np.abs(Rm - np.corrcoef(softmax(-Z / 2.0), rowvar=False)).max() < 1e-9
              and np.load(os.path.join(evd, "winners.npy")).sum() == 3000
              and load_json(os.path.join(evd, "eval.json"))["measures"] == ev["measures"])
    check(ok, "--out writes %s (correlation = numpy's, winners sum to N)" % ", ".join(files))

# 3. The same evaluation on 1 and 3 ranks: identical numbers.
def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if k != "seconds"}
    return o


if ev:
    res = {}
    for P in (1, 3):
        c, o, e = run(["eval", rd], ranks=P, timeout=300)
        res[P] = strip(json.loads(o)) if c == 0 else None
    check(res[1] is not None and res[1] == res[3] == strip(ev),
          "eval on 1, 2 and 3 ranks: identical measures, probe and baselines")

# 3b. The supervised head: eval reads layer1_head_*.npy and scores it on both splits
# (the terms on z, the head on r = softmax(-z / 2)); not with --weights.
sup = write(os.path.join(d, "sup.yaml"), open(cfg).read().replace(
    "  preset: gaussian\n", "  preset: gaussian\n  on: z\n  supervised: 1.0\n"))
srd = os.path.join(d, "sup")
code, out, err = run(["train", sup, "--out", srd], ranks=2)
code2, out2, err2 = run(["eval", srd], ranks=2, timeout=300) if code == 0 else (1, "", err)
code3, out3, err3 = run(["eval", srd, "--weights", os.path.join(srd, "layer1_W.npy")], ranks=2,
                        timeout=300) if code == 0 else (1, "", err)
if code2 == 0 and code3 == 0:
    W = np.load(os.path.join(srd, "layer1_W.npy"))
    b = np.load(os.path.join(srd, "layer1_b.npy")).ravel()
    U = np.load(os.path.join(srd, "layer1_head_W.npy"))
    c = np.load(os.path.join(srd, "layer1_head_b.npy")).ravel()
    mu = Xtr.mean(axis=0)
    ref = [((softmax(-((X - mu) @ W.T + b) / 2.0) @ U.T + c).argmax(axis=1) == y).mean()
           for X, y in ((Xtr, ytr), (Xte, yte))]
    h = json.loads(out2).get("head", {})
    check(h.get("classes") == Cn and abs(h["train_accuracy"] - ref[0]) < 1e-12
          and abs(h["test_accuracy"] - ref[1]) < 1e-12 and ref[1] > 0.9
          and "head test accuracy" in err2 and "head" not in json.loads(out3),
          "supervised head: train accuracy %s, test accuracy %s (numpy %.4f, %.4f; > 0.9), in the "
          "table; not read with --weights" % (h.get("train_accuracy"), h.get("test_accuracy"), *ref))
else:
    check(False, "train/eval with a supervised head exit 0 (%s %s %s)"
          % (err.strip()[-200:], err2.strip()[-200:], err3.strip()[-200:]))

# 4. Synthetic ICA: the Amari distance.
ica = write(os.path.join(d, "ica.yaml"),
            "data:\n  source: synthetic-ica\n  samples: 4000\n  dim: 4\n  preprocess: center\n"
            "model:\n  units: 4\n  activation: identity\n"
            "objective:\n  preset: decorrelation\n  lambda: 10\n"
            "optimizer:\n  max_it: 40\n"
            "parallel:\n  block: 64\n")
ird = os.path.join(d, "ica")
code, out, err = run(["train", ica, "--out", ird], ranks=2)
code2, out2, err2 = run(["eval", ird, "--out", os.path.join(ird, "eval")], ranks=2)
if code == 0 and code2 == 0:
    W = np.load(os.path.join(ird, "layer1_W.npy"))
    A = np.load(os.path.join(ird, "truth_mixing.npy"))
    P = np.abs(W @ A)
    ref = ((P.sum(1) / P.max(1) - 1).sum() + (P.sum(0) / P.max(0) - 1).sum()) / (2 * 4 * 3)
    got = json.loads(out2)["measures"]["amari_distance"]
    check(abs(got - ref) < 1e-12, "synthetic ICA: Amari distance %.15g = numpy %.15g" % (got, ref))
else:
    check(False, "synthetic ICA train/eval exit 0 (%s %s)" % (err.strip()[-200:], err2.strip()[-200:]))

# 5. A test split with other columns is refused on every rank.
np.save(os.path.join(d, "bad.npy"), Xte[:, :5])
code, out, err = run(["eval", rd, "--set", "eval.test_path=" + os.path.join(d, "bad.npy"),
                      "--set", "eval.test_labels=", "--set", "eval.baselines=false"], ranks=2)
msg = [l for l in err.splitlines() if l.startswith("infomax: error")]
check(code == 5 and "has 5 columns but the train split has 16" in err,
      "test split with 5 columns: exit %d (5): %s" % (code, msg[0] if msg else err.strip()[-200:]))

# 6. Plots, headless.
PENV = dict(ENV, MPLBACKEND="Agg")
p = subprocess.run([sys.executable, PLOT, rd, "--side", "4"], capture_output=True, text=True, env=PENV, timeout=120)
pngs = ("training.png", "correlation.png", "winners.png", "spectrum.png", "probe.png", "prototypes.png")
made = [f for f in pngs if os.path.exists(os.path.join(rd, "plots", f))
        and open(os.path.join(rd, "plots", f), "rb").read(8) == b"\x89PNG\r\n\x1a\n"]
check(p.returncode == 0 and len(made) == len(pngs),
      "tools/plot_run.py writes %s (%s)" % (", ".join(made), (p.stderr or p.stdout).strip()[-200:]))

# What each picture says (its titles and texts, legend entries and the lines
# drawn, recorded as it is saved): the split and its rows; one legend entry
# per run; the softmax layer's structural zero eigenvalue named, not plotted.
spec = importlib.util.spec_from_file_location("plot_run", PLOT)
pr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pr)
drawn, savefig = {}, pr.plt.Figure.savefig


def record(fig, path, *a, **k):
    sup = getattr(fig, "_suptitle", None)
    texts = ([sup.get_text()] if sup else []) + [ax.get_title() for ax in fig.axes] + \
        [t.get_text() for ax in fig.axes for t in ax.texts]
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    lines = [np.asarray(ln.get_ydata(), dtype=float) for ax in fig.axes for ln in ax.lines]
    drawn[os.path.basename(path)] = ("\n".join(texts), legend, lines)
    return savefig(fig, path, *a, **k)


pr.plt.Figure.savefig = record
rc1 = pr.main(["plot_run.py", rd, "--side", "4", "--out", os.path.join(d, "one")])
one = dict(drawn)
drawn.clear()
rc2 = pr.main(["plot_run.py", rd, ird, "--out", os.path.join(d, "two")])
two = dict(drawn)
text = {k: v[0] for k, v in one.items()}
split = "the train split (xtr.npy), N=3000 rows"
bad = [f for f, want in (("training.png", "the train split, N=3000 rows"), ("correlation.png", split),
                         ("winners.png", split), ("spectrum.png", split),
                         ("probe.png", "train split N=3000, test split N=1000"),
                         ("prototypes.png", "all %d prototypes" % K)) if want not in text.get(f, "")]
check(rc1 == 0 and not bad, "each picture names its split and rows%s" % (": not in " + ", ".join(bad) if bad else ""))
eig = np.load(os.path.join(evd, "eigenvalues.npy")).ravel()
plotted = one.get("spectrum.png", ("", [], [np.zeros(0)]))[2][0]
zero = eig[np.argmin(np.abs(eig))]
check(plotted.size == K - 1 and plotted.min() > 1e3 * abs(zero) and "structural zero eigenvalue %.2g" % zero in text.get(
      "spectrum.png", ""), "spectrum.png: %d of %d eigenvalues on the log axis, smallest %.3g; the structural "
      "zero %.2g named instead" % (plotted.size, K, plotted.min() if plotted.size else 0, zero))
legends = {f: two.get(f, ("", [], []))[1] for f in ("training.png", "spectrum.png", "winners.png")}
ok = (rc2 == 0 and legends["training.png"] == ["run", "ica"]
      and [e.split(" ")[0] for e in legends["spectrum.png"]] == ["run", "ica"]
      and {"run", "ica"} <= set(legends["winners.png"])
      and "run: structural zero" in two["spectrum.png"][0] and "ica: structural" not in two["spectrum.png"][0]
      and len(two["spectrum.png"][2]) == 2 and two["spectrum.png"][2][1].size == 4)
check(ok, "two runs overlaid, one legend entry each: training %s, spectrum %s, winners %s"
      % (legends["training.png"], legends["spectrum.png"], legends["winners.png"]))

# The python3 first on PATH without numpy (a pyenv or venv one): plot_run runs
# itself again with one that has it, or says what to install.
bare = os.path.join(d, "bin")
os.makedirs(bare)
write(os.path.join(bare, "python3"), "#!/bin/sh\nexec /usr/bin/python3 -S \"$@\"\n")
os.chmod(os.path.join(bare, "python3"), 0o755)
p = subprocess.run([os.path.join(bare, "python3"), PLOT, rd, "--out", os.path.join(d, "reexec")], capture_output=True,
                   text=True, env=dict(PENV, PATH=bare + os.pathsep + PENV.get("PATH", "")), timeout=120)
check(p.returncode == 0 and "has no numpy: running with" in p.stderr
      and os.path.exists(os.path.join(d, "reexec", "training.png")),
      "a python3 without numpy first on PATH: plot_run runs itself with another (exit %d): %s"
      % (p.returncode, p.stderr.strip().splitlines()[0] if p.stderr.strip() else ""))
p = subprocess.run([os.path.join(bare, "python3"), PLOT, rd, "--out", os.path.join(d, "none")], capture_output=True,
                   text=True, env=dict(PENV, PLOT_RUN_PYTHON=os.path.join(bare, "python3")), timeout=120)
check(p.returncode == 2 and "needs numpy and matplotlib" in p.stderr and "Traceback" not in p.stderr,
      "no python3 with numpy: exit %d (2) and what to install: %s" % (p.returncode, p.stderr.strip()[-300:]))

finish()
