"""Baselines: their rules, create_baseline, create_baselines_from_job."""

from __future__ import annotations

import math
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests.blocking import Blocked
from tests.helpers import log, message, new_job, refused

MODEL = "gpt-small"
VALID: dict[str, Any] = {
    "model_name": MODEL,
    "metric_name": "accuracy",
    "baseline_value": 0.8,
    "greater_is_better": True,
    "threshold": 0.7,
    "min_absolute_change": 0.01,
    "min_relative_change": 0.01,
    "severity": "critical",
}
NUMBERS = ("baseline_value", "threshold", "min_absolute_change", "min_relative_change")


def columns_and_values(fields: dict[str, Any]) -> tuple[sql.Composable, sql.Composable]:
    return (
        sql.SQL(", ").join(map(sql.Identifier, fields)),
        sql.SQL(", ").join(sql.Placeholder() * len(fields)),
    )


def insert_baseline_query(fields: dict[str, Any]) -> sql.Composed:
    names, values = columns_and_values(fields)
    return sql.SQL("insert into regate.model_baselines ({}) values ({}) returning id").format(names, values)


def insert_baseline(db: psycopg.Connection[Any], **overrides: Any) -> int:
    fields = {**VALID, **overrides}
    row = db.execute(insert_baseline_query(fields), list(fields.values())).fetchone()
    assert row is not None
    return int(row[0])


def baselines(db: psycopg.Connection[Any], where: str = "true", params: Any = None) -> list[dict[str, Any]]:
    query = sql.SQL("select * from regate.model_baselines where {} order by id").format(sql.SQL(where))
    return db.cursor(row_factory=dict_row).execute(query, params).fetchall()


def active(db: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return baselines(db, "is_active")


def named_call(function: str, args: dict[str, Any]) -> sql.Composed:
    """`select * from regate.<function>(name => %s, ...)`: named notation, as users call it."""
    return sql.SQL("select * from regate.{}({})").format(
        sql.Identifier(function),
        sql.SQL(", ").join(sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder()) for k in args),
    )


def create_baseline(db: psycopg.Connection[Any], **args: Any) -> dict[str, Any]:
    args.setdefault("model_name", MODEL)
    rows = db.cursor(row_factory=dict_row).execute(named_call("create_baseline", args), list(args.values())).fetchall()
    assert len(rows) == 1
    return rows[0]


def from_job(db: psycopg.Connection[Any], **args: Any) -> list[dict[str, Any]]:
    params = [Jsonb(v) if k == "directions" and v is not None else v for k, v in args.items()]
    cur = db.cursor(row_factory=dict_row).execute(named_call("create_baselines_from_job", args), params)
    return sorted(cur.fetchall(), key=lambda r: r["metric_name"])


# --- the rules of a baseline -----------------------------------------------------------------------------------

RULES: dict[str, tuple[dict[str, Any], str]] = {
    "empty metric name": ({"metric_name": ""}, "metric_name must be a non-empty name"),
    "blank metric name": ({"metric_name": "   "}, "metric_name must be a non-empty name"),
    "blank model name": ({"model_name": " "}, "model_name must be a non-empty name"),
    "null greater_is_better": ({"greater_is_better": None}, "greater_is_better must be true"),
    "no criterion": (
        {"threshold": None, "min_absolute_change": None, "min_relative_change": None},
        "at least one of threshold, min_absolute_change, min_relative_change",
    ),
    "change criteria without baseline_value": ({"baseline_value": None}, "baseline_value is required"),
    "relative change without baseline_value": (
        {"baseline_value": None, "threshold": None, "min_absolute_change": None},
        "baseline_value is required",
    ),
    "absolute change without baseline_value": (
        {"baseline_value": None, "threshold": None, "min_relative_change": None},
        "baseline_value is required",
    ),
    **{
        f"{field} {label}": ({field: value}, f"{field} must be a finite number")
        for field in NUMBERS
        for label, value in (("NaN", math.nan), ("Infinity", math.inf), ("-Infinity", -math.inf))
    },
    "unknown severity": ({"severity": "fatal"}, "severity must be 'critical' or 'warning'"),
    "severity in capitals": ({"severity": "CRITICAL"}, "severity must be 'critical' or 'warning'"),
    "empty severity": ({"severity": ""}, "severity must be 'critical' or 'warning'"),
    "null severity": ({"severity": None}, "severity must be 'critical' or 'warning'"),
}


