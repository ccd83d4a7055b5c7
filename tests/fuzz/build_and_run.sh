#!/usr/bin/env bash
# Build the libFuzzer harnesses of tests/fuzz with clang (ASan + UBSan) and run
# each one on its seed corpus. See docs/fuzzing.md.
#
#   bash tests/fuzz/build_and_run.sh [options] [config|npy|idx|h5path ...] [-- libFuzzer flags]
#     -o DIR    build and work directory (default: build-fuzz)
#     -n RUNS   executions per harness (default 20000)
#     -t SECS   run each harness this long instead of -n
#     -s SEED   libFuzzer seed (default 1: the same inputs every time; 0 = random)
#     -k        keep the corpus that a run grows in DIR/corpus-NAME (default: start
#               from the seeds every time)
#     -b        build only
#     -c        afterwards, report the line coverage of the file each harness targets
#               (src/config/*.c, npy.c, idx.c, h5path.c) over the corpus (needs llvm-cov, llvm-profdata)
#
# Exit status: 0 clean, 1 a crash, a sanitizer report, a failed invariant or a
# failed regression input (the input is saved under DIR/artifacts-NAME/), 77 if
# clang or libFuzzer is not installed (the test suite reports a skip), 2 usage.
# The project's normal build does not need clang: only this script does.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=build-fuzz runs=20000 secs="" seed=1 keep=0 build_only=0 cover=0
while getopts "o:n:t:s:kbch" opt; do
  case $opt in
    o) out=$OPTARG ;;
    n) runs=$OPTARG ;;
    t) secs=$OPTARG ;;
    s) seed=$OPTARG ;;
    k) keep=1 ;;
    b) build_only=1 ;;
    c) cover=1 ;;
    h) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  case $1 in
    config|npy|idx|h5path) targets+=("$1") ;;
    *) echo "build_and_run.sh: unknown harness '$1' (config, npy, idx, h5path)" >&2; exit 2 ;;
  esac
  shift
done
[ "${1:-}" = "--" ] && shift
extra=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config npy idx h5path)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# ---- toolchain: clang with libFuzzer (Debian: clang-14, libclang-rt-14-dev) ----
cc=""
for c in ${FUZZ_CC:-} clang clang-14 clang-15 clang-16 clang-17 clang-18 clang-19; do
  if command -v "$c" >/dev/null 2>&1; then cc=$(command -v "$c"); break; fi
done
if [ -z "$cc" ]; then
  echo "build_and_run.sh: SKIP: clang not found (Debian: apt-get install clang-14 libclang-rt-14-dev)"
  exit 77
fi
probe="$out/probe"
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
  >"$probe.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >"$probe.log" 2>&1; then
  echo "build_and_run.sh: SKIP: $cc cannot link -fsanitize=fuzzer,address,undefined" \
       "(Debian: apt-get install libclang-rt-14-dev):"
  sed 's/^/  /' "$probe.log" | head -5
  exit 77
fi
for dep in ompi-c yaml-0.1 zlib; do
  if ! pkg-config --exists "$dep"; then
    echo "build_and_run.sh: SKIP: pkg-config does not know $dep"
    exit 77
  fi
done
# A symbolizer makes the reports readable; ASan looks for it on PATH only.
for s in llvm-symbolizer "$(dirname "$(readlink -f "$cc")")/llvm-symbolizer" llvm-symbolizer-14; do
  if command -v "$s" >/dev/null 2>&1; then export ASAN_SYMBOLIZER_PATH=$(command -v "$s"); break; fi
done

# ---- build: the parsers' sources and each harness, rebuilt when any input is newer ----
read -r -a pc_cflags <<<"$(pkg-config --cflags ompi-c yaml-0.1 zlib)"
read -r -a pc_libs <<<"$(pkg-config --libs ompi-c yaml-0.1 zlib)"
cflags=(-std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer
        -fno-sanitize-recover=all -Wall -Wextra -I"$root/include" "${pc_cflags[@]}")
# config validates data.source against the table of sources, which links their loaders
sources=(base/ctx base/log base/rng config/keys config/value config/yaml config/write objective/terms
         data/data data/source data/npy data/idx data/synth data/h5path)  # under src/
