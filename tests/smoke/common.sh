# common.sh — sourced by the smoke scripts.
# Environment (set by tests/CMakeLists.txt): SPANALLOC_LIB (the built .so),
# SPANALLOC_RUN (tools/spanalloc-run), SPANALLOC_SMOKE_DIR (this folder).
set -eu
: "${SPANALLOC_LIB:?set SPANALLOC_LIB to libspanalloc.so}"
: "${SPANALLOC_SMOKE_DIR:=$(cd "$(dirname "$0")" && pwd)}"
: "${SPANALLOC_RUN:=$SPANALLOC_SMOKE_DIR/../../tools/spanalloc-run}"
export SPANALLOC_LIB
work=$(mktemp -d "${TMPDIR:-/tmp}/sa-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

# run_both NAME CMD...: runs CMD plainly and preloaded with SPANALLOC=stats=1;
# their stdout must be identical, the plain stderr empty, the preloaded
# stderr the at-exit report and nothing else, with exactly one stats line
# whose mallocs are above the threshold MIN_MALLOCS.
# before_run, when the caller defines it, runs before each of the two runs.
before_run() { :; }
run_both() {
  name=$1; shift
  before_run
  st=0
  "$@" >"$work/$name.plain.out" 2>"$work/$name.plain.err" || st=$?
  [ "$st" -eq 0 ] || { cat "$work/$name.plain.err" >&2; fail "$name: plain run failed (status $st)"; }
  before_run
  st=0
  SPANALLOC=stats=1 "$SPANALLOC_RUN" "$@" >"$work/$name.sa.out" 2>"$work/$name.sa.err" || st=$?
  [ "$st" -eq 0 ] || { cat "$work/$name.sa.err" >&2; fail "$name: run with spanalloc failed (status $st)"; }
  [ -s "$work/$name.plain.out" ] || fail "$name: workload printed nothing"
  if ! cmp -s "$work/$name.plain.out" "$work/$name.sa.out"; then
    diff "$work/$name.plain.out" "$work/$name.sa.out" | head -20 >&2
    fail "$name: output differs with spanalloc"
  fi
  [ ! -s "$work/$name.plain.err" ] || { cat "$work/$name.plain.err" >&2; fail "$name: plain run wrote to stderr"; }
  stats=$(grep '^spanalloc: stats:' "$work/$name.sa.err" || true)
  # the rest of the at-exit report: its header line and indented lines
  others=$(grep -v -e '^spanalloc: stats:' -e '^spanalloc [0-9][0-9.]*: ' -e '^  ' \
    "$work/$name.sa.err" || true)
  [ -z "$others" ] || { echo "$others" >&2; fail "$name: unexpected stderr with spanalloc"; }
  [ "$(printf '%s\n' "$stats" | grep -c .)" -eq 1 ] \
    || fail "$name: want exactly one 'spanalloc: stats:' line at exit, got: '$stats'"
  mallocs=$(printf '%s\n' "$stats" | sed -n 's/.*mallocs=\([0-9][0-9]*\).*/\1/p')
  frees=$(printf '%s\n' "$stats" | sed -n 's/.*frees=\([0-9][0-9]*\).*/\1/p')
  if [ -z "$mallocs" ] || [ -z "$frees" ]; then fail "$name: no mallocs=N frees=N in '$stats'"; fi
  [ "$mallocs" -gt "${MIN_MALLOCS:-1000}" ] \
    || fail "$name: spanalloc served only $mallocs allocations (want > ${MIN_MALLOCS:-1000}): not preloaded?"
  [ "$frees" -gt 0 ] || fail "$name: spanalloc saw no frees"
  echo "smoke: $name: ok (identical output; $stats)"
}