def test_a_baseline_breaking_a_rule_is_refused_at_insert_and_update(
    db: psycopg.Connection[Any], subtests: pytest.Subtests
) -> None:
    for i, (label, (overrides, rule)) in enumerate(RULES.items()):
        with subtests.test(label, rule=rule):
            model = f"model-{i}"
            fields = {**VALID, "model_name": model, **overrides}
            before = baselines(db)
            err = refused(db, "RG004", insert_baseline_query(fields), list(fields.values()))
            assert rule in message(err)
            assert baselines(db) == before

            good = insert_baseline(db, model_name=model)
            before = baselines(db)
            names, values = columns_and_values(overrides)
            update = sql.SQL("update regate.model_baselines set ({}) = row({}) where id = %s").format(names, values)
            err = refused(db, "RG004", update, [*overrides.values(), good])
            assert rule in message(err)
            assert baselines(db) == before


def test_valid_baselines_are_accepted(db: psycopg.Connection[Any]) -> None:
    insert_baseline(db)
    # A threshold alone needs no baseline_value; negative change criteria are tolerated regressions.
    insert_baseline(db, metric_name="f1", baseline_value=None, min_absolute_change=None, min_relative_change=None)
    insert_baseline(db, metric_name="bleu", threshold=None, min_absolute_change=-0.5, min_relative_change=-0.02)
    insert_baseline(db, metric_name="eval_loss", greater_is_better=False, severity="warning", model_version="v2")
    assert [b["metric_name"] for b in active(db)] == ["accuracy", "f1", "bleu", "eval_loss"]
    # Deactivating a valid baseline is an ordinary update.
    db.execute("update regate.model_baselines set is_active = false where metric_name = 'f1'")
    assert [b["metric_name"] for b in active(db)] == ["accuracy", "bleu", "eval_loss"]


def test_one_active_baseline_per_model_version_metric_and_severity(db: psycopg.Connection[Any]) -> None:
    insert_baseline(db)  # model_version NULL: all versions
    err = refused(db, "23505", insert_baseline_query(VALID), list(VALID.values()))
    assert err.diag.constraint_name == "model_baselines_one_active_idx"

    insert_baseline(db, model_version="v1")
    v1 = {**VALID, "model_version": "v1", "threshold": 0.75}
    refused(db, "23505", insert_baseline_query(v1), list(v1.values()))

    # Other severities, versions, metrics and models coexist; so do inactive rows (history).
    insert_baseline(db, severity="warning")
    insert_baseline(db, model_version="v2")
    insert_baseline(db, metric_name="f1")
    insert_baseline(db, model_name="gpt-large")
    insert_baseline(db, is_active=False)
    old = insert_baseline(db, is_active=False)
    assert len(active(db)) == 6
    assert len(baselines(db)) == 8

    # Reactivating an old row while another is active is the same collision.
    refused(db, "23505", "update regate.model_baselines set is_active = true where id = %s", [old])


# --- create_baseline -------------------------------------------------------------------------------------------


def test_create_baseline_returns_the_new_row(db: psycopg.Connection[Any]) -> None:
    row = create_baseline(
        db,
        model_name=MODEL,
        metric_name="accuracy",
        baseline_value=0.82,
        greater_is_better=True,
        threshold=0.8,
        min_absolute_change=-0.01,
        min_relative_change=0.001,
        severity="warning",
        model_version="v7",
        description="accepted after the March run",
    )
    assert row["id"] is not None
    assert {k: row[k] for k in (*VALID, "model_version", "description", "is_active", "source_job_id")} == {
        "model_name": MODEL,
        "metric_name": "accuracy",
        "baseline_value": 0.82,
        "greater_is_better": True,
        "threshold": 0.8,
        "min_absolute_change": -0.01,
        "min_relative_change": 0.001,
        "severity": "warning",
        "model_version": "v7",
        "description": "accepted after the March run",
        "is_active": True,
        "source_job_id": None,
    }
    assert baselines(db) == [row]
    # The defaults: critical, all versions.
    row = create_baseline(db, metric_name="eval_loss", threshold=2.0)
    assert (row["severity"], row["model_version"], row["greater_is_better"]) == ("critical", None, False)


