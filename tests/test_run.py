"""test_run: a training run end to end. The run directory holds the resolved
config.yaml, metrics.jsonl, layer1_W.npy, layer1_b.npy and summary.json; `infomax eval` agrees with an independent numpy
implementation of every term; logdet-only training reaches the known optimum;
the decorrelation preset decorrelates; earlier runs are never overwritten;
TAO options work from the command line and from the config."""
import json
import os
import shutil

import numpy as np

from clitest import check, finish, load_json, run, run_many, tmpdir, write

d = tmpdir()
rng = np.random.default_rng(5)
N, n = 3000, 5
S = rng.laplace(size=(N, n)) / np.sqrt(2)
A = rng.normal(size=(n, n)) + 2 * np.eye(n)
X = S @ A.T
np.save(os.path.join(d, "x.npy"), X)
np.save(os.path.join(d, "x32.npy"), X.astype(np.float32))


def config(**kw):
    text = ("data:\n  source: npy\n  path: %s\n  preprocess: center\n"
            "model:\n  units: %d\n  activation: %s\n  temperature: %g\n"
            "objective:\n  preset: %s\n  lambda: %g\n  eps: %g\n"
            "%s"
            "optimizer:\n  max_it: %d\n%s"
            "parallel:\n  block: 64\n"
            % (kw.get("path", os.path.join(d, "x.npy")), kw.get("K", 4), kw.get("act", "softmax"),
               kw.get("tau", 1.0), kw.get("preset", "gaussian"), kw.get("lam", 0.1),
               kw.get("eps", 0.0), kw.get("objective", ""), kw.get("max_it", 30),
               kw.get("optimizer", "")))
    return write(os.path.join(d, kw["name"] + ".yaml"), text)


def terms_numpy(W, b, X, act, tau, eps):
    """Every objective term, written independently of the C code."""
    Xc = X - X.mean(axis=0)
    Z = Xc @ W.T + b
    if act == "softmax":
        U = -Z / tau
        U -= U.max(axis=1, keepdims=True)
        Aa = np.exp(U) / np.exp(U).sum(axis=1, keepdims=True)
    elif act == "relu":
        Aa = np.maximum(Z, 0)
    else:
        Aa = Z
    K = W.shape[0]
    C = np.cov(Aa, rowvar=False, bias=True)
    M = C + eps * np.eye(K) + (np.ones((K, K)) / K if act == "softmax" else 0)
    sign, ld = np.linalg.slogdet(M)
    dvar = np.diag(C) + eps
    off = C - np.diag(np.diag(C))
    R = off / np.sqrt(np.outer(dvar, dvar))
    E = W @ W.T - np.eye(K)
    Dc = Aa - Aa.mean(axis=0)
    m = Aa.min(axis=1)
    lse = np.mean(m - np.log(np.exp(-(Aa - m[:, None])).sum(axis=1)))
    # gaussian_tc = -1/2 log det R; for softmax outputs the pseudo-log-det along
    # R's null vector D^1/2 1, i.e. log det(C + eps I + v v^T), v = d / sqrt(sum d).
    v = dvar / np.sqrt(dvar.sum())
    Mtc = C + eps * np.eye(K) + (np.outer(v, v) if act == "softmax" else 0)
    ldtc = np.linalg.slogdet(Mtc)[1]
    return {"logdet": -ld, "offdiag": (off ** 2).sum(), "variance": -np.log(dvar).sum(),
            "gaussian_tc": 0.5 * (np.log(dvar).sum() - ldtc), "decorrelation": (R ** 2).sum(),
            "weight_redundancy": (E ** 2).sum(), "lse": lse,
            # log cosh x = logaddexp(x, -x) - log 2 on the centered outputs
            "entropy": (np.log(2) + 2 * (np.logaddexp(Dc, -Dc) - np.log(2)).mean(axis=0)).sum()}


# 1. A softmax run with the gaussian preset on 2 ranks.
run_dir = os.path.join(d, "soft")
code, out, err = run(["train", config(name="soft"), "--out", run_dir], ranks=2)
check(code == 0, "train exits 0 (stderr: %s)" % err.strip()[:300])
check("results in " + run_dir in out and "trained K=4 softmax units" in out, "final lines say what and where")
for f in ("config.yaml", "metrics.jsonl", "layer1_W.npy", "layer1_b.npy", "summary.json"):
    check(os.path.exists(os.path.join(run_dir, f)), "run directory holds " + f)
