"""The Python client for training code: create a job, log its metrics, complete it, read its verdict.

    from regate_db import Client

    with Client("postgresql://trainer@db/ml") as client:
        job = client.create_job("sentiment-bert", version="2.1", config={"blockOnCriticalFailures": True})
        for step in range(1, 1001):
            client.log_metrics(job, step, train_loss=loss, accuracy=acc)   # buffered, sent in one statement per batch
        verdict = client.complete_job(job)          # the database's verdict, from the completing UPDATE
        if verdict.blocked:
            raise SystemExit(verdict.message)

The database decides everything (the gate is a trigger); the client only moves rows and reads results. It takes
a DSN (it then opens and owns one autocommit connection, pooler safe), a psycopg connection (every call runs in
``conn.transaction()``: committed at once on an idle connection, a savepoint inside yours), or a connection
pool (anything with a ``connection()`` context manager, e.g. ``psycopg_pool.ConnectionPool``).
:class:`AsyncClient` is the same over psycopg's async connections and pools.

Metric values are sent as the database expects them: ``nan``, ``inf`` and ``-inf`` become the double precision
values in the metric columns and the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` inside ``metrics``;
Python ints beyond a double's exact range are sent as JSON numbers, exactly. A value that is not a number is
refused by :meth:`Client.log_metrics` itself, before anything is buffered (:class:`InvalidMetricError`, naming the
metric and the step); every other rule (RG001, RG002 after completion, ...) is the database's and raises its
:class:`~regate_db.errors.GateError`.
"""

from __future__ import annotations

import math
import numbers
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from regate_db import release
from regate_db.errors import InvalidMetricError, JobNotFoundError, translate
from regate_db.release import Baseline, Check
from regate_db.release import Verdict as VerdictRecord

__all__ = [
    "METRIC_COLUMNS",
    "AsyncClient",
    "Check",
    "Client",
    "Verdict",
    "VerdictRecord",
    "metric_row",
]

#: The metric columns of ``regate.local_training_metrics``; every other metric goes into its ``metrics`` object.
METRIC_COLUMNS = ("epoch", "train_loss", "eval_loss", "perplexity", "learning_rate", "grad_norm")
_ROW_COLUMNS = ("job_id", "step", *METRIC_COLUMNS, "metrics")
# One statement per batch, whatever its size: the columns as arrays, unnested server-side. Not COPY: PostgreSQL
# refuses COPY FROM into a table with row-level security for every login but superusers and BYPASSRLS roles.
_INSERT_SQL = (
    "insert into regate.local_training_metrics ({}) select * from unnest("
    "%s::uuid[], %s::bigint[], {}, %s::jsonb[])".format(
        ", ".join(_ROW_COLUMNS), ", ".join("%s::float8[]" for _ in METRIC_COLUMNS)
    )
)


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """The rows as one list per column (the parameters of :data:`_INSERT_SQL`)."""
    return [list(column) for column in zip(*rows, strict=True)]


_CREATE_JOB_SQL = (
    "insert into regate.local_training_jobs (model_name, model_version, config, status, run_group, run_group_size)"
    " values (%s, %s, %s, 'running', %s, %s) returning id"
)
_COMPLETE_SQL = (
    "update regate.local_training_jobs set status = %s where id = %s"
    " returning id, status, validation_status, validation_result_id, model_name, model_version, run_group"
)
_VERDICT_BY_ID_SQL = release._VERDICT_SQL + " from regate.validation_results as r where r.id = %s"
_JOB_SQL = (
    "select j.id, j.status, j.validation_status, j.validation_result_id, j.model_name, j.model_version,"
    " j.run_group from regate.local_training_jobs as j where j.id = %s"
)

