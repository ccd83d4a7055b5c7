"""test_kmeans: the k-means baselines of `infomax eval` (include/imx/baseline.h).

  - the centers (written by --out as kmeans_centers.npy) are bitwise
    identical on 1, 2, 3 and 4 ranks, and so is the kmeans JSON;
  - they equal an independent numpy Lloyd implementation with the same
    seeding (the K rows with the smallest imx_rng_bits keys of stream 12) to
    1e-12, with the same number of steps, inertia and s^2;
  - the soft column's winner counts are numpy's cluster sizes, the triangle
    column's largest |corr| is that of numpy's triangle features, and the
    probe runs on both;
  - data with repeated rows give empty clusters, which keep their seed
    (numpy does the same) and are reported;
  - K larger than the number of rows is refused on every rank (exit 5);
  - the gmm baseline (EM, diagonal covariances, from the k-means centers)
    equals a numpy EM from the same start to 1e-10, is bitwise identical on
    1..4 ranks (gmm_means.npy), and its winner counts are numpy's;
  - on gmm data (preprocess none) the prototype distances of eval.json are
    numpy's greedy matching of the centers with truth_means.npy.
"""
import json
import os

import numpy as np

from clitest import check, finish, run, run_many, tmpdir, write

d = tmpdir()
M = (1 << 64) - 1


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def rng_bits(seed, stream, index):
    h = mix((seed + 0x9E3779B97F4A7C15) & M)
    h = mix(h ^ ((stream + 0x632BE59BD9B4E019) & M))
    return mix(h ^ ((index * 0x9E3779B97F4A7C15 + 0xD1B54A32D192ED03) & M))


def lloyd(X, K, seed, max_it=100):
    """Lloyd's algorithm as the header describes it, written independently."""
    N = len(X)
    rows = sorted(range(N), key=lambda i: (rng_bits(seed, 12, i), i))[:K]
    C = X[rows].copy()
    a, it = None, 0
    while True:
        G = 0.5 * (C * C).sum(axis=1) - X @ C.T
        na = G.argmin(axis=1)
        d2 = ((X - C[na]) ** 2).sum(axis=1)
        conv = a is not None and (na == a).all()
        a = na
        if conv or it == max_it:
            break
        for k in range(K):
            if (a == k).any():
                C[k] = X[a == k].mean(axis=0)
        it += 1
    return dict(C=C, rows=rows, it=it, conv=bool(conv), a=a, inertia=d2.mean(),
                empty=int(K - len(np.unique(a))))


def em(X, C, s2, steps=20, floor=1e-3):
    """EM for a diagonal Gaussian mixture as the header describes it."""
    N, n = X.shape
    K = len(C)
    mu, v, pi = C.copy(), np.full((K, n), s2), np.full(K, 1.0 / K)

    def logp(X):
        return (np.log(pi) - 0.5 * (np.log(2 * np.pi * v) + mu ** 2 / v).sum(axis=1)
                - 0.5 * (X ** 2) @ (1 / v).T + X @ (mu / v).T)

    for _ in range(steps):
        L = logp(X)
        R = np.exp(L - L.max(axis=1, keepdims=True))
        R /= R.sum(axis=1, keepdims=True)
        Nk = R.sum(axis=0)
        pi = Nk / N
        mu = (R.T @ X) / Nk[:, None]
        v = np.maximum((R.T @ X ** 2) / Nk[:, None] - mu ** 2, 0) + floor * s2
    return mu, logp(X).argmax(axis=1)


def evaluate(cfg, W, ranks, out, extra=()):
    wp = os.path.join(d, "W%d.npy" % len(W))
    np.save(wp, W)
    return run(["eval", cfg, "--weights", wp, "--out", out, *extra], ranks=ranks, timeout=300)


# 1. Three components in n = 5, N = 900 rows, K = 7 (block 32: many blocks).
rng = np.random.default_rng(5)
n, K, seed = 5, 7, 9
X = np.concatenate([rng.normal(size=(300, n)) + 4 * rng.normal(size=n) for _ in range(3)])
y = np.repeat(np.arange(3), 300)
np.save(os.path.join(d, "x.npy"), X)
np.save(os.path.join(d, "y.npy"), y.astype(np.int32))
cfg = write(os.path.join(d, "k.yaml"),
            "data:\n  source: npy\n  path: %s\n  labels: %s\n  preprocess: none\n"
            "model:\n  units: %d\n  activation: softmax\n  seed: %d\n"
            "parallel:\n  block: 32\neval:\n  baselines: true\n  probe_max_it: 50\n"
            % (os.path.join(d, "x.npy"), os.path.join(d, "y.npy"), K, seed))
