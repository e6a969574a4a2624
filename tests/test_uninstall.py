"""`regate-db uninstall` (issue 11): drops regate-db and its data after a confirmation, refuses while objects of the
user's depend on it unless --cascade, says what stays (the cluster-wide roles), and a later migrate installs it
afresh."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from regate_db.uninstall import plan_uninstall
from tests.helpers import complete, log, new_job, run
from tests.security.conftest import Logins

Conn = psycopg.Connection[Any]


def _schemas(db: Conn) -> list[str]:
    rows = db.execute(
        "select nspname from pg_namespace where nspname in ('regate', 'regate_internal') order by 1"
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def logins(db: Conn, db_dsn: str) -> Iterator[Logins]:
    made = Logins(db, db_dsn)
    yield made
    made.close()


def test_uninstall_asks_and_without_a_terminal_needs_yes(
    db: Conn, db_dsn: str, regate_cmd: list[str], cli_env: dict[str, str]
) -> None:
    job = new_job(db)
    log(db, job, 1, eval_loss=0.5)
    complete(db, job)
    dry = run(regate_cmd, cli_env, "uninstall", "--dsn", db_dsn, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "drops schemas regate and regate_internal (1 jobs, 1 metric rows, 0 baselines, 1 verdicts)" in dry.stdout
    refused = run(regate_cmd, cli_env, "uninstall", "--dsn", db_dsn)  # stdin is not a terminal
    assert refused.returncode == 2
    assert refused.stderr.strip() == "error: uninstall drops data: pass --yes to confirm (there is no terminal to ask)"
    assert _schemas(db) == ["regate", "regate_internal"]

    done = run(regate_cmd, cli_env, "uninstall", "--dsn", db_dsn, "--yes")
    assert done.returncode == 0, done.stderr
    assert f"regate-db uninstalled from {db.info.dbname}: schemas regate and regate_internal dropped" in done.stdout
    assert "drop role regate_admin, regate_writer, regate_reader;" in done.stdout
    assert _schemas(db) == []
    # the roles stay: another database of the server may use them
    assert db.execute(
        "select count(*) from pg_roles where rolname in ('regate_reader', 'regate_writer', 'regate_admin')"
    ).fetchone() == (3,)

    again = run(regate_cmd, cli_env, "uninstall", "--dsn", db_dsn, "--yes")
    assert again.returncode == 2
    assert "regate-db is not installed" in again.stderr and "nothing to uninstall" in again.stderr

    # migrate installs it afresh, and the gate works again
    migrated = run(regate_cmd, cli_env, "migrate", "--dsn", db_dsn)
    assert migrated.returncode == 0, migrated.stderr
    db.execute(
        "select regate.create_baseline(model_name => 'gpt-small', metric_name => 'eval_loss', baseline_value => 0.4,"
        " greater_is_better => false, threshold => 0.45)"
    )
    job = new_job(db)
    log(db, job, 1, eval_loss=0.5)
    assert complete(db, job)[0] == "failed"


def test_objects_that_depend_on_regate_block_it_unless_cascade(
    db: Conn, db_dsn: str, regate_cmd: list[str], cli_env: dict[str, str]
) -> None:
    db.execute("create view public.my_verdicts as select id, status from regate.validation_results")
    db.execute("create table public.my_runs (job uuid references regate.local_training_jobs (id))")
    db.execute("create trigger my_audit after insert on public.my_runs execute function regate_internal._append_only()")
    plan = plan_uninstall(db)
    assert plan.dependents == [
        "table constraint my_runs_job_fkey on public.my_runs",
        "trigger my_audit on public.my_runs",
        "view public.my_verdicts",
    ]
    refused = run(regate_cmd, cli_env, "uninstall", "--dsn", db_dsn, "--yes")
    assert refused.returncode == 2
    assert "3 object(s) outside regate-db's schemas depend on them" in refused.stderr
    assert "view public.my_verdicts" in refused.stderr and "--cascade" in refused.stderr
    assert _schemas(db) == ["regate", "regate_internal"]

    done = run(regate_cmd, cli_env, "uninstall", "--dsn", db_dsn, "--yes", "--cascade", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dropped"] is True and len(report["dependents"]) == 3
    assert report["leftover_statements"][-1] == "drop role regate_admin, regate_writer, regate_reader;"
    assert _schemas(db) == []
    assert db.execute("select to_regclass('public.my_verdicts')").fetchone() == (None,)
    # the user's table stays; only its foreign key and trigger went with regate-db
    assert db.execute("select to_regclass('public.my_runs') is not null").fetchone() == (True,)


def test_a_writer_cannot_uninstall(db: Conn, logins: Logins, regate_cmd: list[str], cli_env: dict[str, str]) -> None:
    name = logins.role("writer")
    dsn = psycopg.conninfo.make_conninfo(logins.dsn, user=name, password=f"pw-{name}")
    refused = run(regate_cmd, cli_env, "uninstall", "--dsn", dsn, "--yes")
    assert refused.returncode == 2
    assert "only the owner of schemas regate and regate_internal (or a superuser) may uninstall regate-db" in (
        refused.stderr
    )
    assert f"connected as {name}" in refused.stderr
    assert _schemas(db) == ["regate", "regate_internal"]
