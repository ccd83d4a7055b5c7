#!/usr/bin/env python3
"""Gather the points of a scaling study (run directories OUT/p<RANKS>) into CSV.

usage: python3 jobs/gather-scaling.py strong|weak OUT_DIR > OUT_DIR/scaling.csv

Columns: mode, ranks, N, n, K, iterations, evaluations, seconds per evaluation
(TaoSolve wall time / evaluations), the slowest rank's seconds per evaluation in
each phase (forward, moments, reduce, linalg, backward), peak memory of the
largest rank (MiB), and the efficiency against the smallest rank count
(strong: t1 / (p t_p) x p1; weak: t1 / t_p).
"""
import csv
import json
import os
import re
import sys


def main(mode, out):
    rows = []
    for name in os.listdir(out):
        m = re.fullmatch(r"p(\d+)", name)
        path = os.path.join(out, name, "summary.json")
        if not m or not os.path.exists(path):
            continue
        s = json.load(open(path))
        if s.get("status") != "ok":
            print("gather-scaling: %s: status %s (%s), left out" % (path, s.get("status"), s.get("error")),
                  file=sys.stderr)
            continue
        ev = max(s["optimizer"]["evaluations"], 1)
        row = {"mode": mode, "ranks": s["ranks"], "N": s["data"]["N"], "n": s["data"]["n"],
               "K": s["model"]["K"], "iterations": s["optimizer"]["iterations"], "evaluations": ev,
               "sec_per_eval": s["optimizer"]["seconds"] / ev}
        for ph in ("forward", "moments", "reduce", "linalg", "backward"):
            row[ph + "_max"] = s["timers"][ph]["max"] / ev
        row["peak_mib_max"] = max(s["peak_memory_mib"])
        rows.append(row)
    rows.sort(key=lambda r: r["ranks"])
    if rows:
        p1, t1 = rows[0]["ranks"], rows[0]["sec_per_eval"]
        for r in rows:
            if mode == "strong":
                r["efficiency"] = t1 * p1 / (r["sec_per_eval"] * r["ranks"])
            else:
                r["efficiency"] = t1 / r["sec_per_eval"]
    cols = ["mode", "ranks", "N", "n", "K", "iterations", "evaluations", "sec_per_eval",
            "forward_max", "moments_max", "reduce_max", "linalg_max", "backward_max",
            "peak_mib_max", "efficiency"]
    w = csv.DictWriter(sys.stdout, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({k: ("%.6g" % v if isinstance(v, float) else v) for k, v in r.items()})
    return 0 if rows else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("strong", "weak"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