W = np.load(os.path.join(run_dir, "layer1_W.npy"))
b = np.load(os.path.join(run_dir, "layer1_b.npy")).ravel()
check(W.shape == (4, n) and np.allclose(np.linalg.norm(W, axis=1), 1, atol=1e-14),
      "layer1_W.npy is K x n with unit rows (weight normalization)")
s = load_json(os.path.join(run_dir, "summary.json"))
check(s["status"] == "ok" and s["ranks"] == 2 and s["optimizer"]["iterations"] > 0
      and len(s["peak_memory_mib"]) == 2
      and all(k in s["timers"]["forward"] for k in ("min", "max", "mean", "min_rank", "max_rank")),
      "summary.json: status, optimizer, timers min/max/mean with ranks, peak memory per rank")
lines = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
check(len(lines) == s["optimizer"]["iterations"] + 1 and "logdet" in lines[-1]["terms"]
      and abs(lines[-1]["loss"] - s["final"]["loss"]) <= 1e-12 * abs(s["final"]["loss"]),
      "metrics.jsonl: one line per iteration (%d), terms, last loss = final loss" % len(lines))

# 2. eval against numpy, for each activation.
# (the three trainings, then the three evals, two at a time: clitest.run_many)
ACTS = (("softmax", "gaussian", 1.0), ("relu", "implicit-em", 1.0), ("identity", "gaussian-tc", 1.0))
trained = run_many([(["train", config(name="ev_" + act, act=act, preset=preset, tau=tau, max_it=10, eps=1e-6),
                      "--out", os.path.join(d, "ev_" + act)], 3) for act, preset, tau in ACTS])
evals = run_many([(["eval", os.path.join(d, "ev_" + act)], 2) for act, preset, tau in ACTS])
for (act, preset, tau), (code, out, err), (code2, out2, err2) in zip(ACTS, trained, evals):
    rd = os.path.join(d, "ev_" + act)
    ok = code == 0 and code2 == 0
    worst = float("inf")
    if ok:
        ev = json.loads(out2)
        W = np.load(os.path.join(rd, "layer1_W.npy"))
        b = np.load(os.path.join(rd, "layer1_b.npy")).ravel()
        ref = terms_numpy(W, b, X, act, tau, 1e-6)
        # lse of identity outputs is unbounded, so eval reports it as unavailable.
        skip = {"lse"} if act == "identity" else set()
        # hsic is not in these runs' objectives: null with the reason (N (K D)^2 flops)
        skip.add("hsic")
        ok = "hsic" in ev["unavailable"] and "objective.hsic" in ev["unavailable"]["hsic"]
        ok = ok and all(ev["terms"][t] is None and t in ev["unavailable"] for t in skip)
        # (gaussian_tc is a difference of O(1) log dets, so an absolute floor of 1e-3)
        worst = max(abs(ev["terms"][t] - ref[t]) / max(abs(ref[t]), 1e-3) for t in ref if t not in skip)
    check(ok and worst < 1e-9, "eval (%s) agrees with numpy on every term: max rel err %.2e (tol 1e-9) %s"
          % (act, worst, err.strip()[:200] + err2.strip()[:200]))

# 3. Known answer: logdet only, identity, K = n: the optimum is -sum log eig(S_x).
kd = os.path.join(d, "known")
cfgk = config(name="known", act="identity", preset="none", K=n, max_it=500,
              objective="  logdet: 1\n", optimizer="  gatol: 1.0e-12\n  grtol: 0\n")
code, out, err = run(["train", cfgk, "--out", kd], ranks=2)
Sx = np.cov(X, rowvar=False, bias=True)
opt = -np.log(np.linalg.eigvalsh(Sx)).sum()
got = load_json(os.path.join(kd, "summary.json"))["final"]["loss"] if code == 0 else float("nan")
check(code == 0 and abs(got - opt) < 1e-9 * abs(opt),
      "logdet-only optimum: %.15g vs -sum log eig(S_x) = %.15g (rel err %.1e, tol 1e-9)"
      % (got, opt, abs(got - opt) / abs(opt)))

