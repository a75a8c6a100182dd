#!/usr/bin/env bash
# fuzz.sh [minutes] — long libFuzzer runs of tests/fuzz (default 10 minutes).
#
# Configures build-fuzz/ with clang (SPANALLOC_BUILD_BENCH=OFF), builds
# fuzz_api and fuzz_options (the allocator compiled into each with
# -fsanitize=fuzzer-no-link,address), then runs both targets side by side,
# each for the given time, starting from the committed seed corpus
# tests/fuzz/corpus/<target>/ and a random seed. New interesting inputs
# accumulate in build-fuzz/fuzz/<target>.work/new (kept between runs);
# crashes land in build-fuzz/fuzz/<target>.work/crash-*.
#
# Every crash becomes a committed corpus file: copy the crash-* file into
# tests/fuzz/corpus/<target>/ (ctest then replays it on every run) and report
# it. To fold the new inputs into the committed corpus (minimised):
#   tools/fuzz.sh --merge
# Environment: SPANALLOC_FUZZ_BUILD (default <repo>/build-fuzz),
# SPANALLOC_SKIP_DEPS=1, SPANALLOC_FUZZ_JOBS (parallel targets, default 2).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SPANALLOC_FUZZ_BUILD:-$root/build-fuzz}
merge=0
minutes=10
for a in "$@"; do
  case $a in
    --merge) merge=1 ;;
    *[!0-9.]*|'') echo "usage: fuzz.sh [minutes] [--merge]" >&2; exit 2 ;;
    *) minutes=$a ;;
  esac
done
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60); print (s < 1 ? 1 : s) }')

bash "$root/tools/install-deps.sh" test
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSPANALLOC_BUILD_BENCH=OFF >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log" >&2; exit 1; }
cmake --build "$build" -j2 --target fuzz_api fuzz_options

targets=(fuzz_api fuzz_options)
if [ "$merge" = 1 ]; then
  for t in "${targets[@]}"; do
    new="$build/fuzz/$t.work/new"
    [ -d "$new" ] || { echo "fuzz.sh: nothing to merge for $t"; continue; }
    before=$(ls "$root/tests/fuzz/corpus/$t" | wc -l)
    ASAN_OPTIONS=detect_leaks=0 "$build/fuzz/$t" -merge=1 -max_len=512 \
      "$root/tests/fuzz/corpus/$t" "$new"
    echo "fuzz.sh: $t corpus: $before -> $(ls "$root/tests/fuzz/corpus/$t" | wc -l) files"
  done
  exit 0
fi

echo "fuzz.sh: ${targets[*]} for ${seconds}s each"
pids=()
for t in "${targets[@]}"; do
  work="$build/fuzz/$t.work"
  mkdir -p "$work/new"
  # SA_FUZZ_KEEP: run-fuzz.sh keeps the inputs found by earlier runs
  SA_FUZZ_KEEP=1 sh "$root/tests/fuzz/run-fuzz.sh" "$build/fuzz/$t" "$root/tests/fuzz/corpus/$t" \
    "$work" -max_total_time="$seconds" -seed=0 >"$work/fuzz.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  if wait "${pids[$i]}"; then
    echo "fuzz.sh: $t: $(grep -E 'stat::number_of_executed_units' "$build/fuzz/$t.work/fuzz.log" | awk '{print $2}') inputs, no failure"
  else
    status=1
    echo "fuzz.sh: $t FAILED — log $build/fuzz/$t.work/fuzz.log:" >&2
    grep -E -A3 'fuzz_api:|fuzz_options:|ERROR: |SUMMARY|crash-|Test unit written' "$build/fuzz/$t.work/fuzz.log" | head -40 >&2
  fi
done
[ "$status" = 0 ] && echo "fuzz.sh: PASS (${seconds}s per target)" || echo "fuzz.sh: FAIL"
exit "$status"
