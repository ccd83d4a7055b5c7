"""test_transform: model.h5 and `infomax transform` end to end.

On a small Gaussian mixture (.npy, labels as .npy vectors) a 2-layer stack is
trained (layer 1: whitened inputs, softmax units with a supervised head,
feeding r = softmax(-z/tau); layer 2: relu units). Then:
  - RUN/model.h5 has the agreed layout: the root attributes, the preprocessing
    of the train split (whiten), each layer's W and b equal to layerL_W.npy
    and layerL_b.npy bit for bit, the head equal to layer1_head_*.npy;
  - `transform` on 1, 2, 3 and 4 ranks writes byte-identical .npy files, and
    .h5 files with the same datasets (their bytes: tests/test_rowsout.c), and
    an HDF5 input FILE.h5:/DATASET the same as the .npy one;
  - they are bit for bit the features `eval --out` writes to features.h5 for
    the train and the test split (layer 2's activation; layer 1's z with
    --layer 1), and probe.h5 with features.h5 reproduces eval's test accuracy;
  - z, r and winner agree with numpy applied to model.h5 (1e-12);
  - bad inputs get their exit code and message on every rank, and leave no
    output file: no model.h5, a file that is not a model, a newer
    format_version, data of another width, --layer beyond the model, an
    existing output (replaced only with --force), an unknown --features or
    output suffix, --labels with a .npy output.
"""
import glob
import os
import shutil

import h5py
import numpy as np

from clitest import check, finish, run, run_many, tmpdir, write

d = tmpdir()
rng = np.random.default_rng(7)
n, C = 10, 4
means = rng.normal(0, 3, (C, n))


def mixture(N):
    y = rng.integers(0, C, N).astype(np.int32)
    X = means[y] + rng.normal(0, 1, (N, n)) @ rng.normal(0, 0.3, (n, n)) + rng.normal(0, 1, (N, n))
    return X, y


X, y = mixture(1200)
Xt, yt = mixture(500)
for name, a in [("X", X), ("y", y), ("Xt", Xt), ("yt", yt), ("Xw", np.hstack([Xt, Xt[:, :1]]))]:
    np.save(os.path.join(d, name + ".npy"), a)
p = lambda name: os.path.join(d, name)  # noqa: E731

cfg = write(p("stack.yaml"), """data:
  source: npy
  path: %s
  labels: %s
  preprocess: whiten
model:
  units: 8
  activation: softmax
  temperature: 0.7
  layers:
    - {feed: r}
    - {units: 6, activation: relu, objective.supervised: 0}
objective:
  preset: gaussian
  supervised: 0.5
optimizer:
  max_it: 15
parallel:
  block: 64
eval:
  test_path: %s
  test_labels: %s
""" % (p("X.npy"), p("y.npy"), p("Xt.npy"), p("yt.npy")))
rd = p("run")
code, out, err = run(["train", cfg, "--out", rd], ranks=2)
if not check(code == 0, "train a 2-layer stack (exit %d) %s" % (code, err[-300:])):
    finish()

