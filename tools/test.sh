#!/usr/bin/env bash
# test.sh — the whole test run, from a fresh Debian 12 machine (CI: .ci/run):
#   1. installs missing packages (tools/install-deps.sh; root: apt-get)
#   2. configures build-test/ (RelWithDebInfo, SPANALLOC_VALGRIND=ON), builds -j2
#   3. runs ctest there: Criterion suites (unit, API, stats, profile, bad
#      input), stress, memcheck proof, preload smoke and real-program tests
#      (python3, sqlite3, git, our C++ churn), bench smoke
#   4. runs every Criterion binary once more under valgrind memcheck, with
#      --trace-children so Criterion's test workers (which re-exec the
#      binary) are checked, and --exit-on-first-error so an error inside a
#      test body makes that test, hence the binary, fail; a canary suite
#      with a deliberate use-after-free must fail the same way, or the
#      memcheck pass itself is broken
#   5. the other trees, each configured, built and tested by ctest:
#        build-tsan/   SPANALLOC_SANITIZE=thread: the multi-threaded stress
#                      programs (tests/tsan), zero reports
#        build-ubsan/  SPANALLOC_SANITIZE=undefined: the whole suite
#        build-debug/  SPANALLOC_DEBUG=ON: the whole suite with freed-block
#                      patterns, canaries, sa_heap_check and fault injection
#        build-fuzz/   clang + libFuzzer: both fuzz targets, bounded runs over
#                      the committed corpus (tests/fuzz)
#   6. a 30-second soak (tools/soak.sh 0.5) on the debug tree
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
log() { printf '\n=== test.sh: %s ===\n' "$*"; }
elapsed() { echo $(( $(date +%s) - start ))s; }
finish() {
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

log "ctest"
ctest_log="$build/ctest-summary.log"
ctest --test-dir "$build" --output-on-failure --timeout 600 -j "$jobs" 2>&1 | tee "$ctest_log"
ctest_status=${PIPESTATUS[0]}
summary_ctest="ctest: $(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$ctest_log" | tail -1)"
if [ "$ctest_status" -ne 0 ]; then
  failures+=("ctest")
fi

# ---- memcheck pass -------------------------------------------------------------------
memcheck_pass() {

log "memcheck pass over the Criterion suites"
vgdir=$(mktemp -d "${TMPDIR:-/tmp}/sa-memcheck.XXXXXX")
trap 'rm -rf "$vgdir"' EXIT
# run_memcheck NAME BINARY: 0 when memcheck found nothing and all tests passed
run_memcheck() {
  local name=$1 bin=$2 logs="$vgdir/$1"
  mkdir -p "$logs"
  # cwd in the scratch dir: any core file of an expected abort lands there
  # somalloc=nouserintercepts: memcheck must not swap its own malloc in for
  # the malloc/free that the test binaries define (libspanalloc.a linked in,
  # or libspanalloc.so interposing): the allocator under test runs, and
  # tells memcheck about its blocks through client requests.
  (cd "$logs" && valgrind --tool=memcheck --error-exitcode=1 --exit-on-first-error=yes \
      --soname-synonyms=somalloc=nouserintercepts \
      --trace-children=yes --leak-check=no --child-silent-after-fork=no \
      --trace-children-skip='*/perl,*/google-pprof,*/nm,*/addr2line,*/objdump,*/c++filt' \
      --log-file="$logs/vg.%p.log" "$bin" --jobs "$jobs" -S) >"$logs/criterion.out" 2>&1
  local status=$?
  local errlogs
  # a process stopped by --exit-on-first-error prints no ERROR SUMMARY
  errlogs=$(grep -l -e 'ERROR SUMMARY: [1-9]' -e 'Exit program on first error' \
    "$logs"/vg.*.log 2>/dev/null || true)
  if [ "$status" -ne 0 ] || [ -n "$errlogs" ]; then
    echo "--- $name under memcheck: exit $status"
    grep -v '^\[----\]   $' "$logs/criterion.out" | tail -40
    for f in $errlogs; do echo "--- $f"; grep -v '^==[0-9]*== *$' "$f" | head -60; done
    return 1
  fi
  tail -1 "$logs/criterion.out"
  return 0
}

# The canary must fail, or failures would go unnoticed.
canary=$(head -1 "$build/tests/vg-canary.txt")
if run_memcheck canary "$canary" >"$vgdir/canary.txt" 2>&1; then
  cat "$vgdir/canary.txt"
  echo "memcheck canary PASSED under memcheck: the memcheck pass cannot see errors in test bodies"
  failures+=("memcheck-canary")
else
  echo "canary: memcheck caught the deliberate use-after-free (good)"
fi

vg_total=0 vg_bad=0
while IFS= read -r bin; do
  [ -n "$bin" ] || continue
  name=$(basename "$bin")
  vg_total=$((vg_total + 1))
  t0=$(date +%s)
  echo "--- memcheck: $name"
  if run_memcheck "$name" "$bin"; then
    echo "    $name: clean ($(( $(date +%s) - t0 ))s)"
  else
    vg_bad=$((vg_bad + 1))
    failures+=("memcheck:$name")
  fi
done <"$build/tests/criterion-tests.txt"
summary_vg="memcheck: $((vg_total - vg_bad))/$vg_total suites clean"
}
if [ "${SPANALLOC_SKIP_VALGRIND:-0}" = 1 ]; then
  summary_vg="memcheck skipped (SPANALLOC_SKIP_VALGRIND=1)"
else
  memcheck_pass
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
  local clog="$dir/ctest-summary.log"
  ctest --test-dir "$dir" --output-on-failure --timeout 600 -j "$jobs" "${targs[@]}" >"$clog" 2>&1
  local st=$?
  grep -E '^ *[0-9]+/[0-9]+ Test|tests passed|\*\*\*|FAIL' "$clog" | tail -80
  if [ "$st" -ne 0 ]; then
    grep -E -A40 'Failed|\*\*\*' "$clog" | head -120
    failures+=("$name:ctest"); return 1
  fi
  if ! grep -q 'tests passed' "$clog" || grep -q 'No tests were found' "$clog"; then
    echo "tree $name: ctest ran no tests"; failures+=("$name:no-tests"); return 1
  fi
  echo "tree $name: $(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$clog" | tail -1) ($(( $(date +%s) - t0 ))s)"
  trees_ok=$((trees_ok + 1))
}
for t in ${SPANALLOC_TEST_TREES-tsan ubsan debug fuzz}; do
  case $t in
    tsan)  tree tsan -DSPANALLOC_SANITIZE=thread -- -L tsan ;;
    ubsan) tree ubsan -DSPANALLOC_SANITIZE=undefined ;;
    debug) tree debug -DSPANALLOC_DEBUG=ON ;;
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
