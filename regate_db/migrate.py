"""The migration runner: the only code of regate-db that executes DDL.

* Versioned files (``migrations/NNNN_*.sql``) run once each, in order, each in its own transaction together
  with its row in ``regate_internal.schema_migrations``; an edited applied file is refused (drift).
* Repeatable files (``sql/NNN_*.sql``) are re-applied, all of them in name order and in one transaction,
  whenever any of them changed or the schema version moved; ``regate_internal.schema_repeatables`` records them.
  The bookkeeping lives in schema ``regate_internal``, which nobody but its owner may use (regate-db 0.1.0 kept
  it in ``regate``: the first run of a newer regate-db moves it).
* With ``owner``, every transaction runs as that role (``SET LOCAL ROLE``), so that everything regate-db creates
  is owned by it, e.g. a dedicated NOLOGIN ``regate_owner`` on managed PostgreSQL (docs/security.md).
* Every transaction first takes a transaction-level advisory lock, so concurrent runs serialise (also behind a
  transaction-pooling proxy) and a waiting run finds the winner's rows and applies nothing.
* Nothing outlives a transaction on the server: no session-level SET, lock, temporary table or LISTEN, and no
  server-side prepared statement whatever the connection's ``prepare_threshold`` (:func:`_unprepared`). So a
  transaction pooler (PgBouncer ``pool_mode = transaction``) may run every transaction on another server connection,
  one that served other clients before (tests/test_pgbouncer.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import psycopg.sql

from regate_db.errors import DriftError, MigrationError, UnsupportedServerError
from regate_db.resources import Source, SqlFile, default_source

MIN_SERVER_VERSION = 150000
# pg_advisory_xact_lock key: the bytes of "regate" read as an integer. Any constant works; it must never change.
LOCK_KEY = 0x726567617465
# DDL waits at most this long for a table lock (taken after the migration lock, which may wait longer); a busy
# table makes the run fail cleanly instead of queueing every other query behind it. REGATE_MIGRATE_LOCK_TIMEOUT
# overrides it (a PostgreSQL duration: '30s', '2min').
MIGRATION_LOCK_TIMEOUT = "10s"

BOOTSTRAP_SQL = """
create schema if not exists regate;
create schema if not exists regate_internal;
revoke all on schema regate_internal from public;
do $$
begin
    -- regate-db 0.1.0 kept its bookkeeping in schema regate, within reach of broad grants on it.
    if to_regclass('regate.schema_migrations') is not null
        and to_regclass('regate_internal.schema_migrations') is null then
        alter table regate.schema_migrations set schema regate_internal;
    end if;
    if to_regclass('regate.schema_repeatables') is not null
        and to_regclass('regate_internal.schema_repeatables') is null then
        alter table regate.schema_repeatables set schema regate_internal;
    end if;
