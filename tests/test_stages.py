"""test_stages: optimizer.stages trains one layer in stages in one run
(docs/guide.md, "Stages").

A 3-stage hsic schedule (narrow kernel, default kernel, new random features)
on 2000 rows x 6 columns, each case at P = 1 and 2:
  1. the staged run gives the weights of three runs chained by model.init
     (the previous run's layer1_W.npy), up to the biases (model.init restarts
     them at 0, a stage keeps them; with them zeroed the bytes are the same);
  2. a run stopped by SIGUSR1 in stage 2 and resumed ends with the same
     weights and the same metrics.jsonl (but its times) as the uninterrupted run;
  3. summary.json lists every stage; metrics.jsonl names the stage on every
     line; the progress line shows it;
  4. a bad stage list fails on every rank with file:line and the stage;
     resuming with a changed stage list is refused;
  5. stages may change the optimizer: adam on mini-batches, then L-BFGS, in
     one run: the same bytes on 1 and 2 ranks; a run stopped by SIGUSR1 in an
     adam stage after an L-BFGS stage and resumed ends with the same bytes as
     the uninterrupted run."""
import json
import os
import signal
import subprocess
import shutil
import time

import numpy as np

from clitest import ENV, INFOMAX, check, finish, load_json, run, run_many, tmpdir, write

d = tmpdir()
BASE = """data:
  source: synthetic-ica
  samples: %d
  dim: 6
  preprocess: whiten
model:
  units: 6
objective:
  preset: hsic
  lambda: 1.0
  hsic_features: 8
optimizer:
  max_it: %d
  gatol: 1.0e-9
  grtol: 0
%s
output:
  every: 1000
  checkpoint_every: %d
"""
STAGES = [{"objective.hsic_bandwidth": 0.5, "optimizer.max_it": 10}, {},
          {"objective.hsic_seed_offset": 1, "optimizer.max_it": 6}]
# The run stopped in stage 2 (20000 rows, so that stage 2's 20 iterations
# outlast the signal's way in) needs little of stages 1 and 3.
SLOW_STAGES = [dict(STAGES[0], **{"optimizer.max_it": 4}), {}, dict(STAGES[2], **{"optimizer.max_it": 3})]


def stage_list(stages):
    return "  stages:\n" + "".join(
        "    - {%s}\n" % ", ".join("%s: %s" % kv for kv in st.items()) for st in stages)


def weights(rd):
    return [open(os.path.join(rd, f), "rb").read() for f in ("layer1_W.npy", "layer1_b.npy")]


def metrics(rd):
    """metrics.jsonl without the times, which differ from run to run."""
    out = []
    for line in open(os.path.join(rd, "metrics.jsonl")):
        m = json.loads(line)
        m.pop("time"), m.pop("phase_seconds")
        out.append(m)
    return out


def stop_in_stage2(config, rd, P):
    """Train config into rd on P ranks, SIGUSR1 once stage 2 has a checkpoint:
    (the process, its stdout, its stderr)."""
    cmd = [shutil.which("mpiexec"), "-n", str(P), INFOMAX, "train", config, "--out", rd]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    t0 = time.time()
    while not os.path.exists(os.path.join(rd, "stage2_checkpoint.bin")) and time.time() - t0 < 300 \
            and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGUSR1)
    out, err = p.communicate(timeout=300)
    return p, out, err


staged = write(os.path.join(d, "staged.yaml"), BASE % (2000, 8, stage_list(STAGES), 1))
slow = write(os.path.join(d, "slow.yaml"), BASE % (20000, 20, stage_list(SLOW_STAGES), 1))

