"""test_examples: every shell example in the docs runs, and what the docs quote
as its output is what it prints.

Usage (from tests/): python3 test_examples.py PATH/TO/infomax [--slow] [PAGE.md ...]
Prints PASSED/FAILED lines; exits 0 (pass) or 1 (fail).

What is an example. Every fenced code block tagged `sh` in README.md and
docs/*.md. A block whose first word is a command (mpiexec, build/infomax, ...)
must be tagged `sh`, so no example hides in an untagged block. The HTML comment
on the line right above a fence says what to do with the block:

  (none)                          run it
  <!-- example: exit N -->        run it as is (no small settings, below); it must
                                  exit with N: the error examples
  <!-- example: slow -->          run only with --slow, which runs only these (by
                                  hand: they take minutes, and no meson suite runs
                                  them, to keep the whole suite near 10 minutes)
  <!-- example: cluster-only -->  not run: needs a batch system or more nodes than a
                                  workstation (the jobs/ scripts are run under a real
                                  single-node Slurm by tests/test_slurm.py)
  <!-- example: not-run: WHY -->  not run, for the reason given (installs packages,
                                  runs the test suite itself, an hour of fuzzing, ...)
  <!-- example: synopsis -->      on a non-sh block: a command's form with
                                  placeholders (RUN_DIR, P, [...]), not run
  <!-- example: output -->        on a non-sh block right after an sh block: the
                                  lines this block quotes must appear, in order, in
                                  that block's output (standard output and error
                                  together). `...` in a quoted line matches any text;
                                  numbers match to 6 significant digits

How it is run. The blocks of one page run in order, each with `bash -e -o
pipefail`, in one temporary directory per page (a later block may use the run
directory of an earlier one); two pages run at a time. That directory holds
symbolic links to the repository's configs/, jobs/, tools/ and tests/, and
build/infomax: a wrapper that runs the real binary with small settings put
BEFORE the example's own arguments, so that anything the example sets itself
wins:

  train, eval, config: --set data.samples=2048 --set optimizer.max_it=2
                       --set eval.probe_max_it=5
  bench:               evals=1 warmup=0 iterations=1 dgemm=0 blas=0 reduce=0
                       and the same --set options

That is the only change made to an example, and blocks marked `exit N` run
without it, so that the messages they quote are exactly what a user sees.

Then the run directories the pages' examples left behind are checked against
docs/guide.md: every key of every summary.json (and of every metrics.jsonl
line) must be listed in the guide's table for that file, and every row of
those tables must name a key that occurs, so a new key cannot go undocumented.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from clitest import check, failed, finish

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFOMAX = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "infomax")
SLOW = "--slow" in sys.argv[2:]
ONLY = [a for a in sys.argv[2:] if a.endswith(".md")]
SMALL_SET = ["--set", "data.samples=2048", "--set", "optimizer.max_it=2", "--set", "eval.probe_max_it=5"]
SMALL_BENCH = ["evals=1", "warmup=0", "iterations=1", "dgemm=0", "blas=0", "reduce=0"]
COMMANDS = {"mpiexec", "mpirun", "srun", "sbatch", "infomax", "python3", "bash", "meson", "ninja",
            "module", "export", "apt-get", "dnf"}
SCRIPTS = ("build/", "jobs/", "tools/", "tests/")
TIMEOUT = 600


def blocks(path):
    """The fenced blocks of a page: (line, tag, marker, text)."""
    out = []
    with open(path) as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        marker = None
        if i > 0:
            mm = re.match(r"^<!--\s*example:\s*(.*?)\s*-->\s*$", lines[i - 1])
            if mm:
                marker = mm.group(1)
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        out.append((i + 1, m.group(1), marker, "\n".join(lines[i + 1:j]) + "\n"))
        i = j + 1
    return out


NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def line_pattern(quoted):
    """A quoted output line as a regex (numbers captured) and its numbers."""
    parts, nums = [], []
    for piece in re.split(r"(\.\.\.|%s|\s+)" % NUMBER, quoted.strip()):
        if not piece:
            continue
        if piece == "...":
            parts.append(".*?")
        elif re.fullmatch(r"\s+", piece):
            parts.append(r"\s+")
        elif re.fullmatch(NUMBER, piece):
            parts.append("(%s)" % NUMBER)
            nums.append(float(piece))
        else:
            parts.append(re.escape(piece))
    return re.compile(r"^\s*" + "".join(parts) + r"\s*$"), nums


def close(a, b):
    return a == b or abs(a - b) <= 1e-6 * max(abs(a), abs(b))


def find_quoted(quoted, output):
    """Each non-empty quoted line must match an output line, in order. Returns
    the first quoted line that does not, or None."""
    out = output.split("\n")
    k = 0
    for q in quoted.split("\n"):
        if not q.strip():
            continue
        pat, nums = line_pattern(q)
        while k < len(out):
            m = pat.match(out[k])
            k += 1
            if m and all(close(float(g), x) for g, x in zip(m.groups(), nums)):
                break
        else:
            return q
    return None


def make_workdir(page):
    d = tempfile.mkdtemp(prefix="imx_examples_%s_" % os.path.splitext(os.path.basename(page))[0])
    for sub in ("configs", "jobs", "tools", "tests"):
        os.symlink(os.path.join(ROOT, sub), os.path.join(d, sub))
    os.mkdir(os.path.join(d, "build"))
    wrapper = os.path.join(d, "build", "infomax")
    q = lambda args: " ".join("'%s'" % a for a in args)  # noqa: E731
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n"
                "# tests/test_examples.py: %s with small settings before the example's own.\n"
                "real='%s'\n"
                "[ \"${IMX_EXAMPLE_AS_IS:-0}\" = 1 ] && exec \"$real\" \"$@\"\n"
                "case \"$1\" in\n"
                "  train|eval|config) c=$1; shift; exec \"$real\" \"$c\" %s \"$@\" ;;\n"
                "  bench) shift; exec \"$real\" bench %s %s \"$@\" ;;\n"
                "  *) exec \"$real\" \"$@\" ;;\n"
                "esac\n" % (INFOMAX, INFOMAX, q(SMALL_SET), q(SMALL_BENCH), q(SMALL_SET)))
    os.chmod(wrapper, 0o755)
    return d


def run_block(workdir, text, as_is):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", IMX_EXAMPLE_AS_IS="1" if as_is else "0",
               PATH=os.path.dirname(os.path.realpath(sys.executable)) + ":" + os.environ.get("PATH", ""))
    t = time.time()
    try:
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", text], cwd=workdir, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=TIMEOUT)
        return p.returncode, p.stdout, time.time() - t
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out + "\n(timed out after %d s)" % TIMEOUT, time.time() - t


def first_word(text):
    for line in text.split("\n"):
        s = line.strip()
        if s and not s.startswith("#"):
            return s.split()[0]
    return ""


def runs(tag, marker):
    """Whether an sh block runs here, and its expected exit code if it does."""
    m = re.fullmatch(r"exit (\d+)", marker or "")
    if tag != "sh" or marker == "cluster-only" or (marker or "").startswith("not-run: "):
        return False, None
    if (marker == "slow") != SLOW or (marker not in (None, "slow") and not m):
        return False, None
    return True, m


def run_page(page):
    """Run the page's blocks that run, in order, in its own directory:
    {line: (exit code, output, seconds)}."""
    results = {}
    for lineno, tag, marker, text in blocks(page):
        go, m = runs(tag, marker)
        if go:
            if page not in workdirs:
                workdirs[page] = make_workdir(page)
            results[lineno] = run_block(workdirs[page], text, as_is=m is not None)
    return results


pages = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
pages = [p for p in pages if os.path.basename(p) != "config.md"]  # generated; test_docs.py
if ONLY:
    pages = [p for p in pages if os.path.basename(p) in ONLY]
counts = {"run": 0, "slow": 0, "cluster-only": 0, "not-run": 0}
workdirs = {}
# The pages are independent (a directory each): two at a time, the blocks of
# a page in order; then their outputs are judged page by page, as they ran.
with ThreadPoolExecutor(max_workers=2) as pool:
    ran = dict(zip(pages, pool.map(run_page, pages)))
for page in pages:
    rel = os.path.relpath(page, ROOT)
    bs = blocks(page)
    last = None  # (where, output) of the previous sh block, or "skipped"
    for lineno, tag, marker, text in bs:
        where = "%s:%d" % (rel, lineno)
        if tag != "sh":
            if marker == "output":
                if last == "skipped":
                    pass
                elif last is None:
                    check(False, "%s: an output block follows no sh block that ran" % where)
                else:
                    missing = find_quoted(text, last[1])
                    check(missing is None, "%s: the output quoted here is what %s printed%s"
                          % (where, last[0], "" if missing is None else
                             "; not found (in order): %r in:\n%s" % (missing, last[1])))
            elif marker == "synopsis":
                pass
            elif marker is not None:
                check(False, "%s: unknown marker on a %s block: %r" % (where, tag or "plain", marker))
            elif first_word(text) in COMMANDS or first_word(text).startswith(SCRIPTS):
                check(False, "%s: a block starting with the command %r is not tagged sh"
                      % (where, first_word(text)))
            continue
        last = "skipped"  # until it has run
        m = re.fullmatch(r"exit (\d+)", marker or "")
        expect = int(m.group(1)) if m else 0
        if marker in ("cluster-only",) or (marker or "").startswith("not-run: "):
            kind = "cluster-only" if marker == "cluster-only" else "not-run"
            counts[kind] += 1
            print("skipped: %s (%s)" % (where, marker), flush=True)
            continue
        if (marker == "slow") != SLOW:  # --slow runs the slow blocks only
            if not SLOW:
                counts["slow"] += 1
            print("skipped: %s (%s)" % (where, "slow: run with --slow" if not SLOW else "not slow"),
                  flush=True)
            continue
        if marker not in (None, "slow") and not m:
            check(False, "%s: unknown marker %r (exit N, slow, cluster-only, not-run: WHY)"
                  % (where, marker))
            continue
        counts["run"] += 1
        code, out, secs = ran[page][lineno]
        ok = check(code == expect, "%s: exit %s (want %d) in %.1f s: %s"
                   % (where, code, expect, secs, first_word(text) + " ... (%d lines)" % text.count("\n")))
        if not ok:  # the messages, without PETSc's -log_view tables and mpiexec's boxes
            print("\n".join(l for l in out.split("\n") if "infomax" in l or "error" in l.lower())[-3000:])
        last = (where, out)
check(counts["run"] > 0 or SLOW, "examples: %(run)d run, %(slow)d slow, %(cluster-only)d cluster-only, "
      "%(not-run)d not run" % counts)


# The run directories left by the examples against the guide's tables.
def key_paths(obj, prefix=""):
    """Dotted paths of the leaves of a JSON object (arrays are leaves)."""
    out = set()
    for k, v in obj.items():
        if isinstance(v, dict):
            out |= key_paths(v, prefix + k + ".")
        else:
            out.add(prefix + k)
    return out


def documented(page, heading):
    """The `key` cells of the tables in the section of page whose heading names heading."""
    rows, inside = [], False
    with open(page) as f:
        for line in f:
            h = re.match(r"^(#+)\s+(.*)", line)
            if h:
                inside = heading in h.group(2)
                continue
            m = re.match(r"^\|\s*`([^`]+)`\s*\|", line)
            if inside and m:
                rows.append(m.group(1))
    return rows


def row_pattern(row):
    """`timers.<phase>.min` -> a regex in which <name> is one path component."""
    return re.compile("^" + re.sub(r"\\<\w+\\>|<\w+>", r"[^.]+", re.escape(row)) + "$")


guide = os.path.join(ROOT, "docs", "guide.md")
if guide in workdirs:
    for name, heading in (("summary.json", "summary.json"), ("metrics.jsonl", "metrics.jsonl")):
        rows = documented(guide, heading)
        found = sorted(glob.glob(os.path.join(workdirs[guide], "**", name), recursive=True))
        paths = set()
        for f in found:
            with open(f) as fh:
                for line in (fh if name.endswith(".jsonl") else [fh.read()]):
                    if line.strip():
                        paths |= key_paths(json.loads(line))
        check(len(rows) > 0 and len(found) > 0,
              "docs/guide.md documents %d %s keys; the guide's examples left %d %s files"
              % (len(rows), name, len(found), name))
        pats = [(r, row_pattern(r)) for r in rows]
        undocumented = sorted(p for p in paths if not any(rx.match(p) for _, rx in pats))
        check(not undocumented, "every key of the %s files is in the guide's table%s"
              % (name, "" if not undocumented else "; add rows for: " + ", ".join(undocumented)))
        unused = [r for r, rx in pats if not any(rx.match(p) for p in paths)]
        check(not unused, "every key in the guide's %s table occurs in a real %s%s"
              % (name, name, "" if not unused else "; not found: " + ", ".join(unused)))

if not failed:  # keep the directories of a failure to look at
    for d in workdirs.values():
        shutil.rmtree(d, ignore_errors=True)
else:
    print("examples ran in: " + " ".join(workdirs.values()))
finish()