def test_create_baseline_replaces_the_active_baseline_and_keeps_history(db: psycopg.Connection[Any]) -> None:
    first = create_baseline(db, metric_name="eval_loss", baseline_value=1.0, min_relative_change=0.0)
    # Same metric under other keys: untouched.
    other_version = create_baseline(db, metric_name="eval_loss", threshold=1.5, model_version="v1")
    other_severity = create_baseline(db, metric_name="eval_loss", threshold=1.5, severity="warning")
    other_model = create_baseline(db, model_name="gpt-large", metric_name="eval_loss", threshold=1.5)

    second = create_baseline(db, metric_name="eval_loss", baseline_value=0.9, min_relative_change=0.0)
    third = create_baseline(db, metric_name="eval_loss", baseline_value=0.8, min_relative_change=0.01)

    state = {b["id"]: b["is_active"] for b in baselines(db)}
    assert state == {
        first["id"]: False,
        second["id"]: False,
        third["id"]: True,
        other_version["id"]: True,
        other_severity["id"]: True,
        other_model["id"]: True,
    }
    history = baselines(db, "model_name = %s and model_version is null and severity = 'critical'", [MODEL])
    assert [b["baseline_value"] for b in history] == [1.0, 0.9, 0.8]

    # A version-specific replacement leaves the all-versions baseline alone.
    v1 = create_baseline(db, metric_name="eval_loss", threshold=1.4, model_version="v1")
    state = {b["id"]: b["is_active"] for b in baselines(db)}
    assert state[other_version["id"]] is False
    assert state[v1["id"]] is True
    assert state[third["id"]] is True


def test_a_refused_create_baseline_leaves_the_previous_one_active(db: psycopg.Connection[Any]) -> None:
    kept = create_baseline(db, metric_name="accuracy", greater_is_better=True, threshold=0.7)
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"greater_is_better": True, "threshold": math.nan}, "RG004"),
        ({"greater_is_better": True}, "RG004"),
        ({"greater_is_better": True, "min_relative_change": 0.1}, "RG004"),
        ({"greater_is_better": True, "threshold": 0.7, "severity": "blocker"}, "RG004"),
        ({"threshold": 0.9}, "RG007"),
    ]
    for args, sqlstate in refusals:
        with pytest.raises(psycopg.Error) as err:
            create_baseline(db, metric_name="accuracy", **args)
        assert err.value.sqlstate == sqlstate, (args, err.value)
        assert "accuracy" in message(err.value)
        assert baselines(db) == [kept]


def test_greater_is_better_is_inferred_false_for_lower_is_better_names(
    db: psycopg.Connection[Any], subtests: pytest.Subtests
) -> None:
    for metric in [
        "loss",
        "eval_loss",
        "val/Loss",
        "perplexity",
        "eval_perplexity",
        "wer",
        "test_WER",
        "cer",
        "val_cer",
        "evalLoss",
        "train-perplexity",
    ]:
        with subtests.test(metric=metric):
            row = create_baseline(db, metric_name=metric, baseline_value=1.0, min_relative_change=0.0)
            assert row["greater_is_better"] is False
            assert baselines(db, "metric_name = %s", [metric]) == [row]


def test_greater_is_better_is_not_guessed_for_other_names(
    db: psycopg.Connection[Any], subtests: pytest.Subtests
) -> None:
    for metric in [
        "accuracy",
        "bleu",
        "f1",
        "loss_scale",
        "perplexity_gap",
        "werewolf",
        "tokens",
        "answer",  # ends in "wer", but is not a word error rate
        "balancer",  # ends in "cer"
        "gpu_power",
        "lower",
    ]:
        with subtests.test(metric=metric):
            with pytest.raises(psycopg.Error) as err:
                create_baseline(db, metric_name=metric, threshold=0.5)
            assert err.value.sqlstate == "RG007"
            assert metric in message(err.value)
            assert "greater_is_better" in message(err.value)
            assert "greater_is_better =>" in (err.value.diag.message_hint or "")
            assert baselines(db, "metric_name = %s", [metric]) == []
            # Saying it explicitly works.
            row = create_baseline(db, metric_name=metric, threshold=0.5, greater_is_better=True)
            assert row["greater_is_better"] is True
    # An explicit direction always wins over the name.
    assert create_baseline(db, metric_name="eval_loss", threshold=0.5, greater_is_better=True)["greater_is_better"]


