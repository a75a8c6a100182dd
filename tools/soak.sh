#!/usr/bin/env bash
# soak.sh [minutes] — run the stress program (tests/tsan/stress.c) in rounds
# for the given time (default 10 minutes; tools/test.sh runs 0.5).
#
# Every round picks a random thread count (1-8) and size mix (small, mixed,
# large-heavy); workers allocate, realloc, free their own and each other's
# blocks, half of them exit while others still hold their blocks; every block
# is pattern-checked before it is freed. After each round the program checks
# that no object is left live (heap_objects back to its value before the
# round), calls sa_heap_check() (which aborts on any broken invariant), and,
# after sa_scavenge(0), that RSS is within SPANALLOC_SOAK_RSS_MIB (default
# 64) MiB of the first round's. Prints one summary line; exits non-zero on
# any failure.
#
# The tree: SPANALLOC_SOAK_BUILD (an existing build dir with sa_stress, e.g.
# the one tools/test.sh made), else <repo>/build-soak, configured here with
# -DSPANALLOC_DEBUG=ON (freed-block patterns, canaries) when the root CMake
# has that option. SPANALLOC_SOAK_SEED fixes the seed (default: random,
# printed, so a failure can be rerun).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
minutes=${1:-10}
case $minutes in *[!0-9.]*|'') echo "usage: soak.sh [minutes]" >&2; exit 2 ;; esac
seconds=$(awk -v m="$minutes" 'BEGIN { s = m * 60; print (s < 1 ? 1 : s) }')
seed=${SPANALLOC_SOAK_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}
bound=${SPANALLOC_SOAK_RSS_MIB:-64}

if [ -n "${SPANALLOC_SOAK_BUILD:-}" ]; then
  build=$SPANALLOC_SOAK_BUILD
else
  build=$root/build-soak
  bash "$root/tools/install-deps.sh" test
  opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPANALLOC_BUILD_BENCH=OFF)
  if grep -q 'option(SPANALLOC_DEBUG' "$root/CMakeLists.txt"; then
    opts+=(-DSPANALLOC_DEBUG=ON)
  fi
  cmake -S "$root" -B "$build" "${opts[@]}" >"$build.configure.log" 2>&1 \
    || { cat "$build.configure.log" >&2; exit 1; }
fi
cmake --build "$build" -j2 --target sa_stress >/dev/null
debug=$(grep -E '^SPANALLOC_DEBUG:BOOL=' "$build/CMakeCache.txt" | cut -d= -f2 || true)

log=$(mktemp "${TMPDIR:-/tmp}/sa-soak.XXXXXX")
trap 'rm -f "$log"' EXIT
echo "soak: ${seconds}s, seed $seed, RSS bound +${bound} MiB, tree $build (debug: ${debug:-OFF})"
st=0
"$build/bin/sa_stress" -d "$seconds" --random -n 20000 -s "$seed" --rss-bound-mib "$bound" -v \
  >"$log" 2>&1 || st=$?
if [ "$st" -ne 0 ]; then
  tail -5 "$log" >&2
  echo "soak: FAIL (exit $st) after $(grep -c '^round ' "$log" || true) rounds; rerun with SPANALLOC_SOAK_SEED=$seed" >&2
  exit 1
fi
rounds=$(grep -c '^round ' "$log" || true)
summary=$(grep '^sa_stress: OK' "$log")
echo "soak: PASS $rounds rounds, seed $seed, debug ${debug:-OFF}: ${summary#sa_stress: OK }"
