"""regate_db.Client and AsyncClient (issue 11): a training job's life from Python, over a DSN, a connection and a
pool, against a real server: metrics buffered and sent with COPY (NaN, infinities and huge ints exact), the
verdict from the completing UPDATE, the database's errors as RG exceptions."""

from __future__ import annotations

import asyncio
import math
import struct
import uuid
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from regate_db import AsyncClient, Client, Verdict
from regate_db.errors import InvalidGateConfigError, InvalidMetricError, JobCompletedError, JobNotFoundError
from tests.security.conftest import Logins

Conn = psycopg.Connection[Any]
MODEL = "client-model"


@pytest.fixture
def baselines(db: Conn) -> Conn:
    """eval_loss at most 5% worse than 0.4 and accuracy at least 0.9, both critical."""
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'eval_loss', baseline_value => 0.4,"
        " greater_is_better => false, min_relative_change => -0.05)",
        (MODEL,),
    )
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'accuracy', baseline_value => 0.9,"
        " greater_is_better => true, threshold => 0.9)",
        (MODEL,),
    )
    return db


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def test_a_job_from_create_to_verdict_over_a_dsn(baselines: Conn, db_dsn: str) -> None:
    with Client(db_dsn, buffer_size=2) as client:
        job = client.create_job(MODEL, version="1.0")
        client.log_metrics(job, 1, train_loss=0.9, eval_loss=0.5, accuracy=0.7)
        # a full buffer (2 rows) is sent at once: both rows are in the database before any flush()
        client.log_metrics(job, 2, train_loss=0.1 + 0.2, eval_loss=0.39, accuracy=0.93)
        assert baselines.execute(
            "select count(*) from regate.local_training_metrics where job_id = %s", (job,)
        ).fetchone() == (2,)
        verdict = client.complete_job(job)

    assert isinstance(verdict, Verdict)
    assert (verdict.status, verdict.blocked, verdict.job_id) == ("passed", False, job)
    assert sorted(c.metric_name for c in verdict.checks) == ["accuracy", "eval_loss"]
    assert all(c.outcome == "passed" for c in verdict.checks)
    assert verdict.id is not None and verdict.record is not None and verdict.record.source == "auto"
    assert verdict.message.startswith(f"job {job}: passed (verdict #{verdict.id}: 2/2 checks passed")
    # the final value the gate judged is the exact double that was logged (0.1 + 0.2, not 0.3)
    observed = {c.metric_name: c.observed for c in verdict.checks}
    assert _bits(observed["eval_loss"]) == _bits(0.39)
    row = baselines.execute(
        "select status, validation_status, (regate.extract_final_metrics(id)) ->> 'train_loss'"
        " from regate.local_training_jobs where id = %s",
        (job,),
    ).fetchone()
    assert row is not None and row[:2] == ("completed", "passed")
    assert _bits(float(row[2])) == _bits(0.1 + 0.2)


def test_a_blocking_verdict_says_why(baselines: Conn, db_dsn: str) -> None:
    with Client(db_dsn) as client:
        job = client.create_job(MODEL, config={"blockOnCriticalFailures": True})
        client.log_metrics(job, 10, eval_loss=0.48, accuracy=0.95)
        verdict = client.complete_job(job)
        assert (verdict.status, verdict.blocked) == ("blocked", True)
        assert [c.metric_name for c in verdict.failing] == ["eval_loss"]
        assert "eval_loss 0.48 is worse than baseline 0.4" in verdict.message
        assert "deployment blocked" in verdict.message
        # read again later: the same verdict
        again = client.verdict(job)
        assert (again.id, again.status, again.blocked) == (verdict.id, "blocked", True)


def test_non_finite_values_and_huge_integers_are_sent_exactly(db: Conn, db_dsn: str) -> None:
    with Client(db_dsn) as client:
        job = client.create_job(MODEL)
        client.log_metrics(job, 1, train_loss=math.nan, grad_norm=math.inf, score=-math.inf, other=math.nan)
        client.log_metrics_dict(job, 2, {"eval/accuracy": 0.5, "total_flos": 20_000_000_000_000_000_000})
        assert client.flush() == 2
    rows = db.execute(
        "select step, train_loss, grad_norm, metrics from regate.local_training_metrics where job_id = %s"
        " order by step",
        (job,),
    ).fetchall()
    assert math.isnan(rows[0][1]) and rows[0][2] == math.inf
    assert rows[0][3] == {"score": "-Infinity", "other": "NaN"}
    assert rows[1][3] == {"eval/accuracy": 0.5, "total_flos": 20_000_000_000_000_000_000}
    assert db.execute(
        "select metrics ->> 'total_flos' from regate.local_training_metrics where job_id = %s and step = 2", (job,)
    ).fetchone() == ("20000000000000000000",)


