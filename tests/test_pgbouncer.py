"""regate-db through a transaction pooler: a private PgBouncer (pool_mode = transaction, 2 server connections per
database) in front of the session's server (tests/pgbouncer.py).

Behind such a pooler, consecutive transactions of one client may run on different server connections, and a server
connection serves many clients in turn without being reset. What a client leaves in its session (a prepared
statement, a session-level SET, a LISTEN) stays with the server connection, and the next transaction of the same
client may not find it. psycopg 3 prepares a query on the server once it ran 5 times (``_pg3_0``, ``_pg3_1``, ...,
counting from 0 on every connection): the user-reported failure of ``regate-db migrate`` was
``prepared statement "_pg3_0" already exists``. Every connection regate-db opens sets ``prepare_threshold=None``,
and the migration runner never prepares, whatever connection it is given.

To make that failure certain rather than a matter of timing, tests first make the pool look like one that other
psycopg clients used: :func:`leave_prepared_statements` prepares ``_pg3_0`` on every server connection of the
database's pool. :func:`elsewhere` pins a chosen server connection to a holder, so that a client's next
transaction runs on another one.

Without pgbouncer: as root it is installed (scripts/pgbouncer.sh), otherwise these tests skip, or fail with
REGATE_REQUIRE_PGBOUNCER=1 (.ci/run sets it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, errors
from psycopg.types.json import Jsonb

import regate_db.migrate as migrate_mod
from regate_db import connect as connect_mod
from regate_db.migrate import migrate
from regate_db.resources import default_source
from tests import test_upgrade as upgrade
from tests.catalog import snapshot
from tests.conftest import ServerInfo
from tests.helpers import REPO, run
from tests.pgbouncer import PgBouncer, PgBouncerUnavailable, backend_pid, find_pgbouncer, start_pgbouncer
from tests.released import releases
from tests.test_watch import Watch

Conn = psycopg.Connection[Any]

POOL_SIZE = 2
REQUIRE = os.environ.get("REGATE_REQUIRE_PGBOUNCER", "") not in ("", "0")
MODEL = "pooled-bert"


@pytest.fixture(scope="module")
def bouncer(pg_server: ServerInfo) -> Iterator[PgBouncer]:
    """A private PgBouncer in transaction mode in front of the session's server."""
    try:
        binary = find_pgbouncer()
    except PgBouncerUnavailable as exc:
        if REQUIRE:
            pytest.fail(f"REGATE_REQUIRE_PGBOUNCER is set, but PgBouncer is not available: {exc}")
        pytest.skip(f"PgBouncer is not available: {exc}")
    b = start_pgbouncer(
        pg_server.host, pg_server.port, pg_server.user, pg_server.password, pool_size=POOL_SIZE, binary=binary
    )
    try:
        yield b
    finally:
        b.stop()


def _release(bouncer: PgBouncer, dsn: str) -> None:
    """Close the pooler's server connections to the database of ``dsn`` (before the database is dropped)."""
    dbname = conninfo.conninfo_to_dict(dsn)["dbname"]
    with contextlib.suppress(psycopg.Error), psycopg.connect(bouncer.dsn("pgbouncer"), autocommit=True) as admin:
        admin.execute(f"kill {dbname}".encode())
        admin.execute(f"resume {dbname}".encode())


@pytest.fixture
def pooled(bouncer: PgBouncer, db_dsn: str) -> Iterator[str]:
    """The DSN of the test's migrated database, through the pooler."""
    yield bouncer.through(db_dsn)
    _release(bouncer, db_dsn)


@pytest.fixture
def pooled_empty(bouncer: PgBouncer, empty_db: str) -> Iterator[str]:
    """The DSN of a new, empty database, through the pooler."""
    yield bouncer.through(empty_db)
    _release(bouncer, empty_db)


# --- making the pool look used --------------------------------------------------------------------------------


def leave_prepared_statements(dsn: str, pool_size: int = POOL_SIZE) -> set[int]:
    """What other psycopg clients of the pooler leave behind: ``_pg3_0`` prepared on every server connection of
    the database's pool. ``pool_size`` plain clients each hold a transaction (so each has a server connection of
    its own) and prepare a statement, as psycopg does for a query that ran 5 times. The backends' pids."""
    clients = [psycopg.connect(dsn) for _ in range(pool_size)]
    try:
        pids = set()
        for c in clients:
            left = "select count(*) from pg_prepared_statements where name = '_pg3_0'"
            if c.execute(left, prepare=False).fetchone() == (0,):  # not left there by an earlier call
                c.execute("select %s::int", (1,), prepare=True)  # the connection's first prepared statement: _pg3_0
            assert c.execute(left, prepare=False).fetchone() == (1,)
            pids.add(backend_pid(c))
        assert len(pids) == pool_size, f"{pool_size} clients in transactions should hold {pool_size} backends: {pids}"
        return pids
    finally:
        for c in clients:
            c.commit()
            c.close()


