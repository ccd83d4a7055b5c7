"""test_extica: Extended Infomax (objective.extended_every, docs/objectives.md).

Four whitened sources, two uniform (sub-Gaussian) and two Laplace
(super-Gaussian), 5000 rows: the ica preset separates them only with the
switch (Amari distance < 0.05 with it, > 0.1 without); the switch and the
weights are the same bits on 1..4 ranks; a resume that retraces a switch, and
one that meets it after the checkpoint, end where the uninterrupted run ends,
bit for bit (also with optimizer.precondition: ica); eval's entropy term
uses the switched densities; the switch without an entropy term is a config
error."""
import json
import os

import numpy as np

from clitest import check, finish, run, run_many, tmpdir, write

d = tmpdir()
rng = np.random.default_rng(3)
N, n = 5000, 4
S = np.column_stack([rng.uniform(-np.sqrt(3), np.sqrt(3), N), rng.uniform(-np.sqrt(3), np.sqrt(3), N),
                     rng.laplace(0, 1 / np.sqrt(2), N), rng.laplace(0, 1 / np.sqrt(2), N)])
A = rng.standard_normal((n, n))
X = S @ A.T
X -= X.mean(0)
e, V = np.linalg.eigh(X.T @ X / N)
Wh = V @ np.diag(e ** -0.5) @ V.T
np.save(os.path.join(d, "x.npy"), X @ Wh.T)
MIX = Wh @ A  # whitened data = MIX @ sources
CFG = write(os.path.join(d, "c.yaml"), """data:
  source: npy
  path: %s
  preprocess: center
model:
  units: 4
  activation: identity
objective:
  preset: ica
optimizer:
  type: lmvm
  max_it: 200
  gatol: 1.0e-9
  grtol: 0
""" % os.path.join(d, "x.npy"))


def W(rd):
    return np.load(os.path.join(rd, "layer1_W.npy"))


def amari(rd):
    P = np.abs(W(rd) @ MIX)
    return ((P.sum(1) / P.max(1) - 1).sum() + (P.sum(0) / P.max(0) - 1).sum()) / (2 * n * (n - 1))


# 1. Separation: with the switch, without it.
res = {}
for every in (0, 10):
    rd = os.path.join(d, "sep%d" % every)
    c, out, err = run(["train", CFG, "--out", rd, "--set", "objective.extended_every=%d" % every])
    res[every] = (c, amari(rd) if c == 0 else float("nan"), out)
c0, a0, _ = res[0]
c1, a1, out1 = res[10]
ml = [json.loads(l) for l in open(os.path.join(d, "sep10", "metrics.jsonl"))] if c1 == 0 else []
check(c0 == c1 == 0 and a1 < 0.05 and a0 > 0.1 and "2 of 4 units sub-Gaussian" in out1
      and ml and ml[-1].get("sub_gaussian") == 2,
      "2 uniform + 2 Laplace sources, ica preset: Amari distance %.4f with objective.extended_every: "
      "10 (< 0.05), %.4f without (> 0.1)" % (a1, a0))

# 1b. eval judges the entropy with the densities the switch picks (2 units
# sub-Gaussian): its entropy term is the run's final one, not all-super-Gaussian's.
if c1 == 0:
    ce, oe, ee = run(["eval", os.path.join(d, "sep10")])
    fin = json.load(open(os.path.join(d, "sep10", "summary.json")))["final"]["terms"]["entropy"]
    got = json.loads(oe)["terms"]["entropy"] if ce == 0 else float("nan")
    check(ce == 0 and abs(got - fin) <= 1e-10 * abs(fin),
          "eval's entropy term %.12g = the run's final %.12g (rel tol 1e-10): the switched densities"
          % (got, fin))

    # transform applies such a model too (its forward layers have no switch).
    ct, _, et = run(["transform", os.path.join(d, "sep10"), "--data", os.path.join(d, "x.npy"),
                     "--out", os.path.join(d, "sep10.npy")])
    F = np.load(os.path.join(d, "sep10.npy")) if ct == 0 else None
    check(ct == 0 and F.shape == (N, n),
          "transform applies an Extended Infomax model (exit %d) %s" % (ct, et.strip()[-200:]))

# 2. The same bits on 1..4 ranks (switches at 0 and 5, restarts every 5).
X5 = ["--set", "objective.extended_every=5", "--set", "optimizer.gatol=0", "--set", "optimizer.max_it=30"]
Ws, codes = {}, []
runs = run_many([(["train", CFG, "--out", os.path.join(d, "p%d" % P)] + X5, P) for P in (1, 2, 3, 4)])
for P, (c, _, _) in zip((1, 2, 3, 4), runs):
    rd = os.path.join(d, "p%d" % P)
    codes.append(c)
    Ws[P] = W(rd) if c == 0 else None
check(all(c == 0 for c in codes) and all(Ws[P] is not None and (Ws[P] == Ws[1]).all() for P in Ws),
      "extended_every 5, 30 iterations: layer1_W.npy bitwise identical on 1, 2, 3, 4 ranks (exits %s)"
      % codes)

# 3. Exact resume across a switch: the checkpoint before the switch at
# iteration 5 (4) and after it (12), resumed on other rank counts to 30.
for pc in ("none", "ica"):
    opt = X5 + ["--set", "optimizer.precondition=" + pc, "--set", "output.checkpoint_every=4"]
    full = os.path.join(d, "full_" + pc)
    cf = run(["train", CFG, "--out", full] + opt, ranks=1)[0]
    for stop in (4, 12):
        part = os.path.join(d, "part_%s_%d" % (pc, stop))
        c2 = run(["train", CFG, "--out", part] + opt + ["--set", "optimizer.max_it=%d" % stop], ranks=2)[0]
        c3, out, err = run(["train", "--resume", part, "--set", "optimizer.max_it=30"], ranks=3)
        same = cf == c2 == c3 == 0 and (W(full) == W(part)).all()
        lines = open(os.path.join(part, "metrics.jsonl")).read().splitlines() if c3 == 0 else []
        check(same and "TAO state rebuilt" in out and len(lines) == 31,
              "precondition %s: 30 iterations on 1 rank == %d on 2 ranks + resume to 30 on 3 ranks "
              "(the switch at 5 %s), bit for bit, 31 metrics lines (exits %d %d %d) %s"
              % (pc, stop, "retraced" if stop > 5 else "after the resume", cf, c2, c3,
                 "" if same else err.strip()[-200:]))

# 4. The switch needs the entropy term.
c, out, err = run(["train", CFG, "--out", os.path.join(d, "bad"), "--set", "objective.preset=gaussian",
                   "--set", "objective.extended_every=5"], ranks=2)
msg = [l for l in err.splitlines() if l.startswith("infomax: error")]
check(c == 3 and "objective.extended_every = 5 switches the densities of the entropy term" in err,
      "extended_every without the entropy term: exit %d (3): %s" % (c, msg[0] if msg else err.strip()[-200:]))
finish()
