#!/usr/bin/env python3
"""Gather the runs of a sweep (jobs/sweep.sbatch) into one table.

usage: python3 jobs/gather-sweep.py OUT_DIR SWEEP_FILE [--markdown] > OUT_DIR/sweep.tsv

One row per line of SWEEP_FILE (blank lines and # comments do not count),
task i read from OUT_DIR/run-i/summary.json: the task, one column per swept
key (its value as the line sets it), other words of the line (PETSc options),
the run's status and exit code, TAO's stopping reason, iterations, the final
loss, the measures of the trained layer (dead units, max and mean |corr|,
effective rank, winner entropy in bits, Gaussian TC in nats), TAO's seconds
and the run directory. A task without a summary.json is a row with status
"missing". Tab-separated values, or a Markdown table with --markdown.
Needs only the standard library. Exits 0 when every task ended with status
ok, 1 otherwise (the table is written either way), 2 on bad usage.
"""
import json
import os
import sys

MEASURES = ("dead_units", "max_abs_corr", "mean_abs_corr", "effective_rank", "winner_entropy_bits",
            "gaussian_tc")


def sweep_lines(path):
    with open(path) as f:
        return [ln.split() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]


def cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return "%.6g" % v
    return str(v)


def main(out, sweep, markdown):
    lines = sweep_lines(sweep)
    keys = []
    for words in lines:
        for w in words:
            k = w.split("=", 1)[0]
            if "=" in w and "." in k and not w.startswith("-") and k not in keys:
                keys.append(k)
    cols = ["task"] + keys + ["options", "status", "exit_code", "reason", "iterations", "loss"] + \
        list(MEASURES) + ["seconds", "run_dir"]
    rows, all_ok = [], True
    for i, words in enumerate(lines, 1):
        rd = os.path.join(out, "run-%d" % i)
        row = {"task": i, "run_dir": rd, "status": "missing"}
        sets = dict(w.split("=", 1) for w in words if "=" in w and w.split("=", 1)[0] in keys)
        row.update(sets)
        row["options"] = " ".join(w for w in words if w.split("=", 1)[0] not in sets and w != "--set")
        path = os.path.join(rd, "summary.json")
        if os.path.exists(path):
            with open(path) as f:
                s = json.load(f)
            opt, m = s.get("optimizer", {}), s.get("measures") or {}
            row.update(status=s.get("status"), exit_code=s.get("exit_code"), reason=opt.get("reason"),
                       iterations=opt.get("iterations"), loss=(s.get("final") or {}).get("loss"),
                       seconds=opt.get("seconds"))
            row.update({k: m.get(k) for k in MEASURES})
        all_ok = all_ok and row["status"] == "ok"
        rows.append(row)
    if markdown:
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(cell(r.get(c)).replace("|", "\\|") for c in cols) + " |")
    else:
        print("\t".join(cols))
        for r in rows:
            print("\t".join(cell(r.get(c)).replace("\t", " ") for c in cols))
    return 0 if all_ok else 1


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--markdown"]
    if len(args) != 2 or not os.path.isfile(args[1]):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(args[0], args[1], "--markdown" in sys.argv[1:]))
