"""test_slurm: the jobs/ scripts under a real Slurm (tools/slurm-local.sh
brings one up on this machine; the test is skipped when no cluster answers).
A training job runs to the end; a job told to stop (SIGUSR1 to the batch
shell, as --signal does before a time limit) checkpoints, requeues itself,
resumes and ends bit for bit where an uninterrupted run ends; strong- and
weak-scaling submissions produce one CSV each; a sweep job array
(jobs/submit-sweep.sh) runs one run directory per task and gathers one table."""
import csv
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from clitest import ENV, INFOMAX, check, finish, tmpdir

# A machine without Slurm installed (the common case) has no sinfo at all.
if shutil.which("sinfo") is None or subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
    print("SKIP: no Slurm cluster answers (start one with: bash tools/slurm-local.sh start)")
    sys.exit(77)

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CFG = os.path.join(ROOT, "configs", "synthetic-ica.yaml")
JOBS = os.path.join(ROOT, "jobs")
env = dict(ENV, INFOMAX=INFOMAX)
d = tmpdir()


def sbatch(args):
    p = subprocess.run(["sbatch", "--parsable"] + args, capture_output=True, text=True, env=env, cwd=d)
    return p.stdout.strip().split(";")[0] if p.returncode == 0 else None


def state(jid):
    out = subprocess.run(["scontrol", "show", "job", jid], capture_output=True, text=True).stdout
    for tok in out.split():
        if tok.startswith("JobState="):
            return tok[len("JobState="):]
    return "GONE"


def wait_done(jid, limit):
    t0 = time.time()
    while time.time() - t0 < limit:
        st = state(jid)
        if st in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "GONE"):
            return st
        time.sleep(1)
    subprocess.run(["scancel", jid])
    return "TIMEOUT(test)"


# 2. Stop, checkpoint, requeue, resume: same bits as an uninterrupted run.
# (1.6M rows: about 0.1 s per iteration on 2 ranks here, so the signal, sent
# 0.3 s after the first checkpoint appears, lands well before max_it)
common = ["--set", "data.samples=1600000", "--set", "optimizer.max_it=40", "--set", "output.checkpoint_every=5",
          "--set", "model.activation=softmax", "--set", "objective.preset=gaussian", "--set", "optimizer.gatol=0"]
rq = os.path.join(d, "rq")
jid = sbatch(["-n", "2", "-O", "--output=%s/rq-%%j.out" % d, os.path.join(JOBS, "train.sbatch"), CFG, rq] + common)
t0 = time.time()
while jid and not os.path.exists(os.path.join(rq, "checkpoint.bin")) and time.time() - t0 < 60:
    time.sleep(0.2)
time.sleep(0.3)
subprocess.run(["scancel", "--signal=USR1", "--batch", jid or "0"])

# The rest runs while that job is requeued and waits to start again (tens of
# seconds): the uninterrupted run, a plain job (1), the scaling studies (3) and
# the sweep (4). Their jobs queue beside the requeued one; none of them
# depends on when the others run.
ref = subprocess.Popen([shutil.which("mpiexec"), "-n", "2", INFOMAX, "train", CFG, "--out", os.path.join(d, "ref")]
                       + common, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
# 1. A plain training job.
plain = sbatch(["-n", "2", "-O", "--output=%s/train-%%j.out" % d, os.path.join(JOBS, "train.sbatch"), CFG,
                os.path.join(d, "train"), "--set", "optimizer.max_it=20"])
# 3. Scaling studies: one CSV each.
studies = {}
for mode in ("strong", "weak"):
    out = os.path.join(d, mode)
    fixed = ["--set", "data.samples=20000"] if mode == "strong" else []  # weak: the script sets N
    studies[mode] = subprocess.Popen(["bash", os.path.join(JOBS, "submit-scaling.sh"), mode, CFG, out, "1", "2", "--",
                                      "--set", "optimizer.max_it=5"] + fixed,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=dict(env, WAIT="1", OVERCOMMIT="1", SAMPLES_PER_RANK="10000"))
# 4. A sweep: a 2-task job array over the lines of a sweep file, one table.
sweep = os.path.join(d, "sweep.txt")
with open(sweep, "w") as f:
    f.write("model.units=4 objective.lambda=0.1\nmodel.units=3 objective.lambda=0.5\n")
sweep_out = os.path.join(d, "sweep")
sw = subprocess.Popen(["bash", os.path.join(JOBS, "submit-sweep.sh"), CFG, sweep, sweep_out, "--",
                       "--set", "data.samples=2000", "--set", "optimizer.max_it=3"],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                      env=dict(env, WAIT="1", RANKS="2", OVERCOMMIT="1"))

st = wait_done(plain, 120) if plain else "not submitted"
check(st == "COMPLETED" and os.path.exists(os.path.join(d, "train", "summary.json")),
      "jobs/train.sbatch runs to the end: %s" % st)

st = wait_done(jid, 240) if jid else "not submitted"
log = open(os.path.join(d, "rq-%s.out" % jid)).read() if jid else ""
code = ref.wait(timeout=120)
same = False
if st == "COMPLETED" and code == 0:
    a, b = np.load(os.path.join(rq, "layer1_W.npy")), np.load(os.path.join(d, "ref", "layer1_W.npy"))
    same = bool((a == b).all())
check(st == "COMPLETED" and "requeueing" in log and "resuming" in log and same,
      "SIGUSR1 -> checkpoint -> scontrol requeue -> --resume: %s (requeued: %s, resumed: %s), identical "
      "to an uninterrupted run: %s" % (st, "requeueing" in log, "resuming" in log, same))

for mode in ("strong", "weak"):
    out = os.path.join(d, mode)
    studies[mode].communicate(timeout=300)
    rows = list(csv.DictReader(open(os.path.join(out, "scaling.csv")))) if studies[mode].returncode == 0 and \
        os.path.exists(os.path.join(out, "scaling.csv")) else []
    ns = [int(r["N"]) for r in rows]
    want = [20000, 20000] if mode == "strong" else [10000, 20000]
    check(len(rows) == 2 and [int(r["ranks"]) for r in rows] == [1, 2] and ns == want,
          "%s scaling on 1 and 2 ranks: scaling.csv with N = %s (want %s)" % (mode, ns, want))

sw_out, _ = sw.communicate(timeout=300)
out = sweep_out
tsv = os.path.join(out, "sweep.tsv")
rows = list(csv.DictReader(open(tsv), delimiter="\t")) if os.path.exists(tsv) else []
md = open(os.path.join(out, "sweep.md")).read() if os.path.exists(os.path.join(out, "sweep.md")) else ""
check(sw.returncode == 0 and [(r["task"], r["model.units"], r["objective.lambda"], r["status"]) for r in rows]
      == [("1", "4", "0.1", "ok"), ("2", "3", "0.5", "ok")] and md.count("\n") == 4
      and all(os.path.exists(os.path.join(out, "run-%d" % i, "summary.json")) for i in (1, 2)),
      "jobs/submit-sweep.sh: a 2-task array, run-1 and run-2, one table (sweep.tsv, sweep.md): %s %s"
      % ([(r.get("task"), r.get("model.units"), r.get("status")) for r in rows], sw_out.strip()[-200:]))
finish()
