"""Retention (regate.purge_metrics, regate-db purge): the raw metric rows of old finished jobs go, the rows of their
final values stay, and everything that reads final values answers exactly as before: extract_final_metrics (bit for
bit, NaN and infinities included), re-validation, promotion to baselines, rolling references. Only admins purge; the
metrics table stays append-only for everyone else, and for admins outside the purge. Batches lock only the jobs
they purge (skipping those others hold) and never wait; at scale, with trainers logging and jobs completing
alongside, nothing deadlocks or times out and every final value survives."""

from __future__ import annotations

import json
import math
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from regate_db import cli_retention, release
from regate_db.clikit import Options
from tests.helpers import FINALS_FROM_RAW_ROWS, complete, log, new_job, refused, run
from tests.security.conftest import Logins

Conn = psycopg.Connection[Any]

FIXED = ("epoch", "train_loss", "eval_loss", "perplexity", "learning_rate", "grad_norm")

PURGE = (
    "select jobs_purged, rows_deleted, rows_kept, jobs_remaining"
    " from regate.purge_metrics(completed_before => %s, model_name => %s, batch_jobs => %s, batch_rows => %s)"
)

# --- helpers --------------------------------------------------------------------------------------------------


def backdate(db: Conn, jobs: list[uuid.UUID], days: float) -> None:
    """Move the jobs' completed_at and updated_at `days` back in time, as if they had run then (their order kept).
    Triggers are off for this one statement (a superuser's session_replication_role): _100_timestamps would set
    updated_at."""
    with db.transaction():
        db.execute("set local session_replication_role = replica")
        db.execute(
            "update regate.local_training_jobs set updated_at = updated_at - make_interval(secs => %s),"
            " completed_at = completed_at - make_interval(secs => %s) where id = any(%s)",
            (days * 86400, days * 86400, jobs),
        )


