"""Helpers for the end-to-end tests: run infomax under mpiexec, check results.

Each test script prints PASSED/FAILED lines and exits 0 (pass) or 1 (fail).
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFOMAX = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "infomax")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OPENBLAS_NUM_THREADS="1")
failed = []
passed = False  # set by finish() when no check failed


def check(ok, what):
    print(("PASSED: " if ok else "FAILED: ") + what, flush=True)
    if not ok:
        failed.append(what)
    return ok


def run(args, ranks=None, timeout=120):
    """Run infomax (under mpiexec -n ranks if given); return (code, stdout, stderr)."""
    cmd = ([shutil.which("mpiexec"), "-n", str(ranks)] if ranks else []) + [INFOMAX] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
    return p.returncode, p.stdout, p.stderr


def run_many(calls):
    """Independent runs two at a time (their start-up overlaps): calls is a list
    of (args, ranks) or (args, ranks, timeout); returns run()'s results in the
    same order. Only for runs that do not depend on each other's files or
    timing."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda c: run(*c), calls))


def tmpdir():
    """A new temporary directory, removed at exit when the test passed (finish()
    with no failed check); kept, and named, after a failure or a crash."""
    d = tempfile.mkdtemp(prefix="imx_e2e_")
    atexit.register(lambda: shutil.rmtree(d, ignore_errors=True) if passed else print("kept " + d))
    return d


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def load_json(path):
    with open(path) as f:
        return json.load(f)


def small_npy_run(seed, optimizer, sections=""):
    """The small run test_resume.py and test_stochastic.py both train: 2000 rows x
    8 columns (Gaussian rows through a random 8 x 8 mixing, numpy seed `seed`) in
    a new tmpdir() as x.npy, K = 8 softmax units, the gaussian preset, the
    `optimizer` section's lines and then `sections` (YAML text, e.g. parallel:
    and output:). Returns (dir, data path, config path, train), where
    train(rundir, max_it, *extra, ranks=1) runs `infomax train` on it with
    optimizer.max_it and the extra arguments."""
    import numpy as np
    d = tmpdir()
    rng = np.random.default_rng(seed)
    data = os.path.join(d, "x.npy")
    np.save(data, rng.standard_normal((2000, 8)) @ rng.standard_normal((8, 8)))
    cfg = write(os.path.join(d, "c.yaml"), "data:\n  source: npy\n  path: %s\nmodel:\n  units: 8\n"
                "  activation: softmax\nobjective:\n  preset: gaussian\noptimizer:\n%s%s"
                % (data, "".join("  %s\n" % line for line in optimizer), sections))

    def train(rundir, max_it, *extra, ranks=1):
        return run(["train", cfg, "--out", rundir, "--set", "optimizer.max_it=%d" % max_it] + list(extra),
                   ranks=ranks)
    return d, data, cfg, train


def finish():
    global passed
    passed = not failed
    print("FAILED" if failed else "PASSED")
    sys.exit(1 if failed else 0)
