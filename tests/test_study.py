"""test_study: bench/study_validation.py, the script behind docs/study-validation.md,
on a small Gaussian mixture (2000 rows, K = 4, 3 iterations): one CSV row per method
and baseline with the values of the runs' own eval.json, a table per K, and a second
call that finds everything done and runs nothing.

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
       "--seeds", "2", "--methods", "softmax-act,softmax-z", "--max-it", "3", "--probe-it", "2",
       "--infomax", os.path.abspath(sys.argv[1]), "--workdir", os.path.join(d, "runs"),
       "--out", os.path.join(d, "res"), "--set", "data.samples=2000", "--set", "data.dim=6"]
p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
check(p.returncode == 0, "the study runs: exit %d %s" % (p.returncode, p.stderr[-300:]))
rows = list(csv.DictReader(open(os.path.join(d, "res_gmm.csv"))))
methods = [r["method"] for r in rows]
want = ["softmax-act", "raw", "pca", "random", "kmeans", "kmeans-triangle", "gmm", "softmax-z"]
check(methods == want, "one row per method and baseline: %s" % methods)
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
finish()