def finals(db: Conn, job: uuid.UUID) -> tuple[str | None, str | None]:
    """extract_final_metrics as text, and the steps its values come from (bit-exact comparisons)."""
    row = db.execute(
        "select regate.extract_final_metrics(%s)::text, (regate_internal._final_metrics(%s)).steps::text", (job, job)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def raw_finals(db: Conn, job: uuid.UUID) -> str | None:
    row = db.execute(FINALS_FROM_RAW_ROWS, (job,)).fetchone()
    assert row is not None
    return str(row[0]) if row[0] is not None else None


def row_ids(db: Conn, job: uuid.UUID) -> set[int]:
    return {r[0] for r in db.execute("select id from regate.local_training_metrics where job_id = %s", (job,))}


def candidates(db: Conn, job: uuid.UUID) -> int:
    """The metric names recorded for the job (regate_internal.metric_names), which a purge keeps."""
    row = db.execute(
        "select count(distinct metric_name) from regate_internal.metric_names where job_id = %s", (job,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def expected_kept(db: Conn, job: uuid.UUID) -> set[int]:
    """The oracle, from the job's rows as stored: for each metric, the id of the row with the highest (step, id)
    where it is present (a non-NULL column, or a key of metrics)."""
    best: dict[str, tuple[int, int]] = {}
    cols = ", ".join(FIXED)
    for row in db.execute(
        f"select id, step, {cols}, metrics from regate.local_training_metrics where job_id = %s", (job,)
    ):
        rid, step, *values, metrics = row
        names = [n for n, v in zip(FIXED, values, strict=True) if v is not None] + list(metrics)
        for name in names:
            if name not in best or (step, rid) > best[name]:
                best[name] = (step, rid)
    return {rid for _, rid in best.values()}


def purge_all(
    db: Conn,
    before: str = "now() - interval '1 day'",
    *,
    model: str | None = None,
    batch_jobs: int = 100,
    batch_rows: int = 100_000,
) -> list[tuple[int, int, int, int]]:
    """Call purge_metrics until no job remains; the result of every call."""
    calls: list[tuple[int, int, int, int]] = []
    cutoff = db.execute(f"select {before}").fetchone()
    assert cutoff is not None
    while True:
        row = db.execute(PURGE, (cutoff[0], model, batch_jobs, batch_rows)).fetchone()
        assert row is not None
        calls.append((int(row[0]), int(row[1]), int(row[2]), int(row[3])))
        if row[3] == 0:
            return calls
        assert row[0] or row[1], f"no progress while {row[3]} jobs remain: {calls}"
        assert len(calls) < 10_000


def trained(db: Conn, model: str, steps: int = 20, *, status: str = "completed") -> uuid.UUID:
    """A job of `model` with `steps` rows of train_loss and accuracy (eval_loss every 5th step), then `status`."""
    job = new_job(db, model)
    db.execute(
        "insert into regate.local_training_metrics (job_id, step, train_loss, eval_loss, metrics)"
        " select %s, g, 2.0 / g, case when g %% 5 = 0 then 2.5 / g end,"
        " jsonb_build_object('accuracy', 0.5 + g / (2.0 * %s))"
        " from generate_series(1, %s) as g",
        (job, steps, steps),
    )
    if status == "completed":
        complete(db, job)
    else:
        db.execute("update regate.local_training_jobs set status = %s where id = %s", (status, job))
    return job


# --- what is kept ---------------------------------------------------------------------------------------------


def test_a_purge_keeps_exactly_the_rows_of_final_values_and_the_final_metrics_bit_for_bit(db: Conn) -> None:
    job = new_job(db, "ret-model")
    log(db, job, 1, metrics={"rare": 0.123456789012345678})  # logged once, at step 1
    first = log(db, job, 1, train_loss=3.0, metrics={"accuracy": 0.1})
    log(db, job, 2, train_loss=2.0, metrics={"accuracy": 0.2})
    log(db, job, 3, train_loss=1.5, eval_loss=1.7)
    tie_a = log(db, job, 4, train_loss=1.25, metrics={"accuracy": 0.4, "f1": "NaN"})
    tie_b = log(db, job, 4, train_loss=float("nan"), grad_norm=float("inf"))  # same step, later row: wins train_loss
    log(db, job, 2, eval_loss=1.9)  # a lower step logged later: not final
    log(db, job, 4, metrics={})  # carries nothing
    complete(db, job)
    before = finals(db, job)
    assert json.loads(before[0] or "null") == {
        "rare": 0.123456789012345678,
        "accuracy": 0.4,
        "f1": "NaN",
        "train_loss": "NaN",
        "grad_norm": "Infinity",
        "eval_loss": 1.7,
    }
    kept = expected_kept(db, job)
    assert first not in kept and tie_a in kept and tie_b in kept and len(kept) == 4
    verdicts = db.execute("select count(*) from regate.validation_results where job_id = %s", (job,)).fetchone()
    backdate(db, [job], 30)

    calls = purge_all(db, model="ret-model")
    assert calls == [(1, 4, 4, 0)]
    assert row_ids(db, job) == kept
    assert finals(db, job) == before
    assert raw_finals(db, job) == before[0]
    assert candidates(db, job) == 6  # every metric's name stays recorded
    assert db.execute("select count(*) from regate.validation_results where job_id = %s", (job,)).fetchone() == verdicts
    status = db.execute("select * from regate.metrics_purge_status(%s)", (job,)).fetchone()
    assert status is not None
    complete_, purged_at, purged_by, cutoff, deleted, rows_kept = status
    assert (complete_, deleted, rows_kept, purged_by) == (True, 4, 4, db.info.user)
    assert purged_at is not None and cutoff is not None

    # A second purge skips the job.
    assert purge_all(db, "now()") == [(0, 0, 0, 0)]
    assert row_ids(db, job) == kept


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    """A job's metric history: rows of a few fixed columns and metrics keys, steps with many ties, values with
    NaN and infinities, logged in statements of 1 to 12 rows (the ingest's row-by-row and batch paths)."""
    value = st.one_of(
        st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False, min_value=-1e300, max_value=1e300),
        st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0, 1.0]),
    )
    names = ("train_loss", "eval_loss", "grad_norm", "accuracy", "f1", "tok/s")
    count = draw(st.integers(1, 30))
    rows = []
    for _ in range(count):
        present = draw(st.lists(st.sampled_from(names), unique=True, max_size=4))
        rows.append((draw(st.integers(0, 5)), {n: draw(value) for n in present}))
    if draw(st.booleans()):  # a metric logged once, at step 1, and never again
        rows.insert(0, (1, {"only_at_step_1": draw(value)}))
    groups: list[int] = []
    left = len(rows)
    while left:
        size = min(left, draw(st.integers(1, 12)))
        groups.append(size)
        left -= size
    return {
        "rows": rows,
        "groups": groups,
        "status": draw(st.sampled_from(["completed", "completed", "failed", "cancelled"])),
        "batch_rows": draw(st.integers(1, 40)),
    }


def _json_value(v: float) -> str:
    if math.isnan(v):
        return '"NaN"'
    if math.isinf(v):
        return '"Infinity"' if v > 0 else '"-Infinity"'
    return repr(v)


def _insert(db: Conn, job: uuid.UUID, rows: list[tuple[int, dict[str, float]]]) -> None:
    """One INSERT statement for `rows`: fixed columns as float8 parameters, other metrics as a JSON text."""
    values = []
    params: list[Any] = []
    for step, metrics in rows:
        fixed = [metrics.get(c) for c in ("train_loss", "eval_loss", "grad_norm")]
        other = (
            "{"
            + ", ".join(
                f"{json.dumps(k)}: {_json_value(v)}"
                for k, v in metrics.items()
                if k not in ("train_loss", "eval_loss", "grad_norm")
            )
            + "}"
        )
        values.append(sql.SQL("(%s, %s, %s::float8, %s::float8, %s::float8, %s::jsonb)"))
        params += [job, step, *fixed, other]
    db.execute(
        sql.SQL(
            "insert into regate.local_training_metrics (job_id, step, train_loss, eval_loss, grad_norm, metrics)"
            " values {}"
        ).format(sql.SQL(", ").join(values)),
        params,
    )


