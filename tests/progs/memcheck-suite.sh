#!/bin/sh
# memcheck-suite.sh [--expect-error PATTERN] VALGRIND BINARY [ARG...]
# Runs a Criterion binary under memcheck, the one way every suite is run
# there (ctest label memcheck; tools/test.sh runs that label after the main
# ctest). Passes only when memcheck found nothing and every test passed.
#   --trace-children: Criterion's test workers re-exec the binary;
#   --exit-on-first-error: an error inside a test body kills that worker,
#     so the test crashes and the binary fails even when Criterion would
#     report the test passed (without it a use-after-free only logs);
#   somalloc=nouserintercepts: memcheck must not swap its own malloc in for
#     the malloc/free the binary defines -- the allocator under test runs and
#     tells memcheck about its blocks through client requests.
# Every process's log is also searched for errors, so a child stopped by
# --exit-on-first-error fails the run whatever its parent did with it.
# --expect-error PATTERN inverts the verdict for the canary: the run must
# fail and a log must contain PATTERN.
set -u
expect=""
if [ "${1:-}" = --expect-error ]; then expect=$2; shift 2; fi
vg=$1 bin=$2
shift 2
logs=$(mktemp -d "${TMPDIR:-/tmp}/sa-memcheck.XXXXXX")
trap 'rm -rf "$logs"' EXIT
# cwd in the scratch dir: any core file of an expected abort lands there
(cd "$logs" && "$vg" --tool=memcheck --error-exitcode=1 --exit-on-first-error=yes \
    --soname-synonyms=somalloc=nouserintercepts \
    --trace-children=yes --leak-check=no --child-silent-after-fork=no \
    --trace-children-skip='*/perl,*/google-pprof,*/nm,*/addr2line,*/objdump,*/c++filt' \
    --log-file="$logs/vg.%p.log" "$bin" "$@") >"$logs/out" 2>&1
status=$?
# a process stopped by --exit-on-first-error prints no ERROR SUMMARY
errlogs=$(grep -l -e 'ERROR SUMMARY: [1-9]' -e 'Exit program on first error' \
  "$logs"/vg.*.log 2>/dev/null)
grep -v '^\[----\]   $' "$logs/out" | tail -40
for f in $errlogs; do echo "--- $(basename "$f")"; grep -v '^==[0-9]*== *$' "$f" | head -60; done
if [ -n "$expect" ]; then
  if [ "$status" -ne 0 ] && [ -n "$errlogs" ] && grep -q -- "$expect" $errlogs; then
    echo "memcheck-suite: the deliberate error was caught and failed the run (good)"
    exit 0
  fi
  echo "memcheck-suite: $bin exited $status without a memcheck error matching \"$expect\": errors in test bodies would go unnoticed" >&2
  exit 1
fi
if [ "$status" -ne 0 ] || [ -n "$errlogs" ]; then
  echo "memcheck-suite: $bin: exit $status, memcheck errors in: ${errlogs:-none}" >&2
  exit 1
fi
