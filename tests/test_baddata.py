"""test_baddata: bad data, a full disk, ^C under mpiexec, the optimizer log's size.

Data out of the range the sums resolve (1e150, 1e-150) and labels out of range
are refused as data errors (exit 5) naming the column or row; a stray label
that makes most classes empty is warned about; a full disk ends with exit 4
naming the file and leaves no temporary files; ^C (SIGINT to mpiexec's process
group) stops the ranks with a checkpoint as docs/operations.md says; the
optimizer log's size is printed before training and output.optimizer_log_max_mib
bounds it."""
import glob
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np

from clitest import ENV, INFOMAX, check, finish, load_json, run, run_many, tmpdir, write

d = tmpdir()
HERE = os.path.dirname(os.path.abspath(__file__))
CFG = os.path.join(HERE, "..", "configs", "synthetic-ica.yaml")
rng = np.random.default_rng(0)
X = rng.standard_normal((600, 8))


def ours(err):
    """Our own messages in stderr, without mpiexec's banner."""
    return " | ".join(l for l in err.splitlines() if l.startswith("infomax"))


def npy_cfg(name, x, labels=None, extra=""):
    path = os.path.join(d, name + ".npy")
    np.save(path, x)
    lab = ""
    if labels is not None:
        lab = "  labels: %s\n" % os.path.join(d, name + "_y.npy")
        np.save(os.path.join(d, name + "_y.npy"), labels)
    return write(os.path.join(d, name + ".yaml"),
                 "data:\n  source: npy\n  path: %s\n%s%smodel:\n  units: 4\noptimizer:\n  max_it: 3\n"
                 % (path, lab, extra))


# Sections 1-3 are independent runs, two at a time (clitest.run_many).
# 1. Values near 1e150 (whatever the preprocessing) are a data error naming the
# column, the row of its largest value and the limit (was exit 10, "a bug").
big = X.copy()
big[:, 3] *= 1e150
row = int(np.argmax(np.abs(big[:, 3])))
big_cfg = npy_cfg("big", big)
# 2. A column of values near 1e-150 is not constant, but its products fall under
# what the sums resolve: refused the same way (was "constant column" or -nan).
small = X.copy()
small[:, 5] = 1e-150 * (1 + 0.1 * X[:, 5])
small_cfg = npy_cfg("small", small)
# 3. Labels: 3,000,000 is refused with its row and file; a stray 200 among 0..9
# (201 classes, most empty) is warned about with its row.
y = rng.integers(0, 10, 600).astype(np.int32)
y3m = y.copy()
y3m[401] = 3000000
y200 = y.copy()
y200[77] = 200
r = iter(run_many([(["train", big_cfg, "--out", os.path.join(d, "big_" + pre), "--set", "data.preprocess=" + pre], 2)
                   for pre in ("none", "standardize", "whiten")]
                  + [(["train", small_cfg, "--out", os.path.join(d, "small_" + pre), "--set", "data.preprocess=" + pre],
                      2) for pre in ("standardize", "whiten")]
                  + [(["train", npy_cfg("tiny", X * 1e-150), "--out", os.path.join(d, "tiny_scaled"),
                       "--set", "data.scale=1e150", "--set", "data.preprocess=standardize"], 2),
                     (["train", npy_cfg("y3m", X, y3m), "--out", os.path.join(d, "y3m")], 2),
                     (["train", npy_cfg("y200", X, y200), "--out", os.path.join(d, "y200")], 2)]))
for pre in ("none", "standardize", "whiten"):
    code, out, err = next(r)
    check(code == 5 and "column 3 (0-based)" in err and "row %d" % row in err and "1e+100" in err
          and "data.scale: 1e-150" in err,
          "1e150 in column 3, %s: exit %d (want 5), column, row %d, limit and data.scale named: %s"
          % (pre, code, row, ours(err)))
for pre in ("standardize", "whiten"):
    code, out, err = next(r)
    check(code == 5 and "column 5 (0-based)" in err and "1e-100" in err and "data.scale: 1e+150" in err,
          "1e-150 in column 5, %s: exit %d (want 5), column, limit and data.scale named: %s"
          % (pre, code, ours(err)))
code, out, err = next(r)
check(code == 0, "the same data with data.scale: 1e150 train (exit %d)" % code)
code, out, err = next(r)
check(code == 5 and "y3m_y.npy: label 3000000 at row 401" in err and "65535" in err,
      "label 3000000: exit %d (want 5), file, row and the limit 65535 named: %s" % (code, ours(err)))
