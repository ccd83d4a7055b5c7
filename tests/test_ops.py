"""test_ops: long jobs. Checkpoints and exact resume (bitwise, with another
rank count, for several TAO types); a stop signal at an iteration boundary
(exit 75, checkpoint, resume to the same result); a rank killed with -9 ends
the job quickly without damaging the checkpoint; corrupt checkpoints and
optimizer logs are refused with a clear message. A stack of 3 layers stopped by
SIGUSR1 in layer 2 exits 75 with layer 2's checkpoint and resumes to the same
bits as an uninterrupted run. A run whose optimizer gives up (line search
failure) exits 11 with "status": "diverged"; a signal before training or at
iteration 0 is never lost and never kills a rank."""
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np

from clitest import ENV, INFOMAX, check, finish, load_json, run, run_many, tmpdir

d = tmpdir()
CFG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "synthetic-ica.yaml")
COMMON = ["--set", "model.activation=softmax", "--set", "objective.preset=gaussian",
          "--set", "optimizer.gatol=0", "--set", "optimizer.grtol=0",
          "--set", "output.checkpoint_every=5"]


def weights(rd):
    return np.load(os.path.join(rd, "layer1_W.npy")), np.load(os.path.join(rd, "layer1_b.npy"))


def same(a, b):
    (wa, ba), (wb, bb) = weights(a), weights(b)
    return bool((wa == wb).all() and (ba == bb).all())


# 1. Exact resume: 20 iterations in one go vs 10 + 10 with other rank counts.
# The hsic kernel bandwidths come from the initial outputs, which an exact resume
# recomputes: 12 iterations in one go == 6 + resume to 12, bit for bit.
HS = ["--set", "objective.preset=hsic", "--set", "objective.hsic_features=4", "--set", "data.samples=4000",
      "--set", "data.preprocess=whiten", "--set", "optimizer.gatol=0", "--set", "optimizer.grtol=0"]
# The ica preset's preconditioner (include/imx/precond.h) depends on statistics
# of each evaluation, which the optimizer log keeps: 12 iterations in one go ==
# 6 + resume to 12 (on another rank count), bit for bit.
IC = ["--set", "objective.preset=ica", "--set", "optimizer.precondition=ica", "--set", "data.samples=4000",
      "--set", "data.preprocess=whiten",
      "--set", "optimizer.gatol=0", "--set", "optimizer.grtol=0"]
# A trial point of the line search where C + eps I is not positive definite
# (K = 256 softmax units on 3000 Fashion-MNIST rows, eps = 0: three in iteration 4)
# gets +Inf: lmvm shortens the step and goes on, the optimizer log replays
# it, and bncg's line search, which cannot, stops with a warning and the remedy.
FM = os.path.join(os.path.dirname(CFG), "fashion-mnist.yaml")
FS = ["--set", "model.units=256", "--set", "data.samples=3000", "--set", "optimizer.gatol=0",
      "--set", "optimizer.grtol=0"]
# Each case: (name, config, settings, full iterations and ranks, part iterations
# and ranks, resume ranks). The full and part runs, then the resumes, run two
# at a time (clitest.run_many): none depends on another's files or timing.
CASES = [(tao, CFG, COMMON + ["--set", "optimizer.type=" + tao], (20, 1), (10, 2), 3) for tao in ("lmvm", "bncg", "nm")]
CASES += [("hsic", CFG, HS, (12, 1), (6, 2), 1), ("ica", CFG, IC, (12, 1), (6, 2), 3), ("inf", FM, FS, (8, 2), (5, 1), 2)]
first = run_many(sum(([(["train", cfg, "--out", os.path.join(d, "full_" + name), "--set", "optimizer.max_it=%d" % fi]
                       + sets, fr),
                      (["train", cfg, "--out", os.path.join(d, "part_" + name), "--set", "optimizer.max_it=%d" % pi]
                       + sets, pr)] for name, cfg, sets, (fi, fr), (pi, pr), rr in CASES), [])
                 + [(["train", FM, "--out", os.path.join(d, "bncg_inf"), "-tao_type", "bncg",
                      "--set", "data.samples=3000"], 2)])
resumed = run_many([(["train", "--resume", os.path.join(d, "part_" + name), "--set", "optimizer.max_it=%d" % fi], rr)
                    for name, cfg, sets, (fi, fr), (pi, pr), rr in CASES])
