#!/bin/bash
# The stacked-layer rows of docs/study-layers.md: train a stack once, then
# judge each of its layers with `infomax eval --set eval.layer=L` (measures on
# the train split, linear probe on the test split). Usage:
#   bash tools/study_stack.sh NAME CONFIG [--set key=value ...]
# Environment as tools/study_layers.sh (INFOMAX, NP, MAXIT, PROBE_IT).
# Prints one line per layer: NAME/L, probe test accuracy, dead units, max |corr|,
# Gaussian TC, effective rank, winner entropy, wall seconds of train and eval.
set -euo pipefail
name=$1; cfg=$2; shift 2
INFOMAX=${INFOMAX:-build/infomax}; NP=${NP:-2}; MAXIT=${MAXIT:-50}; PROBE_IT=${PROBE_IT:-100}
out=runs/study/$name
mkdir -p runs/study
rm -rf "$out"
t0=$(date +%s.%N)
nice -n 10 mpiexec -n "$NP" "$INFOMAX" train "$cfg" --out "$out" --set optimizer.max_it="$MAXIT" \
  --set output.checkpoint_every=0 "$@" > "runs/study/$name.train.log" 2>&1 \
  || { echo "$name: train failed: $(grep -m1 error runs/study/$name.train.log)"; exit 1; }
t1=$(date +%s.%N)
L=$(grep -c '^  - ' "$out/config.yaml" || true)
for l in $(seq 1 "${L:-1}"); do
  s=$(date +%s.%N)
  nice -n 10 mpiexec -n "$NP" "$INFOMAX" eval "$out" --out "$out/eval$l" --set eval.layer="$l" \
    --set eval.probe_max_it="$PROBE_IT" > "runs/study/$name.eval$l.json" 2> "runs/study/$name.eval$l.log" \
    || { echo "$name/$l: eval failed: $(grep -m1 error runs/study/$name.eval$l.log)"; continue; }
  e=$(date +%s.%N)
  /usr/bin/python3 - "$out/eval$l/eval.json" "$name/$l" "$t0" "$t1" "$s" "$e" <<'PY'
import json, sys
ev = json.load(open(sys.argv[1])); name = sys.argv[2]
t0, t1, s, e = map(float, sys.argv[3:7])
m, p = ev["measures"], ev.get("probe", {})
print("| %s | %.2f | %d | %.3f | %.2f | %.1f | %.2f | %.0f + %.0f |" % (
    name, 100 * p.get("test_accuracy", float("nan")), m["dead_units"], m["max_abs_corr"],
    m["gaussian_tc"], m["effective_rank"], m["winner_entropy_bits"], t1 - t0, e - s))
PY
done
