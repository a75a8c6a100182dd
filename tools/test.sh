#!/usr/bin/env bash
# test.sh — the whole test run, from a fresh Debian 12 machine (CI: .ci/run):
#   1. installs missing packages (tools/install-deps.sh; root: apt-get)
#   2. configures build-test/ (RelWithDebInfo, SPANALLOC_VALGRIND=ON), builds -j2
#   3. runs ctest there (all but label memcheck): Criterion suites (unit,
#      API, stats, profile, bad input, scavenger per policy, the collector
#      in both modes), stress, memcheck proof, preload smoke and
#      real-program tests (python3, sqlite3, git, our C++ churn), bench smoke
#   4. the memcheck pass (ctest -L memcheck): every Criterion binary once
#      more under valgrind memcheck (tests/progs/memcheck-suite.sh: errors in
#      a test body fail it), and a canary suite with a deliberate
#      use-after-free that must fail the same way
#   5. the other trees, each configured, built and tested by ctest, all with
#      the collector (SPANALLOC_GC=ON):
#        build-tsan/   SPANALLOC_SANITIZE=thread: the multi-threaded stress
#                      programs (tests/tsan) and the collector torture as a
#                      plain program, zero reports
#        build-ubsan/  SPANALLOC_SANITIZE=undefined: the whole suite
#        build-debug/  SPANALLOC_DEBUG=ON: the whole suite with freed-block
#                      patterns, canaries, sa_heap_check and fault injection
#        build-fuzz/   clang + libFuzzer: both fuzz targets, bounded runs over
#                      the committed corpus (tests/fuzz)
#   6. a 30-second soak (tools/soak.sh 0.5) on the debug tree
# After each ctest run a summary of the tree (tests/progs/summary.py): ctest
# entries run/passed/failed/skipped (each skip with its reason), Criterion
# tests inside them, sources not registered in the tree with CMake's reason;
# fewer tests run than ctest lists is a failure. All summaries are repeated
# at the end.
# Exits non-zero on any failure; the last line is a one-line summary.
#
# Environment: SPANALLOC_TEST_BUILD (build dir, default <repo>/build-test; the
# other trees sit beside it), SPANALLOC_TEST_JOBS (ctest/criterion
# parallelism, default 2), SPANALLOC_SKIP_DEPS=1 (don't check packages),
# SPANALLOC_SKIP_VALGRIND=1, SPANALLOC_TEST_TREES (default
# "tsan ubsan debug fuzz"; empty: none), SPANALLOC_SOAK_SECONDS (default 30; 0: none).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${SPANALLOC_TEST_BUILD:-$root/build-test}
jobs=${SPANALLOC_TEST_JOBS:-2}
start=$(date +%s)
failures=()
elapsed() { echo $(( $(date +%s) - start ))s; }
log() { printf '\n=== test.sh: %s (at %s) ===\n' "$*" "$(elapsed)"; }
finish() {
  if [ ${#summaries[@]} -gt 0 ]; then
    log "summary per tree"
    printf '%s\n' "${summaries[@]}"
  fi
  if [ ${#failures[@]} -eq 0 ]; then
    echo "test.sh: PASS — $summary_ctest; $summary_vg; $summary_trees; $summary_soak; $(elapsed)"
    exit 0
  fi
  echo "test.sh: FAIL — ${failures[*]}; $(elapsed)"
  exit 1
}
summary_ctest="ctest not run"
summary_vg="memcheck not run"
summary_trees="no other trees"
summary_soak="no soak"
summaries=()

log "dependencies"
if ! bash "$root/tools/install-deps.sh" all; then
  failures+=("missing packages")
  finish
fi

log "configure ($build)"
# SPANALLOC_GC=ON: the collector's suites (tests/gc) run too, in both modes.
if ! cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPANALLOC_VALGRIND=ON \
    -DSPANALLOC_GC=ON; then
  failures+=("configure")
  finish
fi
log "build"
if ! cmake --build "$build" -j2; then
  failures+=("build")
  finish
fi

# run_ctest TREE DIR LOGNAME [ctest args...]: runs ctest in DIR, then prints
# the tree's summary (tests/progs/summary.py): entries run, passed, failed,
# skipped with reasons, Criterion tests inside, sources not registered here.
# The expected count is what `ctest -N` lists with the same arguments --
# derived from the registrations, so adding a test needs no edit here, while
# CMake refuses a test source that is neither registered nor given a reason.
run_ctest() {
  local tree=$1 dir=$2 name=$3; shift 3
  local clog="$dir/$name.log" junit="$dir/$name.junit.xml"
  rm -f "$junit"
  rm -rf "$dir/tests/reports"; mkdir -p "$dir/tests/reports"
  local expected
  expected=$(ctest --test-dir "$dir" -N "$@" | sed -n 's/^Total Tests: //p')
  ctest --test-dir "$dir" --output-on-failure --timeout 600 -j "$jobs" --output-junit "$junit" \
    "$@" >"$clog" 2>&1
  local st=$?
  grep -E '^ *[0-9]+/[0-9]+ Test|tests passed|\*\*\*' "$clog" | tail -100
  [ "$st" -eq 0 ] || grep -E -A40 'Failed|\*\*\*' "$clog" | head -150
  local sum
  sum=$(python3 "$root/tests/progs/summary.py" "$tree" "$dir" "${expected:-0}" "$junit")
  local sst=$?
  echo "$sum"
  summaries+=("$sum")
  if [ "$st" -ne 0 ] || [ "$sst" -ne 0 ] || [ "${expected:-0}" -eq 0 ]; then
    failures+=("$tree:$name"); return 1
  fi
}

log "ctest"
t0=$(date +%s)
run_ctest main "$build" ctest -LE memcheck
summary_ctest="ctest main tree $(( $(date +%s) - t0 ))s"

# ---- memcheck pass -------------------------------------------------------------------
# Every Criterion binary (the collector's in gc_mode=stw) once more under
# memcheck: the tests labelled memcheck, each run by
# tests/progs/memcheck-suite.sh, and the canary with a deliberate
# use-after-free that must fail the same way, or the pass is broken.
if [ "${SPANALLOC_SKIP_VALGRIND:-0}" = 1 ]; then
  summary_vg="memcheck skipped (SPANALLOC_SKIP_VALGRIND=1)"
else
  log "memcheck pass over the Criterion suites"
  t0=$(date +%s)
  run_ctest main-memcheck "$build" memcheck -L memcheck
  summary_vg="memcheck $(( $(date +%s) - t0 ))s"
fi

# ---- the other trees ------------------------------------------------------------------
# tree NAME [cmake args...] -- [ctest args...]: configure <build>-NAME beside
# the main tree, build it, run ctest there
trees_ok=0 trees_run=0
tree() {
  local name=$1 dir="$build-$1"; shift
  local cargs=() targs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do cargs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  targs=("$@")
  trees_run=$((trees_run + 1))
  log "tree $name ($dir): ${cargs[*]}"
  local t0; t0=$(date +%s)
  if ! cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPANALLOC_BUILD_BENCH=OFF \
      "${cargs[@]}" >"$dir.configure.log" 2>&1; then
    cat "$dir.configure.log"; failures+=("$name:configure"); return 1
  fi
  if ! cmake --build "$dir" -j2 >"$dir.build.log" 2>&1; then
    grep -E -B2 -A8 'error|Error' "$dir.build.log" | head -60; failures+=("$name:build"); return 1
  fi
  run_ctest "$name" "$dir" ctest "${targs[@]}" || return 1
  echo "tree $name: $(( $(date +%s) - t0 ))s"
  trees_ok=$((trees_ok + 1))
}
# The collector is built in every tree (SPANALLOC_GC=ON): its suites run
# under UBSan and in the debug tree, and under TSan as plain programs.
for t in ${SPANALLOC_TEST_TREES-tsan ubsan debug fuzz}; do
  case $t in
    tsan)  tree tsan -DSPANALLOC_SANITIZE=thread -DSPANALLOC_GC=ON -- -L tsan ;;
    ubsan) tree ubsan -DSPANALLOC_SANITIZE=undefined -DSPANALLOC_GC=ON ;;
    debug) tree debug -DSPANALLOC_DEBUG=ON -DSPANALLOC_GC=ON ;;
    fuzz)  CC=clang CXX=clang++ tree fuzz -- -L fuzz ;;
    *) echo "test.sh: unknown tree '$t'"; failures+=("tree:$t") ;;
  esac
done
summary_trees="trees: $trees_ok/$trees_run green"

# ---- soak -------------------------------------------------------------------------------
soak_s=${SPANALLOC_SOAK_SECONDS:-30}
if [ "$soak_s" != 0 ]; then
  log "soak (${soak_s}s)"
  soak_tree=$build-debug
  [ -x "$soak_tree/bin/sa_stress" ] || soak_tree=$build
  soak_out=$(SPANALLOC_SKIP_DEPS=1 SPANALLOC_SOAK_BUILD=$soak_tree \
    bash "$root/tools/soak.sh" "$(awk -v s="$soak_s" 'BEGIN { print s / 60 }')" 2>&1)
  soak_st=$?
  echo "$soak_out"
  summary_soak=$(printf '%s\n' "$soak_out" | grep '^soak: ' | tail -1)
  [ "$soak_st" -eq 0 ] || failures+=("soak")
fi
finish
