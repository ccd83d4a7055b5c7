#!/bin/bash
# The runs of docs/study-layers.md: train one configuration on Fashion-MNIST
# and judge it with `infomax eval` (measures on the train split, linear probe
# on the test split). Usage:
#   bash tools/study_layers.sh NAME [--set key=value ...]
# Runs go to runs/study/NAME (train) and runs/study/NAME/eval (eval.json).
# Environment: INFOMAX (binary, default build/infomax), NP (ranks, default 2),
# MAXIT (optimizer.max_it, default 50), PROBE_IT (eval.probe_max_it, default 100).
# Prints one line: NAME, probe test accuracy, dead units, max |corr|, Gaussian TC,
# effective rank, winner entropy, wall seconds of train and eval.
set -euo pipefail
name=$1; shift
INFOMAX=${INFOMAX:-build/infomax}; NP=${NP:-2}; MAXIT=${MAXIT:-50}; PROBE_IT=${PROBE_IT:-100}
FM=/usr/share/datasets/fashion-mnist
out=runs/study/$name
mkdir -p runs/study
rm -rf "$out"
t0=$(date +%s.%N)
nice -n 10 mpiexec -n "$NP" "$INFOMAX" train configs/fashion-mnist.yaml --out "$out" \
  --set optimizer.max_it="$MAXIT" --set output.checkpoint_every=0 "$@" > "runs/study/$name.train.log" 2>&1 \
  || { echo "$name: train failed (exit $?): $(grep -m1 error runs/study/$name.train.log)"; exit 1; }
t1=$(date +%s.%N)
nice -n 10 mpiexec -n "$NP" "$INFOMAX" eval "$out" --out "$out/eval" \
  --set eval.test_path=$FM/t10k-images-idx3-ubyte.gz --set eval.test_labels=$FM/t10k-labels-idx1-ubyte.gz \
  --set eval.probe_max_it="$PROBE_IT" "$@" > "runs/study/$name.eval.json" 2> "runs/study/$name.eval.log" \
  || { echo "$name: eval failed: $(grep -m1 error runs/study/$name.eval.log)"; exit 1; }
t2=$(date +%s.%N)
/usr/bin/python3 - "$out/eval/eval.json" "$name" "$t0" "$t1" "$t2" <<'PY'
import json, sys
ev = json.load(open(sys.argv[1])); name = sys.argv[2]
t0, t1, t2 = map(float, sys.argv[3:6])
col = ev["layer"] if "layer" in ev else ev
m, p = col["measures"], col.get("probe", {})
print("| %s | %.2f | %d | %.3f | %.2f | %.1f | %.2f | %.0f + %.0f |" % (
    name, 100 * p.get("test_accuracy", float("nan")), m["dead_units"], m["max_abs_corr"],
    m["gaussian_tc"], m["effective_rank"], m["winner_entropy_bits"], t1 - t0, t2 - t1))
PY
