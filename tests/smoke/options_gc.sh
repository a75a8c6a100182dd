#!/bin/sh
# options_gc.sh — SPANALLOC=gctrace=1 (or any collector option) in a build
# without the collector says that it needs one, instead of "unknown option";
# in a collector build it is accepted silently. SA_EXPECT_GC: ON or OFF, the
# tree's SPANALLOC_GC.
. "$(dirname "$0")/common.sh"
st=0
SPANALLOC=gctrace=1,gc_percent=50 "$SPANALLOC_RUN" /bin/true 2>"$work/err" || st=$?
[ "$st" -eq 0 ] || fail "/bin/true failed (status $st) with SPANALLOC=gctrace=1"
case ${SA_EXPECT_GC:-OFF} in
  ON|on|1|TRUE|true)
    [ ! -s "$work/err" ] || { cat "$work/err" >&2; fail "collector build: the options were not accepted"; } ;;
  *)
    grep -q "^spanalloc: option 'gctrace' in SPANALLOC needs a collector build (-DSPANALLOC_GC=ON); ignored$" "$work/err" \
      || { cat "$work/err" >&2; fail "no 'needs a collector build' line for gctrace"; }
    grep -q "option 'gc_percent' in SPANALLOC needs a collector build" "$work/err" \
      || { cat "$work/err" >&2; fail "no 'needs a collector build' line for gc_percent"; }
    ! grep -q "unknown option" "$work/err" || { cat "$work/err" >&2; fail "still 'unknown option'"; } ;;
esac
echo "smoke: collector options answered as a $([ "${SA_EXPECT_GC:-OFF}" = ON ] && echo collector || echo plain) build should"
