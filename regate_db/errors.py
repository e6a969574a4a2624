"""Exceptions raised by regate-db's Python side.

Every error a user can cause ends as a :class:`RegateError` whose message is one clear line; the CLI prints
that line and exits with :attr:`RegateError.exit_code` (``--debug`` shows the traceback as well).
"""

from __future__ import annotations


class RegateError(Exception):
    """Base class: a failure with a message meant for a person."""

    exit_code = 2


class NoDatabaseError(RegateError):
    """No database was given (no --dsn, no environment variable, no --embedded)."""


class ConnectError(RegateError):
    """The server could not be reached, or refused the login."""


class UnsupportedServerError(RegateError):
    """The server is older than the oldest PostgreSQL regate-db supports."""


class SchemaNotInstalledError(RegateError):
    """The database has no regate schema yet."""


class MigrationError(RegateError):
    """A migration could not be planned or applied."""


class DriftError(MigrationError):
    """An applied migration file was edited after it ran."""


class EmbeddedError(RegateError):
    """The embedded PostgreSQL server could not be used."""


class GateError(RegateError):
    """PostgreSQL refused a regate operation with one of regate's own SQLSTATEs (class RG)."""

    sqlstate = "RG000"

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        if sqlstate:
            self.sqlstate = sqlstate


class InvalidMetricError(GateError):
    """RG001: a metric key or value is not acceptable."""

    sqlstate = "RG001"


class JobCompletedError(GateError):
    """RG002: metrics were logged for a job that is already completed."""

    sqlstate = "RG002"


class MetricsAppendOnlyError(GateError):
    """RG003: metric rows cannot be updated or deleted."""

    sqlstate = "RG003"


class InvalidBaselineError(GateError):
    """RG004: a baseline breaks a rule."""

    sqlstate = "RG004"


class InvalidGateConfigError(GateError):
    """RG005: a gate key of a job's config has the wrong type."""

    sqlstate = "RG005"


class VerdictsAppendOnlyError(GateError):
    """RG006: verdicts cannot be changed, and a job with verdicts cannot be deleted."""

    sqlstate = "RG006"


class DirectionUnknownError(GateError):
    """RG007: greater_is_better cannot be inferred from the metric name."""

    sqlstate = "RG007"


class JobNotFoundError(GateError):
    """RG008: no training job has that id."""

    sqlstate = "RG008"


class VerdictTamperingError(GateError):
    """RG009: a job's validation_status or validation_result_id was written by someone other than the gate."""

    sqlstate = "RG009"


class UntrustedTriggerError(GateError):
    """RG010: a trigger regate-db did not install sits on a table the gate writes (or a regate-db trigger
    function fired where regate-db did not attach it): the gate refuses to run."""

    sqlstate = "RG010"


class FrozenJobError(GateError):
    """RG011: a job's owner changed, or a completed job's model, version or config changed or it left
    completed, by someone who is not a regate admin."""

    sqlstate = "RG011"


class DeploymentRefusedError(GateError):
    """RG012: a deployment was refused: the job is not completed, its verdict blocks it (or failed closed after an
    error), or it has no verdict, and no override in effect names that verdict."""

    sqlstate = "RG012"


SQLSTATE_ERRORS: dict[str, type[GateError]] = {
    cls.sqlstate: cls
    for cls in (
        InvalidMetricError,
        JobCompletedError,
        MetricsAppendOnlyError,
        InvalidBaselineError,
        InvalidGateConfigError,
        VerdictsAppendOnlyError,
        DirectionUnknownError,
        JobNotFoundError,
        VerdictTamperingError,
        UntrustedTriggerError,
        FrozenJobError,
        DeploymentRefusedError,
    )
}


def translate(exc: Exception) -> Exception:
    """The regate exception for a psycopg error raised with an RG SQLSTATE; other exceptions unchanged.

    Use as ``except psycopg.Error as exc: raise translate(exc) from exc``.
    """
    sqlstate = getattr(exc, "sqlstate", None)
    if not sqlstate or not sqlstate.startswith("RG"):
        return exc
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag is not None else None) or str(exc)
    cls = SQLSTATE_ERRORS.get(sqlstate, GateError)
    return cls(message, sqlstate)