end
$$;
create table if not exists regate_internal.schema_migrations (
    version text primary key,
    filename text not null,
    sha256 text not null,
    applied_at timestamptz not null default now(),
    applied_by text not null default current_user,
    duration_ms double precision not null
);
create table if not exists regate_internal.schema_repeatables (
    filename text primary key,
    sha256 text not null,
    schema_version text,
    applied_at timestamptz not null default now(),
    applied_by text not null default current_user,
    duration_ms double precision not null
);
"""

Reporter = Callable[[str], None]


@dataclass(frozen=True)
class AppliedMigration:
    version: str
    filename: str
    sha256: str
    applied_at: datetime
    applied_by: str
    duration_ms: float


@dataclass(frozen=True)
class Drift:
    filename: str
    recorded_sha256: str
    file_sha256: str | None  # None: the applied file is gone from this installation

    def describe(self) -> str:
        if self.file_sha256 is None:
            return (
                f"{self.filename} was applied (sha256 {self.recorded_sha256}) but this regate-db does not "
                "ship it: the database is newer than this installation, upgrade regate-db"
            )
        return (
            f"{self.filename} changed after it was applied: recorded sha256 {self.recorded_sha256}, "
            f"file sha256 {self.file_sha256}"
        )


@dataclass
class Plan:
    """What a run would do, computed without changing anything."""

    server_version: str
    server_version_num: int
    installed: bool
    applied: list[AppliedMigration]
    pending: list[SqlFile]
    repeatables: list[SqlFile]
    repeatables_stale: bool
    drift: list[Drift]
    target: str | None = None
    latest: str | None = None

    @property
    def schema_version(self) -> str | None:
        return self.applied[-1].version if self.applied else None

    @property
    def reaches_latest(self) -> bool:
        return self.target is None or self.target == self.latest

    @property
    def applies_repeatables(self) -> bool:
        return bool(self.repeatables) and self.reaches_latest and (self.repeatables_stale or bool(self.pending))

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.applies_repeatables


@dataclass
class MigrateResult:
    plan: Plan
    applied: list[str] = field(default_factory=list)
    repeatables_applied: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.applied) or self.repeatables_applied


def _noop(_: str) -> None:
    pass


@contextmanager
def _unprepared(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """No server-side prepared statements on ``conn`` meanwhile (its ``prepare_threshold`` is restored after).

    psycopg prepares a query once it ran ``prepare_threshold`` times (default 5; the repeatable files' bookkeeping
    insert runs once per file) under the name ``_pg3_N``, counting from 0 per connection. Through a transaction
    pooler the statement stays on a server connection that other clients use next, and the next transaction may run
    elsewhere: ``prepared statement "_pg3_0" already exists`` (or ``does not exist``)."""
    saved = conn.prepare_threshold
    conn.prepare_threshold = None
    try:
        yield
    finally:
        conn.prepare_threshold = saved


def check_server(conn: psycopg.Connection[Any]) -> tuple[int, str]:
    """The server's version; raises :class:`UnsupportedServerError` below PostgreSQL 15."""
    row = conn.execute(
        "select current_setting('server_version_num')::int, current_setting('server_version')"
    ).fetchone()
    assert row is not None
    num, text = int(row[0]), str(row[1])
    if num < MIN_SERVER_VERSION:
        raise UnsupportedServerError(
            f"PostgreSQL {text} is not supported: regate-db needs PostgreSQL 15 or newer (nothing was changed)"
        )
    return num, text


def _read_state(
    conn: psycopg.Connection[Any],
) -> tuple[bool, list[AppliedMigration], dict[str, tuple[str, str | None]]]:
    row = conn.execute(
        "select coalesce(to_regclass('regate_internal.schema_migrations'), to_regclass('regate.schema_migrations')),"
        " coalesce(to_regclass('regate_internal.schema_repeatables'), to_regclass('regate.schema_repeatables'))"
    ).fetchone()
    assert row is not None
    if row[0] is None:
        return False, [], {}
    migrations, repeatables_table = _qualified(conn, row[0]), row[1] and _qualified(conn, row[1])
    applied = [
        AppliedMigration(*r)
        for r in conn.execute(
            f"select version, filename, sha256, applied_at, applied_by, duration_ms from {migrations} order by version"
        ).fetchall()
    ]
    repeatables: dict[str, tuple[str, str | None]] = {}
    if repeatables_table:
        for name, sha, schema_version in conn.execute(
            f"select filename, sha256, schema_version from {repeatables_table}"
        ).fetchall():
            repeatables[name] = (sha, schema_version)
    return True, applied, repeatables


def _qualified(conn: psycopg.Connection[Any], regclass: Any) -> str:
    """A table name as found by to_regclass, schema-qualified and quoted (the bookkeeping tables' two homes)."""
    row = conn.execute(
        "select quote_ident(n.nspname) || '.' || quote_ident(c.relname) from pg_class as c"
        " join pg_namespace as n on n.oid = c.relnamespace where c.oid = %s::regclass",
        (str(regclass),),
    ).fetchone()
    assert row is not None
    return str(row[0])


