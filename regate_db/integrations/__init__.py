"""Training-framework integrations, built on :class:`regate_db.Client`.

* :class:`regate_db.integrations.huggingface.RegateCallback`: a ``transformers.TrainerCallback``.
* :class:`regate_db.integrations.lightning.RegateLogger`: a PyTorch Lightning ``Logger``.
* :func:`regate_db.integrations.mlflow.import_run`: an MLflow run's metric history into a job.

None of them makes regate-db depend on its framework: each subclasses the framework's base class when the
framework can be imported, and is a plain class with the same methods when it cannot. They share
:class:`TrainingRun`: the job is created on the main process only, metrics are buffered and sent in batches (one
INSERT each), and the run's end completes the job and keeps the gate's verdict.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

from regate_db.client import Client, Verdict
from regate_db.errors import RegateError

__all__ = ["GateBlockedError", "TrainingRun", "lightning_rank"]


class GateBlockedError(RegateError):
    """The gate's verdict on the run blocks deployment (raised at the end of training with ``raise_on_block``).
    :attr:`verdict` has every check."""

    exit_code = 1

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict


class TrainingRun:
    """One training run as a regate job, for callbacks and loggers.

    ``source`` is what :class:`~regate_db.Client` takes (a DSN, a psycopg connection, a connection pool) or a
    ``Client`` itself (then it is used as it is and never closed). The client is made on first use, so a callback
    built on every process of a distributed run only connects on the process that logs. Metrics are buffered
    (``buffer_size`` rows) and also sent at least every ``flush_every`` seconds, so that a crash loses little.
    """

    def __init__(
        self,
        source: Any,
        model_name: str | None,
        *,
        version: str | None = None,
        config: Mapping[str, Any] | None = None,
        job_id: uuid.UUID | str | None = None,
        raise_on_block: bool = False,
        buffer_size: int = 500,
        flush_every: float = 30.0,
    ) -> None:
        if model_name is None and job_id is None:
            raise ValueError("give model_name (a job is created for the run) or job_id (an existing job)")
        self._source = source
        self._client: Client | None = source if isinstance(source, Client) else None
        self._owns_client = self._client is None
        self.model_name = model_name
        self.version = version
        self.config = dict(config or {})
        self.job_id: uuid.UUID | str | None = job_id
        self._given_job = job_id is not None
        self.raise_on_block = raise_on_block
        self.buffer_size = buffer_size
        self.flush_every = flush_every
        #: the gate's verdict, once the run is completed
        self.verdict: Verdict | None = None
        #: source name -> how many values were left out because they are not numbers
        self.skipped: Counter[str] = Counter()
        #: True once the job is completed or failed
        self.finished = False
        self._last_flush = time.monotonic()

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self._source, buffer_size=self.buffer_size)
        return self._client

    def start(self) -> uuid.UUID | str:
        """The run's job: created (``running``) on first call unless a job id was given."""
        if self.finished:
            if self._given_job or self.model_name is None:
                raise RuntimeError(f"job {self.job_id} is already {'completed' if self.verdict else 'failed'}")
            self.job_id, self.verdict, self.finished = None, None, False  # a new training: a new job
        if self.job_id is None:
            assert self.model_name is not None
            self.job_id = self.client.create_job(self.model_name, self.version, self.config)
        return self.job_id

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Buffer one row (sent when the buffer is full, or when ``flush_every`` seconds have passed)."""
        if self.finished:
            raise RuntimeError(
                f"job {self.job_id} is already {'completed' if self.verdict else 'failed'}: its metrics are final"
            )
        if not metrics:
            return
        self.client.log_metrics_dict(self.start(), step, metrics)
        self.flush_if_due()

    def flush_if_due(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Send the buffered rows now."""
        if self._client is not None:
            self._client.flush()
        self._last_flush = time.monotonic()

    def complete(self) -> Verdict:
        """Send the buffered rows, complete the job and keep the verdict (:attr:`verdict`); with
        ``raise_on_block``, raise :class:`GateBlockedError` when it blocks."""
        job = self.start()
        try:
            verdict = self.client.complete_job(job)
        finally:
            self._close()
        self.verdict, self.finished = verdict, True
        if self.raise_on_block and verdict.blocked:
            raise GateBlockedError(verdict)
        return verdict

    def fail(self) -> None:
        """Mark the run's job ``failed`` (a crashed run: no verdict); nothing to do before the job exists."""
        if self.job_id is None or self.finished:
            return
        try:
            self.client.fail_job(self.job_id)
        finally:
            self._close()
        self.finished = True

    def _close(self) -> None:
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            client.close()


def lightning_rank() -> int:
    """The global rank of this process as Lightning sees it (``rank_zero_only.rank``, which its strategies set),
    else from the environment (``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID``, ``JSM_NAMESPACE_RANK``); 0 alone."""
    module = sys.modules.get("lightning_utilities.core.rank_zero")
    rank = getattr(getattr(module, "rank_zero_only", None), "rank", None)
    if isinstance(rank, int):
        return rank
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(key, "").strip()
        if value.isdigit():
            return int(value)
    return 0
