#!/bin/bash
# run_bench.sh: the measurements of docs/performance.md in one go, into
# bench/results/ (or $OUT). Benchmarks, not tests: they take minutes to an
# hour on 2 cores and their numbers depend on the machine's load, which every
# CSV row records (1-minute load average, CPU used by other processes).
#
#   bash bench/run_bench.sh [quick|full]     (default: quick)
#
# quick: Fashion-MNIST K = 64, 256, 1024 at P = 1 and 2; synthetic K = 4096
#        on N = 8192; the PyTorch peer right after infomax for the same K (so
#        that the ratio is taken under the same load); the input-moment path
#        against the peer; MPI_Allreduce calibration at P = 2 and the
#        communication model; parallel.precision double against single.
# full:  adds K = 4096 on Fashion-MNIST (about 1 minute per evaluation on one
#        core) and both OPENBLAS_CORETYPE settings.
#
# Needs: build/infomax (ninja -C build); optional: python3-torch (the peer),
# python3-matplotlib (the plot).
set -u
cd "$(dirname "$0")/.."
MODE=${1:-quick}
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
PY=/usr/bin/python3
IMX=build/infomax
FM=configs/fashion-mnist.yaml
have_torch=0
$PY -c 'import torch' 2>/dev/null && have_torch=1
log() { echo "[$(date +%T) load $(cut -d' ' -f1 /proc/loadavg)] $*" | tee -a "$OUT/run.log"; }

bench() { # P OUTNAME ARGS...
  local P=$1 name=$2
  shift 2
  log "infomax bench P=$P $*"
  mpiexec -n "$P" $IMX bench "$@" --out "$OUT/$name.csv" | tee "$OUT/$name.txt"
}

peer() { # NAME ARGS...
  local name=$1
  shift
  [ $have_torch = 1 ] || { log "no python3-torch: peer skipped"; return; }
  log "torch peer $*"
  $PY bench/torch_peer.py --threads 1 --out "$OUT/$name.csv" "$@"
}

KS="64 256 1024"
[ "$MODE" = full ] && KS="64 256 1024 4096"
CORETYPES="${OPENBLAS_CORETYPE:-}"
[ "$MODE" = full ] && CORETYPES="auto Haswell"
for ct in ${CORETYPES:-auto}; do
  if [ "$ct" = auto ]; then unset OPENBLAS_CORETYPE; sfx=""; else export OPENBLAS_CORETYPE=$ct; sfx="_$ct"; fi
  # Data path on Fashion-MNIST, P = 1: infomax, then the peer on the same K and
  # the same weights (the loss must agree to 1e-9).
  for K in $KS; do
    bench 1 "fmnist_p1_K$K$sfx" $FM model.units=$K parallel.reduction=reproducible,fast \
      evals=3 iterations=2 weights="$OUT/w_K$K"
    L=$(awk -F, 'NR==2{print $NF}' "$OUT/fmnist_p1_K$K$sfx.csv")
    peer "peer_fmnist$sfx" --fmnist --K "$K" --variants manual,autograd --evals 3 \
      --check "$OUT/w_K$K" --expect "$L"
  done
done
unset OPENBLAS_CORETYPE
# Strong scaling, P = 2 on the same data (compare with fmnist_p1_*).
for K in $KS; do
  bench 2 "fmnist_p2_K$K" $FM model.units=$K parallel.reduction=reproducible,fast evals=3 iterations=2
done
# Weak scaling on synthetic data: N = 16384 rows per rank, n = 784.
SYN="--set data.source=gmm --set data.dim=784 --set data.components=16 --set model.activation=softmax
     --set objective.preset=gaussian --set objective.lambda=0.1"
bench 1 weak_p1 $SYN data.samples=16384 model.units=256,1024 evals=3 iterations=0
bench 2 weak_p2 $SYN data.samples=32768 model.units=256,1024 evals=3 iterations=0
# Synthetic K = 4096, N = 8192 (P = 1), and the peer on the same sizes.
bench 1 syn_K4096 $SYN data.samples=8192 model.units=4096 evals=2 iterations=0
peer peer_syn --synthetic 8192,784 --K 4096 --variants manual --evals 2
# The input-moment path (identity activation, gaussian preset with eps) against
# the peer's data pass and the peer's own moment version.
bench 1 moments_p1 $FM --set model.activation=identity --set objective.eps=1e-3 \
  model.units=64,256,1024 evals=5 iterations=0 blas=0 reduce=0
peer peer_moments --fmnist --K 64,256,1024 --activation identity --eps 1e-3 \
  --variants manual,moments --evals 3
# parallel.precision: double against single, back to back (K = 256, 1024).
bench 1 precision_p1 $FM model.units=256,1024 parallel.precision=double,single evals=3 \
  iterations=0 reduce=0
peer peer_float32 --fmnist --K 256,1024 --variants manual,mixed,autograd --dtype float32 --evals 3
# MPI_Allreduce calibration at P = 2 and the model.
bench 2 allreduce_p2 $SYN data.samples=4096 model.units=1024 evals=1 iterations=0 blas=0 \
  reduce=0 allreduce=1
cat "$OUT"/fmnist_p1_K*.csv | awk 'NR==1 || !/^P,/' > "$OUT/fmnist_p1.csv"
$PY bench/comm_model.py "$OUT/fmnist_p1.csv" "$OUT/allreduce_p2.csv.allreduce.csv" \
  --out "$OUT/comm_model"
log done
