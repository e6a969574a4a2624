#!/usr/bin/env bash
# Make Debian's PostgreSQL 15 available for the test suite and print the line that points the tests at it:
#   eval "$(scripts/pg15.sh)"
# Installs postgresql-15 and postgresql-15-plpgsql-check when missing, creates and starts the cluster 15/main,
# creates a login superuser.
# Needs root (or an existing server given by REGATE_TEST_DSN, which is then printed as is).
set -euo pipefail
log() { echo "pg15: $*" >&2; }

if [ -n "${REGATE_TEST_DSN:-}" ]; then
    printf 'export REGATE_TEST_DSN=%q\n' "$REGATE_TEST_DSN"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    log "installing and starting PostgreSQL 15 needs root; as a normal user, start a server yourself and set REGATE_TEST_DSN"
    exit 1
fi
packages=()
if [ ! -x /usr/lib/postgresql/15/bin/postgres ] || ! command -v pg_ctlcluster >/dev/null; then
    packages+=(postgresql-15)
fi
# plpgsql_check: tests/test_static_checks.py checks every PL/pgSQL function with it (make test-pg15 requires it)
if [ ! -f /usr/share/postgresql/15/extension/plpgsql_check.control ]; then
    packages+=(postgresql-15-plpgsql-check)
fi
if [ ${#packages[@]} -gt 0 ]; then
    log "installing ${packages[*]} with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${packages[@]}" >&2
fi
if ! pg_lsclusters -h 2>/dev/null | awk '$1 == 15 && $2 == "main"' | grep -q .; then
    log "creating cluster 15/main ..."
    pg_createcluster 15 main >&2
fi
status=0
pg_ctlcluster --skip-systemctl-redirect 15 main start >&2 2>/dev/null || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 2 ]; then   # 2: already running
    log "cannot start cluster 15/main (exit $status); see /var/log/postgresql/postgresql-15-main.log"
    exit 1
fi
port=$(pg_lsclusters -h | awk '$1 == 15 && $2 == "main" {print $3}')
for _ in $(seq 1 50); do
    runuser -u postgres -- psql -p "$port" -Atqc 'select 1' >/dev/null 2>&1 && break
    sleep 0.2
done
runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qc "
do \$\$ begin
    if not exists (select from pg_roles where rolname = 'regate_test') then
        create role regate_test login superuser password 'regate_test';
    end if;
end \$\$;" >&2
log "PostgreSQL 15 is running on 127.0.0.1:$port"
echo "export REGATE_TEST_DSN='postgresql://regate_test:regate_test@127.0.0.1:$port/postgres'"
