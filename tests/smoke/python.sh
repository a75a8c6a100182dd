#!/bin/sh
# python.sh — preload spanalloc into python3 running a real workload (json,
# re, sqlite3, threads, hashlib, big ints) and compare with a plain run;
# once with pymalloc (the default) and once with PYTHONMALLOC=malloc so that
# every object goes through spanalloc.
. "$(dirname "$0")/common.sh"
py=${SA_PYTHON3:-python3}
# resolve wrappers (pyenv shims are shell scripts) to the real interpreter
py=$("$py" -c 'import sys; print(sys.executable)') || fail "python3 does not run"
[ -x "$py" ] || fail "python3 not found"
MIN_MALLOCS=1000 run_both python "$py" "$SPANALLOC_SMOKE_DIR/workload.py"
MIN_MALLOCS=100000 run_both python-malloc env PYTHONMALLOC=malloc "$py" "$SPANALLOC_SMOKE_DIR/workload.py"
