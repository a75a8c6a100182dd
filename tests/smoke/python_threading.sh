#!/bin/sh
# python_threading.sh — CPython's own test_threading (Debian's
# libpython3.11-testsuite, installed by tools/install-deps.sh) with spanalloc
# preloaded and PYTHONMALLOC=malloc, so every object and every thread of the
# suite runs on spanalloc. The whole module (~20 s here), each test bounded
# by regrtest's --timeout and the run by a hard kill: a process that a helper
# thread keeps alive (issue 11: test_3_join_in_forked_from_thread, a child
# whose only thread ends) shows up as a timeout, not as a hung CI. The verbose
# log must show that test passing, so a skipped or renamed test is noticed.
# Environment: see common.sh; SA_PYTHON311 (Debian's python3.11, whose
# standard library the testsuite package extends).
. "$(dirname "$0")/common.sh"
py=${SA_PYTHON311:-/usr/bin/python3.11}
[ -x "$py" ] || fail "python3.11 not found"
"$py" -c 'import test.test_threading' 2>/dev/null \
  || fail "test.test_threading missing: install libpython3.11-testsuite (tools/install-deps.sh test)"
st=0
( cd "$work" && PYTHONMALLOC=malloc timeout -s KILL 240 "$SPANALLOC_RUN" "$py" -m test \
    --timeout 60 -v test_threading ) >"$work/out" 2>&1 || st=$?
tail -5 "$work/out"
[ "$st" -eq 0 ] || { grep -E 'FAIL|ERROR|Timeout|timed out' "$work/out" | head -20; \
  fail "test_threading under spanalloc: status $st"; }
grep -q 'test_3_join_in_forked_from_thread .* ok$' "$work/out" \
  || fail "test_3_join_in_forked_from_thread did not run and pass"
grep -q 'Tests result: SUCCESS' "$work/out" || fail "test_threading did not report SUCCESS"
echo "smoke: test_threading passed under spanalloc"