def test_final_metrics_survive_a_purge_bit_for_bit_over_random_histories(db: Conn) -> None:
    """Property: for any history (ties at one step, a metric logged only at step 1, NaN and infinite finals,
    any statement sizes) and any batch size, a purge keeps exactly the rows that carry a final value, and
    extract_final_metrics (values and steps) is bit-identical before and after, also recomputed from the kept
    rows alone."""
    seen = {"examples": 0, "split jobs": 0, "non-finite finals": 0, "ties": 0, "only at step 1": 0}

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(history=histories())
    def run_one(history: dict[str, Any]) -> None:
        model = f"prop-{uuid.uuid4().hex[:8]}"
        job = new_job(db, model)
        first = 0
        for size in history["groups"]:
            _insert(db, job, history["rows"][first : first + size])
            first += size
        if history["status"] == "completed":
            complete(db, job)
        else:
            db.execute("update regate.local_training_jobs set status = %s where id = %s", (history["status"], job))
        before = finals(db, job)
        kept = expected_kept(db, job)
        total = len(row_ids(db, job))
        backdate(db, [job], 2)

        calls = purge_all(db, model=model, batch_rows=history["batch_rows"])
        assert row_ids(db, job) == kept
        assert finals(db, job) == before
        assert raw_finals(db, job) == before[0]
        assert candidates(db, job) == len(json.loads(before[0] or "{}"))
        assert sum(c[1] for c in calls) == total - len(kept)
        assert sum(c[0] for c in calls) == 1 and sum(c[2] for c in calls) == len(kept)
        seen["examples"] += 1
        seen["split jobs"] += len(calls) > 2
        seen["non-finite finals"] += '"' in (before[0] or "")
        steps = [s for s, _ in history["rows"]]
        seen["ties"] += len(steps) != len(set(steps))
        seen["only at step 1"] += any("only_at_step_1" in metrics for _, metrics in history["rows"])

    run_one()
    print("\nrandom histories:", seen)
    assert seen["examples"] >= 60, seen
    assert seen["split jobs"] >= 5 and seen["non-finite finals"] >= 10 and seen["ties"] >= 20, seen
    assert seen["only at step 1"] >= 10, seen


# --- what still works afterwards ------------------------------------------------------------------------------


def test_revalidation_promotion_and_rolling_references_answer_as_before_a_purge(db: Conn) -> None:
    model = "ret-ref"
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'eval_loss', baseline_value => 0.5,"
        " min_relative_change => -0.5)",
        (model,),
    )
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'accuracy', greater_is_better => true,"
        " min_relative_change => -0.05, reference => 'rolling', window_size => 5, min_runs => 3)",
        (model,),
    )
    runs = [trained(db, model, 30 + 7 * i) for i in range(6)]
    candidate = trained(db, model, 25, status="running")  # not finished: never purged

    def checks(job: uuid.UUID) -> Any:
        row = db.execute("select status, checks from regate.validate_training_results(job_id => %s)", (job,)).fetchone()
        assert row is not None
        return row[0], row[1]

    backdate(db, runs, 10)
    # An admin's re-validation records the run again in the rolling window (with its completed_at): once, so that
    # the window is the same for both rounds below.
    for job in runs:
        checks(job)
    before = {job: checks(job) for job in [*runs, candidate]}
    statuses = db.execute(
        "select array_agg(validation_status order by id) from regate.local_training_jobs where id = any(%s)", (runs,)
    ).fetchone()
    rolling = [c for c in before[candidate][1] if c["metric_name"] == "accuracy"]
    assert rolling and rolling[0]["reference"]["kind"] == "rolling" and rolling[0]["outcome"] == "passed"
    assert rolling[0]["reference"]["runs"] == 5 and "value" in rolling[0]["reference"]
    finals_before = {job: finals(db, job) for job in runs}

    calls = purge_all(db, model=model, batch_jobs=2)
    assert [c[0] for c in calls] == [2, 2, 2]
    for job in runs:
        assert finals(db, job) == finals_before[job]
        assert row_ids(db, job) == expected_kept(db, job)
        assert len(row_ids(db, job)) == (1 if (30 + 7 * runs.index(job)) % 5 == 0 else 2)
    assert len(row_ids(db, candidate)) == 25

    # Re-validation of every purged run, and of the running candidate against the rolling median of the purged
    # runs: the same checks (observed values, references, medians, messages).
    assert {job: checks(job) for job in [*runs, candidate]} == before
    assert (
        db.execute(
            "select array_agg(validation_status order by id) from regate.local_training_jobs where id = any(%s)",
            (runs,),
        ).fetchone()
        == statuses
    )

    # Promotion of a purged run to baselines takes its final values.
    promoted = db.execute(
        "select metric_name, baseline_value from regate.create_baselines_from_job(job_id => %s,"
        " metric_names => array['eval_loss', 'accuracy'], directions => '{\"accuracy\": true}')"
        " order by metric_name",
        (runs[-1],),
    ).fetchall()
    final = json.loads(finals_before[runs[-1]][0] or "{}")
    assert promoted == [("accuracy", final["accuracy"]), ("eval_loss", final["eval_loss"])]


