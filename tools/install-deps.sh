#!/usr/bin/env bash
# install-deps.sh [test|bench|all]... — make sure the Debian packages the
# build, the tests and the benchmarks need are installed.
#
# Missing packages are installed with `apt-get update` + `apt-get install -y`
# when run as root; otherwise the script names them and exits 1. Set
# SPANALLOC_SKIP_DEPS=1 to skip the check entirely (a machine you manage).
# Used by tools/test.sh, tools/bench.sh and tools/bench_gc.sh.
set -euo pipefail

# build + tests: compilers, cmake, Criterion, valgrind (memcheck pass and
# valgrind/memcheck.h for SPANALLOC_VALGRIND), the programs the smoke and
# real-program tests preload into (sqlite3, python3, git; g++ comes with
# build-essential), clang with its compiler-rt (libFuzzer, for tests/fuzz and
# tools/fuzz.sh; the TSan/UBSan runtimes of gcc come with build-essential),
# google-pprof (google-perftools: the heap-profile test reads our profile with
# it), gnuplot (the stats and bench report tools draw their PNGs with it) and
# libpython3.11-testsuite (CPython's test_threading runs under preload)
PKGS_TEST=(cmake build-essential pkg-config libcriterion-dev valgrind sqlite3 python3
  git clang libclang-rt-14-dev google-perftools gnuplot-nox libpython3.11-testsuite)
# benchmarks (bench/ is built by default, so the test run needs them too):
# google-benchmark, the allocators tools/bench.sh compares against (jemalloc,
# mimalloc, tcmalloc: libtcmalloc_minimal.so.4), Boehm GC for bench/gc, and
# perf for tools/bench.sh --perf
PKGS_BENCH=(libbenchmark-dev libjemalloc2 libjemalloc-dev libmimalloc2.0 libtcmalloc-minimal4 libgc-dev linux-perf)

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(all)
want=()
for g in "${groups[@]}"; do
  case $g in
    test) want+=("${PKGS_TEST[@]}") ;;
    bench) want+=("${PKGS_TEST[@]}" "${PKGS_BENCH[@]}") ;;
    all) want+=("${PKGS_TEST[@]}" "${PKGS_BENCH[@]}") ;;
    *) echo "install-deps.sh: unknown group '$g' (test, bench, all)" >&2; exit 2 ;;
  esac
done

if [ "${SPANALLOC_SKIP_DEPS:-0}" = 1 ]; then
  echo "install-deps: SPANALLOC_SKIP_DEPS=1, not checking packages"
  exit 0
fi
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: not a Debian system; make sure these (Debian names) are installed:" >&2
  echo "  ${want[*]}" >&2
  exit 0
fi

missing=()
for p in "${want[@]}"; do
  case " ${missing[*]:-} " in *" $p "*) continue ;; esac
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run as root, or: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