# 4. The decorrelation preset decorrelates synthetic ICA outputs.
cfgd = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "synthetic-ica.yaml")
code, out, err = run(["train", cfgd, "--out", os.path.join(d, "decor")], ranks=2)
s = load_json(os.path.join(d, "decor", "summary.json")) if code == 0 else {"final": {"max_abs_corr": 1}}
check(code == 0 and s["final"]["max_abs_corr"] < 1e-3,
      "decorrelation preset on synthetic ICA: max |off-diagonal corr| = %.2e (< 1e-3)" % s["final"]["max_abs_corr"])

# 4b. fast reductions: the same run on 3 ranks ends close to the reproducible one.
cf = config(name="fastred", max_it=15)
(code1, out, err), (code2, out, err) = run_many([
    (["train", cf, "--out", os.path.join(d, "rep")], 3),
    (["train", cf, "--out", os.path.join(d, "fast"), "--set", "parallel.reduction=fast"], 3)])
l1 = load_json(os.path.join(d, "rep", "summary.json"))["final"]["loss"] if code1 == 0 else 0
l2 = load_json(os.path.join(d, "fast", "summary.json"))["final"]["loss"] if code2 == 0 else 1
check(code1 == 0 and code2 == 0 and abs(l1 - l2) <= 1e-8 * abs(l1),
      "fast reduction on 3 ranks: loss %.15g vs reproducible %.15g" % (l2, l1))

# 4c. model.bias_bound keeps the biases in the box (a bounded TAO type).
cb = config(name="bound", max_it=40)
code, out, err = run(["train", cb, "--out", os.path.join(d, "bound"), "--set", "model.bias_bound=0.05",
                      "--set", "optimizer.type=blmvm", "--set", "model.init_bias=1"], ranks=2)
bmax = abs(np.load(os.path.join(d, "bound", "layer1_b.npy"))).max() if code == 0 else 1
check(code == 0 and bmax <= 0.05, "model.bias_bound=0.05 with blmvm: max |b| = %.3g" % bmax)

# 4d. The scalapack backend: the log and summary.json say which backend and why;
# the run is bitwise the same on 1..4 ranks (every grid shape its own) and
# close to the replicated backend.
cs = config(name="scalapack", K=12, max_it=10, eps=1e-6)
tiles = ["--set", "parallel.scalapack_block=4"]
Ws, Ms = {}, {}
runs = run_many([(["train", cs, "--out", os.path.join(d, "sl%d" % P), "--set", "parallel.linalg=scalapack"] + tiles, P)
                 for P in (1, 2, 3, 4)])
for P, (code, out, err) in zip((1, 2, 3, 4), runs):
    out_dir = os.path.join(d, "sl%d" % P)
    if check(code == 0, "scalapack backend trains on %d rank%s (stderr: %s)" % (P, "s" * (P > 1), err.strip()[:200])):
        Ws[P] = np.load(os.path.join(out_dir, "layer1_W.npy"))
        la = load_json(os.path.join(out_dir, "summary.json"))["linalg"]
        check(la["backend"] == "scalapack" and la["grid_rows"] * la["grid_cols"] == P and la["tile"] == 4
              and len(la["layer_buffers_mib"]) == P and "linalg     scalapack on a" in out,
              "P=%d: log and summary.json name the backend, a %dx%d grid, 4x4 tiles" % (P, la["grid_rows"], la["grid_cols"]))
        ms = load_json(os.path.join(out_dir, "summary.json")).get("measures", {})
        Ms[P] = [ms.get(k) for k in ("dead_units", "max_abs_corr", "mean_abs_corr", "gaussian_tc")]
        check("measures skipped" not in err and "BLACS WARNING" not in out + err
              and isinstance(ms.get("effective_rank"), float) and isinstance(ms.get("gaussian_tc"), float) and "Gaussian TC" in out,
              "P=%d: the end-of-run measures are taken on the tiles (summary.json measures: effective rank %s, "
              "TC %s; no skip warning, no BLACS warning)" % (P, ms.get("effective_rank"), ms.get("gaussian_tc")))
