"""Where a job's metrics are (issue 12): regate_internal.metric_names and metric_spans, which the ingest trigger
writes instead of the latest-value candidates, and the completion's bounded lookup of each final value.

Final metrics must stay exactly what the raw rows say (per metric, the value of the row with the highest (step, id)
that carries it), whatever the order, the statement sizes, the spans and the transactions the rows came in; the
lookup of a metric logged once, long ago, reads at most one span of 1024 steps; and nothing a client can roll back
or write lets a row into a completed job or keeps a name from being recorded.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from tests.helpers import FINALS_FROM_RAW_ROWS, log, new_job, refused

Conn = psycopg.Connection[Any]


def finals(db: Conn, job: uuid.UUID) -> tuple[str | None, str | None]:
    """(extract_final_metrics, the same recomputed from the raw rows), both as text with bit-exact numbers."""
    db.execute("set extra_float_digits = 3")
    got = db.execute("select regate.extract_final_metrics(%s)::text", (job,)).fetchone()
    raw = db.execute(FINALS_FROM_RAW_ROWS, (job,)).fetchone()
    assert got is not None and raw is not None
    return got[0], raw[0]


def spans(db: Conn, job: uuid.UUID) -> list[tuple[int, list[str]]]:
    return [
        (int(r[0]), list(r[1]))
        for r in db.execute(
            "select span, seen from regate_internal.metric_spans where job_id = %s order by span, cardinality(seen)",
            (job,),
        ).fetchall()
    ]


def test_names_are_recorded_once_per_span_and_one_row_comes_to_cover_a_span(db: Conn) -> None:
    job = new_job(db)
    log(db, job, 1, {"accuracy": 0.5}, train_loss=2.0)
    log(db, job, 2, {"accuracy": 0.6}, train_loss=1.9)  # nothing new: nothing recorded
    assert spans(db, job) == [(0, ["accuracy", "train_loss"])]
    log(db, job, 10, eval_loss=1.5)  # a name new to the span: a row with every name of the span
    assert spans(db, job) == [(0, ["accuracy", "train_loss"]), (0, ["accuracy", "eval_loss", "train_loss"])]
    log(db, job, 11, {"accuracy": 0.7}, train_loss=1.8, eval_loss=1.4)
    assert len(spans(db, job)) == 2
    log(db, job, 1024, {"accuracy": 0.8})  # the next span
    assert spans(db, job)[-1] == (1, ["accuracy"])
    names = db.execute(
        "select metric_name, count(*) from regate_internal.metric_names where job_id = %s group by 1 order by 1",
        (job,),
    ).fetchall()
    assert names == [("accuracy", 1), ("eval_loss", 1), ("train_loss", 1)]
    assert finals(db, job)[0] == finals(db, job)[1]
    assert json.loads(finals(db, job)[0] or "{}") == {"accuracy": 0.8, "train_loss": 1.8, "eval_loss": 1.4}


def test_a_metric_logged_once_long_ago_is_found_by_reading_one_span(db: Conn) -> None:
    """The worst case of the lookup: a metric logged only at step 1 of a job of 5,000 steps. Its final value comes
    back, and the backward scan that finds it reads the rows of one span (1024 steps), not the job."""
    job = new_job(db)
    log(db, job, 1, {"rare": 0.25})
    db.execute(
        "insert into regate.local_training_metrics (job_id, step, train_loss, metrics)"
        " select %s, g, 1.0 / g, jsonb_build_object('accuracy', g / 5000.0) from generate_series(1, 5000) as g",
        (job,),
    )
    got, raw = finals(db, job)
    assert got == raw and json.loads(got or "{}")["rare"] == 0.25
    plan = db.execute(
        "explain (analyze, format json) select * from regate_internal._final_value_row(%s, 'rare')", (job,)
    ).fetchone()
    assert plan is not None

    def scans(node: dict[str, Any]) -> list[dict[str, Any]]:
        found = [node] if node.get("Relation Name") == "local_training_metrics" else []
        for child in node.get("Plans", []):
            found += scans(child)
        return found

    (scan,) = scans(plan[0][0]["Plan"])
    read = scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0)
    assert read <= 1024 + 1, f"the lookup read {read} metric rows"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=4000),  # step: several spans, ties, any order
            st.dictionaries(
                st.sampled_from(["a", "b", "c/x", "rare"]),
                st.one_of(
                    st.floats(allow_nan=False, allow_infinity=False, width=64),
                    st.sampled_from(["NaN", "Infinity", "-Infinity"]),
                ),
                max_size=3,
            ),
            st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6)),  # train_loss
        ),
        min_size=1,
        max_size=40,
    ),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=6),
)
def test_final_metrics_equal_the_raw_rows_however_they_were_logged(
    db: Conn, rows: list[tuple[int, dict[str, Any], float | None]], cuts: list[int]
) -> None:
    """Random histories, sent as statements of random sizes (one row: the one-row path; more: the set-based path):
    the final metrics equal the raw rows' answer, bit for bit."""
    job = new_job(db)
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    for lo, hi in itertools.pairwise(bounds):
        chunk = rows[lo:hi]
        db.execute(
            "insert into regate.local_training_metrics (job_id, step, train_loss, metrics)"
            " select %s, s, t, m from unnest(%s::bigint[], %s::float8[], %s::jsonb[]) as u (s, t, m)",
            (job, [r[0] for r in chunk], [r[2] for r in chunk], [Jsonb(r[1]) for r in chunk]),
        )
    got, raw = finals(db, job)
    assert got == raw


