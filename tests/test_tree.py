"""test_tree: the map of the source tree stays true.

docs/architecture.md's "The tree" names every source file of src/ under its
folder, and the folders depend on each other only downwards in its order (one
named exception); docs/extending.md names only files that exist, and every
`identifier` it puts beside a source file occurs in that file (or, in a row
naming several files, in one of them)."""
import glob
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
failures = 0
checks = 0


def check(ok, what):
    global failures, checks
    checks += 1
    print(("PASSED: " if ok else "FAILED: ") + what)
    failures += 0 if ok else 1


def read(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


# 1. The tree block of docs/architecture.md.
arch = read("docs/architecture.md")
block = arch.split("## The tree", 1)[1].split("```", 2)[1]
order, named = [], {}
for line in block.splitlines():
    m = re.match(r"src/(\w+)/\s", line)
    if m:
        order.append(m.group(1))
    if order:
        for f in re.findall(r"\b(\w+\.[ch])\b", line):
            named.setdefault(order[-1], set()).add(f)
folders = sorted(d for d in os.listdir(os.path.join(ROOT, "src")) if os.path.isdir(os.path.join(ROOT, "src", d)))
check(sorted(order) == folders, "the tree lists the folders of src/: %s (src/ has %s)" % (order, folders))
missing = []
for d in folders:
    for p in sorted(glob.glob(os.path.join(ROOT, "src", d, "*.[ch]"))):
        if os.path.basename(p) not in named.get(d, set()):
            missing.append("src/%s/%s" % (d, os.path.basename(p)))
check(not missing, "the tree names every source file under its folder%s" % (": missing " + ", ".join(missing) if missing else ""))

# 2. Dependencies point down the tree's order. A public header belongs to the
# folder of the source with its name; the rest are listed here.
owner = {}
for d in order:
    for p in glob.glob(os.path.join(ROOT, "src", d, "*.c")):
        owner[os.path.basename(p)[:-2]] = d
owner.update({"term": "objective", "names": "base", "blas": "base", "scalapack": "linalg",
              "cli": "cli", "run_layer": "train", "layer": "model", "config": "config", "exact": "reduce"})
allowed = {("objective", "activation")}  # the objective asks whether outputs sum to 1
unknown, upward = [], []
for d in order:
    for p in sorted(glob.glob(os.path.join(ROOT, "src", d, "*.[ch]"))):
        for h in re.findall(r'#include "imx/(\w+)\.h"', open(p).read()):
            if h not in owner:
                unknown.append(h)
            elif order.index(owner[h]) < order.index(d) and (d, h) not in allowed:
                upward.append("src/%s/%s includes imx/%s.h (%s)" % (d, os.path.basename(p), h, owner[h]))
check(not unknown, "every included header has an owning folder%s" % (": unknown " + ", ".join(sorted(set(unknown))) if unknown else ""))
check(not upward, "no folder includes a header of a folder above it%s" % (": " + "; ".join(upward) if upward else ""))

# 3. docs/extending.md.
ext = read("docs/extending.md")
paths = set(re.findall(r"`((?:src|include|tests|docs|bench|tools)/[\w./<>-]+|meson\.build)`", ext))
concrete = [p for p in paths if "<" not in p]
absent = [p for p in concrete if not os.path.exists(os.path.join(ROOT, p))]
check(concrete and not absent, "docs/extending.md names %d files, all present%s" % (len(concrete), ": absent " + ", ".join(absent) if absent else ""))
bad, seen = [], 0
for line in ext.splitlines():
    if not line.startswith("| `"):
        continue
    cells = line.split("|")
    files = [p for p in re.findall(r"`([\w./<>-]+\.(?:c|h|py|md|build))`", cells[1]) if "<" not in p]
    files = [p for p in files if p.endswith((".c", ".h"))]
    if not files:
        continue
    text = "".join(read(p) for p in files)
    for ident in re.findall(r"`([A-Za-z_]\w*)`", cells[2]):
        seen += 1
        if not re.search(r"\b%s\b" % re.escape(ident), text):
            bad.append("%s not in %s" % (ident, ", ".join(files)))
check(seen > 0 and not bad, "docs/extending.md: %d identifiers beside source files occur there%s" % (seen, ": " + "; ".join(bad) if bad else ""))

print("%d passed, %d failed" % (checks - failures, failures))
sys.exit(1 if failures else 0)