def test_concurrent_create_baseline_for_one_key_leaves_one_active(
    db: psycopg.Connection[Any], db_dsn: str, subtests: pytest.Subtests
) -> None:
    for model_version in (None, "v1"):
        with subtests.test(model_version=model_version):
            key = {"metric_name": "eval_loss", "model_version": model_version}
            where = "model_version is not distinct from %s"
            original = create_baseline(db, threshold=2.0, **key)
            with psycopg.connect(db_dsn) as first, psycopg.connect(db_dsn) as second:
                made_first = create_baseline(first, threshold=1.9, **key)
                waiting = Blocked(db, second, create_baseline, threshold=1.8, **key)
                # Until the first commits, everyone else still sees the original as the active baseline.
                assert [b["id"] for b in baselines(db, f"is_active and {where}", [model_version])] == [original["id"]]
                first.commit()
                made_second = waiting.join()
                second.commit()

            assert [(b["id"], b["is_active"]) for b in baselines(db, where, [model_version])] == [
                (original["id"], False),
                (made_first["id"], False),
                (made_second["id"], True),
            ]
            assert made_second["threshold"] == 1.8


# --- create_baselines_from_job ---------------------------------------------------------------------------------


@pytest.fixture
def job(db: psycopg.Connection[Any]) -> uuid.UUID:
    """A job with lower-is-better, higher-is-better, unknown-direction and non-finite final metrics."""
    job = new_job(db, MODEL, version="v3")
    log(db, job, 100, {"accuracy": 0.5, "wer": 0.3}, train_loss=2.0, eval_loss=1.5)
    log(db, job, 200, {"accuracy": 0.81, "bleu": 24.5, "wer": 0.12, "diverged": "NaN"}, eval_loss=1 / 3)
    log(db, job, 210, {"exploded": "Infinity"}, train_loss=1.25, perplexity=math.inf)
    # Another job of the same model: its metrics must not be promoted.
    other = new_job(db, MODEL, version="v3")
    log(db, other, 999, {"accuracy": 0.99, "cer": 0.01}, train_loss=0.01)
    return job


