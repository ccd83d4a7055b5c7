#!/usr/bin/python3
"""time_to_loss: wall time to a given loss on all rows, for the quick start's
model trained four ways (docs/performance.md, "Time to a good layer").

  lbfgs-double  `infomax train` as configured (L-BFGS, float64)
  lbfgs-single  the same with parallel.precision: single
  adam          optimizer.type adam (--lr, --batch, --epochs), full_loss every epoch
  adam-lbfgs    one run in two stages: adam for --warm epochs, then L-BFGS
                (optimizer.stages; the file's optimizer.max_it)
  torch-adam    bench/torch_minibatch.py (PyTorch float32 Adam, --threads threads)

A method may end in @M: that run's optimizer.max_it (L-BFGS iterations) is M.
The infomax runs use `mpiexec -n --ranks`; the target is the loss on all rows
that the L-BFGS double run reaches at its last iteration. For each method the
curve (training seconds, loss on all rows) goes to --csv, the first time at or
below each threshold to a markdown table on stdout, the picture to --png.
L-BFGS's loss is its iterate's loss on all rows; adam's is `full_loss`, whose
pass counts in its time; torch's full-data evaluations are not counted in its time.

Usage:
  bench/time_to_loss.py [--config configs/fashion-mnist.yaml] [--K 64]
        [--methods lbfgs-double,lbfgs-single,adam,torch-adam] [--epochs 30]
        [--png docs/img/time-to-loss-k64.png] [--csv FILE] [--probe]
        [--set KEY=VALUE]... [--rows N]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MPI_ENV = dict(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OPENBLAS_NUM_THREADS="1")


def run_infomax(a, method, out):
    sets = [f"model.units={a.K}"] + a.set
    method, _, max_it = method.partition("@")
    if max_it:
        sets.append(f"optimizer.max_it={int(max_it)}")
    if method == "lbfgs-single":
        sets.append("parallel.precision=single")
    steps = a.rows // a.batch
    config = a.config
    if method == "adam":
        sets += ["optimizer.type=adam", f"optimizer.lr={a.lr}", f"optimizer.batch={a.batch}",
                 f"optimizer.max_it={a.epochs * steps}", f"output.every={steps}"]
    if method == "adam-lbfgs":   # a list: only in the file
        config = out + ".yaml"
        text = open(a.config).read()
        if "\noptimizer:\n" not in text:
            sys.exit(f"time_to_loss: {a.config} has no optimizer section for the stages")
        with open(config, "w") as f:
            f.write(text.replace("\noptimizer:\n", "\noptimizer:\n  stages:\n    - {type: adam, "
                                 f"lr: {a.lr}, batch: {a.batch}, max_it: {a.warm * steps}}}\n"
                                 "    - {type: lmvm}\n", 1))
    cmd = ["mpiexec", "-n", str(a.ranks), a.infomax, "train", config, "--out", out]
    for s in sets:
        cmd += ["--set", s]
    env = dict(os.environ, **MPI_ENV)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"time_to_loss: {' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-2000:]}")
    curve, offset, last = [], 0.0, 0.0
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("stage", 0) == 2 and offset == 0.0:
                offset = last          # each stage's "time" starts at 0
            last = r["time"] + offset
            L = r.get("full_loss") if "epoch" in r else r["loss"]
            if L is not None:
                curve.append((last, L))
    return curve, wall, load


def run_torch(a, init):
    cmd = ["/usr/bin/python3", os.path.join(HERE, "torch_minibatch.py"), "--init", init,
           "--epochs", str(a.epochs), "--lr", str(a.lr), "--batch", str(a.batch),
           "--threads", str(a.ranks)]
    load = os.getloadavg()[0]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"time_to_loss: {' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-2000:]}")
    curve = []
    for line in p.stdout.splitlines():
        if line and line[0].isdigit():
            ep, s, L, _ = line.split(",")
            curve.append((float(s), float(L)))
    return curve, wall, load


def first_at(curve, target):
    for t, L in curve:
        if L <= target:
            return t
    return None


def probe(a, out):
    p = subprocess.run(["mpiexec", "-n", str(a.ranks), a.infomax, "eval", out,
                        "--out", os.path.join(out, "eval")],
                       env=dict(os.environ, **MPI_ENV), capture_output=True, text=True)
    if p.returncode != 0:
        return None
    with open(os.path.join(out, "eval", "eval.json")) as f:
        return json.load(f)["probe"]["test_accuracy"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(ROOT, "configs/fashion-mnist.yaml"))
    ap.add_argument("--infomax", default=os.path.join(ROOT, "build/infomax"))
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--methods", default="lbfgs-double,lbfgs-single,adam,torch-adam")
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--warm", type=int, default=5, help="adam-lbfgs: adam's epochs")
    ap.add_argument("--thresholds", default="365,360,359,358.3,357.79")
    ap.add_argument("--rows", type=int, default=60000,
                    help="rows of the data (adam's steps per epoch: rows // batch)")
    ap.add_argument("--set", action="append", default=[],
                    help="KEY=VALUE for every infomax run (e.g. data.samples=8192)")
    ap.add_argument("--csv")
    ap.add_argument("--png")
    ap.add_argument("--probe", action="store_true", help="probe accuracy of the infomax runs")
    a = ap.parse_args()
    methods = a.methods.split(",")
    work = tempfile.mkdtemp(prefix="time_to_loss.")
    curves, info = {}, {}
    if "torch-adam" in methods:       # the same initial layer as infomax train
        p = subprocess.run(["mpiexec", "-n", "1", a.infomax, "bench", a.config,
                            f"model.units={a.K}", "evals=1", "warmup=0", "iterations=0",
                            "dgemm=0", "reduce=0", f"weights={work}/init"],
                           env=dict(os.environ, **MPI_ENV), capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"time_to_loss: infomax bench weights= exited {p.returncode}:\n{p.stderr}")
    for m in methods:
        out = os.path.join(work, m)
        if m == "torch-adam":
            curves[m], wall, load = run_torch(a, f"{work}/init")
        else:
            curves[m], wall, load = run_infomax(a, m, out)
        acc = probe(a, out) if a.probe and m != "torch-adam" else None
        info[m] = dict(wall=wall, load=load, acc=acc)
        print(f"# {m}: {len(curves[m])} points, last loss {curves[m][-1][1]:.7f} at "
              f"{curves[m][-1][0]:.2f} s, process {wall:.2f} s, load {load:.2f}"
              + (f", probe {acc:.4f}" if acc is not None else ""), file=sys.stderr, flush=True)
    target = curves["lbfgs-double"][-1][1] if "lbfgs-double" in curves else None
    ths = [float(x) for x in a.thresholds.split(",")] + ([target] if target else [])
    print("| loss on all rows | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for th in ths:
        row = [f"{th:.7f}" if th == target else f"{th:g}"]
        for m in methods:
            t = first_at(curves[m], th)
            row.append(f"{t:.2f}" if t is not None else "not reached")
        print("| " + " | ".join(row) + " |")
    print("| last loss | " + " | ".join(f"{curves[m][-1][1]:.4f}" for m in methods) + " |")
    print("| load at start | " + " | ".join(f"{info[m]['load']:.2f}" for m in methods) + " |")
    if a.probe:
        print("| probe test accuracy | " + " | ".join(
            f"{info[m]['acc']:.4f}" if info[m]["acc"] is not None else "-" for m in methods) + " |")
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("method,seconds,loss\n")
            for m in methods:
                for t, L in curves[m]:
                    f.write(f"{m},{t:.4f},{L:.10g}\n")
    if a.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for m in methods:
            ax.plot([t for t, _ in curves[m]], [L for _, L in curves[m]], label=m, lw=1.4)
        if target:
            ax.axhline(target, color="gray", ls=":", lw=1, label=f"L-BFGS 100 it. ({target:.3f})")
        lo = min(L for m in methods for _, L in curves[m])
        ax.set_ylim(lo - 1, lo + 20)
        ax.set_xlabel("training seconds (wall)")
        ax.set_ylabel("loss on all rows")
        ax.set_title(f"Fashion-MNIST, K = {a.K}, gaussian preset, softmax, {a.ranks} ranks/threads")
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.png, dpi=110)


if __name__ == "__main__":
    main()