# 1. The layout.
with h5py.File(os.path.join(rd, "model.h5"), "r") as f:
    a = dict(f.attrs)
    check(a.get("format") == "infomax-model" and a.get("format_version") == 1
          and a.get("status") == "finished" and a.get("layers") == 2 and a.get("inputs") == n
          and "layers:" in a.get("config", ""),
          "model.h5 root attributes: %s" % {k: v for k, v in a.items() if k != "config"})
    pre = f["preprocess"]
    check(pre.attrs["kind"] == "whiten" and pre["mean"].shape == (n,)
          and pre["transform"].shape == (n, n) and pre.attrs["scale"] == 1.0,
          "model.h5 /preprocess: whiten, mean (n,), transform (n, n), scale 1")
    same = []
    for L in (1, 2):
        g = f["layer%d" % L]
        same.append(np.array_equal(g["W"][:], np.load(os.path.join(rd, "layer%d_W.npy" % L))))
        same.append(np.array_equal(g["b"][:], np.load(os.path.join(rd, "layer%d_b.npy" % L)).ravel()))
    check(all(same), "model.h5 W and b of both layers = layerL_W.npy, layerL_b.npy bit for bit")
    g1, g2 = f["layer1"], f["layer2"]
    check(g1.attrs["feed"] == "r" and g1.attrs["activation"] == "softmax"
          and g1.attrs["temperature"] == 0.7 and g2.attrs["activation"] == "relu"
          and g2.attrs["inputs"] == 8 and g2.attrs["units"] == 6,
          "model.h5 layer attributes (feed r, softmax tau 0.7; relu 6 x 8)")
    check("head" in g1 and "head" not in g2
          and np.array_equal(g1["head/U"][:], np.load(os.path.join(rd, "layer1_head_W.npy")))
          and np.array_equal(g1["head/c"][:], np.load(os.path.join(rd, "layer1_head_b.npy")).ravel())
          and g1["head"].attrs["classes"] == C,
          "model.h5 layer1/head U, c = layer1_head_W.npy, layer1_head_b.npy (layer 2 has none)")
    tau2 = g2.attrs["temperature"]  # layer 2 inherits model.temperature 0.7
    M = {k: f[k][:] for k in ("preprocess/mean", "preprocess/transform", "layer1/W", "layer1/b",
                              "layer2/W", "layer2/b")}
left = [x for x in os.listdir(rd) if x.endswith(".tmp")]
check(not left, "no temporary files left in the run directory %s" % left)


# 2. Transform on 1..4 ranks, against eval's features.
def transform(args, ranks):
    return run(["transform", rd] + args, ranks=ranks)


def outputs(specs):
    """specs: (name, args, rank counts); transform with each on each rank count
    (independent runs, two at a time: clitest.run_many), one .npy each; checks
    they are byte-identical across the rank counts; returns the arrays."""
    todo = [(name, args, P, p("%s_np%d.npy" % (name, P))) for name, args, ranks_list in specs for P in ranks_list]
    results = iter(run_many([(["transform", rd] + args + ["--out", path], P) for name, args, P, path in todo]))
    arrays = []
    for name, args, ranks_list in specs:
        files = []
        for P in ranks_list:
            code, _, err = next(results)
            path = p("%s_np%d.npy" % (name, P))
            check(code == 0, "transform %s on %d ranks (exit %d) %s" % (" ".join(args[-2:]), P, code, err[-200:]))
            files.append(path)
        raw = [open(x, "rb").read() for x in files if os.path.exists(x)]
        check(len(raw) == len(files) and all(r == raw[0] for r in raw),
              "%s: byte-identical .npy on %s ranks" % (name, list(ranks_list)))
        arrays.append(np.load(files[0]))
    return arrays


(code, _, err), (code1, _, err1) = run_many([
    (["eval", rd, "--set", "eval.layer=2", "--out", p("ev2")], 2),
    (["eval", rd, "--set", "eval.layer=1", "--set", "eval.features=z", "--out", p("ev1")], 3)])
check(code == 0, "eval layer 2 --out (exit %d) %s" % (code, err[-300:]))
check(code1 == 0, "eval layer 1, features z --out (exit %d) %s" % (code1, err1[-300:]))

act_tr, act_te, z1_te = outputs([("act_train", ["--data", p("X.npy")], (1, 2, 3, 4)),
                                 ("act_test", ["--data", p("Xt.npy")], (1, 3)),
                                 ("z1_test", ["--data", p("Xt.npy"), "--layer", "1", "--features", "z"], (1, 4))])
