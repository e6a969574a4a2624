"""Upgrades from what was released: every archived release (tests/releases/), with data in it, to HEAD.

For each release: install it with the real runner from its own files, write jobs, metrics, baselines and
verdicts through *that release's* API, upgrade with HEAD's files, and check that the data survived, that the gate
still works, that nothing is left behind (no orphans) and that the catalog equals a fresh install's.

The data is read back in ways that survive a restructuring of the SQL: as a superuser (past row-level security),
from the public tables of the SQL contract, by the columns they had in the release, and through
regate.extract_final_metrics. A new release needs no edit here: scripts/release.sh adds its archive.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from regate_db.migrate import migrate
from regate_db.resources import Source, default_source
from tests.catalog import orphans, shipped_text, snapshot
from tests.released import Release, releases

Conn = psycopg.Connection[Any]
Rows = dict[str, dict[Any, tuple[Any, ...]]]

RELEASES = releases()
MODEL = "upgrade-bert"
# The public tables whose rows must survive an upgrade, each with an id column.
TABLES = ["local_training_jobs", "local_training_metrics", "model_baselines", "validation_results"]

GOOD = {"eval_loss": 0.45, "perplexity": 12.0, "accuracy": 0.81}
WARNED = {"eval_loss": 0.47, "perplexity": 15.0, "accuracy": 0.80}  # perplexity over a warning-only baseline
REGRESSED = {"eval_loss": 0.90, "perplexity": 13.0, "accuracy": 0.70}  # critical baselines fail


def job(conn: Conn, model: str = MODEL, config: dict[str, Any] | None = None) -> uuid.UUID:
    row = conn.execute(
        "insert into regate.local_training_jobs (model_name, status, config) values (%s, 'running', %s) returning id",
        (model, Jsonb(config or {})),
    ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def log(conn: Conn, job_id: uuid.UUID, final: dict[str, float]) -> None:
    """Two logged events: an early one, then the final values (eval_loss and perplexity as columns)."""
    conn.execute(
        "insert into regate.local_training_metrics (job_id, step, epoch, train_loss, eval_loss, metrics)"
        " values (%s, 10, 0.5, 1.9, 1.2, %s)",
        (job_id, Jsonb({"accuracy": 0.5})),
    )
    conn.execute(
        "insert into regate.local_training_metrics (job_id, step, epoch, train_loss, eval_loss, perplexity, metrics)"
        " values (%s, 20, 1.0, 0.8, %s, %s, %s)",
        (job_id, final["eval_loss"], final["perplexity"], Jsonb({"accuracy": final["accuracy"]})),
    )


def complete(conn: Conn, job_id: uuid.UUID) -> tuple[str, int]:
    row = conn.execute(
        "update regate.local_training_jobs set status = 'completed' where id = %s"
        " returning validation_status, validation_result_id",
        (job_id,),
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def write_data(conn: Conn) -> dict[str, uuid.UUID]:
    """Jobs, metrics, baselines and verdicts, written through the API of the release that is installed."""
    # A superseded baseline (kept inactive), then the active ones: critical and warning-only.
    conn.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'eval_loss', baseline_value => 0.5,"
        " threshold => 0.8)",
        (MODEL,),
    )
    conn.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'eval_loss', baseline_value => 0.45,"
        " threshold => 0.6, description => 'accepted after run 7')",
        (MODEL,),
    )
    conn.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'accuracy', baseline_value => 0.8,"
        " greater_is_better => true, min_relative_change => -0.05)",
        (MODEL,),
    )
    conn.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'perplexity', baseline_value => 12,"
        " threshold => 14, severity => 'warning')",
        (MODEL,),
    )
    jobs = {
        "good": job(conn),
        "warned": job(conn),
        "regressed": job(conn),
        "blocked": job(conn, config={"blockOnCriticalFailures": True, "learning_rate": 3e-5}),
        "unbaselined": job(conn, model="another-model"),
        "running": job(conn),  # completed only after the upgrade
    }
    for name, final in [
        ("good", GOOD),
        ("warned", WARNED),
        ("regressed", REGRESSED),
        ("blocked", REGRESSED),
        ("unbaselined", GOOD),
        ("running", GOOD),
    ]:
        log(conn, jobs[name], final)
    verdicts = {
        name: complete(conn, jobs[name])[0] for name in ["good", "warned", "regressed", "blocked", "unbaselined"]
    }
    assert verdicts == {
        "good": "passed",
        "warned": "warning",
        "regressed": "failed",
        "blocked": "blocked",
        "unbaselined": "passed",
    }
    # A re-validation on demand, and the explicit gate of a workflow engine (passing, and blocking).
    conn.execute("select regate.validate_training_results(job_id => %s)", (jobs["good"],))
    row = conn.execute(
        "select (r).status, (r).blocked from regate.run_gate(model_name => %s, current_metrics => %s) as r",
        (MODEL, Jsonb(GOOD)),
    ).fetchone()
    assert row == ("passed", False)
    row = conn.execute(
        "select (r).status, (r).blocked"
        " from regate.run_gate(model_name => %s, current_metrics => %s, job_id => %s) as r",
        (MODEL, Jsonb(REGRESSED), jobs["regressed"]),
    ).fetchone()
    assert row == ("failed", True)
    return jobs


def columns(conn: Conn) -> dict[str, list[str]]:
    """The columns each public table has in the installed release."""
    return {
        table: [
            r[0]
            for r in conn.execute(
                "select a.attname from pg_attribute a where a.attrelid = %s::regclass and a.attnum > 0"
                " and not a.attisdropped order by a.attnum",
                (f"regate.{table}",),
            ).fetchall()
        ]
        for table in TABLES
    }


def read_rows(conn: Conn, cols: dict[str, list[str]]) -> Rows:
    """Every row of the public tables, by id, restricted to the given columns."""
    rows: Rows = {}
    for table, names in cols.items():
        query = sql.SQL("select {} from regate.{} order by id").format(
            sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(table)
        )
        rows[table] = {r[names.index("id")]: tuple(r) for r in conn.execute(query).fetchall()}
    return rows


def final_metrics(conn: Conn, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """regate.extract_final_metrics of each job: the public way to the latest value of every metric."""
    found = {}
    for job_id in job_ids:
        row = conn.execute("select regate.extract_final_metrics(job_id => %s)", (job_id,)).fetchone()
        assert row is not None
        found[job_id] = row[0]
    return found


def differences(before: Rows, after: Rows, cols: dict[str, list[str]]) -> list[str]:
    """Rows gone, changed (which columns, from what to what) or new, per table."""
    found = []
    for table, rows in before.items():
        for key, old in rows.items():
            new = after[table].get(key)
            if new is None:
                found.append(f"{table} id {key} is gone")
            elif new != old:
                changed = [f"{c}: {o!r} -> {n!r}" for c, o, n in zip(cols[table], old, new, strict=True) if o != n]
                found.append(f"{table} id {key} changed: {', '.join(changed)}")
        found += [f"{table} id {key} appeared" for key in after[table].keys() - rows.keys()]
    return found


def bookkeeping(conn: Conn) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The runner's records (in regate_internal since 0.2; regate-db 0.1.0 kept them in regate)."""
    row = conn.execute("select to_regclass('regate_internal.schema_migrations') is not null").fetchone()
    schema = "regate_internal" if row and row[0] else "regate"
    return (
        conn.execute(f"select version, filename, sha256 from {schema}.schema_migrations order by 1").fetchall(),
        conn.execute(f"select filename, sha256, schema_version from {schema}.schema_repeatables order by 1").fetchall(),
    )


