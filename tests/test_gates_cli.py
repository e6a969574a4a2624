"""`regate-db gates` as a user runs it (real processes against real databases), and the Python API behind it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

from regate_db import gates
from tests.helpers import complete, log, new_job, run


def test_gates_off_needs_a_reason(db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    missing = run(regate_cmd, cli_env, "--dsn", db_dsn, "gates", "off")
    assert missing.returncode == 2
    assert "Missing option '--reason'" in missing.stderr
    blank = run(regate_cmd, cli_env, "--dsn", db_dsn, "gates", "off", "--reason", "  ")
    assert blank.returncode == 2
    assert blank.stderr == "error: disable_gates: reason must be a non-empty text saying why\n"
    status = run(regate_cmd, cli_env, "--dsn", db_dsn, "gates", "status")
    assert status.stdout.strip() == "regression gates: ON (never switched off)"


def _complete_a_job(conn: psycopg.Connection[Any]) -> str:
    conn.execute(
        "select regate.create_baseline(model_name => 'm', metric_name => 'eval_loss', baseline_value => 0.4,"
        " threshold => 0.5)"
    )
    job = new_job(conn, "m")
    log(conn, job, 1, eval_loss=0.9)
    return str(complete(conn, job)[0])


def test_gates_off_status_on(
    db: psycopg.Connection[Any], db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    user = db.info.user
    off = run(regate_cmd, cli_env, "--dsn", db_dsn, "gates", "off", "--reason", "INC-142: eval set corrupted")
    assert off.returncode == 0, off.stderr
    assert off.stdout.startswith(f"regression gates are now OFF for every job (by {user} at ")
    assert "reason: INC-142: eval set corrupted" in off.stdout

    status = run(regate_cmd, cli_env, "--dsn", db_dsn, "gates", "status")
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[0].startswith("regression gates: OFF since ")
    assert lines[1:] == [f"  changed by: {user}", "  reason:     INC-142: eval set corrupted"]
    assert _complete_a_job(db) == "not_run"

    again = run(regate_cmd, cli_env, "--dsn", db_dsn, "gates", "off", "--reason", "twice")
    assert again.returncode == 0
    assert "were already OFF" in again.stdout and "INC-142" in again.stdout and "nothing changed" in again.stdout

    on = run(regate_cmd, cli_env, "--dsn", db_dsn, "gates", "on", "--reason", "INC-142 fixed")
    assert on.returncode == 0, on.stderr
    assert on.stdout.startswith("regression gates are now ON for every job")
    assert "reason: INC-142 fixed" in on.stdout
    assert "already ON" in run(regate_cmd, cli_env, "--dsn", db_dsn, "gates", "on").stdout
    status = run(regate_cmd, cli_env, "--dsn", db_dsn, "gates", "status")
    assert status.stdout.startswith("regression gates: ON since ") and "INC-142 fixed" in status.stdout
    assert _complete_a_job(db) == "failed"  # validated again (eval_loss 0.9 is above the threshold 0.5)


@pytest.fixture
def login_role(db: psycopg.Connection[Any], db_dsn: str) -> Iterator[tuple[str, str]]:
    """A login role that is not an admin (not superuser, not the schema owner), and a DSN that logs in as it."""
    name = f"regate_demo_user_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    db.execute(f"create role {name} login password '{password}'")
    try:
        yield name, conninfo.make_conninfo(db_dsn, user=name, password=password)
    finally:
        db.execute(f"drop owned by {name}")
        db.execute(f"drop role {name}")


def test_non_admin_gets_one_clear_line(
    db: psycopg.Connection[Any], login_role: tuple[str, str], cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    name, dsn = login_role
    no_usage = run(regate_cmd, cli_env, "--dsn", dsn, "gates", "status")
    assert no_usage.returncode == 2
    assert no_usage.stderr == (
        f"error: permission denied for schema regate: role {name} cannot read the gate status;"
        " ask an admin to grant usage on schema regate\n"
    )

    db.execute("select regate.grant_usage(%s, 'reader')", (name,))
    for state in ("off", "on"):
        args = ["gates", state, "--reason", "let my model through"]
        proc = run(regate_cmd, cli_env, "--dsn", dsn, *args)
        assert proc.returncode == 2
        assert proc.stderr == (
            "error: permission denied: only a regate admin (a member of regate_admin, a member of the owner of schema"
            f" regate, or a superuser) may switch the gates {state} (connected as {name})\n"
        )
    status = run(regate_cmd, cli_env, "--dsn", dsn, "gates", "status")  # reading the switch is allowed
    assert status.returncode == 0, status.stderr
    assert status.stdout.strip() == "regression gates: ON (never switched off)"


def test_gates_on_a_database_without_the_schema(empty_db: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    dbname = conninfo.conninfo_to_dict(empty_db)["dbname"]
    for args in (["status"], ["off", "--reason", "x"], ["on"]):
        proc = run(regate_cmd, cli_env, "--dsn", empty_db, "gates", *args)
        assert proc.returncode == 2
        assert proc.stderr == f"error: the regate schema is not installed in {dbname}: run regate-db migrate\n"
        assert proc.stdout == ""


def test_gates_python_api(db: psycopg.Connection[Any], login_role: tuple[str, str]) -> None:
    assert gates.gate_status(db) == gates.GateSwitch(enabled=True, changed_by=None, changed_at=None, reason=None)
    off = gates.disable_gates(db, "maintenance")
    assert (off.enabled, off.reason, off.changed, off.changed_by) == (False, "maintenance", True, db.info.user)
    again = gates.disable_gates(db, "other")
    assert (again.enabled, again.reason, again.changed) == (False, "maintenance", False)
    assert gates.gate_status(db) == gates.GateSwitch(False, db.info.user, off.changed_at, "maintenance")
    with pytest.raises(gates.GateReasonError):
        gates.disable_gates(db, " ")
    on = gates.enable_gates(db)
    assert (on.enabled, on.changed) == (True, True)
    assert gates.enable_gates(db).changed is False

    name, dsn = login_role
    db.execute("select regate.grant_usage(%s, 'reader')", (name,))
    with psycopg.connect(dsn, autocommit=True) as other:
        with pytest.raises(gates.GatePermissionError, match="may switch the gates off"):
            gates.disable_gates(other, "nope")
        assert gates.gate_status(other).enabled is True