R = {name: (first[2 * i], first[2 * i + 1], resumed[i]) for i, (name, *_) in enumerate(CASES)}
for tao in ("lmvm", "bncg", "nm"):
    full, part = os.path.join(d, "full_" + tao), os.path.join(d, "part_" + tao)
    (c1, _, _), (c2, _, _), (c3, out, err) = R[tao]
    s = load_json(os.path.join(part, "summary.json")) if c3 == 0 else {"optimizer": {}}
    check(c1 == c2 == c3 == 0 and "TAO state rebuilt" in out and same(full, part)
          and s["optimizer"].get("iterations") == 20,
          "%s: 20 iterations on 1 rank == 10 on 2 ranks + resume to 20 on 3 ranks, bit for bit" % tao)
full, part = os.path.join(d, "full_hsic"), os.path.join(d, "part_hsic")
(c1, _, _), (c2, _, _), (c3, out, err) = R["hsic"]
check(c1 == c2 == c3 == 0 and "TAO state rebuilt" in out and same(full, part),
      "hsic: 12 iterations on 1 rank == 6 on 2 ranks + resume to 12 on 1 rank, bit for bit "
      "(exits %d %d %d) %s" % (c1, c2, c3, err.strip()[:200]))
full, part = os.path.join(d, "full_ica"), os.path.join(d, "part_ica")
(c1, out1, _), (c2, _, _), (c3, out, err) = R["ica"]
check(c1 == c2 == c3 == 0 and "ICA Hessian approximation" in out1 and "TAO state rebuilt" in out
      and same(full, part),
      "ica (preconditioned): 12 iterations on 1 rank == 6 on 2 ranks + resume to 12 on 3 ranks, "
      "bit for bit (exits %d %d %d) %s" % (c1, c2, c3, err.strip()[:200]))
full, part = os.path.join(d, "full_inf"), os.path.join(d, "part_inf")
(c1, o1, e1), (c2, o2, e2), (c3, out, err) = R["inf"]
check(c1 == c2 == c3 == 0 and "of TAO's line search had no objective" in e1
      and "trial point" in e2 and "dpotrf INFO=" in e1 and same(full, part),
      "not positive definite at a trial point: +Inf, lmvm goes on (8 iterations on 2 ranks == 5 on 1 + "
      "resume to 8 on 2, bit for bit; exits %d %d %d) %s" % (c1, c2, c3, (e1 + err).strip()[:300]))
c, out, err = first[-1]
check(c == 6 and "TAO bncg made no iteration" in err and "set objective.eps (e.g. 1e-6), or use TAO lmvm" in err,
      "bncg, whose line search cannot step around such points, makes no iteration: exit 6 with the remedy: %s"
      % err.strip()[-160:])
lines = [json.loads(l) for l in open(os.path.join(d, "part_lmvm", "metrics.jsonl"))]
check([l["iter"] for l in lines] == list(range(21)), "metrics.jsonl of the resumed run: iterations 0..20 once each")


def start_long_run(rundir, settle):
    """A 2-rank run that would take hours, once it has written a checkpoint."""
    cmd = [shutil.which("mpiexec"), "-n", "2", INFOMAX, "train", CFG, "--out", rundir,
           "--set", "optimizer.max_it=100000", "--set", "data.samples=200000"] + COMMON
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    t0 = time.time()
    while not os.path.exists(os.path.join(rundir, "checkpoint.bin")) and time.time() - t0 < 60:
        time.sleep(0.1)
    time.sleep(settle)
    return proc


def stop(proc):
    """SIGUSR1 to mpiexec (Open MPI forwards it to the ranks); (stdout, stderr)."""
    proc.send_signal(signal.SIGUSR1)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


# 2. A stop signal: SIGUSR1 to mpiexec (Open MPI forwards it to the ranks).
sig_dir = os.path.join(d, "sig")
p = start_long_run(sig_dir, 0.5)
out, err = stop(p)
s = load_json(os.path.join(sig_dir, "summary.json"))
check(p.returncode == 75 and s["status"] == "stopped" and "--resume" in out,
      "SIGUSR1: exit %d (want 75), summary status %s, resume hint printed" % (p.returncode, s["status"]))
stopped_at = s["optimizer"]["iterations"]
ref = os.path.join(d, "sig_ref")
(code, out, err), (code2, _, _) = run_many([
    (["train", "--resume", sig_dir, "--set", "optimizer.max_it=%d" % (stopped_at + 3)], 1),
    (["train", CFG, "--out", ref, "--set", "optimizer.max_it=%d" % (stopped_at + 3),
      "--set", "data.samples=200000"] + COMMON, 2)])
