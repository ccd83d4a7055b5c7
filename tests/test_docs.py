"""test_docs: the documentation cannot drift from the program.

(a) docs/config.md is exactly the output of `infomax config --reference`;
(b) every configs/*.yaml validates with `infomax config --check FILE`;
(c) every `section.key` mentioned in docs/*.md and README.md is a key of the
    reference table.

Standard library only. Usage (from tests/): python3 test_docs.py PATH/TO/infomax
Prints PASSED/FAILED lines; exits 0 (pass) or 1 (fail).
"""
import difflib
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFOMAX = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "build", "infomax")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OPENBLAS_NUM_THREADS="1")
# "objective.c", "data.h", "config.md": file names, not keys.
FILE_SUFFIXES = {"c", "h", "md", "py", "yaml", "yml", "npy", "json", "jsonl", "txt", "gz", "sh",
                 "build", "tmp"}
failed = []


def check(ok, what):
    print(("PASSED: " if ok else "FAILED: ") + what, flush=True)
    if not ok:
        failed.append(what)
    return ok


def run(args, timeout=120):
    p = subprocess.run([INFOMAX] + args, capture_output=True, text=True, timeout=timeout, env=ENV)
    return p.returncode, p.stdout, p.stderr


# (a) The reference page is generated, never edited by hand.
code, reference, err = run(["config", "--reference"])
check(code == 0 and reference.startswith("# Configuration reference"),
      "infomax config --reference exits 0 (exit %d%s)" % (code, ": " + err.strip() if err.strip() else ""))
config_md = os.path.join(ROOT, "docs", "config.md")
try:
    with open(config_md) as f:
        committed = f.read()
except OSError as e:
    committed = None
    check(False, "docs/config.md is readable: %s" % e)
if committed is not None:
    same = committed == reference
    if not same:
        diff = difflib.unified_diff(committed.splitlines(keepends=True),
                                    reference.splitlines(keepends=True),
                                    "docs/config.md", "infomax config --reference")
        sys.stdout.writelines(diff)
        print()
    check(same, "docs/config.md equals `infomax config --reference`"
          + ("" if same else "; regenerate it with: build/infomax config --reference > docs/config.md"))

# The keys of the reference table, as "section.key"; the sections are its "## name" headings.
keys = set()
sections = []
section = None
for line in reference.splitlines():
    m = re.match(r"^## (\w+)\s*$", line)
    if m:
        section = m.group(1)
        sections.append(section)
        continue
    m = re.match(r"^\| `([A-Za-z0-9_]+)` \|", line)
    if m and section:
        keys.add(section + "." + m.group(1))
check(len(keys) > 0 and set(sections) == {k.split(".")[0] for k in keys},
      "reference table parsed: %d keys in sections %s" % (len(keys), ", ".join(sections)))

# (b) Every shipped configuration validates.
configs = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
check(len(configs) > 0, "configs/*.yaml: %d files" % len(configs))
for path in configs:
    code, out, err = run(["config", "--check", path])
    check(code == 0, "infomax config --check configs/%s: exit %d%s"
          % (os.path.basename(path), code, (": " + err.strip()) if code else ""))

# (c) Every section.key named in the docs is a real key.
mention = re.compile(r"(?<![\w./-])(%s)\.([A-Za-z_][A-Za-z0-9_]*)(?![\w-])"
                     % "|".join(re.escape(s) for s in sections or ["data"]))
docs = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
readme = os.path.join(ROOT, "README.md")
if os.path.exists(readme):
    docs.append(readme)
seen, unknown = 0, []
for path in docs:
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            for m in mention.finditer(line):
                if m.group(2) in FILE_SUFFIXES:
                    continue
                seen += 1
                name = m.group(1) + "." + m.group(2)
                if name not in keys:
                    unknown.append("%s:%d: %s" % (os.path.relpath(path, ROOT), lineno, name))
check(seen > 0, "found %d section.key mentions in %s" % (seen, ", ".join(os.path.relpath(p, ROOT) for p in docs)))
check(not unknown, "every section.key mentioned in the docs is in the reference table"
      + ("" if not unknown else "; unknown:\n  " + "\n  ".join(unknown)))

print("FAILED" if failed else "PASSED")
sys.exit(1 if failed else 0)