@contextlib.contextmanager
def _pinned(dsn: str, pid: int, *, hold: bool, pool_size: int = POOL_SIZE) -> Iterator[None]:
    holders = [psycopg.connect(dsn, prepare_threshold=None) for _ in range(pool_size)]
    try:
        pids = [backend_pid(h) for h in holders]  # each in a transaction: all of the pool is held
        assert pid in pids, f"backend {pid} is not in the pool: {pids}"
        for h, p in zip(holders, pids, strict=True):
            if (p == pid) != hold:
                h.commit()  # released
        yield
    finally:
        for h in holders:
            h.rollback()
            h.close()


def elsewhere(dsn: str, pid: int) -> contextlib.AbstractContextManager[None]:
    """Meanwhile, the server connection of backend ``pid`` is held by another client (in a transaction): the next
    transaction of any other client runs on another server connection of the pool."""
    return _pinned(dsn, pid, hold=True)


def on(dsn: str, pid: int) -> contextlib.AbstractContextManager[None]:
    """Meanwhile, every server connection of the pool but the one of backend ``pid`` is held by other clients: the
    next transaction of any other client runs on that one."""
    return _pinned(dsn, pid, hold=False)


def test_without_pgbouncer_a_normal_user_is_told_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No pgbouncer and no root: the reason the tests skip (or fail, with REGATE_REQUIRE_PGBOUNCER) says how to get
    it; a PGBOUNCER that is not a binary is named."""
    from tests import pgbouncer as harness

    monkeypatch.delenv("PGBOUNCER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(harness, "DEBIAN_BINARY", str(tmp_path / "pgbouncer"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PgBouncerUnavailable, match=r"needs root \(apt-get install pgbouncer, or set PGBOUNCER"):
        find_pgbouncer()
    monkeypatch.setenv("PGBOUNCER", "/nonexistent/pgbouncer")
    with pytest.raises(PgBouncerUnavailable, match="PGBOUNCER=/nonexistent/pgbouncer is not an executable file"):
        find_pgbouncer()


# --- the pooler ------------------------------------------------------------------------------------------------


def test_the_pooler_shares_server_connections_between_clients(bouncer: PgBouncer, pooled: str) -> None:
    """The harness is a real transaction pooler: three clients run on two server processes, and a server process
    serves more than one client."""
    clients = [psycopg.connect(pooled, autocommit=True, prepare_threshold=None) for _ in range(3)]
    try:
        seen: dict[int, set[int]] = {}  # backend pid -> the clients that ran on it

        def note(i: int, in_transaction: bool) -> None:
            if in_transaction:
                clients[i].execute("begin")
            seen.setdefault(backend_pid(clients[i]), set()).add(i)

        note(0, True)  # client 0 holds a server connection ...
        note(1, True)  # ... client 1 the other one
        for i in (0, 1):
            clients[i].execute("commit")
        note(2, True)  # client 2 gets one of them ...
        note(0, True)  # ... and client 0 the other
        for i in (0, 2):
            clients[i].execute("commit")
        assert len(seen) == POOL_SIZE, seen
        assert any(len(users) > 1 for users in seen.values()), f"no server process served two clients: {seen}"
    finally:
        for c in clients:
            c.close()
    pools = {(p["database"], p["user"]): p for p in bouncer.show("pools")}
    pool = pools[(conninfo.conninfo_to_dict(pooled)["dbname"], bouncer.user)]
    assert pool["pool_mode"] == "transaction"
    assert pool["sv_active"] + pool["sv_idle"] + pool["sv_used"] + pool["sv_tested"] + pool["sv_login"] <= POOL_SIZE
    config = {r["key"]: r["value"] for r in bouncer.show("config")}
    assert config["pool_mode"] == "transaction"
    if "max_prepared_statements" in config:  # PgBouncer 1.21+ could track prepared statements: it must not
        assert config["max_prepared_statements"] == "0"


def test_session_state_stays_with_the_server_connection(pooled: str) -> None:
    """Why regate-db keeps no session state: a session-level SET is what the next client of that server connection
    finds, while SET LOCAL ends with its transaction."""
    with (
        psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as a,
        psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as b,
    ):
        with a.transaction():
            a.execute("set work_mem = '7MB'")
            a.execute("set local statement_timeout = '7s'")
            pid = backend_pid(a)
        with on(pooled, pid):
            assert backend_pid(b) == pid
            assert b.execute("show work_mem").fetchone() == ("7MB",)
            assert b.execute("show statement_timeout").fetchone() == ("0",)
            b.execute("reset work_mem")


def test_listen_does_not_survive_the_pooler(
    bouncer: PgBouncer, pg_server: ServerInfo, pooled: str, db_dsn: str
) -> None:
    """A notification reaches a listener connected to PostgreSQL directly or through PgBouncer in session mode, not
    one connected through the transaction pooler (its LISTEN stays with a server connection that serves other
    clients)."""
    session_mode = start_pgbouncer(
        pg_server.host,
        pg_server.port,
        pg_server.user,
        pg_server.password,
        binary=bouncer.binary,
        extra={"pool_mode": "session"},
    )
    try:
        with (
            psycopg.connect(db_dsn, autocommit=True) as direct,
            psycopg.connect(session_mode.through(db_dsn), autocommit=True) as session,
            psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as through,
            psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as notifier,
        ):
            for listener in (direct, session, through):
                listener.execute("listen regate_pooler_test")
            notifier.execute("notify regate_pooler_test, 'hello'")
            assert [n.payload for n in direct.notifies(timeout=5, stop_after=1)] == ["hello"]
            assert [n.payload for n in session.notifies(timeout=5, stop_after=1)] == ["hello"]
            assert list(through.notifies(timeout=1, stop_after=1)) == []
    finally:
        session_mode.stop()


# --- what fails by default, what regate-db does instead ------------------------------------------------------


def _gate_statements(conn: Conn, job_id: uuid.UUID, steps: int = 8) -> str | None:
    """The gate as a training script drives it: log ``steps`` metric rows (one insert each: psycopg prepares the
    insert after 5), then complete the job; its validation_status."""
    for step in range(1, steps + 1):
        conn.execute(
            "insert into regate.local_training_metrics (job_id, step, eval_loss, metrics) values (%s, %s, %s, %s)",
            (job_id, step * 100, 0.9 - step * 0.01, Jsonb({"accuracy": 0.7 + step * 0.001})),
        )
    row = conn.execute(
        "update regate.local_training_jobs set status = 'completed' where id = %s returning validation_status",
        (job_id,),
    ).fetchone()
    assert row is not None
    return str(row[0])


def _baseline_and_job(conn: Conn, block: bool = True) -> uuid.UUID:
    conn.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'eval_loss', baseline_value => 0.4,"
        " threshold => 0.5)",
        (MODEL,),
    )
    row = conn.execute(
        "insert into regate.local_training_jobs (model_name, status, config) values (%s, 'running', %s) returning id",
        (MODEL, Jsonb({"blockOnCriticalFailures": block})),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def test_plain_psycopg_fails_where_another_client_left_its_prepared_statements(pooled: str) -> None:
    """psycopg 3 with its default prepare_threshold (5): the 6th metric insert prepares ``_pg3_0`` on a server
    connection where another client's ``_pg3_0`` is still there."""
    leave_prepared_statements(pooled)
    with psycopg.connect(pooled, autocommit=True) as plain:
        job_id = _baseline_and_job(plain)
        with pytest.raises(errors.DuplicatePreparedStatement, match='prepared statement "_pg3_0" already exists'):
            _gate_statements(plain, job_id)


