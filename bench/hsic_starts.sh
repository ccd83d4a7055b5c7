#!/bin/bash
# What makes the hsic preset work (docs/study-approximation.md): variants of
# starting point, bandwidth and orthogonality at n = 16 on synthetic-ica data.
# Usage: [VARIANTS="ica base bw3 ..."] [WORK=dir] bench/hsic_starts.sh N
# (fromica needs the ica variant of the same N first; thenX, bandwidth X from
# the weights of variant $FROM (default bw05), needs that one first; reseedX
# the same with new random features, model.seed $SEED (default 3), from
# $FROM (default then1)).
# One line per variant.
export OPENBLAS_NUM_THREADS=1  # as root, also export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
N=${1:-20000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/build/infomax
C=$ROOT/configs/synthetic-ica.yaml
common="--set data.samples=$N --set data.dim=16 --set model.units=16 --set data.preprocess=whiten --set parallel.reduction=fast --set optimizer.max_it=${MAXIT:-300} --set output.every=1000 --set optimizer.gatol=1e-8"
run() { name=$1; shift; out=${WORK:-/tmp}/hx-$N-$name; rm -rf $out
  t0=$(date +%s.%N)
  nice -n 19 mpiexec -n 2 $B train $C $common "$@" --out $out > $out.log 2>&1
  t1=$(date +%s.%N)
  echo "$name N=$N amari=$(grep 'Amari' $out.log | awk '{print $3}') $(grep trained $out.log | sed 's/.*lmvm: //') wall=$(echo "$t1-$t0"|bc) load=$(cut -d' ' -f1 /proc/loadavg)"
}
for v in ${VARIANTS:-ica base bw3 logdet bw3logdet fromica}; do
case $v in
ica) run ica --set objective.preset=ica ;;
base) run base --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=8 ;;
bw3) run bw3 --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=8 --set objective.hsic_bandwidth=3 ;;
dec) run dec --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=8 --set objective.decorrelation=1 ;;
bw05dec) run bw05dec --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=8 --set objective.hsic_bandwidth=0.5 --set objective.decorrelation=1 ;;
bw025) run bw025 --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=8 --set objective.hsic_bandwidth=0.25 ;;
bw05) run bw05 --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=8 --set objective.hsic_bandwidth=0.5 ;;
logdet) run logdet --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=8 --set objective.logdet=0.5 ;;
bw3logdet) run bw3logdet --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=8 --set objective.hsic_bandwidth=3 --set objective.logdet=0.5 ;;
d16) run d16 --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=16 ;;
d32) run d32 --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=32 ;;
bw05d32) run bw05d32 --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=32 --set objective.hsic_bandwidth=0.5 ;;
then*) run $v --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=8 --set objective.hsic_bandwidth=${v#then} --set model.init=${WORK:-/tmp}/hx-$N-${FROM:-bw05}/layer1_W.npy ;;
reseed*) run $v --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=8 --set objective.hsic_bandwidth=${v#reseed} --set model.seed=${SEED:-3} --set model.init=${WORK:-/tmp}/hx-$N-${FROM:-then1}/layer1_W.npy ;;
fromica) run fromica --set objective.preset=hsic --set objective.lambda=1 --set objective.hsic_features=8 --set model.init=${WORK:-/tmp}/hx-$N-ica/layer1_W.npy ;;
esac
done
