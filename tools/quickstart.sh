#!/usr/bin/env bash
# InfoMax-EM quick start: install what is missing (Debian packages only),
# build, then either train the default job or run the test suite.
#
#   bash tools/quickstart.sh          # train on Fashion-MNIST (2 ranks)
#   bash tools/quickstart.sh test     # run the whole test suite
#                                     # (CI=true or IMX_SLURM=1 as root: also
#                                     # under a local Slurm, tools/slurm-local.sh)
#
# Environment: RANKS (default 2) for the training job; BUILD (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-train}
BUILD=${BUILD:-build}
RANKS=${RANKS:-2}

packages=(gcc pkg-config meson ninja-build libopenmpi-dev openmpi-bin libscalapack-openmpi-dev
          petsc-dev libblas-dev liblapack-dev libyaml-dev zlib1g-dev libopenblas0-pthread
          libhdf5-openmpi-dev dataset-fashion-mnist python3-numpy python3-matplotlib python3-h5py
          clang-14 libclang-rt-14-dev llvm-14 clang-format)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "quickstart: installing ${#missing[@]} Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# One BLAS thread per rank, OpenBLAS even if the system default BLAS is another one.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
libdir=/usr/lib/$(gcc -print-multiarch)
case "$(readlink -f "$libdir/libblas.so.3")" in
  *openblas*) ;;
  *) echo "quickstart: system BLAS is not OpenBLAS; using $libdir/openblas-pthread for this run"
     export LD_LIBRARY_PATH="$libdir/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac
# Open MPI refuses to run as root unless told; small machines need oversubscription.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1

[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release
ninja -C "$BUILD"

case "$what" in
  train)
    shift || true
    exec mpiexec -n "$RANKS" "$BUILD/infomax" train configs/fashion-mnist.yaml "$@" ;;
  test)
    # The jobs/ scripts are tested under a real single-node Slurm when asked
    # (CI=true or IMX_SLURM=1, as root): tools/slurm-local.sh starts one and
    # it is stopped afterwards. Otherwise that test skips.
    if [ "$(id -u)" -eq 0 ] && { [ "${CI:-}" = true ] || [ "${IMX_SLURM:-0}" = 1 ]; }; then
      bash tools/slurm-local.sh start
      trap 'bash tools/slurm-local.sh stop' EXIT
    fi
    meson test -C "$BUILD" --print-errorlogs ;;
  *)
    echo "usage: bash tools/quickstart.sh [train|test]" >&2; exit 2 ;;
esac
