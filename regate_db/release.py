"""Baselines, verdicts, deployments, overrides, policies and statistics, from Python.

Thin typed wrappers over the SQL API of schema ``regate`` (docs/sql-reference.md): each function runs one
documented statement and returns dataclasses (verdicts, baselines) or plain dicts (table rows, keyed by column
name). The database decides everything; nothing here re-implements a rule. Every failure a user can cause ends
as a :class:`~regate_db.errors.RegateError` with a one-line message (RG SQLSTATEs as the
:class:`~regate_db.errors.GateError` of their code). The functions run in the caller's transaction: use an
autocommit connection, or commit.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from regate_db.errors import (
    DeploymentRefusedError,
    JobNotFoundError,
    RegateError,
    SchemaNotInstalledError,
    translate,
)
from regate_db.gates import GatePermissionError

Row = dict[str, Any]


class InvalidRequestError(RegateError):
    """An argument the database (SQLSTATE 22023) or this module refused: a blank reason, an expiry in the past,
    nothing to override, a metrics file that is not a JSON object of numbers..."""


class NotFoundError(RegateError):
    """No row with that id (a baseline, an override), or not one the login may see."""


# --- errors ---------------------------------------------------------------------------------------------------


def _primary(exc: psycopg.Error) -> str:
    return exc.diag.message_primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def translate_error(conn: psycopg.Connection[Any], exc: psycopg.Error, action: str) -> Exception:
    """The exception for a psycopg error of ``action`` (e.g. 'create baselines'): one clear line each."""
    primary = _primary(exc)
    if exc.sqlstate == "RG012":
        return DeploymentRefusedError(primary, "RG012")
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        if primary.startswith("permission denied for schema"):
            return GatePermissionError(
                f"{primary}: role {conn.info.user} cannot {action}; ask an admin to grant usage on schema regate"
            )
        if primary.startswith(("permission denied for function", "permission denied for table")) or (
            primary.startswith("permission denied: ") and "written by regate-db's functions only" in primary
        ):
            return GatePermissionError(
                f"permission denied: only a regate admin (a member of regate_admin, a member of the owner of schema"
                f" regate, or a superuser) may {action} (connected as {conn.info.user})"
            )
        return GatePermissionError(f"{primary} (connected as {conn.info.user})")
    if isinstance(exc, pg_errors.InvalidParameterValue):
        return InvalidRequestError(primary)
    if isinstance(exc, pg_errors.InvalidSchemaName):
        return SchemaNotInstalledError(
            f"the regate schema is not installed in {conn.info.dbname}: run regate-db migrate"
        )
    if isinstance(exc, pg_errors.UndefinedFunction | pg_errors.UndefinedTable | pg_errors.UndefinedColumn):
        return SchemaNotInstalledError(
            f"the regate schema in {conn.info.dbname} is older than this regate-db ({primary}): run regate-db migrate"
        )
    if isinstance(exc, pg_errors.InvalidTextRepresentation | pg_errors.InvalidDatetimeFormat):
        return InvalidRequestError(primary)
    return translate(exc)


def _rows(
    conn: psycopg.Connection[Any], action: str, query: sql.SQL | sql.Composed | str, params: Any = None
) -> list[Row]:
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.SQL(query) if isinstance(query, str) else query, params)
            return list(cur.fetchall()) if cur.description is not None else []
    except psycopg.Error as exc:
        raise translate_error(conn, exc, action) from exc


def _one(conn: psycopg.Connection[Any], action: str, query: sql.SQL | sql.Composed | str, params: Any = None) -> Row:
    rows = _rows(conn, action, query, params)
    assert len(rows) == 1, rows
    return rows[0]


def _has_relation(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()
    return bool(row and row[0])


# --- values ---------------------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` with every datetime, date, UUID and Decimal as JSON-friendly text or number, non-finite floats
    as the strings "NaN", "Infinity", "-Infinity" (what regate stores), dataclasses as dicts."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, future: bool) -> datetime:
    """A point in time from an ISO date or datetime (``2026-03-01``, ``2026-03-01T12:00:00+00:00``) or a
    duration from now (``90m``, ``2h``, ``3d``, ``1w``): in the future with ``future``, else in the past. A
    datetime without time zone is UTC."""
    match = _DURATION.match(text)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
        now = datetime.now(UTC)
        return now + delta if future else now - delta
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequestError(
            f"{text!r} is neither an ISO date/datetime (2026-03-01, 2026-03-01T12:00:00+00:00) nor a duration"
            " (90m, 2h, 3d, 1w)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_job_id(text: str) -> uuid.UUID:
    """A job id (a UUID), or :class:`InvalidRequestError` saying what is wrong with ``text``."""
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise InvalidRequestError(f"{text!r} is not a job id (a UUID such as 0190c2a4-...)") from None


def metrics_from_json(text: str, source: str = "metrics") -> dict[str, Any]:
    """Parse a JSON object of metric name -> number (``NaN``/``Infinity`` accepted, also as strings) for
    :func:`run_gate`; :class:`InvalidRequestError` when it is not one. Checking the values is the database's."""
    import json

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidRequestError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"{source}: must be a JSON object of metric name -> number, got {type(value).__name__}"
        )
    return value