def test_run_group_verdicts_and_champions_read_purged_jobs_as_before(db: Conn) -> None:
    model = "ret-group"
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'accuracy', greater_is_better => true,"
        " min_relative_change => -0.01, reference => 'champion', environment => 'production')",
        (model,),
    )
    champion = trained(db, model, 41)
    db.execute("select regate.deploy(%s, 'production')", (champion,))
    group = []
    for i in range(3):
        job = new_job(db, model)
        db.execute("update regate.local_training_jobs set run_group = 'g1', run_group_size = 3 where id = %s", (job,))
        log(db, job, 1, metrics={"accuracy": 0.5})
        log(db, job, 2, metrics={"accuracy": 0.99 - i / 1000})
        complete(db, job)
        group.append(job)

    def group_verdict() -> Any:
        row = db.execute("select status, checks from regate.validate_run_group(run_group => 'g1')").fetchone()
        assert row is not None
        return row

    before = group_verdict()
    backdate(db, [champion, *group], 5)
    purge_all(db, model=model)
    assert len(row_ids(db, champion)) == 2 and all(len(row_ids(db, j)) == 1 for j in group)
    assert group_verdict() == before


# --- which jobs -----------------------------------------------------------------------------------------------


def test_only_finished_jobs_older_than_the_cutoff_of_the_model_are_purged(db: Conn) -> None:
    # 12 steps each: the last one carries the final train_loss and accuracy, step 10 the final eval_loss
    old = {s: trained(db, "ret-which", 12, status=s) for s in ("completed", "failed", "cancelled")}
    unfinished = [trained(db, "ret-which", 12, status=s) for s in ("pending", "queued", "running")]
    recent = trained(db, "ret-which", 12)
    other_model = trained(db, "ret-other", 12)
    backdate(db, [*old.values(), *unfinished, other_model], 40)
    backdate(db, [recent], 5)
    counts = db.execute(
        "select (select count(*) from regate.local_training_jobs),"
        " (select count(*) from regate.validation_results),"
        " (select count(*) from regate.model_baselines)"
    ).fetchone()

    preview = db.execute(
        "select * from regate.purge_metrics_preview(completed_before => now() - interval '30 days',"
        " model_name => 'ret-which')"
    ).fetchone()
    assert preview == (3, 3 * 10, 3 * 2)
    # one statement logged each job's rows: one candidate per metric, all of them final values
    assert purge_all(db, "now() - interval '30 days'", model="ret-which") == [(3, 30, 6, 0)]
    for job in old.values():
        assert len(row_ids(db, job)) == 2
    for job in [*unfinished, recent, other_model]:
        assert len(row_ids(db, job)) == 12
    assert db.execute(
        "select * from regate.purge_metrics_preview(completed_before => now() - interval '30 days',"
        " model_name => 'ret-which')"
    ).fetchone() == (0, 0, 0)

    # Every model, and a later cutoff: the other model's old job and the recent one; never the unfinished ones.
    purge_all(db, "now() - interval '1 day'")
    for job in [other_model, recent]:
        assert len(row_ids(db, job)) == 2
    for job in unfinished:
        assert len(row_ids(db, job)) == 12
    assert (
        db.execute(
            "select (select count(*) from regate.local_training_jobs),"
            " (select count(*) from regate.validation_results),"
            " (select count(*) from regate.model_baselines)"
        ).fetchone()
        == counts
    )


def test_deleting_a_purged_job_forgets_its_purge(db: Conn) -> None:
    job = trained(db, "ret-forget", 12, status="cancelled")  # no verdict: a cancelled job may be deleted
    backdate(db, [job], 3)
    purge_all(db)
    count = "select count(*) from regate_internal.metric_purges where job_id = %s"
    assert db.execute(count, (job,)).fetchone() == (1,)
    db.execute("delete from regate.local_training_jobs where id = %s", (job,))
    assert db.execute(count, (job,)).fetchone() == (0,)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("completed_before => now() + interval '1 day'", "completed_before must be a time in the past"),
        ("completed_before => now()", "completed_before must be a time in the past"),
        ("completed_before => null", "completed_before must be a time in the past, got NULL"),
        ("completed_before => now() - interval '1 day', model_name => ' '", "model_name must be NULL"),
        ("completed_before => now() - interval '1 day', batch_jobs => 0", "batch_jobs must be at least 1, got 0"),
        ("completed_before => now() - interval '1 day', batch_rows => -1", "batch_rows must be at least 1, got -1"),
    ],
)
def test_bad_arguments_are_refused_naming_the_rule(db: Conn, arguments: str, message: str) -> None:
    err = refused(db, "22023", f"select regate.purge_metrics({arguments})")
    assert message in str(err)


# --- batches and locks ----------------------------------------------------------------------------------------


def test_a_job_larger_than_a_batch_is_purged_over_several_calls_its_finals_intact_throughout(db: Conn) -> None:
    job = trained(db, "ret-big", 101)
    before = finals(db, job)
    backdate(db, [job], 3)
    cutoff = db.execute("select now() - interval '1 day'").fetchone()
    assert cutoff is not None
    done = []
    while True:
        row = db.execute(PURGE, (cutoff[0], "ret-big", 10, 30)).fetchone()
        assert row is not None
        done.append(tuple(row))
        assert finals(db, job) == before
        status = db.execute(
            "select complete, purged_at is null from regate.metrics_purge_status(%s)", (job,)
        ).fetchone()
        assert status == ((True, False) if row[3] == 0 else (False, True))
        if row[3] == 0:
            break
    assert [d[1] for d in done] == [30, 30, 30, 9]
    assert [d[0] for d in done] == [0, 0, 0, 1]
    assert row_ids(db, job) == expected_kept(db, job) and len(row_ids(db, job)) == 2
    assert db.execute("select rows_deleted, rows_kept from regate.metrics_purge_status(%s)", (job,)).fetchone() == (
        99,
        2,
    )


