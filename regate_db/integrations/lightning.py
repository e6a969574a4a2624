"""A PyTorch Lightning logger that turns a ``Trainer.fit`` into a gated regate job.

    from regate_db.integrations.lightning import RegateLogger

    logger = RegateLogger("postgresql://trainer@db/ml", "sentiment-bert", rename={"val_loss": "eval_loss"},
                          config={"blockOnCriticalFailures": True})
    trainer = lightning.Trainer(max_epochs=3, logger=logger)
    trainer.fit(model, train_loader, val_loader)      # finalize("success") completes the job
    print(logger.verdict.message)

Lightning calls ``log_metrics(metrics, step)`` with what the module ``self.log``-ged (plus ``epoch``); each call
becomes one row at ``step``, buffered and sent in batches (one INSERT each) (when the buffer is full, at least every
``flush_every`` seconds, after a checkpoint). Names: ``rename`` first, then the metric columns (``epoch``,
``train_loss``, ``eval_loss``, ...) to their columns and every other name into ``metrics``. ``finalize("success")``
completes the job (the verdict is :attr:`RegateLogger.verdict`), ``finalize("failed")`` (an exception, Ctrl-C)
marks it ``failed``, any other status (``"finished"``: a SLURM requeue) only sends the buffer. Only global rank 0
talks to the database. ``log_hyperparams`` records nothing: put what the gate needs into ``config``.

Lightning finalizes its loggers after every stage (fit, validate, test). To gate on ``trainer.test`` metrics too,
pass ``complete_on_finalize=False`` and call :meth:`RegateLogger.complete` after the last stage.

regate-db does not depend on Lightning: the class subclasses ``lightning.pytorch.loggers.Logger`` (or
``pytorch_lightning.loggers.Logger``) when one can be imported, and is otherwise a plain class with the same
methods.
"""

from __future__ import annotations

import importlib
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from regate_db.client import Verdict
from regate_db.importers import map_metrics
from regate_db.integrations import GateBlockedError, TrainingRun, lightning_rank

__all__ = ["GateBlockedError", "LoggerMethods", "RegateLogger"]


class LoggerMethods:
    """What Lightning's ``Logger`` offers besides the four abstract members, with the same defaults: the base
    class when Lightning cannot be imported."""

    @property
    def root_dir(self) -> str | None:
        return None

    @property
    def log_dir(self) -> str | None:
        return None

    @property
    def save_dir(self) -> str | None:
        return None

    @property
    def group_separator(self) -> str:
        return "/"

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        return None

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        return None

    def save(self) -> None:
        return None

    def finalize(self, status: str) -> None:
        self.save()


def _base() -> type:
    for module in ("lightning.pytorch.loggers", "pytorch_lightning.loggers"):
        try:
            base: type = importlib.import_module(module).Logger
        except Exception:  # not installed, or unusable here: try the next, then the plain class
            continue
        return base
    return LoggerMethods


if TYPE_CHECKING:
    _Base = LoggerMethods
else:
    _Base = _base()


class RegateLogger(_Base):
    """Creates the job when Lightning first asks for the logger's ``version`` or logs, logs every
    ``log_metrics`` call (batched), completes the job on ``finalize("success")``.

    ``source``: a DSN, a psycopg connection or pool, or a :class:`regate_db.Client`. ``model_name``,
    ``model_version`` and ``config`` (the job's gate config) describe the job to create; or pass ``job_id``.
    ``rename`` maps Lightning's names to regate's (``{"val_loss": "eval_loss"}``). ``raise_on_block``: completing
    raises :class:`GateBlockedError` when the verdict blocks. ``strict``: a value that is not a number raises
    instead of being left out (and counted in :attr:`skipped`).
    """

    def __init__(
        self,
        source: Any,
        model_name: str | None = None,
        *,
        model_version: str | None = None,
        config: Mapping[str, Any] | None = None,
        job_id: uuid.UUID | str | None = None,
        rename: Mapping[str, str] | None = None,
        complete_on_finalize: bool = True,
        raise_on_block: bool = False,
        strict: bool = False,
        buffer_size: int = 500,
        flush_every: float = 30.0,
    ) -> None:
        super().__init__()
        self.run = TrainingRun(
            source,
            model_name,
            version=model_version,
            config=config,
            job_id=job_id,
            raise_on_block=raise_on_block,
            buffer_size=buffer_size,
            flush_every=flush_every,
        )
        self.rename = dict(rename or {})
        self.complete_on_finalize = complete_on_finalize
        self.strict = strict
        self._last_step = 0

    # --- what Lightning asks of every logger ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.run.model_name or "regate"

    @property
    def version(self) -> str:
        """The job id (checkpoints go to ``<default_root_dir>/<model>/<job id>/checkpoints``); on rank 0 the job is
        created on first access."""
        if lightning_rank() != 0:
            return str(self.run.job_id or "")
        return str(self.run.start() if not self.run.finished else self.run.job_id)

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        return None

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if lightning_rank() != 0:
            return
        if self.run.finished:
            raise RuntimeError(
                f"job {self.run.job_id} was completed when a stage ended (finalize): to log later stages too,"
                " create RegateLogger(..., complete_on_finalize=False) and call logger.complete() after the last"
            )
        step = self._last_step if step is None else int(step)
        self._last_step = step
        items = ((self.rename.get(k, k), v) for k, v in metrics.items())
        self.run.log(
            step, map_metrics(items, f"log_metrics at step {step}", skipped=self.run.skipped, strict=self.strict)
        )

    def save(self) -> None:
        # Lightning calls save() after every log_metrics: sending each row alone would defeat batching.
        if lightning_rank() == 0:
            self.run.flush_if_due()

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if lightning_rank() == 0:
            self.run.flush()

    def finalize(self, status: str) -> None:
        if lightning_rank() != 0 or self.run.finished:
            return
        if status == "success" and self.complete_on_finalize:
            self.run.complete()
        elif status == "failed":
            self.run.fail()
        else:
            self.run.flush()

    # --- regate ---------------------------------------------------------------------------------------------

    def complete(self) -> Verdict | None:
        """Complete the job now (with ``complete_on_finalize=False``, after the last stage); the verdict (None on
        the processes other than global rank 0)."""
        if lightning_rank() != 0:
            return None
        return self.run.complete()

    @property
    def job_id(self) -> uuid.UUID | str | None:
        return self.run.job_id

    @property
    def verdict(self) -> Verdict | None:
        """The gate's verdict, once the job is completed."""
        return self.run.verdict

    @property
    def skipped(self) -> Counter[str]:
        return self.run.skipped
