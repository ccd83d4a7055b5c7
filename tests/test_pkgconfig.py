"""test_pkgconfig: the guide's recipe for building against a PETSc of your own
works, and meson then really uses that PETSc.

docs/guide.md has the recipe as the sh block marked
`<!-- example: not-run: ... tests/test_pkgconfig.py ... -->`. This test makes a
stand-in for "a PETSc of your own": a prefix in a temporary directory whose
include/ and lib/ link to the installed PETSc and whose lib/pkgconfig/PETSc.pc
is the installed one with prefix= pointing at the stand-in. It runs the block
unchanged, with PETSC_DIR set to the stand-in, in a copy of the source tree made
of symbolic links (so the build directory lands in a temporary directory), and
checks that pkg-config and meson resolved PETSc to the stand-in, and that the
binary built runs and loads the stand-in's libpetsc.

Usage (from tests/): python3 test_pkgconfig.py PATH/TO/infomax
Skips (77) when pkg-config does not know PETSc.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

from clitest import check, finish

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "docs", "guide.md")


def recipe():
    text = open(GUIDE).read()
    m = re.search(r"<!-- example: not-run:[^>]*tests/test_pkgconfig\.py[^>]*-->\n```sh\n(.*?)```",
                  text, re.S)
    return m.group(1) if m else None


p = subprocess.run(["pkg-config", "--variable=prefix", "PETSc"], capture_output=True, text=True)
if p.returncode != 0 or not p.stdout.strip():
    print("SKIP: pkg-config does not know PETSc")
    sys.exit(77)
real = p.stdout.strip()
block = recipe()
if not check(block is not None, "docs/guide.md has the PETSc recipe block (marked for this test)"):
    finish()

d = tempfile.mkdtemp(prefix="imx_pkgconfig_")
mine = os.path.join(d, "my-petsc")
os.makedirs(os.path.join(mine, "lib", "pkgconfig"))
os.symlink(os.path.join(real, "include"), os.path.join(mine, "include"))
for f in os.listdir(os.path.join(real, "lib")):
    if f != "pkgconfig":
        os.symlink(os.path.join(real, "lib", f), os.path.join(mine, "lib", f))
pc = open(os.path.join(real, "lib", "pkgconfig", "PETSc.pc")).read()
pc = re.sub(r"^prefix=.*$", "prefix=" + mine, pc, count=1, flags=re.M)
for name in ("PETSc.pc", "petsc.pc"):
    with open(os.path.join(mine, "lib", "pkgconfig", name), "w") as f:
        f.write(pc)
src = os.path.join(d, "src-tree")
os.mkdir(src)
for f in os.listdir(ROOT):
    if not f.startswith((".", "build")) and f != "runs":
        os.symlink(os.path.join(ROOT, f), os.path.join(src, f))

env = dict(os.environ, PETSC_DIR=mine)
env.pop("PETSC_ARCH", None)
p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=src, env=env,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
check(p.returncode == 0, "the guide's recipe runs with PETSC_DIR=%s: exit %d" % (mine, p.returncode))
if p.returncode:
    print(p.stdout[-4000:])
check(mine in p.stdout, "pkg-config names the stand-in prefix in the recipe's output")
builds = [os.path.join(src, b) for b in os.listdir(src) if b.startswith("build")]
check(len(builds) == 1, "the recipe made one build directory: %s" % builds)
if builds:
    intro = subprocess.run(["meson", "introspect", "--dependencies", builds[0]],
                           capture_output=True, text=True).stdout
    check(os.path.join(mine, "include") in intro and os.path.join(real, "include") not in intro,
          "meson compiles against the stand-in's include directory, not the system one")
    exe = os.path.join(builds[0], "infomax")
    ldd = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
    lib = [l.strip() for l in ldd.splitlines() if "libpetsc" in l]
    check(lib and os.path.join(mine, "lib") in lib[0], "the binary loads libpetsc from the stand-in: %s" % lib)
    q = subprocess.run([exe, "info"], capture_output=True, text=True, env=env, timeout=60)
    check(q.returncode == 0 and "PETSc" in q.stdout, "the binary runs: infomax info exits %d" % q.returncode)
shutil.rmtree(d, ignore_errors=True)
finish()
