"""test_stochastic: mini-batch training (optimizer.type adam and sgd; docs/guide.md,
"Mini-batch training").

Small runs (2000 rows x 8 columns in blocks of 64, K = 8, batches of 256 rows):
the weights, the moments and the checkpoint are the same bytes on 1..4 ranks;
a run stopped mid-epoch and resumed on another rank count ends in the same
bytes as one that was not stopped; the loss on all rows appears every
optimizer.eval_every epochs; the loss falls; bad settings are refused with
the numbers; the default (lmvm) writes no optimizer_state.bin."""
import filecmp
import json
import os
import shutil

import numpy as np

from clitest import check, finish, run, run_many, small_npy_run

# 2000 rows: 31 blocks of 64 and a short one of 16.
d, DATA, CFG, train = small_npy_run(7, ["type: adam", "lr: 0.05", "batch: 256", "eval_every: 2"],
                                    "parallel:\n  block: 64\noutput:\n  checkpoint_every: 5\n")
FILES = ("layer1_W.npy", "layer1_b.npy", "optimizer_state.bin", "checkpoint.bin")


def same(a, b):
    return [f for f in FILES if not filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False)]


def metrics(rd):
    with open(os.path.join(rd, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


# 1. The same bytes on 1..4 ranks, for adam and for sgd with momentum.
for kind, extra in (("adam", []), ("sgd", ["--set", "optimizer.type=sgd", "--set", "optimizer.lr=0.5"])):
    ref = os.path.join(d, kind + "1")
    c, out, err = train(ref, 23, *extra, ranks=1)
    check(c == 0 and "TAO " + kind in out, "%s on 1 rank: exit %d %s" % (kind, c, err.strip()[-200:]))
    for p in (2, 3, 4):
        rd = os.path.join(d, "%s%d" % (kind, p))
        c, out, err = train(rd, 23, *extra, ranks=p)
        diff = same(ref, rd) if c == 0 else FILES
        check(c == 0 and not diff,
              "%s on %d ranks: exit %d, %s" % (kind, p, c, "every file the same bytes as on 1 rank"
                                                if not diff else "differ: %s" % ", ".join(diff)))

# 1b. The scalapack backend on batches: the same bytes on 1 and 3 ranks, and the
# replicated backend's weights to rounding.
sc = ["--set", "parallel.linalg=scalapack", "--set", "parallel.scalapack_block=4"]
c1, _, err1 = train(os.path.join(d, "sc1"), 12, *sc, ranks=1)
c3, _, err3 = train(os.path.join(d, "sc3"), 12, *sc, ranks=3)
c0, _, _ = train(os.path.join(d, "rep12"), 12, ranks=2)
ok = c1 == 0 and c3 == 0 and c0 == 0
diff = same(os.path.join(d, "sc1"), os.path.join(d, "sc3")) if ok else FILES
dev = abs(np.load(os.path.join(d, "sc1", "layer1_W.npy")) -
          np.load(os.path.join(d, "rep12", "layer1_W.npy"))).max() if ok else np.inf
check(ok and not diff and dev <= 1e-12,
      "adam on scalapack: 1 and 3 ranks %s; against replicated max |dW| %.1e (tol 1e-12)"
      % ("the same bytes" if not diff else "differ: %s" % ", ".join(diff), dev))

# 2. The progress: 8 steps of 4 blocks per epoch (32 blocks); full_loss at epochs 0, 2 and
# at max_it.
m = metrics(os.path.join(d, "adam1"))
full = [(r["iter"], r["full_loss"]) for r in m if "full_loss" in r]
check([i for i, _ in full] == [0, 16, 23] and all("epoch" in r and "lr" in r for r in m),
      "metrics.jsonl: full_loss at iterations %s (want 0, 16 = epoch 2, 23 = max_it), "
      "epoch and lr on every line" % [i for i, _ in full])
check(full[-1][1] < full[0][1] - 1,
      "adam lowers the loss on all rows: %.6g -> %.6g" % (full[0][1], full[-1][1]))
with open(os.path.join(d, "adam1", "summary.json")) as f:
    s = json.load(f)
check(s["final"]["loss"] == full[-1][1],
      "summary.json's final loss %.10g is the loss on all rows at max_it %.10g"
      % (s["final"]["loss"], full[-1][1]))

# 3. Stopped mid-epoch (iteration 9, epoch 1.125) and resumed on other rank counts:
# the same bytes as the uninterrupted run.
for p0, p1 in ((1, 3), (4, 2)):
    rd = os.path.join(d, "res%d%d" % (p0, p1))
    train(rd, 9, ranks=p0)
    if p0 == 1:  # section 4 continues this run without its moments
        shutil.copytree(rd, os.path.join(d, "nomoments"))
    c, out, err = run(["train", "--resume", rd, "--set", "optimizer.max_it=23"], ranks=p1)
    diff = same(os.path.join(d, "adam1"), rd) if c == 0 else FILES
    check(c == 0 and "resume     exact" in out and not diff,
          "stopped at iteration 9 on %d rank(s), resumed on %d: exit %d, %s" %
          (p0, p1, c, "every file the same bytes" if not diff else "differ: %s" % ", ".join(diff)))
    iters = [r["iter"] for r in metrics(rd)]
    check(iters == list(range(24)), "metrics.jsonl after the resume: iterations 0..23 once each")

# 4. A resume without the moments continues, and says it is not exact.
rd = os.path.join(d, "nomoments")  # 9 iterations on 1 rank (section 3)
os.remove(os.path.join(rd, "optimizer_state.bin"))
c, out, err = run(["train", "--resume", rd, "--set", "optimizer.max_it=12"], ranks=1)
check(c == 0 and "moments at zero" in out + err and "NOT exact" not in out,
      "resume without optimizer_state.bin: exit %d, warned (moments at zero)" % c)
c, out, err = run(["train", "--resume", os.path.join(d, "adam1"), "--set", "optimizer.max_it=30",
                   "--set", "optimizer.lr=0.1"], ranks=1)
check(c == 3 and "optimizer.lr: 0.05 -> 0.1" in err,
      "resume with another optimizer.lr: exit %d (want 3), the difference named" % c)

# 5. Bad settings: exit 3 with the numbers.
bad = [
    (["optimizer.batch=300"], "multiple of 64"),
    (["optimizer.batch=64", "model.units=8", "parallel.block=8", "optimizer.batch=8"],
     "not more than model.units = 8"),
    (["optimizer.batch=4096"], "the data have 2000"),
    (["optimizer.schedule=linear"], "schedule"),
    (["optimizer.lr=0"], "optimizer.lr"),
    (["optimizer.beta2=1.5"], "optimizer.beta2"),
    (["model.activation=identity"], "input covariance"),
    (["optimizer.precondition=ica"], "is for TAO lmvm"),
    # optimizer.cov_blend where it is not built or means nothing (section 7)
    (["optimizer.cov_blend=1"], "below 1"),
    (["optimizer.type=lmvm", "optimizer.cov_blend=0.5"], "for the mini-batch types"),
    (["optimizer.cov_blend=0.5", "parallel.linalg=scalapack", "parallel.scalapack_block=4"],
     "replicated backend only"),
    (["optimizer.cov_blend=0.5", "objective.preset=none", "objective.lse=1"], "no term on C"),
]
# (independent runs, two at a time: clitest.run_many)
r = iter(run_many([(["train", CFG, "--out", os.path.join(d, "tt"), "--set", "optimizer.type=lmvm",
                     "-tao_type", "adam"], 1)] +
                  [(["train", CFG, "--out", os.path.join(d, "bad%d" % k), "--set", "optimizer.max_it=5"]
                    + sum((["--set", a] for a in sets), []), 2) for k, (sets, want) in enumerate(bad)]))
c, out, err = next(r)
check(c == 3 and "chosen with optimizer.type" in err,
      "-tao_type adam with optimizer.type lmvm: exit %d (want 3), refused" % c)
for k, (sets, want) in enumerate(bad):
    c, out, err = next(r)
    msg = [line for line in err.splitlines() if "error" in line]
    check(c == 3 and want in err, "%s: exit %d (want 3), says \"%s\": %s" %
          (" ".join(sets), c, want, msg[0][-200:] if msg else ""))


# 7. optimizer.cov_blend: C blended across steps. The same bytes on 1 and 3 ranks, another
# path than without it, and a stop at iteration 9 resumed on 2 ranks ends in the same bytes
# (C_run is in optimizer_state.bin). Its refusals are in section 5.
blend = ["--set", "optimizer.cov_blend=0.9"]
c1, out1, err1 = train(os.path.join(d, "bl1"), 23, *blend, ranks=1)
c3, _, _ = train(os.path.join(d, "bl3"), 23, *blend, ranks=3)
ok = c1 == 0 and c3 == 0
diff = same(os.path.join(d, "bl1"), os.path.join(d, "bl3")) if ok else FILES
moved = ok and not filecmp.cmp(os.path.join(d, "bl1", "layer1_W.npy"),
                               os.path.join(d, "adam1", "layer1_W.npy"), shallow=False)
check(ok and not diff and moved and "C_prev" in out1,
      "cov_blend 0.9: exit %d/%d, 1 and 3 ranks %s, weights %s the unblended run's"
      % (c1, c3, "the same bytes" if not diff else "differ: %s" % ", ".join(diff),
         "differ from" if moved else "EQUAL to"))
n8 = 2 * (8 * 8 + 8) + 1 + 8 * 8  # m and v of W and b, then the flag and C_run
size = os.path.getsize(os.path.join(d, "bl1", "optimizer_state.bin"))
check(size >= 8 * n8, "optimizer_state.bin holds C_run: %d bytes for %d values" % (size, n8))
rd = os.path.join(d, "blres")
train(rd, 9, *blend, ranks=1)
c, out, err = run(["train", "--resume", rd, "--set", "optimizer.max_it=23"], ranks=2)
diff = same(os.path.join(d, "bl1"), rd) if c == 0 else FILES
check(c == 0 and "resume     exact" in out and not diff,
      "cov_blend: stopped at 9 on 1 rank, resumed on 2: exit %d, %s"
      % (c, "every file the same bytes" if not diff else "differ: %s" % ", ".join(diff)))

# 6. The default optimizer keeps its optimizer log and writes no moments.
rd = os.path.join(d, "lmvm")
c, out, err = train(rd, 5, "--set", "optimizer.type=lmvm")
check(c == 0 and os.path.exists(os.path.join(rd, "optimizer_log.bin"))
      and not os.path.exists(os.path.join(rd, "optimizer_state.bin")),
      "lmvm: optimizer_log.bin, no optimizer_state.bin (exit %d)" % c)
shutil.rmtree(d, ignore_errors=True)
finish()