def test_plain_psycopg_fails_when_its_next_transaction_runs_on_another_server_connection(pooled: str) -> None:
    """psycopg 3 with its default prepare_threshold: the insert it prepared on one server connection is missing on
    the one its next transaction runs on."""
    with psycopg.connect(pooled, autocommit=True) as plain:
        job_id = _baseline_and_job(plain)
        with plain.transaction():  # one transaction, so one server connection: it prepares the insert there
            _ = [plain.execute("select %s::int", (i,)) for i in range(6)]
            prepared = plain.execute("select name from pg_prepared_statements").fetchall()
            assert prepared == [("_pg3_0",)]
            pid = backend_pid(plain)
        with elsewhere(pooled, pid), pytest.raises(errors.InvalidSqlStatementName, match='"_pg3_0" does not exist'):
            plain.execute("select %s::int", (7,))
        assert _gate_statements(plain, job_id, steps=1) == "blocked"  # statements it never prepared still work


def test_the_packages_connections_run_the_gate_behind_the_pooler(pooled: str) -> None:
    """The same statements on connect_mod.connect(): nothing is prepared on the server, on a pool where other
    clients left ``_pg3_0`` everywhere and while the server connection changes between transactions."""
    pids = leave_prepared_statements(pooled)
    with connect_mod.connect(pooled, autocommit=True) as conn:
        job_id = _baseline_and_job(conn)
        with conn.transaction():
            _ = [conn.execute("select %s::int", (i,)) for i in range(10)]
            row = conn.execute("select count(*) from pg_prepared_statements where name <> '_pg3_0'").fetchone()
            assert row == (0,)
            pid = backend_pid(conn)
        with elsewhere(pooled, pid):
            assert backend_pid(conn) in pids - {pid}
            assert _gate_statements(conn, job_id, steps=12) == "blocked"
        row = conn.execute(
            "select count(*), max(step) from regate.local_training_metrics where job_id = %s", (job_id,)
        ).fetchone()
        assert row == (12, 1200)