check(len(Ws) == 4 and all(np.array_equal(Ws[1], Ws[P]) for P in Ws),
      "scalapack backend: layer1_W.npy bitwise identical on 1, 2, 3, 4 ranks")
check(len(Ms) == 4 and all(Ms[1] == Ms[P] for P in Ms),
      "scalapack backend: dead units, max and mean |corr|, Gaussian TC in summary.json identical on 1..4 ranks: %s"
      % Ms.get(1))
# `infomax eval` of the same weights, measures on tiles against replicated ones.
if 2 in Ws:
    evs = {}
    for how in ("scalapack", "replicated"):
        code, out, err = run(["eval", os.path.join(d, "sl2"), "--out", os.path.join(d, "ev_" + how),
                              "--set", "parallel.linalg=" + how] + tiles, ranks=2)
        evs[how] = (code, json.loads(out) if code == 0 else {}, err)
    (c1, e1, r1), (c2, e2, r2) = evs["scalapack"], evs["replicated"]
    worst = float("inf")
    if c1 == 0 and c2 == 0:
        m1, m2 = e1["measures"], e2["measures"]
        worst = max(abs(m1[k] - m2[k]) / abs(m2[k]) for k in
                    ("max_abs_corr", "mean_abs_corr", "gaussian_tc", "effective_rank", "weight_redundancy"))
        worst = worst if m1["dead_units"] == m2["dead_units"] else float("inf")
        ev1 = np.load(os.path.join(d, "ev_scalapack", "eigenvalues.npy"))
        ev2 = np.load(os.path.join(d, "ev_replicated", "eigenvalues.npy"))
        worst = max(worst, abs(ev1 - ev2).max() / ev2.max())
    check(worst <= 1e-10, "eval on 2 ranks: measures on tiles vs replicated, max rel err %.2e (tol 1e-10; exits %d %d)"
          % (worst, c1, c2))
    cworst = float("inf")
    if c1 == 0 and c2 == 0:
        R1 = np.load(os.path.join(d, "ev_scalapack", "correlation.npy"))
        R2 = np.load(os.path.join(d, "ev_replicated", "correlation.npy"))
        cworst = abs(R1 - R2).max() if R1.shape == R2.shape == (12, 12) else float("inf")
    check(cworst <= 1e-14 and "correlation.npy, " in r1 and "no correlation.npy" not in r1,
          "eval --out on tiles writes correlation.npy (from the tiles, MPI-IO) and eigenvalues.npy: "
          "max |diff| against the replicated correlation.npy %.1e (tol 1e-14)" % cworst)
code, out, err = run(["train", cs, "--out", os.path.join(d, "rep12"), "--set", "parallel.linalg=replicated"], ranks=2)
if code == 0 and 1 in Ws:
    s_rep = load_json(os.path.join(d, "rep12", "summary.json"))
    s_sl = load_json(os.path.join(d, "sl1", "summary.json"))
    lr, ls = s_rep["final"]["loss"], s_sl["final"]["loss"]
    check(abs(lr - ls) <= 1e-9 * abs(lr) and s_rep["linalg"]["backend"] == "replicated",
          "scalapack vs replicated after 10 iterations: loss %.15g vs %.15g" % (ls, lr))
else:
    check(False, "replicated K=12 run (stderr: %s)" % err.strip()[:200])
code, out, err = run(["train", cs, "--out", os.path.join(d, "auto12"), "--set", "parallel.memory_mib=0.001"], ranks=2)
s_auto = load_json(os.path.join(d, "auto12", "summary.json")) if code == 0 else {}
la = s_auto.get("linalg", {})
check(code == 0 and s_auto["status"] == "ok" and "measures" not in s_auto
      and "measures skipped: they need" in err and "(K x K on block-cyclic tiles)" in err,
      "measures that would not fit in parallel.memory_mib are skipped with a warning, the run is ok")
check(code == 0 and la.get("backend") == "scalapack" and la["reason"].startswith("auto: replicated")
      and "linalg     scalapack on a 1 x 2 BLACS grid" in out,
      "parallel.memory_mib=0.001: auto takes scalapack and says why: %s" % la.get("reason"))

