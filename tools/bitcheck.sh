#!/usr/bin/env bash
# Do two builds train the same bits? Trains a fixed set of small runs (the
# quick start, a 3-layer stack, scalapack on the data and moments paths with
# gaussian, gaussian-tc, implicit-em + supervised + entropy, fast reductions,
# ica, hsic, topk, relu, the supervised head, the moments path) with each
# build and compares every layer*.npy with cmp, and the final loss and exit
# code. For refactors: a change that must not change results passes it.
#
#   bash tools/bitcheck.sh OLD_BUILD NEW_BUILD [OUT_DIR]    # e.g. build-old build
#
# QUICK=0 skips the quick start (the one run that takes ~30 s). Exit 0 when
# every file is the same, 1 otherwise (each difference is listed).
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: bash tools/bitcheck.sh OLD_BUILD NEW_BUILD [OUT_DIR]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
old=$(readlink -f "$1") new=$(readlink -f "$2") out=${3:-$(mktemp -d /tmp/bitcheck.XXXXXX)}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fm=configs/fashion-mnist.yaml ica=configs/synthetic-ica.yaml
runs=(
  "quick 2 $fm"
  "stack 2 configs/fashion-mnist-stack.yaml --set data.samples=4000 --set optimizer.max_it=15"
  "scalapack 2 $fm --set data.samples=3000 --set model.units=96 --set parallel.linalg=scalapack --set parallel.scalapack_block=32 --set optimizer.max_it=15"
  "scal_tc 3 $ica --set parallel.linalg=scalapack --set parallel.scalapack_block=4 --set objective.preset=gaussian-tc --set optimizer.max_it=30"
  "scal_iem 3 $fm --set data.samples=3000 --set model.units=40 --set parallel.linalg=scalapack --set parallel.scalapack_block=16 --set objective.preset=implicit-em --set objective.supervised=0.5 --set objective.entropy=0.1 --set optimizer.max_it=10"
  "scal_fast 2 $fm --set data.samples=3000 --set model.units=40 --set parallel.linalg=scalapack --set parallel.scalapack_block=16 --set parallel.reduction=fast --set objective.preset=gaussian-tc --set optimizer.max_it=10"
  "ica 2 $ica --set data.preprocess=whiten --set objective.preset=ica --set optimizer.max_it=40"
  "hsic 2 $ica --set objective.preset=hsic --set model.activation=softmax --set optimizer.max_it=10"
  "iem 2 $fm --set data.samples=3000 --set objective.preset=implicit-em --set objective.weight_redundancy=0.1 --set model.activation=topk --set model.topk=4 --set optimizer.max_it=10"
  "iem_relu 2 $fm --set data.samples=3000 --set objective.preset=implicit-em --set model.activation=relu --set optimizer.max_it=10"
  "sup 2 $fm --set data.samples=3000 --set objective.supervised=1 --set objective.label_fraction=0.1 --set optimizer.max_it=10"
  "fast 2 $fm --set data.samples=3000 --set parallel.reduction=fast --set optimizer.max_it=10"
  "moments 2 $ica --set optimizer.max_it=50"
)
cd "$root"
mkdir -p "$out/old" "$out/new"
rc=0
for r in "${runs[@]}"; do
  read -r -a w <<<"$r"
  name=${w[0]} np=${w[1]}
  [ "$name" = quick ] && [ "${QUICK:-1}" = 0 ] && continue
  for side in old new; do
    bin=$old/infomax
    [ $side = new ] && bin=$new/infomax
    mpiexec -n "$np" "$bin" train "${w[@]:2}" --out "$out/$side/$name" >"$out/$side/$name.log" 2>&1
    echo $? >"$out/$side/$name.exit"
  done
  for f in $(cd "$out/old/$name" 2>/dev/null && ls layer*.npy); do
    cmp -s "$out/old/$name/$f" "$out/new/$name/$f" && echo "same $name/$f" || { echo "DIFF $name/$f"; rc=1; }
  done
  lo=$(grep -o '"loss": [^,]*' "$out/old/$name/summary.json" | head -1)
  ln=$(grep -o '"loss": [^,]*' "$out/new/$name/summary.json" | head -1)
  [ "$lo" = "$ln" ] || { echo "DIFF $name final $lo vs $ln"; rc=1; }
  eo=$(cat "$out/old/$name.exit") en=$(cat "$out/new/$name.exit")
  [ "$eo" = "$en" ] || echo "exit code $name: $eo vs $en (the weights above decide; a changed status is not a changed result)"
done
echo "bitcheck: $([ $rc = 0 ] && echo "every file the same" || echo "differences above") ($out)"
exit $rc