# without libhdf5: the hdf5 source's ops are a stub (its path syntax, h5path.c, is real)
stubs=("$here/hdf5_stub.c")
headers=("$root"/include/imx/*.h "$root/src/config/config_impl.h" "$root/src/data/data_impl.h" "$here/fuzz_common.h")

stale() { # stale OUTPUT INPUT...: 0 if OUTPUT is missing or older than an input
  local o=$1 i
  shift
  [ -e "$o" ] || return 0
  for i in "$@"; do [ "$i" -nt "$o" ] && return 0; done
  return 1
}
files=()  # every C file to compile: the sources under src/, then the stubs
for s in "${sources[@]}"; do files+=("$root/src/$s.c"); done
files+=("${stubs[@]}")
pids=()
objs=()
for f in "${files[@]}"; do
  o="$out/$(basename "$f" .c).o"
  objs+=("$o")
  if stale "$o" "$f" "${headers[@]}" "$0"; then
    "$cc" "${cflags[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$f" -o "$o" &
    pids+=($!)
  fi
done
for p in ${pids[@]+"${pids[@]}"}; do wait "$p"; done
for t in "${targets[@]}"; do
  if stale "$out/fuzz_$t" "$here/fuzz_$t.c" "${objs[@]}" "${headers[@]}" "$0"; then
    "$cc" "${cflags[@]}" -fsanitize=fuzzer,address,undefined "$here/fuzz_$t.c" "${objs[@]}" \
      "${pc_libs[@]}" -lm -o "$out/fuzz_$t"
  fi
done
[ "$build_only" = 1 ] && { echo "build_and_run.sh: built ${targets[*]/#/$out/fuzz_}"; exit 0; }

# ---- run ----
# Leak checking stays on: the harnesses never call MPI_Init, so Open MPI has
# nothing to leak. halt_on_error/abort: the first report is the finding.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
unset LSAN_OPTIONS
declare -A max_len=([config]=4096 [npy]=8192 [idx]=8192 [h5path]=1024)
limit=(-runs="$runs")
[ -n "$secs" ] && limit=(-max_total_time="$secs")
status=0
for t in "${targets[@]}"; do
  exe="$out/fuzz_$t" log="$out/fuzz_$t.log" art="$out/artifacts-$t/"
  mkdir -p "$art"
  # Regression inputs (earlier findings) first: each must now run clean.
  regs=()
  for f in "$here/regressions/$t"/*; do [ -f "$f" ] && regs+=("$f"); done
  if [ ${#regs[@]} -gt 0 ]; then
    if ! "$exe" -artifact_prefix="$art" "${regs[@]}" >"$out/regressions_$t.log" 2>&1; then
      echo "FAILED fuzz_$t: a regression input crashes again (log: $out/regressions_$t.log)"
      tail -n 40 "$out/regressions_$t.log"
      status=1
      continue
    fi
  fi
  corpus="$out/corpus-$t"
  [ "$keep" = 1 ] || rm -rf "$corpus"
  mkdir -p "$corpus"
  # New inputs go to the first directory (in the build tree); the seeds are only read.
  set +e
  "$exe" "${limit[@]}" -seed="$seed" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 \
    -dict="$here/$t.dict" -artifact_prefix="$art" -print_final_stats=1 \
    ${extra[@]+"${extra[@]}"} "$corpus" "$here/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  if [ $rc -ne 0 ]; then
    echo "FAILED fuzz_$t (exit $rc, log: $log); the input is in $art"
    tail -n 60 "$log"
    status=1
  else
    echo "ok fuzz_$t: ${done_line:-$(tail -n 1 "$log")} (${#regs[@]} regression inputs)"
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" | sed 's/^/  /'
  fi
done

# ---- coverage: the same harnesses built with source-based coverage, run once over each corpus ----
if [ "$cover" = 1 ]; then
  bindir=$(dirname "$(readlink -f "$cc")")
  profdata=$(command -v llvm-profdata || echo "$bindir/llvm-profdata")
  llvmcov=$(command -v llvm-cov || echo "$bindir/llvm-cov")
  declare -A target_src=([config]="config/keys config/value config/yaml config/write" [npy]=data/npy [idx]=data/idx
                         [h5path]="data/h5path data/source")
  cov="$out/cov"
  mkdir -p "$cov"
  covflags=(-fprofile-instr-generate -fcoverage-mapping)
  for f in "${files[@]}"; do
    "$cc" "${cflags[@]}" "${covflags[@]}" -fsanitize=fuzzer-no-link -c "$f" -o "$cov/$(basename "$f" .c).o"
  done
  for t in "${targets[@]}"; do
    "$cc" "${cflags[@]}" "${covflags[@]}" -fsanitize=fuzzer "$here/fuzz_$t.c" "$cov"/*.o \
      "${pc_libs[@]}" -lm -o "$cov/fuzz_$t"
    rm -f "$cov/$t".prof*
    LLVM_PROFILE_FILE="$cov/$t.profraw" "$cov/fuzz_$t" -runs=0 "$out/corpus-$t" "$here/corpus/$t" \
      >"$cov/$t.log" 2>&1 || { echo "coverage run of fuzz_$t failed: $cov/$t.log"; status=1; continue; }
    "$profdata" merge -sparse "$cov/$t.profraw" -o "$cov/$t.profdata"
    srcs=()
    for s in ${target_src[$t]}; do srcs+=("$root/src/$s.c"); done
    echo "coverage of ${srcs[*]#"$root/"} by the corpus of fuzz_$t ($(ls "$out/corpus-$t" | wc -l) +" \
         "$(ls "$here/corpus/$t" | wc -l) seed inputs):"
    "$llvmcov" report -show-functions "$cov/fuzz_$t" -instr-profile="$cov/$t.profdata" \
      "${srcs[@]}" | sed 's/^/  /'
  done
fi

[ $status -eq 0 ] && echo "PASSED fuzz: ${targets[*]}" || echo "FAILED fuzz"
exit $status
