#!/usr/bin/env bash
# Cut a release of regate-db's SQL:   scripts/release.sh VERSION [COMMIT]
#   VERSION  vMAJOR.MINOR.PATCH (e.g. v0.2.0), newer than every archived release
#   COMMIT   what to release (default: HEAD)
# Steps, in this order; nothing is changed until every check has passed:
#   1. refuses a dirty tree, an existing tag or archive, and a released migration that changed or vanished;
#   2. tags COMMIT with the annotated tag VERSION;
#   3. writes tests/releases/VERSION.tar.gz: COMMIT's migrations/ and sql/ (git archive | gzip -n: the same bytes
#      every time), which the upgrade tests read (CI clones may carry no tags);
#   4. appends the checksums of its migrations that are not frozen yet to migrations/frozen.txt;
#   5. commits the archive and migrations/frozen.txt on the current branch.
# It bumps nothing else (no package version). Afterwards push both: git push origin HEAD VERSION
# PYTHON picks the interpreter that computes the checksums (default: .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "release: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: scripts/release.sh vMAJOR.MINOR.PATCH [COMMIT]"
version=$1
commit=${2:-HEAD}
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "version $version is not vMAJOR.MINOR.PATCH"
archive=tests/releases/$version.tar.gz
frozen=migrations/frozen.txt
python=${PYTHON:-}
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi

[ -z "$(git status --porcelain)" ] || die "the tree is not clean: commit or stash first (git status)"
sha=$(git rev-parse -q --verify "$commit^{commit}") || die "$commit is not a commit"
! git rev-parse -q --verify "refs/tags/$version" >/dev/null || die "tag $version exists already"
[ ! -e "$archive" ] || die "$archive exists already"
latest=
if [ -d tests/releases ]; then
    latest=$(find tests/releases -maxdepth 1 -name 'v*.tar.gz' | sed 's|.*/||; s|\.tar\.gz$||' | sort -V | tail -n 1)
fi
if [ -n "$latest" ] && [ "$(printf '%s\n%s\n' "$latest" "$version" | sort -V | tail -n 1)" != "$version" ]; then
    die "$version is not newer than the latest archived release $latest"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The release's migration runner too (when it has one): the upgrade test installs each release with its own runner.
paths="migrations sql"
git cat-file -e "$sha:regate_db/migrate.py" 2>/dev/null && paths="$paths regate_db/migrate.py"
# shellcheck disable=SC2086
git archive --format=tar "$sha" $paths | gzip -9 -n >"$work/$version.tar.gz"
mkdir "$work/files"
tar -xzf "$work/$version.tar.gz" -C "$work/files"
cp "$frozen" "$work/frozen.txt" 2>/dev/null || true
# Checks the release against the frozen list, and computes what to append, on a copy: nothing changes on failure.
PYTHONPATH=$PWD "$python" -m tests.released freeze "$work/frozen.txt" "$work/files/migrations" "$work/files/sql"

git tag -a "$version" "$sha" -m "regate-db $version"
mkdir -p tests/releases
cp "$work/$version.tar.gz" "$archive"
cp "$work/frozen.txt" "$frozen"
git add "$archive" "$frozen"
git commit -q -m "Release $version: archive its migrations/ and sql/, freeze its migrations' checksums" \
    -m "Tag $version is on $sha. The upgrade tests read the archive (no tags needed); the frozen list stops an edit of a released migration." \
    -- "$archive" "$frozen"
echo "release: tagged $version on $(git rev-parse --short "$sha"), wrote $archive and $frozen, committed them"
echo "release: now push the branch and the tag: git push origin HEAD $version"