_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _json_number(name: str, step: int, value: Any) -> Any:
    """``value`` as the JSON the ``metrics`` object stores, or InvalidMetricError naming the metric."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidMetricError(
            f"metric {name} at step {step} must be a number (NaN and infinities included),"
            f" got {type(value).__name__} {value!r}"
        )
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        return _NON_FINITE[repr(number)]
    return number


def _column_number(name: str, step: int, value: Any) -> float | None:
    return None if value is None else float(_json_number(name, step, value))  # float("NaN"), float("-Infinity")


def metric_row(job_id: uuid.UUID | str, step: int, metrics: Mapping[str, Any]) -> tuple[Any, ...]:
    """One row of ``regate.local_training_metrics`` in :data:`_ROW_COLUMNS` order: the metric columns by name,
    every other metric in ``metrics``. Raises :class:`InvalidMetricError` for a step that is not a non-negative
    int or a value that is not a number. ``None`` values are left out (not logged)."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise InvalidMetricError(f"step must be a non-negative integer, got {step!r}")
    step = int(step)
    columns = [_column_number(name, step, metrics.get(name)) for name in METRIC_COLUMNS]
    extra = {
        str(name): _json_number(str(name), step, value)
        for name, value in metrics.items()
        if name not in METRIC_COLUMNS and value is not None
    }
    return (job_id, step, *columns, Jsonb(extra))


@dataclass(frozen=True)
class Verdict:
    """What the gate decided for a job (or for the metrics given to :meth:`Client.run_gate`).

    ``status`` is the job's ``validation_status``: ``passed``, ``warning``, ``failed``, ``blocked``, ``error``,
    ``not_run`` (gates off for this job; no verdict record), ``no_baselines`` (the model has no baselines, so
    nothing was checked; the job's column says ``passed``), or ``waiting`` while a run group waits for its
    other runs (the verdict comes with the group's last run). ``blocked`` is True exactly when the verdict blocks
    deployment. ``record`` is the row of ``regate.validation_results`` behind it, with every check.
    """

    job_id: uuid.UUID | None
    status: str
    blocked: bool
    checks: list[Check]
    record: VerdictRecord | None

    @classmethod
    def of_record(cls, record: VerdictRecord, validation_status: str | None = None) -> Verdict:
        status = validation_status or ("blocked" if record.blocked else record.status)
        if record.status == "no_baselines" and status == "passed":
            # The job's validation_status says passed (nothing failed), but nothing was checked either: a model
            # name without baselines (a typo?) must not read as a pass here.
            status = "no_baselines"
        return cls(record.job_id, status, record.blocked, record.checks, record)

    @property
    def id(self) -> int | None:
        """The id of the verdict record (``regate.validation_results.id``), None without one."""
        return self.record.id if self.record else None

    @property
    def failing(self) -> list[Check]:
        """The checks that did not pass."""
        return [c for c in self.checks if c.outcome != "passed"]

    @property
    def message(self) -> str:
        """One line for a person: the status and, when checks did not pass, what they say."""
        subject = f"job {self.job_id}" if self.job_id else "gate"
        if self.record is None:
            if self.status == "not_run":
                return f"{subject}: not validated (gates are off for this job)"
            return f"{subject}: waiting for the other runs of its run group"
        if self.status == "no_baselines":
            return (
                f"{subject}: no_baselines: model {self.record.model_name} has no active baselines, nothing was checked"
                " (set regressionGateConfig.requireBaselines, or a policy, to fail instead)"
            )
        return f"{subject}: {verdict_message(self.record, self.status)}"


def verdict_message(verdict: VerdictRecord, validation_status: str | None = None) -> str:
    """A verdict in one line: its status, whether it blocks, and the messages of the checks that did not pass."""
    status = validation_status or ("blocked" if verdict.blocked else verdict.status)
    passed = len(verdict.checks) - len(verdict.failing)
    head = f"{status} (verdict #{verdict.id}: {passed}/{len(verdict.checks)} checks passed"
    head += ", deployment blocked)" if verdict.blocked else ")"
    if verdict.error_message:
        return f"{head}: {verdict.error_message}"
    details = "; ".join(c.message or f"{c.metric_name} {c.outcome}" for c in verdict.failing)
    return f"{head}: {details}" if details else head


