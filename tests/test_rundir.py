"""test_rundir: one run per directory, and nothing silently ignored.

  - a run directory is locked (flock on RUN/.lock, held by rank 0 for the whole
    run): a second train --out, train --resume or eval --out RUN/... refuses at
    once with exit 4 naming the holder, on every rank; the lock file a dead
    process left behind blocks nothing;
  - an explicit --out is used as given: refused (exit 3, with the hint to
    --resume) when it holds a run, used when it exists empty; only the default
    runs/<name> numbers itself (-2, -3, ...);
  - every PETSc option in use is in summary.json (optimizer.petsc_options) and
    config.yaml (a comment), with TAO's settings as it used them; options
    nobody read are a warning and optimizer.petsc_options_unused; -tao_type in
    optimizer.options and an unknown TAO type are refused (exit 3) before data;
  - config --check runs train's objective check where n is known.
"""
import fcntl
import os
import subprocess
import time

from clitest import ENV, INFOMAX, check, finish, load_json, run, tmpdir

d = tmpdir()
CFG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "synthetic-ica.yaml")
SMALL = ["--set", "data.samples=2000", "--set", "optimizer.max_it=3"]


def hold(path, note="host testhost pid 4242\n"):
    """Lock path/.lock as another process would; returns the open file (close it to release)."""
    f = open(os.path.join(path, ".lock"), "a+")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    f.truncate(0)
    f.write(note)
    f.flush()
    return f


def stamp(path):
    return {n: os.stat(os.path.join(path, n)).st_mtime_ns for n in sorted(os.listdir(path)) if n != ".lock"}


# 1. The lock: a locked run directory is refused at once, on every rank.
rd = os.path.join(d, "run")
code, out, err = run(["train", CFG, "--out", rd] + SMALL, ranks=2)
check(code == 0 and os.path.exists(os.path.join(rd, ".lock")), "a run locks its directory (RUN/.lock)")
before = stamp(rd)
held = hold(rd)
t0 = time.time()
code, out, err = run(["train", "--resume", rd, "--set", "optimizer.max_it=6"], ranks=2, timeout=60)
took = time.time() - t0
check(code == 4 and err.count("infomax: error") == 1 and "in use by another infomax process" in err
      and "host testhost pid 4242" in err and took < 30,
      "--resume of a locked directory: exit %d (want 4) in %.1f s, one message naming the holder: %s"
      % (code, took, err.strip()[-200:]))
check(stamp(rd) == before, "the refused resume wrote nothing into the run directory")
code, out, err = run(["eval", rd, "--out", os.path.join(rd, "eval")], ranks=2, timeout=60)
check(code == 4 and "host testhost pid 4242" in err and not os.path.exists(os.path.join(rd, "eval")),
      "eval --out RUN/eval of a locked run: exit %d (want 4), nothing written" % code)
empty = os.path.join(d, "empty_locked")
os.mkdir(empty)
held2 = hold(empty)
code, out, err = run(["train", CFG, "--out", empty] + SMALL, ranks=2, timeout=60)
check(code == 4 and "host testhost pid 4242" in err and os.listdir(empty) == [".lock"],
      "train --out of an empty but locked directory: exit %d (want 4), nothing written" % code)
held.close()
held2.close()
# The lock file stays after a run (and says who held it); it blocks nothing.
code, out, err = run(["train", "--resume", rd, "--set", "optimizer.max_it=6"], ranks=2)
s = load_json(os.path.join(rd, "summary.json")) if code == 0 else {}
check(code == 0 and s.get("optimizer", {}).get("iterations") == 6,
      "the lock file of a process that ended blocks nothing: resume exit %d" % code)

