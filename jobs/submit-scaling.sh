#!/bin/bash
# Submit a strong- or weak-scaling study and a final job that gathers the
# results into one CSV.
#
#   jobs/submit-scaling.sh strong|weak CONFIG.yaml OUT_DIR RANKS... [-- infomax options]
#
# strong: the same data for every rank count. weak: data.samples grows with
# the rank count (SAMPLES_PER_RANK, default 20000; for generators; for files,
# the first SAMPLES_PER_RANK x RANKS rows). Each point runs on RANKS tasks
# (add NODES_FOR_<RANKS>=k to the environment, or SBATCH_* variables, to place
# them on k nodes). The gather job runs after all points (afterany) and writes
# OUT_DIR/scaling.csv. Prints the job ids; add WAIT=1 to block until done.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=$1 config=$2 out=$3
shift 3
ranks=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do ranks+=("$1"); shift; done
[ $# -gt 0 ] && shift
case "$mode" in strong|weak) ;; *) echo "mode must be strong or weak" >&2; exit 2 ;; esac
mkdir -p "$out"
# sbatch passes the environment on: the points find the binary through it.
export INFOMAX=${INFOMAX:-$(command -v infomax || echo "$here/../build/infomax")}
ids=()
for p in "${ranks[@]}"; do
  extra=()
  if [ "$mode" = weak ]; then extra=(--set "data.samples=$(( ${SAMPLES_PER_RANK:-20000} * p ))"); fi
  nodes_var="NODES_FOR_$p"
  nodes=${!nodes_var:-1}
  id=$(sbatch --parsable -N "$nodes" -n "$p" ${OVERCOMMIT:+-O} --output="$out/p$p-%j.out" \
       "$here/scaling.sbatch" "$config" "$out/p$p" "${extra[@]}" "$@")
  ids+=("$id")
done
dep=$(IFS=:; echo "${ids[*]}")
gid=$(sbatch --parsable -n 1 --dependency="afterany:$dep" --output="$out/gather-%j.out" \
      --wrap="python3 '$here/gather-scaling.py' '$mode' '$out' > '$out/scaling.csv'")
echo "points: ${ids[*]}  gather: $gid  ->  $out/scaling.csv"
if [ "${WAIT:-0}" = 1 ]; then
  while squeue -h -j "$gid" 2>/dev/null | grep -q .; do sleep 1; done
fi