def test_a_name_first_logged_in_a_rolled_back_savepoint_is_recorded_when_logged_again(db: Conn) -> None:
    job = new_job(db)
    log(db, job, 1, {"accuracy": 0.5})
    with db.transaction():
        with pytest.raises(psycopg.errors.UniqueViolation), db.transaction():
            log(db, job, 2, {"bleu": 0.3})
            db.execute("insert into regate.local_training_jobs (id, model_name) values (%s, 'dup')", (job,))
        log(db, job, 3, {"bleu": 0.4})
    assert json.loads(finals(db, job)[0] or "{}") == {"accuracy": 0.5, "bleu": 0.4}
    assert any("bleu" in seen for _, seen in spans(db, job))


def test_a_lock_given_up_by_a_savepoint_does_not_let_a_row_into_a_completed_job(db: Conn, db_dsn: str) -> None:
    """A client that logged (and so locked its job) inside a savepoint, rolled it back (the lock goes with it), let
    another session complete the job, and logs again in the same transaction, is refused: every statement checks
    its job anew; nothing is remembered that a savepoint could undo."""
    job = new_job(db)
    log(db, job, 1, {"accuracy": 0.5})
    with psycopg.connect(db_dsn) as client, psycopg.connect(db_dsn, autocommit=True) as other:
        client.execute("savepoint s")
        log(client, job, 2, {"accuracy": 0.6})
        client.execute("rollback to savepoint s")
        other.execute("set lock_timeout = '5s'")
        other.execute("update regate.local_training_jobs set status = 'completed' where id = %s", (job,))
        err = refused(
            client, "RG002", "insert into regate.local_training_metrics (job_id, step) values (%s, 3)", (job,)
        )
        assert str(job) in str(err)
        client.rollback()
    assert db.execute("select count(*) from regate.local_training_metrics where job_id = %s", (job,)).fetchone() == (1,)


def test_sessions_recording_new_names_in_one_span_never_wait_for_each_other(db: Conn, db_dsn: str) -> None:
    """Two transactions record names new to the same span, each before the other commits, in opposite orders over
    two statements: nothing is unique in metric_spans and metric_names, so neither waits (no deadlock), and both
    sets of names are recorded."""
    job = new_job(db)
    log(db, job, 1, {"accuracy": 0.5})
    with psycopg.connect(db_dsn) as a, psycopg.connect(db_dsn) as b:
        for conn in (a, b):
            conn.execute("set lock_timeout = '3s'")
        started = time.monotonic()
        log(a, job, 2, {"x": 1.0})
        log(b, job, 3, {"y": 2.0})
        log(a, job, 4, {"y": 3.0})
        log(b, job, 5, {"x": 4.0})
        assert time.monotonic() - started < 3
        a.commit()
        b.commit()
    got, raw = finals(db, job)
    assert got == raw and json.loads(got or "{}") == {"accuracy": 0.5, "x": 4.0, "y": 3.0}


