"""Helpers for the end-to-end tests: run infomax under mpiexec, check results.

Each test script prints PASSED/FAILED lines and exits 0 (pass) or 1 (fail).
"""
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


def tmpdir():
    return tempfile.mkdtemp(prefix="imx_e2e_")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def load_json(path):
    with open(path) as f:
        return json.load(f)


def finish():
    print("FAILED" if failed else "PASSED")
    sys.exit(1 if failed else 0)