check(code == 0 and code2 == 0 and same(sig_dir, ref),
      "run stopped at iteration %d and resumed on 1 rank == uninterrupted run, bit for bit" % stopped_at)

# 3. A rank killed with -9: the job ends quickly, non-zero; the checkpoint survives.
kdir = os.path.join(d, "kill")
p = start_long_run(kdir, 0.3)
ranks = subprocess.run(["pgrep", "-f", "--", "--out " + kdir], capture_output=True, text=True).stdout.split()
victim = [int(r) for r in ranks if int(r) != p.pid]
t_kill = time.time()
if victim:
    os.kill(victim[-1], signal.SIGKILL)
try:
    p.communicate(timeout=60)
    dt = time.time() - t_kill
except subprocess.TimeoutExpired:
    p.kill()
    p.communicate()
    dt = float("inf")
check(victim and p.returncode != 0 and dt < 15,
      "kill -9 of a rank: mpiexec exits %s after %.1f s (want non-zero, < 15 s)" % (p.returncode, dt))
# The checkpoint must be complete and loadable: resume it (max_it below its
# iteration: nothing left to do but load, retrace and finish).
code, out, err = run(["train", "--resume", kdir, "--set", "optimizer.max_it=1"], ranks=2)
check(code == 0 and "resume" in out, "the checkpoint left by the killed job resumes: exit %d" % code)

# 4. Corruption is detected, never silently used. (Four independent resumes,
# two at a time: clitest.run_many.)
bad = shutil.copytree(os.path.join(d, "part_lmvm"), os.path.join(d, "bad"))
with open(os.path.join(bad, "checkpoint.bin"), "r+b") as f:
    f.seek(200)
    byte = f.read(1)
    f.seek(200)
    f.write(bytes([byte[0] ^ 0x10]))
badlog = shutil.copytree(os.path.join(d, "part_lmvm"), os.path.join(d, "badlog"))
with open(os.path.join(badlog, "optimizer_log.bin"), "r+b") as f:
    f.seek(100)
    f.write(b"\xff\xff")
with open(os.path.join(d, "part_nm", "checkpoint.bin.tmp"), "wb") as f:
    f.write(b"half-written garbage")
r = iter(run_many([(["train", "--resume", bad], 2),
                   (["train", "--resume", badlog, "--set", "optimizer.max_it=25"], 2),
                   (["train", "--resume", os.path.join(d, "part_bncg"), "--set", "optimizer.type=lmvm",
                     "--set", "optimizer.max_it=22"], 2),
                   (["train", "--resume", os.path.join(d, "part_nm"), "--set", "optimizer.max_it=21"], 1)]))
code, out, err = next(r)
check(code == 5 and "checksum mismatch" in err, "flipped bit in checkpoint.bin: exit 5, " + err.strip()[:120])
code, out, err = next(r)
check(code == 5 and "corrupt" in err, "damaged optimizer log: exit 5, " + err.strip()[:120])
code, out, err = next(r)
check(code == 0 and "fresh lmvm state" in err, "resume with another optimizer: warned, continues from the weights")
code, out, err = next(r)
check(code == 0, "a half-written checkpoint.bin.tmp (crash while writing) leaves the previous checkpoint usable")

# 5. Stacked layers: a signal in layer 2 stops the whole run (exit 75, summary.json
# "stopped", layer2_checkpoint.bin named and present); --resume rebuilds layer 1
# from checkpoint.bin, continues layer 2 from its own checkpoint and optimizer
# log, trains layer 3, and ends with the bits of an uninterrupted run.
STACK_CFG = os.path.join(os.path.dirname(CFG), "fashion-mnist-stack.yaml")
stack_cfg = os.path.join(d, "stack.yaml")
with open(STACK_CFG) as f:
    text = f.read()
with open(stack_cfg, "w") as f:
    f.write(text.replace("    - {}\n    - {}\n    - {}\n",
                         "    - {optimizer.max_it: 5}\n    - {}\n    - {optimizer.max_it: 4}\n"))
STACK = ["--set", "data.samples=3000", "--set", "optimizer.gatol=0", "--set", "optimizer.grtol=0",
         "--set", "output.checkpoint_every=2"]