class _SyncPool(Protocol):
    def connection(self) -> Any: ...


def _completion(row: Mapping[str, Any] | None, job_id: uuid.UUID | str, verdict_row: Any) -> Verdict:
    if row is None:
        raise JobNotFoundError(f"no training job with id {job_id} (or not one of yours)", "RG008")
    status = row["validation_status"]
    if verdict_row:
        return Verdict.of_record(VerdictRecord.from_row(verdict_row), status)
    if status is None and row["status"] == "completed" and row["run_group"] is not None:
        status = "waiting"
    return Verdict(row["id"], status or "not_run", False, [], None)


class _Buffer:
    """Metric rows waiting to be sent, and the rule for when to send them."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("buffer_size must be at least 1")
        self.size = size
        self.rows: list[tuple[Any, ...]] = []

    def add(self, job_id: uuid.UUID | str, step: int, metrics: Mapping[str, Any]) -> bool:
        """Buffer one row; True when the buffer is full and should be flushed."""
        row = metric_row(job_id, step, metrics)
        if any(value is not None for value in row[2:-1]) or row[-1].obj:
            self.rows.append(row)
        return len(self.rows) >= self.size

    def take(self) -> list[tuple[Any, ...]]:
        rows, self.rows = self.rows, []
        return rows


class Client:
    """regate-db for training code, over a DSN, a psycopg connection or a connection pool (see the module doc).

    Metric rows are buffered and sent with one INSERT per ``buffer_size`` rows (the columns as arrays), on
    :meth:`flush`, before :meth:`complete_job` and when the client is closed. A failed send raises the database's
    error and the rows of that batch are not kept (the statement is all or nothing: none of them was stored).
    """

    def __init__(self, source: str | psycopg.Connection[Any] | _SyncPool, *, buffer_size: int = 1000) -> None:
        self._buffer = _Buffer(buffer_size)
        self._owned: psycopg.Connection[Any] | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._pool: _SyncPool | None = None
        if isinstance(source, str):
            from regate_db.connect import connect

            self._owned = self._conn = connect(source, autocommit=True, prepare_threshold=None)
        elif isinstance(source, psycopg.Connection):
            self._conn = source
        elif callable(getattr(source, "connection", None)):
            self._pool = source
        else:
            raise TypeError(f"Client needs a DSN, a psycopg.Connection or a pool, got {type(source).__name__}")

    # --- plumbing ---------------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        conn: psycopg.Connection[Any] | None = self._conn
        try:
            if self._pool is not None:
                with self._pool.connection() as conn, conn.transaction():
                    yield conn
            else:
                if conn is None:
                    raise RuntimeError("the client is closed")
                with conn.transaction():
                    yield conn
        except psycopg.Error as exc:
            raise (release.translate_error(conn, exc, action) if conn is not None else translate(exc)) from exc

    def close(self) -> None:
        """Send the buffered metrics, then close the connection the client opened (never one it was given)."""
        try:
            self.flush()
        finally:
            if self._owned is not None:
                self._owned.close()
                self._owned = self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        elif self._owned is not None:  # an error: don't send half a run's buffer on the way out
            self._owned.close()
            self._owned = self._conn = None

    # --- jobs and metrics -------------------------------------------------------------------------------------

    def create_job(
        self,
        model_name: str,
        version: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        run_group: str | None = None,
        run_group_size: int | None = None,
    ) -> uuid.UUID:
        """Insert a ``running`` job owned by this login; its id. ``config`` is the job's gate config
        (e.g. ``{"blockOnCriticalFailures": true}``); a misspelt gate key is refused (RG005)."""
        with self._transaction("create jobs") as conn:
            row = conn.execute(
                _CREATE_JOB_SQL, (model_name, version, Jsonb(dict(config or {})), run_group, run_group_size)
            ).fetchone()
        assert row is not None
        job_id: uuid.UUID = row[0]
        return job_id

    def log_metrics(self, job_id: uuid.UUID | str, step: int, /, **metrics: Any) -> None:
        """Buffer the metrics of one step (``train_loss``, ``eval_loss``, ... go to their columns, every other
        name into ``metrics``); sends the buffer when it is full. ``None`` values are skipped."""
        if self._buffer.add(job_id, step, metrics):
            self.flush()

    def log_metrics_dict(self, job_id: uuid.UUID | str, step: int, metrics: Mapping[str, Any]) -> None:
        """:meth:`log_metrics` for names that are not Python identifiers (``eval/accuracy``)."""
        if self._buffer.add(job_id, step, metrics):
            self.flush()

    def flush(self) -> int:
        """Send the buffered metric rows in one statement; the number of rows sent."""
        rows = self._buffer.take()
        if not rows:
            return 0
        with self._transaction("log metrics") as conn:
            conn.execute(_INSERT_SQL, _columns(rows))
        return len(rows)

    def complete_job(self, job_id: uuid.UUID | str, *, status: str = "completed") -> Verdict:
        """Send the buffered metrics, set the job ``completed`` and return what the gate decided, from the
        same UPDATE (RG008 when the job is missing or not yours). ``status='failed'`` ends a run that crashed
        (no validation)."""
        self.flush()
        with self._transaction("complete jobs") as conn:
            job = conn.cursor(row_factory=dict_row).execute(_COMPLETE_SQL, (status, job_id)).fetchone()
            verdict_row = _verdict_row(conn, job)
        return _completion(job, job_id, verdict_row)

    def fail_job(self, job_id: uuid.UUID | str) -> None:
        """Mark a run that crashed ``failed`` (the gate does not run; the buffered metrics are sent first)."""
        self.complete_job(job_id, status="failed")

    def verdict(self, job_id: uuid.UUID | str) -> Verdict:
        """The job's current validation status and verdict (RG008 when it is missing or not yours)."""
        with self._transaction("read jobs") as conn:
            job = conn.cursor(row_factory=dict_row).execute(_JOB_SQL, (job_id,)).fetchone()
            verdict_row = _verdict_row(conn, job)
        return _completion(job, job_id, verdict_row)

    # --- the explicit gate and baselines ----------------------------------------------------------------------

    def run_gate(
        self,
        model_name: str,
        metrics: Mapping[str, Any],
        *,
        model_version: str | None = None,
        block_on_failure: bool = True,
        required_metrics: Sequence[str] | None = None,
        job_id: uuid.UUID | str | None = None,
    ) -> Verdict:
        """``regate.run_gate``: check ``metrics`` against the model's baselines now (NaN and infinities allowed)."""
        with self._transaction("run the gate") as conn:
            record = release.run_gate(
                conn,
                model_name,
                metrics,
                model_version=model_version,
                block_on_failure=block_on_failure,
                required_metrics=required_metrics,
                job_id=job_id,
            )
        return Verdict.of_record(record)

    def validate(self, job_id: uuid.UUID | str) -> Verdict:
        """``regate.validate_training_results``: validate a completed job again, now (a new verdict)."""
        with self._transaction("validate jobs") as conn:
            record = release.validate_job(conn, job_id)
        return Verdict.of_record(record)

    def create_baseline(self, model_name: str, metric_name: str, value: float | None, **options: Any) -> Baseline:
        """``regate.create_baseline`` (admins): the keyword options are its parameters (``min_relative_change``,
        ``threshold``, ``severity``, ``reference``, ...)."""
        with self._transaction("create baselines") as conn:
            return release.create_baseline(conn, model_name, metric_name, value, **options)