# 4e. The ica preset warns when the inputs are not whitened (it is ML ICA only then).
W_ICA = "entropy + logdet is maximum-likelihood ICA for whitened inputs"
ica = ["--set", "objective.preset=ica", "--set", "optimizer.max_it=2"]
(c1, o1, e1), (c2, o2, e2) = run_many([
    (["train", cfgd, "--out", os.path.join(d, "ica_c")] + ica, 2),
    (["train", cfgd, "--out", os.path.join(d, "ica_w"), "--set", "data.preprocess=whiten"] + ica, 2)])
check(c1 == 0 and c2 == 0 and W_ICA in e1 and "set data.preprocess: whiten" in e1 and W_ICA not in e2,
      "ica preset: a warning with centered inputs, none with whitened ones (exits %d %d)" % (c1, c2))

# 4f. The ICA preconditioner (optimizer.precondition: ica) reaches the same
# optimum as plain L-BFGS (the default) in far fewer evaluations (synthetic ICA,
# n = 8, 20000 rows; measured: 20 against 50); the log says it is on, or, when it
# is off but would apply, that it exists. Where it does not apply it is refused.
pc = ["--set", "objective.preset=ica", "--set", "data.preprocess=whiten", "--set", "optimizer.gatol=1e-7"]
res = {}
for mode in ("ica", "none"):
    rd = os.path.join(d, "ica_pc_" + mode)
    c, o, e = run(["train", cfgd, "--out", rd, "--set", "optimizer.precondition=" + mode] + pc, ranks=2)
    sm = load_json(os.path.join(rd, "summary.json")) if c == 0 else {}
    res[mode] = (c, o, sm.get("optimizer", {}), sm.get("final", {}).get("loss", float("nan")))
(ca, oa, opa, la_), (cn, on, opn, ln) = res["ica"], res["none"]
check(ca == cn == 0 and "ICA Hessian approximation" in oa
      and "precond    none (optimizer.precondition: ica starts" in on
      and opa.get("precondition") == "ica" and opn.get("precondition") == "none"
      and opa.get("reason") == opn.get("reason") == "CONVERGED_GATOL"
      and abs(la_ - ln) <= 1e-9 * abs(ln) and opa["evaluations"] < 0.7 * opn["evaluations"],
      "ica: preconditioned L-BFGS reaches the same loss (%.12g vs %.12g) in %s evaluations "
      "against %s without (want < 0.7x)" % (la_, ln, opa.get("evaluations"), opn.get("evaluations")))
c, o, e = run(["train", cfgd, "--out", os.path.join(d, "ica_pc_bad"), "--set", "optimizer.precondition=ica",
               "--set", "optimizer.max_it=2"], ranks=2)
check(c == 3 and "optimizer.precondition: ica does not apply: it is for entropy + logdet only" in e,
      "optimizer.precondition: ica on the decorrelation preset: exit %d (want 3) with the reason" % c)

# 5. Never overwrite: the same --out twice is refused (exit 3, with the hint to
# resume it); the first run is untouched and no other directory is made.
code, out, err = run(["train", config(name="soft", max_it=2), "--out", run_dir], ranks=1)
check(code == 3 and "--resume " + run_dir in err and not os.path.exists(run_dir + "-2")
      and load_json(os.path.join(run_dir, "summary.json"))["ranks"] == 2,
      "a second run with the same output.dir %s is refused; the first is untouched" % run_dir)

# 6. float32 input, TAO options from the command line and from the config.
code, out, err = run(["train", config(name="f32", path=os.path.join(d, "x32.npy"), max_it=3),
                      "--out", os.path.join(d, "f32"), "-tao_type", "bncg", "-tao_monitor"], ranks=2)
check(code == 0 and "TAO bncg" in out and out.count("TAO,  Function value") >= 1
      and out.count("TAO,  Function value") == out.count("\niter "),
      "float32 .npy; -tao_type bncg and -tao_monitor work, monitor printed by rank 0 only")
