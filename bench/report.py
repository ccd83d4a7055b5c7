#!/usr/bin/python3
"""report: the tables of docs/performance.md from the CSVs of bench/run_bench.sh.

Usage: bench/report.py [RESULTS_DIR]   (default bench/results); prints markdown.
Every table names the load under which its numbers were taken.
"""
import csv
import glob
import math
import os
import sys

R = sys.argv[1] if len(sys.argv) > 1 else "bench/results"


def rows(pattern):
    out = []
    for p in sorted(glob.glob(os.path.join(R, pattern))):
        out += list(csv.DictReader(open(p)))
    return out


def f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def fmt(x, d=3):
    return "-" if x != x else ("%.*g" % (d, x))


def pct(x):
    return "-" if x != x else "%.0f%%" % (100 * x)


imx1 = [r for r in rows("fmnist_p1_K*.csv")]
imx2 = [r for r in rows("fmnist_p2_K*.csv")]
peer = rows("peer_fmnist.csv")


def get(rs, K, red):
    for r in rs:
        if int(r["K"]) == K and r["reduction"] == red:
            return r
    return None


def head(*cols):
    """The header row and rule of a markdown table."""
    row(*cols)
    print("|" + "---|" * len(cols))


def row(*cells):
    print("| " + " | ".join(str(c) for c in cells) + " |")


def by_K_reduction(rs):
    """(K, reduction, row of rs) for every K of the P = 1 runs, reproducible first."""
    for K in Ks:
        for red in ("reproducible", "fast"):
            r = get(rs, K, red)
            if r:
                yield K, red, r


Ks = sorted({int(r["K"]) for r in imx1})
print("### Time per evaluation by phase (Fashion-MNIST, N = 60000, n = 784, softmax, gaussian preset, P = 1)\n")
head("K", "reduction", "s/eval (best)", "forward", "moments", "reduce", "linalg", "backward", "TAO s/it",
     "GFLOP/s", "load", "foreign cores")
for K, red, r in by_K_reduction(imx1):
    row(K, red, *(fmt(f(r[c])) for c in ("eval_best_s", "forward_s", "moments_s", "reduce_s", "linalg_s",
                                         "backward_s", "optimizer_s_per_it", "gflops")),
        r["load1"], r["foreign_cores"])

print("\n### Against the PyTorch peer (same data, same weights, loss agrees to 1e-12 relative)\n")
head("K", "infomax fast s", "infomax reproducible s", "torch manual s", "torch autograd s",
     "best torch / infomax fast", "best torch / infomax reproducible", "load (infomax, torch)")
for K in Ks:
    rf, rr = get(imx1, K, "fast"), get(imx1, K, "reproducible")
    pm = [p for p in peer if int(p["K"]) == K and p["variant"] == "manual"]
    pa = [p for p in peer if int(p["K"]) == K and p["variant"] == "autograd"]
    tm = f(pm[0]["best_s"]) if pm else float("nan")
    ta = f(pa[0]["best_s"]) if pa else float("nan")
    best = min(tm, ta) if tm == tm and ta == ta else (tm if tm == tm else ta)
    row(K, fmt(f(rf["eval_best_s"])) if rf else "-", fmt(f(rr["eval_best_s"])) if rr else "-",
        fmt(tm), fmt(ta), fmt(best / f(rf["eval_best_s"])) if rf else "-",
        fmt(best / f(rr["eval_best_s"])) if rr else "-",
        "%s, %s" % (rf["load1"] if rf else "-", pm[0]["load1"] if pm else "-"))

print("\n### BLAS-3 rate against the measured DGEMM rate (P = 1, one thread)\n")
head("K", "reduction", "DGEMM n=2000 GFLOP/s", "BLAS-3 flops / time of their phases", "fraction",
     "layer's BLAS-3 calls alone GFLOP/s", "fraction", "non-BLAS share of the BLAS-3 phases")
for K, red, r in by_K_reduction(imx1):
    pk, ph, al = f(r["dgemm_gflops"]), f(r["blas3_gflops_phases"]), f(r["blas3_alone_gflops"])
    b3t = sum(f(r[c]) for c in ("forward_s", "moments_s", "backward_s", "reduce_s"))
    alone_t = f(r["blas3_alone_s"])
    row(K, red, fmt(pk), fmt(ph), pct(ph / pk), fmt(al), pct(al / pk), pct(1 - alone_t / b3t))