def test_a_batch_skips_jobs_that_others_hold_and_never_waits_for_them(db: Conn, db_dsn: str) -> None:
    held, free = trained(db, "ret-lock", 12, status="cancelled"), trained(db, "ret-lock", 12, status="failed")
    backdate(db, [held, free], 3)
    with psycopg.connect(db_dsn) as trainer, psycopg.connect(db_dsn) as admin:
        # A trainer is logging into the cancelled job: its insert holds the job FOR SHARE until it commits.
        log(trainer, held, 13, train_loss=0.1)
        admin.execute("set lock_timeout = '100ms'")
        row = admin.execute(
            "select jobs_purged, jobs_remaining from regate.purge_metrics(now() - interval '1 day', 'ret-lock')"
        ).fetchone()
        assert row == (1, 1)
        # No lock but row locks on what it deletes, and the usual ones of a DELETE: no table lock that would
        # stop a trainer, a completion or a reader.
        modes = {
            r[0]
            for r in admin.execute("select mode from pg_locks where pid = pg_backend_pid() and locktype = 'relation'")
        }
        assert modes <= {"AccessShareLock", "RowShareLock", "RowExclusiveLock"}, modes
        admin.commit()
        trainer.commit()
        assert len(row_ids(db, free)) == 2 and len(row_ids(db, held)) == 13
        assert purge_all(db, model="ret-lock")[0][:2] == (1, 10)
        assert len(row_ids(db, held)) == 3  # the trainer's late row carries the final train_loss now
        assert json.loads(finals(db, held)[0] or "{}")["train_loss"] == 0.1


# --- who may delete metrics -----------------------------------------------------------------------------------


@pytest.fixture
def logins(db: Conn, db_dsn: str) -> Iterator[Logins]:
    made = Logins(db, db_dsn)
    yield made
    made.close()


def _exactly(conn: Conn, sqlstate: str, query: str, params: Any = None) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as err:
        conn.execute(query, params)
    assert err.value.sqlstate == sqlstate, f"expected {sqlstate}, got {err.value.sqlstate}: {err.value}"
    if not conn.autocommit:
        conn.rollback()
    return err.value


def test_only_admins_may_purge_or_preview_and_anyone_may_see_their_own_jobs_purge(db: Conn, logins: Logins) -> None:
    _, writer = logins.login("writer")
    _, other = logins.login("writer")
    _, admin = logins.login("admin")
    job = new_job(writer, "ret-sec")
    log(writer, job, 1, train_loss=1.0)
    log(writer, job, 2, train_loss=0.5)
    complete(writer, job)
    backdate(db, [job], 3)
    for call in (
        "select regate.purge_metrics(now() - interval '1 day')",
        "select regate.purge_metrics_preview(now() - interval '1 day')",
    ):
        _exactly(writer, "42501", call)  # no EXECUTE
    # With EXECUTE granted (a broad grant), the function itself refuses.
    functions = (
        "regate.purge_metrics(timestamptz, text, integer, bigint), regate.purge_metrics_preview(timestamptz, text)"
    )
    db.execute(f"grant execute on function {functions} to regate_writer")
    try:
        err = _exactly(writer, "42501", "select regate.purge_metrics(now() - interval '1 day')")
        assert "only a regate admin" in str(err)
        _exactly(writer, "42501", "select regate.purge_metrics_preview(now() - interval '1 day')")
    finally:
        db.execute(f"revoke execute on function {functions} from regate_writer")
    assert writer.execute("select complete from regate.metrics_purge_status(%s)", (job,)).fetchone() == (None,)
    row = admin.execute(
        "select jobs_purged, rows_deleted from regate.purge_metrics(now() - interval '1 day')"
    ).fetchone()
    assert row == (1, 1)
    assert writer.execute(
        "select complete, rows_deleted, rows_kept from regate.metrics_purge_status(%s)", (job,)
    ).fetchone() == (True, 1, 1)
    # Another tenant learns nothing about the job, not even that it exists.
    assert other.execute("select * from regate.metrics_purge_status(%s)", (job,)).fetchone() == (None,) * 6


FORGED_SETTINGS = (
    "regate.purge_xact",
    "regate.purging",
    "regate.purge",
    "regate.skip_xact",
    "regate.allow_delete",
    "regate.retention",
)


