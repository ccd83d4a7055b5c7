#!/usr/bin/python3
"""The approximation-quality study (docs/study-approximation.md).

Synthetic ICA: n independent unit-variance Laplace sources, mixed by a random
well-conditioned matrix A = Q1 diag(s) Q2 (s log-spaced in [1, 3], as the
program's synthetic-ica generator). Every preset is trained with K = n on the
whitened data with `infomax train` (mpiexec -n RANKS), and scikit-learn's
FastICA (logcosh, parallel, unit-variance whitening) runs on the same .npy
in the same run as the outside reference.

Per run: the Amari distance of the total unmixing (W times the whitening,
against A), the total correlation of the outputs (sum of Vasicek marginal
entropies minus the joint entropy H(s) + log|det(W_tot A)|, with the same
m-spacing estimator on y and on the true sources s),
the Gaussian TC (-1/2 log det of the output correlation matrix), iterations
and wall time (the whole infomax process including loading and whitening;
FastICA's fit, which also whitens).

One command writes the table:
  bench/study_approximation.py                      # every size (hours on 2 cores)
  bench/study_approximation.py --sizes 8:20000,16:100000 --presets ica,gaussian
Outputs: OUT.csv (one row per run, appended as runs finish) and OUT.md (the table).
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Per-preset settings: the objective block and optimizer limits.
PRESETS = {
    "gaussian": {"objective": {"preset": "gaussian"}},
    "gaussian-tc": {"objective": {"preset": "gaussian-tc"}},
    "decorrelation": {"objective": {"preset": "decorrelation", "lambda": 10.0}},
    # ica with the ICA preconditioner of L-BFGS (docs/objectives.md).
    "ica": {"objective": {"preset": "ica"}, "optimizer": {"precondition": "ica"}},
    # The same without it (plain L-BFGS, the program's default).
    "ica-plain": {"objective": {"preset": "ica"}, "optimizer": {"precondition": "none"}},
    # Extended Infomax: every 10 iterations each unit picks the super- or
    # sub-Gaussian density (plain L-BFGS restarted at each switch).
    "ica-ext": {"objective": {"preset": "ica", "extended_every": 10}},
    "ica-ext-pre": {"objective": {"preset": "ica", "extended_every": 10},
                    "optimizer": {"precondition": "ica"}},
    # hsic from the default random start in three stages (docs/study-approximation.md
    # "hsic: what makes it work") in one run (optimizer.stages), each from the
    # previous stage's weights: a narrow kernel (0.5 x the median heuristic) for
    # up to 1000 iterations (gatol 1e-9), then the default bandwidth, then the
    # default bandwidth with new random features (objective.hsic_seed_offset 1).
    # Iterations and evaluations sum the stages.
    "hsic": {"objective": {"preset": "hsic", "lambda": 1.0, "hsic_features": 8}, "max_it": 300,
             "optimizer_stages": [{"objective.hsic_bandwidth": 0.5, "optimizer.max_it": 1000,
                                   "optimizer.gatol": 1e-9}, {},
                                  {"objective.hsic_seed_offset": 1}]},
    # The same as three runs, each started by model.init from the previous one's
    # layer1_W.npy (the former form of the row; model.init restarts the biases
    # at 0, the staged run keeps them, so the weights differ by rounding).
    "hsic-chained": {"stages": [{"objective": {"preset": "hsic", "lambda": 1.0, "hsic_features": 8,
                                               "hsic_bandwidth": 0.5}, "max_it": 1000, "gatol": 1e-9},
                                {"objective": {"preset": "hsic", "lambda": 1.0, "hsic_features": 8},
                                 "max_it": 300}],
                     "objective": {"preset": "hsic", "lambda": 1.0, "hsic_features": 8,
                                   "hsic_seed_offset": 1}, "max_it": 300},
    # one stage, default bandwidth, random start (stalls: Amari 0.14 on the
    # synthetic-ica data at N = 20k)
    "hsic-random": {"objective": {"preset": "hsic", "lambda": 1.0, "hsic_features": 8},
                    "max_it": 300},
    # the former study row: started from the ica run's weights
    "hsic-fromica": {"objective": {"preset": "hsic", "lambda": 1.0, "hsic_features": 8},
                     "init_from": "ica", "max_it": 300},
}


def mixing(n, rng):
    q1, _ = np.linalg.qr(rng.standard_normal((n, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q1 @ np.diag(np.logspace(0, np.log10(3), n)) @ q2


def make_data(n, N, seed, path, sources="laplace"):
    """Unit-variance sources mixed by A: all Laplace (super-Gaussian), or with
    sources "mixed" the even-numbered ones uniform (sub-Gaussian)."""
    rng = np.random.default_rng(seed)
    A = mixing(n, rng)
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(N, n))
    step = 1 << 16
    for r0 in range(0, N, step):
        S = rng.laplace(0, 1 / np.sqrt(2), size=(min(step, N - r0), n))
        if sources == "mixed":
            S[:, ::2] = rng.uniform(-np.sqrt(3), np.sqrt(3), size=S[:, ::2].shape)
        X[r0 : r0 + S.shape[0]] = S @ A.T
    X.flush()
    del X
    return A


def whitening(X, eps):
    """ZCA as the program's `whiten`: x -> (x - mu) P, P = E diag(1/sqrt(l + eps)) E^T."""
    mu = X.mean(axis=0)
    Xc = X - mu
    C = Xc.T @ Xc / X.shape[0]
    l, E = np.linalg.eigh(C)
    return mu, E @ np.diag(1 / np.sqrt(l + eps)) @ E.T


