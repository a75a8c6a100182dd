#!/bin/sh
# expect-output.sh PATTERN... -- COMMAND [ARG...]
# Runs COMMAND; passes only when it exits 0 AND each PATTERN (an extended
# regular expression, grep -E) matches a line of its output (stdout and
# stderr together). ctest's PASS_REGULAR_EXPRESSION alone ignores the exit
# status, so a program that prints the right lines and then fails would pass.
set -u
n=0
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  n=$((n + 1))
  eval "pat_$n=\$1"
  shift
done
if [ $# -lt 2 ] || [ "$n" -eq 0 ]; then
  echo "usage: expect-output.sh PATTERN... -- COMMAND [ARG...]" >&2
  exit 2
fi
shift
out=$(mktemp "${TMPDIR:-/tmp}/sa-expect.XXXXXX")
trap 'rm -f "$out"' EXIT
"$@" >"$out" 2>&1
status=$?
cat "$out"
fail=0
if [ "$status" -ne 0 ]; then
  echo "expect-output: $1 exited $status, want 0" >&2
  fail=1
fi
i=1
while [ "$i" -le "$n" ]; do
  eval "pat=\$pat_$i"
  if ! grep -Eq -- "$pat" "$out"; then
    echo "expect-output: no line matches: $pat" >&2
    fail=1
  fi
  i=$((i + 1))
done
exit "$fail"
