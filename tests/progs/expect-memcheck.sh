#!/bin/sh
# expect-memcheck.sh VALGRIND PROGRAM MODE WANT_STATUS PATTERN
# Runs PROGRAM MODE under memcheck; passes only when valgrind exits with
# WANT_STATUS (1 = memcheck found errors, via --error-exitcode=1) and its
# log contains PATTERN. Used to prove the library's client requests work.
set -u
vg=$1 prog=$2 mode=$3 want=$4 pattern=$5
log=$(mktemp "${TMPDIR:-/tmp}/sa-memcheck.XXXXXX")
trap 'rm -f "$log"' EXIT
"$vg" --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite --log-file="$log" "$prog" "$mode"
status=$?
cat "$log"
if [ "$status" -ne "$want" ]; then
  echo "expect-memcheck: $mode: valgrind exited $status, want $want" >&2
  exit 1
fi
if ! grep -q -- "$pattern" "$log"; then
  echo "expect-memcheck: $mode: memcheck log lacks \"$pattern\"" >&2
  exit 1
fi
# memcheck knows the block was freed (FREELIKE reached it): the read, in the
# middle of the block, is described as inside a free'd block
if [ "$mode" = uaf ] && ! grep -q "inside a block of size 96 free'd" "$log"; then
  echo "expect-memcheck: uaf: memcheck does not know the block was freed (FREELIKE missing?)" >&2
  exit 1
fi
echo "expect-memcheck: $mode: ok"