def test_metrics_stay_append_only_for_writers_and_admins_whatever_they_forge(db: Conn, logins: Logins) -> None:
    """The door of the guard is a row of regate_internal.metric_purges naming the purging transaction, written
    only inside regate.purge_metrics: no setting, temporary table or broad grant opens it, and it is closed again
    before the purge returns, also for the admin who called it, in the same transaction."""
    _, writer = logins.login("writer")
    _, admin = logins.login("admin")
    job = new_job(writer, "ret-hostile")
    for step in range(1, 6):
        log(writer, job, step, train_loss=1.0 / step)
    delete = "delete from regate.local_training_metrics where job_id = %s"
    # Without a grant: no DELETE privilege at all.
    _exactly(writer, "42501", delete, (job,))
    _exactly(admin, "42501", delete, (job,))
    # A broad grant (GRANT ALL) lends the privilege; the guard still refuses.
    db.execute("grant all on regate.local_training_metrics to regate_writer, regate_admin")
    err = _exactly(writer, "RG003", delete, (job,))
    assert "append-only" in str(err)
    _exactly(admin, "RG003", delete, (job,))
    _exactly(writer, "RG003", "update regate.local_training_metrics set train_loss = 0 where job_id = %s", (job,))

    # Forged state: settings any client can set, with this transaction's id; a temporary table that shadows the
    # guard's; a row written into regate_internal (no privilege there, for admins neither).
    for conn in (writer, admin):
        conn.autocommit = False
        xact = conn.execute("select pg_current_xact_id()::text").fetchone()
        assert xact is not None
        for name in FORGED_SETTINGS:
            conn.execute("select set_config(%s, %s, true)", (name, xact[0]))
            conn.execute("select set_config(%s, 'on', true)", (name + "_on",))
        conn.execute(
            "create temporary table metric_purges as select %s::uuid as job_id, pg_current_xact_id() as purging_xact,"
            " true as complete",
            (job,),
        )
        _exactly(conn, "RG003", delete, (job,))
        _exactly(
            conn,
            "42501",
            "insert into regate_internal.metric_purges (job_id, completed_before, purging_xact)"
            " values (%s, now(), pg_current_xact_id())",
            (job,),
        )
        conn.autocommit = True

    # The admin who purges, in the same transaction: the door closed when the call returned.
    other = new_job(writer, "ret-hostile")
    for step in range(1, 6):
        log(writer, other, step, train_loss=1.0 / step)
    complete(writer, job)
    backdate(db, [job], 3)
    admin.autocommit = False
    row = admin.execute(
        "select jobs_purged, rows_deleted from regate.purge_metrics(now() - interval '1 day', 'ret-hostile')"
    ).fetchone()
    assert row == (1, 4)
    _exactly(admin, "RG003", delete, (job,))  # (rolled back: the purge too)
    admin.execute("select regate.purge_metrics(now() - interval '1 day', 'ret-hostile')")
    _exactly(admin, "RG003", delete, (other,))
    admin.autocommit = True
    purged = admin.execute("select jobs_purged from regate.purge_metrics(now() - interval '1 day', 'ret-hostile')")
    assert purged.fetchone() == (1,)
    _exactly(admin, "RG003", delete, (job,))
    assert len(row_ids(db, job)) == 1 and len(row_ids(db, other)) == 5
    assert db.execute(
        "select count(*) from regate_internal.metric_purges where purging_xact is not null"
    ).fetchone() == (0,)


# --- at scale -------------------------------------------------------------------------------------------------

SCALE_JOBS = 200
SCALE_STEPS = 500

# Every step: train_loss and accuracy; every 10th (5, 15, ...): eval_loss; step 1 only: warmup_loss; the last step
# twice (a tie: the later row carries the final accuracy, the earlier one the final train_loss).
_SCALE_ROWS = """
insert into regate.local_training_metrics (job_id, step, train_loss, eval_loss, metrics)
select
    j.id, g, 2.0 / g + random() / 1000, case when g %% 10 = 5 then 2.5 / g end,
    case when g = 1 then jsonb_build_object('warmup_loss', 9.5, 'accuracy', random())
    when g = %(steps)s then '{}'::jsonb
    else jsonb_build_object('accuracy', g / %(steps)s::float8 - random() / 1000) end
from unnest(%(jobs)s::uuid[]) as j (id)
cross join generate_series(1, %(steps)s) as g
"""


