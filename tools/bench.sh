#!/usr/bin/env bash
# tools/bench.sh — build in Release and compare spanalloc with glibc, jemalloc,
# mimalloc and tcmalloc (tools/install-deps.sh bench installs their Debian
# packages; elsewhere, the ones found are compared).
#
#   tools/bench.sh                  quick set: every workload at scale 0.5, 3 reps (~10 min on 2 cores)
#   tools/bench.sh --full           scale 2, 5 reps, plus --micro and --instructions
#   tools/bench.sh --only NAME      one workload (bench/results/only-NAME.json; docs untouched)
#   tools/bench.sh --instructions   instructions per malloc+free pair under callgrind
#   tools/bench.sh --micro          google-benchmark microbenchmarks under every allocator
#   tools/bench.sh --perf NAME --perf-tag TAG
#                                   where the time goes: perf record -g of one workload under
#                                   spanalloc (2 threads, scale 0.5), top of perf report
#                                   --no-children in bench/results/perf-NAME-t2-TAG.txt
#                                   (TAG: before / after a change; the report shows both)
#   tools/bench.sh --gc [ARGS]      collector benchmarks against Boehm GC (tools/bench_gc.sh ARGS)
# Options: --reps N, --scale S, --allocators glibc,jemalloc,spanalloc,...  (default: all available),
#          --no-policies (skip the spanalloc-eager and spanalloc-off builds),
#          --perf-threads N (default 2)
#
# The workload runs include spanalloc built with each scavenger policy:
# spanalloc (background, the default, build-bench/), spanalloc-eager
# (build-bench-eager/) and spanalloc-off (build-bench-off/); they give the
# phase-change RSS plot and the policy cost table.
# Writes bench/results/latest.json, bench/results/*.png and regenerates
# docs/benchmarks.md. Exits 1 if any run failed (crash, data-check failure,
# timeout) after writing the results, so a spanalloc bug is never silent.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

BUILD="build-bench"
RESULTS="bench/results"
DOCS="docs/benchmarks.md"

usage() {
  sed -n '2,27p' "$here/bench.sh" | sed 's/^# \{0,1\}//'
}

mode=quick
only=""
reps=""
scale=""
want_workloads=1
want_instructions=0
want_micro=0
allocators=""
policies=1
perf_workload=""
perf_tag=""
perf_threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --full) mode=full; want_instructions=1; want_micro=1 ;;
    --quick) mode=quick ;;
    --only) [ $# -ge 2 ] || { echo "bench.sh: --only needs a workload name" >&2; exit 2; }; only="$2"; shift ;;
    --only=*) only="${1#--only=}" ;;
    --reps) [ $# -ge 2 ] || { echo "bench.sh: --reps needs a number" >&2; exit 2; }; reps="$2"; shift ;;
    --reps=*) reps="${1#--reps=}" ;;
    --scale) [ $# -ge 2 ] || { echo "bench.sh: --scale needs a number" >&2; exit 2; }; scale="$2"; shift ;;
    --scale=*) scale="${1#--scale=}" ;;
    --allocators) [ $# -ge 2 ] || { echo "bench.sh: --allocators needs a list" >&2; exit 2; }; allocators="$2"; shift ;;
    --allocators=*) allocators="${1#--allocators=}" ;;
    --no-policies) policies=0 ;;
    --instructions) want_workloads=0; want_instructions=1 ;;
    --perf) [ $# -ge 2 ] || { echo "bench.sh: --perf needs a workload name" >&2; exit 2; }; perf_workload="$2"; shift ;;
    --perf=*) perf_workload="${1#--perf=}" ;;
    --perf-tag) [ $# -ge 2 ] || { echo "bench.sh: --perf-tag needs a word" >&2; exit 2; }; perf_tag="$2"; shift ;;
    --perf-tag=*) perf_tag="${1#--perf-tag=}" ;;
    --perf-threads) [ $# -ge 2 ] || { echo "bench.sh: --perf-threads needs a number" >&2; exit 2; }; perf_threads="$2"; shift ;;
    --perf-threads=*) perf_threads="${1#--perf-threads=}" ;;
    --micro) want_workloads=0; want_micro=1 ;;
    --gc)
      # the collector against Boehm GC (bench/gc): its own runner
      shift
      exec bash "$here/bench_gc.sh" "$@" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$reps" ] && ! [[ "$reps" =~ ^[1-9][0-9]*$ ]]; then
  echo "bench.sh: --reps wants a positive number, not '$reps'" >&2
  exit 2
