#!/bin/sh
# git.sh — preload spanalloc into git: the workload of git-workload.sh (a
# generated repository with many commits, a merge, log, diff, blame, grep,
# gc, repack, fsck, archive) runs once plainly and once with every process
# preloaded (git and the shell alike, SPANALLOC=stats=1). The stdout of the
# two runs must be identical, the plain stderr empty, and the preloaded
# stderr nothing but the at-exit reports, with at least one report per git
# command (so the git processes did run on spanalloc) and, in total, many
# allocations served.
# Environment: SPANALLOC_LIB, SPANALLOC_RUN, SPANALLOC_SMOKE_DIR (see
# tests/smoke/common.sh, which this sources), SA_GIT (git binary).
here=$(cd "$(dirname "$0")" && pwd)
. "${SPANALLOC_SMOKE_DIR:-$here/../smoke}/common.sh"
git_bin=${SA_GIT:-git}
command -v "$git_bin" >/dev/null 2>&1 || fail "git not found"
PATH=$(dirname "$(command -v "$git_bin")"):$PATH
export PATH

mkdir -p "$work/plain" "$work/sa"
st=0
sh "$here/git-workload.sh" "$work/plain" >"$work/plain.out" 2>"$work/plain.err" || st=$?
[ "$st" -eq 0 ] || { cat "$work/plain.err" >&2; fail "git: plain run failed (status $st)"; }
[ ! -s "$work/plain.err" ] || { head -20 "$work/plain.err" >&2; fail "git: plain run wrote to stderr"; }
grep -q '^fsck ok$' "$work/plain.out" || fail "git: plain run did not reach fsck"

st=0
SPANALLOC=stats=1 "$SPANALLOC_RUN" sh "$here/git-workload.sh" "$work/sa" >"$work/sa.out" 2>"$work/sa.err" || st=$?
[ "$st" -eq 0 ] || { grep -v -e '^spanalloc' -e '^  ' "$work/sa.err" | head -20 >&2; fail "git: run with spanalloc failed (status $st)"; }
if ! cmp -s "$work/plain.out" "$work/sa.out"; then
  diff "$work/plain.out" "$work/sa.out" | head -20 >&2
  fail "git: output differs with spanalloc"
fi
others=$(grep -v -e '^spanalloc: stats:' -e '^spanalloc [0-9][0-9.]*: ' -e '^  ' "$work/sa.err" || true)
[ -z "$others" ] || { printf '%s\n' "$others" | head -20 >&2; fail "git: unexpected stderr with spanalloc"; }
reports=$(grep -c '^spanalloc: stats:' "$work/sa.err" || true)
commits=${SA_GIT_COMMITS:-120}
[ "$reports" -ge $((2 * commits)) ] \
  || fail "git: only $reports processes reported stats (want >= $((2 * commits))): not preloaded?"
mallocs=$(sed -n 's/^spanalloc: stats:.* mallocs=\([0-9][0-9]*\).*/\1/p' "$work/sa.err" | awk '{s += $1} END {print s + 0}')
[ "$mallocs" -gt 100000 ] || fail "git: spanalloc served only $mallocs allocations in total"
echo "smoke: git: ok (identical output; $reports processes on spanalloc, $mallocs mallocs)"