def test_at_scale_batches_purge_alongside_trainers_completions_and_readers(db: Conn, db_dsn: str) -> None:
    """200 jobs x 500 steps purged in batches of 20 while one connection keeps logging to a running job and
    completing new jobs, another re-validates old jobs (and so holds them: the purge skips them and comes back),
    and a third reads final metrics: no deadlock, no lock wait beyond lock_timeout anywhere, every final value
    bit-identical at every moment, and exactly the rows of final values left."""
    model = "ret-scale"
    jobs = [new_job(db, model) for _ in range(SCALE_JOBS)]
    for first in range(0, SCALE_JOBS, 50):
        db.execute(_SCALE_ROWS, {"jobs": jobs[first : first + 50], "steps": SCALE_STEPS})
    db.execute(
        "insert into regate.local_training_metrics (job_id, step, metrics)"
        " select j, %s, jsonb_build_object('accuracy', 0.97) from unnest(%s::uuid[]) as j",
        (SCALE_STEPS, jobs),
    )
    db.execute("update regate.local_training_jobs set status = 'completed' where id = any(%s)", (jobs,))
    snapshot = dict(
        db.execute(
            "select id, regate.extract_final_metrics(id)::text from regate.local_training_jobs where id = any(%s)",
            (jobs,),
        ).fetchall()
    )
    assert all(json.loads(v)["warmup_loss"] == 9.5 and json.loads(v)["accuracy"] == 0.97 for v in snapshot.values())
    kept = {job: expected_kept(db, job) for job in jobs[:5]}
    assert all(len(k) == 4 for k in kept.values())  # step 1, 495 (eval_loss), 500 twice (the tie)
    backdate(db, jobs, 10)
    running = new_job(db, model)

    stop = threading.Event()
    errors: list[str] = []
    counts = {"logged": 0, "completed": 0, "revalidated": 0, "reads": 0}

    def worker(name: str, body: Callable[[Conn, int], None]) -> None:
        try:
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                conn.execute("set lock_timeout = '2s'")
                i = 0
                while not stop.is_set():
                    i += 1
                    body(conn, i)
        except Exception as exc:  # reported by the main thread
            errors.append(f"{name}: {type(exc).__name__}: {exc}")

    def trainer(conn: Conn, i: int) -> None:
        log(conn, running, i, train_loss=1.0 / i, metrics={"accuracy": i / 1e6})
        counts["logged"] += 1
        if i % 25 == 0:  # a short job of the same model completes now: too recent to purge
            job = new_job(conn, model)
            log(conn, job, 1, train_loss=0.5)
            complete(conn, job)
            counts["completed"] += 1

    def validator(conn: Conn, i: int) -> None:
        job = jobs[(i * 37) % SCALE_JOBS]
        conn.execute("select regate.validate_training_results(%s)", (job,))
        counts["revalidated"] += 1

    def reader(conn: Conn, i: int) -> None:
        job = jobs[(i * 53) % SCALE_JOBS]
        row = conn.execute("select regate.extract_final_metrics(%s)::text", (job,)).fetchone()
        if row is None or row[0] != snapshot[job]:
            errors.append(f"reader: final metrics of {job} changed: {row} != {snapshot[job]}")
        counts["reads"] += 1

    threads = [
        threading.Thread(target=worker, args=(n, f))
        for n, f in (("trainer", trainer), ("validator", validator), ("reader", reader))
    ]
    for t in threads:
        t.start()
    calls: list[tuple[Any, ...]] = []

    def each_worker_moved_on(since: dict[str, int]) -> None:
        # The overlap does not depend on the machine's speed: every worker runs at least once per purge call.
        deadline = time.monotonic() + 60
        while any(counts[k] <= since[k] for k in ("logged", "revalidated", "reads")) and not errors:
            assert time.monotonic() < deadline, f"a worker made no progress in 60 s: {counts}"
            time.sleep(0.005)

    try:
        with psycopg.connect(db_dsn, autocommit=True) as admin:
            cutoff = admin.execute("select now() - interval '1 day'").fetchone()
            assert cutoff is not None
            each_worker_moved_on(dict.fromkeys(counts, 0))
            idle = 0
            while True:
                since = dict(counts)
                with admin.transaction():
                    admin.execute("set local lock_timeout = '2s'")
                    row = admin.execute(PURGE, (cutoff[0], model, 20, 20_000)).fetchone()
                assert row is not None
                calls.append(tuple(row))
                each_worker_moved_on(since)
                if row[3] == 0:
                    break
                idle = 0 if (row[0] or row[1]) else idle + 1
                assert idle < 200, f"the purge made no progress: {calls[-5:]}"
                if idle:
                    time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    print(f"\nretention at scale: {len(calls)} purge calls alongside {counts}")
    assert not errors, errors
    assert counts["logged"] > 10 and counts["reads"] > 10 and counts["revalidated"] > 3, counts

    assert sum(c[0] for c in calls) == SCALE_JOBS
    assert sum(c[1] for c in calls) == SCALE_JOBS * (SCALE_STEPS + 1 - 4)
    assert sum(c[2] for c in calls) == SCALE_JOBS * 4
    after = dict(
        db.execute(
            "select id, regate.extract_final_metrics(id)::text from regate.local_training_jobs where id = any(%s)",
            (jobs,),
        ).fetchall()
    )
    assert after == snapshot
    for job, ids in kept.items():
        assert row_ids(db, job) == ids
    left = db.execute(
        "select count(*), count(distinct job_id) from regate.local_training_metrics where job_id = any(%s)", (jobs,)
    ).fetchone()
    assert left == (SCALE_JOBS * 4, SCALE_JOBS)
    # The trainer's rows and the recent jobs are untouched.
    logged = db.execute("select count(*) from regate.local_training_metrics where job_id = %s", (running,)).fetchone()
    assert logged == (counts["logged"],)
    recent = db.execute(
        "select count(*) from regate.local_training_jobs as j where j.model_name = %s and j.status = 'completed'"
        " and j.id <> all(%s) and exists (select from regate.local_training_metrics as m where m.job_id = j.id)",
        (model, jobs),
    ).fetchone()
    assert recent == (counts["completed"],)


# --- regate-db purge ------------------------------------------------------------------------------------------