def complete_elsewhere(db_dsn: str, job: uuid.UUID) -> tuple[threading.Thread, dict[str, Any]]:
    """Start completing `job` from another session, in a thread; the dict gets the id of its verdict."""
    result: dict[str, Any] = {}

    def complete() -> None:
        with psycopg.connect(db_dsn, autocommit=True) as c:
            row = c.execute(
                "update regate.local_training_jobs set status = 'completed' where id = %s"
                " returning validation_result_id",
                (job,),
            ).fetchone()
            result["id"] = row[0] if row else None

    t = threading.Thread(target=complete)
    t.start()
    return t, result


def release_when_waiting(t: threading.Thread, holder: Conn, what: str) -> None:
    """The statement in `t` waits on a lock `holder` holds: commit `holder`, and let `t` finish."""
    time.sleep(0.5)
    assert t.is_alive(), f"{what} did not wait"
    holder.commit()
    t.join(timeout=10)


def verdict_metrics(db: Conn, verdict_id: int) -> dict[str, Any]:
    row = db.execute("select metrics from regate.validation_results where id = %s", (verdict_id,)).fetchone()
    assert row is not None
    return dict(row[0])


def test_a_completion_waits_for_a_concurrent_insert_of_new_names_and_sees_them(db: Conn, db_dsn: str) -> None:
    """The one-row path locks the job FOR SHARE like the set-based path: a completion that starts while a row with
    a new name is uncommitted waits for it, and its verdict's metrics carry that name."""
    job = new_job(db)
    log(db, job, 1, {"accuracy": 0.5})
    with psycopg.connect(db_dsn) as trainer:
        log(trainer, job, 2, {"late_metric": 0.9})
        t, result = complete_elsewhere(db_dsn, job)
        release_when_waiting(t, trainer, "the completion of a job with an uncommitted insert")
    assert verdict_metrics(db, result["id"])["late_metric"] == 0.9


@pytest.mark.parametrize("rows", [1, 3])
def test_an_insert_and_a_completion_of_one_job_serialize_both_ways(db: Conn, db_dsn: str, rows: int) -> None:
    """Rows of names already recorded in their span (the common statement, which records nothing): a completion
    that starts while such an insert is uncommitted waits for it and validates its value; an insert that starts
    while a completion is uncommitted waits for it and is refused (RG002). One-row and set-based statements alike."""
    job = new_job(db)
    log(db, job, 1, {"accuracy": 0.5})
    insert = "insert into regate.local_training_metrics (job_id, step, metrics) values " + ", ".join(
        ["(%s, %s, %s)"] * rows
    )

    def params(first_step: int, value: float) -> list[Any]:
        return [x for i in range(rows) for x in (job, first_step + i, Jsonb({"accuracy": value}))]

    # 1. the insert first: the completion waits, then sees the insert's last value
    with psycopg.connect(db_dsn) as trainer:
        trainer.execute(insert, params(2, 0.75))
        t, result = complete_elsewhere(db_dsn, job)
        release_when_waiting(t, trainer, "the completion of a job with an uncommitted insert")
    assert verdict_metrics(db, result["id"])["accuracy"] == 0.75

    # 2. the completion first: the insert waits, then is refused
    db.execute("update regate.local_training_jobs set status = 'running' where id = %s", (job,))
    outcome: dict[str, Any] = {}
    with psycopg.connect(db_dsn) as completer:
        completer.execute("update regate.local_training_jobs set status = 'completed' where id = %s", (job,))

        def log_more() -> None:
            with psycopg.connect(db_dsn, autocommit=True) as c:
                try:
                    c.execute(insert, params(100, 0.1))
                    outcome["error"] = None
                except psycopg.Error as exc:
                    outcome["error"] = exc.sqlstate

        t = threading.Thread(target=log_more)
        t.start()
        release_when_waiting(t, completer, "the insert into a job with an uncommitted completion")
    assert outcome["error"] == "RG002"
    assert db.execute(
        "select count(*) from regate.local_training_metrics where job_id = %s and step >= 100", (job,)
    ).fetchone() == (0,)