with h5py.File(p("ev2/features.h5"), "r") as f:
    check(np.array_equal(f["train"][:], act_tr) and np.array_equal(f["test"][:], act_te)
          and np.array_equal(f["test_labels"][:], yt) and np.array_equal(f["train_labels"][:], y),
          "transform's activation of layer 2 = eval's features.h5 train and test, bit for bit")
    F, labels = f["test"][:], f["test_labels"][:]
with h5py.File(p("ev1/features.h5"), "r") as f:
    check(np.array_equal(f["test"][:], z1_te), "transform --layer 1 --features z = eval's (eval.features z)")
with h5py.File(p("ev2/probe.h5"), "r") as f:
    pr = {k: f[k][:] for k in ("mean", "scale", "V", "c")}
ev = __import__("json").load(open(p("ev2/eval.json")))
logits = ((F - pr["mean"]) * pr["scale"]) @ pr["V"].T + pr["c"]
acc = float((logits.argmax(axis=1) == labels).mean())
check(abs(acc - ev["probe"]["test_accuracy"]) < 1e-12,
      "probe.h5 on features.h5 gives eval's test accuracy (%.4f vs %.4f)" % (acc, ev["probe"]["test_accuracy"]))

# .h5 output with labels: the same datasets on 1 and 3 ranks.
h5 = []
res = run_many([(["transform", rd, "--data", p("Xt.npy"), "--labels", p("yt.npy"), "--out", p("act_np%d.h5" % P)], P)
                for P in (1, 3)])
for P, (code, _, err) in zip((1, 3), res):
    path = p("act_np%d.h5" % P)
    check(code == 0, "transform to .h5 with labels on %d ranks (exit %d) %s" % (P, code, err[-200:]))
    if code == 0:
        with h5py.File(path, "r") as f:
            h5.append((f["features"][:], f["labels"][:]))
check(len(h5) == 2 and all(np.array_equal(h[0], act_te) and np.array_equal(h[1], yt) for h in h5),
      ".h5 datasets features (= the .npy's) and labels, the same on 1 and 3 ranks")

# HDF5 input (data.source hdf5, FILE.h5:/DATASET) gives the bits of the .npy input.
if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "data", "hdf5.c")):
    with h5py.File(p("test.h5"), "w") as f:
        f["test/x"], f["test/y"] = Xt, yt
    code, _, err = transform(["--data", p("test.h5") + ":/test/x", "--labels", p("test.h5") + ":/test/y",
                              "--out", p("from_h5.h5")], 3)
    ok = code == 0
    if ok:
        with h5py.File(p("from_h5.h5"), "r") as f:
            ok = np.array_equal(f["features"][:], act_te) and np.array_equal(f["labels"][:], yt)
    check(ok, "HDF5 input on 3 ranks = the .npy input, bit for bit (exit %d) %s" % (code, err[-200:]))
else:
    print("SKIPPED: HDF5 input (no src/data/hdf5.c in this tree)")

# 3. z, r, winner against numpy on model.h5.
def softmax_neg(Z, tau):
    E = np.exp(-(Z - Z.min(axis=1, keepdims=True)) / tau)
    return E / E.sum(axis=1, keepdims=True)


U = (Xt - M["preprocess/mean"]) @ M["preprocess/transform"]
z1 = U @ M["layer1/W"].T + M["layer1/b"]
z2 = softmax_neg(z1, 0.7) @ M["layer2/W"].T + M["layer2/b"]
z2_te, r2_te, w2_te = outputs([("z2_test", ["--data", p("Xt.npy"), "--features", "z"], (2,)),
                               ("r2_test", ["--data", p("Xt.npy"), "--features", "r"], (3,)),
                               ("w2_test", ["--data", p("Xt.npy"), "--features", "winner"], (1, 4))])
