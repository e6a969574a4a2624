"""The completion trigger and the verdicts, against real PostgreSQL: what a user sees when a job completes."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.blocking import Blocked
from tests.helpers import complete, log, new_job

Conn = psycopg.Connection[Any]
MODEL = "sentiment-bert"
job = functools.partial(new_job, model=MODEL)  # the jobs of this module are of MODEL unless they say otherwise


def result(db: Conn, result_id: int) -> dict[str, Any]:
    cur = db.execute("select * from regate.validation_results where id = %s", (result_id,))
    row = cur.fetchone()
    assert row is not None and cur.description is not None
    return dict(zip([c.name for c in cur.description], row, strict=True))


def baseline(db: Conn, metric: str, **kwargs: Any) -> int:
    kwargs.setdefault("model_name", MODEL)
    args = ", ".join(f"{k} => %s" for k in kwargs)
    row = db.execute(
        f"select (regate.create_baseline(metric_name => %s, {args})).id", (metric, *kwargs.values())
    ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def checks_by_metric(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["metric_name"]: c for c in res["checks"]}


@pytest.fixture
def baselines(db: Conn) -> dict[str, int]:
    return {
        "eval_loss": baseline(db, "eval_loss", baseline_value=0.43, min_relative_change=-0.05),
        "accuracy": baseline(db, "accuracy", baseline_value=0.80, greater_is_better=True, threshold=0.75),
        "perplexity": baseline(db, "perplexity", baseline_value=12.0, threshold=14.0, severity="warning"),
    }


def test_good_job_passes_with_an_explainable_verdict(db: Conn, baselines: dict[str, int]) -> None:
    j = job(db)
    log(db, j, 100, train_loss=0.9)
    log(db, j, 100, eval_loss=0.45, perplexity=13.0, metrics={"accuracy": 0.79})
    log(db, j, 200, train_loss=0.7)
    log(db, j, 200, eval_loss=0.42, perplexity=12.5, metrics={"accuracy": 0.81})
    status, result_id = complete(db, j)
    assert status == "passed" and result_id is not None
    res = result(db, result_id)
    assert res["status"] == "passed" and res["blocked"] is False and res["source"] == "auto"
    assert res["job_id"] == j and res["model_name"] == MODEL
    assert res["metrics"] == {"eval_loss": 0.42, "perplexity": 12.5, "accuracy": 0.81, "train_loss": 0.7}
    checks = checks_by_metric(res)
    assert set(checks) == {"eval_loss", "accuracy", "perplexity"}
    assert all(c["outcome"] == "passed" and c["failed_criteria"] == [] for c in checks.values())
    assert checks["eval_loss"]["baseline_id"] == baselines["eval_loss"]
    assert checks["eval_loss"]["step"] == 200 and checks["eval_loss"]["observed"] == 0.42
    assert res["config"]["blockOnCriticalFailures"] is False
    assert res["duration_ms"] >= 0
    completed_at = db.execute("select completed_at from regate.local_training_jobs where id = %s", (j,)).fetchone()
    assert completed_at is not None and completed_at[0] is not None


def test_regressed_job_fails_warn_only_by_default(db: Conn, baselines: dict[str, int]) -> None:
    j = job(db)
    log(db, j, 10, eval_loss=0.52, perplexity=12.0, metrics={"accuracy": 0.8})
    status, result_id = complete(db, j)
    assert status == "failed"
    res = result(db, result_id)  # type: ignore[arg-type]
    assert res["status"] == "failed" and res["blocked"] is False
    check = checks_by_metric(res)["eval_loss"]
    assert check["outcome"] == "failed" and check["failed_criteria"] == ["min_relative_change"]
    assert check["message"] == "eval_loss 0.52 is worse than baseline 0.43 by 20.9%, tolerance 5%"


def test_blocking_mode_blocks_a_critical_failure(db: Conn, baselines: dict[str, int]) -> None:
    j = job(db, config={"blockOnCriticalFailures": True, "learning_rate": 3e-5})
    log(db, j, 10, eval_loss=0.52, perplexity=12.0, metrics={"accuracy": 0.8})
    status, result_id = complete(db, j)
    assert status == "blocked"
    res = result(db, result_id)  # type: ignore[arg-type]
    assert res["status"] == "failed" and res["blocked"] is True
    assert res["config"]["blockOnCriticalFailures"] is True


def test_warning_severity_failure_is_a_warning_and_never_blocks(db: Conn, baselines: dict[str, int]) -> None:
    j = job(db, config={"blockOnCriticalFailures": True})
    log(db, j, 10, eval_loss=0.43, perplexity=20.0, metrics={"accuracy": 0.8})
    status, result_id = complete(db, j)
    assert status == "warning"
    res = result(db, result_id)  # type: ignore[arg-type]
    assert res["status"] == "warning" and res["blocked"] is False
    assert checks_by_metric(res)["perplexity"]["failed_criteria"] == ["threshold"]


@pytest.mark.parametrize(
    ("value", "observed"),
    [(float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity")],
    ids=["nan", "inf", "-inf"],
)
def test_non_finite_values_fail_in_both_directions(db: Conn, value: float, observed: str) -> None:
    baseline(db, "eval_loss", baseline_value=0.43, min_relative_change=-0.05)
    baseline(db, "accuracy", baseline_value=0.8, greater_is_better=True, min_absolute_change=-0.01)
    j = job(db)
    log(db, j, 5, eval_loss=value, metrics={"accuracy": observed})
    status, result_id = complete(db, j)
    assert status == "failed"
    checks = checks_by_metric(result(db, result_id))  # type: ignore[arg-type]
    for name in ("eval_loss", "accuracy"):
        assert checks[name]["outcome"] == "invalid" and checks[name]["observed"] == observed
        assert f"is {observed}" in checks[name]["message"]


def test_missing_metric_fails(db: Conn, baselines: dict[str, int]) -> None:
    j = job(db)
    log(db, j, 5, eval_loss=0.40, perplexity=12.0)
    status, result_id = complete(db, j)
    assert status == "failed"
    check = checks_by_metric(result(db, result_id))["accuracy"]  # type: ignore[arg-type]
    assert check["outcome"] == "missing" and check["observed"] is None and check["step"] is None
    assert check["message"] == "accuracy was not logged (no value to check)"


def test_job_without_baselines_passes_unless_baselines_are_required(db: Conn) -> None:
    j = job(db, model="unknown-model")
    log(db, j, 1, eval_loss=0.1)
    status, result_id = complete(db, j)
    assert status == "passed"
    res = result(db, result_id)  # type: ignore[arg-type]
    assert res["status"] == "no_baselines" and res["checks"] == [] and res["blocked"] is False

    strict = job(db, model="unknown-model", config={"regressionGateConfig": {"requireBaselines": True}})
    status, result_id = complete(db, strict)
    assert status == "failed"
    res = result(db, result_id)  # type: ignore[arg-type]
    assert res["status"] == "no_baselines" and res["blocked"] is False

    blocking = job(
        db,
        model="unknown-model",
        config={"blockOnCriticalFailures": True, "regressionGateConfig": {"requireBaselines": True}},
    )
    status, result_id = complete(db, blocking)
    assert status == "blocked"
    assert result(db, result_id)["blocked"] is True  # type: ignore[arg-type]


def test_metrics_to_validate_limits_the_checks_and_unbaselined_ones_fail_when_required(
    db: Conn, baselines: dict[str, int]
) -> None:
    j = job(db, config={"regressionGateConfig": {"metricsToValidate": ["eval_loss"]}})
    log(db, j, 1, eval_loss=0.40, metrics={"accuracy": 0.1})  # accuracy would fail, but is not validated
    status, result_id = complete(db, j)
    assert status == "passed"
    assert set(checks_by_metric(result(db, result_id))) == {"eval_loss"}  # type: ignore[arg-type]

    strict = job(
        db, config={"regressionGateConfig": {"metricsToValidate": ["eval_loss", "bleu"], "requireBaselines": True}}
    )
    log(db, strict, 1, eval_loss=0.40, metrics={"bleu": 30.0})
    status, result_id = complete(db, strict)
    assert status == "failed"
    res = result(db, result_id)  # type: ignore[arg-type]
    assert res["status"] == "failed"
    bleu = checks_by_metric(res)["bleu"]
    assert bleu["outcome"] == "no_baseline" and bleu["severity"] == "critical" and bleu["baseline_id"] is None
    assert bleu["observed"] == 30.0


def test_version_specific_baseline_wins_over_the_generic_one(db: Conn) -> None:
    generic = baseline(db, "eval_loss", baseline_value=0.50, min_relative_change=-0.05)
    specific = baseline(db, "eval_loss", baseline_value=0.30, min_relative_change=-0.05, model_version="v2")
    other = baseline(db, "eval_loss", baseline_value=0.10, min_relative_change=-0.05, model_version="v3")
    v2 = job(db, version="v2")
    log(db, v2, 1, eval_loss=0.45)
    status, result_id = complete(db, v2)
    checks = result(db, result_id)["checks"]  # type: ignore[arg-type]
    assert [c["baseline_id"] for c in checks] == [specific] and status == "failed"
    v1 = job(db, version="v1")
    log(db, v1, 1, eval_loss=0.45)
    status, result_id = complete(db, v1)
    checks = result(db, result_id)["checks"]  # type: ignore[arg-type]
    assert [c["baseline_id"] for c in checks] == [generic] and status == "passed"
    # The v3 baseline judged neither job because of its version, not because it is dead: it judges a v3 job.
    v3 = job(db, version="v3")
    log(db, v3, 1, eval_loss=0.45)
    status, result_id = complete(db, v3)
    checks = result(db, result_id)["checks"]  # type: ignore[arg-type]
    assert [c["baseline_id"] for c in checks] == [other] and status == "failed"


def test_superseded_and_inactive_baselines_do_not_apply(db: Conn) -> None:
    old = baseline(db, "eval_loss", baseline_value=0.20, min_relative_change=-0.05)
    new = baseline(db, "eval_loss", baseline_value=0.50, min_relative_change=-0.05)
    assert db.execute("select is_active from regate.model_baselines where id = %s", (old,)).fetchone() == (False,)
    j = job(db)
    log(db, j, 1, eval_loss=0.45)
    status, result_id = complete(db, j)
    assert status == "passed"
    assert [c["baseline_id"] for c in result(db, result_id)["checks"]] == [new]  # type: ignore[arg-type]
    db.execute("update regate.model_baselines set is_active = false where id = %s", (new,))
    k = job(db)
    log(db, k, 1, eval_loss=0.45)
    status, result_id = complete(db, k)
    assert result(db, result_id)["status"] == "no_baselines"  # type: ignore[arg-type]


def test_insert_as_completed_validates_in_the_same_statement(db: Conn, baselines: dict[str, int]) -> None:
    row = db.execute(
        "insert into regate.local_training_jobs (model_name, status) values (%s, 'completed')"
        " returning id, validation_status, validation_result_id, completed_at",
        (MODEL,),
    ).fetchone()
    assert row is not None
    job_id, status, result_id, completed_at = row
    assert status == "failed" and result_id is not None and completed_at is not None
    res = result(db, result_id)
    assert res["job_id"] == job_id and res["metrics"] is None
    assert {c["outcome"] for c in res["checks"]} == {"missing"}


def test_insert_as_completed_in_an_explicit_transaction_commits(db_dsn: str, baselines: dict[str, int]) -> None:
    with psycopg.connect(db_dsn) as conn:  # not autocommit: the deferred foreign key is checked at commit
        row = conn.execute(
            "insert into regate.local_training_jobs (model_name, status) values (%s, 'completed')"
            " returning id, validation_result_id",
            (MODEL,),
        ).fetchone()
        conn.commit()
        assert row is not None
        stored = conn.execute("select job_id from regate.validation_results where id = %s", (row[1],)).fetchone()
        assert stored == (row[0],)


def test_other_updates_do_not_validate(db: Conn, baselines: dict[str, int]) -> None:
    j = job(db)
    log(db, j, 1, eval_loss=0.40, perplexity=12.0, metrics={"accuracy": 0.9})
    status, result_id = complete(db, j)
    db.execute("update regate.local_training_jobs set model_version = 'renamed' where id = %s", (j,))
    db.execute("update regate.local_training_jobs set config = '{\"note\": 1}' where id = %s", (j,))
    db.execute("update regate.local_training_jobs set status = 'completed' where id = %s", (j,))
    count = db.execute("select count(*) from regate.validation_results where job_id = %s", (j,)).fetchone()
    assert count == (1,)
    assert db.execute(
        "select validation_status, validation_result_id from regate.local_training_jobs where id = %s", (j,)
    ).fetchone() == (status, result_id)
    pending = job(db)
    db.execute("update regate.local_training_jobs set status = 'failed' where id = %s", (pending,))
    assert db.execute(
        "select validation_status from regate.local_training_jobs where id = %s", (pending,)
    ).fetchone() == (None,)


def test_completing_again_after_a_rerun_validates_again(db: Conn, baselines: dict[str, int]) -> None:
    j = job(db)
    log(db, j, 1, eval_loss=0.60, perplexity=12.0, metrics={"accuracy": 0.9})
    assert complete(db, j)[0] == "failed"
    db.execute("update regate.local_training_jobs set status = 'running' where id = %s", (j,))
    log(db, j, 2, eval_loss=0.40)
    assert complete(db, j)[0] == "passed"
    count = db.execute("select count(*) from regate.validation_results where job_id = %s", (j,)).fetchone()
    assert count == (2,)


def test_concurrent_completion_validates_exactly_once(db_dsn: str, db: Conn, baselines: dict[str, int]) -> None:
    j = job(db)
    log(db, j, 1, eval_loss=0.40, perplexity=12.0, metrics={"accuracy": 0.9})
    outcomes: list[tuple[Any, ...] | None] = []

    def finish(conn: Conn) -> tuple[Any, ...] | None:
        return conn.execute(
            "update regate.local_training_jobs set status = 'completed' where id = %s"
            " and status <> 'completed' returning validation_result_id",
            (j,),
        ).fetchone()

    with psycopg.connect(db_dsn) as first, psycopg.connect(db_dsn) as second:
        outcomes.append(finish(first))
        # The first holds the row lock: the other session must wait, then see the completed row.
        waiting = Blocked(db, second, finish)
        first.commit()
        outcomes.append(waiting.join())
        second.commit()
    assert sorted(o is None for o in outcomes) == [False, True]
    assert db.execute("select count(*) from regate.validation_results where job_id = %s", (j,)).fetchone() == (1,)

    # Without the guard in the WHERE clause the second session's update applies to the completed row: still
    # exactly one validation, because the trigger fires on entering completed only.
    k = job(db)

    def finish_unguarded(conn: Conn) -> None:
        conn.execute("update regate.local_training_jobs set status = 'completed' where id = %s", (k,))

    with psycopg.connect(db_dsn) as first, psycopg.connect(db_dsn) as second:
        finish_unguarded(first)
        waiting = Blocked(db, second, finish_unguarded)
        first.commit()
        waiting.join()
        second.commit()
    assert db.execute("select count(*) from regate.validation_results where job_id = %s", (k,)).fetchone() == (1,)


def test_metrics_racing_a_completion_never_leave_a_stale_verdict(db_dsn: str, db: Conn) -> None:
    baseline(db, "eval_loss", baseline_value=0.43, min_relative_change=-0.05)
    j = job(db)
    log(db, j, 1, eval_loss=0.90)
    with psycopg.connect(db_dsn) as ingest, psycopg.connect(db_dsn, autocommit=True) as finisher:
        ingest.execute("insert into regate.local_training_metrics (job_id, step, eval_loss) values (%s, 2, 0.40)", (j,))
        waiting = Blocked(db, finisher, complete, j)  # completion must wait for the uncommitted metrics of the job
        ingest.commit()
        done = waiting.join()
    assert done[0] == "passed"  # the verdict saw the metric committed before it


def test_verdicts_are_append_only_and_keep_their_job(db: Conn, baselines: dict[str, int]) -> None:
    j = job(db)
    _, result_id = complete(db, j)
    for sql in (
        "update regate.validation_results set status = 'passed' where id = %s",
        "delete from regate.validation_results where id = %s",
    ):
        with pytest.raises(psycopg.Error) as err:
            db.execute(sql, (result_id,))
        assert err.value.sqlstate == "RG006" and "append-only" in str(err.value)
    with pytest.raises(psycopg.Error) as err:
        db.execute("truncate regate.validation_results cascade")
    assert err.value.sqlstate == "RG006"
    with pytest.raises(psycopg.Error) as err:
        db.execute("delete from regate.local_training_jobs where id = %s", (j,))
    assert err.value.sqlstate == "RG006"
    assert "has 1 validation result(s) and cannot be deleted" in str(err.value)


# --- the kill switch ------------------------------------------------------------------------------------------


def test_disable_gates_records_who_when_why_and_skips_validation(db: Conn, baselines: dict[str, int]) -> None:
    row = db.execute("select enabled, reason, changed_by = session_user from regate.disable_gates('rollback')")
    assert row.fetchone() == (False, "rollback", True)
    assert db.execute("select enabled, reason from regate.gate_status()").fetchone() == (False, "rollback")
    j = job(db)
    log(db, j, 1, eval_loss=0.99)
    assert complete(db, j) == ("not_run", None)
    assert db.execute("select count(*) from regate.validation_results").fetchone() == (0,)
    db.execute("select regate.enable_gates()")
    k = job(db)
    log(db, k, 1, eval_loss=0.99)
    assert complete(db, k)[0] == "failed"
    history = db.execute("select enabled from regate.gate_switch_events order by id").fetchall()
    assert history == [(False,), (True,)]


def test_flipping_to_the_current_state_is_a_noop_with_a_notice(db: Conn) -> None:
    notices: list[str] = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    db.execute("select regate.enable_gates()")
    assert any("already enabled" in n for n in notices)
    assert db.execute("select count(*) from regate.gate_switch_events").fetchone() == (0,)
    with pytest.raises(psycopg.Error) as err:
        db.execute("select regate.disable_gates('')")
    assert err.value.sqlstate == "22023" and "reason" in str(err.value)


def test_an_admin_skips_the_gate_for_one_transaction_only(db: Conn, db_dsn: str) -> None:
    baseline(db, "eval_loss", baseline_value=0.43, min_relative_change=-0.05)
    j, k, m = job(db), job(db), job(db)
    for x in (j, k, m):
        log(db, x, 1, eval_loss=0.99)
    with db.transaction():
        skip = db.execute("select regate.skip_gates_in_transaction('INC-7: baselines being rebuilt')").fetchone()
        assert skip is not None and skip[0] > 0
        assert complete(db, j) == ("not_run", None)
        with psycopg.connect(db_dsn, autocommit=True) as other:  # another transaction is not skipped
            assert complete(other, k)[0] == "failed"
    assert complete(db, m)[0] == "failed"  # the next transaction of the same session is gated again
    assert db.execute(
        "select reason, skipped_by = session_user from regate_internal.gate_skips order by id"
    ).fetchall() == [("INC-7: baselines being rebuilt", True)]


def test_a_session_setting_no_longer_switches_the_gate_off(db: Conn) -> None:
    """SET regate.enabled would leak through a transaction pooler to the next client: it is refused loudly."""
    baseline(db, "eval_loss", baseline_value=0.43, min_relative_change=-0.05)
    j = job(db)
    log(db, j, 1, eval_loss=0.99)
    warnings: list[str] = []
    db.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
    db.execute("set regate.enabled = off")
    assert complete(db, j)[0] == "failed"
    assert any("regate.enabled is not honoured" in w for w in warnings)


@pytest.fixture
def tenant(db: Conn, db_dsn: str) -> Iterator[str]:
    """A login role granted regate_writer: the people the gate judges."""
    name = f"regate_tenant_{uuid.uuid4().hex[:8]}"
    db.execute(f"create role {name} login password 'tenant-pw'")
    db.execute("select regate.grant_usage(%s, 'writer')", (name,))
    yield psycopg.conninfo.make_conninfo(db_dsn, user=name, password="tenant-pw")
    db.execute(f"drop owned by {name}")
    db.execute(f"drop role {name}")


def test_a_non_admin_cannot_switch_the_gate_off(db: Conn, tenant: str) -> None:
    baseline(db, "eval_loss", baseline_value=0.43, min_relative_change=-0.05)
    with psycopg.connect(tenant, autocommit=True) as conn:
        j = job(conn)
        log(conn, j, 1, eval_loss=0.99)
        for sql in (
            "select regate.disable_gates('mine')",
            "select regate.enable_gates()",
            "select regate.skip_gates_in_transaction('mine')",
        ):
            with pytest.raises(psycopg.Error) as err:
                conn.execute(sql)
            assert err.value.sqlstate == "42501"
        # a forged skip marker is ignored: only a recorded skip of this very transaction counts
        with conn.transaction():
            conn.execute("select pg_current_xact_id()")
            conn.execute("select set_config('regate.skip_xact', pg_current_xact_id()::text, true)")
            assert complete(conn, j)[0] == "failed"
        with pytest.raises(psycopg.Error) as err:
            conn.execute("insert into regate.gate_switch_events (enabled) values (false)")
        assert err.value.sqlstate == "42501"
        # The verdict is the gate's: the tenant cannot overwrite it, nor forge one on insert.
        for sql, args in (
            ("update regate.local_training_jobs set validation_status = 'passed' where id = %s", (j,)),
            ("update regate.local_training_jobs set validation_result_id = null where id = %s", (j,)),
            ("insert into regate.local_training_jobs (model_name, validation_status) values (%s, 'passed')", (MODEL,)),
        ):
            with pytest.raises(psycopg.Error) as err:
                conn.execute(sql, args)
            assert err.value.sqlstate == "RG009" and "written by the regression gate only" in str(err.value)
        before = conn.execute(
            "select validation_status, validation_result_id from regate.local_training_jobs where id = %s", (j,)
        ).fetchone()
        assert before is not None and before[0] == "failed"
        # A tenant's re-validation is a recorded re-check; it never changes the job's gate columns.
        row = conn.execute("select id, source, status from regate.validate_training_results(%s)", (j,)).fetchone()
        assert row is not None and row[1:] == ("manual", "failed") and row[0] != before[1]
        assert (
            conn.execute(
                "select validation_status, validation_result_id from regate.local_training_jobs where id = %s", (j,)
            ).fetchone()
            == before
        )
    # An admin's re-validation updates them; an admin may repair the columns by hand.
    row = db.execute("select id from regate.validate_training_results(%s)", (j,)).fetchone()
    assert row is not None
    assert db.execute("select validation_result_id from regate.local_training_jobs where id = %s", (j,)).fetchone() == (
        row[0],
    )
    db.execute("update regate.local_training_jobs set validation_status = 'not_run' where id = %s", (j,))
    assert db.execute("select validation_status from regate.local_training_jobs where id = %s", (j,)).fetchone() == (
        "not_run",
    )
    with psycopg.connect(tenant, autocommit=True) as conn:
        # Per-job opt-out is the job's own config while no policy enforces, and it is recorded as not run.
        k = job(conn, config={"enableRegressionGates": False})
        assert complete(conn, k) == ("not_run", None)


# --- faults: fail open, fail closed ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fail_open", "expected"), [(True, "error"), (False, "blocked")])
def test_validation_fault_is_recorded_and_never_fails_the_update(db: Conn, fail_open: bool, expected: str) -> None:
    baseline(db, "eval_loss", baseline_value=0.43, min_relative_change=-0.05)
    j = job(db, config={"regressionGateConfig": {"failOpen": fail_open}})
    log(db, j, 1, eval_loss=0.40)
    # A real internal fault: a function validation calls is missing (this test database only).
    db.execute("alter function regate_internal._checks(text, text, text [], jsonb, jsonb, uuid) rename to _checks_gone")
    status, result_id = complete(db, j)
    assert status == expected and result_id is not None
    res = result(db, result_id)
    assert res["status"] == "error" and res["error_sqlstate"] == "42883"
    assert res["blocked"] is (not fail_open)
    assert res["metrics"] == {"eval_loss": 0.40}
    assert db.execute("select status from regate.local_training_jobs where id = %s", (j,)).fetchone() == ("completed",)


@pytest.mark.parametrize("fail_open", [True, False])
def test_contention_is_never_a_pass(db: Conn, db_dsn: str, fail_open: bool) -> None:
    """A lock held on what validation reads times out into an error verdict that blocks, whatever failOpen says:
    whoever holds the lock cannot turn a regression into a pass."""
    baseline(db, "eval_loss", baseline_value=0.43, min_relative_change=-0.05)
    j = job(db, config={"regressionGateConfig": {"failOpen": fail_open}})
    log(db, j, 1, eval_loss=0.99)
    with psycopg.connect(db_dsn) as locker:
        locker.execute("lock table regate.model_baselines in access exclusive mode")
        started = time.monotonic()
        status, result_id = complete(db, j)
        waited = time.monotonic() - started
        locker.rollback()
    assert status == "blocked" and result_id is not None
    assert waited < 10
    res = result(db, result_id)
    assert res["status"] == "error" and res["error_sqlstate"] == "55P03"
    assert "lock timeout" in res["error_message"]
    assert res["blocked"] is True


# --- explicit functions ---------------------------------------------------------------------------------------


def test_validate_training_results_revalidates_and_updates_a_completed_job(db: Conn) -> None:
    j = job(db)
    log(db, j, 1, eval_loss=0.45)
    assert complete(db, j)[0] == "passed"  # no baselines yet
    baseline(db, "eval_loss", baseline_value=0.30, min_relative_change=-0.05)
    row = db.execute("select id, status, source from regate.validate_training_results(%s)", (j,)).fetchone()
    assert row is not None and row[1:] == ("failed", "manual")
    assert db.execute(
        "select validation_status, validation_result_id from regate.local_training_jobs where id = %s", (j,)
    ).fetchone() == ("failed", row[0])
    # Against another model's baselines, by name.
    baseline(db, "eval_loss", model_name="other", baseline_value=0.50, min_relative_change=-0.05)
    other = db.execute(
        "select status, model_name from regate.validate_training_results(job_id => %s, model_name => 'other')", (j,)
    ).fetchone()
    assert other == ("passed", "other")


def test_validate_training_results_on_a_running_job_leaves_its_status_alone(db: Conn) -> None:
    baseline(db, "eval_loss", baseline_value=0.30, min_relative_change=-0.05)
    j = job(db)
    log(db, j, 1, eval_loss=0.45)
    row = db.execute("select status from regate.validate_training_results(%s)", (j,)).fetchone()
    assert row == ("failed",)
    assert db.execute("select validation_status from regate.local_training_jobs where id = %s", (j,)).fetchone() == (
        None,
    )
    with pytest.raises(psycopg.Error) as err:
        db.execute("select regate.validate_training_results(%s)", (uuid.uuid4(),))
    assert err.value.sqlstate == "RG008"


def test_run_gate_is_the_explicit_gate_node(db: Conn, baselines: dict[str, int]) -> None:
    good = db.execute(
        "select status, blocked, source, job_id from regate.run_gate(model_name => %s, current_metrics => %s)",
        (MODEL, Jsonb({"eval_loss": 0.40, "accuracy": 0.9, "perplexity": 12.0})),
    ).fetchone()
    assert good == ("passed", False, "gate", None)
    bad = db.execute(
        "select status, blocked from regate.run_gate(model_name => %s, current_metrics => %s)",
        (MODEL, Jsonb({"eval_loss": 0.60, "accuracy": 0.9, "perplexity": 12.0})),
    ).fetchone()
    assert bad == ("failed", True)  # block_on_failure defaults to true
    warn_only = db.execute(
        "select status, blocked from regate.run_gate(%s, %s, block_on_failure => false)",
        (MODEL, Jsonb({"eval_loss": 0.60, "accuracy": 0.9, "perplexity": 12.0})),
    ).fetchone()
    assert warn_only == ("failed", False)
    required = db.execute(
        "select status, checks from regate.run_gate(model_name => 'no-baselines', current_metrics => %s,"
        " required_metrics => array['f1', 'bleu'])",
        (Jsonb({"bleu": 31.2}),),
    ).fetchone()
    assert required is not None and required[0] == "failed"
    assert [(c["metric_name"], c["outcome"], c["severity"]) for c in required[1]] == [("f1", "missing", "critical")]
    j = job(db)
    linked = db.execute(
        "select job_id from regate.run_gate(model_name => %s, current_metrics => '{}', job_id => %s)", (MODEL, j)
    ).fetchone()
    assert linked == (j,)
    for metrics, code in ((Jsonb([1, 2]), "RG001"), (Jsonb({"acc": "high"}), "RG001"), (None, "RG001")):
        with pytest.raises(psycopg.Error) as err:
            db.execute("select regate.run_gate('m', %s::jsonb)", (metrics,))
        assert err.value.sqlstate == code
    with pytest.raises(psycopg.Error) as err:
        db.execute("select regate.run_gate('m', '{}', job_id => %s)", (uuid.uuid4(),))
    assert err.value.sqlstate == "RG008"


def test_should_block_deployment_exposes_the_rule(db: Conn, baselines: dict[str, int]) -> None:
    j = job(db)
    log(db, j, 1, eval_loss=0.60, perplexity=12.0, metrics={"accuracy": 0.9})
    _, result_id = complete(db, j)

    def blocks(config: dict[str, Any]) -> bool:
        row = db.execute(
            "select regate.should_block_deployment(r, %s) from regate.validation_results r where r.id = %s",
            (Jsonb(config), result_id),
        ).fetchone()
        assert row is not None
        return bool(row[0])

    assert blocks({}) is False
    assert blocks({"blockOnCriticalFailures": True}) is True


def test_views_show_history_and_checks(db: Conn, baselines: dict[str, int]) -> None:
    first = job(db)
    log(db, first, 1, eval_loss=0.40, perplexity=12.0, metrics={"accuracy": 0.9})
    complete(db, first)
    second = job(db)
    log(db, second, 7, eval_loss=0.60, perplexity=12.0, metrics={"accuracy": 0.9})
    complete(db, second)
    history = db.execute(
        "select job_id, status, owner_id = current_user, job_status from regate.validation_history"
    ).fetchall()
    assert history == [(second, "failed", True, "completed"), (first, "passed", True, "completed")]
    rows = db.execute(
        "select metric_name, outcome, failed_criteria, step, observed from regate.validation_checks"
        " where job_id = %s order by check_index",
        (second,),
    ).fetchall()
    assert rows == [
        ("accuracy", "passed", [], 7, 0.9),
        ("eval_loss", "failed", ["min_relative_change"], 7, 0.6),
        ("perplexity", "passed", [], 7, 12.0),
    ]
