#!/usr/bin/env bash
# bench_gc.sh — the collector benchmarks (bench/gc, issue 6) beside Boehm GC.
#
#   tools/bench_gc.sh [--quick] [--runs N] [--out DIR]
#
# Builds build-bench-gc/ (Release, -DSPANALLOC_GC=ON, -j2), then runs each
# workload as spanalloc in gc_mode=concurrent, spanalloc in gc_mode=stw,
# Boehm GC (Debian libgc-dev, default settings) and Boehm GC in incremental
# mode (GC_ENABLE_INCREMENTAL=1), N times each (default 1),
# and prints one table row per workload and collector: the run with the
# median total time, its max/p99/p50 stop-the-world pause, spanalloc's
# longest time-to-stop (the part of a pause spent waiting for threads to
# stop; Boehm does not report it), cycles and peak RSS. Every RESULT line goes to DIR/results.txt and the spanalloc runs'
# gctrace lines to DIR/<workload>-<mode>.gctrace (tools/gctrace_hist.py
# draws them). DIR defaults to build-bench-gc/results.
#
#   workload       default arguments            --quick
#   binary_trees   depth 22 + 200 x depth 16    depth 18 + 20 x depth 14
#   server_churn   256 MB live, 20 M ops        64 MB live, 2 M ops
#
# Environment: SPANALLOC_GC_BENCH_BUILD (build dir). Needs cmake, a C
# compiler and, for the Boehm rows, libgc-dev (tools/install-deps.sh
# installs it; without it the Boehm rows are skipped with a note).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SPANALLOC_GC_BENCH_BUILD:-$root/build-bench-gc}
quick=0
runs=1
out=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --runs) runs=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "bench_gc.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
out=${out:-$build/results}
mkdir -p "$out"
results=$out/results.txt
: > "$results"
: > "$out/failures.txt"

# a fresh machine: Boehm GC (libgc-dev) and the build tools, as bench.sh does
bash "$root/tools/install-deps.sh" bench >&2 || exit 1

echo "=== bench_gc.sh: building $build (Release, SPANALLOC_GC=ON)" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSPANALLOC_GC=ON \
  -DSPANALLOC_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target bench_gc >/dev/null
bin=$build/bin/bench_gc

if [ $quick = 1 ]; then
  declare -A wargs=([binary_trees]="18 14 20" [server_churn]="64 2")
else
  declare -A wargs=([binary_trees]="22 16 200" [server_churn]="256 20")
fi

# run NAME EXE MODE ARGS...: appends RESULT lines; gctrace to a file.
run() {
  local w=$1 exe=$2 mode=$3; shift 3
  local trace=$out/$w-$mode.gctrace
  case $mode in boehm*) ;; *) : > "$trace" ;; esac
  for i in $(seq 1 "$runs"); do
    echo "=== $w $mode run $i/$runs: $(basename "$exe") $*" >&2
    local line st=0
    if [ "$mode" = boehm ]; then
      line=$("$exe" "$@" | grep '^RESULT ') || st=$?
    elif [ "$mode" = boehm-incremental ]; then
      line=$(GC_ENABLE_INCREMENTAL=1 "$exe" "$@" | grep '^RESULT ') || st=$?
    else
      line=$(SPANALLOC="gc_mode=$mode,gctrace=1" "$exe" "$@" 2>>"$trace" | grep '^RESULT ') || st=$?
    fi
    if [ $st -ne 0 ] || [ -z "$line" ]; then
      # e.g. Boehm's incremental mode at 256 MB: "un-mprotect vdb failed"
      echo "bench_gc.sh: $w $mode run $i failed (status $st); no row" | tee -a "$out/failures.txt" >&2
      continue
    fi
    echo "$line" | tee -a "$results" >&2
  done
}

for w in binary_trees server_churn; do
  read -r -a a <<< "${wargs[$w]}"
  run "$w" "$bin/gcbench_${w}_spanalloc" concurrent "${a[@]}"
  run "$w" "$bin/gcbench_${w}_spanalloc" stw "${a[@]}"
  if [ -x "$bin/gcbench_${w}_boehm" ]; then
    run "$w" "$bin/gcbench_${w}_boehm" boehm "${a[@]}"
    run "$w" "$bin/gcbench_${w}_boehm" boehm-incremental "${a[@]}"
  else
    echo "bench_gc.sh: Boehm GC not built (apt-get install libgc-dev): $w boehm skipped" >&2
  fi
done

# The table: per (bench, gc, mode) the run with the median time.
echo
awk '
  function val(k,   i, kv) { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] } return "" }
  /^RESULT / {
    key = val("bench") " " val("gc") " " val("mode")
    n[key]++; rows[key, n[key]] = $0; secs[key, n[key]] = val("seconds") + 0
    if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
  }
  END {
    printf "%-13s %-10s %-11s %9s %11s %11s %11s %12s %7s %9s\n", "bench", "gc", "mode", "total_s", "max_us", "p99_us", "p50_us", "stop_max_us", "cycles", "rss_MB"
    for (k = 1; k <= nk; k++) {
      key = order[k]; m = n[key]
      # sort indices by time (insertion sort), take the middle one
      for (i = 1; i <= m; i++) idx[i] = i
      for (i = 2; i <= m; i++) { j = i; while (j > 1 && secs[key, idx[j-1]] > secs[key, idx[j]]) { t = idx[j]; idx[j] = idx[j-1]; idx[j-1] = t; j-- } }
      $0 = rows[key, idx[int((m + 1) / 2)]]
      stop = val("stop_max_us"); if (stop == "" || stop + 0 < 0) stop = "-"
      printf "%-13s %-10s %-11s %9.3f %11.1f %11.1f %11.1f %12s %7d %9.1f\n", val("bench"), val("gc"), val("mode"), val("seconds"), val("max_pause_us"), val("p99_pause_us"), val("p50_pause_us"), stop, val("cycles"), val("peak_rss_kb") / 1024
    }
  }' "$results"
[ -s "$out/failures.txt" ] && { echo; cat "$out/failures.txt"; }
echo
echo "RESULT lines: $results; gctrace logs: $out/*.gctrace (tools/gctrace_hist.py)"
