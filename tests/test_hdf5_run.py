"""test_hdf5_run: training on HDF5 data (data.source: hdf5) end to end.

The same data from .npy and from .h5 (written by h5py) train to cmp-identical
layer1_W.npy and layer1_b.npy on 1..4 ranks: float64 contiguous, float64
chunked with gzip and shuffle, float32, and uint8 images as an N x 2 x 4 stack
with data.scale 1/255 (against the same values as float64 in a .npy file). A
test split in HDF5 beside .npy training data gives the same measures_test as
the same split in .npy, and `eval --data FILE.h5:/X` the same measures as
on the .npy data. Bad HDF5 inputs through the command line end with the
documented exit code and one message on 2 or 3 ranks, without hanging."""
import fcntl
import os
import shutil

import h5py
import numpy as np

from clitest import check, finish, load_json, run, run_many, tmpdir, write

d = tmpdir()
rng = np.random.default_rng(7)
N = 480
X = rng.laplace(size=(N, 8)) @ rng.standard_normal((8, 8))
y = rng.integers(0, 4, N).astype(np.int32)
img = rng.integers(0, 256, (N, 2, 4)).astype(np.uint8)
T, Ty = X[:160] * 0.5 + 0.1, y[:160]


def p(name):
    return os.path.join(d, name)


np.save(p("x.npy"), X)
np.save(p("y.npy"), y)
np.save(p("x4.npy"), X.astype("<f4"))
np.save(p("img.npy"), img.reshape(N, 8).astype(np.float64))
np.save(p("t.npy"), T)
np.save(p("ty.npy"), Ty)
with h5py.File(p("train.h5"), "w") as f:
    f["X"] = X
    f["y"] = y
    f.create_dataset("gz/X", data=X, chunks=(50, 8), compression="gzip", shuffle=True)
    f.create_dataset("X4", data=X.astype(np.float32), chunks=(64, 8))
    f.create_dataset("images", data=img, chunks=(100, 2, 4), compression="gzip")
    f["bad/nan"] = np.where(np.arange(N * 8).reshape(N, 8) == 301 * 8 + 5, np.nan, X)
with h5py.File(p("test.hdf5"), "w") as f:
    f["X"] = T
    f["labels"] = Ty.astype(np.uint8)
with h5py.File(p("small.h5"), "w") as f:
    f["X"] = X[:100]

BASE = "model:\n  units: 4\noptimizer:\n  max_it: 6\nparallel:\n  block: 16\n"


def cfg(name, source, path, labels="", extra=""):
    lab = "  labels: %s\n" % labels if labels else ""
    return write(p(name + ".yaml"), "data:\n  source: %s\n  path: %s\n%s%s%s"
                 % (source, path, lab, extra, BASE))


def train(config, out, ranks, *sets):
    args = ["train", config, "--out", p(out)]
    for s in sets:
        args += ["--set", s]
    return run(args, ranks=ranks, timeout=120)


def same(a, b):
    """The weight files of runs a and b are byte for byte the same."""
    for f in ("layer1_W.npy", "layer1_b.npy"):
        if not (os.path.exists(p(a + "/" + f)) and os.path.exists(p(b + "/" + f))):
            return False
        with open(p(a + "/" + f), "rb") as fa, open(p(b + "/" + f), "rb") as fb:
            if fa.read() != fb.read():
                return False
    return True


def ours(err):
    return " | ".join(l for l in err.splitlines() if l.startswith("infomax"))


def train_args(config, out, ranks, *sets):
    return (["train", config, "--out", p(out)] + sum((["--set", s] for s in sets), []), ranks, 120)


# Sections 1 and 2 train independently, two at a time (clitest.run_many).
h5 = cfg("h5", "hdf5", p("train.h5") + ":/X", p("train.h5") + ":/y")
scale = "data.scale=0.00392156862745098"
r = iter(run_many([train_args(cfg("npy", "npy", p("x.npy"), p("y.npy")), "npy", 1)]
                  + [train_args(h5, "h5_np%d" % P, P) for P in (1, 2, 3, 4)]
                  + [train_args(h5, "gz_np3", 3, "data.path=%s:gz/X" % p("train.h5")),
                     train_args(cfg("npy4", "npy", p("x4.npy")), "npy4", 1),
                     train_args(cfg("h54", "hdf5", p("train.h5") + ":/X4"), "h54_np2", 2),
                     train_args(cfg("npyimg", "npy", p("img.npy")), "npyimg", 1, scale),
                     train_args(cfg("h5img", "hdf5", p("train.h5") + ":/images"), "h5img_np4", 4, scale)]))
# 1. The same float64 data from .npy and .h5 (contiguous, and chunked with gzip).
code, _, err = next(r)
check(code == 0, "npy reference run: exit %d %s" % (code, ours(err)))
for P in (1, 2, 3, 4):
    code, _, err = next(r)
    check(code == 0 and same("npy", "h5_np%d" % P),
          "float64 .h5 on %d rank%s: exit %d, layer1_W.npy and layer1_b.npy cmp-identical to the "
          ".npy run's %s" % (P, "s" if P > 1 else "", code, ours(err)))
code, _, err = next(r)
check(code == 0 and same("npy", "gz_np3"),
      "float64 chunked + gzip + shuffle on 3 ranks: exit %d, cmp-identical %s" % (code, ours(err)))

# 2. float32, and uint8 images (N x 2 x 4 flattened to 8 columns) with data.scale.
code, _, _ = next(r)
code2, _, err = next(r)
check(code == 0 and code2 == 0 and same("npy4", "h54_np2"),
      "float32 chunked .h5 on 2 ranks vs '<f4' .npy: exits %d %d, cmp-identical %s"
      % (code, code2, ours(err)))
