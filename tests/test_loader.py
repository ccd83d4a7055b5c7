"""test_loader: tools/infomax_model.py reproduces `infomax transform`.

For runs with each activation, whitened and standardized inputs (with
data.scale), a 3-layer stack with every feed and a supervised head: the
loader's transform of new rows equals what `infomax transform` writes to 1e-12
(relative to the largest magnitude) for z, activation and r, and exactly for
the winners; the model's arrays are the run's .npy files; a scikit-learn style
step (fit / transform) works; bad model files get clear errors."""
import os
import sys

import numpy as np

from clitest import ROOT, check, finish, run_many, tmpdir, write

sys.path.insert(0, os.path.join(ROOT, "tools"))
import infomax_model  # noqa: E402

d = tmpdir()
rng = np.random.default_rng(17)
N, n = 1500, 6
X = rng.laplace(size=(N, n)) @ (rng.normal(size=(n, n)) + 2 * np.eye(n)).T + 3.0
Y = (X[:, 0] > 3.0).astype(np.int32) + 2 * (X[:, 1] > 3.0).astype(np.int32)
Xnew = rng.laplace(size=(700, n)) * 2.0 + 3.0
np.save(os.path.join(d, "x.npy"), X)
np.save(os.path.join(d, "y.npy"), Y)
np.save(os.path.join(d, "new.npy"), Xnew)


def train(specs):
    """specs: (name, model, pre, scale); trains each on 2 ranks (two at a time)
    and returns their run directories."""
    calls = []
    for name, model, pre, scale in specs:
        cfg = write(os.path.join(d, name + ".yaml"),
                    "data:\n  source: npy\n  path: %s\n  labels: %s\n  preprocess: %s\n  scale: %r\n"
                    "model:\n%s"
                    "objective:\n  preset: gaussian\n  lambda: 0.1\n  eps: 1e-3\n"
                    "optimizer:\n  max_it: 8\n"
                    "parallel:\n  block: 64\n"
                    % (os.path.join(d, "x.npy"), os.path.join(d, "y.npy"), pre, scale, model))
        calls.append((["train", cfg, "--out", os.path.join(d, name)], 2))
    for (name, *_), (code, _, err) in zip(specs, run_many(calls)):
        check(code == 0, "%s: trained (exit %d) %s" % (name, code, err.strip()[-300:] if code else ""))
    return [os.path.join(d, name) for name, *_ in specs]


def compare(name, rdir, layer=None):
    m = infomax_model.load(rdir)
    FEATS = ("z", "activation", "r", "winner")
    outs = [os.path.join(d, "%s_%s_%s.npy" % (name, layer, feat)) for feat in FEATS]
    # one process each (test_transform covers 1..4 ranks), two at a time
    results = run_many([(["transform", rdir, "--data", os.path.join(d, "new.npy"), "--out", out, "--features", feat]
                         + (["--layer", str(layer)] if layer else []),) for feat, out in zip(FEATS, outs)])
    for feat, out, (code, _, err) in zip(FEATS, outs, results):
        if not check(code == 0, "%s layer %s %s: infomax transform (exit %d) %s"
                     % (name, layer, feat, code, err.strip()[-300:] if code else "")):
            continue
        c = np.load(out)
        p = m.transform(Xnew, layer=layer, features=feat)
        if feat == "winner":
            check(p.shape == c.reshape(p.shape).shape and np.array_equal(p, c.reshape(p.shape)),
                  "%s layer %s winner: loader = transform on all %d rows (%d differ)"
                  % (name, layer, len(p), int(np.sum(p != c.reshape(p.shape)))))
        else:
            err_ = np.max(np.abs(p - c)) / max(np.max(np.abs(c)), 1e-300)
            check(p.shape == c.shape and err_ <= 1e-12,
                  "%s layer %s %s: loader vs transform, max rel err %.2e (tol 1e-12)"
                  % (name, layer, feat, err_))


# 1. One layer of each activation; whitened, standardized (data.scale) and raw inputs.
ONE = [("softmax", "whiten", 1.0, ""),
       ("topk", "standardize", 0.5, "  topk: 3\n"),
       ("sparsemax", "center", 1.0, "  temperature: 0.5\n"),
       ("relu", "none", 0.25, ""),
       ("identity", "whiten", 1.0, "")]
rdirs = train([("one_" + act, "  units: %d\n  activation: %s\n%s" % (4 if act != "identity" else n, act, extra),
                pre, scale) for act, pre, scale, extra in ONE])
for (act, pre, scale, extra), rdir in zip(ONE, rdirs):
    name = "one_" + act
    compare(name, rdir)
    if act == "softmax":
        m = infomax_model.load(rdir)
        W, b = np.load(os.path.join(rdir, "layer1_W.npy")), np.load(os.path.join(rdir, "layer1_b.npy"))
        check(np.array_equal(m.layers[0].W, W) and np.array_equal(m.layers[0].b, b.ravel()),
              "model.h5's W and b are layer1_W.npy and layer1_b.npy bit for bit")
        check(m.preprocess.kind == "whiten" and m.preprocess.transform.shape == (n, n)
              and m.status == "finished" and "units: 4" in m.config,
              "model.h5 holds the preprocessing (%s), the status (%s) and the resolved config"
              % (m.preprocess.kind, m.status))
        # A scikit-learn style step: fit does nothing, transform applies the model.
        t = infomax_model.InfomaxTransformer(rdir, features="r")
        R = t.fit(Xnew).transform(Xnew)
        check(np.allclose(R.sum(axis=1), 1.0, rtol=0, atol=1e-12) and R.shape == (700, 4)
              and t.get_params()["features"] == "r",
              "InfomaxTransformer: fit/transform give responsibilities (rows sum to 1 within 1e-12)")

# 2. A stack: softmax feeding r, relu feeding z, topk with a supervised head.
stack = ("  units: 5\n  activation: softmax\n  feed: r\n  layers:\n    - {}\n"
         "    - {units: 4, activation: relu, feed: z}\n"
         "    - {units: 3, activation: topk, topk: 2, objective.eps: 1e-1, objective.supervised: 0.5}\n")
rdir, = train([("stack", stack, "standardize", 1.0)])
for L in (1, 2, 3):
    compare("stack", rdir, L)
m = infomax_model.load(rdir)
check(len(m.layers) == 3 and m.layers[2].head is not None and m.layers[2].head[0].shape == (4, 3),
      "the stack's model has 3 layers and layer 3's supervised head (4 classes x 3 units)")

# 3. Bad model files: a clear error, not a traceback from h5py.
for what, path, needle in [("a missing run directory", os.path.join(d, "nope"), "no model file"),
                           ("a file that is not a model", os.path.join(d, "x.npy"), "not an HDF5 file")]:
    try:
        infomax_model.load(path)
        check(False, "%s is refused" % what)
    except (OSError, ValueError) as e:
        check(needle in str(e), "%s is refused: %s" % (what, e))
try:
    m.transform(Xnew[:, :3])
    check(False, "rows of the wrong width are refused")
except ValueError as e:
    check("6 columns" in str(e), "rows of the wrong width are refused: %s" % e)

finish()
