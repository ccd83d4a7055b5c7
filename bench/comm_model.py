#!/usr/bin/python3
"""comm_model: project the time per iteration of `infomax train` (data path,
replicated linear algebra) from P = 1 to 1024 ranks, strong and weak scaling.

Inputs, both written by `infomax bench`:
  BENCH.csv            phase times of one evaluation at P = 1 (per K, per reduction)
  ALLRED.csv           MPI_Allreduce times by message size at P >= 2
                       (`infomax bench ... allreduce=1 --out X.csv` writes X.csv.allreduce.csv)

Model of one iteration (one evaluation + TAO's own work), P ranks:
  T(P) = (forward + moments + backward + reduce)_local * rows(P) / rows(1)
       + linalg + optimizer                       (replicated: the same on every rank)
       + sum over the evaluation's MPI_Allreduce calls of
             ceil(log2 P) * alpha + 2 (P - 1) / P * bytes * beta
The calls of one evaluation (src/model/layer.c, src/reduce/moments.c, src/reduce/rsum.c):
  reproducible: 4 sums (colsum A: 3K, A^T A: 3K(K+1)/2 (its lower triangle), dZ^T X: 3Kn,
                colsum dZ: 3K doubles),
                4 column-maxima MAX reductions (K doubles each), 4 two-int64 checks;
  fast:         4 sums (K, K^2, Kn, K doubles), 4 two-int64 checks, 1 two-uint64 hash.
alpha (latency) and beta (seconds per byte) are fitted to ALLRED.csv at its P
with the same formula (least squares, relative error). For a cluster, measure
ALLRED.csv there between two nodes (one rank each) and pass it: the shared-memory
numbers of one host are not a network's. --alpha/--beta override the fit.

Usage: bench/comm_model.py BENCH.csv ALLRED.csv [--K 64,256,1024] [--out PREFIX]
Writes PREFIX.csv (projections), PREFIX.md (tables) and PREFIX.png (plot, if
matplotlib is installed).

The scalapack backend (--scalapack K1,K2,...: weak scaling with --rows rows
per rank, no BENCH.csv needed; ALLRED.csv or --alpha/--beta for the network):
  bytes each rank sends per evaluation (the ring model of src/base's
  imx_comm_sent, checked by tests/test_scalapack.c within 2 %):
      (P - 1) / P * 8 * (a Ltot + 6 (K n + K) + (kt - 1) nb^2 + 16 K)
  Ltot ~ K (K + nb) / 2 the elements of the lower tiles, a = 3 (gram:
  reduce-scatter of three exact pieces per value; 1 in fast mode) + 1 (the
  Cholesky's panels) + 2 (the two triangular solves with L) [+ 1: G to the
  rows when other terms write it]; with M^-1 formed instead of the solves,
  + 3 (two passes over L and the reduce-scatter of M^-1) + 1 (G): a = 8;
  collectives per evaluation: kt broadcasts and kt - 1 all-gathers (the
  Cholesky) + one per group of columns in the gram, the solves and G.
  Time per evaluation and rank:
      flops / (frac * rate) + collectives * ceil(log2 P) * alpha + bytes * beta
  flops per rank: gram N_p K^2 + solves 2 N_p K^2 (+ 2 N_p K^2 for G beside
  other terms) + forward and dL/dW 4 N_p n K + Cholesky K^3 / (3 P) (the
  inverse: + 2 K^3 / (3 P)); rate the DGEMM rate per rank (--rate), frac
  the share of it the phases reach (--frac). At fixed rows per rank the
  Cholesky's share falls as 1/P, so T(1) / T(P) exceeds 1; the efficiency
  reported is compute / (compute + communication) at each P (1 at P = 1).
"""
import argparse
import csv
import math
import sys


