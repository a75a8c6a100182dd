#!/bin/sh
# cxx.sh CXX_CHURN LINKED... — our C++ churn program (cxx_churn.cc:
# threads, std::string/std::map/std::shared_ptr churn, cross-thread frees)
# run linked normally (glibc malloc), the same binary with spanalloc
# preloaded, and each LINKED build (against libspanalloc.so / .a). All runs
# must print the same bytes; the spanalloc runs must report (SPANALLOC=stats=1)
# many allocations and frees.
here=$(cd "$(dirname "$0")" && pwd)
. "${SPANALLOC_SMOKE_DIR:-$here/../smoke}/common.sh"
plain_bin=$1
shift
[ -x "$plain_bin" ] || fail "cxx_churn not built"

# plain vs preloaded (common.sh: identical stdout, one stats line, > MIN_MALLOCS)
MIN_MALLOCS=500000 run_both cxx_churn "$plain_bin" 4 3 400

# linked against the shared and the static library: same output, our stats
# line at exit
for linked_bin in "$@"; do
  [ "$linked_bin" != "$plain_bin" ] || continue
  [ -x "$linked_bin" ] || fail "$linked_bin not built"
  st=0
  SPANALLOC=stats=1 "$linked_bin" 4 3 400 >"$work/linked.out" 2>"$work/linked.err" || st=$?
  [ "$st" -eq 0 ] || { cat "$work/linked.err" >&2; fail "$linked_bin linked with spanalloc failed (status $st)"; }
  cmp -s "$work/cxx_churn.plain.out" "$work/linked.out" \
    || { diff "$work/cxx_churn.plain.out" "$work/linked.out" | head >&2; fail "$linked_bin prints different output"; }
  stats=$(grep '^spanalloc: stats:' "$work/linked.err" || true)
  mallocs=$(printf '%s\n' "$stats" | sed -n 's/.*mallocs=\([0-9][0-9]*\).*/\1/p')
  [ -n "$mallocs" ] && [ "$mallocs" -gt 500000 ] \
    || fail "$linked_bin: spanalloc served '${mallocs:-no}' allocations (stats: '$stats'): not linked?"
  echo "smoke: $(basename "$linked_bin"): ok (identical output; $stats)"
done
