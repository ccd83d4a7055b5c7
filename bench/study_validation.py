#!/usr/bin/python3
"""The validation study (docs/study-validation.md): InfoMax layers against PCA,
random hyperplanes, k-means (soft and triangle), GMM-EM and the raw pixels on
Fashion-MNIST, judged by the same measures and the same linear probe.

Every method is a set of `--set` overrides of configs/fashion-mnist.yaml (the
quick start: softmax, gaussian preset, weight normalization, L-BFGS). For each
K and seed it trains the method with `infomax train` (mpiexec -n RANKS,
model.units K, model.seed SEED) and judges it with `infomax eval` on the
10000 test images. The baselines come from `eval.baselines` in the eval of
the first method of each (K, seed): they use the same model.seed (random rows,
k-means seed rows), so every seed has its own baselines. The random
hyperplanes use the run's temperature: after a method with another
model.temperature, an eval of its run adds them at that temperature
(random-t2 for 2). Nothing is re-run
that OUT.csv already holds (delete rows to redo them).

With --gmm the data are the program's synthetic Gaussian mixture instead
(configs/gmm-study.yaml: 16 spherical components in 32 dimensions, 50000
rows, K = the components by default) and the table says how close each
method's prototypes come to the true means (a layer: the mean of the rows
each unit wins; k-means: its centers; GMM-EM: its means).

One command writes each table:
  bench/study_validation.py --K 64                    # every method, 3 seeds
  bench/study_validation.py --K 256 --methods softmax-act,relu-z
  bench/study_validation.py --gmm --K 16
Outputs: OUT.csv (one row per method, K and seed, appended as runs finish) and
OUT.md (mean, min and max over the seeds per method and K).
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FM = "/usr/share/datasets/fashion-mnist"

# Each method: its overrides of configs/fashion-mnist.yaml (objective.eps 1e-6
# where a unit whose activation is exactly zero on every row would make C
# singular: relu, topk).
METHODS = {
    "softmax-act": [],
    "softmax-act-eps": ["objective.eps=1e-6"],
    "softmax-act-eps8": ["objective.eps=1e-8"],
    "softmax-act-t2": ["model.temperature=2"],
    # |b_j| <= 5 (a bound-constrained L-BFGS): a softmax unit's bias cannot run away
    "softmax-act-bb5": ["optimizer.type=blmvm", "model.bias_bound=5"],
    "softmax-act-t2-bb5": ["model.temperature=2", "optimizer.type=blmvm", "model.bias_bound=5"],
    "softmax-z": ["objective.on=z"],
    "relu-act": ["model.activation=relu", "objective.eps=1e-6"],
    "relu-z": ["model.activation=relu", "objective.on=z"],
    # on z with K > n: C = W S W^T has rank <= n and needs a ridge
    "relu-z-eps": ["model.activation=relu", "objective.on=z", "objective.eps=1e-3"],
    "topk-act": ["model.activation=topk", "model.topk=8", "objective.eps=1e-6"],
    "topk-z": ["model.activation=topk", "model.topk=8", "objective.on=z"],
    "sparsemax-act": ["model.activation=sparsemax", "objective.eps=1e-6"],
    "implicit-em": ["objective.preset=implicit-em"],
}
BASELINES = ["raw", "pca", "random", "kmeans", "kmeans-triangle", "gmm"]

FIELDS = ["K", "seed", "method", "probe", "dead", "max_abs_corr", "gaussian_tc", "effective_rank",
          "regions", "random_regions", "sign_entropy_mean", "winner_entropy", "final_loss",
          "iterations", "status", "train_s", "eval_s", "load", "proto_mean", "proto_max", "proto_matched",
          "separation"]


def mpi(args, cmd, log):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    with open(log, "w") as f:
        p = subprocess.run(["mpiexec", "-n", str(args.ranks), args.infomax] + cmd, env=env,
                           stdout=subprocess.PIPE, stderr=f, text=True, cwd=ROOT)
    if p.returncode != 0:
        err = [l.strip() for l in open(log) if "error" in l]
        raise RuntimeError("%s exit %d: %s" % (cmd[0], p.returncode, err[0] if err else "see " + log))
    return p.stdout


def sets(items):
    out = []
    for s in items:
        out += ["--set", s]
    return out


def row(K, seed, method, col, train_s, eval_s, load, summary=None):
    m, p, pr = col["measures"], col.get("probe", {}), col.get("prototypes", {})
    opt = (summary or {}).get("optimizer", {})
    return {"K": K, "seed": seed, "method": method, "probe": 100 * p.get("test_accuracy", float("nan")),
            "dead": m["dead_units"], "max_abs_corr": m["max_abs_corr"], "gaussian_tc": m["gaussian_tc"],
            "effective_rank": m["effective_rank"], "regions": m["regions"],
            "random_regions": m.get("random_regions"), "sign_entropy_mean": m.get("sign_entropy_mean_bits"),
            "winner_entropy": m["winner_entropy_bits"],
            "final_loss": ((summary or {}).get("final") or {}).get("loss", ""), "iterations": opt.get("iterations", ""),
            "status": opt.get("reason", ""), "train_s": "%.1f" % train_s, "eval_s": "%.1f" % eval_s,
            "load": "%.2f" % load, "proto_mean": pr.get("mean_distance", ""),
            "proto_max": pr.get("max_distance", ""), "proto_matched": pr.get("matched", ""),
            "separation": pr.get("mean_separation", "")}


def run_dir(args, K, seed, method):
    return os.path.join(args.workdir, "k%d-s%d-%s" % (K, seed, method))


def run_one(args, K, seed, method, baselines):
    out = run_dir(args, K, seed, method)
    common = ["model.units=%d" % K, "model.seed=%d" % seed]
    load = os.getloadavg()[0]
    subprocess.run(["rm", "-rf", out], check=True)
    t0 = time.perf_counter()
    try:
        return train_eval(args, K, seed, method, baselines, out, common, load, t0)
    except RuntimeError as e:  # a failed run is a row too, with its reason
        print("study_validation: %s" % e, flush=True)
        r = dict.fromkeys(FIELDS, "")
        r.update(K=K, seed=seed, method=method, status="failed: %s" % e,
                 train_s="%.1f" % (time.perf_counter() - t0), load="%.2f" % load)
        return [r]


def train_eval(args, K, seed, method, baselines, out, common, load, t0):
    mpi(args, ["train", args.config, "--out", out]
        + sets(common + ["optimizer.max_it=%d" % args.max_it, "output.checkpoint_every=0"]
               + METHODS[method] + args.set), out + ".train.log")
    t1 = time.perf_counter()
    ev = json.loads(mpi(args, ["eval", out, "--out", os.path.join(out, "eval")]
                        + sets(["eval.probe_max_it=%d" % args.probe_it,
                                "eval.baselines=%s" % ("true" if baselines else "false")] + args.set),
                        out + ".eval.log"))
    t2 = time.perf_counter()
    summary = json.load(open(os.path.join(out, "summary.json")))
    rows = [row(K, seed, method, ev, t1 - t0, ev["seconds"], load, summary)]
    for key, col in (ev.get("baselines") or {}).items():
        rows.append(row(K, seed, key, col, 0.0, col["seconds"], load))
    return rows


def temperature(method):
    """The method's model.temperature (1 unless it sets one)."""
    t = [float(o.split("=", 1)[1]) for o in METHODS[method] if o.startswith("model.temperature=")]
    return t[-1] if t else 1.0


