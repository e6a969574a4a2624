"""The migration runner against real PostgreSQL: order, idempotence, drift, faults, concurrency, upgrades."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from regate_db.errors import DriftError, MigrationError, UnsupportedServerError
from regate_db.migrate import check_server, make_plan, migrate
from regate_db.resources import Source, default_source
from tests.catalog import snapshot
from tests.helpers import REPO


class Tree:
    """A private copy of migrations/ and sql/ that a test may extend or edit."""

    def __init__(self, root: Path) -> None:
        self.migrations = root / "migrations"
        self.sql = root / "sql"
        shutil.copytree(REPO / "migrations", self.migrations)
        shutil.copytree(REPO / "sql", self.sql)

    @property
    def source(self) -> Source:
        return Source.from_dirs(self.migrations, self.sql)

    def next_version(self) -> str:
        return f"{max(int(p.name[:4]) for p in self.migrations.glob('*.sql')) + 1:04d}"

    def add_migration(self, name: str, sql: str) -> Path:
        path = self.migrations / f"{self.next_version()}_{name}.sql"
        path.write_text(textwrap.dedent(sql))
        return path


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


def recorded(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("select version, filename, sha256 from regate_internal.schema_migrations order by 1").fetchall()


def test_fresh_install_records_every_file_with_its_checksum(empty_db: str) -> None:
    source = default_source()
    with connect(empty_db) as conn:
        result = migrate(conn)
        assert result.applied == [f.filename for f in source.versioned()]
        assert result.repeatables_applied
        rows = conn.execute(
            "select version, filename, sha256, applied_by = current_user, duration_ms >= 0"
            " from regate_internal.schema_migrations order by version"
        ).fetchall()
        assert rows == [(f.version, f.filename, f.sha256, True, True) for f in source.versioned()]
        reps = conn.execute(
            "select filename, sha256, schema_version from regate_internal.schema_repeatables order by 1"
        ).fetchall()
        latest = source.versioned()[-1].version
        assert reps == [(f.filename, f.sha256, latest) for f in source.repeatable()]
        assert conn.execute("select regate.schema_version()").fetchone() == (latest,)


def test_second_run_is_a_no_op(empty_db: str) -> None:
    with connect(empty_db) as conn:
        migrate(conn)
        before = conn.execute("select applied_at from regate_internal.schema_repeatables").fetchall()
        messages: list[str] = []
        result = migrate(conn, report=messages.append)
        assert not result.changed
        assert [m for m in messages if not m.startswith("WARNING: schema regate is owned by superuser")] == []
        assert conn.execute("select applied_at from regate_internal.schema_repeatables").fetchall() == before


def test_versioned_files_run_in_order_each_in_its_own_transaction(empty_db: str, tree: Tree) -> None:
    tree.add_migration("first", "create table regate.t_first (id int);")
    bad = tree.add_migration(
        "second",
        """
        create table regate.t_second (id int);
        insert into regate.t_first values (1);
        select 1 / 0;
        """,
    )
    with connect(empty_db) as conn:
        with pytest.raises(MigrationError, match=rf"{bad.name} failed and was rolled back: division by zero"):
            migrate(conn, tree.source)
        # Everything before the failing file stays; nothing of the failing file does.
        versions = [r[1] for r in recorded(conn)]
        assert versions[-1].endswith("_first.sql")
        assert conn.execute("select to_regclass('regate.t_second')").fetchone() == (None,)
        assert conn.execute("select count(*) from regate.t_first").fetchone() == (0,)
        # The repeatables were not applied past a failure.
        assert conn.execute("select count(*) from regate_internal.schema_repeatables").fetchone() == (0,)
    bad.write_text("create table regate.t_second (id int);\n")
    with connect(empty_db) as conn:
        result = migrate(conn, tree.source)
        assert result.applied == [bad.name]
        assert result.repeatables_applied


def test_edited_applied_file_is_refused_naming_file_and_checksums(empty_db: str, tree: Tree) -> None:
    first = tree.add_migration("first", "create table regate.t_first (id int);")
    with connect(empty_db) as conn:
        migrate(conn, tree.source)
    old_sha = hashlib.sha256(first.read_bytes()).hexdigest()
    first.write_text("create table regate.t_first (id bigint);\n")
    new_sha = hashlib.sha256(first.read_bytes()).hexdigest()
    pending = tree.add_migration("later", "create table regate.t_later (id int);")
    with connect(empty_db) as conn:
        before = snapshot(conn), recorded(conn)
        with pytest.raises(DriftError) as err:
            migrate(conn, tree.source)
        message = str(err.value)
        assert first.name in message and old_sha in message and new_sha in message
        assert "nothing was changed" in message
        assert (snapshot(conn), recorded(conn)) == before
        assert pending.name not in [r[1] for r in recorded(conn)]
        plan = make_plan(conn, tree.source)
        assert [d.filename for d in plan.drift] == [first.name]


def test_applied_file_missing_from_installation_is_drift(empty_db: str, tree: Tree) -> None:
    extra = tree.add_migration("from_the_future", "create table regate.t_future (id int);")
    with connect(empty_db) as conn:
        migrate(conn, tree.source)
    extra.unlink()
    with connect(empty_db) as conn, pytest.raises(DriftError, match=r"does not ship it.*upgrade regate-db"):
        migrate(conn, tree.source)


def test_changed_repeatable_file_is_reapplied_alone(empty_db: str, tree: Tree) -> None:
    with connect(empty_db) as conn:
        migrate(conn, tree.source)
        (tree.sql / "999_extra.sql").write_text(
            "create or replace function regate_internal._extra() returns int language sql security invoker"
            " as $$ select 1 $$;\n"
        )
        result = migrate(conn, tree.source)
        assert result.applied == [] and result.repeatables_applied
        assert conn.execute("select regate_internal._extra()").fetchone() == (1,)
        assert not migrate(conn, tree.source).changed


def test_new_version_reapplies_repeatables(empty_db: str, tree: Tree) -> None:
    with connect(empty_db) as conn:
        migrate(conn, tree.source)
        tree.add_migration("more", "create table regate.t_more (id int);")
        result = migrate(conn, tree.source)
        assert result.repeatables_applied
        versions = conn.execute("select distinct schema_version from regate_internal.schema_repeatables").fetchall()
        assert versions == [(tree.source.versioned()[-1].version,)]


def test_target_stops_there_and_skips_repeatables(empty_db: str, tree: Tree) -> None:
    tree.add_migration("first", "create table regate.t_first (id int);")
    second = tree.add_migration("second", "create table regate.t_second (id int);")
    first_version = tree.source.versioned()[-2].version
    with connect(empty_db) as conn:
        messages: list[str] = []
        result = migrate(conn, tree.source, target=first_version, report=messages.append)
        assert second.name not in result.applied
        assert recorded(conn)[-1][0] == first_version
        assert not result.repeatables_applied
        assert any("repeatable files not applied" in m for m in messages)
        with pytest.raises(MigrationError, match="no such version"):
            migrate(conn, tree.source, target="9999")
        migrate(conn, tree.source)
        with pytest.raises(MigrationError, match="does not migrate down"):
            migrate(conn, tree.source, target=first_version)


def test_dry_run_changes_nothing(empty_db: str) -> None:
    with connect(empty_db) as conn:
        result = migrate(conn, dry_run=True)
        assert [f.filename for f in result.plan.pending] == [f.filename for f in default_source().versioned()]
        assert conn.execute("select to_regnamespace('regate')").fetchone() == (None,)


def test_misnamed_files_are_refused(tree: Tree) -> None:
    (tree.migrations / "7_oops.sql").write_text("select 1;")
    with pytest.raises(MigrationError, match=r"'7_oops.sql' is misnamed: expected NNNN_description.sql"):
        tree.source.versioned()
    (tree.migrations / "7_oops.sql").unlink()
    (tree.migrations / "0001_duplicate.sql").write_text("select 1;")
    with pytest.raises(MigrationError, match="share version 0001"):
        tree.source.versioned()


class _OldServer:
    """Answers the version query like PostgreSQL 14 would, and records any other statement."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, query: str, *args: Any) -> Any:
        self.statements.append(query)
        outer = self

        class _Cursor:
            def fetchone(self) -> tuple[int, str]:
                assert "server_version_num" in outer.statements[-1]
                return (140012, "14.12")

        return _Cursor()