err_z1 = np.abs(z1_te - z1).max() / np.abs(z1).max()
err_z2 = np.abs(z2_te - z2).max() / np.abs(z2).max()
err_a2 = np.abs(act_te - np.maximum(z2, 0)).max() / np.abs(z2).max()
err_r2 = np.abs(r2_te - softmax_neg(z2, tau2)).max()
tol = 1e-12
check(err_z1 < tol and err_z2 < tol and err_a2 < tol and err_r2 < tol,
      "numpy on model.h5: layer 1 z %.1e, layer 2 z %.1e, relu %.1e, r %.1e (tol %g)"
      % (err_z1, err_z2, err_a2, err_r2, tol))
check(w2_te.dtype == np.int32 and w2_te.shape == (len(Xt),) and np.array_equal(w2_te, act_te.argmin(axis=1)),
      "winner: int32 (N,), the smallest relu activation of each row (lowest index on ties)")

# 4. Bad inputs: exit code and message on every rank, no output file left.
empty = p("empty")
os.mkdir(empty)
notmodel = p("notmodel")
os.mkdir(notmodel)
shutil.copy(p("ev2/features.h5"), os.path.join(notmodel, "model.h5"))
newer = p("newer")
os.mkdir(newer)
shutil.copy(os.path.join(rd, "model.h5"), os.path.join(newer, "model.h5"))
with h5py.File(os.path.join(newer, "model.h5"), "r+") as f:
    f.attrs["format_version"] = np.int32(2)
existing = write(p("exists.npy"), "keep me")
cases = [
    ("no model.h5", [empty, "--data", p("Xt.npy")], 4, "model.h5"),
    ("not a model", [notmodel, "--data", p("Xt.npy")], 5, "is not an infomax model"),
    ("a newer format_version", [newer, "--data", p("Xt.npy")], 5, "newer than this infomax"),
    ("data of another width", [rd, "--data", p("Xw.npy")], 5, "has 11 columns, but the model takes rows of 10"),
    ("--layer 3 of 2", [rd, "--data", p("Xt.npy"), "--layer", "3"], 2, "has 2 layers"),
    ("--features bad", [rd, "--data", p("Xt.npy"), "--features", "bad"], 2, "expected z, activation"),
    ("--labels with .npy", [rd, "--data", p("Xt.npy"), "--labels", p("yt.npy")], 2, "a .npy file holds one array"),
]
# (independent runs, two at a time; each case's leftovers are looked for once all have ended)
res = iter(run_many([(["transform"] + args + ["--out", p("bad%d.npy" % i)], 2, 60) for i, (what, args, want, msg)
                     in enumerate(cases)]
                    + [(["transform", rd, "--data", p("Xt.npy"), "--out", p("out.txt")], 2),
                       (["transform", rd, "--data", p("Xt.npy"), "--out", existing], 2)]))
for i, (what, args, want, msg) in enumerate(cases):
    code, o, e = next(res)
    leftovers = [x for x in os.listdir(d) if x.startswith("bad%d" % i)]
    check(code == want and msg in e and not leftovers,
          "%s: exit %d (want %d), message %r, no output file %s" % (what, code, want, msg, leftovers)
          + ("" if msg in e else ": " + e.strip()[-300:]))
code, o, e = next(res)
check(code == 2 and ".npy, .h5 or .hdf5" in e, "--out out.txt: exit %d (want 2)" % code)
code, o, e = next(res)
check(code == 2 and "exists" in e and "--force" in e and open(existing).read() == "keep me",
      "an existing output is refused (exit %d, want 2) and kept" % code)
code, o, e = run(["transform", rd, "--data", p("Xt.npy"), "--out", existing, "--force"], ranks=2)
check(code == 0 and np.array_equal(np.load(existing), act_te), "--force replaces it (exit %d)" % code)
tmp = glob.glob(os.path.join(d, "*.tmp*")) + glob.glob(os.path.join(d, ".*tmp*"))
check(not tmp, "no temporary files left beside the outputs %s" % tmp)
code, o, e = run(["transform", "--help"])
check(code == 0 and "--features" in o and "Exit codes" in o, "transform --help")

shutil.rmtree(d, ignore_errors=True)
finish()