cfgo = config(name="opts", max_it=3, optimizer="  type: cg\n  options: -tao_cg_type pr -tao_max_it 2\n")
code, out, err = run(["train", cfgo, "--out", os.path.join(d, "opts"), "-tao_max_it", "1"], ranks=2)
s = load_json(os.path.join(d, "opts", "summary.json")) if code == 0 else {}
check(code == 0 and s["optimizer"]["type"] == "cg" and s["optimizer"]["iterations"] == 1,
      "optimizer.type/options from the config, the command line wins (-tao_max_it 1)")
code, out, err = run(["train", config(name="tg", max_it=0), "--out", os.path.join(d, "tg"),
                      "-tao_test_gradient"], ranks=2)
import re  # noqa: E402
m = re.search(r"\|\|G - Gfd\|\|/\|\|G\|\| = ([0-9.e+-]+)", out)
check(code == 0 and m and float(m.group(1)) < 1e-5,
      "-tao_test_gradient: ||G - Gfd||/||G|| = %s" % (m.group(1) if m else "?"))

# 7. The supervised term: the head is written; its cross-entropy matches numpy;
# with 30% of the labels, resume on 1 rank ends bitwise where 2 ranks end.
y = (S[:, 0] > 0).astype(np.int32) + 2 * (S[:, 1] > 0).astype(np.int32)
np.save(os.path.join(d, "y.npy"), y)
sup = ["--set", "data.labels=" + os.path.join(d, "y.npy"), "--set", "objective.supervised=1"]
code, out, err = run(["train", config(name="sup", max_it=20), "--out", os.path.join(d, "sup")] + sup,
                     ranks=2)
ok = code == 0
if ok:
    rd = os.path.join(d, "sup")
    W, b = np.load(rd + "/layer1_W.npy"), np.load(rd + "/layer1_b.npy")[:, 0]
    U, c = np.load(rd + "/layer1_head_W.npy"), np.load(rd + "/layer1_head_b.npy")[:, 0]
    Z = (X - X.mean(axis=0)) @ W.T + b
    R = np.exp(-(Z - Z.min(axis=1, keepdims=True)))
    R /= R.sum(axis=1, keepdims=True)
    Sg = R @ U.T + c
    lse = Sg.max(axis=1) + np.log(np.exp(Sg - Sg.max(axis=1, keepdims=True)).sum(axis=1))
    ce = np.mean(lse - Sg[np.arange(N), y])
    got = load_json(rd + "/summary.json")["final"]["terms"]["supervised"]
    acc = np.mean(Sg.argmax(axis=1) == y)
    check(U.shape == (4, 4) and c.shape == (4,) and abs(ce - got) < 1e-9 * abs(ce) and acc > 0.4,
          "supervised: head 4 classes x 4 units written; cross-entropy %.10f (numpy %.10f); head "
          "train accuracy %.3f (chance 0.25)" % (got, ce, acc))
else:
    check(False, "supervised run: exit %d: %s" % (code, err[-300:]))
frac = sup + ["--set", "objective.label_fraction=0.3"]
code1, _, _ = run(["train", config(name="supf", max_it=12), "--out", os.path.join(d, "supf")] + frac,
                  ranks=2)
code2, _, _ = run(["train", config(name="supr", max_it=6), "--out", os.path.join(d, "supr")] + frac,
                  ranks=2)
code3, _, err3 = run(["train", "--resume", os.path.join(d, "supr"), "--set", "optimizer.max_it=12"],
                     ranks=1)
same = all(code == 0 for code in (code1, code2, code3)) and all(
    np.array_equal(np.load(os.path.join(d, "supf", f)), np.load(os.path.join(d, "supr", f)))
    for f in ("layer1_W.npy", "layer1_b.npy", "layer1_head_W.npy", "layer1_head_b.npy"))
check(same, "supervised, label_fraction 0.3: 6 iterations on 2 ranks + resume on 1 rank to 12 = "
      "12 on 2 ranks, bitwise (W, b and the head)")

