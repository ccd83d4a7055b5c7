"""test_bench: `infomax bench` on a tiny synthetic size prints the table and
writes a CSV with the documented columns and positive timings, at 1 and 2
ranks, and rejects a bad setting with exit 2. Timings are not checked against
targets: benchmarks are not tests (bench/, docs/performance.md)."""
import csv
import os

from clitest import ENV, INFOMAX, check, finish, run, tmpdir

COLUMNS = ["P", "N", "n", "K", "activation", "reduction", "path", "linalg", "precision", "eval_best_s",
           "eval_mean_s", "forward_s", "moments_s", "reduce_s", "linalg_s", "backward_s",
           "optimizer_s_per_it", "gflops", "blas3_gflops_phases", "dgemm_gflops",
           "blas3_frac_peak", "deposit_s", "colmax_s", "allreduce_rep_s", "allreduce_fast_s",
           "repro_overhead_frac", "load1", "foreign_cores", "eval_cpu_s", "loss"]
POSITIVE = ["eval_best_s", "eval_mean_s", "forward_s", "moments_s", "reduce_s", "backward_s",
            "optimizer_s_per_it", "gflops", "dgemm_gflops", "deposit_s", "allreduce_rep_s",
            "eval_cpu_s"]

d = tmpdir()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
base = ["bench", "--set", "data.source=gmm", "--set", "data.samples=1024", "--set", "data.dim=8",
        "--set", "model.activation=softmax", "--set", "objective.preset=gaussian",
        "--set", "objective.eps=1e-3", "--set", "parallel.block=64",
        "evals=2", "iterations=2", "dgemm=100", "allreduce=1"]
for ranks in (1, 2):
    out_csv = os.path.join(d, "b%d.csv" % ranks)
    code, out, err = run(base + ["model.units=4,8", "parallel.reduction=reproducible,fast",
                                 "--out", out_csv], ranks=ranks, timeout=120)
    check(code == 0, "bench on %d rank(s) exits 0: %s" % (ranks, err.strip()[-300:]))
    check("eval_s" in out and "forward" in out and "backward" in out and "optim/it" in out,
          "the table has the phase columns")
    check(out.count(" softmax ") == 4, "one table line per run (2 K x 2 reductions)")
    rows = list(csv.DictReader(open(out_csv))) if os.path.exists(out_csv) else []
    check(len(rows) == 4, "%d CSV rows (want 4)" % len(rows))
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    check(not missing, "CSV has every column (missing: %s)" % missing)
    for r in rows:
        bad = [c for c in POSITIVE if not float(r.get(c, "nan")) > 0]
        check(not bad, "P=%s K=%s %s: positive %s (bad: %s)"
              % (r["P"], r["K"], r["reduction"], ", ".join(POSITIVE), bad))
        check(int(r["P"]) == ranks and int(r["N"]) == 1024 and r["path"] == "data",
              "P, N and path recorded")
    # Both reductions give the same loss up to rounding; the same K, the same data.
    for k in ("4", "8"):
        ls = [float(r["loss"]) for r in rows if r["K"] == k]
        check(len(ls) == 2 and abs(ls[0] - ls[1]) <= 1e-9 * abs(ls[0]),
              "K=%s: reproducible and fast losses agree: %s" % (k, ls))
    ar = out_csv + ".allreduce.csv"
    arows = list(csv.DictReader(open(ar))) if os.path.exists(ar) else []
    check(len(arows) > 3 and all(float(r["seconds"]) > 0 for r in arows),
          "allreduce calibration CSV with positive times (%d rows)" % len(arows))

# parallel.precision swept: one row per precision, the float32 loss within 1e-5 of the double one.
pcsv = os.path.join(d, "prec.csv")
code, out, err = run(base + ["iterations=0", "allreduce=0", "model.units=8",
                             "parallel.precision=double,single", "--out", pcsv], ranks=2)
rows = list(csv.DictReader(open(pcsv))) if code == 0 and os.path.exists(pcsv) else []
ls = {r["precision"]: float(r["loss"]) for r in rows}
check(code == 0 and sorted(ls) == ["double", "single"]
      and abs(ls["single"] - ls["double"]) <= 1e-5 * abs(ls["double"]),
      "parallel.precision=double,single: a row each, losses %s agree within 1e-5 (stderr: %s)"
      % (ls, err.strip()[-200:]))

