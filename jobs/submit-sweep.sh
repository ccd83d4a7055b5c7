#!/bin/bash
# Submit a sweep over --set values: a job array with one training run per line
# of SWEEP_FILE (jobs/sweep.sbatch), and a final job that gathers every run's
# summary.json into one table (jobs/gather-sweep.py).
#
#   jobs/submit-sweep.sh CONFIG.yaml SWEEP_FILE OUT_DIR [-- infomax options]
#
# Each task runs on RANKS tasks (default 1; NODES nodes, default 1); MAX_PARALLEL
# caps how many run at once (--array=1-N%MAX_PARALLEL). The gather job runs
# after all of them (afterany) and writes OUT_DIR/sweep.tsv and OUT_DIR/sweep.md.
# Prints the job ids; add WAIT=1 to block until the table is written.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 3 ]; then
  echo "usage: jobs/submit-sweep.sh CONFIG.yaml SWEEP_FILE OUT_DIR [-- infomax options]" >&2
  exit 2
fi
config=$1 sweep=$2 out=$3
shift 3
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
n=$(grep -c -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$sweep" || true)
if [ "$n" -lt 1 ]; then
  echo "submit-sweep: $sweep has no runs (one line of SECTION.KEY=VALUE words per run)" >&2
  exit 2
fi
mkdir -p "$out"
sweep=$(cd "$(dirname "$sweep")" && pwd)/$(basename "$sweep")
# sbatch passes the environment on: the tasks find the binary through it.
export INFOMAX=${INFOMAX:-$(command -v infomax || echo "$here/../build/infomax")}
aid=$(sbatch --parsable --array="1-$n${MAX_PARALLEL:+%$MAX_PARALLEL}" -N "${NODES:-1}" -n "${RANKS:-1}" \
      ${OVERCOMMIT:+-O} --output="$out/run-%a-%A.out" "$here/sweep.sbatch" "$config" "$sweep" "$out" "$@")
aid=${aid%%;*}
gid=$(sbatch --parsable -n 1 --dependency="afterany:$aid" --output="$out/gather-%j.out" \
      --wrap="python3 '$here/gather-sweep.py' '$out' '$sweep' > '$out/sweep.tsv';
              python3 '$here/gather-sweep.py' '$out' '$sweep' --markdown > '$out/sweep.md'")
echo "sweep: $n runs, array $aid  gather: $gid  ->  $out/sweep.tsv, $out/sweep.md"
if [ "${WAIT:-0}" = 1 ]; then
  while squeue -h -j "$gid" 2>/dev/null | grep -q .; do sleep 1; done
fi