W = rng.normal(size=(K, n))
res = {}
wp = os.path.join(d, "W%d.npy" % len(W))
np.save(wp, W)
evals = run_many([(["eval", cfg, "--weights", wp, "--out", os.path.join(d, "e%d" % P)], P, 300) for P in (1, 2, 3, 4)])
for P, (code, out, err) in zip((1, 2, 3, 4), evals):
    check(code == 0, "eval with the k-means baselines on %d rank%s exits 0" % (P, "s" * (P > 1))
          + ("" if code == 0 else ": " + err.strip()[-300:]))
    if code == 0:
        res[P] = (json.loads(out)["baselines"],
                  open(os.path.join(d, "e%d" % P, "kmeans_centers.npy"), "rb").read()
                  + open(os.path.join(d, "e%d" % P, "gmm_means.npy"), "rb").read())
if len(res) == 4:
    same = all(res[P][1] == res[1][1] and res[P][0]["kmeans"]["kmeans"] == res[1][0]["kmeans"]["kmeans"]
               for P in (2, 3, 4))
    check(same, "k-means centers and gmm means bitwise identical on 1..4 ranks (kmeans_centers.npy, "
          "gmm_means.npy, inertia, s2, seeds)")
    bl = res[1][0]
    km = bl["kmeans"]["kmeans"]
    C = np.load(os.path.join(d, "e1", "kmeans_centers.npy"))
    ref = lloyd(X, K, seed)
    err = np.abs(C - ref["C"]).max()
    check(km["seed_rows"] == ref["rows"] and km["iterations"] == ref["it"] and km["converged"] == ref["conv"]
          and err <= 1e-12 and abs(km["inertia"] - ref["inertia"]) <= 1e-12 * ref["inertia"]
          and km["s2"] == km["inertia"],
          "k-means = numpy Lloyd with the same seeds: %d steps (numpy %d), converged %s, max |C - C_np| = %.1e, "
          "inertia %.12g (numpy %.12g)" % (km["iterations"], ref["it"], km["converged"], err, km["inertia"],
                                           ref["inertia"]))
    sizes = np.bincount(ref["a"], minlength=K)
    check(bl["kmeans"]["measures"]["winner_counts"] == sizes.tolist() and bl["kmeans"]["activation"] == "softmax",
          "soft assignments: winner counts %s = numpy's cluster sizes" % bl["kmeans"]["measures"]["winner_counts"])
    D = np.sqrt(((X[:, None, :] - C[None]) ** 2).sum(axis=2))
    T = np.maximum(0, D.mean(axis=1, keepdims=True) - D)
    R = np.corrcoef(T, rowvar=False)
    mc = np.abs(R[np.triu_indices(K, 1)]).max()
    tri = bl["kmeans-triangle"]
    check(abs(tri["measures"]["max_abs_corr"] - mc) < 1e-9 and tri["activation"] == "relu",
          "triangle features: max |corr| %.12g = numpy's %.12g" % (tri["measures"]["max_abs_corr"], mc))
    acc = [bl[k]["probe"]["train_accuracy"] for k in ("kmeans", "kmeans-triangle", "gmm")]
    check(min(acc) >= 0.9, "the probe on k-means and gmm features: train accuracy soft %.3f, triangle %.3f, "
          "gmm %.3f (>= 0.9)" % tuple(acc))
    mu, win = em(X, C, km["s2"] / n)
    Mg = np.load(os.path.join(d, "e1", "gmm_means.npy"))
    gerr = np.abs(Mg - mu).max()
    gm = bl["gmm"]
    check(gerr <= 1e-10 and gm["gmm"]["iterations"] == 20 and gm["activation"] == "softmax"
          and gm["measures"]["winner_counts"] == np.bincount(win, minlength=K).tolist(),
          "gmm = numpy EM from the k-means centers: max |mu - mu_np| = %.1e, winner counts %s"
          % (gerr, gm["measures"]["winner_counts"]))