def random_at(tau):
    """The name of the random-hyperplane baseline at temperature tau (the
    baseline uses the run's temperature; the others do not depend on it)."""
    return "random" if tau == 1 else "random-t%g" % tau


def tau_random(args, K, seed, method):
    """The random baseline at the temperature of a trained method: the
    baselines of an eval of its run directory, of which only random is kept."""
    out = run_dir(args, K, seed, method)
    load = os.getloadavg()[0]
    ev = json.loads(mpi(args, ["eval", out, "--out", os.path.join(out, "eval-baselines")]
                        + sets(["eval.probe_max_it=%d" % args.probe_it, "eval.baselines=true"] + args.set),
                        out + ".eval-baselines.log"))
    col = ev["baselines"]["random"]
    return [row(K, seed, random_at(temperature(method)), col, 0.0, col["seconds"], load)]


def fmt(vals, digits):
    vals = [v for v in vals if v == v]
    if not vals:
        return "-"
    mean = sum(vals) / len(vals)
    if "%.*f" % (digits, min(vals)) == "%.*f" % (digits, max(vals)):  # one seed, or equal as shown
        return "%.*f" % (digits, mean)
    return "%.*f (%.*f-%.*f)" % (digits, mean, digits, min(vals), digits, max(vals))


def table(rows, out_md, gmm):
    order = list(METHODS) + BASELINES
    order += sorted({r["method"] for r in rows} - set(order))  # random at other temperatures
    if gmm:  # no labels: the prototypes instead of the probe
        head = "| K | method | seeds | prototype to true mean: mean distance | max distance | dead |"
        cell = lambda f: "%s | %s" % (fmt(f("proto_mean"), 3), fmt(f("proto_max"), 3))
    else:
        head = "| K | method | seeds | probe (%) | dead |"
        cell = lambda f: fmt(f("probe"), 2)
    lines = [head + " max \\|corr\\| | Gaussian TC | eff. rank | regions "
             "| random regions | sign entropy (bits) | winner entropy (bits) | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if gmm else "")]
    for K in sorted({int(r["K"]) for r in rows}):
        for m in order:
            rs = [r for r in rows if int(r["K"]) == K and r["method"] == m]
            if not rs:
                continue
            f = lambda k: [float(r[k]) if r[k] not in ("", "None", None) else float("nan") for r in rs]
            bad = sum(r["status"].startswith("failed") for r in rs)
            lines.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                K, m, "%d (%d failed)" % (len(rs), bad) if bad else len(rs), cell(f), fmt(f("dead"), 0), fmt(f("max_abs_corr"), 3),
                fmt(f("gaussian_tc"), 2), fmt(f("effective_rank"), 1), fmt(f("regions"), 0),
                fmt(f("random_regions"), 0), fmt(f("sign_entropy_mean"), 2), fmt(f("winner_entropy"), 2),
                fmt(f("train_s"), 0) if m in METHODS else "-"))
    with open(out_md, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--K", default="64,256", help="units, comma separated")
    ap.add_argument("--seeds", default="2,3,4", help="model.seed values")
    ap.add_argument("--methods", default=",".join(METHODS), help="of: " + ", ".join(METHODS))
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--max-it", type=int, default=100, help="optimizer.max_it of every layer")
    ap.add_argument("--probe-it", type=int, default=200, help="eval.probe_max_it")
    ap.add_argument("--infomax", default=os.path.join(ROOT, "build", "infomax"))
    ap.add_argument("--workdir", default=os.path.join(ROOT, "runs", "validation"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "study_validation"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="one more override of every run, train and eval (repeatable)")
    ap.add_argument("--gmm", action="store_true", help="synthetic Gaussian mixture data (configs/gmm-study.yaml)")
    ap.add_argument("--table-only", action="store_true", help="write OUT.md from OUT.csv and stop")
    args = ap.parse_args()
    args.config = "configs/gmm-study.yaml" if args.gmm else "configs/fashion-mnist.yaml"
    if args.gmm:
        args.workdir += "-gmm"
        args.out += "_gmm"
    methods = args.methods.split(",")
    for m in methods:
        if m not in METHODS:
            sys.exit("study_validation: unknown method %r (known: %s)" % (m, ", ".join(METHODS)))
    os.makedirs(args.workdir, exist_ok=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    csv_path = args.out + ".csv"
    rows = list(csv.DictReader(open(csv_path))) if os.path.exists(csv_path) else []
    done = {(int(r["K"]), int(r["seed"]), r["method"]) for r in rows}
    for K in map(int, args.K.split(",")):
        for seed in map(int, args.seeds.split(",")):
            for i, m in enumerate(methods):
                want_base = i == 0 and not all((K, seed, b) in done for b in BASELINES)
                if args.table_only:
                    continue
                if not ((K, seed, m) in done and not want_base):
                    print("study_validation: K %d seed %d %s%s" % (K, seed, m, " + baselines" if want_base else ""),
                          flush=True)
                    append(csv_path, [r for r in run_one(args, K, seed, m, want_base)
                                      if (int(r["K"]), int(r["seed"]), r["method"]) not in done], rows, done)
                # a method at another temperature: random hyperplanes at that temperature too
                base = random_at(temperature(m))
                trained = any(r["status"] and not r["status"].startswith("failed") for r in rows
                              if (int(r["K"]), int(r["seed"]), r["method"]) == (K, seed, m))
                if (K, seed, base) in done or not trained:
                    continue
                print("study_validation: K %d seed %d %s (the baselines of %s)" % (K, seed, base, m), flush=True)
                try:
                    append(csv_path, tau_random(args, K, seed, m), rows, done)
                except RuntimeError as e:
                    print("study_validation: %s" % e, flush=True)
    table(rows, args.out + ".md", args.gmm)


def append(csv_path, new, rows, done):
    """Append rows to the CSV (a header first if it is new) and to rows/done."""
    fresh = not os.path.exists(csv_path)
    with open(csv_path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if fresh:
            w.writeheader()
        w.writerows(new)
    rows += new
    done |= {(int(r["K"]), int(r["seed"]), r["method"]) for r in new}


if __name__ == "__main__":
    main()