# Without --out the CSV follows the table on standard output.
code, out, err = run(base + ["iterations=0", "allreduce=0"], ranks=1)
check(code == 0 and "P,N,n,K," in out, "without --out the CSV is printed after the table")
code, out, err = run(["bench", "evals=x"], ranks=2)
check(code == 2 and err.count("evals") >= 1, "a bad setting exits 2 with a message: %s" % err.strip())
code, out, err = run(["bench", "--help"])
check(code == 0 and "usage:" in out and "model.units=" in out, "bench --help")

# bench/run_linalg.sh drives bench_linalg: both backends at 1 and 2 ranks on a
# tiny size give the same loss (the rows of docs/performance.md's table).
import json  # noqa: E402
import subprocess  # noqa: E402
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.path.dirname(os.path.abspath(INFOMAX))
jl = os.path.join(tmpdir(), "linalg.jsonl")
p = subprocess.run(["bash", os.path.join(root, "bench", "run_linalg.sh"), build, jl], capture_output=True,
                   text=True, timeout=300, cwd=root,
                   env=dict(ENV, KS="40 100", PS="1 2", N="600", NIN="8", IDLE_LOAD="0",
                            EXTRA="--nb 16 --dgemm 200"))
rows = [json.loads(l) for l in open(jl)] if os.path.exists(jl) else []
losses = [r.get("loss") for r in rows if r["K"] == 100]
check(p.returncode == 0 and len(rows) == 8 and all("eval_s" in r for r in rows)
      and len(losses) == 4 and max(losses) - min(losses) <= 1e-12 * abs(losses[0])
      and "| 100 | 2 | scalapack | 1x2 |" in p.stdout,
      "bench/run_linalg.sh: 8 runs, K=100 loss of both backends on 1 and 2 ranks %s, table printed (stderr: %s)"
      % (losses, p.stderr.strip()[:200]))

# The flops per phase are those of the algorithm run (gaussian, N = 600 > K / 3:
# M^-1 formed), and the rates are set against the DGEMM probe of the same run.
K, N, n = 100, 600, 8
want = {"forward": 2 * N * K * n, "moments": N * K * (K + 1), "linalg": K ** 3,
        "backward": 2 * N * K * n + 2 * N * K * K}
r100 = [r for r in rows if r["K"] == K]
check(r100 and all(abs(r["gflop"][k] * 1e9 - v) <= 1e-5 * v for r in r100 for k, v in want.items())
      and all(r["dgemm_gflops"] > 0 and r["eval_gflops"] > 0
              and abs(r["frac_dgemm"] - r["eval_gflops"] / r["dgemm_gflops"]) <= 1e-5 * r["frac_dgemm"]
              for r in r100),
      "bench_linalg: flops per phase %s = %s GFLOP, rates against the DGEMM probe %s"
      % ([r["gflop"] for r in r100[:1]], {k: v / 1e9 for k, v in want.items()},
         [(r["dgemm_gflops"], r["frac_dgemm"]) for r in r100]))

# bench/time_to_loss.py (infomax's methods; the PyTorch loop is optional):
# the target is the L-BFGS run's last loss, reached at its last point.
ttl_csv = os.path.join(d, "ttl.csv")
p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "time_to_loss.py"),
                    "--methods", "lbfgs-double,adam", "--set", "data.samples=4096",
                    "--set", "optimizer.max_it=8", "--rows", "4096", "--batch", "1024",
                    "--epochs", "2", "--K", "16", "--csv", ttl_csv, "--infomax", INFOMAX], capture_output=True, text=True)
curve = {}
for line in open(ttl_csv).read().splitlines()[1:] if p.returncode == 0 else []:
    m, t, L = line.split(",")
    curve.setdefault(m, []).append((float(t), float(L)))
last = curve.get("lbfgs-double", [(0, 0)])[-1]
target = [l for l in p.stdout.splitlines() if l.startswith("| %.7f |" % last[1])]
check(p.returncode == 0 and len(curve.get("lbfgs-double", [])) == 9 and len(curve.get("adam", [])) == 3
      and len(target) == 1 and target[0].split("|")[2].strip() == "%.2f" % min(
          t for t, L in curve["lbfgs-double"] if L <= last[1]),
      "time_to_loss: exit %d, %s points per method (want 9 L-BFGS, 3 adam), target row %s"
      % (p.returncode, {k: len(v) for k, v in curve.items()}, target or p.stderr[-300:]))

# The PyTorch peer is optional: check it agrees on the loss where torch exists.
try:
    import torch  # noqa: F401
    have_torch = True
except ImportError:
    have_torch = False
print("SKIPPED: PyTorch peer (python3-torch not installed)" if not have_torch else
      "PyTorch available: peer agreement is checked by bench/torch_peer.py --check")
finish()