def _verdict_row(conn: psycopg.Connection[Any], job: Mapping[str, Any] | None) -> Any:
    if job is None or job["validation_result_id"] is None:
        return None
    return conn.cursor(row_factory=dict_row).execute(_VERDICT_BY_ID_SQL, (job["validation_result_id"],)).fetchone()


async def _averdict_row(conn: psycopg.AsyncConnection[Any], job: Mapping[str, Any] | None) -> Any:
    if job is None or job["validation_result_id"] is None:
        return None
    cur = await conn.cursor(row_factory=dict_row).execute(_VERDICT_BY_ID_SQL, (job["validation_result_id"],))
    return await cur.fetchone()


class _AsyncPool(Protocol):
    def connection(self) -> Any: ...


class AsyncClient:
    """:class:`Client` for asyncio, over a DSN (``await AsyncClient.connect(dsn)``), a
    ``psycopg.AsyncConnection`` or an async pool (``psycopg_pool.AsyncConnectionPool``)."""

    def __init__(self, source: psycopg.AsyncConnection[Any] | _AsyncPool, *, buffer_size: int = 1000) -> None:
        self._buffer = _Buffer(buffer_size)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._pool: _AsyncPool | None = None
        self._owned = False
        if isinstance(source, psycopg.AsyncConnection):
            self._conn = source
        elif callable(getattr(source, "connection", None)):
            self._pool = source
        else:
            raise TypeError(f"AsyncClient needs a psycopg.AsyncConnection or an async pool, got {type(source)}")

    @classmethod
    async def connect(cls, dsn: str, *, buffer_size: int = 1000) -> AsyncClient:
        """An AsyncClient on a connection of its own (autocommit, no server-side prepared statements)."""
        from regate_db.connect import connect_async

        client = cls(await connect_async(dsn), buffer_size=buffer_size)
        client._owned = True
        return client

    @asynccontextmanager
    async def _transaction(self, action: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            if self._pool is not None:
                async with self._pool.connection() as conn, conn.transaction():
                    yield conn
            else:
                if self._conn is None:
                    raise RuntimeError("the client is closed")
                async with self._conn.transaction():
                    yield self._conn
        except psycopg.Error as exc:
            raise translate(exc) from exc

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            if self._owned and self._conn is not None:
                await self._conn.close()
                self._conn = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            await self.close()
        elif self._owned and self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def create_job(
        self,
        model_name: str,
        version: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        run_group: str | None = None,
        run_group_size: int | None = None,
    ) -> uuid.UUID:
        async with self._transaction("create jobs") as conn:
            cur = await conn.execute(
                _CREATE_JOB_SQL, (model_name, version, Jsonb(dict(config or {})), run_group, run_group_size)
            )
            row = await cur.fetchone()
        assert row is not None
        job_id: uuid.UUID = row[0]
        return job_id

    async def log_metrics(self, job_id: uuid.UUID | str, step: int, /, **metrics: Any) -> None:
        if self._buffer.add(job_id, step, metrics):
            await self.flush()

    async def log_metrics_dict(self, job_id: uuid.UUID | str, step: int, metrics: Mapping[str, Any]) -> None:
        if self._buffer.add(job_id, step, metrics):
            await self.flush()

    async def flush(self) -> int:
        rows = self._buffer.take()
        if not rows:
            return 0
        async with self._transaction("log metrics") as conn:
            await conn.execute(_INSERT_SQL, _columns(rows))
        return len(rows)

    async def complete_job(self, job_id: uuid.UUID | str, *, status: str = "completed") -> Verdict:
        await self.flush()
        async with self._transaction("complete jobs") as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(_COMPLETE_SQL, (status, job_id))
            job = await cur.fetchone()
            verdict_row = await _averdict_row(conn, job)
        return _completion(job, job_id, verdict_row)

    async def fail_job(self, job_id: uuid.UUID | str) -> None:
        await self.complete_job(job_id, status="failed")

    async def verdict(self, job_id: uuid.UUID | str) -> Verdict:
        async with self._transaction("read jobs") as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(_JOB_SQL, (job_id,))
            job = await cur.fetchone()
            verdict_row = await _averdict_row(conn, job)
        return _completion(job, job_id, verdict_row)
