"""test_study: bench/study_validation.py, the script behind docs/study-validation.md,
on a small Gaussian mixture (2000 rows, K = 4, 3 iterations): one CSV row per method
and baseline with the values of the runs' own eval.json, a table per K, and a second
call that finds everything done and runs nothing; and bench/ica_fastica.py
(infomax's ica preset against scikit-learn's FastICA, docs/performance.md) at
n = 4, N = 4000: its mixed sources as documented, one interleaved pair per data
set, both methods separating (Amari distance), the table with the ratios.

Usage (from tests/): python3 test_study.py PATH/TO/infomax
"""
import csv
import json
import os
import subprocess
import sys

from clitest import check, finish, tmpdir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
d = tmpdir()
cmd = [sys.executable, os.path.join(ROOT, "bench", "study_validation.py"), "--gmm", "--K", "4",
       "--seeds", "2", "--methods", "softmax-act,softmax-z,softmax-act-t2", "--max-it", "3", "--probe-it", "2",
       "--infomax", os.path.abspath(sys.argv[1]), "--workdir", os.path.join(d, "runs"),
       "--out", os.path.join(d, "res"), "--set", "data.samples=2000", "--set", "data.dim=6"]
p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
check(p.returncode == 0, "the study runs: exit %d %s" % (p.returncode, p.stderr[-300:]))
rows = list(csv.DictReader(open(os.path.join(d, "res_gmm.csv"))))
methods = [r["method"] for r in rows]
want = ["softmax-act", "raw", "pca", "random", "kmeans", "kmeans-triangle", "gmm", "softmax-z", "softmax-act-t2",
        "random-t2"]
check(methods == want, "one row per method and baseline, random hyperplanes at temperature 2 after the method "
      "at temperature 2: %s" % methods)
evt = json.load(open(os.path.join(d, "runs-gmm", "k4-s2-softmax-act-t2", "eval-baselines", "eval.json")))
rt = rows[methods.index("random-t2")]
check("temperature: 2" in open(evt["config"]).read()
      and float(rt["max_abs_corr"]) == evt["baselines"]["random"]["measures"]["max_abs_corr"]
      and rt["max_abs_corr"] != rows[methods.index("random")]["max_abs_corr"],
      "random-t2 holds the random baseline of the temperature-2 run's eval (max |corr| %s, at temperature 1 %s)"
      % (rt["max_abs_corr"], rows[methods.index("random")]["max_abs_corr"]))
ev = json.load(open(os.path.join(d, "runs-gmm", "k4-s2-softmax-act", "eval", "eval.json")))
r0, rk = rows[0], rows[methods.index("kmeans")]
check(abs(float(r0["proto_mean"]) - ev["prototypes"]["mean_distance"]) < 1e-12
      and abs(float(rk["proto_mean"]) - ev["baselines"]["kmeans"]["prototypes"]["mean_distance"]) < 1e-12
      and int(r0["dead"]) == ev["measures"]["dead_units"],
      "the rows hold eval.json's values (prototype distances %s, k-means %s)" % (r0["proto_mean"], rk["proto_mean"]))
table = open(os.path.join(d, "res_gmm.md")).read().splitlines()
check(len(table) == 2 + len(want) and table[2].startswith("| 4 | softmax-act | 1 |"),
      "the table: a line per method (%d lines)" % len(table))
p2 = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
again = list(csv.DictReader(open(os.path.join(d, "res_gmm.csv"))))
check(p2.returncode == 0 and len(again) == len(rows) and "study_validation: K" not in p2.stdout,
      "a second call runs nothing (%d rows)" % len(again))

# bench/ica_fastica.py: the mixed sources, then one pair per data set.
sys.path.insert(0, os.path.join(ROOT, "bench"))
import numpy as np  # noqa: E402
import ica_fastica  # noqa: E402

A = ica_fastica.make_mixed(8, 40000, 5, os.path.join(d, "mixed.npy"))
S = np.linalg.solve(A, np.load(os.path.join(d, "mixed.npy")).T).T
skew = ((S - S.mean(0)) ** 3).mean(0) / S.std(0) ** 3
check(np.abs(S.mean(0)).max() < 0.03 and np.abs(S.var(0) - 1).max() < 0.1
      and all(abs(skew[j] - 2) < 0.3 for j in (2, 6)) and all(abs(skew[j]) < 0.3 for j in (0, 1, 4, 5)),
      "mixed sources: mean 0, variance 1, skew 2 for the exponential ones only (means %.3f, skew %s)"
      % (np.abs(S.mean(0)).max(), np.round(skew, 2)))
try:
    import sklearn  # noqa: F401
except ImportError:
    sklearn = None
if sklearn is None:
    print("SKIPPED: bench/ica_fastica.py (python3-sklearn not installed)")
else:
    out = os.path.join(d, "ica")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "ica_fastica.py"), "--n", "4", "--N", "4000",
                        "--pairs", "1", "--infomax", os.path.abspath(sys.argv[1]),
                        "--workdir", os.path.join(d, "ica-runs"), "--out", out],
                       capture_output=True, text=True, timeout=600)
    check(p.returncode == 0, "bench/ica_fastica.py runs: exit %d %s" % (p.returncode, p.stderr[-300:]))
    rows = list(csv.DictReader(open(out + ".csv"))) if os.path.exists(out + ".csv") else []
    got = [(r["case"], r["method"].split()[0]) for r in rows]
    check(got == [("mixed", "infomax"), ("mixed", "FastICA"), ("study", "infomax"), ("study", "FastICA")],
          "one interleaved pair per data set: %s" % got)
    check(all(float(r["amari"]) < 0.05 and float(r["wall_s"]) >= 0 and float(r["cpu_s"]) >= 0
              and len(r["load"].split()) == 3 for r in rows),
          "both separate (Amari %s), with times and loads" % [r["amari"] for r in rows])
    check(all(float(r["wall_s"]) > 0.1 for r in rows if r["method"].startswith("infomax")),
          "infomax's wall time is the whole process (%s s)" % [r["wall_s"] for r in rows][::2])
    ph = json.loads(rows[0]["phases"]) if rows else {}
    check(all(k in ph for k in ("load", "preprocess", "forward", "reduce", "output")),
          "infomax's phases from summary.json: %s" % sorted(ph))
    md = open(out + ".md").read() if os.path.exists(out + ".md") else ""
    check(md.count("| mixed |") == 3 and md.count("| study |") == 3 and "infomax wall / FastICA wall" in md,
          "the table: two rows and a ratio line per data set")
finish()