# --- baselines ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """A row of ``regate.model_baselines``."""

    id: int
    model_name: str
    model_version: str | None
    metric_name: str
    baseline_value: float | None
    greater_is_better: bool
    threshold: float | None
    min_absolute_change: float | None
    min_relative_change: float | None
    severity: str
    is_active: bool
    description: str | None
    source_job_id: uuid.UUID | None
    created_by: str
    created_at: datetime
    reference: str = "fixed"
    environment: str | None = None
    window_size: int | None = None
    min_runs: int | None = None
    on_missing_reference: str = "warn"
    confidence: float = 0.95
    min_support: float | None = None
    support_metric: str | None = None
    benjamini_hochberg: bool = False

    @classmethod
    def from_row(cls, row: Row) -> Baseline:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


_BASELINE_COLUMNS = sql.SQL(", ").join(sql.SQL("b.") + sql.Identifier(k) for k in Baseline.__dataclass_fields__)


def create_baseline(
    conn: psycopg.Connection[Any],
    model_name: str,
    metric_name: str,
    baseline_value: float | None,
    *,
    greater_is_better: bool | None = None,
    threshold: float | None = None,
    min_absolute_change: float | None = None,
    min_relative_change: float | None = None,
    severity: str = "critical",
    model_version: str | None = None,
    description: str | None = None,
    reference: str = "fixed",
    environment: str | None = None,
    window_size: int | None = None,
    min_runs: int | None = None,
    on_missing_reference: str = "warn",
    confidence: float = 0.95,
    min_support: float | None = None,
    support_metric: str | None = None,
    benjamini_hochberg: bool = False,
) -> Baseline:
    """``regate.create_baseline``: the new active baseline (the previous active one of its key is deactivated).
    ``reference`` 'champion' (with ``environment``) or 'rolling' (with ``window_size`` and ``min_runs``) resolves
    the reference at each validation. Admins only."""
    row = _one(
        conn,
        "create baselines",
        sql.SQL(
            "select {} from regate.create_baseline(model_name => %s, metric_name => %s, baseline_value => %s,"
            " greater_is_better => %s, threshold => %s, min_absolute_change => %s, min_relative_change => %s,"
            " severity => %s, model_version => %s, description => %s, reference => %s, environment => %s,"
            " window_size => %s, min_runs => %s, on_missing_reference => %s, confidence => %s, min_support => %s,"
            " support_metric => %s, benjamini_hochberg => %s) as b"
        ).format(_BASELINE_COLUMNS),
        (
            model_name,
            metric_name,
            baseline_value,
            greater_is_better,
            threshold,
            min_absolute_change,
            min_relative_change,
            severity,
            model_version,
            description,
            reference,
            environment,
            window_size,
            min_runs,
            on_missing_reference,
            confidence,
            min_support,
            support_metric,
            benjamini_hochberg,
        ),
    )
    return Baseline.from_row(row)


def list_baselines(
    conn: psycopg.Connection[Any], model_name: str | None = None, *, include_inactive: bool = False
) -> list[Baseline]:
    """The baselines (active ones unless ``include_inactive``), of one model or all, by model, metric, severity."""
    rows = _rows(
        conn,
        "read baselines",
        sql.SQL(
            "select {} from regate.model_baselines as b"
            " where (%(model)s::text is null or b.model_name = %(model)s) and (b.is_active or %(all)s)"
            " order by b.model_name, b.model_version nulls first, b.metric_name, b.severity, b.id"
        ).format(_BASELINE_COLUMNS),
        {"model": model_name, "all": include_inactive},
    )
    return [Baseline.from_row(r) for r in rows]


