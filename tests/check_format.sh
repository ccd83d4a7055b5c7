#!/usr/bin/env bash
# The C sources follow .clang-format (whitespace only): clang-format would
# change nothing. Exit 0 pass, 1 fail (the files and the first differences),
# 77 skip when clang-format is not installed (tools/quickstart.sh installs it).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cf=$(command -v clang-format || command -v clang-format-14 || true)
[ -n "$cf" ] || { echo "SKIP: clang-format not installed"; exit 77; }
cd "$root"
files=$(ls src/*/*.[ch] include/imx/*.h tests/*.[ch] tests/fuzz/*.[ch] bench/*.c)
bad=0
for f in $files; do
  if ! "$cf" --dry-run --Werror "$f" >/dev/null 2>&1; then
    bad=$((bad + 1))
    echo "FAILED: $f is not formatted (clang-format -i $f):"
    "$cf" "$f" | diff "$f" - | head -8
  fi
done
n=$(echo "$files" | wc -w)
[ "$bad" -eq 0 ] && { echo "PASSED: $n C files follow .clang-format ($("$cf" --version | head -1))"; exit 0; }
echo "FAILED: $bad of $n C files differ from .clang-format"; exit 1