# 8. Stacked layers (model.layers): the first layer of a 3-layer stack is the
# one-layer run's, bit for bit; every layer's files; the same bits on 1 rank
# and from the run's own config.yaml; --resume retrains the upper layers from
# the trained first one and ends at the same bits.
stack = write(os.path.join(d, "stack_layers.yaml"), open(config(name="stack", max_it=10)).read().replace(
    "  temperature: 1\n",
    "  temperature: 1\n  layers:\n    - {}\n"
    "    - {units: 3, activation: topk, topk: 2, objective.eps: 1e-1, optimizer.max_it: 6}\n"
    "    - {units: 2, activation: relu, objective.preset: decorrelation, objective.supervised: 0.5}\n"))
lab = ["--set", "data.labels=" + os.path.join(d, "y.npy")]
c1, o1, e1 = run(["train", stack, "--out", os.path.join(d, "st2")] + lab, ranks=2)
c0, _, _ = run(["train", stack, "--out", os.path.join(d, "st0"), "--set", "model.layers=[]"] + lab, ranks=2)
same1 = c1 == 0 and c0 == 0 and all(
    np.array_equal(np.load(os.path.join(d, "st0", f)), np.load(os.path.join(d, "st2", f)))
    for f in ("layer1_W.npy", "layer1_b.npy"))
check(same1, "stack of 3 layers: layer 1 is bitwise the one-layer run's (model.layers=[])")
files = ["layer%d_%s" % (i, f) for i in (2, 3) for f in ("W.npy", "b.npy", "metrics.jsonl", "summary.json")]
shapes = c1 == 0 and np.load(os.path.join(d, "st2", "layer2_W.npy")).shape == (3, 4) and \
    np.load(os.path.join(d, "st2", "layer3_W.npy")).shape == (2, 3) and \
    np.load(os.path.join(d, "st2", "layer3_head_W.npy")).shape == (4, 2)
s3 = load_json(os.path.join(d, "st2", "layer3_summary.json")) if c1 == 0 else {}
check(shapes and all(os.path.exists(os.path.join(d, "st2", f)) for f in files)
      and s3.get("status") == "ok" and s3["final"]["terms"]["supervised"] is not None,
      "stack: layer2 3 x 4, layer3 2 x 3 with a 4-class head; metrics and summary per layer")
c2, _, _ = run(["train", os.path.join(d, "st2", "config.yaml"), "--out", os.path.join(d, "st1")], ranks=1)
shutil.copytree(os.path.join(d, "st2"), os.path.join(d, "str"))
for f in files:
    os.remove(os.path.join(d, "str", f))
c3, _, _ = run(["train", "--resume", os.path.join(d, "str")], ranks=3)
ok = c2 == 0 and c3 == 0 and all(
    np.array_equal(np.load(os.path.join(d, "st2", f)), np.load(os.path.join(d, r, f)))
    for r in ("st1", "str") for f in ("layer2_W.npy", "layer3_W.npy", "layer3_b.npy", "layer3_head_W.npy"))
check(ok, "stack: its config.yaml on 1 rank, and --resume on 3 ranks after layer 1, give the "
      "same bits for layers 2 and 3")
for L in (2, 3):
    code, out, err = run(["eval", os.path.join(d, "st2"), "--set", "eval.layer=%d" % L,
                          "--set", "eval.probe=false"], ranks=2)
    ev = json.loads(out) if code == 0 else {}
    fin = load_json(os.path.join(d, "st2", "layer%d_summary.json" % L))["final"]["terms"] if c1 == 0 else {}
    want = {t: v for t, v in fin.items() if v is not None and t != "supervised"}
    got = {t: ev["terms"][t] for t in want} if code == 0 else {}
    err = max([abs(got[t] - want[t]) / abs(want[t]) for t in want] or [1]) if got else 1
    # eval renormalizes the unit rows of W (weight_norm): equal up to rounding
    check(code == 0 and ev["K"] == (3, 2)[L - 2] and err < 1e-12,
          "eval --set eval.layer=%d: K=%s on the features of the layers below; terms %s agree "
          "with the layer's final training terms: max rel err %.1e (tol 1e-12)"
          % (L, ev.get("K"), sorted(want), err))
code, out, err = run(["eval", os.path.join(d, "st0"), "--set", "eval.layer=2"], ranks=1)
check(code == 3 and "eval.layer = 2 but the run has 1 layer" in err,
      "eval.layer beyond the stack refused: %s" % err.strip()[-120:])
finish()