@pytest.fixture
def rg(db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def call(*args: str, dsn: str = db_dsn) -> subprocess.CompletedProcess[str]:
        return run(regate_cmd, cli_env, *args, "--dsn", dsn)

    return call


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.slow
def test_the_purge_command_previews_confirms_purges_in_batches_and_summarises(
    db: Conn, db_dsn: str, rg: Callable[..., subprocess.CompletedProcess[str]], logins: Logins
) -> None:
    jobs = [trained(db, "cli-model", 12) for _ in range(5)] + [trained(db, "cli-other", 12, status="failed")]
    backdate(db, jobs, 100)

    dry = rg("purge", "--before", "90d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would purge the raw metrics of 6 jobs that finished before" in dry.stdout
    assert "60 row(s) deleted, 12 kept" in dry.stdout
    dry_json = json.loads(rg("purge", "--before", "90d", "--model", "cli-model", "--dry-run", "--json").stdout)
    assert {k: dry_json[k] for k in ("dry_run", "model_name", "jobs", "rows_to_delete", "rows_to_keep")} == {
        "dry_run": True,
        "model_name": "cli-model",
        "jobs": 5,
        "rows_to_delete": 50,
        "rows_to_keep": 10,
    }
    assert sum(len(row_ids(db, j)) for j in jobs) == 72  # nothing deleted

    # Without --yes and without a terminal to ask: refused, nothing deleted.
    line = _one_error_line(rg("purge", "--before", "90d"))
    assert "pass --yes" in line
    # Not an admin: one line, exit 2.
    writer, _ = logins.login("writer")
    writer_dsn = psycopg.conninfo.make_conninfo(db_dsn, user=writer, password=f"pw-{writer}")
    assert "only a regate admin" in _one_error_line(rg("purge", "--before", "90d", "--yes", dsn=writer_dsn))
    # A cutoff in the future: the database's rule, one line.
    assert "completed_before must be a time in the past" in _one_error_line(
        rg("purge", "--before", "2999-01-01", "--yes")
    )
    assert "neither an ISO date" in _one_error_line(rg("purge", "--before", "soon", "--yes"))
    assert sum(len(row_ids(db, j)) for j in jobs) == 72

    done = rg("purge", "--before", "90d", "--model", "cli-model", "--batch-jobs", "2", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert {k: summary[k] for k in ("batches", "jobs_purged", "rows_deleted", "rows_kept", "jobs_remaining")} == {
        "batches": 3,
        "jobs_purged": 5,
        "rows_deleted": 50,
        "rows_kept": 10,
        "jobs_remaining": 0,
    }
    assert summary["busy"] is False and summary["model_name"] == "cli-model"
    text = rg("purge", "--before", "90d", "--yes")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("purged the raw metrics of 1 job(s): 10 row(s) deleted, 2 kept")
    again = rg("purge", "--before", "90d", "--yes")
    assert again.returncode == 0 and again.stdout.startswith("nothing to purge: no jobs that finished before")
    assert sum(len(row_ids(db, j)) for j in jobs) == 12
    shown = rg("show", str(jobs[0]))
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^  history:\s+purged \S+ \S+ by \S+: 10 metric rows removed, 2 kept", shown.stdout, re.M), (
        shown.stdout
    )
    assert json.loads(rg("show", str(jobs[0]), "--json").stdout)["purge"]["rows_deleted"] == 10


def test_purge_from_python_stops_when_only_busy_jobs_are_left(db: Conn, db_dsn: str) -> None:
    held, free = trained(db, "py-model", 12, status="failed"), trained(db, "py-model", 12)
    backdate(db, [held, free], 3)
    cutoff = datetime.now(UTC) - timedelta(days=1)
    with psycopg.connect(db_dsn) as trainer, psycopg.connect(db_dsn, autocommit=True) as admin:
        log(trainer, held, 13, train_loss=0.1)  # holds the job until it commits
        plan = cli_retention.preview(admin, cutoff, "py-model")
        assert plan == cli_retention.PurgePreview(jobs=2, rows_to_delete=20, rows_to_keep=4)
        batches: list[cli_retention.PurgeBatch] = []
        summary = cli_retention.purge(
            admin, cutoff, "py-model", batch_jobs=1, retries=2, pause=0.01, on_batch=lambda b, _: batches.append(b)
        )
        assert summary.busy and summary.jobs_purged == 1 and summary.jobs_remaining == 1
        assert [b.progressed for b in batches] == [True, False, False, False]
        trainer.commit()
        summary = cli_retention.purge(admin, cutoff, "py-model")
        assert (summary.busy, summary.jobs_purged, summary.rows_deleted, summary.jobs_remaining) == (False, 1, 10, 0)
    with psycopg.connect(db_dsn) as conn, pytest.raises(release.InvalidRequestError, match="autocommit"):
        cli_retention.purge_batch(conn, cutoff)


def test_the_purge_command_exits_1_when_busy_jobs_are_left(
    db: Conn, db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = trained(db, "busy-model", 12, status="cancelled")
    backdate(db, [held], 3)
    real = cli_retention.purge

    def impatient(*args: Any, **kwargs: Any) -> cli_retention.PurgeSummary:
        return real(*args, **{**kwargs, "retries": 1, "pause": 0.01})

    monkeypatch.setattr(cli_retention, "purge", impatient)
    with psycopg.connect(db_dsn) as trainer:
        log(trainer, held, 13, train_loss=0.1)
        result = CliRunner().invoke(
            cli_retention.purge_cmd, ["--before", "1d", "--yes", "--dsn", db_dsn], obj=Options()
        )
        trainer.rollback()
    assert result.exit_code == 1, result.output
    assert "purged the raw metrics of 0 job(s)" in result.output
    assert "1 job(s) left that other sessions kept busy" in result.output