print("\n### Cost of reproducible reductions (P = 1; parts measured alone, per evaluation)\n")
head("K", "reproducible s", "fast s", "end-to-end ratio", "deposits s", "column maxima s",
     "3 bins Allreduce s", "1 bin s", "parts / evaluation")
for K in Ks:
    rr, rf = get(imx1, K, "reproducible"), get(imx1, K, "fast")
    if rr and rf:
        row(K, fmt(f(rr["eval_best_s"])), fmt(f(rf["eval_best_s"])),
            fmt(f(rr["eval_best_s"]) / f(rf["eval_best_s"])), fmt(f(rr["deposit_s"])),
            fmt(f(rr["colmax_s"])), fmt(f(rr["allreduce_rep_s"])), fmt(f(rr["allreduce_fast_s"])),
            pct(f(rr["repro_overhead_frac"])))

if imx2:
    print("\n### Strong scaling 1 -> 2 ranks (Fashion-MNIST, N = 60000)\n")
    head("K", "reduction", "P=1 s", "P=2 s", "speed-up", "efficiency", "P=2 reduce s", "load (P=1, P=2)")
    for K, red, a in by_K_reduction(imx1):
        b = get(imx2, K, red)
        if b:
            s = f(a["eval_best_s"]) / f(b["eval_best_s"])
            row(K, red, fmt(f(a["eval_best_s"])), fmt(f(b["eval_best_s"])), fmt(s), pct(s / 2),
                fmt(f(b["reduce_s"])), "%s, %s" % (a["load1"], b["load1"]))
w1, w2 = rows("weak_p1.csv"), rows("weak_p2.csv")
if w1 and w2:
    print("\n### Weak scaling 1 -> 2 ranks (synthetic gmm, 16384 rows per rank, n = 784, reproducible)\n")
    head("K", "P=1 s", "P=2 s", "efficiency", "load (P=1, P=2)", "foreign cores (P=1, P=2)")
    for a in w1:
        b = [x for x in w2 if x["K"] == a["K"]]
        if b:
            b = b[0]
            row(a["K"], fmt(f(a["eval_best_s"])), fmt(f(b["eval_best_s"])),
                pct(f(a["eval_best_s"]) / f(b["eval_best_s"])), "%s, %s" % (a["load1"], b["load1"]),
                "%s, %s" % (a["foreign_cores"], b["foreign_cores"]))
m, pm = rows("moments_p1.csv"), rows("peer_moments.csv")
if m:
    print("\n### Input-moment path (identity activation, gaussian preset, eps = 1e-3, Fashion-MNIST)\n")
    head("K", "infomax moments path s", "torch data pass (manual) s", "torch moments s",
         "torch data pass / infomax", "load")
    for r in m:
        K = int(r["K"])
        tm = [f(p["best_s"]) for p in pm if int(p["K"]) == K and p["variant"] == "manual"]
        to = [f(p["best_s"]) for p in pm if int(p["K"]) == K and p["variant"] == "moments"]
        tm = tm[0] if tm else float("nan")
        to = to[0] if to else float("nan")
        row(K, fmt(f(r["eval_best_s"])), fmt(tm), fmt(to), fmt(tm / f(r["eval_best_s"])), r["load1"])
s4, p4 = rows("syn_K4096.csv"), rows("peer_syn.csv")
if s4:
    print("\n### K = 4096 (synthetic, N = 8192, n = 784, P = 1)\n")
    head("reduction", "s/eval", "forward", "moments", "reduce", "linalg", "backward", "DGEMM GFLOP/s",
         "BLAS-3 phases fraction", "torch manual s", "load")
    for r in s4:
        tp = f(p4[0]["best_s"]) if p4 else float("nan")
        row(r["reduction"], *(fmt(f(r[c])) for c in ("eval_best_s", "forward_s", "moments_s", "reduce_s",
                                                     "linalg_s", "backward_s", "dgemm_gflops")),
            pct(f(r["blas3_frac_peak"])), fmt(tp), r["load1"])