fi
if [ -n "$scale" ] && ! [[ "$scale" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]]; then
  echo "bench.sh: --scale wants a positive number, not '$scale'" >&2
  exit 2
fi
if [ -n "$perf_workload" ]; then
  if ! [[ "$perf_tag" =~ ^[A-Za-z0-9_.-]+$ ]]; then
    echo "bench.sh: --perf wants --perf-tag WORD (e.g. before, after): it names the stored profile" >&2
    exit 2
  fi
  if ! [[ "$perf_threads" =~ ^[1-9][0-9]*$ ]]; then
    echo "bench.sh: --perf-threads wants a positive number, not '$perf_threads'" >&2
    exit 2
  fi
  want_workloads=0; want_instructions=0; want_micro=0
  # the profile is of spanalloc (the default build) alone
  if [ -z "$allocators" ]; then allocators=spanalloc; fi
fi

# ---- dependencies (Debian packages) ------------------------------------------
pkg_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}
if command -v dpkg-query >/dev/null 2>&1; then
  # the bench group: compilers, valgrind, gnuplot, google-benchmark, and the
  # allocators compared against (jemalloc, mimalloc, tcmalloc), perf; as root
  # it installs what is missing, otherwise it names it and fails
  bash "$here/install-deps.sh" bench || exit 1
else
  # not Debian: check for the programs themselves, cannot install
  missing=()
  for c in cmake cc c++ make gnuplot python3; do
    if ! command -v "$c" >/dev/null 2>&1; then missing+=("$c"); fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bench.sh: missing programs: ${missing[*]} (this script installs Debian packages only)" >&2
    exit 1
  fi
fi
PY=/usr/bin/python3
[ -x "$PY" ] || PY="$(command -v python3)"

# ---- allocators --------------------------------------------------------------
multiarch="$(gcc -print-multiarch 2>/dev/null || true)"
find_lib() { # find_lib NAME: the first /usr/lib*/<multiarch>/NAME that exists
  local d
  for d in "/usr/lib/$multiarch" /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib; do
    if [ -n "$d" ] && [ -e "$d/$1" ]; then echo "$d/$1"; return 0; fi
  done
  return 1
}
declare -A lib=()
lib[glibc]=""
jemalloc_lib="$(find_lib libjemalloc.so.2 || true)"
if [ -n "$jemalloc_lib" ]; then lib[jemalloc]="$jemalloc_lib"; fi
if pkg_installed libmimalloc2.0; then
  l="$(find_lib libmimalloc.so.2 || find_lib libmimalloc.so.2.0 || true)"
  if [ -n "$l" ]; then lib[mimalloc]="$l"; fi
fi
if pkg_installed libtcmalloc-minimal4; then
  l="$(find_lib libtcmalloc_minimal.so.4 || true)"
  if [ -n "$l" ]; then lib[tcmalloc]="$l"; fi
fi
# on Debian the bench group above installed both: a missing one is an error
if command -v dpkg-query >/dev/null 2>&1 && [ "${SPANALLOC_SKIP_DEPS:-0}" != 1 ]; then
  for a in mimalloc tcmalloc; do
    if [ -z "${lib[$a]:-}" ]; then
      echo "bench.sh: $a is installed but its library was not found under /usr/lib" >&2
      exit 1
    fi
  done
fi
lib[spanalloc]="$root/$BUILD/lib/libspanalloc.so"
# one more build of the library per extra scavenger policy (issue 4)
POLICIES=(eager off)
for p in "${POLICIES[@]}"; do lib[spanalloc-$p]="$root/$BUILD-$p/lib/libspanalloc.so"; done
explicit_allocators=0
if [ -n "$allocators" ]; then explicit_allocators=1; fi
if [ -z "$allocators" ]; then
  allocators="glibc"
  for a in jemalloc mimalloc tcmalloc; do
    if [ -n "${lib[$a]:-}" ]; then allocators+=",$a"; fi
  done
  allocators+=",spanalloc"
  # the policy variants only matter for the workloads (RSS plot, policy cost)
  if [ "$policies" = 1 ] && [ "$want_workloads" = 1 ]; then
    for p in "${POLICIES[@]}"; do allocators+=",spanalloc-$p"; done
  fi