def summary(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {
        r["metric_name"]: (r["baseline_value"], r["greater_is_better"], r["threshold"], r["min_relative_change"])
        for r in rows
    }


def test_promotion_without_a_list_skips_what_it_cannot_judge(db: psycopg.Connection[Any], job: uuid.UUID) -> None:
    notices: list[str] = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    rows = from_job(db, job_id=job)
    assert summary(rows) == {
        "eval_loss": (1 / 3, False, 1 / 3, None),
        "train_loss": (1.25, False, 1.25, None),
        "wer": (0.12, False, 0.12, None),
    }
    for r in rows:
        assert (r["model_name"], r["model_version"], r["source_job_id"], r["is_active"]) == (MODEL, None, job, True)
        assert (r["severity"], r["min_absolute_change"]) == ("critical", None)
    assert baselines(db) == rows
    # Each skipped metric is named in a NOTICE: the non-finite ones and those of unknown direction.
    for skipped in ("diverged", "exploded", "perplexity", "accuracy", "bleu"):
        assert any(skipped in n for n in notices), (skipped, notices)
    for promoted in ("eval_loss", "train_loss", "wer"):
        assert not any(promoted in n for n in notices), (promoted, notices)


def test_promotion_with_directions_and_a_relative_criterion(db: psycopg.Connection[Any], job: uuid.UUID) -> None:
    rows = from_job(
        db,
        job_id=job,
        min_relative_change=-0.02,
        severity="warning",
        directions={"accuracy": True, "bleu": True, "train_loss": True, "diverged": True},
    )
    assert summary(rows) == {
        "accuracy": (0.81, True, None, -0.02),
        "bleu": (24.5, True, None, -0.02),
        "eval_loss": (1 / 3, False, None, -0.02),
        "train_loss": (1.25, True, None, -0.02),
        "wer": (0.12, False, None, -0.02),
    }
    assert {(r["severity"], r["model_version"], r["source_job_id"]) for r in rows} == {("warning", None, job)}


def test_promotion_of_listed_metrics(db: psycopg.Connection[Any], job: uuid.UUID) -> None:
    rows = from_job(db, job_id=job, metric_names=["eval_loss", "accuracy"], directions={"accuracy": True})
    assert summary(rows) == {"accuracy": (0.81, True, 0.81, None), "eval_loss": (1 / 3, False, 1 / 3, None)}
    assert baselines(db) == rows


def test_promoting_again_replaces_the_previous_promotion(db: psycopg.Connection[Any], job: uuid.UUID) -> None:
    first = from_job(db, job_id=job, metric_names=["eval_loss"])
    log(db, job, 300, {}, eval_loss=0.25)
    second = from_job(db, job_id=job, metric_names=["eval_loss"])
    assert [(b["id"], b["baseline_value"], b["is_active"]) for b in baselines(db)] == [
        (first[0]["id"], 1 / 3, False),
        (second[0]["id"], 0.25, True),
    ]


PROMOTION_ERRORS: dict[str, tuple[dict[str, Any], str, str]] = {
    "listed metric missing": ({"metric_names": ["eval_loss", "rouge"]}, "RG004", "rouge"),
    "listed metric of another job": ({"metric_names": ["cer"]}, "RG004", "cer"),
    "listed metric is NaN": ({"metric_names": ["eval_loss", "diverged"]}, "RG004", "diverged"),
    "listed metric is infinite": ({"metric_names": ["perplexity"]}, "RG004", "perplexity"),
    "listed metric of unknown direction": ({"metric_names": ["eval_loss", "accuracy"]}, "RG007", "accuracy"),
    "direction not a boolean": ({"directions": {"accuracy": "up"}}, "RG004", "directions.accuracy"),
    "direction null": ({"directions": {"accuracy": None}}, "RG004", "directions.accuracy"),
    "direction as a number": ({"directions": {"bleu": 1}}, "RG004", "directions.bleu"),
    "directions not an object": ({"directions": ["accuracy"]}, "RG004", "directions"),
    "directions SQL NULL": ({"directions": None}, "RG004", "directions"),
    "invalid severity": ({"severity": "fatal"}, "RG004", "severity"),
    "relative change NaN": ({"min_relative_change": math.nan}, "RG004", "min_relative_change"),
}


def test_a_refused_promotion_creates_nothing(
    db: psycopg.Connection[Any], job: uuid.UUID, subtests: pytest.Subtests
) -> None:
    create_baseline(db, metric_name="eval_loss", threshold=5.0)
    for label, (args, sqlstate, named) in PROMOTION_ERRORS.items():
        with subtests.test(label, args=args):
            before = baselines(db)
            with pytest.raises(psycopg.Error) as err:
                from_job(db, job_id=job, **args)
            assert err.value.sqlstate == sqlstate, err.value
            assert named in message(err.value)
            assert baselines(db) == before


def test_promotion_from_an_unknown_job_is_refused(db: psycopg.Connection[Any]) -> None:
    missing = uuid.uuid4()
    with pytest.raises(psycopg.Error) as err:
        from_job(db, job_id=missing)
    assert err.value.sqlstate == "RG008"
    assert str(missing) in message(err.value)


def test_promotion_from_a_job_without_metrics(db: psycopg.Connection[Any]) -> None:
    job = new_job(db)
    assert from_job(db, job_id=job) == []
    with pytest.raises(psycopg.Error) as err:
        from_job(db, job_id=job, metric_names=["eval_loss"])
    assert err.value.sqlstate == "RG004"
    assert "eval_loss" in message(err.value)
    assert baselines(db) == []


def test_promoted_values_are_bit_identical(db: psycopg.Connection[Any]) -> None:
    values = {"a_loss": 0.1, "b_loss": 2**-1074, "c_loss": 1.7976931348623157e308, "d_loss": 123456789.12345678}
    job = new_job(db)
    log(db, job, 1, values, eval_loss=0.30000000000000004)
    # Promote in a session that prints doubles with 15 digits only; read back in the default one.
    db.execute("set extra_float_digits = -15")
    db.execute("select count(*) from regate.create_baselines_from_job(job_id => %s)", [job])
    db.execute("reset extra_float_digits")
    got = {b["metric_name"]: b["baseline_value"] for b in baselines(db)}
    expected = {**values, "eval_loss": 0.30000000000000004}
    assert got == expected
    assert {k: float.hex(v) for k, v in got.items()} == {k: float.hex(v) for k, v in expected.items()}