# A run in progress holds the lock: a second train --out and --resume are refused.
live = os.path.join(d, "live")
# (the data path over 200000 rows: minutes of work, so it still holds the
# lock when the two others ask, however loaded the machine is)
p = subprocess.Popen([INFOMAX, "train", CFG, "--out", live, "--set", "data.samples=200000",
                      "--set", "parallel.path=data", "--set", "optimizer.max_it=100000",
                      "--set", "optimizer.gatol=0", "--set", "optimizer.grtol=0"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, env=ENV)
for _ in range(600):
    if os.path.exists(os.path.join(live, "metrics.jsonl")):
        break
    time.sleep(0.05)
c1, _, e1 = run(["train", CFG, "--out", live] + SMALL, ranks=1, timeout=60)
c2, _, e2 = run(["train", "--resume", live], ranks=2, timeout=60)
alive = p.poll() is None
p.terminate()
p.wait(timeout=60)
check(alive and c1 == 3 and c2 == 4 and ("pid %d" % p.pid) in e2,
      "while a run trains (still running: %s): train --out it exit %d (want 3), --resume it exit %d "
      "(want 4) naming pid %d" % (alive, c1, c2, p.pid))

# 2. An explicit --out is used as given; only the default name numbers itself.
code, out, err = run(["train", CFG, "--out", rd] + SMALL, ranks=2)
check(code == 3 and "already holds a run" in err and "--resume " + rd in err
      and not os.path.exists(rd + "-2"),
      "--out of a directory holding a run: exit %d (want 3) with the hint to --resume, no %s-2" % (code, rd))
other = os.path.join(d, "other")
os.mkdir(other)
open(os.path.join(other, "notes.txt"), "w").close()
code, out, err = run(["train", CFG, "--out", other] + SMALL, ranks=1)
check(code == 3 and "is not empty" in err and os.listdir(other) == ["notes.txt"],
      "--out of a directory holding other files: exit %d (want 3), untouched" % code)
mt = os.path.join(d, "made_empty")
os.mkdir(mt)
code, out, err = run(["train", CFG, "--out", mt] + SMALL, ranks=1)
check(code == 0 and os.path.exists(os.path.join(mt, "summary.json")),
      "--out of an existing empty directory is used as given")
cwd = os.path.join(d, "cwd")
os.mkdir(cwd)
codes = [subprocess.run([INFOMAX, "train", CFG] + SMALL, cwd=cwd, env=ENV, capture_output=True).returncode
         for _ in range(2)]
check(codes == [0, 0] and os.path.exists(os.path.join(cwd, "runs", "synthetic-ica", "summary.json"))
      and os.path.exists(os.path.join(cwd, "runs", "synthetic-ica-2", "summary.json")),
      "the default runs/<name> numbers itself: runs/synthetic-ica, runs/synthetic-ica-2 (exit %s)" % codes)

# 3. PETSc options are recorded, checked, and unread ones said.
po = os.path.join(d, "opts")
code, out, err = run(["train", CFG, "--out", po] + SMALL[:2] + ["-tao_max_it", "5", "-tao_monitr"], ranks=2)
s = load_json(os.path.join(po, "summary.json")) if code == 0 else {}
o = s.get("optimizer", {})
cy = open(os.path.join(po, "config.yaml")).read() if code == 0 else ""
check(code == 0 and o.get("iterations") == 5 and o.get("max_it") == 5 and o.get("type") == "lmvm"
      and "-tao_max_it 5" in o.get("petsc_options", "") and "gatol" in o,
      "-tao_max_it 5: summary.json says max_it 5 (TAO's) and lists the options: %s" % o.get("petsc_options"))
check(o.get("petsc_options_unused") == "-tao_monitr" and err.count("nobody read") == 1 and "-tao_monitr" in err,
      "a typo (-tao_monitr) is warned about once and listed as unused: %r" % o.get("petsc_options_unused"))
cc, _, ce = run(["config", "--check", os.path.join(po, "config.yaml")])
check("# PETSc options in use" in cy and "-tao_max_it 5" in cy and cc == 0,
      "config.yaml records the options as a comment and stays loadable (config --check exit %d)" % cc)
t0 = time.time()
code, out, err = run(["train", CFG, "--out", os.path.join(d, "nosuch"), "--set", "data.samples=400000",
                      "-tao_type", "nosuch"], ranks=2)
check(code == 3 and '"nosuch" is not a TAO type' in err and "loaded" not in out
      and not os.path.exists(os.path.join(d, "nosuch")),
      "-tao_type nosuch: exit %d (want 3) before data are read (%.1f s), no run directory" % (code, time.time() - t0))
code, out, err = run(["train", CFG, "--out", os.path.join(d, "optnls"), "--set", "optimizer.options=-tao_type nls"]
                     + SMALL, ranks=2)
check(code == 3 and "optimizer.options: -tao_type" in err and "optimizer.type" in err,
      "optimizer.options: -tao_type nls is refused (exit %d, want 3), pointing to optimizer.type" % code)

# 4. config --check runs train's objective check where the config knows n.
bad = ["--set", "model.units=16", "--set", "objective.preset=gaussian"]
c1, _, e1 = run(["config", "--check", CFG] + bad)
c2, _, e2 = run(["train", CFG, "--out", os.path.join(d, "k16")] + bad + SMALL)
check(c1 == c2 == 3 and "K=16" in e1 and e1.splitlines()[-1] == e2.splitlines()[-1],
      "config --check refuses identity K=16 > data.dim=8 as train does (exit %d and %d)" % (c1, c2))
fm = os.path.join(os.path.dirname(CFG), "fashion-mnist.yaml")
c3, o3, _ = run(["config", "--check", fm])
check(c3 == 0 and "checked when train reads" in o3, "config --check of a data file says n is checked when read")
finish()
