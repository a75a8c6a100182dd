#!/usr/bin/env bash
# test.sh — the whole test run, from a fresh Debian 12 machine:
#   1. installs missing packages (tools/install-deps.sh; root: apt-get)
#   2. configures build-test/ (RelWithDebInfo, SPANALLOC_VALGRIND=ON), builds -j2
#   3. runs ctest (Criterion suites, memcheck proof, preload smoke tests)
#   4. runs every Criterion binary once more under valgrind memcheck, with
#      --trace-children so Criterion's test workers (which re-exec the
#      binary) are checked, and --exit-on-first-error so an error inside a
#      test body makes that test, hence the binary, fail; a canary suite
#      with a deliberate use-after-free must fail the same way, or the
#      memcheck pass itself is broken
# Exits non-zero on any failure; the last line is a one-line summary.
#
# Environment: SPANALLOC_TEST_BUILD (build dir, default <repo>/build-test),
# SPANALLOC_TEST_JOBS (ctest/criterion parallelism, default 2),
# SPANALLOC_SKIP_DEPS=1 (don't check packages), SPANALLOC_SKIP_VALGRIND=1.
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
    echo "test.sh: PASS — $summary_ctest; $summary_vg; $(elapsed)"
    exit 0
  fi
  echo "test.sh: FAIL — ${failures[*]}; $(elapsed)"
  exit 1
}
summary_ctest="ctest not run"
summary_vg="memcheck not run"

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

if [ "${SPANALLOC_SKIP_VALGRIND:-0}" = 1 ]; then
  summary_vg="memcheck skipped (SPANALLOC_SKIP_VALGRIND=1)"
  finish
fi

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
finish