fi
IFS=, read -r -a alloc_list <<<"$allocators"
use_spanalloc=0
policy_builds=()
for a in "${alloc_list[@]}"; do
  if [ -z "${lib[$a]+set}" ]; then
    echo "bench.sh: unknown or unavailable allocator '$a' (available: ${!lib[*]})" >&2
    exit 2
  fi
  if [ "$a" = spanalloc ]; then use_spanalloc=1; fi
  if [[ "$a" == spanalloc-* ]]; then policy_builds+=("${a#spanalloc-}"); fi
done

# ---- build -------------------------------------------------------------------
targets=(bench_workloads)
if [ "$use_spanalloc" = 1 ]; then targets+=(spanalloc); fi
if [ "$want_micro" = 1 ]; then
  targets+=(bench_micro_malloc)
  if [ "$use_spanalloc" = 1 ]; then targets+=(bench_micro_sa); fi
fi
echo "bench.sh: building ${targets[*]} (Release) in $BUILD/"
mkdir -p "$BUILD"
# SPANALLOC_GC=ON: the library users get with the collector compiled in;
# malloc must pay nothing for it (--instructions shows it)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSPANALLOC_BUILD_TESTS=OFF -DSPANALLOC_GC=ON \
  -DSPANALLOC_SCAVENGER=background -DSPANALLOC_MADVISE=dontneed >"$BUILD/configure.log" 2>&1 || {
  cat "$BUILD/configure.log" >&2
  echo "bench.sh: cmake configure failed (log above)" >&2
  exit 1
}
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}"
if [ "$use_spanalloc" = 1 ] && [ ! -f "${lib[spanalloc]}" ]; then
  echo "bench.sh: ${lib[spanalloc]} was not built" >&2
  exit 1
fi
# the policy variants: the shared library only (no tests, no benchmarks)
for p in ${policy_builds[@]+"${policy_builds[@]}"}; do
  d="$BUILD-$p"
  echo "bench.sh: building spanalloc with SPANALLOC_SCAVENGER=$p (Release) in $d/"
  mkdir -p "$d"
  cmake -S . -B "$d" -DCMAKE_BUILD_TYPE=Release -DSPANALLOC_BUILD_TESTS=OFF -DSPANALLOC_BUILD_BENCH=OFF -DSPANALLOC_GC=ON \
    -DSPANALLOC_SCAVENGER="$p" -DSPANALLOC_MADVISE=dontneed >"$d/configure.log" 2>&1 || {
    cat "$d/configure.log" >&2
    echo "bench.sh: cmake configure failed for the $p policy (log above)" >&2
    exit 1
  }
  cmake --build "$d" -j"$(nproc)" --target spanalloc
  if [ ! -f "${lib[spanalloc-$p]}" ]; then
    echo "bench.sh: ${lib[spanalloc-$p]} was not built" >&2
    exit 1
  fi
done

alloc_args=()
main_alloc_args=() # micro and instructions: without the policy variants, unless asked for by name
for a in "${alloc_list[@]}"; do
  alloc_args+=(--alloc "$a=${lib[$a]}")
  if [[ "$a" != spanalloc-* ]] || [ "$explicit_allocators" = 1 ]; then main_alloc_args+=(--alloc "$a=${lib[$a]}"); fi
done
mkdir -p "$RESULTS"
status=0

# ---- runs --------------------------------------------------------------------
if [ "$want_workloads" = 1 ]; then
  out="$RESULTS/latest.json"
  if [ -n "$only" ]; then out="$RESULTS/only-$only.json"; fi
  run_args=(workloads --bin "$BUILD/bin/bench" --out "$out" --set "$mode" "${alloc_args[@]}")
  if [ -n "$only" ]; then run_args+=(--only "$only"); fi
  if [ -n "$reps" ]; then run_args+=(--reps "$reps"); fi
  if [ -n "$scale" ]; then run_args+=(--scale "$scale"); fi
  echo "bench.sh: running the $mode set${only:+ (only $only)} under: ${alloc_list[*]}"
  "$PY" tools/bench_run.py "${run_args[@]}" || status=$?
  if [ "$status" -ge 2 ]; then exit "$status"; fi
