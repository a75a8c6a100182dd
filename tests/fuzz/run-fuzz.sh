#!/bin/sh
# run-fuzz.sh TARGET CORPUS WORKDIR [libFuzzer flags...]
# Runs a libFuzzer target over the committed seed corpus CORPUS (read-only:
# new inputs go to WORKDIR/new, crashes to WORKDIR/crash-*). Used by ctest
# (bounded -runs) and tools/fuzz.sh (-max_total_time). On a crash it prints
# how to reproduce it and how to add it to the committed corpus.
set -eu
target=$1 corpus=$2 work=$3
shift 3
[ -x "$target" ] || { echo "run-fuzz: $target not built" >&2; exit 1; }
[ -d "$corpus" ] || { echo "run-fuzz: no corpus $corpus" >&2; exit 1; }
# a bounded run (ctest) starts from the committed corpus alone; long runs
# (tools/fuzz.sh, SA_FUZZ_KEEP=1) also keep what earlier runs found
[ "${SA_FUZZ_KEEP:-0}" = 1 ] || rm -rf "$work/new"
mkdir -p "$work/new"
# detect_leaks=0: the targets keep no state across inputs except the heap
# itself, whose arenas are never unmapped by design
st=0
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allocator_may_return_null=1} \
  "$target" -max_len=512 -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$work/" "$@" "$work/new" "$corpus" || st=$?
if [ "$st" -ne 0 ]; then
  echo "run-fuzz: $(basename "$target") FAILED (exit $st); artifacts:" >&2
  ls -1 "$work"/crash-* "$work"/timeout-* "$work"/oom-* 2>/dev/null >&2 || true
  echo "run-fuzz: reproduce with: $target <artifact>; then copy it into $corpus/ (commit it) and report it" >&2
  exit "$st"
fi
echo "run-fuzz: $(basename "$target"): no failure"