code, out, err = next(r)
check(code == 0 and "201 classes" in err and "row 77" in err,
      "label 200 among 0..9: warned with its row (exit %d): %s" % (code, ours(err)))

# 4. A full disk: exit 4 naming the file and the cause, summary.json attempted,
# and no temporary file left behind. A 200 KiB tmpfs (root only).
mnt = os.path.join(d, "full")
os.makedirs(mnt)
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", mnt],
                         capture_output=True).returncode == 0 if os.geteuid() == 0 else False
if not mounted:
    print("SKIPPED: full disk: cannot mount a small tmpfs here (needs root)")
else:
    try:
        with open(os.path.join(mnt, "filler"), "wb") as f:
            f.write(b"\0" * 170 * 1024)
        rd = os.path.join(mnt, "r")
        code, out, err = run(["train", CFG, "--out", rd, "--set", "data.samples=2000",
                              "--set", "optimizer.max_it=60"], ranks=2)
        stray = glob.glob(os.path.join(rd, "*.tmp*"))
        check(code == 4 and "No space left on device" in err and "summary.json" in err and not stray,
              "full disk: exit %d (want 4), ENOSPC and summary.json named, stray files %s: %s"
              % (code, stray, ours(err)))
    finally:
        subprocess.run(["umount", mnt])

# 5. ^C at a terminal: SIGINT goes to mpiexec's process group only (Open MPI
# puts each rank in a group of its own). mpiexec exits 1 whatever the ranks do;
# it sends them SIGCONT, SIGTERM about 1 s later (a stop request: the ranks
# checkpoint at the next iteration boundary) and SIGKILL 1 s after that. What
# is promised: exit 1, and a checkpoint to resume from.
rd = os.path.join(d, "ctrl_c")
cmd = [shutil.which("mpiexec"), "-n", "2", INFOMAX, "train", CFG, "--out", rd,
       "--set", "optimizer.max_it=100000", "--set", "data.samples=100000",
       "--set", "optimizer.gatol=0", "--set", "optimizer.grtol=0", "--set", "output.checkpoint_every=5"]
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                     start_new_session=True)
t0 = time.time()
while not os.path.exists(os.path.join(rd, "checkpoint.bin")) and time.time() - t0 < 60:
    time.sleep(0.1)
time.sleep(0.5)
os.killpg(p.pid, signal.SIGINT)
try:
    out, err = p.communicate(timeout=60)
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    out, err = p.communicate()
last = json.loads(open(os.path.join(rd, "metrics.jsonl")).read().splitlines()[-1])["iter"]
code, out2, err2 = run(["train", "--resume", rd, "--set", "optimizer.max_it=%d" % (last + 2)], ranks=1)
check(p.returncode == 1 and code == 0,
      "^C under mpiexec: mpiexec exits %d (Open MPI's 1), the run resumes from its checkpoint (exit %d)"
      % (p.returncode, code))
# 6. The optimizer log: its size is printed before training; with
# output.optimizer_log_max_mib it stops growing, says so, summary.json records
# where, and a resume past that point continues from the checkpoint's weights.
rd = os.path.join(d, "cap")
code, out, err = run(["train", CFG, "--out", rd, "--set", "data.samples=2000", "--set", "optimizer.max_it=20",
                      "--set", "output.optimizer_log_max_mib=0.005", "--set", "optimizer.gatol=0",
                      "--set", "optimizer.grtol=0"], ranks=2)
s = load_json(os.path.join(rd, "summary.json")) if code == 0 else {}
log = s.get("optimizer_log", {})
size = os.path.getsize(os.path.join(rd, "optimizer_log.bin")) if code == 0 else -1
check(code == 0 and "MiB per evaluation, about" in out and out.index("MiB per evaluation") < out.index("iter ")
      and "stops at 8 evaluations" in err and log.get("capped_at_evaluation") == 8
      and 0 < size <= 0.005 * 1048576,
      "optimizer log: size printed before training, capped at 8 evaluations, %d bytes <= 0.005 MiB, "
      "summary %s (exit %d)" % (size, log, code))
code, out, err = run(["train", "--resume", rd, "--set", "optimizer.max_it=23"], ranks=1)
check(code == 0 and "stops at 8 evaluations" in err and "fresh lmvm state" in err and "exact" not in out,
      "resume past the cap: from the checkpoint's weights, said so, not called exact (exit %d): %s"
      % (code, ours(err)))

ops = open(os.path.join(HERE, "..", "docs", "operations.md")).read()
check("odls_base_sigkill_timeout" in ops and "kill -USR1" in ops,
      "docs/operations.md says what ^C under mpiexec does and how to stop with exit 75")

finish()
