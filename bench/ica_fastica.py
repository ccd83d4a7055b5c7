#!/usr/bin/python3
"""infomax's `ica` preset against scikit-learn's FastICA at one size (docs/performance.md,
"ICA at n = 64, N = 1M").

Two data sets of N rows and n columns, written as .npy:
  mixed  sources the study did not generate: a quarter each of Laplace, logistic,
         exponential minus its mean and Student-t (5 degrees of freedom), every one
         scaled to unit variance, mixed by a random well-conditioned matrix of this
         script's own seed;
  study  the data of bench/study_approximation.py (Laplace sources, its seed).
On each, in interleaved pairs (infomax, FastICA, infomax, FastICA, ...):
  - the whole `mpiexec -n RANKS infomax train` process (start-up, loading, whitening,
    training, end-of-run measures), with the study's `ica` preset configuration
    (bench/study_approximation.py's run_stage); wall time, the CPU time of every
    process, the phases from summary.json's timers;
  - FastICA's fit (logcosh, parallel, whiten='unit-variance', tol 1e-4 by default,
    BLAS threads limited to --threads) on the same data in memory; wall and CPU time;
  - the Amari distance of each total unmixing against the true mixing;
  - /proc/loadavg before each run.

One command:
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 nice -n 19 \\
      /usr/bin/python3 bench/ica_fastica.py --workdir /tmp/ica1m
Outputs: OUT.csv (a row per run) and OUT.md (the table, also printed).
"""
import argparse
import csv
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import study_approximation as study  # noqa: E402


def make_mixed(n, N, seed, path):
    """The `mixed` data set; returns the mixing matrix A (X = S A^T)."""
    rng = np.random.default_rng(seed)
    A = study.mixing(n, rng)
    kind = np.arange(n) % 4
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(N, n))
    step = 1 << 16
    for r0 in range(0, N, step):
        m = min(step, N - r0)
        S = np.empty((m, n))
        S[:, kind == 0] = rng.laplace(0, 1 / np.sqrt(2), size=(m, int((kind == 0).sum())))
        S[:, kind == 1] = rng.logistic(0, np.sqrt(3) / np.pi, size=(m, int((kind == 1).sum())))
        S[:, kind == 2] = rng.exponential(1.0, size=(m, int((kind == 2).sum()))) - 1.0
        S[:, kind == 3] = rng.standard_t(5, size=(m, int((kind == 3).sum()))) / np.sqrt(5 / 3)
        X[r0:r0 + m] = S @ A.T
    X.flush()
    del X
    return A


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def phases(s):
    """Seconds of the whole run's parts from summary.json's timers (rank maximum)."""
    t = s.get("timers", {})
    opt = s.get("optimizer", {})
    ev = opt.get("evaluations") or 0
    get = lambda k: (t.get(k) or {}).get("max", 0.0) if isinstance(t.get(k), dict) else (t.get(k) or 0.0)  # noqa: E731
    out = {k: get(k) for k in t}
    out["evaluations"] = ev
    out["iterations"] = opt.get("iterations")
    return out


FIELDS = ["case", "n", "N", "pair", "method", "wall_s", "cpu_s", "amari", "iterations", "evaluations",
          "load", "load_after", "phases"]


def run_pair(args, case, X_path, A, n, N, pair, Xmem, white, w):
    rows = []
    # infomax: the whole process.
    load = loadavg()
    c0 = children_cpu()
    out = os.path.join(args.workdir, "run-%s-%d" % (case, pair))
    W, s, wall = study.run_stage(args, X_path, n, N, study.PRESETS["ica"], None, out)
    cpu = children_cpu() - c0
    mu, P = white
    ph = phases(s)
    rows.append({"case": case, "n": n, "N": N, "pair": pair, "method": "infomax (%d ranks)" % args.ranks,
                 "wall_s": "%.3f" % wall, "cpu_s": "%.3f" % cpu, "amari": "%.5f" % study.amari(W @ P.T @ A),
                 "iterations": ph.pop("iterations"), "evaluations": ph.pop("evaluations"), "load": load,
                 "load_after": loadavg(), "phases": json.dumps({k: round(v, 3) for k, v in ph.items()})})
    # FastICA: its fit on the data in memory.
    load = loadavg()
    c0 = self_cpu()
    Wt, _, it, wall = study.run_fastica(Xmem, n, args)
    cpu = self_cpu() - c0
    rows.append({"case": case, "n": n, "N": N, "pair": pair, "method": "FastICA (%d threads)" % args.threads,
                 "wall_s": "%.3f" % wall, "cpu_s": "%.3f" % cpu, "amari": "%.5f" % study.amari(Wt @ A),
                 "iterations": it, "evaluations": it, "load": load, "load_after": loadavg(), "phases": ""})
    for r in rows:
        w.writerow(r)
        print(" ".join("%s=%s" % (k, r[k]) for k in FIELDS), flush=True)
    return rows


