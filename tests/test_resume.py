"""test_resume: a resume never rewinds, mixes or overwrites (docs/operations.md).

Small runs (2000 rows x 8 columns, K = 8, a few iterations), each case a way a
resume used to lose work or continue into another run while calling it exact:
max_it below the checkpoint, other data or settings, relative paths from
another directory, a resume that fails while retracing, metrics.jsonl lines
after the checkpoint, and a backend that parallel.linalg: auto would choose
differently at resume."""
import hashlib
import os
import re
import shutil
import struct
import subprocess
import zlib

import numpy as np

from clitest import ENV, INFOMAX, check, finish, load_json, run, small_npy_run

d, DATA, CFG, train = small_npy_run(5, ["gatol: 0", "grtol: 0"], "output:\n  checkpoint_every: 4\n")


def digest(rd, names=("checkpoint.bin", "layer1_W.npy", "layer1_b.npy", "summary.json", "metrics.jsonl")):
    out = {}
    for n in names:
        with open(os.path.join(rd, n), "rb") as f:
            out[n] = hashlib.sha256(f.read()).hexdigest()
    return out


def same_weights(a, b):
    return all((np.load(os.path.join(a, f)) == np.load(os.path.join(b, f))).all()
               for f in ("layer1_W.npy", "layer1_b.npy"))


# 1. max_it below the checkpoint's iteration: nothing is replayed or written.
r1 = os.path.join(d, "r1")
c0 = train(r1, 12)[0]
before = digest(r1)
c, out, err = run(["train", "--resume", r1, "--set", "optimizer.max_it=5"], ranks=1)
check(c0 == 0 and c == 0 and digest(r1) == before and "at iteration 12, beyond optimizer.max_it 5" in err
      and "optimizer.max_it=N" in err,
      "resume with max_it 5 < the checkpoint's 12: exit %d, every file unchanged, says how to continue" % c)

# 2. Other data (one value changed) or other settings: refused with the list of
# differences (exit 3); --allow-changes continues, and says it is not exact.
other = os.path.join(d, "y.npy")
x = np.load(DATA)
x[17, 3] += 1e-9
np.save(other, x)
before = digest(r1)
c, out, err = run(["train", "--resume", r1, "--set", "data.path=" + other, "--set", "optimizer.max_it=16"],
                  ranks=2)
check(c == 3 and "data: rows differ (fingerprint" in err and digest(r1) == before,
      "resume on data with one value changed: exit %d (want 3), refused, files unchanged: %s"
      % (c, err.strip()[-160:]))
for key, value, old in (("objective.lambda", "0.5", "0.1"), ("objective.eps", "0.001", "0"),
                        ("model.temperature", "2", "1"), ("data.preprocess", "whiten", "center")):
    c, out, err = run(["train", "--resume", r1, "--set", "%s=%s" % (key, value),
                       "--set", "optimizer.max_it=16"], ranks=1)
    check(c == 3 and "%s: %s -> %s" % (key, old, value) in err and digest(r1) == before,
          "resume with %s changed: exit %d (want 3), the difference listed" % (key, c))
c, out, err = run(["train", "--resume", r1, "--allow-changes", "--set", "objective.lambda=0.5",
                   "--set", "optimizer.max_it=16"], ranks=1)
s = load_json(os.path.join(r1, "summary.json"))
check(c == 0 and "resume     exact" not in out and "NOT exact" in out
      and s["resume"] == {"exact": False, "changes": "objective.lambda: 0.1 -> 0.5"},
      "--allow-changes: continues (exit %d), never called exact, summary.json says what changed" % c)
c, out, err = run(["train", "--resume", r1, "--set", "optimizer.max_it=18"], ranks=1)
check(c == 0 and "NOT exact" in out and load_json(os.path.join(r1, "summary.json"))["resume"]["exact"] is False,
      "a later resume of a changed run is not exact either")

