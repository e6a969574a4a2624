"""The `regate-db` command as a user runs it: real processes, real servers, one clear line on failure."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from regate_db.connect import EMBEDDED, NO_DATABASE_HELP, DsnChoice, choose_dsn, resolve_dsn
from regate_db.errors import NoDatabaseError
from regate_db.resources import default_source
from tests.conftest import ServerInfo
from tests.helpers import run


def test_resolution_order() -> None:
    env = {"REGATE_DATABASE_URL": "dbname=a", "DATABASE_URL": "dbname=b", "PGHOST": "h"}
    assert resolve_dsn("dbname=x", env) == "dbname=x"
    assert resolve_dsn(None, env) == "dbname=a"
    assert resolve_dsn(None, {"DATABASE_URL": "dbname=b", "PGHOST": "h"}) == "dbname=b"
    assert resolve_dsn(None, {"PGHOST": "h"}) == ""  # libpq reads its own environment
    assert resolve_dsn(None, {"PGDATABASE": "d"}) == ""
    assert resolve_dsn(None, {}) is None


def test_choice_and_source_of_the_database() -> None:
    env = {"REGATE_DATABASE_URL": "dbname=a", "DATABASE_URL": "dbname=b", "PGHOST": "h"}
    assert choose_dsn("dbname=x", env=env) == DsnChoice("dbname=x", "--dsn")
    assert choose_dsn(None, env=env) == DsnChoice("dbname=a", "$REGATE_DATABASE_URL")
    assert choose_dsn(None, env={"DATABASE_URL": "dbname=b"}) == DsnChoice("dbname=b", "$DATABASE_URL")
    assert choose_dsn(None, env={"PGHOST": "h", "PGUSER": "u"}) == DsnChoice(
        "", "the libpq environment (PGHOST, PGUSER)"
    )
    # --embedded given by the user wins over the environment, and says what it overrode
    assert choose_dsn(None, embedded=True, env=env) == DsnChoice(
        None, EMBEDDED, ("$REGATE_DATABASE_URL", "$DATABASE_URL", "PGHOST")
    )
    # a command's own fallback to the embedded server (the demo) does not
    assert choose_dsn(None, embedded_default=True, env=env) == DsnChoice("dbname=a", "$REGATE_DATABASE_URL")
    assert choose_dsn(None, embedded_default=True, env={}) == DsnChoice(None, EMBEDDED)
    with pytest.raises(NoDatabaseError, match="--dsn and --embedded name two different databases"):
        choose_dsn("dbname=x", embedded=True, env={})
    with pytest.raises(NoDatabaseError):
        choose_dsn(None, env={})


def test_a_connection_failure_names_where_the_database_came_from(
    cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    nowhere = "postgresql://nobody@127.0.0.1:1/nowhere"
    for args, env, source in (
        (("status", "--dsn", nowhere), cli_env, "(database from --dsn)"),
        (("status",), {**cli_env, "DATABASE_URL": nowhere}, "(database from $DATABASE_URL)"),
        (("history",), {**cli_env, "REGATE_DATABASE_URL": nowhere}, "(database from $REGATE_DATABASE_URL)"),
        (("migrate",), {**cli_env, "PGHOST": "127.0.0.1", "PGPORT": "1"}, "(database from the libpq environment"),
    ):
        proc = run(regate_cmd, env, *args)
        assert proc.returncode == 2, proc
        assert proc.stderr.startswith("error: cannot connect to ") and source in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_no_database_explains_how_to_give_one(cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    proc = run(regate_cmd, cli_env, "status")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {NO_DATABASE_HELP}"
    assert "--embedded" in proc.stderr and "Traceback" not in proc.stderr


def test_environment_variables_are_used_in_order(db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    env = {**cli_env, "REGATE_DATABASE_URL": db_dsn, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere"}
    assert run(regate_cmd, env, "status").returncode == 0
    env = {**cli_env, "DATABASE_URL": db_dsn}
    assert run(regate_cmd, env, "status").returncode == 0
    params = psycopg.conninfo.conninfo_to_dict(db_dsn)
    env = {
        **cli_env,
        "PGHOST": str(params["host"]),
        "PGPORT": str(params["port"]),
        "PGUSER": str(params["user"]),
        "PGDATABASE": str(params["dbname"]),
    }
    if params.get("password"):
        env["PGPASSWORD"] = str(params["password"])
    proc = run(regate_cmd, env, "status")
    assert proc.returncode == 0, proc.stderr
    latest = default_source().versioned()[-1].version
    assert latest is not None
    assert "schema version:  " + latest in proc.stdout


def test_migrate_twice_says_nothing_to_do(empty_db: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    first = run(regate_cmd, cli_env, "--dsn", empty_db, "migrate")
    assert first.returncode == 0, first.stderr
    for f in default_source().versioned():
        assert f"applied {f.filename}" in first.stdout
    assert "done: schema version" in first.stdout
    second = run(regate_cmd, cli_env, "--dsn", empty_db, "migrate")
    assert second.returncode == 0
    assert "nothing to do: schema is up to date" in second.stdout


def test_dry_run_and_show_sql(empty_db: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    first = default_source().versioned()[0]
    proc = run(regate_cmd, cli_env, "--dsn", empty_db, "migrate", "--dry-run", "--show-sql")
    assert proc.returncode == 0, proc.stderr
    assert f"apply   {first.filename}" in proc.stdout
    assert first.text.strip().splitlines()[0] in proc.stdout  # the SQL itself
    assert "dry run: nothing was changed" in proc.stdout
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("select to_regnamespace('regate')").fetchone() == (None,)


def test_status_exit_code_reports_pending(empty_db: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    before = run(regate_cmd, cli_env, "--dsn", empty_db, "status", "--exit-code")
    assert before.returncode == 1
    assert "schema version:  (not installed)" in before.stdout
    for f in default_source().versioned():
        assert f"  {f.filename}" in before.stdout
    assert run(regate_cmd, cli_env, "--dsn", empty_db, "status").returncode == 0  # informational without the flag
    assert run(regate_cmd, cli_env, "--dsn", empty_db, "migrate").returncode == 0
    after = run(regate_cmd, cli_env, "--dsn", empty_db, "status", "--exit-code")
    assert after.returncode == 0, after.stdout
    assert "pending: none" in after.stdout and "drift: none" in after.stdout
    assert "PostgreSQL " in after.stdout


def test_status_shows_drift(db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("update regate_internal.schema_migrations set sha256 = repeat('0', 64) where version = '0001'")
    proc = run(regate_cmd, cli_env, "--dsn", db_dsn, "status", "--exit-code")
    assert proc.returncode == 1
    assert "0001_init.sql changed after it was applied: recorded sha256 " + "0" * 64 in proc.stdout
    migrate = run(regate_cmd, cli_env, "--dsn", db_dsn, "migrate")
    assert migrate.returncode == 2
    assert migrate.stderr.startswith("error: 0001_init.sql changed after it was applied")
    assert "Traceback" not in migrate.stderr


@pytest.mark.parametrize(
    ("dsn_of", "expected"),
    [
        (lambda s: "postgresql://regate@127.0.0.1:1/x?connect_timeout=3", "cannot connect to"),
        (lambda s: s.dsn(user="no_such_role_regate"), "no_such_role_regate"),
        (lambda s: s.dsn("no_such_database_regate"), "no_such_database_regate"),
        (lambda s: "postgresql://[broken", "invalid connection string"),
    ],
    ids=["unreachable", "unknown-role", "missing-database", "malformed"],
)
def test_connection_failures_are_one_clear_line(
    pg_server: ServerInfo, cli_env: dict[str, str], regate_cmd: list[str], dsn_of: object, expected: str
) -> None:
    dsn = dsn_of(pg_server)  # type: ignore[operator]
    proc = run(regate_cmd, cli_env, "--dsn", dsn, "status")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    debug = run(regate_cmd, cli_env, "--debug", "--dsn", dsn, "status")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_wrong_password_is_one_clear_line(
    pg_server: ServerInfo, empty_db: str, cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    if not pg_server.password:
        pytest.skip("the embedded server trusts every local login; REGATE_TEST_DSN with a password covers this")
    proc = run(regate_cmd, cli_env, "--dsn", pg_server.dsn(password="wrong-password"), "status")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "password authentication failed" in proc.stderr


def test_help_lists_commands(cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    proc = run(regate_cmd, cli_env, "--help")
    assert proc.returncode == 0
    for command in ("migrate", "status", "embedded", "demo"):
        assert command in proc.stdout
    assert "--embedded" in proc.stdout and "REGATE_DATABASE_URL" in proc.stdout


def test_embedded_start_reuse_and_stop(tmp_path: Path, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    from tests.conftest import test_root

    root = Path(test_root()) / f"cli-{tmp_path.name}"
    env = {**cli_env, "REGATE_EMBEDDED_DIR": str(root)}
    try:
        first = run(regate_cmd, env, "--embedded", "migrate")
        assert first.returncode == 0, first.stderr
        assert f"data in {root / 'pgdata'}" in first.stderr
        assert "connect with: psql 'postgresql://" in first.stderr
        status = run(regate_cmd, env, "embedded", "status")
        assert "is running" in status.stdout
        dsn = status.stdout.split("psql '")[1].split("'")[0]
        with psycopg.connect(dsn) as conn:  # the server outlives the command, and holds the schema
            assert conn.execute("select regate.schema_version()").fetchone() is not None
        again = run(regate_cmd, env, "--embedded", "migrate")  # reuses the running server
        assert "nothing to do" in again.stdout
        # --embedded, given explicitly (here after the subcommand), wins over the environment and says so
        nowhere = {**env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere"}
        explicit = run(regate_cmd, nowhere, "status", "--embedded")
        assert explicit.returncode == 0, explicit.stderr
        assert "--embedded: using the embedded server, not $DATABASE_URL" in explicit.stderr
        stop = run(regate_cmd, env, "embedded", "stop")
        assert stop.returncode == 0 and "stopped" in stop.stdout
        assert "not running" in run(regate_cmd, env, "embedded", "status").stdout
        assert "was not running" in run(regate_cmd, env, "embedded", "stop").stdout
    finally:
        run(regate_cmd, env, "embedded", "stop")
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def test_missing_schema_is_reported_not_crashed(empty_db: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    proc = run(regate_cmd, cli_env, "--dsn", empty_db, "status")
    assert proc.returncode == 0
    assert "(not installed)" in proc.stdout


def test_database_options_after_the_subcommand(
    db_dsn: str, empty_db: str, cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    status = run(regate_cmd, cli_env, "status", "--dsn", db_dsn)
    assert status.returncode == 0, status.stderr
    assert "pending: none" in status.stdout
    assert run(regate_cmd, cli_env, "gates", "status", "--dsn", db_dsn).stdout.startswith("regression gates: ON")
    # The option after the subcommand wins over the one before it.
    later = run(regate_cmd, cli_env, "--dsn", db_dsn, "status", "--dsn", empty_db)
    assert later.returncode == 0 and "(not installed)" in later.stdout
    assert run(regate_cmd, cli_env, "migrate", "--dry-run", "--dsn", empty_db).stdout.endswith(
        "dry run: nothing was changed\n"
    )


def test_migrate_status_and_gates_speak_json(empty_db: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    import json

    latest = default_source().versioned()[-1].version
    dry = run(regate_cmd, cli_env, "migrate", "--dry-run", "--json", "--dsn", empty_db)
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] is True and planned["plan"]["schema_version"] is None
    assert len(planned["plan"]["pending"]) == len(default_source().versioned())
    first = run(regate_cmd, cli_env, "migrate", "--json", "--dsn", empty_db)
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)  # progress lines go to stderr, only JSON to stdout
    assert done["changed"] is True and done["schema_version"] == latest and done["repeatables_applied"] is True
    assert "applied 0001_init.sql" in first.stderr
    again = json.loads(run(regate_cmd, cli_env, "migrate", "--json", "--dsn", empty_db).stdout)
    assert again == {"changed": False, "applied": [], "repeatables_applied": False, "schema_version": latest}
    status = run(regate_cmd, cli_env, "status", "--json", "--exit-code", "--dsn", empty_db)
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["schema_version"] == latest and state["pending"] == [] and state["drift"] == []
    assert [a["filename"] for a in state["applied"]] == [f.filename for f in default_source().versioned()]
    off = json.loads(
        run(regate_cmd, cli_env, "gates", "off", "--reason", "json test", "--json", "--dsn", empty_db).stdout
    )
    assert (off["enabled"], off["changed"], off["reason"]) == (False, True, "json test")
    shown = json.loads(run(regate_cmd, cli_env, "gates", "status", "--json", "--dsn", empty_db).stdout)
    assert (shown["enabled"], shown["changed"]) == (False, False) and shown["changed_at"] is not None
    on = json.loads(run(regate_cmd, cli_env, "gates", "on", "--json", "--dsn", empty_db).stdout)
    assert (on["enabled"], on["changed"]) == (True, True)
    refused = run(regate_cmd, cli_env, "migrate", "--show-sql", "--json", "--dsn", empty_db)
    assert refused.returncode == 2 and "--show-sql prints SQL, not JSON" in refused.stderr