def ratio_of(a, b, key):
    x, y = float(a[key]), float(b[key])
    return "%.2f" % (x / y) if y > 0 else "-"


def write_table(rows, path):
    lines = ["| data | pair | method | wall (s) | CPU (s) | Amari | iterations | evaluations | load before | "
             "infomax phases (s, rank max) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ph = json.loads(r["phases"]) if r["phases"] else {}
        keep = ["load", "preprocess", "forward", "moments", "backward", "reduce", "output"]
        txt = ", ".join("%s %.2f" % (k, ph[k]) for k in keep if k in ph)
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["case"], r["pair"], r["method"], r["wall_s"], r["cpu_s"], r["amari"], r["iterations"],
            r["evaluations"], r["load"], txt))
    ratio = ["", "| data | infomax wall / FastICA wall (per pair) | infomax CPU / FastICA CPU |", "|---|---|---|"]
    for case in dict.fromkeys(r["case"] for r in rows):
        im = [r for r in rows if r["case"] == case and r["method"].startswith("infomax")]
        fi = [r for r in rows if r["case"] == case and r["method"].startswith("FastICA")]
        ratio.append("| %s | %s | %s |" % (
            case, ", ".join(ratio_of(a, b, "wall_s") for a, b in zip(im, fi)),
            ", ".join(ratio_of(a, b, "cpu_s") for a, b in zip(im, fi))))
    text = "\n".join(lines + ratio) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--N", type=int, default=1000000)
    ap.add_argument("--cases", default="mixed,study", help="data sets in order: mixed, study")
    ap.add_argument("--pairs", type=int, default=2, help="interleaved (infomax, FastICA) pairs per data set")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="FastICA's BLAS threads")
    ap.add_argument("--seed", type=int, default=1, help="the study's seed (its data and both methods' starts)")
    ap.add_argument("--mixed-seed", type=int, default=20261206, help="the mixed data set's seed")
    ap.add_argument("--max-it", type=int, default=1000)
    ap.add_argument("--gatol", type=float, default=1e-7)
    ap.add_argument("--reduction", default="fast", choices=["fast", "reproducible"])
    ap.add_argument("--fastica-tol", type=float, default=1e-4)
    ap.add_argument("--fastica-max-it", type=int, default=200)
    ap.add_argument("--infomax", default=os.path.join(study.ROOT, "build", "infomax"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "ica_fastica"))
    ap.add_argument("--workdir", default=None, help="data and run directories (default: a temp dir); "
                    "data files already there are reused")
    args = ap.parse_args()
    import sklearn.decomposition  # noqa: F401 (imported before any timing)
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="imx-ica-")
    os.makedirs(args.workdir, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    n, N = args.n, args.N
    rows = []
    with open(args.out + ".csv", "w", newline="") as fcsv:
        w = csv.DictWriter(fcsv, FIELDS)
        w.writeheader()
        for case in args.cases.split(","):
            X_path = os.path.join(args.workdir, "%s-%d-%d.npy" % (case, n, N))
            A_path = X_path[:-4] + "-A.npy"
            if not (os.path.exists(X_path) and os.path.exists(A_path)):
                if case == "mixed":
                    A = make_mixed(n, N, args.mixed_seed, X_path)
                elif case == "study":
                    A = study.make_data(n, N, args.seed * 1000 + n, X_path)
                else:
                    sys.exit("ica_fastica: unknown case %r (mixed or study)" % case)
                np.save(A_path, A)
            A = np.load(A_path)
            Xmem = np.load(X_path)
            white = study.whitening(Xmem, 1e-6)
            for pair in range(1, args.pairs + 1):
                rows += run_pair(args, case, X_path, A, n, N, pair, Xmem, white, w)
                fcsv.flush()
            del Xmem
    print(write_table(rows, args.out + ".md"), end="")


if __name__ == "__main__":
    main()
