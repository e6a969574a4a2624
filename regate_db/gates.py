"""The global kill switch of the regression gate, from Python.

Thin typed wrappers over ``regate.disable_gates(reason)``, ``regate.enable_gates(reason)`` and
``regate.gate_status()`` (see docs/sql-reference.md). Only a regate admin (a member of ``regate_admin``, a member of
the role that owns schema ``regate``, or a superuser) may flip the switch; every regate role may read it. Every
failure a user can cause ends as a :class:`~regate_db.errors.RegateError` with a one-line message. The functions
run in the caller's transaction: use an autocommit connection, or commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from regate_db.errors import RegateError, SchemaNotInstalledError, translate


class GatePermissionError(RegateError):
    """The session's login may not do this (SQLSTATE 42501): it is not a gate admin, or lacks schema usage."""


class GateReasonError(RegateError):
    """``disable_gates`` was given no reason (SQLSTATE 22023)."""


@dataclass(frozen=True)
class GateSwitch:
    """The state of the global switch: on or off, and who changed it when and why (None if never changed).

    ``changed`` is True when the call that returned this state flipped the switch (``disable_gates`` /
    ``enable_gates``); False when the switch already was in the requested state, and for ``gate_status``.
    """

    enabled: bool
    changed_by: str | None
    changed_at: datetime | None
    reason: str | None
    changed: bool = False


def require_schema(conn: psycopg.Connection[Any], *, function: str | None = None) -> None:
    """Raise :class:`SchemaNotInstalledError` when the database has no ``regate`` schema.

    With ``function`` (a name such as ``'gate_status'``) the schema must also define ``regate.<function>``, so
    that a database migrated by an older regate-db gets the same advice: run ``regate-db migrate``. Reads the
    catalogs only, so it needs no privilege on the schema.
    """
    row = conn.execute(
        "select n.oid is not null,"
        " exists (select from pg_catalog.pg_proc as p where p.pronamespace = n.oid and p.proname = %s)"
        " from (select 1) as one"
        " left join pg_catalog.pg_namespace as n on n.nspname = 'regate'",
        (function or "",),
    ).fetchone()
    installed, defined = row if row is not None else (False, False)
    if not installed:
        raise SchemaNotInstalledError(
            f"the regate schema is not installed in {conn.info.dbname}: run regate-db migrate"
        )
    if function and not defined:
        raise SchemaNotInstalledError(
            f"the regate schema in {conn.info.dbname} is older than this regate-db (regate.{function} is missing):"
            " run regate-db migrate"
        )


def _translate(conn: psycopg.Connection[Any], exc: psycopg.Error, action: str) -> Exception:
    """The exception to raise for a psycopg error of ``action`` (e.g. 'switch the gates off')."""
    primary = exc.diag.message_primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        if primary.startswith("permission denied for schema"):
            return GatePermissionError(
                f"{primary}: role {conn.info.user} cannot {action}; ask an admin to grant usage on schema regate"
            )
        if primary.startswith("permission denied for function"):
            return GatePermissionError(
                f"permission denied: only a regate admin (a member of regate_admin, a member of the owner of schema"
                f" regate, or a superuser) may {action} (connected as {conn.info.user})"
            )
        return GatePermissionError(f"{primary} (connected as {conn.info.user})")
    if isinstance(exc, pg_errors.InvalidParameterValue):
        return GateReasonError(primary)
    if isinstance(exc, pg_errors.InvalidSchemaName):
        return SchemaNotInstalledError(
            f"the regate schema is not installed in {conn.info.dbname}: run regate-db migrate"
        )
    return translate(exc)


_SWITCH_SQL = """
select coalesce(r.enabled, %(default)s), r.changed_by, r.changed_at, r.reason,
    coalesce(r.changed_at = now(), false) as changed
from regate.{fn}(%(reason)s) as r
"""


def _flip(conn: psycopg.Connection[Any], fn: str, reason: str | None, *, enabled: bool) -> GateSwitch:
    action = "switch the gates " + ("on" if enabled else "off")
    try:
        row = conn.execute(_SWITCH_SQL.format(fn=fn), {"reason": reason, "default": enabled}).fetchone()
    except psycopg.Error as exc:
        raise _translate(conn, exc, action) from exc
    assert row is not None
    return GateSwitch(enabled=row[0], changed_by=row[1], changed_at=row[2], reason=row[3], changed=row[4])


def disable_gates(conn: psycopg.Connection[Any], reason: str) -> GateSwitch:
    """Switch the regression gate off for every job (``regate.disable_gates``): completed jobs then get
    ``validation_status = 'not_run'``. The reason is required and recorded with the session's login.

    Raises :class:`GateReasonError` for an empty reason and :class:`GatePermissionError` unless the login is a
    superuser or a member of the schema owner's role. When the gates were already off, nothing changes and the
    returned state (``changed`` False) is the existing one.
    """
    # The rule (a non-blank reason) lives in regate.disable_gates alone; its 22023 becomes GateReasonError.
    return _flip(conn, "disable_gates", reason, enabled=False)


def enable_gates(conn: psycopg.Connection[Any], reason: str | None = None) -> GateSwitch:
    """Switch the regression gate back on (``regate.enable_gates``); admins only, like :func:`disable_gates`."""
    return _flip(conn, "enable_gates", reason, enabled=True)


def gate_status(conn: psycopg.Connection[Any]) -> GateSwitch:
    """The global switch (``regate.gate_status()``): enabled, and who changed it when and why."""
    try:
        row = conn.execute(
            "select s.enabled, s.changed_by, s.changed_at, s.reason from regate.gate_status() as s"
        ).fetchone()
    except psycopg.Error as exc:
        raise _translate(conn, exc, "read the gate status") from exc
    assert row is not None
    return GateSwitch(enabled=row[0], changed_by=row[1], changed_at=row[2], reason=row[3])