def _check_target(target: str | None, versioned: list[SqlFile], applied: list[AppliedMigration]) -> str | None:
    if target is None:
        return None
    target = target.zfill(4)
    known = [f.version for f in versioned]
    if target not in known:
        raise MigrationError(f"--target {target}: no such version (known: {', '.join(v for v in known if v)})")
    if applied and applied[-1].version > target:
        raise MigrationError(
            f"--target {target}: the database is already at version {applied[-1].version}; "
            "regate-db does not migrate down"
        )
    return target


def _compare(
    versioned: list[SqlFile],
    repeatables: list[SqlFile],
    applied: list[AppliedMigration],
    recorded: dict[str, tuple[str, str | None]],
    target: str | None,
) -> tuple[list[SqlFile], bool, list[Drift]]:
    """Pending versioned files, whether the repeatables must be re-applied, and the drift."""
    files = {f.version: f for f in versioned}
    drift = [
        Drift(a.filename, a.sha256, files[a.version].sha256 if a.version in files else None)
        for a in applied
        if a.version not in files or files[a.version].sha256 != a.sha256
    ]
    done = {a.version for a in applied}
    pending = [f for f in versioned if f.version not in done and (target is None or (f.version or "") <= target)]
    schema_version = applied[-1].version if applied else None
    current = {f.filename: f.sha256 for f in repeatables}
    stale = {name: sha for name, (sha, _) in recorded.items()} != current or any(
        version != schema_version for _, version in recorded.values()
    )
    return pending, stale, drift


def make_plan(conn: psycopg.Connection[Any], source: Source | None = None, target: str | None = None) -> Plan:
    """Compare the database with the files, changing nothing."""
    source = source or default_source()
    versioned = source.versioned()
    repeatables = source.repeatable()
    try:
        with _unprepared(conn):
            num, text = check_server(conn)
            installed, applied, recorded = _read_state(conn)
    finally:
        if not conn.autocommit:
            conn.rollback()
    target = _check_target(target, versioned, applied)
    pending, stale, drift = _compare(versioned, repeatables, applied, recorded, target)
    return Plan(
        server_version=text,
        server_version_num=num,
        installed=installed,
        applied=applied,
        pending=pending,
        repeatables=repeatables,
        repeatables_stale=stale,
        drift=drift,
        target=target,
        latest=versioned[-1].version if versioned else None,
    )