def calls(K, n, mode):
    """(count of latency terms, bytes) of one evaluation's reductions."""
    if mode == "reproducible":
        # C is symmetric: its reproducible sum sends the lower triangle
        sizes = [3 * K, 3 * K * (K + 1) // 2, 3 * K * n, 3 * K] + [K] * 4 + [2] * 4
    else:
        sizes = [K, K * K, K * n, K] + [2] * 4 + [2]
    return [8 * s for s in sizes]


def t_allreduce(nbytes, P, alpha, beta):
    if P <= 1:
        return 0.0
    return math.ceil(math.log2(P)) * alpha + 2.0 * (P - 1) / P * nbytes * beta


def fit(rows):
    """Least-squares fit of t = L*alpha + B*beta with relative weights."""
    sxx = sxy = syy = sx = sy = 0.0
    a11 = a12 = a22 = b1 = b2 = 0.0
    for P, nbytes, t in rows:
        L = math.ceil(math.log2(P))
        B = 2.0 * (P - 1) / P * nbytes
        w = 1.0 / t  # relative error
        x1, x2, y = L * w, B * w, t * w
        a11 += x1 * x1
        a12 += x1 * x2
        a22 += x2 * x2
        b1 += x1 * y
        b2 += x2 * y
    det = a11 * a22 - a12 * a12
    alpha = (b1 * a22 - b2 * a12) / det
    beta = (a11 * b2 - a12 * b1) / det
    del sxx, sxy, syy, sx, sy
    return max(alpha, 0.0), max(beta, 0.0)


def scalapack_model(K, nb, n, rows, P, mode, solves, other, alpha, beta, rate, frac):
    """(bytes per rank, collectives, compute s, comm s) of one evaluation."""
    kt = -(-K // nb)
    ltot = sum((kt - j) * nb * nb for j in range(kt))  # nb divides K here: the tiles are full
    a = (3 if mode == "reproducible" else 1) + 1 + (2 + (1 if other else 0) if solves else 4)
    payload = 8.0 * (a * ltot + 6 * (K * n + K) + (kt - 1) * nb * nb + 16 * K)
    sent = (P - 1) / P * payload
    # groups of about 2^24 doubles (or K^2/P) per exchange, as dmoments/dinv choose them
    gcols = max(nb, min(K * K // max(P, 1), 1 << 24) // K // nb * nb)
    groups = -(-K // gcols)
    ncoll = 2 * kt + groups * (1 + (2 + (1 if other else 0) if solves else 4))
    flops = rows * K * K + 2.0 * rows * K * K * (2 if (solves and other) or not solves else 1) \
        + 4.0 * rows * n * K + K ** 3 / 3.0 / P * (1 if solves else 3)
    comp = flops / (frac * rate)
    lat = math.ceil(math.log2(P)) * alpha if P > 1 else 0.0
    return sent, ncoll, comp, ncoll * lat + sent * beta


def scalapack_projection(a, alpha, beta):
    lines = ["", "# scalapack backend, weak scaling (%d rows per rank, n = %d, nb = %d, %s)" %
             (a.rows, a.n, a.nb, a.mode), "",
             "Assumptions: DGEMM rate %.3g GFLOP/s per rank, phases at %.0f %% of it; alpha = %.3g s, "
             "beta = %.3g s/byte (%.2f GB/s); one rank per node; no overlap of communication "
             "and compute; the collectives' bytes by the ring model (the bytes each rank sends)."
             % (a.rate / 1e9, 100 * a.frac, alpha, beta, 1e-9 / beta if beta > 0 else float("inf"))]
    rows_out = []
    for K in [int(k) for k in a.scalapack.split(",") if k]:
        for solves, other, what in ((1, 0, "logdet alone: solves"), (1, 1, "logdet + offdiag, solves"),
                                    (0, 1, "logdet + offdiag, M^-1 formed (the rule's choice when N > K/3)")):
            lines += ["", "## K = %d, %s" % (K, what), "",
                      "| P | bytes/rank/eval | collectives | compute s | comm s | s/eval | efficiency |",
                      "|---|---|---|---|---|---|---|"]
            for e in range(0, 11):
                P = 2 ** e
                sent, nc, comp, comm = scalapack_model(K, a.nb, a.n, a.rows, P, a.mode, solves, other,
                                                       alpha, beta, a.rate, a.frac)
                tot = comp + comm
                rows_out.append((K, what, P, sent, comp, comm, tot, comp / tot))
                lines.append("| %d | %.3g | %d | %.4g | %.4g | %.4g | %.1f%% |" %
                             (P, sent, nc, comp, comm, tot, 100 * comp / tot))
        # A decomposition of the units (each rank all N = P rows_p rows of K/P
        # units) all-gathers the activations, (P-1)/P N K doubles, instead of
        # the gram's reduce-scatter, (P-1)/P pieces K^2/2 (pieces 3 or 1).
        pieces = 3 if a.mode == "reproducible" else 1
        lines += ["", "Units across ranks instead of rows (K = %d): the gram's reduce-scatter sends "
                  "(P-1)/P %d K^2/2 doubles per rank, an all-gather of the activations (P-1)/P N K: "
                  "fewer bytes only while N = P rows_per_rank < %g K = %d rows in all (at P = 1024: "
                  "%.1f rows per rank)." % (K, pieces, pieces / 2, pieces * K // 2, pieces * K / 2 / 1024)]
    return lines, rows_out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench", nargs="?", default="")
    ap.add_argument("allreduce", nargs="?", default="")
    ap.add_argument("--scalapack", default="", help="K values: project the scalapack backend")
    ap.add_argument("--rows", type=int, default=8192, help="rows per rank (--scalapack)")
    ap.add_argument("--n", type=int, default=64, help="inputs n (--scalapack)")
    ap.add_argument("--nb", type=int, default=64, help="tile size (--scalapack)")
    ap.add_argument("--mode", default="reproducible", help="reproducible or fast (--scalapack)")
    ap.add_argument("--rate", type=float, default=40e9, help="DGEMM flop/s per rank (--scalapack)")
    ap.add_argument("--frac", type=float, default=0.7, help="share of --rate reached (--scalapack)")
    ap.add_argument("--K", default="")
    ap.add_argument("--alpha", type=float)
    ap.add_argument("--beta", type=float)
    ap.add_argument("--block", type=int, default=256, help="parallel.block B")
    ap.add_argument("--out", default="comm_model")
    a = ap.parse_args()

    if a.scalapack and not a.allreduce:
        if a.alpha is None or a.beta is None:
            sys.exit("comm_model: --scalapack without ALLRED.csv needs --alpha and --beta")
        lines, rows_out = scalapack_projection(a, a.alpha, a.beta)
        with open(a.out + ".csv", "w") as out:
            out.write("K,case,P,bytes_per_rank,compute_s,comm_s,total_s,efficiency\n")
            for r in rows_out:
                out.write("%d,%s,%d,%.6e,%.6e,%.6e,%.6e,%.4f\n" % r)
        open(a.out + ".md", "w").write("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    ar = [(int(r["P"]), float(r["bytes"]), float(r["seconds"])) for r in csv.DictReader(open(a.allreduce))
          if int(r["P"]) >= 2]
    if not ar:
        sys.exit("comm_model: %s has no rows with P >= 2" % a.allreduce)
    alpha, beta = fit(ar)
    if a.alpha is not None:
        alpha = a.alpha
    if a.beta is not None:
        beta = a.beta
    # The fit against the measurements.
    lines = ["# Communication model", "",
             "alpha = %.3g s (latency per log2 P step), beta = %.3g s/byte (%.2f GB/s), fitted to %s"
             % (alpha, beta, 1e-9 / beta if beta > 0 else float("inf"), a.allreduce), "",
             "| P | bytes | measured s | model s |", "|---|---|---|---|"]
    for P, nbytes, t in ar:
        lines.append("| %d | %d | %.3g | %.3g |" % (P, nbytes, t, t_allreduce(nbytes, P, alpha, beta)))

    want = {int(k) for k in a.K.split(",") if k}
    bench = [r for r in csv.DictReader(open(a.bench)) if int(r["P"]) == 1 and r["path"] == "data"
             and (not want or int(r["K"]) in want)]
    out = open(a.out + ".csv", "w")
    out.write("scaling,K,reduction,P,rows_per_rank,compute_s,replicated_s,comm_s,total_s,efficiency,comm_frac\n")
    series = {}
    for r in bench:
        K, n, N, mode = int(r["K"]), int(r["n"]), int(r["N"]), r["reduction"]
        local = sum(float(r[c]) for c in ("forward_s", "moments_s", "backward_s", "reduce_s"))
        opt = float(r["optimizer_s_per_it"]) if r["optimizer_s_per_it"] not in ("", "nan") else 0.0
        rep = float(r["linalg_s"]) + (opt if opt == opt else 0.0)
        msgs = calls(K, n, mode)
        blocks = -(-N // a.block)
        for scaling in ("strong", "weak"):
            lines += ["", "## %s scaling, K=%d, n=%d, %s reductions (N=%d %s)" %
                      (scaling, K, n, mode, N, "in total" if scaling == "strong" else "per rank"), "",
                      "| P | rows/rank | local s | replicated s | comm s | s/iteration | efficiency | comm share |",
                      "|---|---|---|---|---|---|---|---|"]
            t1 = None
            for e in range(0, 11):
                P = 2 ** e
                if scaling == "strong":
                    if P > blocks:
                        lines.append("| %d | - | - | - | - | - | - | N=%d has %d blocks of %d: at most %d ranks |"
                                     % (P, N, blocks, a.block, blocks))
                        break
                    rows, comp = N / P, local / P
                else:
                    rows, comp = N, local
                comm = sum(t_allreduce(m, P, alpha, beta) for m in msgs)
                tot = comp + rep + comm
                t1 = tot if t1 is None else t1
                eff = (t1 / (P * tot)) if scaling == "strong" else t1 / tot
                series.setdefault((scaling, K, mode), []).append((P, tot, eff))
                out.write("%s,%d,%s,%d,%.0f,%.6e,%.6e,%.6e,%.6e,%.4f,%.4f\n" %
                          (scaling, K, mode, P, rows, comp, rep, comm, tot, eff, comm / tot))
                lines.append("| %d | %.0f | %.4g | %.4g | %.4g | %.4g | %.0f%% | %.0f%% |" %
                             (P, rows, comp, rep, comm, tot, 100 * eff, 100 * comm / tot))
    out.close()
    if a.scalapack:
        lines += scalapack_projection(a, alpha, beta)[0]
    open(a.out + ".md", "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        for (scaling, K, mode), pts in sorted(series.items()):
            i = 0 if scaling == "strong" else 1
            ax[i].plot([p for p, _, _ in pts], [e for _, _, e in pts], marker="o",
                       label="K=%d %s" % (K, mode))
        for i, s in enumerate(("strong", "weak")):
            ax[i].set_xscale("log", base=2)
            ax[i].set_ylim(0, 1.05)
            ax[i].set_xlabel("ranks P")
            ax[i].set_ylabel("parallel efficiency")
            ax[i].set_title("%s scaling (model)" % s)
            ax[i].grid(True, alpha=0.3)
        ax[1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(a.out + ".png", dpi=90)
        print("plot: %s.png" % a.out)
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)


if __name__ == "__main__":
    main()