# 2. Repeated rows: 3 distinct points, 40 rows, K = 8: empty clusters keep their seed
# (objective.eps: the random layer's terms on such data need it).
Xr = np.repeat(np.array([[0.0, 1.0], [2.0, -1.0], [5.0, 5.0]]), [20, 12, 8], axis=0)
np.save(os.path.join(d, "xr.npy"), Xr)
cfr = write(os.path.join(d, "r.yaml"),
            "data:\n  source: npy\n  path: %s\n  preprocess: none\nmodel:\n  units: 8\n  activation: softmax\n"
            "  seed: 1\nobjective:\n  eps: 1.0e-3\nparallel:\n  block: 4\neval:\n  baselines: true\n" % os.path.join(d, "xr.npy"))
ref = lloyd(Xr, 8, 1)
for P in (1, 3):
    code, out, err = evaluate(cfr, rng.normal(size=(8, 2)), P, os.path.join(d, "r%d" % P))
    km = json.loads(out)["baselines"]["kmeans"]["kmeans"] if code == 0 else {}
    C = np.load(os.path.join(d, "r%d" % P, "kmeans_centers.npy")) if code == 0 else None
    check(code == 0 and km["empty_clusters"] == ref["empty"] >= 5 and np.array_equal(C, ref["C"])
          and km["inertia"] == 0 and km["s2"] == 0,
          "repeated rows on %d rank%s: %s empty clusters (numpy %d) keep their seed, inertia 0, s2 0%s"
          % (P, "s" * (P > 1), km.get("empty_clusters"), ref["empty"], "" if code == 0 else ": " + err[-300:]))

# 3. K > N is refused on every rank.
np.save(os.path.join(d, "xs.npy"), Xr[:5])
cfs = write(os.path.join(d, "s.yaml"), open(cfr).read().replace("xr.npy", "xs.npy").replace("block: 4", "block: 2"))
code, out, err = evaluate(cfs, rng.normal(size=(8, 2)), 2, os.path.join(d, "s"))
check(code == 5 and "K = 8 centers but only 5 rows" in err, "K = 8 > N = 5: exit %d (5), %s" % (code, err.strip()[-120:]))

# 4. gmm data: the prototype distances against the true means.
g = write(os.path.join(d, "g.yaml"),
          "data:\n  source: gmm\n  dim: 6\n  components: 4\n  samples: 1500\n  separation: 6\n"
          "  preprocess: none\nmodel:\n  units: 4\n  activation: softmax\n  seed: 2\n"
          "optimizer:\n  max_it: 5\nparallel:\n  block: 64\neval:\n  baselines: true\n  probe: false\n")
rd = os.path.join(d, "grun")
code, out, err = run(["train", g, "--out", rd], ranks=2, timeout=300)
if code == 0:
    code, out, err = run(["eval", rd, "--out", os.path.join(rd, "ev")], ranks=2, timeout=300)
ok = code == 0
if ok:
    ev = json.loads(out)
    T = np.load(os.path.join(rd, "truth_means.npy"))
    C = np.load(os.path.join(rd, "ev", "kmeans_centers.npy"))
    Dm = np.sqrt(((C[:, None, :] - T[None]) ** 2).sum(axis=2))
    dist = []
    while np.isfinite(Dm).any():
        k, c = np.unravel_index(np.argmin(Dm), Dm.shape)
        dist.append(Dm[k, c])
        Dm[k, :], Dm[:, c] = np.inf, np.inf
    pk = ev["baselines"]["kmeans"]["prototypes"]
    sep = np.mean([np.linalg.norm(T[i] - T[j]) for i in range(4) for j in range(i + 1, 4)])
    ok = (pk["matched"] == 4 and abs(pk["mean_distance"] - np.mean(dist)) < 1e-12
          and abs(pk["max_distance"] - max(dist)) < 1e-12 and abs(pk["mean_separation"] - sep) < 1e-12
          and pk["compared"] == "centers" and ev["prototypes"]["compared"] == "winner means"
          and ev["baselines"]["gmm"]["prototypes"]["compared"] == "means"
          and "prototypes" not in ev["baselines"]["raw"] and "prototypes" not in ev["baselines"]["kmeans-triangle"])
    check(ok, "gmm: k-means centers %.3g from the true means on average (numpy %.3g, separation %.3g), "
          "gmm means %.3g, the model's winner means %.3g"
          % (pk["mean_distance"], np.mean(dist), sep, ev["baselines"]["gmm"]["prototypes"]["mean_distance"],
             ev["prototypes"]["mean_distance"]))
else:
    check(False, "gmm train and eval exit 0: " + err.strip()[-300:])
finish()