# 3. Relative paths are resolved once and recorded: a resume from another
# directory reads the same file.
sub = os.path.join(d, "sub")
os.makedirs(sub)
shutil.copy(DATA, os.path.join(sub, "rel.npy"))
r3 = os.path.join(d, "r3")
p = subprocess.run([INFOMAX, "train", CFG, "--out", r3, "--set", "data.path=rel.npy",
                    "--set", "optimizer.max_it=4"], cwd=sub, capture_output=True, text=True, env=ENV)
q = subprocess.run([INFOMAX, "train", "--resume", r3, "--set", "optimizer.max_it=8"], cwd="/",
                   capture_output=True, text=True, env=ENV)
cfg3 = open(os.path.join(r3, "config.yaml")).read()
check(p.returncode == 0 and q.returncode == 0 and "path: " + os.path.join(sub, "rel.npy") in cfg3
      and "resume     exact" in q.stdout,
      "relative data.path: recorded absolute, resume from / exits %d: %s" % (q.returncode, q.stderr.strip()[-120:]))

# One run of 8 iterations on 1 rank, copied for sections 4, 5 and the last one
# (each starts from the same bytes a run of its own would write).
r8 = os.path.join(d, "r8")
c8 = train(r8, 8)[0]

# 4. A resume that fails while retracing (damaged optimizer log: exit 5) leaves
# the earlier results as they were.
r4 = shutil.copytree(r8, os.path.join(d, "r4"))
before = digest(r4)
with open(os.path.join(r4, "optimizer_log.bin"), "r+b") as f:
    f.seek(100)
    f.write(b"\xff\xff")
c, out, err = run(["train", "--resume", r4, "--set", "optimizer.max_it=12"], ranks=2)
check(c == 5 and "corrupt" in err and digest(r4) == before,
      "damaged optimizer log: exit %d (want 5), layer1_W.npy, summary.json, checkpoint unchanged" % c)

# 5. metrics.jsonl holds each iteration once, as the checkpoint saw it: lines
# after the checkpoint (a kill -9 after iteration 12, checkpoint at 8) and a
# partial line are dropped before the resume appends.
r5, full = shutil.copytree(r8, os.path.join(d, "r5")), os.path.join(d, "full5")
keep = {n: open(os.path.join(r5, n), "rb").read() for n in ("checkpoint.bin", "optimizer_log.bin")}
run(["train", "--resume", r5, "--set", "optimizer.max_it=12"], ranks=1)
for n, b in keep.items():
    open(os.path.join(r5, n), "wb").write(b)
with open(os.path.join(r5, "metrics.jsonl"), "a") as f:
    f.write('{"iter": 13, "lo')
c, out, err = run(["train", "--resume", r5, "--set", "optimizer.max_it=14"], ranks=2)
train(full, 14)
iters = [int(l.split('"iter":')[1].split(",")[0]) for l in open(os.path.join(r5, "metrics.jsonl"))]
check(c == 0 and iters == list(range(15)) and same_weights(r5, full),
      "metrics.jsonl after a kill past the checkpoint and a resume: iterations %s..%s, each once (%d lines)"
      % (iters[0], iters[-1], len(iters)))

# 6. parallel.linalg: auto decides from the memory per rank: the resume keeps
# the checkpoint's backend (and says what auto would choose), bit for bit.
r6, full6 = os.path.join(d, "r6"), os.path.join(d, "full6")
tiny = ["--set", "parallel.memory_mib=0.1"]
train(full6, 10, *tiny)
train(r6, 5, *tiny)
c, out, err = run(["train", "--resume", r6, "--set", "optimizer.max_it=10", "--set", "parallel.memory_mib=0"],
                  ranks=1)
s = load_json(os.path.join(r6, "summary.json"))
check(c == 0 and "as the checkpoint (auto would choose replicated" in out
      and s["linalg"]["backend"] == "scalapack" and same_weights(r6, full6),
      "auto chose scalapack (memory_mib 0.1); resume with more memory keeps scalapack, bit for bit (exit %d)" % c)

# 7. The progress line: iteration / max_it and an ETA from the mean time per
# iteration so far ("ETA ?" before there is one; 0 on the last line), counted
# from the resume on a resume.
PROGRESS = re.compile(r"^iter +(\d+)/(\d+)  .*  dead \d+  ([\d.]+) s  ETA (\?|[\d.]+ s|\d+m\d\ds|\d+h\d\dm)$", re.M)


