"""A Hugging Face ``transformers`` Trainer callback that turns a training run into a gated regate job.

    from regate_db.integrations.huggingface import RegateCallback

    callback = RegateCallback("postgresql://trainer@db/ml", "sentiment-bert",
                              config={"blockOnCriticalFailures": True}, raise_on_block=True)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation, callbacks=[callback])
    trainer.train()          # raises GateBlockedError when the verdict blocks
    print(callback.verdict.message)

On ``on_train_begin`` the callback creates the job, on every ``on_log`` it buffers the logs as one row at
``state.global_step`` (sent in batches, one INSERT each, on ``on_save`` and at least every ``flush_every``
seconds), and on ``on_train_end`` it completes the job: the gate's verdict is :attr:`RegateCallback.verdict`.
Names are mapped as the trainer-state importer maps them (:func:`regate_db.importers.hf_metrics`): ``loss`` ->
``train_loss``, the end-of-training summary's average ``train_loss`` -> ``train_loss_mean``, and so on. Only the main
process
(``state.is_world_process_zero``) talks to the database. The Trainer calls no callback when training raises: call
:meth:`RegateCallback.fail` in your ``except`` to mark the job ``failed``.

regate-db does not depend on ``transformers``: the class subclasses ``transformers.TrainerCallback`` when that can
be imported, and is otherwise a plain class with the same event methods.
"""

from __future__ import annotations

import importlib
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from regate_db.client import Verdict
from regate_db.importers import hf_metrics
from regate_db.integrations import GateBlockedError, TrainingRun

__all__ = ["GateBlockedError", "RegateCallback"]


class TrainerCallbackEvents:
    """The events of ``transformers.TrainerCallback`` (5.x), each a no-op: the base class when ``transformers``
    cannot be imported. Every event gets ``args`` (TrainingArguments), ``state`` (TrainerState) and ``control``
    (TrainerControl) positionally, the rest as keywords; a return value other than None replaces ``control``."""

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Any, **kwargs: Any) -> Any:
        return None

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None

    def on_push_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        return None


def _base() -> type:
    try:
        base: type = importlib.import_module("transformers").TrainerCallback
    except Exception:  # not installed, or unusable here (e.g. no torch): the plain class does the same job
        return TrainerCallbackEvents
    return base


if TYPE_CHECKING:
    _Base = TrainerCallbackEvents
else:
    _Base = _base()


def _main_process(state: Any) -> bool:
    return bool(getattr(state, "is_world_process_zero", True))


class RegateCallback(_Base):
    """Creates the job on train begin, logs every ``on_log`` event (batched), completes it on train end.

    ``source``: a DSN, a psycopg connection or pool, or a :class:`regate_db.Client`. ``model_name``, ``version``
    and ``config`` (the job's gate config, e.g. ``{"blockOnCriticalFailures": True}``) describe the job to create;
    or pass ``job_id`` to log into a job you created. ``raise_on_block``: ``on_train_end`` (and so
    ``trainer.train()``) raises :class:`GateBlockedError` when the verdict blocks. ``strict``: a logged value that
    is not a number raises instead of being left out (and counted in :attr:`skipped`).
    """

    def __init__(
        self,
        source: Any,
        model_name: str | None = None,
        *,
        version: str | None = None,
        config: Mapping[str, Any] | None = None,
        job_id: uuid.UUID | str | None = None,
        raise_on_block: bool = False,
        strict: bool = False,
        buffer_size: int = 500,
        flush_every: float = 30.0,
    ) -> None:
        super().__init__()
        self.run = TrainingRun(
            source,
            model_name,
            version=version,
            config=config,
            job_id=job_id,
            raise_on_block=raise_on_block,
            buffer_size=buffer_size,
            flush_every=flush_every,
        )
        self.strict = strict

    @property
    def job_id(self) -> uuid.UUID | str | None:
        """The run's job (None before training begins, and on processes other than the main one)."""
        return self.run.job_id

    @property
    def verdict(self) -> Verdict | None:
        """The gate's verdict, once training ended."""
        return self.run.verdict

    @property
    def skipped(self) -> Counter[str]:
        """Logged names whose values were left out because they are not numbers, with how many."""
        return self.run.skipped

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if _main_process(state):
            self.run.start()
        return None

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        if not _main_process(state) or not logs:
            return None
        step = int(state.global_step)
        metrics = hf_metrics(logs, f"on_log at step {step}", skipped=self.run.skipped, strict=self.strict)
        self.run.log(step, metrics)
        return None

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if _main_process(state):
            self.run.flush()
        return None

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if _main_process(state):
            self.run.complete()
        return None

    def fail(self) -> None:
        """Mark the job ``failed`` (training raised; the Trainer calls no callback then). No-op elsewhere than on
        the main process, and once the job is completed."""
        self.run.fail()
