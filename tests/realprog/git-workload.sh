#!/bin/sh
# git-workload.sh DIR — the git workload of tests/realprog/git.sh: in DIR, a
# fresh repository gets many commits (files added, edited, renamed, deleted;
# a branch merged), then log, diff, blame, gc, repack, fsck. Everything it
# prints on stdout depends only on the inputs (fixed dates and identities),
# so a plain run and a run under spanalloc must print the same bytes.
set -eu
dir=$1
n=${SA_GIT_COMMITS:-120}
export HOME="$dir/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null \
  GIT_AUTHOR_NAME=sa GIT_AUTHOR_EMAIL=sa@example.org \
  GIT_COMMITTER_NAME=sa GIT_COMMITTER_EMAIL=sa@example.org \
  LC_ALL=C TZ=UTC
mkdir -p "$HOME" "$dir/repo"
cd "$dir/repo"
git -c init.defaultBranch=main init -q .
git config gc.auto 0
git config pack.threads 2

i=1
while [ "$i" -le "$n" ]; do
  export GIT_AUTHOR_DATE="@$((1700000000 + i * 3600)) +0000" GIT_COMMITTER_DATE="@$((1700000000 + i * 3600)) +0000"
  f=src/file$((i % 17)).txt
  mkdir -p src docs
  # grow, rewrite and shuffle lines so diffs and deltas have work to do
  j=0
  while [ "$j" -lt $((i % 23 + 5)) ]; do
    echo "line $j of commit $i: $(( (i * 7919 + j * 104729) % 100003 )) lorem ipsum dolor sit amet" >>"$f"
    j=$((j + 1))
  done
  [ $((i % 5)) -ne 0 ] || sed -i '1,3d' "$f"
  [ $((i % 11)) -ne 0 ] || { [ ! -f src/file3.txt ] || git mv -k src/file3.txt "docs/moved$i.txt"; }
  [ $((i % 13)) -ne 0 ] || git rm -q --ignore-unmatch src/file5.txt
  git add -A
  git commit -q -m "commit $i: touch $f" -m "body of commit $i"
  if [ "$i" -eq $((n / 2)) ]; then
    git checkout -q -b side HEAD~5
    echo "side work" >side.txt
    git add side.txt
    git commit -q -m "side branch"
    git checkout -q main
    git merge -q --no-edit -m "merge side" side
  fi
  i=$((i + 1))
done

echo "== rev-parse"; git rev-parse HEAD HEAD~10 side
echo "== log"; git log --format='%H %an %ad %s' --date=iso --stat=100 | head -400
echo "== log -p checksum"; git log -p --format='%H' | cksum
echo "== diff"; git diff --stat HEAD~40 HEAD; git diff HEAD~3 HEAD | cksum
echo "== blame"; git blame -s src/file1.txt | head -50
echo "== grep"; git grep -c 'commit 7' HEAD | head -20
echo "== gc"; git gc -q --prune=now; git count-objects -v | grep -E '^(count|in-pack|packs|prune-packable|garbage):'
echo "== repack"; git repack -q -a -d -f; git count-objects -v | grep -E '^(in-pack|packs):'
echo "== fsck"; git fsck --full --no-progress --strict && echo fsck ok
echo "== archive"; git archive --format=tar HEAD | tar -tf - | sort | cksum
