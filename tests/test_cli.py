"""test_cli: usage, version, info, and bad input: every config error and bad
file gives the documented exit code on every rank, one message on rank 0
naming the file (and line:col), no hang, and never touches earlier results."""
import os

from clitest import ENV, INFOMAX, check, finish, run_many, tmpdir, write

# Usage and information: independent runs, two at a time (clitest.run_many).
r = iter(run_many([(["--version"],), (["--help"],), (["train", "--help"],), (["eval", "--help"],),
                   (["transform", "--help"],), ([],), (["frobnicate"], 2), (["transform", "runs/x"], 2),
                   (["--help"],), (["info"], 2), (["config", "--reference"],)]))
code, out, err = next(r)
check(code == 0 and out.startswith("infomax "), "--version prints the version: %r" % out.strip())
for args in (["--help"], ["train", "--help"], ["eval", "--help"], ["transform", "--help"]):
    code, out, err = next(r)
    check(code == 0 and "usage:" in out, "%s exits 0 with usage" % " ".join(args))
code, out, err = next(r)
check(code == 2 and "usage:" in err, "no command: exit 2 with usage on stderr")
code, out, err = next(r)
check(code == 2 and err.count("unknown command") == 1, "unknown command: exit 2, said once")
code, out, err = next(r)
check(code == 2 and err.count("needs --data") == 1 and "usage: infomax transform" in err,
      "transform without --data: exit 2, said once with its usage")
code, out, err = next(r)
check("transform RUN_DIR" in out, "the usage lists transform")
code, out, err = next(r)
check(code == 0 and "PETSc" in out and "BLAS" in out and "MPI" in out,
      "info names MPI, PETSc and BLAS:\n" + out)
code, out, err = next(r)
check(code == 0 and "| units |" in out.replace("`", ""), "config --reference prints the key table")

# Config errors: exit 3 on all ranks, one message with file:line:col, before any compute.
cases = [
    ("configs/bad_unknown_key.yaml", [], 'unknown key "lamda" in objective (did you mean "lambda"?)'),
    ("configs/bad_range.yaml", [], "out of range"),
    ("configs/bad_type.yaml", [], "expected"),
    ("configs/bad_enum.yaml", [], "is not one of"),
    ("configs/bad_syntax.yaml", [], "configs/bad_syntax.yaml:"),
    ("configs/good_full.yaml", ["--set", "objective.lamda=0.5"], 'did you mean "lambda"'),
    ("configs/good_full.yaml", ["--set", "model.units=0"], "out of range"),
    ("configs/missing.yaml", [], "cannot open config"),
]
r = iter(run_many([(["train", path] + extra + ["--out", "/tmp/imx_never_written"], ranks, 60)
                   for path, extra, needle in cases for ranks in (1, 3)]))
for path, extra, needle in cases:
    for ranks in (1, 3):
        code, out, err = next(r)
        want = 4 if "missing" in path else 3
        check(code == want and err.count("infomax: error") == 1 and needle in err
              and "iter" not in out,
              "%s %s on %d rank(s): exit %d (want %d), one message: %s"
              % (path, " ".join(extra), ranks, code, want, err.strip().splitlines()[0] if err else ""))
check(not os.path.exists("/tmp/imx_never_written"), "config errors create no run directory")

# Bad data and bad output: clear message, same exit code, no hang. (Two at a
# time, each with its own --out.) A numerical failure keeps the run directory
# and says so: duplicate initial units make C singular.
import numpy as np  # noqa: E402
d = tmpdir()
base = "data:\n  source: %s\n  path: %s\nmodel:\n  units: 3\noptimizer:\n  max_it: 3\n"
missing = write(os.path.join(d, "missing.yaml"), base % ("npy", os.path.join(d, "nope.npy")))
with open(os.path.join(d, "trunc.npy"), "wb") as f:
    f.write(b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f8', 'fortran_order': False, 'shape': (100, 4), }" + b" " * 5 + b"\n" + b"\0" * 64)
trunc = write(os.path.join(d, "trunc.yaml"), base % ("npy", os.path.join(d, "trunc.npy")))
cfg = write(os.path.join(d, "ok.yaml"), "data:\n  samples: 500\n  dim: 4\nmodel:\n  units: 3\noptimizer:\n  max_it: 3\n")
np.save(os.path.join(d, "dup.npy"), np.ones((3, 4)))
r = iter(run_many([
    (["train", missing, "--out", os.path.join(d, "r1")], 2),
    (["train", trunc, "--out", os.path.join(d, "r2")], 3),
    (["train", cfg, "--out", "/proc/imx_cannot_write"], 2),
    (["train", cfg, "--set", "data.samples=40", "--set", "parallel.block=32", "--out", os.path.join(d, "r3")], 3),
    (["train", cfg, "--out", os.path.join(d, "r4"), "-tao_type", "nls"], 2),
    (["train", cfg, "--set", "model.bias_bound=1", "--out", os.path.join(d, "r5")], 2),
    (["train", cfg, "--set", "optimizer.type=nosuch", "--out", os.path.join(d, "r6")], 2),
    (["train", cfg, "--set", "model.units=9", "--out", os.path.join(d, "r7")], 2),
    (["train", cfg, "--set", "model.init=" + os.path.join(d, "dup.npy"), "--set", "parallel.path=data",
      "--out", os.path.join(d, "sing")], 2)]))
code, out, err = next(r)
check(code == 4 and "nope.npy" in err, "missing data file: exit 4 naming it: " + err.strip()[:200])
code, out, err = next(r)
check(code == 5 and "trunc.npy" in err, "truncated .npy: exit 5 naming it: " + err.strip()[:200])
code, out, err = next(r)
check(code == 4 and "/proc/imx_cannot_write" in err, "unwritable output dir: exit 4: " + err.strip()[:200])
code, out, err = next(r)
check(code == 5 and "block" in err, "fewer blocks than ranks: exit 5: " + err.strip()[:200])
code, out, err = next(r)
check(code == 3 and "Hessian" in err, "TAO type needing a Hessian refused: " + err.strip()[:160])
code, out, err = next(r)
check(code == 3 and "bound-constrained" in err, "bias_bound with an unbounded TAO type: exit 3: " + err.strip()[:160])
code, out, err = next(r)
check(code == 3 and "nosuch" in err, "unknown TAO type: exit 3: " + err.strip()[:160])
code, out, err = next(r)
check(code == 3 and "softmax" in err and "objective.eps" in err,
      "log det with identity, K > n refused before training: " + err.strip()[:160])
code, out, err = next(r)
check(code == 6 and "not positive definite" in err and "objective.eps" in err,
      "singular C: exit 6 with pivot and hint: " + err.strip()[:240])
s = os.path.join(d, "sing", "summary.json")
check(os.path.exists(s) and '"status": "failed"' in open(s).read(), "failed run leaves summary.json with status failed")

# The Slurm test skips (exit 77) on a machine without Slurm, instead of
# crashing on the missing sinfo (the README's test command on a fresh machine).
import subprocess  # noqa: E402
import sys  # noqa: E402
noslurm = dict(ENV, PATH="/nonexistent")
p = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_slurm.py"),
                    INFOMAX], capture_output=True, text=True, env=noslurm, timeout=60)
check(p.returncode == 77 and "SKIP" in p.stdout,
      "test_slurm.py without Slurm on PATH skips with 77: exit %d %s" % (p.returncode, (p.stdout + p.stderr).strip()[-200:]))
finish()
