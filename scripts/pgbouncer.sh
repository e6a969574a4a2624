#!/usr/bin/env bash
# Make Debian's PgBouncer binary available for the pooler tests (tests/test_pgbouncer.py) and print its path:
#   scripts/pgbouncer.sh            -> /usr/sbin/pgbouncer
# Installs the Debian package `pgbouncer` with apt-get when the binary is missing (needs root; non-interactive,
# idempotent). The package's own system service is not used (nor started here): the tests run a private instance
# with their own configuration on a free port. PGBOUNCER names another binary to use instead.
set -euo pipefail
log() { echo "pgbouncer.sh: $*" >&2; }

find_binary() {
    if [ -n "${PGBOUNCER:-}" ]; then
        [ -x "$PGBOUNCER" ] && { echo "$PGBOUNCER"; return 0; }
        return 1
    fi
    command -v pgbouncer 2>/dev/null && return 0
    [ -x /usr/sbin/pgbouncer ] && { echo /usr/sbin/pgbouncer; return 0; }
    return 1
}

if binary=$(find_binary); then
    echo "$binary"
    exit 0
fi
if [ -n "${PGBOUNCER:-}" ]; then
    log "PGBOUNCER=$PGBOUNCER is not an executable file"
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    log "pgbouncer is not installed, and installing it needs root: run 'apt-get install pgbouncer' as root (or set PGBOUNCER to a pgbouncer binary)"
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    log "pgbouncer is not installed and there is no apt-get here: install PgBouncer (1.18 or newer) yourself, or set PGBOUNCER to its binary"
    exit 1
fi
log "installing Debian's pgbouncer with apt-get ..."
export DEBIAN_FRONTEND=noninteractive
# Its postinst may try to start the system service: harmless (the tests never use it), and a failure to start it
# must not fail the install. policy-rc.d (101 = action forbidden) keeps invoke-rc.d from starting it where no
# policy is set already.
policy_added=
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_added=1
fi
status=0
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends pgbouncer; } </dev/null >&2 || status=$?
[ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
if [ "$status" -ne 0 ]; then
    log "apt-get install pgbouncer failed (exit $status), see above"
    exit 1
fi
if ! binary=$(find_binary); then
    log "apt-get installed pgbouncer, but no pgbouncer binary is on PATH or in /usr/sbin"
    exit 1
fi
log "installed $("$binary" --version 2>/dev/null | head -1)"
echo "$binary"
