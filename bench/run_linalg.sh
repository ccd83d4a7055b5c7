#!/usr/bin/env bash
# Time per evaluation and memory per rank of the replicated and scalapack
# backends over K and P (docs/performance.md).
#
#   bash bench/run_linalg.sh [BUILD_DIR] [OUT.jsonl]
#
# Environment: KS (K values, default "2048 4096 8192 16384"), PS ("1 2"),
# REPEAT (rounds, default 1: each round runs every K, P and backend once, so
# the backends alternate and a burst of foreign load hits both),
# BACKENDS ("replicated scalapack"), N (8192), NIN (inputs n, 64), EXTRA
# (more bench_linalg options), IDLE_LOAD (wait until the 1-minute load
# average is below this before each run, default 0.7; 0 = do not wait),
# IDLE_WAIT (give up waiting after this many seconds, default 900).
#
# A run whose estimated memory (all ranks) exceeds 80% of MemAvailable is
# skipped with a "skipped" line instead of risking the OOM killer on a
# shared machine. Prints one JSON line per run (bench_linalg's, or a skip),
# appended to OUT.jsonl (default bench/results/linalg.jsonl), then a markdown table.
set -u
build=${1:-build}
out=${2:-bench/results/linalg.jsonl}
exe=$build/bench/bench_linalg
[ -x "$exe" ] || { echo "no $exe: run ninja -C $build first" >&2; exit 2; }
KS=${KS:-"2048 4096 8192 16384"}
PS=${PS:-"1 2"}
BACKENDS=${BACKENDS:-"replicated scalapack"}
N=${N:-8192}
NIN=${NIN:-64}
IDLE_LOAD=${IDLE_LOAD:-0.7}
IDLE_WAIT=${IDLE_WAIT:-900}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

wait_idle() {
  [ "$IDLE_LOAD" = 0 ] && return
  local t=0
  while awk -v l="$IDLE_LOAD" '{exit !($1 >= l)}' /proc/loadavg && [ $t -lt "$IDLE_WAIT" ]; do
    sleep 15; t=$((t + 15))
  done
}

evals_for() { # fewer timed evaluations where one takes minutes; above K = 8192
  # only the first evaluation (its phases and memory) is measured
  if [ "$1" -le 2048 ]; then echo 3; elif [ "$1" -le 8192 ]; then echo 2; else echo 0; fi
}

REPEAT=${REPEAT:-1}
for round in $(seq "$REPEAT"); do
for K in $KS; do
  for P in $PS; do
    for B in $BACKENDS; do
      # Bytes per rank: replicated ~8 K^2 doubles (C, G, LAPACK scratch, the
      # K x K sum), scalapack ~4.5 K^2/P (measured, docs/performance.md) + 10%;
      # both 3 N/P K for the rows, with a margin.
      need=$(awk -v K="$K" -v P="$P" -v N="$N" -v b="$B" 'BEGIN {
        kk = (b == "replicated") ? 8 * K * K : 5 * K * K / P
        printf "%.0f", P * 8 * (kk + 4 * N / P * K) }')
      avail=$(awk '/MemAvailable/ {printf "%.0f", $2 * 1024}' /proc/meminfo)
      if awk -v n="$need" -v a="$avail" 'BEGIN {exit !(n > 0.8 * a)}'; then
        line=$(printf '{"K": %d, "N": %d, "n": %d, "P": %d, "requested": "%s", "skipped": "needs about %.1f GiB on all ranks, %.1f GiB available"}' \
               "$K" "$N" "$NIN" "$P" "$B" "$(awk -v n="$need" 'BEGIN{print n/2^30}')" "$(awk -v a="$avail" 'BEGIN{print a/2^30}')")
      else
        wait_idle
        line=$(mpiexec -n "$P" "$exe" --K "$K" --N "$N" --n "$NIN" --linalg "$B" \
               --evals "$(evals_for "$K")" ${EXTRA:-} | tail -1)
      fi
      echo "$line"
      echo "$line" >> "$out"
    done
  done
done
done

python3 - "$out" <<'EOF'
# One row per (K, P, backend): the best of its runs (fewest seconds per
# evaluation), and the ratio scalapack / replicated of the best times.
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:  # runs without timed evaluations: the first one stands for them
    if "eval_s" in r and not r["eval_s"]:
        r["eval_s"] = [r["first_s"]]
best, runs, skipped = {}, {}, []
for r in rows:
    if "skipped" in r or "error" in r:
        skipped.append(r)
        continue
    key = (r["K"], r["P"], r["linalg"])
    runs[key] = runs.get(key, 0) + 1
    if key not in best or min(r["eval_s"]) < min(best[key]["eval_s"]):
        best[key] = r
print("\n| K | P | backend | grid | runs | s per evaluation (best) | CPU s per evaluation | scalapack / replicated | linalg s | moments s | backward s | layer MiB per rank | peak RSS MiB per rank | foreign CPU | GF/s per rank | of DGEMM |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (K, P, b), r in sorted(best.items()):
    ph = r["phases_s"]
    grid = f"{r['grid'][0]}x{r['grid'][1]}" if b == "scalapack" else "-"
    rep = best.get((K, P, "replicated"))
    ratio = f"{min(r['eval_s']) / min(rep['eval_s']):.2f}" if b == "scalapack" and rep else ""
    cpu = "n/a" if r.get("cpu_s") is None else f"{r['cpu_s']:.2f}"
    foreign = "n/a" if r.get("foreign_cpu") is None else f"{r['foreign_cpu']:.2f}"
    rate = "n/a" if r.get("eval_gflops") is None else f"{r['eval_gflops']:.1f}"
    frac = "n/a" if r.get("frac_dgemm") is None else f"{100 * r['frac_dgemm']:.0f} %"
    print(f"| {K} | {P} | {b} | {grid} | {runs[(K, P, b)]} | {min(r['eval_s']):.2f} | {cpu} | {ratio} | "
          f"{ph['linalg']:.2f} | {ph['moments']:.2f} | {ph['backward']:.2f} | {max(r['layer_mib']):.0f} | "
          f"{max(r['peak_rss_mib']):.0f} | {foreign} | {rate} | {frac} |")
for r in skipped:
    print(f"| {r['K']} | {r['P']} | {r['requested']} | | | {r.get('skipped') or 'error: ' + r['error']} | | | | | | | | | | |")
EOF