def test_server_older_than_15_is_refused_before_any_change() -> None:
    # No PostgreSQL 14 is installable on these machines, so the version answer is simulated; the check is the
    # first statement migrate sends (see test_old_server_check_comes_first).
    fake = _OldServer()
    with pytest.raises(UnsupportedServerError, match=r"PostgreSQL 14.12 is not supported: .*15 or newer"):
        check_server(fake)  # type: ignore[arg-type]
    assert len(fake.statements) == 1


def test_old_server_check_comes_first(empty_db: str) -> None:
    with connect(empty_db) as conn:
        original = conn.execute
        statements: list[str] = []

        def spy(query: Any, *args: Any, **kwargs: Any) -> Any:
            statements.append(query.decode() if isinstance(query, bytes) else str(query))
            return original(query, *args, **kwargs)

        conn.execute = spy  # type: ignore[method-assign]
        migrate(conn)
        assert "server_version_num" in statements[0]
        assert not any("create" in s.lower() for s in statements[:2])


def _migrate_script(source: Source | None = None) -> str:
    src = "None"
    if source is not None:
        src = f"Source.from_dirs({str(source.migrations)!r}, {str(source.sql)!r})"
    return textwrap.dedent(
        f"""
        import sys, psycopg
        from regate_db.migrate import migrate
        from regate_db.resources import Source
        with psycopg.connect(sys.argv[1]) as conn:
            migrate(conn, {src})
        """
    )