def test_the_python_client_behind_the_pooler(pooled: str) -> None:
    """regate_db.Client and AsyncClient on DSNs of the pooler, where other clients left ``_pg3_0`` everywhere:
    many batches and many statements, across server connections, and the verdict of the completing UPDATE."""
    import asyncio

    from regate_db import AsyncClient, Client

    leave_prepared_statements(pooled)
    with connect_mod.connect(pooled, autocommit=True) as conn:
        _baseline_and_job(conn)
    with Client(pooled, buffer_size=3) as client:
        job = client.create_job(MODEL, config={"blockOnCriticalFailures": True})
        for step in range(1, 31):
            client.log_metrics(job, step, eval_loss=1.0 - step / 100)
        verdict = client.complete_job(job)
        assert (verdict.status, verdict.blocked) == ("blocked", True)
        assert client.verdict(job).id == verdict.id

    async def main() -> str:
        async with await AsyncClient.connect(pooled, buffer_size=2) as aclient:
            ajob = await aclient.create_job(MODEL)
            for step in range(1, 21):
                await aclient.log_metrics(ajob, step, eval_loss=0.6 - step / 100)
            return (await aclient.complete_job(ajob)).status

    assert asyncio.run(main()) == "passed"


def _doc_example() -> str:
    """The psycopg example of docs/poolers.md (its one ```python block)."""
    text = (REPO / "docs" / "poolers.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)
    assert len(blocks) == 1, "docs/poolers.md should have one ```python example"
    assert "prepare_threshold=None" in blocks[0]
    return str(blocks[0])


def test_the_documented_client_settings_work_and_are_needed(pooled: str, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/poolers.md's psycopg example passes the gate through the pooler; without its prepare_threshold=None it
    fails as the page says."""
    example = _doc_example()
    leave_prepared_statements(pooled)
    exec(compile(example, "docs/poolers.md", "exec"), {"DSN": pooled})
    assert capsys.readouterr().out == "blocked\n"
    with pytest.raises(errors.DuplicatePreparedStatement, match='prepared statement "_pg3_0" already exists'):
        exec(compile(example.replace(", prepare_threshold=None", ""), "docs/poolers.md", "exec"), {"DSN": pooled})


# --- migrate ---------------------------------------------------------------------------------------------------


def _migrate_cli(cmd: list[str], env: dict[str, str], dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = run(cmd, env, "--dsn", dsn, "migrate", *args)
    assert proc.returncode == 0, f"regate-db migrate {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc


def test_the_original_failure_without_the_runners_protection(
    pooled_empty: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's report, reproduced: without the runner's own protection, a psycopg connection with default
    settings fails where the repeatable files are applied (their bookkeeping insert runs once per file)."""
    monkeypatch.setattr(migrate_mod, "_unprepared", lambda conn: contextlib.nullcontext())
    leave_prepared_statements(pooled_empty)
    with psycopg.connect(pooled_empty, autocommit=True) as plain:
        with pytest.raises(psycopg.Error, match='prepared statement "_pg3_0" already exists'):
            migrate(plain)
        row = plain.execute("select count(*) from regate_internal.schema_repeatables").fetchone()
        assert row == (0,), "the failed repeatables transaction was rolled back"


def test_migrate_on_a_plain_psycopg_connection_behind_the_pooler(pooled_empty: str) -> None:
    """migrate() never prepares, whatever the connection it is given; the caller's prepare_threshold is kept."""
    leave_prepared_statements(pooled_empty)
    with psycopg.connect(pooled_empty, autocommit=True) as plain:
        assert migrate(plain).repeatables_applied
        assert migrate(plain, reapply=True).repeatables_applied
        assert plain.prepare_threshold == 5


@pytest.mark.slow
def test_migrate_fresh_then_reapply_through_the_pooler(
    pooled_empty: str, empty_db: str, db: Conn, cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    """`regate-db migrate` through the pooler: up to a version (no repeatable files), then to the latest (pending
    files and the repeatable files), then the repeatable files alone (--reapply), then nothing to do; each run on a
    pool that other clients left ``_pg3_0`` on. The result equals a direct fresh install."""
    latest = default_source().versioned()[-1].version
    assert latest is not None
    earlier = f"{int(latest) - 1:04d}"
    runs: list[tuple[list[str], str]] = [
        (["--target", earlier], "repeatable files not applied"),
        ([], "repeatable files re-applied"),
        (["--reapply"], "0 migration(s) applied, repeatable files re-applied"),
        ([], "nothing to do: schema is up to date"),
    ]
    for args, expected in runs:
        leave_prepared_statements(pooled_empty)
        proc = _migrate_cli(regate_cmd, cli_env, pooled_empty, *args)
        assert expected in proc.stdout, proc.stdout
    status = run(regate_cmd, cli_env, "--dsn", pooled_empty, "status", "--exit-code")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "repeatable files: 20, up to date" in status.stdout or "up to date" in status.stdout
    with psycopg.connect(empty_db, autocommit=True) as direct:
        assert snapshot(direct) == snapshot(db)


@pytest.mark.slow
def test_concurrent_migrates_through_the_pooler(
    pooled_empty: str, empty_db: str, db: Conn, cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    """Four `regate-db migrate` processes at once through a pool of two server connections: all succeed, every file
    is applied exactly once, and the result equals a direct fresh install."""
    leave_prepared_statements(pooled_empty)
    procs = [
        subprocess.Popen(
            [*regate_cmd, "--dsn", pooled_empty, "migrate"],
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n---\n".join(outputs)
    everything = "".join(outputs)
    for f in default_source().versioned() + default_source().repeatable():
        assert everything.count(f"applied {f.filename} in ") == 1, f.filename
    with psycopg.connect(empty_db, autocommit=True) as direct:
        assert snapshot(direct) == snapshot(db)


V0_1_0 = [r for r in releases() if r.version == "v0.1.0"]


@pytest.mark.slow
@pytest.mark.skipif(not V0_1_0, reason="tests/releases/v0.1.0.tar.gz is missing")
def test_upgrade_from_v0_1_0_through_the_pooler(
    bouncer: PgBouncer,
    new_database: Callable[[], str],
    db: Conn,
    tmp_path: Path,
    cli_env: dict[str, str],
    regate_cmd: list[str],
) -> None:
    """A database installed and used with regate-db 0.1.0, upgraded by `regate-db migrate` through the pooler:
    the data is unchanged, the catalog equals a fresh install's, and the gate works through the pooler."""
    release = V0_1_0[0]
    direct_dsn = new_database()
    pooled = bouncer.through(direct_dsn)
    try:
        with psycopg.connect(direct_dsn, autocommit=True) as conn:
            release.migrate_function(tmp_path)(conn, release.extract(tmp_path))
            jobs = upgrade.write_data(conn)
            cols = upgrade.columns(conn)
            before = upgrade.read_rows(conn, cols)
            metrics_before = upgrade.final_metrics(conn, list(jobs.values()))

        leave_prepared_statements(pooled)
        proc = _migrate_cli(regate_cmd, cli_env, pooled)
        assert "repeatable files re-applied" in proc.stdout

        with psycopg.connect(direct_dsn, autocommit=True) as conn:
            changed = upgrade.differences(before, upgrade.read_rows(conn, cols), cols)
            assert not changed, "\n".join(changed)
            assert upgrade.final_metrics(conn, list(jobs.values())) == metrics_before
            assert snapshot(conn) == snapshot(db)
        with connect_mod.connect(pooled, autocommit=True) as conn:
            assert upgrade.complete(conn, jobs["running"])[0] == "passed"
            new_job = upgrade.job(conn)
            upgrade.log(conn, new_job, upgrade.REGRESSED)
            assert upgrade.complete(conn, new_job)[0] == "failed"
    finally:
        _release(bouncer, direct_dsn)


# --- the CLI ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_cli_through_the_pooler(
    pooled: str, cli_env: dict[str, str], regate_cmd: list[str], tmp_path: Path
) -> None:
    """Every kind of command that connects, through the pooler, on a pool that other clients left ``_pg3_0`` on:
    status, baseline create, gate, validate, show, history, deploy, watch --once."""
    leave_prepared_statements(pooled)

    def cli(*args: str, status: int = 0) -> str:
        proc = run(regate_cmd, cli_env, "--dsn", pooled, *args)
        assert proc.returncode == status, f"regate-db {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
        return proc.stdout

    assert "pending: none" in cli("status", "--exit-code")
    cli("baseline", "create", MODEL, "eval_loss", "--value", "0.4", "--threshold", "0.5")
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"eval_loss": 0.41}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"eval_loss": 0.9}))
    assert json.loads(cli("gate", MODEL, "--metrics", str(good), "--json"))["status"] == "passed"
    assert json.loads(cli("gate", MODEL, "--metrics", str(bad), "--json", status=1))["blocked"] is True

    with connect_mod.connect(pooled, autocommit=True) as conn:  # a training job, logged step by step
        row = conn.execute(
            "insert into regate.local_training_jobs (model_name, status, config) values (%s, 'running', %s)"
            " returning id",
            (MODEL, Jsonb({"blockOnCriticalFailures": True})),
        ).fetchone()
        assert row is not None
        job_id = str(row[0])
        for step in range(1, 8):
            conn.execute(
                "insert into regate.local_training_metrics (job_id, step, eval_loss, metrics) values (%s, %s, %s, %s)",
                (job_id, step, 0.45, Jsonb({"accuracy": 0.8})),
            )
        row = conn.execute(
            "update regate.local_training_jobs set status = 'completed' where id = %s returning validation_status",
            (job_id,),
        ).fetchone()
        assert row == ("passed",)
    assert json.loads(cli("validate", job_id, "--json"))["status"] == "passed"
    assert job_id[:8] in cli("show", job_id)
    assert MODEL in cli("history", "--model", MODEL)
    cli("deploy", job_id, "--env", "production")
    watched = cli("watch", "--once", "--since-id", "0", "--json")
    assert "blocked" in [json.loads(line)["kind"] for line in watched.splitlines()]


@pytest.mark.slow
def test_the_demo_through_the_pooler(pooled_empty: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    """`regate-db demo` (it migrates, then logs and completes jobs step by step) through the pooler."""
    leave_prepared_statements(pooled_empty)
    proc = run(regate_cmd, cli_env, "--dsn", pooled_empty, "demo")
    assert proc.returncode == 0, proc.stderr
    assert "regressed run: validation_status = blocked" in proc.stdout


@pytest.mark.slow
def test_watch_through_the_pooler_delivers_by_polling_and_says_why(
    pooled: str, db: Conn, cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    """LISTEN does not survive a transaction pooler. `regate-db watch` still delivers every alert (its poll
    re-reads the outbox), and once a poll runs on another server process than its LISTEN, it says why alerts come
    late."""
    w = Watch([*regate_cmd, "--dsn", pooled, "watch", "--poll", "0.2", "--backoff", "0.1", "--json"], cli_env)
    try:
        w.wait_for("the start", w.stderr_has("watch: waiting for alerts after #"))
        db.execute("select regate.set_policy(%s, enforce => true)", (MODEL,))  # alert policy_changed
        w.wait_for("the alert", lambda: len(w.out) >= 1)
        assert json.loads(w.out[0])["kind"] == "policy_changed"
        deadline = time.monotonic() + 30
        with psycopg.connect(pooled, prepare_threshold=None) as holder:
            # Hold a server connection now and then: watch's next poll then runs on the other one.
            while not any("a transaction pooler" in line for line in w.err) and time.monotonic() < deadline:
                backend_pid(holder)
                time.sleep(0.5)
                holder.commit()
                time.sleep(0.1)
        w.wait_for("the pooler warning", w.stderr_has("notifications do not arrive and alerts come by polling"))
    finally:
        w.stop()