for P in (1, 2):
    # 1. One run in stages = three runs chained by model.init.
    rd = os.path.join(d, "staged%d" % P)
    code, out, err = run(["train", staged, "--out", rd], ranks=P)
    s = load_json(os.path.join(rd, "summary.json")) if code == 0 else {}
    st = s.get("stages", [])
    lines = [json.loads(l) for l in open(os.path.join(rd, "metrics.jsonl"))] if code == 0 else []
    check(code == 0 and [g["status"] for g in st] == ["ok"] * 3 and
          [g["iterations"] for g in st] == [10, 8, 6] and
          all("stage" in l for l in lines) and [l["stage"] for l in lines] == sorted(l["stage"] for l in lines)
          and "stage 2/3" in out,
          "P=%d: 3 stages in one run: exit %d, stages %s, every metrics line names its stage, "
          "progress shows stage 2/3" % (P, code, [(g["status"], g.get("iterations")) for g in st]))
    init = None
    for k, stg in enumerate(STAGES):
        sets = ["--set", "optimizer.stages=[]"] + sum((["--set", "%s=%s" % kv] for kv in stg.items()), [])
        if init:
            sets += ["--set", "model.init=" + init]
        sd = os.path.join(d, "sep%d_%d" % (P, k))
        c, o, e = run(["train", staged, "--out", sd] + sets, ranks=P)
        init = os.path.join(sd, "layer1_W.npy")
    # model.init carries W only: the chained runs restart the biases at 0,
    # the staged run keeps them (here ~1e-15, zero in exact arithmetic).
    dW = np.abs(np.load(os.path.join(rd, "layer1_W.npy")) - np.load(os.path.join(sd, "layer1_W.npy"))).max() \
        if code == 0 and c == 0 else float("nan")
    check(dW < 1e-9, "P=%d: staged run = 3 runs chained by model.init up to the biases they drop: "
          "max |dW| %.3g (tolerance 1e-9)" % (P, dW))

    # 2. Stopped by SIGUSR1 in stage 2, resumed: the same bytes.
    ref = os.path.join(d, "ref%d" % P)
    run(["train", slow, "--out", ref], ranks=P, timeout=600)
    sig = os.path.join(d, "sig%d" % P)
    p, out, err = stop_in_stage2(slow, sig, P)
    s = load_json(os.path.join(sig, "summary.json"))
    stopped = [g["status"] for g in s.get("stages", [])]
    check(p.returncode == 75 and stopped == ["ok", "stopped", "not run"] and "of stage 2/3" in out,
          "P=%d: SIGUSR1 in stage 2: exit %d (want 75), stages %s" % (P, p.returncode, stopped))
    if P == 1:  # section 3 resumes this stopped run with another stage list
        shutil.copytree(sig, os.path.join(d, "sig1s"))
    code, out, err = run(["train", "--resume", sig], ranks=P, timeout=600)
    s = load_json(os.path.join(sig, "summary.json"))
    check(code == 0 and weights(sig) == weights(ref) and metrics(sig) == metrics(ref) and
          s.get("resume", {}).get("exact") and [g["iterations"] for g in s["stages"]] ==
          [g["iterations"] for g in load_json(os.path.join(ref, "summary.json"))["stages"]],
          "P=%d: resumed in stage 2: exit %d, same layer1_W/b bytes and metrics.jsonl (but times) "
          "as the uninterrupted run: %s" % (P, code, weights(sig) == weights(ref) and metrics(sig) == metrics(ref)))

# 3. A changed stage list is refused on resume (the copy of the run stopped
# in stage 2 on 1 rank, taken before its resume).
sig = os.path.join(d, "sig1s")
cfg = os.path.join(sig, "config.yaml")
last = "optimizer.max_it: %d" % SLOW_STAGES[2]["optimizer.max_it"]
text = open(cfg).read()
check(last in text, "the stopped run's config.yaml holds the stage list (%r)" % last)
write(cfg, text.replace(last, "optimizer.max_it: %d" % (SLOW_STAGES[2]["optimizer.max_it"] + 1)))
before = weights(sig)
code, out, err = run(["train", "--resume", sig], ranks=2)
check(code != 0 and "optimizer.stages" in out + err and weights(sig) == before,
      "resume with another stage list: exit %d, refused naming optimizer.stages, weights kept" % code)

# 4. Bad stage lists: every rank fails the same way, with file:line and the stage
# (independent runs, two at a time: clitest.run_many).
bad = [("- {model.units: 4}", "optimizer.stages[1]: \"model.units\""),
       ("- {}\n    - {objective.supervised: 1}", "optimizer.stages[2]: \"objective.supervised\""),
       ("- {data.samples: 10}", ":%d:" % 17),
       ("- {hsic_bandwith: 0.5}", "optimizer.stages[1]: \"hsic_bandwith\""),
       ("- {max_it: -1}", "optimizer.stages[1]: optimizer.max_it")]
c = write(os.path.join(d, "stack.yaml"), (BASE % (1000, 5, stage_list(STAGES), 0)).replace(
    "  units: 6\n", "  units: 6\n  layers: [{}, {units: 3}]\n"))
cfgs = [write(os.path.join(d, "bad%d.yaml" % i), BASE % (1000, 5, "  stages:\n    " + entry, 0))
        for i, (entry, want) in enumerate(bad)]
r = iter(run_many([(["train", cfgs[i], "--out", os.path.join(d, "bad%d" % i)], 2) for i in range(len(bad))]
                  + [(["train", c, "--out", os.path.join(d, "stack")], 2)]))