def test_ten_concurrent_processes_all_succeed_and_equal_one_run(
    empty_db: str, new_database: Any, cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    procs = [
        subprocess.Popen(
            [*regate_cmd, "--dsn", empty_db, "migrate"],
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(10)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 10, outputs
    single = new_database()
    with connect(single) as conn:
        migrate(conn)
        expected = snapshot(conn), recorded(conn)
    with connect(empty_db) as conn:
        assert (snapshot(conn), recorded(conn)) == expected
        counts = conn.execute(
            "select count(*), count(distinct version) from regate_internal.schema_migrations"
        ).fetchone()
        assert counts is not None and counts[0] == counts[1]
    # Every file was applied by exactly one of the processes (runs interleave file by file, never twice).
    everything = "".join(outputs)
    for f in default_source().versioned() + default_source().repeatable():
        assert everything.count(f"applied {f.filename} in ") == 1, f.filename
    assert sum("nothing to do" in out for out in outputs) >= 1


def test_run_killed_in_the_middle_leaves_no_half_applied_version(empty_db: str, tree: Tree) -> None:
    slow = tree.add_migration(
        "slow",
        """
        create table regate.t_slow (id int);
        insert into regate.t_slow values (1);
        select pg_sleep(60);
        """,
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _migrate_script(tree.source), empty_db], env=env)
    try:
        with psycopg.connect(empty_db, autocommit=True) as watcher:
            deadline = time.monotonic() + 60
            backend = None
            while backend is None and time.monotonic() < deadline:
                row = watcher.execute(
                    "select pid from pg_stat_activity where query like '%pg_sleep(60)%' and pid <> pg_backend_pid()"
                ).fetchone()
                backend = row[0] if row else None
                time.sleep(0.05)
            assert backend is not None, "the slow migration never started"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            # The server only notices a dead client when it next talks to it; end the orphan like a DBA would.
            watcher.execute("select pg_terminate_backend(%s)", (backend,))
    finally:
        proc.kill()
    with connect(empty_db) as conn:
        assert slow.name not in [r[1] for r in recorded(conn)]
        assert conn.execute("select to_regclass('regate.t_slow')").fetchone() == (None,)
    slow.write_text("create table regate.t_slow (id int);\n")
    with connect(empty_db) as conn:
        result = migrate(conn, tree.source)
        assert result.applied == [slow.name]
        assert result.repeatables_applied


def test_upgrade_from_every_earlier_version_equals_fresh_install(new_database: Any) -> None:
    """Covers every migration that will ever be added: no edit needed when one is."""
    versions = [f.version for f in default_source().versioned()]
    fresh = new_database()
    with connect(fresh) as conn:
        migrate(conn)
        expected = snapshot(conn)
    # One release at a time: stop at every version in turn, then go to the latest.
    stepwise = new_database()
    with connect(stepwise) as conn:
        for version in versions:
            migrate(conn, target=version)
        migrate(conn)
        assert snapshot(conn) == expected
    # From every earlier version straight to the latest.
    for version in versions[:-1]:
        db = new_database()
        with connect(db) as conn:
            migrate(conn, target=version)
            migrate(conn)
            assert snapshot(conn) == expected, f"upgrade from {version} differs from a fresh install"
