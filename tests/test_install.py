"""test_install: `meson install` into a DESTDIR gives a working installation.

Installs the build the test is given into a temporary DESTDIR and checks what
docs/guide.md ("Install") promises: bin/infomax; share/infomax/configs (every
configs/*.yaml), share/infomax/jobs (every jobs/ script, executable) and
share/infomax/python (tools/plot_run.py and the model loader
tools/infomax_model.py, which imports from there). Then runs the installed
copy: --version (the same commit as the build), `info` and a tiny training
from an installed config on 2 ranks, the installed plot_run.py on its run
directory, and imports the installed loader. Last, a copy of the source tree without .git configures and names
"unknown commit" instead of failing.

Usage (from tests/): python3 test_install.py PATH/TO/BUILD/infomax
"""
import glob
import json
import os
import shutil
import subprocess
import sys

from clitest import ENV, INFOMAX, ROOT, check, finish, load_json, tmpdir

BUILD = os.path.dirname(INFOMAX)
# Python tools a user runs or imports; each one the source tree has must be installed.
PYTHON_TOOLS = ("plot_run.py", "infomax_model.py")
d = tmpdir()
dest = os.path.join(d, "dest")


def sh(cmd, timeout=120, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, env=kw.pop("env", ENV), timeout=timeout, **kw)
    return p.returncode, p.stdout, p.stderr


meson = shutil.which("meson")
code, out, err = sh([meson, "install", "-C", BUILD, "--destdir", dest, "--no-rebuild", "--quiet"])
check(code == 0, "meson install --destdir exits 0" + ("" if code == 0 else ": " + (err or out).strip()[-300:]))
code, out, err = sh([meson, "introspect", BUILD, "--installed"])
installed = json.loads(out) if code == 0 else {}


def where(source):
    """The installed path (under DESTDIR) of a file or directory of the build."""
    target = installed.get(source)
    return os.path.join(dest, target.lstrip("/")) if target else None


binary = where(INFOMAX)
share = os.path.dirname(where(os.path.join(ROOT, "configs")) or "")
check(binary is not None and binary.endswith(os.path.join("bin", "infomax")) and os.access(binary, os.X_OK)
      and share.endswith(os.path.join("share", "infomax")),
      "the binary in bin/ (%s), the rest in share/infomax/ (%s)" % (binary, share))

missing = []
for pattern, sub in (("configs/*.yaml", "configs"), ("jobs/*", "jobs")):
    for f in sorted(glob.glob(os.path.join(ROOT, pattern))):
        got = os.path.join(share, sub, os.path.basename(f))
        if not os.path.isfile(got) or (os.access(f, os.X_OK) and not os.access(got, os.X_OK)):
            missing.append("%s/%s" % (sub, os.path.basename(f)))
for name in PYTHON_TOOLS:
    if os.path.exists(os.path.join(ROOT, "tools", name)) and not os.path.isfile(os.path.join(share, "python", name)):
        missing.append("python/%s (add tools/%s to imx_python in meson.build)" % (name, name))
configs = [os.path.basename(f) for f in glob.glob(os.path.join(share, "configs", "*.yaml"))]
check(share and configs and not missing,
      "share/infomax/ holds configs (%d), jobs (executable) and python/ %s%s"
      % (len(configs), [n for n in PYTHON_TOOLS if os.path.exists(os.path.join(share, "python", n))],
         ": missing " + ", ".join(missing) if missing else ""))

# The installed copy runs: --version names the same commit as the build.
_, built, _ = sh([INFOMAX, "--version"])
code, ver, err = sh([binary or "/nonexistent", "--version"]) if binary else (1, "", "")
check(code == 0 and ver == built and ("(commit " in ver or "(unknown commit)" in ver),
      "installed infomax --version: %s" % (ver.strip() or err.strip()))
mpiexec = shutil.which("mpiexec")
code, info, err = sh([mpiexec, "-n", "2", binary, "info"]) if binary else (1, "", "")
check(code == 0 and all(w in info for w in ("ScaLAPACK", "HDF5", "zlib", "build ", "(2 ranks)")),
      "installed infomax info on 2 ranks: ScaLAPACK, HDF5, zlib, build type (exit %d)" % code)

run_dir = os.path.join(d, "run")
cfg = os.path.join(share, "configs", "synthetic-ica.yaml")
code, out, err = sh([mpiexec, "-n", "2", binary, "train", cfg, "--set", "data.samples=2000",
                     "--set", "optimizer.max_it=3", "--out", run_dir], cwd=d) if binary else (1, "", "")
s = load_json(os.path.join(run_dir, "summary.json")) if os.path.exists(os.path.join(run_dir, "summary.json")) else {}
check(code == 0 and s.get("status") == "ok" and s.get("program") == ver.strip(),
      "installed infomax trains from share/infomax/configs/synthetic-ica.yaml on 2 ranks: exit %d, status %s, "
      "program %r" % (code, s.get("status"), s.get("program")))
plot = os.path.join(share, "python", "plot_run.py")
code, out, err = sh([plot, run_dir], env=dict(ENV, MPLBACKEND="Agg"))
check(code == 0 and os.path.exists(os.path.join(run_dir, "plots", "training.png")),
      "installed plot_run.py on that run: exit %d %s" % (code, (err or out).strip()[-200:]))

if os.path.exists(os.path.join(ROOT, "tools", "infomax_model.py")):
    code, out, err = sh([sys.executable, "-c", "import infomax_model; print(infomax_model.__file__)"],
                        env=dict(ENV, PYTHONPATH=os.path.join(share, "python")), cwd=d)
    check(code == 0 and out.strip() == os.path.join(share, "python", "infomax_model.py"),
          "the installed loader imports with share/infomax/python on PYTHONPATH: %s" % (out or err).strip()[-200:])

# A source tree without .git (an unpacked tarball) says "unknown commit".
src = os.path.join(d, "src")
os.makedirs(src)
for name in os.listdir(ROOT):  # what meson setup reads, not runs/ or build directories
    if name in ("meson.build", "meson_options.txt", "src", "include", "tests", "bench", "configs", "jobs", "tools"):
        (shutil.copytree if os.path.isdir(os.path.join(ROOT, name)) else shutil.copy)(
            os.path.join(ROOT, name), os.path.join(src, name))
code, out, err = sh([meson, "setup", os.path.join(d, "b"), src], timeout=300)
if code == 0:
    code, out, err = sh(["ninja", "-C", os.path.join(d, "b"), "imx_version.h"])
header = os.path.join(d, "b", "imx_version.h")
text = open(header).read() if os.path.exists(header) else ""
check(code == 0 and '"unknown commit"' in text,
      "a source tree without .git configures and builds imx_version.h with \"unknown commit\"%s"
      % ("" if code == 0 else ": " + (err or out).strip()[-300:]))

shutil.rmtree(d)
finish()