def amari(P):
    P = np.abs(P)
    n = P.shape[0]
    r = (P.sum(1) / P.max(1) - 1).sum() + (P.sum(0) / P.max(0) - 1).sum()
    return r / (2 * n * (n - 1))


def vasicek(y):
    """m-spacing entropy estimate of a 1-D sample (nats), m = sqrt(N) (as in RADICAL)."""
    y = np.sort(y)
    N = y.size
    m = max(1, int(round(np.sqrt(N))))
    d = y[m:] - y[:-m]
    d = np.maximum(d, 1e-300)
    return np.mean(np.log((N + 1) / m * d))


def measures(X, mu, Wtot, A, sub):
    """Amari, TC and Gaussian TC of outputs y = (x - mu) Wtot^T.

    TC(y) = sum_j H(y_j) - H(y) with H(y) = H(s) + log|det(Wtot A)| and
    H(s) = sum_j H(s_j): the marginal entropies of y and of the true sources
    s are estimated with the same m-spacing estimator on the same rows, so its
    bias (about -0.02 nats per unit at N = 1e5) cancels."""
    Xc = np.asarray(X[:sub]) - mu
    Y = Xc @ Wtot.T
    S = np.linalg.solve(A, Xc.T).T
    tc = sum(vasicek(Y[:, j]) - vasicek(S[:, j]) for j in range(Y.shape[1]))
    tc -= np.linalg.slogdet(Wtot @ A)[1]
    R = np.corrcoef(Y, rowvar=False)
    gtc = -0.5 * np.linalg.slogdet(R)[1]
    return amari(Wtot @ A), tc, gtc


def run_infomax(args, X_path, n, N, preset, workdir):
    """Train `preset` (its stages in order, each from the previous one's
    weights); returns the last W and summary, the total wall time and the
    iterations of every stage."""
    spec = PRESETS[preset]
    stages = spec.get("stages", []) + [spec]
    init = spec.get("init_from")
    if init:  # the weights of an earlier run of this size (it must be in --presets before)
        init = os.path.join(workdir, "run-%d-%d-%s" % (n, N, init), "layer1_W.npy")
    wall, its, evals = 0.0, [], 0
    for k, st in enumerate(stages):
        name = preset if k == len(stages) - 1 else "%s-stage%d" % (preset, k + 1)
        W, s, w = run_stage(args, X_path, n, N, st, init, os.path.join(workdir, "run-%d-%d-%s" % (n, N, name)))
        wall += w
        for g in s.get("stages") or [s.get("optimizer", {})]:  # optimizer.stages: one entry each
            its.append(g.get("iterations"))
            evals += g.get("evaluations") or 0
        init = os.path.join(workdir, "run-%d-%d-%s" % (n, N, name), "layer1_W.npy")
    return W, s, wall, its, evals


def run_stage(args, X_path, n, N, st, init, out):
    cfg = {
        "data": {"source": "npy", "path": X_path, "preprocess": "whiten"},
        "model": {"units": n, "activation": "identity", "seed": args.seed},
        "optimizer": {"type": "lmvm", "max_it": args.max_it, "gatol": args.gatol, "grtol": 0},
        "parallel": {"reduction": args.reduction},
        "output": {"every": 1000000, "optimizer_log": False},
    }
    cfg["objective"] = dict(st["objective"])
    cfg["optimizer"].update(st.get("optimizer", {}))
    cfg["optimizer"]["max_it"] = st.get("max_it", args.max_it)
    cfg["optimizer"]["gatol"] = st.get("gatol", args.gatol)
    if init:
        cfg["model"]["init"] = init
    path = out + ".yaml"
    with open(path, "w") as f:
        for sec, kv in cfg.items():
            f.write(sec + ":\n")
            for k, v in kv.items():
                f.write("  %s: %s\n" % (k, json.dumps(v) if isinstance(v, str) else v))
            if sec == "optimizer" and st.get("optimizer_stages"):
                f.write("  stages:\n")
                for g in st["optimizer_stages"]:
                    f.write("    - {%s}\n" % ", ".join("%s: %s" % kv for kv in g.items()))
    if os.path.exists(out):
        subprocess.run(["rm", "-rf", out], check=True)
    cmd = ["mpiexec", "-n", str(args.ranks), args.infomax, "train", path, "--out", out]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-2000:])
    s = json.load(open(os.path.join(out, "summary.json")))
    W = np.load(os.path.join(out, "layer1_W.npy"))
    return W, s, wall


def run_fastica(X, n, args):
    from sklearn.decomposition import FastICA
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads):
        ica = FastICA(n_components=n, algorithm="parallel", whiten="unit-variance",
                      fun="logcosh", max_iter=args.fastica_max_it, tol=args.fastica_tol,
                      random_state=args.seed)
        t0 = time.perf_counter()
        ica.fit(X)
        wall = time.perf_counter() - t0
    return ica.components_, ica.mean_, ica.n_iter_, wall