@pytest.mark.slow
@pytest.mark.parametrize("release", RELEASES, ids=[r.version for r in RELEASES])
def test_upgrade_from_release_keeps_the_data_and_equals_a_fresh_install(
    release: Release, tmp_path: Path, new_database: Callable[[], str]
) -> None:
    head = default_source()
    old = release.extract(tmp_path / release.version)
    with psycopg.connect(new_database(), autocommit=True) as conn:
        migrate(conn)
        fresh = snapshot(conn), bookkeeping(conn)

    with psycopg.connect(new_database(), autocommit=True) as conn:
        super_row = conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()
        assert super_row == (True,), "the upgrade test writes and reads past row-level security: run it as a superuser"
        release.migrate_function(tmp_path / release.version)(conn, old)
        assert bookkeeping(conn)[0] == [(f.version, f.filename, f.sha256) for f in old.versioned()]
        jobs = write_data(conn)
        cols = columns(conn)
        before = read_rows(conn, cols)
        metrics_before = final_metrics(conn, list(jobs.values()))
        assert {r[cols["validation_results"].index("source")] for r in before["validation_results"].values()} == {
            "auto",
            "manual",
            "gate",
        }

        migrate(conn, head)

        # Everything written through the old release is still there, unchanged.
        changed = differences(before, read_rows(conn, cols), cols)
        assert not changed, f"data changed by the upgrade from {release.version}:\n" + "\n".join(changed)
        assert final_metrics(conn, list(jobs.values())) == metrics_before
        # Nothing left behind that HEAD's files do not define, and the catalog of a fresh install.
        left = orphans(conn, shipped_text(head))
        assert not left, f"left behind by the upgrade from {release.version}: " + "; ".join(left)
        upgraded = snapshot(conn), bookkeeping(conn)
        for kind, rows in fresh[0].items():
            assert upgraded[0][kind] == rows, (
                f"{kind} after the upgrade from {release.version} differ from a fresh install"
            )
        assert upgraded[1] == fresh[1]

        # The gate still works: on a job whose metrics were logged before the upgrade, with the old baselines...
        status, result_id = complete(conn, jobs["running"])
        assert status == "passed"
        row = conn.execute(
            "select job_id, status, source, metrics from regate.validation_results where id = %s", (result_id,)
        ).fetchone()
        assert row == (jobs["running"], "passed", "auto", metrics_before[jobs["running"]])
        # ...and on a job created after it.
        new_job = job(conn)
        log(conn, new_job, REGRESSED)
        status, result_id = complete(conn, new_job)
        assert status == "failed"
        row = conn.execute(
            "select job_id, status, blocked from regate.validation_results where id = %s", (result_id,)
        ).fetchone()
        assert row == (new_job, "failed", False)


@pytest.mark.slow
def test_upgrade_drops_a_function_that_head_no_longer_defines(tmp_path: Path, new_database: Callable[[], str]) -> None:
    """A release's function that HEAD renamed is dropped by the upgrade (sql/900_cleanup.sql): no orphan is left
    and the catalog equals a fresh install's."""
    head = default_source()
    old_sql = tmp_path / "sql"
    old_sql.mkdir()
    for f in head.repeatable():
        (old_sql / f.filename).write_text(f.text)
    (old_sql / "999_old.sql").write_text(
        "create or replace function regate.old_name() returns int language sql security invoker as $$ select 1 $$;\n"
    )
    old = Source(head.migrations, old_sql)
    with psycopg.connect(new_database(), autocommit=True) as conn:
        migrate(conn)
        fresh = snapshot(conn)
    with psycopg.connect(new_database(), autocommit=True) as conn:
        migrate(conn, old)
        assert orphans(conn, shipped_text(head)) == ["function regate.old_name()"]
        migrate(conn, head)  # re-applies sql/ (it changed); 900_cleanup.sql drops regate.old_name()
        assert orphans(conn, shipped_text(head)) == []
        assert snapshot(conn)["functions"] == fresh["functions"]