fi

if [ "$want_micro" = 1 ]; then
  micro_args=(micro --malloc-bin "$BUILD/bin/bench/bench_micro_malloc" --out "$RESULTS/micro.json"
              --min-time 0.1 "${main_alloc_args[@]}")
  if [ "$use_spanalloc" = 1 ]; then micro_args+=(--sa-bin "$BUILD/bin/bench/bench_micro_sa"); fi
  if [ "$mode" != full ]; then micro_args+=(--filter '^pair'); fi
  echo "bench.sh: microbenchmarks under: ${alloc_list[*]}"
  "$PY" tools/bench_run.py "${micro_args[@]}" || status=1
fi

if [ "$want_instructions" = 1 ]; then
  echo "bench.sh: instructions per malloc+free pair (callgrind) under: ${alloc_list[*]}"
  "$PY" tools/bench_run.py instructions --loop-bin "$BUILD/bin/bench/fastpath_loop" \
    --out "$RESULTS/instructions.json" "${main_alloc_args[@]}" || status=1
  "$PY" - "$RESULTS/instructions.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
allocs = [a["name"] for a in d["allocators"]]
cases = sorted({(r.get("batch", 1), r["bytes"]) for r in d["rows"]})
print("\nInstructions per malloc+free pair: callgrind, (Ir(N2)-Ir(N1))/(N2-N1) with N1=%d N2=%d,\n"
      "not counting the loop program's own instructions (fastpath_loop's main); batch B = B mallocs,\n"
      "then their frees in allocation order" % (d["n1"], d["n2"]))
print("bytes  batch  " + "  ".join(f"{a:>10}" for a in allocs))
for batch, s in cases:
    cells = []
    for a in allocs:
        v = next((r["instructions_per_pair"] for r in d["rows"]
                  if r["alloc"] == a and r["bytes"] == s and r.get("batch", 1) == batch), None)
        cells.append(f"{v:>10.1f}" if v is not None else f"{'FAIL':>10}")
    print(f"{s:>5}  {batch:>5}  " + "  ".join(cells))
EOF
fi

if [ -n "$perf_workload" ]; then
  if [ "${#alloc_list[@]}" != 1 ]; then
    echo "bench.sh: --perf profiles one allocator (--allocators NAME)" >&2
    exit 2
  fi
  a="${alloc_list[0]}"
  echo "bench.sh: perf profile of $perf_workload -t $perf_threads under $a"
  "$PY" tools/bench_run.py perf --bin "$BUILD/bin/bench" --workload "$perf_workload" --threads "$perf_threads" \
    --scale "${scale:-0.5}" --tag "$perf_tag" --out-dir "$RESULTS" --alloc "$a=${lib[$a]}" || exit 1
  if [ -f "$RESULTS/latest.json" ]; then
    "$PY" tools/bench_report.py "$RESULTS/latest.json" --plots "$RESULTS" --docs "$DOCS" \
      --instructions "$RESULTS/instructions.json" --micro "$RESULTS/micro.json" --perf-dir "$RESULTS" >/dev/null
    echo "bench.sh: regenerated $DOCS"
  fi
  exit 0
fi

# ---- report ------------------------------------------------------------------
if [ -n "$only" ]; then
  "$PY" tools/bench_report.py "$RESULTS/only-$only.json"
elif [ -f "$RESULTS/latest.json" ]; then
  report_args=("$RESULTS/latest.json" --plots "$RESULTS" --docs "$DOCS"
               --instructions "$RESULTS/instructions.json" --micro "$RESULTS/micro.json" --perf-dir "$RESULTS")
  if [ "$want_workloads" = 1 ]; then
    "$PY" tools/bench_report.py "${report_args[@]}"
  else
    "$PY" tools/bench_report.py "${report_args[@]}" >/dev/null
    echo "bench.sh: regenerated $DOCS"
  fi
fi

if [ "$status" != 0 ]; then
  echo "bench.sh: SOME RUNS FAILED (see above and the \"failures\" list in the JSON)" >&2
fi
exit "$status"