code, _, _ = next(r)
code2, _, err = next(r)
check(code == 0 and code2 == 0 and same("npyimg", "h5img_np4"),
      "uint8 N x 2 x 4 gzip'd images on 4 ranks vs the same values in a float64 .npy, "
      "data.scale 1/255: exits %d %d, cmp-identical %s" % (code, code2, ours(err)))

# 3. A test split in HDF5 beside .npy training data: the same measures_test.
ev = {}
SPLITS = (("npy", p("t.npy"), p("ty.npy")), ("h5", p("test.hdf5") + ":/X", p("test.hdf5") + ":/labels"))
evals = run_many([(["eval", p("npy"), "--set", "eval.test_path=" + tp, "--set", "eval.test_labels=" + tl], 2, 120)
                  for name, tp, tl in SPLITS]
                 + [(["eval", p("npy"), "--data", p("train.h5") + ":/X", "--set", "data.labels=%s:/y" % p("train.h5")],
                     3, 120)])
for (name, tp, tl), (code, out, err) in zip(SPLITS, evals):
    try:
        ev[name] = __import__("json").loads(out[out.index("{"):])
    except ValueError:
        ev[name] = {}
    check(code == 0 and "measures_test" in ev[name],
          "eval with a %s test split on 2 ranks: exit %d, measures_test present %s"
          % (name, code, ours(err)))
def untimed(probe):
    return {k: v for k, v in (probe or {}).items() if k != "seconds"}


check(ev["npy"].get("measures_test") == ev["h5"].get("measures_test")
      and untimed(ev["npy"].get("probe")) == untimed(ev["h5"].get("probe")),
      "measures_test and the probe's accuracies of the .hdf5 test split equal those of the .npy "
      "one (%d measures, test accuracy %s)" % (len(ev["npy"].get("measures_test", {})),
                                               ev["npy"].get("probe", {}).get("test_accuracy")))

# eval --data FILE.h5:/DATASET: the source follows the suffix; the same measures
# as on the run's own .npy data.
code, out, err = evals[2]
try:
    evd = __import__("json").loads(out[out.index("{"):])
except ValueError:
    evd = {}
check(code == 0 and evd.get("measures") == ev["npy"].get("measures") and evd.get("measures")
      and untimed(evd.get("probe")).get("train_accuracy") ==
      untimed(ev["npy"].get("probe")).get("train_accuracy"),
      "eval --data train.h5:/X on 3 ranks: exit %d, measures and probe train accuracy equal to "
      "those on x.npy %s" % (code, ours(err)))

# 4. Bad input through the command line: exit code, one message, no hang.
bad = [
    ("a missing file", 2, [p("none.h5") + ":/X"], 4, "none.h5: cannot open: No such file"),
    ("a missing dataset", 3, [p("train.h5") + ":/Z"], 5,
     "has no dataset /Z; / holds X (dataset 480 x 8 float64)"),
    ("a group", 2, [p("train.h5") + ":/gz"], 5, "/gz is a group, not a dataset; it holds X"),
    ("no dataset named, several at the root", 2, [p("train.h5")], 5,
     "more than one dataset at the file's root"),
    ("a path ending in ':'", 2, [p("train.h5") + ":"], 3, "nothing after ':'"),
    ("NaN", 3, [p("train.h5") + ":/bad/nan"], 5, "non-finite value nan at row 301, column 5"),
    ("labels of the wrong length", 2, [p("train.h5") + ":/X", p("test.hdf5") + ":/labels"], 5,
     "has 160 labels but data"),
    ("a .npy file named as HDF5", 2, [p("x.npy")], 5, "not an HDF5 file"),
    ("N < P blocks", 3, [p("small.h5")], 5, "N=100 rows make 2 blocks of B=64 but 3 ranks"),
]
bad_cfg = cfg("bad", "hdf5", p("x.h5"))
r = iter(run_many([train_args(bad_cfg, "bad_%d" % i, P, "data.path=" + paths[0], "parallel.block=64",
                              *(["data.labels=" + paths[1]] if len(paths) > 1 else []))
                   for i, (what, P, paths, want, needle) in enumerate(bad)]))
for i, (what, P, paths, want, needle) in enumerate(bad):
    out = "bad_%d" % i
    code, _, err = next(r)
    msgs = [l for l in err.splitlines() if l.startswith("infomax: error")]
    check(code == want and len(msgs) == 1 and needle in msgs[0] and not os.path.exists(p(out)),
          "%s on %d ranks: exit %d (want %d), one message: %s" % (what, P, code, want, ours(err)))

# 5 (regression). `config --check` leaves the objective's check against n to
# train for an HDF5 source as for the other files (it took data.dim = 8 for n
# and refused 16 identity units under log det).
chk = write(p("chk.yaml"), "data:\n  source: hdf5\n  path: %s:/X\nmodel:\n  units: 16\n"
            "objective:\n  preset: gaussian\n" % p("train.h5"))
code, out, err = run(["config", "--check", chk])
check(code == 0 and "checked when train reads" in out + err,
      "config --check of 16 identity units on an HDF5 source: exit %d (want 0) %s"
      % (code, (out + err).strip()[-160:]))

# 6. A file another program holds locked for writing (as h5py does while a
# file is open for writing): exit 4, and the message says what to do.
with open(p("train.h5"), "rb") as held:
    fcntl.flock(held, fcntl.LOCK_EX)
    code, _, err = train(h5, "locked", 2)
check(code == 4 and "HDF5_USE_FILE_LOCKING=FALSE" in err and not os.path.exists(p("locked")),
      "a file locked by a writer on 2 ranks: exit %d (want 4), the hint named: %s" % (code, ours(err)))

shutil.rmtree(d, ignore_errors=True)
finish()