@dataclass(frozen=True)
class Promotion:
    """What :func:`promote_job` created, and the metrics the database skipped (its NOTICEs)."""

    baselines: list[Baseline]
    skipped: list[str] = field(default_factory=list)


def promote_job(
    conn: psycopg.Connection[Any],
    job_id: uuid.UUID | str,
    metric_names: Sequence[str] | None = None,
    *,
    min_relative_change: float | None = None,
    severity: str = "critical",
    directions: Mapping[str, bool] | None = None,
) -> Promotion:
    """``regate.create_baselines_from_job``: the job's final metrics become its model's baselines. Admins only."""
    skipped: list[str] = []

    def notice(diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary:
            skipped.append(diag.message_primary)

    conn.add_notice_handler(notice)
    try:
        rows = _rows(
            conn,
            "create baselines",
            sql.SQL(
                "select {} from regate.create_baselines_from_job(job_id => %s, metric_names => %s,"
                " min_relative_change => %s, severity => %s, directions => %s) as b"
            ).format(_BASELINE_COLUMNS),
            (
                job_id,
                list(metric_names) if metric_names else None,
                min_relative_change,
                severity,
                Jsonb(dict(directions or {})),
            ),
        )
    finally:
        conn.remove_notice_handler(notice)
    return Promotion([Baseline.from_row(r) for r in rows], skipped)


def deactivate_baseline(conn: psycopg.Connection[Any], baseline_id: int) -> tuple[Baseline, bool]:
    """``regate.deactivate_baseline`` (admins only): the baseline is no longer checked, and kept as history.
    Returns the row and whether it changed (False: it was already inactive). :class:`NotFoundError` when no
    baseline has that id."""
    found = _rows(
        conn,
        "deactivate baselines",
        sql.SQL("select {} from regate.model_baselines as b where b.id = %s").format(_BASELINE_COLUMNS),
        (baseline_id,),
    )
    if not found:
        raise NotFoundError(f"no baseline with id {baseline_id} (regate-db baseline list --all shows them)")
    row = _one(
        conn,
        "deactivate baselines",
        sql.SQL("select {} from regate.deactivate_baseline(%s) as b").format(_BASELINE_COLUMNS),
        (baseline_id,),
    )
    return Baseline.from_row(row), bool(found[0]["is_active"])


# --- verdicts -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One element of a verdict's ``checks``."""

    metric_name: str
    severity: str
    outcome: str
    observed: Any
    baseline_value: float | None
    greater_is_better: bool | None
    threshold: float | None
    min_absolute_change: float | None
    min_relative_change: float | None
    failed_criteria: list[str]
    step: int | None
    message: str | None
    baseline_id: int | None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Check:
        return cls(
            metric_name=str(value.get("metric_name")),
            severity=str(value.get("severity")),
            outcome=str(value.get("outcome")),
            observed=value.get("observed"),
            baseline_value=value.get("baseline_value"),
            greater_is_better=value.get("greater_is_better"),
            threshold=value.get("threshold"),
            min_absolute_change=value.get("min_absolute_change"),
            min_relative_change=value.get("min_relative_change"),
            failed_criteria=list(value.get("failed_criteria") or []),
            step=value.get("step"),
            message=value.get("message"),
            baseline_id=value.get("baseline_id"),
        )


@dataclass(frozen=True)
class Verdict:
    """A row of ``regate.validation_results``: the status, whether it blocks deployment, and its checks."""

    id: int
    job_id: uuid.UUID | None
    model_name: str
    model_version: str | None
    status: str
    blocked: bool
    source: str
    metrics: dict[str, Any] | None
    checks: list[Check]
    config: dict[str, Any]
    error_sqlstate: str | None
    error_message: str | None
    duration_ms: float | None
    created_at: datetime
    owner_id: str | None
    caused_by: str | None

    @classmethod
    def from_row(cls, row: Row) -> Verdict:
        values: dict[str, Any] = {k: row.get(k) for k in cls.__dataclass_fields__}
        values["checks"] = [Check.from_json(c) for c in row.get("checks") or []]
        values["config"] = row.get("config") or {}
        return cls(**values)

    @property
    def failing(self) -> list[Check]:
        """The checks that did not pass."""
        return [c for c in self.checks if c.outcome != "passed"]


_VERDICT_SQL = (
    "select r.id, r.job_id, r.model_name, r.model_version, r.status, r.blocked, r.source, r.metrics, r.checks,"
    " r.config, r.error_sqlstate, r.error_message, r.duration_ms, r.created_at, r.owner_id, r.caused_by"
)


def validate_job(conn: psycopg.Connection[Any], job_id: uuid.UUID | str) -> Verdict:
    """``regate.validate_training_results``: validate the job now and record the verdict (source 'manual')."""
    row = _one(
        conn,
        "validate jobs",
        _VERDICT_SQL + " from regate.validate_training_results(job_id => %s) as r",
        (job_id,),
    )
    return Verdict.from_row(row)


def _gate_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return jsonable(value)
    return value


def run_gate(
    conn: psycopg.Connection[Any],
    model_name: str,
    metrics: Mapping[str, Any],
    *,
    model_version: str | None = None,
    block_on_failure: bool = True,
    required_metrics: Sequence[str] | None = None,
    job_id: uuid.UUID | str | None = None,
) -> Verdict:
    """``regate.run_gate``: the explicit gate. Returns the verdict; ``blocked`` says whether it blocks (the call
    never raises for a failing verdict)."""
    row = _one(
        conn,
        "run the gate",
        _VERDICT_SQL + " from regate.run_gate(model_name => %s, current_metrics => %s, model_version => %s,"
        " block_on_failure => %s, required_metrics => %s, job_id => %s) as r",
        (
            model_name,
            Jsonb({k: _gate_value(v) for k, v in metrics.items()}),
            model_version,
            block_on_failure,
            list(required_metrics) if required_metrics else None,
            job_id,
        ),
    )
    return Verdict.from_row(row)


def history(conn: psycopg.Connection[Any], model_name: str | None = None, *, limit: int = 20) -> list[Row]:
    """The newest verdicts (``regate.validation_history``) the login may see, of one model or all."""
    return _rows(
        conn,
        "read the validation history",
        "select h.id, h.created_at, h.job_id, h.model_name, h.model_version, h.status, h.blocked, h.source,"
        " h.job_status, h.job_validation_status, h.check_count, h.owner_id, h.caused_by, h.error_message"
        " from regate.validation_history as h where %(model)s::text is null or h.model_name = %(model)s"
        " order by h.created_at desc, h.id desc limit %(limit)s",
        {"model": model_name, "limit": limit},
    )


@dataclass(frozen=True)
class JobReport:
    """Everything about one job: the job row, its current verdict, every verdict it had, its deployments and
    overrides (empty lists on a schema without release control)."""

    job: Row
    verdict: Verdict | None
    verdicts: list[Row]
    deployments: list[Row]
    overrides: list[Row]
    purge: Row | None = None  # regate.metrics_purge_status: the raw history was purged (retention), None if not


def show_job(conn: psycopg.Connection[Any], job_id: uuid.UUID | str) -> JobReport:
    """The :class:`JobReport` of a job the login may see; :class:`JobNotFoundError` (RG008) otherwise."""
    jobs = _rows(
        conn,
        "read jobs",
        "select j.id, j.model_name, j.model_version, j.status, j.validation_status, j.validation_result_id,"
        " j.owner_id, j.config, j.created_at, j.completed_at from regate.local_training_jobs as j where j.id = %s",
        (job_id,),
    )
    if not jobs:
        raise JobNotFoundError(f"no training job with id {job_id}")
    job = jobs[0]
    verdict = None
    if job["validation_result_id"] is not None:
        found = _rows(
            conn,
            "read verdicts",
            _VERDICT_SQL + " from regate.validation_results as r where r.id = %s",
            (job["validation_result_id"],),
        )
        verdict = Verdict.from_row(found[0]) if found else None
    verdicts = _rows(
        conn,
        "read verdicts",
        "select r.id, r.created_at, r.status, r.blocked, r.source, r.caused_by from regate.validation_results as r"
        " where r.job_id = %s order by r.created_at, r.id",
        (job_id,),
    )
    deployments = deployment_list(conn, job_id=job_id) if _has_relation(conn, "regate.deployments") else []
    overrides = override_list(conn, job_id=job_id) if _has_relation(conn, "regate.override_status") else []
    purge = None
    if conn.execute("select to_regprocedure('regate.metrics_purge_status(uuid)') is not null").fetchone() == (True,):
        found = _rows(
            conn,
            "read jobs",
            "select p.complete, p.purged_at, p.purged_by, p.completed_before, p.rows_deleted, p.rows_kept"
            " from regate.metrics_purge_status(%s) as p where p.purged_at is not null",
            (job_id,),
        )
        purge = found[0] if found else None
    return JobReport(job, verdict, verdicts, deployments, overrides, purge)


def gate_stats(
    conn: psycopg.Connection[Any],
    model_name: str | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by_day: bool = False,
) -> list[Row]:
    """``regate.gate_stats_for``: per model (and the overall row, model_name None, unless a model is given)."""
    return _rows(
        conn,
        "read gate statistics",
        "select s.* from regate.gate_stats_for(since => %(since)s, until => %(until)s, by_day => %(by_day)s) as s"
        " where %(model)s::text is null or s.model_name = %(model)s"
        " order by s.model_name nulls last, s.day nulls first",
        {"model": model_name, "since": since, "until": until, "by_day": by_day},
    )


# --- deployments and overrides --------------------------------------------------------------------------------

_DEPLOYMENT_COLUMNS = (
    "d.id, d.job_id, d.model_name, d.model_version, d.environment, d.validation_result_id, d.validation_status,"
    " d.override_id, d.deployed_by, d.deployed_at, d.notes"
)


def deploy(conn: psycopg.Connection[Any], job_id: uuid.UUID | str, environment: str, notes: str | None = None) -> Row:
    """``regate.deploy``: record the job's deployment to ``environment``; :class:`DeploymentRefusedError`
    (RG012, the database's reason) unless its verdict (or an override in effect) allows it."""
    return _one(
        conn,
        "deploy",
        f"select {_DEPLOYMENT_COLUMNS} from regate.deploy(job_id => %s, environment => %s, notes => %s) as d",
        (job_id, environment, notes),
    )


def deployment_list(conn: psycopg.Connection[Any], *, job_id: uuid.UUID | str | None = None) -> list[Row]:
    """Deployments (of one job, or all the login may see), oldest first."""
    return _rows(
        conn,
        "read deployments",
        f"select {_DEPLOYMENT_COLUMNS} from regate.deployments as d"
        " where %(job)s::uuid is null or d.job_id = %(job)s order by d.id",
        {"job": job_id},
    )


def champions(
    conn: psycopg.Connection[Any], model_name: str | None = None, environment: str | None = None
) -> list[Row]:
    """``regate.champions``: the latest deployment per (model, environment)."""
    return _rows(
        conn,
        "read champions",
        "select c.model_name, c.environment, c.job_id, c.model_version, c.validation_status,"
        " c.validation_result_id, c.override_id, c.deployment_id, c.deployed_at, c.deployed_by, c.notes"
        " from regate.champions as c"
        " where (%(model)s::text is null or c.model_name = %(model)s)"
        " and (%(env)s::text is null or c.environment = %(env)s)"
        " order by c.model_name, c.environment",
        {"model": model_name, "env": environment},
    )


_OVERRIDE_COLUMNS = (
    "o.id, o.job_id, o.validation_result_id, o.reason, o.overridden_by, o.created_at, o.expires_at,"
    " o.requires_confirmation"
)


def override_gate(
    conn: psycopg.Connection[Any], job_id: uuid.UUID | str, reason: str, expires_at: datetime | None = None
) -> Row:
    """``regate.override_gate``: an admin's audited override of the verdict that refuses the job's deployment.
    Returns the override with its state (``regate.override_status``: ``in_effect``, confirmation)."""
    row = _one(
        conn,
        "override the gate",
        f"select {_OVERRIDE_COLUMNS} from regate.override_gate(job_id => %s, reason => %s, expires_at => %s) as o",
        (job_id, reason, expires_at),
    )
    return _override_state(conn, int(row["id"])) or row


def confirm_override(conn: psycopg.Connection[Any], override_id: int) -> Row:
    """``regate.confirm_override``: a second admin confirms an override (four-eyes rule). Returns the
    override's state."""
    _one(
        conn,
        "confirm overrides",
        "select c.override_id from regate.confirm_override(override_id => %s) as c",
        (override_id,),
    )
    state = _override_state(conn, override_id)
    assert state is not None
    return state


def _override_state(conn: psycopg.Connection[Any], override_id: int) -> Row | None:
    found = override_list(conn, override_id=override_id)
    return found[0] if found else None


def override_list(
    conn: psycopg.Connection[Any], *, job_id: uuid.UUID | str | None = None, override_id: int | None = None
) -> list[Row]:
    """``regate.override_status``: overrides (of one job, or all the login may see) and whether each is in
    effect, oldest first."""
    return _rows(
        conn,
        "read overrides",
        f"select {_OVERRIDE_COLUMNS}, o.confirmed_by, o.confirmed_at, o.in_effect from regate.override_status as o"
        " where (%(job)s::uuid is null or o.job_id = %(job)s) and (%(id)s::bigint is null or o.id = %(id)s)"
        " order by o.id",
        {"job": job_id, "id": override_id},
    )


# --- policies -------------------------------------------------------------------------------------------------

POLICY_SETTINGS = (
    "enable_gates",
    "block_on_critical_failures",
    "require_baselines",
    "fail_open",
    "metrics_to_validate",
    "enforce",
    "override_requires_second_admin",
    "inconclusive_fails",
)


def set_policy(
    conn: psycopg.Connection[Any],
    model_name: str | None,
    *,
    reset: Iterable[str] = (),
    **settings: Any,
) -> Row:
    """``regate.set_policy``: change the policy of a model (None: the default policy). Only the settings given
    (not None) change; ``reset`` names columns set back to NULL (inherit). Admins only."""
    unknown = set(settings) - set(POLICY_SETTINGS)
    if unknown:
        raise InvalidRequestError(f"unknown policy settings: {', '.join(sorted(unknown))}")
    given = {k: v for k, v in settings.items() if v is not None}
    reset = list(reset)
    args: list[sql.Composable] = [sql.SQL("model_name => %(model_name)s")]
    args += [sql.SQL("{} => %({})s").format(sql.Identifier(k), sql.SQL(k)) for k in given]
    if reset:
        args.append(sql.SQL("reset => %(reset)s"))
    query = sql.SQL("select p.* from regate.set_policy({}) as p").format(sql.SQL(", ").join(args))
    return _one(conn, "set a gate policy", query, {"model_name": model_name, "reset": reset, **given})


@dataclass(frozen=True)
class PolicyView:
    """The policy rows that apply to a model (the default policy and its own) and its effective gate config."""

    model_name: str | None
    policies: list[Row]
    effective_config: dict[str, Any]


def show_policy(conn: psycopg.Connection[Any], model_name: str | None = None) -> PolicyView:
    """Every policy (no model), or the default policy and the model's; the effective config of a job of the
    model with an empty config (``regate.effective_config('{}', model)``)."""
    policies = _rows(
        conn,
        "read gate policies",
        "select p.* from regate.gate_policies as p"
        " where %(model)s::text is null or p.model_name is null or p.model_name = %(model)s"
        " order by p.model_name nulls first",
        {"model": model_name},
    )
    config = _one(
        conn,
        "read gate policies",
        "select regate.effective_config(config => '{}'::jsonb, model_name => %s) as config",
        (model_name,),
    )["config"]
    return PolicyView(model_name, policies, config)


def policy_history(
    conn: psycopg.Connection[Any], model_name: str | None = None, *, default_only: bool = False
) -> list[Row]:
    """``regate.gate_policy_history`` (admins), of one model, of the default policy, or all; oldest first."""
    return _rows(
        conn,
        "read the policy history",
        "select h.id, h.policy_id, h.model_name, h.version, h.old_values, h.new_values, h.changed_by, h.changed_at"
        " from regate.gate_policy_history as h"
        " where (not %(default)s or h.model_name is null)"
        " and (%(model)s::text is null or h.model_name = %(model)s) order by h.id",
        {"model": model_name, "default": default_only},
    )


def changed_settings(entry: Row) -> dict[str, tuple[Any, Any]]:
    """The settings a history entry changed: name -> (old, new); every set one for a created policy."""
    old: Mapping[str, Any] = entry.get("old_values") or {}
    new: Mapping[str, Any] = entry.get("new_values") or {}
    keys = [k for k in new if k not in ("id", "model_name", "version")]
    return {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)}