def _lock(conn: psycopg.Connection[Any], owner: str | None = None) -> None:
    """Serialise with every other run (for the current transaction), then bound waits on table locks; with
    ``owner``, act as that role for the rest of the transaction."""
    conn.execute("select pg_catalog.pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    if owner:
        conn.execute(psycopg.sql.SQL("set local role {}").format(psycopg.sql.Identifier(owner)))
    timeout = os.environ.get("REGATE_MIGRATE_LOCK_TIMEOUT") or MIGRATION_LOCK_TIMEOUT
    conn.execute("select pg_catalog.set_config('lock_timeout', %s, true)", (timeout,))


def _run_sql(conn: psycopg.Connection[Any], f: SqlFile) -> float:
    """Execute a whole file (no parameters: psycopg must not parse the % of RAISE); milliseconds taken."""
    started = time.perf_counter()
    try:
        conn.execute(f.text.encode("utf-8"))  # bytes: sent as is, never treated as a query template
    except psycopg.Error as exc:
        diag = exc.diag
        where = f" (at: {diag.context.strip().splitlines()[0]})" if diag.context else ""
        raise MigrationError(
            f"{f.filename} failed and was rolled back: {diag.message_primary or exc}{where} [SQLSTATE {exc.sqlstate}]"
        ) from exc
    return (time.perf_counter() - started) * 1000


def migrate(
    conn: psycopg.Connection[Any],
    source: Source | None = None,
    *,
    target: str | None = None,
    dry_run: bool = False,
    report: Reporter = _noop,
    owner: str | None = None,
    strict: bool = False,
    reapply: bool = False,
) -> MigrateResult:
    """Bring the database's regate schema up to date (or up to ``target``).

    ``conn`` must not be in a transaction; each step commits on its own. Raises :class:`DriftError` when an
    applied file was edited (nothing is changed), :class:`MigrationError` when a file fails (that file's
    transaction is rolled back; what was applied before stays). With ``owner`` every step runs as that role;
    without it, as the role that already owns schema regate (when that is not the session's own role), so that an
    upgrade never leaves objects owned by the wrong role. A schema owned by a superuser is reported as a warning,
    and refused with ``strict`` (nothing is changed). ``reapply`` re-applies the repeatable files even when none
    changed (after creating the roles migrate could not create, or to repair privileges). Server warnings (e.g. a
    role that could not be created) and what ``regate.security_problems()`` finds afterwards are passed to
    ``report``.
    """
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise MigrationError("migrate needs a connection outside a transaction: commit or roll back first")
    with _unprepared(conn):
        return _migrate(conn, source, target, dry_run, report, owner, strict, reapply)


def _migrate(
    conn: psycopg.Connection[Any],
    source: Source | None,
    target: str | None,
    dry_run: bool,
    report: Reporter,
    owner: str | None,
    strict: bool,
    reapply: bool,
) -> MigrateResult:
    source = source or default_source()
    plan = make_plan(conn, source, target)
    if plan.drift:
        raise DriftError("; ".join(d.describe() for d in plan.drift) + " (nothing was changed)")
    owner = owner or _existing_owner(conn)
    problem = owner_problem(conn, owner)
    if problem and strict:
        raise MigrationError(problem + " (--strict: nothing was changed)")
    if problem:
        report("WARNING: " + problem)
    if reapply and plan.repeatables and plan.reaches_latest:
        plan.repeatables_stale = True
    result = MigrateResult(plan)
    if dry_run:
        return result

    def forward(diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity_nonlocalized == "WARNING":
            report(f"WARNING: {diag.message_primary}" + (f" ({diag.message_hint})" if diag.message_hint else ""))

    conn.add_notice_handler(forward)
    try:
        _apply(conn, plan, result, owner, report, force=reapply)
    finally:
        conn.remove_notice_handler(forward)
    for found, fix in security_problems(conn):
        if "is owned by superuser" not in found:
            report(f"WARNING: {found} (fix: {fix})")
    return result


def _existing_owner(conn: psycopg.Connection[Any]) -> str | None:
    """The owner of schema regate when it is not the session's role (None before the first migrate). Raises
    :class:`MigrationError` when schema regate or regate_internal exists, owned by another role, without a regate-db
    installation in it (somebody made it first: installing there would hand them everything), or when the two
    schemas have different owners."""
    rows = conn.execute(
        "select n.nspname, pg_get_userbyid(n.nspowner), n.nspowner = (select oid from pg_roles where rolname ="
        " current_user), coalesce(to_regclass('regate_internal.schema_migrations'),"
        " to_regclass('regate.schema_migrations')) is not null"
        " from pg_namespace as n where n.nspname in ('regate', 'regate_internal') order by 1"
    ).fetchall()
    if not conn.autocommit:
        conn.rollback()
    owners = {name: (owner, mine, installed) for name, owner, mine, installed in rows}
    if len({o for o, _, _ in owners.values()}) > 1:
        raise MigrationError(
            "schemas regate and regate_internal have different owners ("
            + ", ".join(f"{n}: {o}" for n, (o, _, _) in sorted(owners.items()))
            + "): regate-db will not install into them (nothing was changed)"
        )
    for name, (owner, mine, installed) in owners.items():
        if not mine and not installed:
            raise MigrationError(
                f"schema {name} exists, owned by {owner}, and holds no regate-db installation: regate-db will not"
                " install into a schema another role made (drop it, or migrate as its owner); nothing was changed"
            )
    owner, mine, _ = owners.get("regate", (None, True, False))
    return None if mine else owner


def security_problems(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """``regate.security_problems()``: what weakens the installation's boundary, with the fix; empty when the
    schema predates it or the session may not ask (it is admin-only)."""
    try:
        with conn.transaction():
            row = conn.execute("select to_regprocedure('regate.security_problems()') is not null").fetchone()
            if not row or not row[0]:
                return []
            return [(str(p), str(f)) for p, f in conn.execute("select * from regate.security_problems()").fetchall()]
    except psycopg.errors.InsufficientPrivilege:
        return []


def owner_problem(conn: psycopg.Connection[Any], owner: str | None = None) -> str | None:
    """Why the owner of schema regate (or, before the first migrate, the role that would become it) is unsafe, or
    None: a superuser owner makes every SECURITY DEFINER function of regate-db run as a superuser."""
    row = conn.execute(
        "select r.rolname, r.rolsuper from pg_catalog.pg_roles as r where r.oid = coalesce("
        " (select n.nspowner from pg_catalog.pg_namespace as n where n.nspname = 'regate'),"
        " (select x.oid from pg_catalog.pg_roles as x where x.rolname = coalesce(%s, current_user)))",
        (owner,),
    ).fetchone()
    if not conn.autocommit:
        conn.rollback()
    if row is None or not row[1]:
        return None
    return (
        f"schema regate is owned by superuser {row[0]}: regate-db's SECURITY DEFINER functions run as that "
        "superuser. Install as a dedicated NOLOGIN owner instead (create role regate_owner nologin; grant "
        "create on database to it; regate-db migrate --owner regate_owner; see docs/security.md)"
    )


def _apply(
    conn: psycopg.Connection[Any],
    plan: Plan,
    result: MigrateResult,
    owner: str | None,
    report: Reporter,
    *,
    force: bool = False,
) -> None:
    with conn.transaction():
        _lock(conn, owner)
        conn.execute(BOOTSTRAP_SQL.encode())

    for f in plan.pending:
        with conn.transaction():
            _lock(conn, owner)
            row = conn.execute(
                "select sha256 from regate_internal.schema_migrations where version = %s", (f.version,)
            ).fetchone()
            if row is not None:  # another run applied it while we waited for the lock
                if row[0] != f.sha256:
                    raise DriftError(
                        f"{f.filename} was applied concurrently with another checksum: recorded sha256 "
                        f"{row[0]}, file sha256 {f.sha256}"
                    )
                report(f"{f.filename}: already applied by a concurrent run")
                continue
            report(f"applying {f.filename} ...")
            ms = _run_sql(conn, f)
            conn.execute(
                "insert into regate_internal.schema_migrations (version, filename, sha256, duration_ms)"
                " values (%s, %s, %s, %s)",
                (f.version, f.filename, f.sha256, ms),
            )
        result.applied.append(f.filename)
        report(f"applied {f.filename} in {ms:.0f} ms")

    if not plan.reaches_latest:
        if plan.repeatables:
            report(f"repeatable files not applied: --target {plan.target} stops before the latest version")
        return
    with conn.transaction():
        _lock(conn, owner)
        # Re-read under the lock: a concurrent run may have re-applied them already.
        _, applied, recorded = _read_state(conn)
        _, stale, _ = _compare([], plan.repeatables, applied, recorded, None)
        stale = stale or force
        schema_version = applied[-1].version if applied else None
        if plan.repeatables and stale:
            report(f"applying {len(plan.repeatables)} repeatable files ...")
            conn.execute("delete from regate_internal.schema_repeatables")
            for f in plan.repeatables:
                ms = _run_sql(conn, f)
                conn.execute(
                    "insert into regate_internal.schema_repeatables (filename, sha256, schema_version, duration_ms)"
                    " values (%s, %s, %s, %s)",
                    (f.filename, f.sha256, schema_version, ms),
                )
                report(f"applied {f.filename} in {ms:.0f} ms")
            result.repeatables_applied = True
