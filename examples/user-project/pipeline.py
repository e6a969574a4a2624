"""A user's training pipeline, in miniature: it trains (here: simulates a loss curve), logs every step to regate-db
and refuses to ship a model whose run the database's gate blocked."""

from __future__ import annotations

import math
from dataclasses import dataclass

from regate_db import Client, Verdict


class RegressionBlocked(Exception):
    """The gate blocked the run: the model must not ship."""


@dataclass(frozen=True)
class TrainingConfig:
    model_name: str
    learning_rate: float
    steps: int = 50


def simulate(config: TrainingConfig) -> list[dict[str, float]]:
    """The metrics of each step. A learning rate of 3e-5 converges to an eval_loss of 0.405 and an accuracy of
    0.915; a rate ten times higher overshoots and plateaus at 0.48 / 0.874; 1e-2 diverges (NaN loss)."""
    final_loss, final_acc = (0.405, 0.915) if config.learning_rate <= 5e-5 else (0.48, 0.874)
    history = []
    for step in range(1, config.steps + 1):
        progress = (1 - math.exp(-6 * step / config.steps)) / (1 - math.exp(-6))  # 1 at the last step
        eval_loss = 1.2 - (1.2 - final_loss) * progress
        if config.learning_rate >= 1e-2 and step > config.steps // 2:
            eval_loss = math.nan
        history.append({"eval_loss": eval_loss, "accuracy": 0.5 + (final_acc - 0.5) * progress})
    return history


def train_and_gate(client: Client, config: TrainingConfig) -> Verdict:
    """Train, log each step, complete the job in blocking mode; RegressionBlocked when the gate blocks it."""
    job = client.create_job(
        config.model_name,
        config={"blockOnCriticalFailures": True, "learning_rate": config.learning_rate},
    )
    for step, metrics in enumerate(simulate(config), start=1):
        client.log_metrics(job, step, **metrics)
    verdict = client.complete_job(job)
    if verdict.blocked:
        raise RegressionBlocked(verdict.message)
    return verdict