st_dir = os.path.join(d, "stack_sig")
t0 = time.time()
p = subprocess.Popen([shutil.which("mpiexec"), "-n", "2", INFOMAX, "train", stack_cfg, "--out", st_dir,
                      "--set", "optimizer.max_it=100000"] + STACK,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
ck2 = os.path.join(st_dir, "layer2_checkpoint.bin")
while not os.path.exists(ck2) and time.time() - t0 < 60 and p.poll() is None:
    time.sleep(0.1)
time.sleep(0.3)
out, err = stop(p)
s = load_json(os.path.join(st_dir, "summary.json")) if os.path.exists(os.path.join(st_dir, "summary.json")) else {}
s2 = load_json(os.path.join(st_dir, "layer2_summary.json")) if os.path.exists(os.path.join(st_dir, "layer2_summary.json")) else {}
check(p.returncode == 75 and s.get("status") == "stopped" and s.get("exit_code") == 75
      and s2.get("status") == "stopped" and os.path.exists(ck2)
      and ("checkpoint in %s/layer2_checkpoint.bin" % st_dir) in out
      and os.path.exists(os.path.join(st_dir, "layer2_optimizer_log.bin"))
      and not os.path.exists(os.path.join(st_dir, "layer3_W.npy")),
      "stack stopped by SIGUSR1 in layer 2: exit %d (want 75), summary.json %s, layer2_summary.json %s, "
      "stdout names layer2_checkpoint.bin, which exists" % (p.returncode, s.get("status"), s2.get("status")))


def model_h5(rundir):
    """model.h5's status and layers, and whether each layer's W and b equal the .npy files."""
    import h5py
    with h5py.File(os.path.join(rundir, "model.h5"), "r") as f:
        L = int(f.attrs["layers"])
        same = all(np.array_equal(f["layer%d/W" % i][:], np.load(os.path.join(rundir, "layer%d_W.npy" % i)))
                   and np.array_equal(f["layer%d/b" % i][:], np.load(os.path.join(rundir, "layer%d_b.npy" % i)).ravel())
                   for i in range(1, L + 1))
        return f.attrs["status"], L, same


st, L, same_w = model_h5(st_dir)
check(st == "stopped" and L == 2 and same_w,
      "model.h5 of the stopped stack: status %s (want stopped), %d layers (want 2: layer 3 absent), "
      "W and b = layerL_*.npy: %s" % (st, L, same_w))
k = s2.get("optimizer", {}).get("iterations", 0) + 3
st_ref = os.path.join(d, "stack_ref")
# A copy without layer 2's optimizer log resumes too, not exactly, and says so.
st_nolog = os.path.join(d, "stack_nolog")
shutil.copytree(st_dir, st_nolog)
os.remove(os.path.join(st_nolog, "layer2_optimizer_log.bin"))
(code, out, err), (code2, _, _), (code3, _, err3) = run_many([
    (["train", "--resume", st_dir, "--set", "optimizer.max_it=%d" % k], 1),
    (["train", stack_cfg, "--out", st_ref, "--set", "optimizer.max_it=%d" % k] + STACK, 2),
    (["train", "--resume", st_nolog, "--set", "optimizer.max_it=%d" % k], 2)])
exact = [load_json(os.path.join(r, "summary.json")).get("resume", {}).get("exact") for r in (st_dir, st_nolog)]
check(code3 == 0 and exact == [True, False] and "no optimizer log of the layer" in err3,
      "stack resumed in layer 2: summary.json resume.exact %s (want True with layer 2's optimizer "
      "log, False without it, warned: %s)" % (exact, "no optimizer log of the layer" in err3))
s = load_json(os.path.join(st_dir, "summary.json"))
files = ["layer%d_%s.npy" % (i, f) for i in (1, 2, 3) for f in ("W", "b")]
same_stack = code == 0 and code2 == 0 and all(
    np.array_equal(np.load(os.path.join(st_dir, f)), np.load(os.path.join(st_ref, f))) for f in files)
st, L, same_w = model_h5(st_dir)
check(st == "finished" and L == 3 and same_w,
      "model.h5 after the resume: status %s (want finished), %d layers (want 3), W and b = layerL_*.npy: %s"
      % (st, L, same_w))
check(same_stack and s["status"] == "ok" and "TAO state rebuilt" in out and "layer 1 stays fixed" in out,
      "stack resumed in layer 2 on 1 rank (to %d iterations) == uninterrupted run on 2 ranks, bit for bit "
      "(layers 1-3, W and b; exits %d %d; %.0f s) %s" % (k, code, code2, time.time() - t0, err.strip()[-200:]))
# 6. (Three independent runs, two at a time.) TAO giving up is not success: a line search failure (a unit's variance
# vanishes at a trial point; iteration 1) exits 11 with status "diverged", the
# last accepted weights, their measures and a checkpoint; the iteration limit
# stays success. A stack ends at the diverged layer with the same status.
IEM = ["--set", "data.samples=3000", "--set", "objective.preset=implicit-em",
       "--set", "objective.weight_redundancy=0.1", "--set", "model.activation=topk",
       "--set", "model.topk=4", "--set", "optimizer.max_it=10"]
dv = os.path.join(d, "diverged")
dvs = os.path.join(d, "diverged_stack")
# The same for a softmax layer whose unit dies by its bias running away (the
# quick start with 256 units on 3000 rows, seed 3: gives up at iteration 5),
# and configs/fashion-mnist-features.yaml, whose bias bound keeps every unit
# alive on the same rows and seed (docs/study-validation.md).
FEAT = os.path.join(os.path.dirname(CFG), "fashion-mnist-features.yaml")
SMALL = ["--set", "data.samples=3000", "--set", "model.seed=3", "--set", "optimizer.max_it=40"]
r = iter(run_many([(["train", FM, "--out", dv] + IEM, 2),
                   (["train", FM, "--out", os.path.join(d, "diverged_eps"), "--set", "objective.eps=1e-6"] + IEM, 2),
                   (["train", STACK_CFG, "--out", dvs] + IEM, 2),
                   (["train", FM, "--out", os.path.join(d, "runaway"), "--set", "model.units=256"] + SMALL, 2),
                   (["train", FEAT, "--out", os.path.join(d, "bounded")] + SMALL, 2)]))
code, out, err = next(r)
s = load_json(os.path.join(dv, "summary.json"))
check(code == 11 and s["status"] == "diverged" and s["exit_code"] == 11
      and s["optimizer"]["reason"] == "DIVERGED_LS_FAILURE" and "final" in s and "measures" in s
      and "DIVERGED_LS_FAILURE" in s["error"] and "use TAO lmvm" not in err
      and "objective.eps" in err and os.path.exists(os.path.join(dv, "checkpoint.bin")),
      "line search failure: exit %d (want 11), status %s, reason %s, no \"use TAO lmvm\" to an lmvm "
      "run: %s" % (code, s["status"], s["optimizer"]["reason"], err.strip()[-200:]))
code, out, err = next(r)
s = load_json(os.path.join(d, "diverged_eps", "summary.json"))
check(code == 0 and s["status"] == "ok" and s["optimizer"]["reason"] == "DIVERGED_MAXITS",
      "the remedy (objective.eps=1e-6) runs to max_it: exit %d, status %s (max_it is success)"
      % (code, s["status"]))
code, out, err = next(r)
s = load_json(os.path.join(dvs, "summary.json"))
check(code == 11 and s["status"] == "diverged" and s["exit_code"] == 11
      and not os.path.exists(os.path.join(dvs, "layer2_W.npy")) and "layers 2..3 were not trained" in err,
      "a stack whose layer 1 gives up ends there: exit %d, summary.json %s" % (code, s["status"]))
(code, out, err), (code2, out2, err2) = next(r), next(r)
s, s2 = (load_json(os.path.join(d, x, "summary.json")).get("final", {}) for x in ("runaway", "bounded"))
b = np.load(os.path.join(d, "runaway", "layer1_b.npy")).ravel()
ratio = s.get("min_variance", 1) / s.get("max_variance", 1)
check(code == 11 and b.max() - np.median(b) > 5 and ratio < 1e-6,
      "softmax, 256 units, 3000 rows: a unit's bias runs away (%.1f above the median; its variance %.1e of "
      "the largest) and the line search gives up: exit %d (want 11)" % (b.max() - np.median(b), ratio, code))
ratio2 = s2.get("min_variance", 0) / s2.get("max_variance", 1)
check(code2 == 0 and "40 iterations" in out2 and s2.get("dead_units") == 0 and ratio2 > 1e-3,
      "configs/fashion-mnist-features.yaml (|b| <= 5, blmvm) on the same rows: 40 iterations, no dead unit, "
      "smallest variance %.1e of the largest (exit %d) %s" % (ratio2, code2, err2.strip()[-200:]))


def runs_infomax(pid):
    """Has pid exec'd the infomax binary? (A child mpiexec forked has mpiexec's
    command line and handlers until its exec, and a signal pending then
    survives the exec into the default action: it is not a rank yet.)"""
    try:
        return os.path.realpath("/proc/%d/exe" % pid) == os.path.realpath(INFOMAX)
    except OSError:
        return False


def ranks_of(out_dir, launcher):
    """The rank processes of a run (by its --out), not mpiexec."""
    ps = subprocess.run(["pgrep", "-f", "--", "--out " + out_dir], capture_output=True, text=True).stdout
    return [int(r) for r in ps.split() if int(r) != launcher.pid and runs_infomax(int(r))]


def catches(pid):
    """The signals pid has handlers for (a bit mask: bit s-1 for signal s)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return int([l for l in f if l.startswith("SigCgt")][0].split()[1], 16)
    except (OSError, IndexError):
        return 0


# 7. A signal before training: SIGUSR1 to every rank as soon as it handles
# SIGUSR1 (the first instructions of main; a library's constructor may install
# handlers for other signals earlier, which is why the bit of SIGUSR1 itself is
# read): the run stops at the first safe point, exit 75, no run directory;
# nothing is killed.
early = os.path.join(d, "early")
p = subprocess.Popen([shutil.which("mpiexec"), "-n", "2", INFOMAX, "train", CFG, "--out", early,
                      "--set", "data.samples=2000"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
sent, t0 = set(), time.time()
while len(sent) < 2 and p.poll() is None and time.time() - t0 < 30:
    for r in ranks_of(early, p):
        if r not in sent and catches(r) & (1 << (signal.SIGUSR1 - 1)):
            os.kill(r, signal.SIGUSR1)
            sent.add(r)
    time.sleep(0.002)
out, err = p.communicate(timeout=60)
check(len(sent) == 2 and p.returncode == 75 and "before training started" in out
      and not os.path.exists(early),
      "SIGUSR1 to both ranks during start-up: exit %d (want 75, not 138), no run directory: %s"
      % (p.returncode, (out + err).strip()[-200:]))

# 8. A stop at iteration 0 (the signal after the run directory exists, during
# the first evaluation) writes the checkpoint it names, and --resume continues
# exactly. Then a run directory with config.yaml but no checkpoint (killed
# before its first one) resumes by starting afresh in the same directory.
it0 = os.path.join(d, "it0")
I0 = ["--set", "model.units=256", "--set", "data.samples=3000", "--set", "optimizer.gatol=0",
      "--set", "optimizer.grtol=0"]
p = subprocess.Popen([shutil.which("mpiexec"), "-n", "2", INFOMAX, "train", FM, "--out", it0] + I0,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
t0 = time.time()
while not os.path.exists(os.path.join(it0, "config.yaml")) and p.poll() is None and time.time() - t0 < 60:
    time.sleep(0.005)
for r in ranks_of(it0, p):
    os.kill(r, signal.SIGUSR1)
out, err = p.communicate(timeout=60)
s = load_json(os.path.join(it0, "summary.json")) if os.path.exists(os.path.join(it0, "summary.json")) else {}
ck = os.path.join(it0, "checkpoint.bin")
check(p.returncode == 75 and s.get("optimizer", {}).get("iterations") == 0 and os.path.exists(ck)
      and ("checkpoint in %s" % ck) in out,
      "SIGUSR1 during iteration 0: exit %d (want 75), stopped at iteration %s, checkpoint.bin %s"
      % (p.returncode, s.get("optimizer", {}).get("iterations"), os.path.exists(ck)))
ref = os.path.join(d, "it0_ref")
(code, out, err), (code2, _, _) = run_many([(["train", "--resume", it0, "--set", "optimizer.max_it=2"], 1),
                                            (["train", FM, "--out", ref, "--set", "optimizer.max_it=2"] + I0, 2)])
check(code == 0 and code2 == 0 and "TAO state rebuilt" in out and same(it0, ref),
      "stopped at iteration 0 and resumed to 2 on 1 rank == uninterrupted run, bit for bit (exits %d %d) %s"
      % (code, code2, err.strip()[-200:]))
for f in ("checkpoint.bin", "optimizer_log.bin", "layer1_W.npy", "layer1_b.npy", "summary.json"):
    os.remove(os.path.join(ref, f))
code, out, err = run(["train", "--resume", ref], ranks=2)
check(code == 0 and "starts afresh" in out and same(it0, ref),
      "--resume of a run directory with config.yaml and no checkpoint: trains it there (exit %d) %s"
      % (code, err.strip()[-200:]))
finish()