def test_a_value_that_is_not_a_number_is_refused_before_anything_is_sent(db: Conn, db_dsn: str) -> None:
    with Client(db_dsn) as client:
        job = client.create_job(MODEL)
        client.log_metrics(job, 1, accuracy=0.5)
        with pytest.raises(InvalidMetricError, match=r"metric accuracy at step 2 must be a number.*str '0\.6'"):
            client.log_metrics(job, 2, accuracy="0.6")
        with pytest.raises(InvalidMetricError, match="step must be a non-negative integer"):
            client.log_metrics(job, -1, accuracy=0.5)
        with pytest.raises(InvalidMetricError, match=r"metric flag at step 3 must be a number.*bool"):
            client.log_metrics(job, 3, flag=True)
        assert client.flush() == 1  # the good row only
    # the database's own rules still apply (and its RG001 message names the key): a reserved key
    with Client(db_dsn) as client, pytest.raises(InvalidMetricError, match="step"):
        client.log_metrics_dict(job, 4, {"step": 1.0})
        client.flush()


def test_the_database_errors_arrive_as_rg_exceptions(baselines: Conn, db_dsn: str) -> None:
    with Client(db_dsn) as client:
        with pytest.raises(InvalidGateConfigError, match="blockOnCriticalFailures"):
            client.create_job(MODEL, config={"blockOnCriticalFailures": "yes"})
        job = client.create_job(MODEL)
        client.log_metrics(job, 1, eval_loss=0.4, accuracy=0.95)
        client.complete_job(job)
        client.log_metrics(job, 2, eval_loss=0.1)
        with pytest.raises(JobCompletedError):
            client.flush()
        assert client.flush() == 0  # the refused batch is not retried forever
        with pytest.raises(JobNotFoundError, match="no training job with id"):
            client.complete_job(uuid.uuid4())


def test_a_model_without_baselines_does_not_read_as_a_pass(db: Conn, db_dsn: str) -> None:
    with Client(db_dsn) as client:
        job = client.create_job("sentimnet-bert")  # a typo: no baselines
        client.log_metrics(job, 1, eval_loss=0.3)
        verdict = client.complete_job(job)
    assert (verdict.status, verdict.blocked, verdict.checks) == ("no_baselines", False, [])
    assert verdict.record is not None and verdict.record.status == "no_baselines"
    assert "model sentimnet-bert has no active baselines, nothing was checked" in verdict.message
    # the job's own column, for every other client, says passed: the verdict record says why
    assert db.execute("select validation_status from regate.local_training_jobs where id = %s", (job,)).fetchone() == (
        "passed",
    )


def test_gates_off_for_a_job_and_a_failed_run(baselines: Conn, db_dsn: str) -> None:
    with Client(db_dsn) as client:
        job = client.create_job(MODEL, config={"enableRegressionGates": False})
        client.log_metrics(job, 1, eval_loss=9.0)
        verdict = client.complete_job(job)
        assert (verdict.status, verdict.blocked, verdict.record, verdict.checks) == ("not_run", False, None, [])
        assert "not validated" in verdict.message
        crashed = client.create_job(MODEL)
        client.log_metrics(crashed, 1, eval_loss=0.2)
        client.fail_job(crashed)
    row = baselines.execute(
        "select status, validation_status, (select count(*) from regate.local_training_metrics where job_id = j.id)"
        " from regate.local_training_jobs as j where id = %s",
        (crashed,),
    ).fetchone()
    assert row == ("failed", None, 1)


def test_a_run_group_waits_for_its_last_run(baselines: Conn, db_dsn: str) -> None:
    with Client(db_dsn) as client:
        runs = [client.create_job(MODEL, run_group="seeds-1", run_group_size=2) for _ in range(2)]
        for i, job in enumerate(runs):
            client.log_metrics(job, 5, eval_loss=0.39 + i / 1000, accuracy=0.95)
        first = client.complete_job(runs[0])
        assert (first.status, first.record) == ("waiting", None)
        assert "waiting for the other runs" in first.message
        last = client.complete_job(runs[1])
        assert last.status == "passed" and last.record is not None and last.record.source == "group"


