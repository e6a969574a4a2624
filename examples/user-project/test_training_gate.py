"""The gate in front of our training pipeline: good runs pass, regressed or diverged runs are blocked and cannot
be deployed. Each test gets its own freshly migrated regate database (the regate-db pytest plugin), with the
baselines of conftest.py."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import psycopg
import pytest
from pipeline import RegressionBlocked, TrainingConfig, train_and_gate

from regate_db import AsyncClient, Client
from regate_db.errors import DeploymentRefusedError
from regate_db.pytest_plugin import BaselineFactory, JobFactory
from regate_db.release import deploy


def test_a_good_run_passes_and_deploys(regate_client: Client, regate_conn: psycopg.Connection[Any]) -> None:
    verdict = train_and_gate(regate_client, TrainingConfig("sentiment-bert", learning_rate=3e-5))

    assert verdict.status == "passed", verdict.message
    assert verdict.job_id is not None
    assert deploy(regate_conn, verdict.job_id, "production")["environment"] == "production"


def test_my_pipelines_regressed_run_is_blocked(regate_client: Client, regate_conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(RegressionBlocked, match=r"eval_loss 0\.48 is worse than baseline 0\.42 by 14\.3%"):
        train_and_gate(regate_client, TrainingConfig("sentiment-bert", learning_rate=3e-4))

    row = regate_conn.execute(
        "select id, validation_status from regate.local_training_jobs where model_name = 'sentiment-bert'"
    ).fetchone()
    assert row is not None
    job_id, status = row
    assert status == "blocked"
    with pytest.raises(DeploymentRefusedError):  # the database refuses it, whoever asks
        deploy(regate_conn, job_id, "production")


def test_a_diverged_run_is_blocked_not_an_error(regate_client: Client) -> None:
    with pytest.raises(RegressionBlocked, match="eval_loss"):
        train_and_gate(regate_client, TrainingConfig("sentiment-bert", learning_rate=1e-2))


def test_one_line_jobs(regate_job: JobFactory) -> None:
    good = regate_job("sentiment-bert", {"eval_loss": [0.9, 0.5, 0.41], "accuracy": 0.915})
    assert good.validation_status == "passed"

    # warn-only (the default job config): the regression is recorded, nothing is blocked
    warned = regate_job("sentiment-bert", {"eval_loss": [0.9, 0.6, 0.48], "accuracy": 0.915})
    assert (warned.validation_status, warned.blocked) == ("failed", False)

    blocked = regate_job("sentiment-bert", {"eval_loss": [(100, 0.9), (200, 0.48)], "accuracy": 0.915}, block=True)
    assert blocked.blocked
    assert [c.metric_name for c in blocked.failing] == ["eval_loss"]
    assert "tolerance 5%" in blocked.message


def test_a_job_completed_step_by_step(regate_job: JobFactory) -> None:
    job = regate_job("sentiment-bert", {"eval_loss": [1.1, 0.7]}, complete=False)
    assert job.validation_status is None  # still running
    job.log(3, eval_loss=0.41, accuracy=0.92)

    assert job.complete().status == "passed"


def test_a_baseline_of_our_own(regate_baseline: BaselineFactory, regate_job: JobFactory) -> None:
    baseline = regate_baseline("sentiment-bert", "perplexity", 1.52, min_relative_change=-0.05, severity="warning")
    assert baseline.is_active and not baseline.greater_is_better

    job = regate_job("sentiment-bert", {"eval_loss": 0.41, "accuracy": 0.92, "perplexity": math.inf}, block=True)
    assert (job.validation_status, job.blocked) == ("warning", False)  # a warning-severity check never blocks


def test_the_async_client(regate_dsn: str) -> None:
    async def train() -> str:
        async with await AsyncClient.connect(regate_dsn) as client:
            job = await client.create_job("sentiment-bert")
            await client.log_metrics(job, 1, eval_loss=0.40, accuracy=0.93)
            return (await client.complete_job(job)).status

    assert asyncio.run(train()) == "passed"