for i, (entry, want) in enumerate(bad):
    code, out, err = next(r)
    check(code == 3 and want in err and err.count("error") == 1 and not os.path.exists(os.path.join(d, "bad%d" % i)),
          "bad stage %r: exit %d (want 3), one message naming %r: %s" % (entry, code, want, err.strip()[:160]))
code, out, err = next(r)
check(code == 3 and "optimizer.stages and model.layers" in err,
      "stages with a stack: exit %d (want 3), refused: %s" % (code, err.strip()[:120]))

# 5. adam, then L-BFGS (stages that change optimizer.type and the mini-batch keys).
MIXED = """data:
  source: synthetic-ica
  samples: 16384
  dim: 6
  preprocess: whiten
model:
  units: 6
  activation: softmax
objective:
  preset: gaussian
optimizer:
  max_it: 5
  stages:
    - {type: adam, lr: 0.02, batch: 1024, max_it: %d}
    - {type: lmvm, max_it: 5}
parallel:
  block: 256
output:
  every: 1000
  checkpoint_every: 1
"""
mixed = write(os.path.join(d, "mixed.yaml"), MIXED % 48)
# L-BFGS first, then 300 adam steps: the stop lands in stage 2, whose moments
# are in stage2_optimizer_state.bin.
long_adam = write(os.path.join(d, "mixed_long.yaml"), (MIXED % 300).replace(
    "    - {type: adam, lr: 0.02, batch: 1024, max_it: 300}\n    - {type: lmvm, max_it: 5}\n",
    "    - {type: lmvm, max_it: 3}\n    - {type: adam, lr: 0.02, batch: 1024, max_it: 300}\n"))
runs = run_many([(["train", mixed, "--out", os.path.join(d, "mixed%d" % P)], P) for P in (1, 2)]
                + [(["train", long_adam, "--out", os.path.join(d, "mixref")], 2)])
lines = []
for P, (code, out, err) in zip((1, 2), runs):
    rd = os.path.join(d, "mixed%d" % P)
    st = load_json(os.path.join(rd, "summary.json")).get("stages", []) if code == 0 else []
    lines = [json.loads(l) for l in open(os.path.join(rd, "metrics.jsonl"))] if code == 0 else []
    check(code == 0 and [g["status"] for g in st] == ["ok", "ok"] and st[0]["iterations"] == 48
          and "TAO adam" in out and "TAO lmvm" in out
          and all(("epoch" in l) == (l["stage"] == 1) for l in lines),
          "P=%d: adam stage then lmvm stage: exit %d, stages %s, epochs on the adam stage's lines "
          "only" % (P, code, [(g["status"], g.get("iterations")) for g in st]))
check(runs[0][0] == 0 and weights(os.path.join(d, "mixed1")) == weights(os.path.join(d, "mixed2")),
      "adam then lmvm: the same layer1_W/b bytes on 1 and 2 ranks")
ref = os.path.join(d, "mixref")
sig = os.path.join(d, "mixsig")
p, out, err = stop_in_stage2(long_adam, sig, 2)
stopped = [g["status"] for g in load_json(os.path.join(sig, "summary.json")).get("stages", [])]
check(p.returncode == 75 and stopped == ["ok", "stopped"],
      "SIGUSR1 in the adam stage: exit %d (want 75), stages %s" % (p.returncode, stopped))
code, out, err = run(["train", "--resume", sig], ranks=2, timeout=600)
s = load_json(os.path.join(sig, "summary.json"))
check(code == 0 and weights(sig) == weights(ref) and metrics(sig) == metrics(ref) and
      s.get("resume", {}).get("exact"),
      "resumed in the adam stage: exit %d, exact %s, same layer1_W/b bytes and metrics.jsonl (but "
      "times) as the uninterrupted run: %s" % (code, s.get("resume", {}).get("exact"),
                                              weights(sig) == weights(ref) and metrics(sig) == metrics(ref)))

# Without stage 2's optimizer state the resume is not exact, and summary.json says so.
sig = os.path.join(d, "mixsig2")
p, out, err = stop_in_stage2(long_adam, sig, 2)
if os.path.exists(os.path.join(sig, "stage2_optimizer_state.bin")):
    os.remove(os.path.join(sig, "stage2_optimizer_state.bin"))
code, out, err = run(["train", "--resume", sig], ranks=2, timeout=600)
exact = load_json(os.path.join(sig, "summary.json")).get("resume", {}).get("exact")
check(p.returncode == 75 and code == 0 and exact is False and "moments at zero" in err,
      "resumed in the adam stage without stage2_optimizer_state.bin: exit %d, summary.json "
      "resume.exact %s (want false), warned: %s" % (code, exact, "moments at zero" in err))
finish()