FIELDS = ["n", "N", "method", "ranks_or_threads", "amari", "tc", "gaussian_tc", "iterations",
          "wall_s", "status", "load", "evaluations"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="8:20000,8:100000,8:1000000,16:20000,16:100000,16:1000000,"
                    "32:20000,32:100000,32:1000000,64:20000,64:100000,64:1000000",
                    help="n:N pairs")
    ap.add_argument("--presets", default="gaussian,gaussian-tc,decorrelation,ica,hsic,fastica",
                    help="methods in order (hsic: random start, bandwidth 0.5, 1, 1 with new features, one run "
                         "in stages; hsic-chained: the same as three runs; hsic-random: "
                         "random start, one stage; hsic-fromica: from ica's weights, needs ica before)")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="FastICA's BLAS threads")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sources", default="laplace", choices=["laplace", "mixed"],
                    help="mixed: every other source uniform (sub-Gaussian), the rest Laplace")
    ap.add_argument("--max-it", type=int, default=1000)
    ap.add_argument("--gatol", type=float, default=1e-7)
    ap.add_argument("--reduction", default="fast", choices=["fast", "reproducible"])
    ap.add_argument("--fastica-tol", type=float, default=1e-5)
    ap.add_argument("--fastica-max-it", type=int, default=1000)
    ap.add_argument("--tc-samples", type=int, default=200000, help="rows used for the TC estimate")
    ap.add_argument("--infomax", default=os.path.join(ROOT, "build", "infomax"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "study_approximation"))
    ap.add_argument("--workdir", default=None, help="data and run directories (default: a temp dir)")
    args = ap.parse_args()

    work = args.workdir or tempfile.mkdtemp(prefix="imx-study-")
    os.makedirs(work, exist_ok=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    csv_path = args.out + ".csv"
    new = not os.path.exists(csv_path)
    with open(csv_path, "a", newline="") as fcsv:
        w = csv.DictWriter(fcsv, FIELDS)
        if new:
            w.writeheader()
        for size in args.sizes.split(","):
            n, N = (int(v) for v in size.split(":"))
            X_path = os.path.join(work, "ica-%d-%d.npy" % (n, N))
            A = make_data(n, N, args.seed * 1000 + n, X_path, args.sources)
            X = np.load(X_path, mmap_mode="r")
            mu, P = whitening(np.asarray(X), 1e-6)
            sub = min(N, args.tc_samples)
            for method in args.presets.split(","):
                load = os.getloadavg()[0]
                row = {"n": n, "N": N, "method": method, "load": "%.2f" % load}
                if method == "fastica":
                    Wt, mu_f, it, wall = run_fastica(np.asarray(X), n, args)
                    a, tc, gtc = measures(X, mu_f, Wt, A, sub)
                    row.update(ranks_or_threads="%d threads" % args.threads, iterations=it, evaluations=it,
                               wall_s="%.2f" % wall, status="converged" if it < args.fastica_max_it else "max_it")
                else:
                    W, s, wall, its, evals = run_infomax(args, X_path, n, N, method, work)
                    a, tc, gtc = measures(X, mu, W @ P.T, A, sub)
                    opt = s.get("optimizer", {})
                    row.update(ranks_or_threads="%d ranks" % args.ranks,
                               iterations="+".join(str(i) for i in its), evaluations=evals,
                               wall_s="%.2f" % wall,
                               status=opt.get("reason", s.get("status")))
                row.update(amari="%.5f" % a, tc="%.5f" % tc, gaussian_tc="%.2e" % gtc)
                w.writerow(row)
                fcsv.flush()
                print(" ".join("%s=%s" % (k, row.get(k)) for k in FIELDS), flush=True)
            del X
            os.remove(X_path)
    write_table(csv_path, args.out + ".md")


LABELS = {"hsic": "hsic, random start, 3 stages", "hsic-chained": "hsic, 3 chained runs", "hsic-random": "hsic, random start, one stage",
          "hsic-fromica": "hsic, from ica's weights", "ica-plain": "ica, plain L-BFGS",
          "ica-ext": "ica, Extended Infomax (extended_every 10)",
          "ica-ext-pre": "ica, Extended Infomax, ICA preconditioner"}


def write_table(csv_path, md_path):
    rows = list(csv.DictReader(open(csv_path)))
    rows.sort(key=lambda r: (int(r["n"]), int(r["N"])))  # stable: run order within a size
    with open(md_path, "w") as f:
        f.write("| n | N | method | Amari | TC (nats) | Gaussian TC | iterations | evaluations | wall (s) | status | load |\n")
        f.write("|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write("| %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s |\n" % (
                r["n"], r["N"], LABELS.get(r["method"], r["method"]), r["ranks_or_threads"], r["amari"], r["tc"],
                r["gaussian_tc"], r["iterations"], r.get("evaluations") or "", r["wall_s"], r["status"],
                r["load"]))


if __name__ == "__main__":
    main()
