"""test_sweep: jobs/sweep.sbatch and jobs/gather-sweep.py without Slurm.

The array task script is a plain shell script: run with bash and
SLURM_ARRAY_TASK_ID set by hand (LAUNCH="mpiexec -n 2"), each task trains the
settings of its line of the sweep file into OUT_DIR/run-i; the gather script
makes one table (TSV and Markdown) with one row per line, the swept values and
the runs' results; a task past the end of the file, a missing run and a
second submission (which leaves a finished run as it is) are handled.
tests/test_slurm.py submits the same sweep as a real job array
(jobs/submit-sweep.sh).
"""
import hashlib
import os
import shutil
import subprocess
import sys

from clitest import ENV, INFOMAX, ROOT, check, finish, load_json, tmpdir, write

JOBS = os.path.join(ROOT, "jobs")
CFG = os.path.join(ROOT, "configs", "synthetic-ica.yaml")
d = tmpdir()
sweep = write(os.path.join(d, "sweep.txt"), "# units and lambda\nmodel.units=4 objective.lambda=0.1\n\n"
              "model.units=3 --set objective.lambda=0.5 -tao_type cg\n")
out = os.path.join(d, "out")
COMMON = ["--set", "data.samples=2000", "--set", "optimizer.max_it=3"]
env = dict(ENV, INFOMAX=INFOMAX, LAUNCH="mpiexec -n 2")


def task(i, extra=COMMON):
    p = subprocess.run(["bash", os.path.join(JOBS, "sweep.sbatch"), CFG, sweep, out] + extra, capture_output=True,
                       text=True, env=dict(env, SLURM_ARRAY_TASK_ID=str(i)), timeout=120)
    return p.returncode, p.stdout + p.stderr


def gather(*extra):
    p = subprocess.run([sys.executable, os.path.join(JOBS, "gather-sweep.py"), out, sweep] + list(extra),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# 1. Task 1 alone: the table has both rows, task 2 "missing", exit 1.
c1, log1 = task(1)
code, tsv, err = gather()
rows = [ln.split("\t") for ln in tsv.splitlines()]
check(c1 == 0 and code == 1 and len(rows) == 3 and rows[2][rows[0].index("status")] == "missing",
      "task 1 run by hand (exit %d); gather before task 2: exit %d (1), task 2 \"missing\"%s"
      % (c1, code, "" if c1 == 0 else ": " + log1.strip()[-300:]))

# 2. Task 2: every run is in the table with its swept values and results.
c2, log2 = task(2)
code, tsv, err = gather()
rows = [ln.split("\t") for ln in tsv.splitlines()]
head = rows[0] if rows else []
table = [dict(zip(head, r)) for r in rows[1:]]
K = [load_json(os.path.join(out, "run-%d" % i, "summary.json"))["model"]["K"] for i in (1, 2)
     if os.path.exists(os.path.join(out, "run-%d" % i, "summary.json"))]
s2 = load_json(os.path.join(out, "run-2", "summary.json")) if c2 == 0 else {}
check(c2 == 0 and code == 0 and [t.get("task") for t in table] == ["1", "2"]
      and [t.get("model.units") for t in table] == ["4", "3"] and [t.get("objective.lambda") for t in table] == ["0.1", "0.5"]
      and table[1].get("options") == "-tao_type cg" and all(t.get("status") == "ok" for t in table)
      and all(t.get("iterations") == "3" for t in table) and K == [4, 3] and s2["optimizer"]["type"] == "cg",
      "two tasks, one table: columns %s; rows %s; runs trained K = %s, task 2 with TAO %s"
      % (head[:4], [[t.get(c) for c in ("task", "model.units", "objective.lambda", "status")] for t in table], K,
         s2.get("optimizer", {}).get("type")))
code, md, err = gather("--markdown")
lines = md.splitlines()
check(code == 0 and len(lines) == 4 and lines[0].startswith("| task | model.units | objective.lambda |")
      and lines[1].startswith("|---|") and lines[2].startswith("| 1 | 4 | 0.1 |"),
      "the same table as Markdown (%d lines)" % len(lines))

# 3. A second submission of task 1 leaves the finished run as it is.
w = digest(os.path.join(out, "run-1", "layer1_W.npy"))
c, log = task(1)
check(c == 0 and "resuming" in log and digest(os.path.join(out, "run-1", "layer1_W.npy")) == w,
      "task 1 again: resumes its finished run, weights unchanged (exit %d)" % c)

# 4. Bad tasks: past the end of the file, no task id.
c, log = task(3)
check(c == 2 and "task 3, but" in log and "has 2 runs (submit with --array=1-2)" in log,
      "task 3 of a 2-line sweep: exit %d (2): %s" % (c, log.strip()))
p = subprocess.run(["bash", os.path.join(JOBS, "sweep.sbatch"), CFG, sweep, out], capture_output=True, text=True,
                   env={k: v for k, v in env.items() if k != "SLURM_ARRAY_TASK_ID"}, timeout=60)
check(p.returncode == 2 and "submit with --array=1-N" in p.stderr,
      "no SLURM_ARRAY_TASK_ID: exit %d (2): %s" % (p.returncode, p.stderr.strip()))
shutil.rmtree(d)
finish()
