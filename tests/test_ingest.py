"""Metrics ingest: validation at the door, append-only rows, and the final metrics of a job."""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.helpers import complete, log, message, new_job, refused

COLUMNS = ("epoch", "train_loss", "eval_loss", "perplexity", "learning_rate", "grad_norm")


def final(db: psycopg.Connection[Any], job: uuid.UUID) -> dict[str, Any] | None:
    """regate.extract_final_metrics as text, parsed with every JSON number as a Python float."""
    row = db.execute("select regate.extract_final_metrics(%s)::text", [job]).fetchone()
    assert row is not None
    return None if row[0] is None else json.loads(row[0], parse_int=float, parse_float=float)


def count_rows(db: psycopg.Connection[Any], job: uuid.UUID | None = None) -> tuple[int, int]:
    """(metric rows, metric names recorded in regate_internal.metric_names), of one job or of all."""
    row = db.execute(
        "select (select count(*) from regate.local_training_metrics where %(j)s::uuid is null or job_id = %(j)s),"
        " (select count(distinct (job_id, metric_name)) from regate_internal.metric_names"
        "  where %(j)s::uuid is null or job_id = %(j)s)",
        {"j": job},
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


INSERT_RAW = "insert into regate.local_training_metrics (job_id, step, metrics) values (%s, %s, %s::jsonb)"


# --- validation at the door ------------------------------------------------------------------------------------


def test_numbers_and_the_three_special_strings_are_accepted(db: psycopg.Connection[Any]) -> None:
    job = new_job(db)
    accepted: dict[str, float | str] = {
        "accuracy": 0.91,
        "tokens": 123456789,
        "negative": -2.5,
        "zero": 0,
        "exponent": 1.5e-7,
        "largest": 1.7976931348623157e308,
        "smallest_subnormal": 5e-324,
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "eval/bleu score": 31.4,
    }
    log(db, job, 1, accepted)
    got = final(db, job)
    assert got is not None
    assert got == {k: (v if isinstance(v, str) else float(v)) for k, v in accepted.items()}


BAD_VALUES = {
    "other string": '"fast"',
    "lowercase nan": '"nan"',
    "inf spelled short": '"inf"',
    "empty string": '""',
    "numeric string": '"0.5"',
    "true": "true",
    "false": "false",
    "json null": "null",
    "array": "[0.5]",
    "object": '{"value": 0.5}',
    "overflow": "1e400",
    "negative overflow": "-1e400",
    "just past the largest double": "1.8e308",
    "underflow": "1e-400",
    "negative underflow": "-1e-400",
    "below half the smallest subnormal": "2e-324",
}


def test_a_bad_metric_value_is_refused_naming_the_key(db: psycopg.Connection[Any], subtests: pytest.Subtests) -> None:
    for label, raw in BAD_VALUES.items():
        with subtests.test(label, value=raw):
            job = new_job(db)
            err = refused(db, "RG001", INSERT_RAW, [job, 3, f'{{"ok": 1.0, "val_accuracy": {raw}}}'])
            assert "val_accuracy" in message(err)
            assert count_rows(db, job) == (0, 0)
            assert final(db, job) is None


def test_a_bad_metric_key_is_refused(db: psycopg.Connection[Any], subtests: pytest.Subtests) -> None:
    for key in ["", "   "]:
        with subtests.test("empty key", key=key):
            job = new_job(db)
            err = refused(db, "RG001", INSERT_RAW, [job, 1, json.dumps({"accuracy": 0.5, key: 1.0})])
            assert "non-empty" in message(err)
            assert count_rows(db, job) == (0, 0)
    for key in ["eval_loss", "step", "epoch", "train_loss", "grad_norm", "job_id", "id"]:
        with subtests.test("key equal to a fixed column", key=key):
            job = new_job(db)
            err = refused(db, "RG001", INSERT_RAW, [job, 1, json.dumps({"accuracy": 0.5, key: 0.25})])
            assert key in message(err)
            assert count_rows(db, job) == (0, 0)


def test_a_blank_key_in_a_statement_of_many_rows_names_the_step_that_logs_it(db: psycopg.Connection[Any]) -> None:
    """The set-based path gathers a (job, span)'s names in one pass; its refusal of a blank key still names a step
    whose row logs it, not the first step of the span."""
    job = new_job(db)
    log(db, job, 1, train_loss=1.0)  # the span is known: the statement below still comes to the names
    err = refused(
        db,
        "RG001",
        "insert into regate.local_training_metrics (job_id, step, metrics)"
        " select %s, g, case when g = 12 then %s::jsonb else %s::jsonb end from generate_series(10, 14) as g",
        [job, json.dumps({"accuracy": 0.5, "  ": 1.0}), json.dumps({"accuracy": 0.5})],
    )
    assert "non-empty" in message(err)
    assert err.diag.message_detail == f"job {job}, step 12"
    assert count_rows(db, job) == (1, 1)


def test_non_object_metrics_are_refused(db: psycopg.Connection[Any], subtests: pytest.Subtests) -> None:
    for raw in ["[]", '[{"accuracy": 0.5}]', '"accuracy"', "0.5", "null", "true"]:
        with subtests.test(metrics=raw):
            job = new_job(db)
            err = refused(db, "23514", INSERT_RAW, [job, 1, raw])
            assert err.diag.constraint_name == "local_training_metrics_metrics_is_object"
            assert "local_training_metrics_metrics_is_object" in message(err)
            assert count_rows(db, job) == (0, 0)


def test_a_negative_step_is_refused(db: psycopg.Connection[Any]) -> None:
    job = new_job(db)
    err = refused(
        db, "23514", "insert into regate.local_training_metrics (job_id, step, train_loss) values (%s, -1, 1)", [job]
    )
    assert err.diag.constraint_name == "local_training_metrics_step_not_negative"
    log(db, job, 0, train_loss=1.0)
    assert count_rows(db, job) == (1, 1)


def test_metrics_of_a_completed_job_are_refused(db: psycopg.Connection[Any]) -> None:
    job = new_job(db, status="running")
    log(db, job, 10, {"accuracy": 0.8}, eval_loss=0.5)
    complete(db, job)
    err = refused(db, "RG002", INSERT_RAW, [job, 20, '{"accuracy": 0.9}'])
    assert str(job) in message(err)
    assert "completed" in message(err)
    assert count_rows(db, job) == (1, 2)
    assert final(db, job) == {"accuracy": 0.8, "eval_loss": 0.5}


def test_a_batch_touching_a_completed_job_inserts_nothing(db: psycopg.Connection[Any]) -> None:
    done, running = new_job(db), new_job(db, status="running")
    complete(db, done)
    refused(
        db,
        "RG002",
        "insert into regate.local_training_metrics (job_id, step, train_loss) values (%s, 1, 1.0), (%s, 1, 2.0)",
        [running, done],
    )
    assert count_rows(db) == (0, 0)
    assert final(db, running) is None


# --- batches are all or nothing --------------------------------------------------------------------------------

GOOD = {"accuracy": 0.5}
BAD = {"accuracy": "high"}


def insert_values(db: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
    values = sql.SQL(", ").join(sql.SQL("(%s, %s, %s)") for _ in rows)
    query = sql.SQL("insert into regate.local_training_metrics (job_id, step, metrics) values {}").format(values)
    db.execute(query, [v for row in rows for v in row])


def insert_many(db: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
    db.cursor().executemany(
        "insert into regate.local_training_metrics (job_id, step, metrics) values (%s, %s, %s)", rows
    )


def insert_copy(db: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
    with db.cursor().copy("copy regate.local_training_metrics (job_id, step, metrics) from stdin") as cp:
        for job, step, metrics in rows:
            cp.write_row((job, step, json.dumps(metrics.obj)))


@pytest.mark.parametrize("insert", [insert_values, insert_many, insert_copy], ids=["values", "executemany", "copy"])
def test_a_batch_with_one_bad_row_inserts_nothing(
    db: psycopg.Connection[Any], subtests: pytest.Subtests, insert: Any
) -> None:
    # In autocommit mode, as a client would send it: the batch itself must be all or nothing.
    for bad_at in (0, 2, 4):
        with subtests.test(bad_row=bad_at):
            job = new_job(db)
            rows = [(job, step, Jsonb(BAD if step == bad_at else GOOD)) for step in range(5)]
            with pytest.raises(psycopg.Error) as err:
                insert(db, rows)
            assert err.value.sqlstate == "RG001"
            assert "accuracy" in message(err.value)
            assert count_rows(db, job) == (0, 0)
            assert final(db, job) is None
    job = new_job(db)
    insert(db, [(job, step, Jsonb({"accuracy": step / 10})) for step in (3, 1, 2)])
    assert count_rows(db, job)[0] == 3
    assert final(db, job) == {"accuracy": 0.3}
    # A batch or one statement per row (executemany): each name is recorded once for the job, and once for the
    # span of 1024 steps the rows fall into, however many rows log it.
    big = new_job(db)
    insert(db, [(big, step, Jsonb({"accuracy": step / 100, "f1": 0.5})) for step in (30, 10, 20, *range(40, 60))])
    assert count_rows(db, big) == (23, 2)
    spans = db.execute("select span, seen from regate_internal.metric_spans where job_id = %s", [big]).fetchall()
    assert {(span, name) for span, names in spans for name in names} == {(0, "accuracy"), (0, "f1")}
    assert final(db, big) == {"accuracy": 0.59, "f1": 0.5}


# --- append-only -----------------------------------------------------------------------------------------------


def test_metric_rows_cannot_be_updated_deleted_or_truncated(db: psycopg.Connection[Any]) -> None:
    job = new_job(db)
    first = log(db, job, 1, {"accuracy": 0.5}, train_loss=2.0)
    log(db, job, 2, {"accuracy": 0.6}, train_loss=1.5)
    before = db.execute("select * from regate.local_training_metrics order by id").fetchall()

    updates: list[tuple[str, list[Any] | None]] = [
        ("update regate.local_training_metrics set train_loss = 0.1 where id = %s", [first]),
        ("update regate.local_training_metrics set metrics = '{\"accuracy\": 0.99}' where job_id = %s", [job]),
        ("update regate.local_training_metrics set step = step + 100", None),
    ]
    for statement, params in updates:
        err = refused(db, "RG003", statement, params)
        assert "append-only" in message(err)
        assert "update" in message(err)
    for statement, params in [
        ("delete from regate.local_training_metrics where id = %s", [first]),
        ("delete from regate.local_training_metrics", None),
    ]:
        err = refused(db, "RG003", statement, params)
        assert "append-only" in message(err)
        assert "delete" in message(err)
    err = refused(db, "RG003", "truncate regate.local_training_metrics")
    assert "append-only" in message(err)
    refused(db, "42501", "truncate regate.local_training_jobs cascade")  # jobs cannot be truncated either

    assert db.execute("select * from regate.local_training_metrics order by id").fetchall() == before
    assert final(db, job) == {"accuracy": 0.6, "train_loss": 1.5}


def test_deleting_a_job_without_verdicts_removes_its_metrics(db: psycopg.Connection[Any]) -> None:
    doomed, kept = new_job(db, status="running"), new_job(db, status="running")
    for job in (doomed, kept):
        log(db, job, 1, {"accuracy": 0.5}, train_loss=2.0)
        log(db, job, 2, eval_loss=1.0)
    assert count_rows(db, doomed) == (2, 3)

    db.execute("delete from regate.local_training_jobs where id = %s", [doomed])

    assert count_rows(db, doomed) == (0, 0)
    assert final(db, doomed) is None
    assert count_rows(db, kept) == (2, 3)
    assert final(db, kept) == {"accuracy": 0.5, "train_loss": 2.0, "eval_loss": 1.0}


def test_deleting_a_job_with_verdicts_is_refused(db: psycopg.Connection[Any]) -> None:
    job = new_job(db, status="running")
    log(db, job, 1, {"accuracy": 0.5}, train_loss=2.0)
    complete(db, job)
    assert db.execute("select count(*) from regate.validation_results where job_id = %s", [job]).fetchone() == (1,)

    err = refused(db, "RG006", "delete from regate.local_training_jobs where id = %s", [job])
    assert str(job) in message(err)
    assert db.execute("select count(*) from regate.local_training_jobs where id = %s", [job]).fetchone() == (1,)
    assert count_rows(db, job) == (1, 2)
    assert final(db, job) == {"accuracy": 0.5, "train_loss": 2.0}


# --- final metrics ---------------------------------------------------------------------------------------------


def test_final_metrics_of_a_job_without_metric_rows_are_null(db: psycopg.Connection[Any]) -> None:
    job, other = new_job(db), new_job(db)
    log(db, other, 1, {"accuracy": 0.5}, train_loss=1.0)
    assert final(db, job) is None
    assert final(db, uuid.uuid4()) is None


def test_sparse_metrics_each_come_from_their_latest_step(db: psycopg.Connection[Any]) -> None:
    job = new_job(db)
    log(db, job, 90, train_loss=2.0, learning_rate=1e-3, epoch=0.9)
    log(db, job, 100, {"accuracy": 0.7, "bleu": 20.0}, eval_loss=1.8, perplexity=6.05)
    log(db, job, 110, train_loss=1.7, grad_norm=0.4, epoch=1.1)
    log(db, job, 120, {"bleu": 22.5})
    assert final(db, job) == {
        "train_loss": 1.7,
        "learning_rate": 1e-3,
        "epoch": 1.1,
        "grad_norm": 0.4,
        "eval_loss": 1.8,
        "perplexity": 6.05,
        "accuracy": 0.7,
        "bleu": 22.5,
    }


def test_at_the_same_step_the_later_row_wins_and_nulls_hide_nothing(db: psycopg.Connection[Any]) -> None:
    job = new_job(db)
    # Step 100: the training event, then the evaluation event, then a corrected evaluation.
    log(db, job, 100, train_loss=1.9, learning_rate=1e-4, eval_loss=9.9)
    log(db, job, 100, {"accuracy": 0.6}, eval_loss=1.7)
    log(db, job, 100, {"accuracy": 0.65}, eval_loss=None, perplexity=5.5)
    assert final(db, job) == {
        "train_loss": 1.9,
        "learning_rate": 1e-4,
        "eval_loss": 1.7,
        "accuracy": 0.65,
        "perplexity": 5.5,
    }
    # The same within one statement: rows are ordered by id, which follows the VALUES order.
    other = new_job(db)
    db.execute(
        "insert into regate.local_training_metrics (job_id, step, train_loss, eval_loss) values"
        " (%(j)s, 7, 3.0, 4.0), (%(j)s, 7, 2.0, null), (%(j)s, 7, null, null)",
        {"j": other},
    )
    assert final(db, other) == {"train_loss": 2.0, "eval_loss": 4.0}


def test_a_lower_step_logged_later_does_not_win(db: psycopg.Connection[Any]) -> None:
    job = new_job(db)
    log(db, job, 100, {"accuracy": 0.8}, eval_loss=1.0)
    log(db, job, 50, {"accuracy": 0.4, "recall": 0.3}, eval_loss=2.0, train_loss=2.5)
    assert final(db, job) == {"accuracy": 0.8, "eval_loss": 1.0, "recall": 0.3, "train_loss": 2.5}
    # And within one statement, out of step order.
    other = new_job(db)
    db.execute(
        "insert into regate.local_training_metrics (job_id, step, eval_loss)"
        " values (%(j)s, 100, 1.0), (%(j)s, 50, 2.0)",
        {"j": other},
    )
    assert final(db, other) == {"eval_loss": 1.0}


def test_nan_and_infinities_come_back_as_strings(db: psycopg.Connection[Any]) -> None:
    job = new_job(db)
    log(
        db,
        job,
        1,
        {"score": "NaN", "ratio": "Infinity", "margin": "-Infinity", "bleu": 10.0},
        train_loss=math.nan,
        eval_loss=math.inf,
        grad_norm=-math.inf,
        perplexity=3.0,
    )
    assert final(db, job) == {
        "train_loss": "NaN",
        "eval_loss": "Infinity",
        "grad_norm": "-Infinity",
        "perplexity": 3.0,
        "score": "NaN",
        "ratio": "Infinity",
        "margin": "-Infinity",
        "bleu": 10.0,
    }
    # A later finite value replaces a non-finite one, and the other way around.
    log(db, job, 2, {"score": 0.5, "bleu": "NaN"}, train_loss=1.25, perplexity=math.inf)
    got = final(db, job)
    assert got is not None
    assert (got["score"], got["bleu"], got["train_loss"], got["perplexity"]) == (0.5, "NaN", 1.25, "Infinity")


def test_other_jobs_metrics_never_leak_in(db: psycopg.Connection[Any]) -> None:
    a, b = new_job(db, "model-a"), new_job(db, "model-b")
    log(db, a, 10, {"accuracy": 0.5}, train_loss=1.0)
    log(db, b, 999, {"accuracy": 0.99, "only_b": 1.0}, train_loss=0.01, eval_loss=0.02)
    db.execute(
        "insert into regate.local_training_metrics (job_id, step, train_loss) values (%s, 5000, 0.001), (%s, 20, 0.9)",
        [b, a],
    )
    assert final(db, a) == {"accuracy": 0.5, "train_loss": 0.9}
    assert final(db, b) == {"accuracy": 0.99, "only_b": 1.0, "train_loss": 0.001, "eval_loss": 0.02}


def test_concurrent_inserts_for_one_job_both_land(
    db: psycopg.Connection[Any], db_dsn: str, subtests: pytest.Subtests
) -> None:
    for first_step, second_step in [(200, 100), (100, 200)]:
        with subtests.test(first_commit_step=first_step, second_commit_step=second_step):
            job = new_job(db, status="running")
            log(db, job, 1, {"accuracy": 0.1}, train_loss=9.0)
            with psycopg.connect(db_dsn) as first, psycopg.connect(db_dsn) as second:
                metrics = {"accuracy": first_step / 1000, f"only_{first_step}": 1.0}
                log(first, job, first_step, metrics, train_loss=first_step)
                metrics = {"accuracy": second_step / 1000, f"only_{second_step}": 2.0}
                # Ingesters never wait for each other: candidates are inserted, never updated.
                started = time.monotonic()
                log(second, job, second_step, metrics, train_loss=second_step, eval_loss=0.5)
                assert time.monotonic() - started < 5
                first.commit()
                second.commit()

            assert final(db, job) == {
                "accuracy": 0.2,
                "train_loss": 200.0,
                "eval_loss": 0.5,
                "only_100": 1.0 if first_step == 100 else 2.0,
                "only_200": 1.0 if first_step == 200 else 2.0,
            }
            assert count_rows(db, job)[0] == 3


# --- bit-identical values --------------------------------------------------------------------------------------

AWKWARD = [
    0.1,
    1 / 3,
    2**-1074,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    123456789.12345678,
    1e-300,
    0.30000000000000004,
    2.2250738585072014e-308,
    2.225073858507201e-308,
    5e-324 * 3,
    math.pi,
    -math.e,
    1e23,
    9007199254740993.0,
]


def test_values_come_back_bit_identical(db: psycopg.Connection[Any], db_dsn: str, subtests: pytest.Subtests) -> None:
    for extra_float_digits in (0, -15, 3):
        with subtests.test(extra_float_digits=extra_float_digits):
            job = new_job(db)
            # Each value in every fixed column and in metrics (text and binary parameters alternately), read back
            # after each row in a session with this extra_float_digits.
            with psycopg.connect(db_dsn, autocommit=True) as session:
                session.execute(sql.SQL("set extra_float_digits = {}").format(sql.Literal(extra_float_digits)))
                for i, value in enumerate(AWKWARD):
                    columns = {name: value for name in COLUMNS}
                    placeholder = "%b" if i % 2 else "%s"
                    session.execute(
                        sql.SQL(
                            "insert into regate.local_training_metrics (job_id, step, {}, metrics) values ({})"
                        ).format(
                            sql.SQL(", ").join(map(sql.Identifier, columns)),
                            sql.SQL(", ").join(sql.SQL(placeholder) for _ in range(len(columns) + 3)),
                        ),
                        [job, i, *columns.values(), Jsonb({f"m{i}": value})],
                    )
                    row = session.execute("select regate.extract_final_metrics(%s)::text", [job]).fetchone()
                    assert row is not None
                    got = json.loads(row[0], parse_int=float, parse_float=float)
                    for name in (*COLUMNS, f"m{i}"):
                        assert got[name] == value, (name, value, got[name])
                        assert float.hex(got[name]) == float.hex(value), (name, value, got[name])


def test_negative_zero_comes_back_as_zero(db: psycopg.Connection[Any]) -> None:
    # JSON numbers are numerics in jsonb: there is no negative zero. The value still compares equal.
    job = new_job(db)
    log(db, job, 1, {"delta": -0.0}, train_loss=-0.0)
    assert final(db, job) == {"delta": 0.0, "train_loss": 0.0}