def seconds(eta):
    m = re.fullmatch(r"(\d+)h(\d\d)m|(\d+)m(\d\d)s|([\d.]+) s", eta)
    return (int(m.group(1)) * 3600 + int(m.group(2)) * 60 if m.group(1) else
            int(m.group(3)) * 60 + int(m.group(4)) if m.group(3) else float(m.group(5)))


def eta_ok(lines, first, limit):
    """Each line's ETA against (limit - it) * mean seconds per iteration since
    the line of iteration `first` (the printed times have 2 decimals). After a
    resume, whose line shows no time, the mean is since the resume: at most
    the time since the start of the session divided by the iterations since
    the resume."""
    times = {int(it): float(t) for it, _, t, _ in lines}
    bad = []
    for it, lim, t, eta in lines:
        it, lim = int(it), int(lim)
        if lim != limit or (it == first) != (eta == "?"):
            bad.append("iter %d: %s/%d ETA %s" % (it, lim, limit, eta))
        elif it > first:
            want = (limit - it) * (float(t) - times.get(first, 0)) / (it - first)
            tol = 0.06 + 0.02 * (limit - it) + 0.01 * want
            if abs(seconds(eta) - want) > tol and (first in times or seconds(eta) > want + tol):
                bad.append("iter %d: ETA %s, expected %s%.2f s" % (it, eta, "" if first in times else "<= ", want))
    return bad


r7 = os.path.join(d, "r7")
c, out, err = train(r7, 6)
lines = PROGRESS.findall(out)
bad = eta_ok(lines, 0, 6)
check(c == 0 and [int(l[0]) for l in lines] == list(range(7)) and lines[-1][3] == "0.0 s" and not bad,
      "progress lines iter 0/6 .. 6/6 with an ETA from the mean time per iteration%s" % (": " + "; ".join(bad) if bad else ""))
c, out, err = run(["train", "--resume", r7, "--set", "optimizer.max_it=10"], ranks=2)
lines = PROGRESS.findall(out)
bad = eta_ok(lines, 6, 10)
check(c == 0 and "resumed at iteration 6/10" in out and [int(l[0]) for l in lines] == list(range(7, 11))
      and not bad, "resumed: iter 7/10 .. 10/10, the ETA counted from the resume%s" % (": " + "; ".join(bad) if bad else ""))

# A checkpoint written before a key existed (here objective.extended_every,
# removed from its settings as an older infomax wrote them): the key at its
# default is no difference, so the resume is exact and ends where an
# uninterrupted run ends; at another value it is a difference.
rk, rf = os.path.join(d, "rk"), r8
ck1 = train(rk, 4)[0]
ck2 = c8
path = os.path.join(rk, "checkpoint.bin")
raw = open(path, "rb").read()[:-4]
line = b"objective.extended_every: 0\n"
at = raw.find(line)
if at >= 0:
    end = raw.index(b"\0", at)
    raw = raw[:at] + raw[at + len(line):end] + b"\0" * len(line) + raw[end:]
    open(path, "wb").write(raw + struct.pack("<I", zlib.crc32(raw)))
saved = os.path.join(d, "rk_saved")
shutil.copytree(rk, saved)
cx, out, err = run(["train", "--resume", saved, "--set", "optimizer.max_it=8",
                    "--set", "objective.extended_every=3", "--set", "objective.entropy=1"], ranks=1)
c, out, err2 = run(["train", "--resume", rk, "--set", "optimizer.max_it=8"], ranks=2)
ok = (at >= 0 and ck1 == ck2 == c == 0 and "exact" in out and "NOT exact" not in out and same_weights(rk, rf)
      and cx == 3 and "objective.extended_every: (none) -> 3" in err)
check(ok,
      "checkpoint without a later key: resume at its default is exact and bitwise the uninterrupted run "
      "(exit %d), at another value a difference (exit %d) %s" % (c, cx, "" if ok else (err2 + err).strip()[-300:]))

shutil.rmtree(d)
finish()