def test_on_a_given_connection_the_calls_join_the_callers_transaction(baselines: Conn, db_dsn: str) -> None:
    baselines.autocommit = False
    client = Client(baselines)
    other = psycopg.connect(db_dsn, autocommit=True)
    count = "select count(*) from regate.local_training_jobs"
    try:
        with baselines.transaction(force_rollback=True):
            job = client.create_job(MODEL)
            client.log_metrics(job, 1, eval_loss=0.3, accuracy=0.99)
            assert client.complete_job(job).status == "passed"
            assert other.execute(count).fetchone() == (0,)  # not committed: the caller's transaction decides
        assert other.execute(count).fetchone() == (0,)  # ... and it rolled back
        # on an idle connection each call commits on its own
        job = client.create_job(MODEL)
        assert other.execute(count + " where id = %s", (job,)).fetchone() == (1,)
        client.close()  # closing a client never closes a connection it was given
        assert not baselines.closed
    finally:
        other.close()


def test_over_a_pool_the_explicit_gate_baselines_and_revalidation(db: Conn, db_dsn: str) -> None:
    with ConnectionPool(db_dsn, min_size=1, max_size=2, open=True) as pool:
        client = Client(pool)
        baseline = client.create_baseline(MODEL, "f1", 0.8, greater_is_better=True, min_absolute_change=-0.01)
        assert (baseline.metric_name, baseline.is_active) == ("f1", True)
        gate = client.run_gate(MODEL, {"f1": 0.7, "loss": math.nan})
        assert (gate.status, gate.blocked, gate.job_id) == ("blocked", True, None)
        assert gate.message.startswith("gate: blocked")
        job = client.create_job(MODEL)
        client.log_metrics(job, 3, f1=0.85)
        assert client.complete_job(job).status == "passed"
        again = client.validate(job)
        assert again.record is not None and again.record.source == "manual" and again.status == "passed"


def test_a_writer_login_logs_and_completes_its_own_job(baselines: Conn, db_dsn: str) -> None:
    """Not a superuser: row-level security applies (and COPY FROM would be refused on these tables)."""
    logins = Logins(baselines, db_dsn)
    try:
        name = logins.role("writer")
        with Client(psycopg.conninfo.make_conninfo(db_dsn, user=name, password=f"pw-{name}")) as client:
            job = client.create_job(MODEL)
            for step in range(1, 6):
                client.log_metrics(job, step, eval_loss=0.45 - step / 100, accuracy=0.9 + step / 100, n=step)
            verdict = client.complete_job(job)
        assert (verdict.status, len(verdict.checks)) == ("passed", 2)
        assert baselines.execute(
            "select owner_id, (select count(*) from regate.local_training_metrics where job_id = j.id)"
            " from regate.local_training_jobs as j where id = %s",
            (job,),
        ).fetchone() == (name, 5)
    finally:
        logins.close()


def test_a_dsn_client_is_safe_behind_a_transaction_pooler(db_dsn: str) -> None:
    client = Client(db_dsn)
    try:
        conn = client._conn
        assert conn is not None and conn.autocommit and conn.prepare_threshold is None
    finally:
        client.close()


def test_the_async_client(baselines: Conn, db_dsn: str) -> None:
    async def main() -> tuple[Verdict, Verdict, Verdict]:
        async with await AsyncClient.connect(db_dsn, buffer_size=10) as client:
            job = await client.create_job(MODEL, config={"blockOnCriticalFailures": True})
            for step in range(1, 26):
                await client.log_metrics(job, step, eval_loss=0.6 - step / 100, accuracy=0.8 + step / 200)
            done = await client.complete_job(job)
            read = await client.verdict(job)
        async with AsyncConnectionPool(db_dsn, min_size=1, max_size=2) as pool:
            pooled = AsyncClient(pool)
            job2 = await pooled.create_job(MODEL)
            await pooled.log_metrics(job2, 1, eval_loss=0.6, accuracy=0.5)
            failed = await pooled.complete_job(job2)
        return done, read, failed

    done, read, failed = asyncio.run(main())
    assert (done.status, done.blocked, read.id) == ("passed", False, done.id)
    assert {c.metric_name: c.observed for c in done.checks} == {"eval_loss": 0.6 - 25 / 100, "accuracy": 0.8 + 0.125}
    assert (failed.status, failed.blocked) == ("failed", False)
    assert baselines.execute(
        "select count(*) from regate.local_training_metrics m join regate.local_training_jobs j on j.id = m.job_id"
        " where j.model_name = %s",
        (MODEL,),
    ).fetchone() == (26,)
