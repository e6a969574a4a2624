"""Training-framework integrations (issue 11 part 3): the Hugging Face callback and the Lightning logger create the
job, log every event in batches, complete it and keep the verdict, against a real database.

Neither framework is needed: :class:`FakeTrainer` and :class:`FakeLightningTrainer` call the callback and the
logger exactly as ``transformers.Trainer.train`` (5.x) and ``lightning.Trainer.fit`` (2.x) do (the same events, in
the same order, with the same arguments). Where the frameworks are installed (the ``integrations`` extra), the last
tests run a tiny real Trainer and a tiny real Lightning fit on the CPU."""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from regate_db import Client
from regate_db.importers import MetricImportError, import_trainer_state
from regate_db.integrations import GateBlockedError
from regate_db.integrations.huggingface import RegateCallback, TrainerCallbackEvents
from regate_db.integrations.lightning import LoggerMethods, RegateLogger

Conn = psycopg.Connection[Any]
MODEL = "integration-bert"
ROWS_SQL = (
    "select step, epoch, train_loss, eval_loss, learning_rate, grad_norm, metrics"
    " from regate.local_training_metrics where job_id = %s order by id"
)
NOWHERE = "host=/nonexistent/regate-db dbname=never connect_timeout=1"  # a DSN that must never be used


def rows(db: Conn, job: Any) -> list[tuple[Any, ...]]:
    return db.execute(ROWS_SQL, (job,)).fetchall()


def job_row(db: Conn, job: Any) -> tuple[Any, ...]:
    row = db.execute(
        "select model_name, model_version, status, validation_status from regate.local_training_jobs where id = %s",
        (job,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def job_count(db: Conn) -> int:
    row = db.execute("select count(*) from regate.local_training_jobs").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def baselines(db: Conn) -> Conn:
    """eval_loss at most 5% worse than 0.40 (critical) for MODEL."""
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'eval_loss', baseline_value => 0.4,"
        " min_relative_change => -0.05)",
        (MODEL,),
    )
    return db


# --- a Trainer without transformers ---------------------------------------------------------------------------


@dataclasses.dataclass
class FakeArgs:
    """The TrainingArguments a callback reads."""

    max_steps: int = 6
    logging_steps: int = 2
    eval_steps: int = 3
    save_steps: int = 3
    steps_per_epoch: int = 4
    output_dir: str = "out"


@dataclasses.dataclass
class FakeState:
    """transformers.TrainerState: what the Trainer passes to every event."""

    epoch: float | None = None
    global_step: int = 0
    max_steps: int = 0
    total_flos: float = 0.0
    log_history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    is_local_process_zero: bool = True
    is_world_process_zero: bool = True


@dataclasses.dataclass
class FakeControl:
    should_training_stop: bool = False
    should_epoch_stop: bool = False
    should_save: bool = False
    should_evaluate: bool = False
    should_log: bool = False


def default_losses(step: int) -> tuple[float, float]:
    """(training loss, eval loss) of a run that learns."""
    return 1.0 / (1 + step), 0.3 + 0.5 / (1 + step)


class FakeTrainer:
    """Calls its callbacks as transformers.Trainer.train does: on_init_end at construction; on_train_begin; per
    epoch on_epoch_begin/on_epoch_end; per step on_step_begin, on_pre_optimizer_step, on_optimizer_step,
    on_step_end, then (as Trainer._maybe_log_save_evaluate) a training log every logging_steps, an evaluation (log
    + on_evaluate) every eval_steps, a checkpoint (on_save) every save_steps; at the end the summary log and
    on_train_end. Every log is Trainer.log: ``epoch`` added, appended to ``state.log_history`` with ``step``, then
    ``on_log(args, state, control, logs=logs)``; every event also gets model, optimizer, ... as keywords."""

    def __init__(
        self,
        model: Any = None,
        args: FakeArgs | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        callbacks: Sequence[Any] = (),
        *,
        losses: Callable[[int], tuple[float, float]] = default_losses,
        extra_eval: Mapping[str, Any] | None = None,
        world_process_zero: bool = True,
        crash_at: int | None = None,
    ) -> None:
        self.args = args or FakeArgs()
        self.callbacks = list(callbacks)
        self.losses = losses
        self.extra_eval = dict(extra_eval or {})
        self.crash_at = crash_at
        self.state = FakeState(is_world_process_zero=world_process_zero, is_local_process_zero=world_process_zero)
        self.control = FakeControl()
        self.event("on_init_end")

    def event(self, name: str, **kwargs: Any) -> None:
        for callback in self.callbacks:
            result = getattr(callback, name)(
                self.args,
                self.state,
                self.control,
                model=None,
                processing_class=None,
                optimizer=None,
                lr_scheduler=None,
                train_dataloader=None,
                eval_dataloader=None,
                **kwargs,
            )
            if result is not None:
                self.control = result

    def log(self, logs: dict[str, Any]) -> None:
        if self.state.epoch is not None:
            logs["epoch"] = self.state.epoch
        self.state.log_history.append({**logs, "step": self.state.global_step})
        self.event("on_log", logs=logs)

    def train(self) -> None:
        args, state = self.args, self.state
        state.max_steps = args.max_steps
        self.event("on_train_begin")
        total = 0.0
        while state.global_step < args.max_steps:
            self.event("on_epoch_begin")
            for _ in range(args.steps_per_epoch):
                if state.global_step >= args.max_steps:
                    break
                self.event("on_step_begin")
                if self.crash_at == state.global_step + 1:
                    raise RuntimeError("CUDA out of memory (simulated)")
                self.event("on_pre_optimizer_step")
                self.event("on_optimizer_step")
                state.global_step += 1
                state.epoch = state.global_step / args.steps_per_epoch
                loss, eval_loss = self.losses(state.global_step)
                total += loss
                self.event("on_step_end")
                if state.global_step % args.logging_steps == 0:
                    lr = 5e-5 * (1 - state.global_step / args.max_steps)
                    self.log({"loss": loss, "grad_norm": 2.0 - state.global_step / 10, "learning_rate": lr})
                if state.global_step % args.eval_steps == 0:
                    metrics = {
                        "eval_loss": eval_loss,
                        **self.extra_eval,
                        "eval_runtime": 0.04,
                        "eval_samples_per_second": 800.0,
                        "eval_steps_per_second": 100.0,
                    }
                    self.log(metrics)
                    self.event("on_evaluate", metrics=metrics)
                if state.global_step % args.save_steps == 0:
                    self.event("on_save")
            self.event("on_epoch_end")
        self.log(
            {
                "train_runtime": 0.2,
                "train_samples_per_second": 100.0,
                "train_steps_per_second": 30.0,
                "total_flos": 21457864573440000000,
                "train_loss": total / state.global_step,
            }
        )
        self.event("on_train_end")

    def save_state(self, path: Path) -> Path:
        """trainer_state.json, as Trainer.save_state writes it."""
        path.write_text(json.dumps(dataclasses.asdict(self.state), indent=2, sort_keys=True) + "\n")
        return path


# --- Hugging Face ---------------------------------------------------------------------------------------------


def test_the_callback_logs_the_run_as_the_trainer_state_importer_does(
    db: Conn, db_dsn: str, baselines: Conn, tmp_path: Path
) -> None:
    callback = RegateCallback(db_dsn, MODEL, version="3.1", buffer_size=3)
    trainer = FakeTrainer(callbacks=[callback], extra_eval={"eval_accuracy": 0.9, "eval_report": "fine"})
    assert callback.job_id is None  # nothing happens before training begins
    trainer.train()
    assert callback.verdict is not None and (callback.verdict.status, callback.verdict.blocked) == ("passed", False)
    assert job_row(db, callback.job_id) == (MODEL, "3.1", "completed", "passed")
    assert callback.skipped == {"eval_report": 2}
    logged = rows(db, callback.job_id)
    assert [r[0] for r in logged] == [2, 3, 4, 6, 6, 6]  # train, eval, train, train + eval + summary at step 6
    assert logged[0][2] == 1 / 3 and logged[1][3] == 0.3 + 0.5 / 4
    mean = sum(1 / (1 + step) for step in range(1, 7)) / 6
    assert logged[-1][2] is None and logged[-1][6]["train_loss_mean"] == pytest.approx(mean)
    # the same history saved as trainer_state.json and imported: the same rows, in the same order
    imported = import_trainer_state(db_dsn, trainer.save_state(tmp_path / "trainer_state.json"), model="imported")
    assert rows(db, imported.job_id) == logged


def test_metrics_are_sent_in_batches_and_on_save(db: Conn, db_dsn: str) -> None:
    callback = RegateCallback(db_dsn, MODEL, buffer_size=100, flush_every=3600)
    args, state, control = FakeArgs(), FakeState(), FakeControl()
    callback.on_train_begin(args, state, control)
    assert job_row(db, callback.job_id)[2] == "running"
    for step in (1, 2, 3):
        state.global_step = step
        callback.on_log(args, state, control, logs={"loss": 1.0 / step, "epoch": step / 4})
    assert rows(db, callback.job_id) == []  # buffered
    callback.on_save(args, state, control)
    assert [r[0] for r in rows(db, callback.job_id)] == [1, 2, 3]
    callback.on_log(args, state, control, logs={"eval_loss": 0.5, "epoch": 0.75})
    callback.on_train_end(args, state, control)
    assert len(rows(db, callback.job_id)) == 4 and job_row(db, callback.job_id)[2] == "completed"
    # a time-based flush: with flush_every=0 every log is sent at once
    eager = RegateCallback(db_dsn, MODEL, flush_every=0)
    eager.on_train_begin(args, state, control)
    eager.on_log(args, state, control, logs={"loss": 0.25})
    assert len(rows(db, eager.job_id)) == 1


def test_only_the_main_process_talks_to_the_database(db: Conn) -> None:
    callback = RegateCallback(NOWHERE, MODEL)  # connecting would fail
    FakeTrainer(callbacks=[callback], world_process_zero=False).train()
    assert (callback.job_id, callback.verdict) == (None, None)
    callback.fail()  # a no-op too
    assert job_count(db) == 0


def test_raise_on_block(baselines: Conn, db_dsn: str) -> None:
    callback = RegateCallback(db_dsn, MODEL, config={"blockOnCriticalFailures": True}, raise_on_block=True)
    trainer = FakeTrainer(callbacks=[callback], losses=lambda step: (0.5, 0.55))  # eval_loss 0.55 vs 0.40
    with pytest.raises(GateBlockedError, match=r"blocked .*eval_loss 0\.55 is worse than baseline 0\.4") as err:
        trainer.train()
    assert err.value.verdict is callback.verdict and err.value.verdict.blocked
    assert err.value.exit_code == 1
    assert job_row(baselines, callback.job_id)[2:] == ("completed", "blocked")
    # without raise_on_block the verdict is only kept
    quiet = RegateCallback(db_dsn, MODEL, config={"blockOnCriticalFailures": True})
    FakeTrainer(callbacks=[quiet], losses=lambda step: (0.5, 0.55)).train()
    assert quiet.verdict is not None and quiet.verdict.blocked


def test_a_crashed_run_is_marked_failed(db: Conn, db_dsn: str) -> None:
    callback = RegateCallback(db_dsn, MODEL)
    trainer = FakeTrainer(callbacks=[callback], crash_at=5)
    with pytest.raises(RuntimeError, match="out of memory"):
        try:
            trainer.train()
        except Exception:
            callback.fail()
            raise
    assert job_row(db, callback.job_id)[2:] == ("failed", None)
    assert [r[0] for r in rows(db, callback.job_id)] == [2, 3, 4]  # what was logged before the crash is kept


def test_a_given_job_and_client(db: Conn, db_dsn: str) -> None:
    with Client(db_dsn) as client:
        job = client.create_job(MODEL, config={"blockOnCriticalFailures": True})
        callback = RegateCallback(client, job_id=job)
        FakeTrainer(callbacks=[callback]).train()
        assert callback.job_id == job and callback.verdict is not None
        assert client.verdict(job).status == "no_baselines"  # the client is still open: the callback did not close it
    with pytest.raises(ValueError, match="model_name"):
        RegateCallback(db_dsn)


def test_each_training_is_a_job(db: Conn, db_dsn: str) -> None:
    """Trainer.train() twice (a hyperparameter search reuses callbacks): two jobs, two verdicts."""
    callback = RegateCallback(db_dsn, MODEL)
    FakeTrainer(callbacks=[callback]).train()
    first = callback.job_id
    FakeTrainer(callbacks=[callback]).train()
    assert callback.job_id != first and job_count(db) == 2


def test_the_callback_has_every_trainer_event() -> None:
    events = [name for name in vars(TrainerCallbackEvents) if name.startswith("on_")]
    assert len(events) == 16
    callback = RegateCallback(NOWHERE, MODEL)
    for name in events:
        assert callable(getattr(callback, name))
    # the events the callback does not use do nothing (and never connect)
    callback.on_step_end(FakeArgs(), FakeState(), FakeControl(), model=None)
    callback.on_predict(FakeArgs(), FakeState(), FakeControl(), metrics={})


# --- Lightning ------------------------------------------------------------------------------------------------


class Scalar:
    """A 0-d tensor's interface: Lightning passes Python numbers, a user may log tensors."""

    def __init__(self, value: float) -> None:
        self.value = value

    def item(self) -> float:
        return self.value


class FakeLightningTrainer:
    """Calls its logger as lightning.Trainer.fit does: the checkpoint directory reads logger.name and
    logger.version, log_hyperparams once, then per training batch (every log_every_n_steps) log_metrics({..,
    "epoch": e}, step) followed by save(), at each validation epoch end log_metrics + save(), after each
    checkpoint after_save_checkpoint(), and at the end finalize("success") (or finalize("failed") when the fit
    raises, then re-raise)."""

    def __init__(
        self,
        logger: Any,
        *,
        epochs: int = 2,
        batches: int = 4,
        val_losses: Sequence[float] = (0.45, 0.39),
        crash_at: int | None = None,
    ) -> None:
        self.logger, self.epochs, self.batches = logger, epochs, batches
        self.val_losses, self.crash_at = val_losses, crash_at
        self.checkpoint_dir: str | None = None

    def log(self, metrics: dict[str, Any], step: int) -> None:
        self.logger.log_metrics(metrics, step)
        self.logger.save()

    def fit(self, *model_and_loaders: Any) -> None:
        try:
            self.checkpoint_dir = f"lightning_logs/{self.logger.name}/{self.logger.version}/checkpoints"
            self.logger.log_hyperparams({"lr": 1e-3, "hidden": 16})
            step = 0
            for epoch in range(self.epochs):
                for _ in range(self.batches):
                    if self.crash_at == step:
                        raise RuntimeError("loss exploded (simulated)")
                    self.log({"train_loss": Scalar(1.0 / (step + 1)), "epoch": epoch}, step)
                    step += 1
                # validation runs within the epoch's last batch: its metrics share that batch's step
                self.log({"val_loss": self.val_losses[epoch], "val_acc": 0.8 + epoch / 20, "epoch": epoch}, step - 1)
                self.logger.after_save_checkpoint(None)
            self.logger.finalize("success")
        except BaseException:
            self.logger.finalize("failed")
            raise

    def test(self, *model_and_loader: Any) -> None:
        """trainer.test(): the test metrics at the last training step (as Lightning logs them), then finalize."""
        self.log({"test_loss": 0.4, "test_acc": 0.9}, self.epochs * self.batches)
        self.logger.finalize("success")


def test_the_logger_logs_a_fit_and_completes_the_job(db: Conn, db_dsn: str, baselines: Conn) -> None:
    logger = RegateLogger(db_dsn, MODEL, model_version="4.0", rename={"val_loss": "eval_loss"}, buffer_size=100)
    trainer = FakeLightningTrainer(logger)
    trainer.fit()
    job = logger.job_id
    assert trainer.checkpoint_dir == f"lightning_logs/{MODEL}/{job}/checkpoints"
    assert logger.verdict is not None and logger.verdict.status == "passed"
    assert job_row(db, job) == (MODEL, "4.0", "completed", "passed")
    logged = rows(db, job)
    assert [r[0] for r in logged] == [0, 1, 2, 3, 3, 4, 5, 6, 7, 7]
    assert logged[0] == (0, 0.0, 1.0, None, None, None, {})  # train_loss and epoch are columns
    assert logged[4] == (3, 0.0, None, 0.45, None, None, {"val_acc": 0.8})
    assert logger.verdict.checks[0].observed == 0.39


def test_the_logger_batches_rows(db: Conn, db_dsn: str) -> None:
    """Lightning calls save() after every log_metrics: the logger sends only when its buffer is full, a checkpoint
    was saved, or flush_every seconds passed."""
    logger = RegateLogger(db_dsn, MODEL, buffer_size=100, flush_every=3600)
    for step in range(3):
        logger.log_metrics({"train_loss": 0.5, "epoch": 0}, step)
        logger.save()
    assert rows(db, logger.job_id) == []
    logger.after_save_checkpoint(None)
    assert len(rows(db, logger.job_id)) == 3
    logger.finalize("success")
    assert job_row(db, logger.job_id)[2] == "completed"
    logger.finalize("success")  # Lightning finalizes after every stage: once completed, nothing more happens


def test_the_logger_marks_a_crashed_fit_failed_and_a_requeued_one_running(db: Conn, db_dsn: str) -> None:
    crashed = RegateLogger(db_dsn, MODEL)
    with pytest.raises(RuntimeError, match="exploded"):
        FakeLightningTrainer(crashed, crash_at=3).fit()
    assert job_row(db, crashed.job_id)[2:] == ("failed", None) and len(rows(db, crashed.job_id)) == 3
    requeued = RegateLogger(db_dsn, MODEL, flush_every=3600)
    requeued.log_metrics({"train_loss": 0.5}, 0)
    requeued.finalize("finished")  # SLURM requeue: the run goes on later
    assert job_row(db, requeued.job_id)[2] == "running" and len(rows(db, requeued.job_id)) == 1


def test_later_stages_need_complete_on_finalize_false(db: Conn, db_dsn: str, baselines: Conn) -> None:
    logger = RegateLogger(db_dsn, MODEL, rename={"val_loss": "eval_loss"})
    FakeLightningTrainer(logger).fit()
    with pytest.raises(RuntimeError, match="complete_on_finalize=False"):
        logger.log_metrics({"test_loss": 0.4}, 8)  # trainer.test() after fit

    staged = RegateLogger(db_dsn, MODEL, rename={"val_loss": "eval_loss"}, complete_on_finalize=False)
    trainer = FakeLightningTrainer(staged)
    trainer.fit()
    assert job_row(db, staged.job_id)[2] == "running"
    trainer.test()
    verdict = staged.complete()
    assert verdict is not None and verdict.status == "passed"
    assert rows(db, staged.job_id)[-1] == (8, None, None, None, None, None, {"test_loss": 0.4, "test_acc": 0.9})


def test_the_logger_only_logs_on_rank_zero(db: Conn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    rank_zero = sys.modules.get("lightning_utilities.core.rank_zero")  # Lightning's own record, when imported
    if rank_zero is not None:
        monkeypatch.setattr(rank_zero.rank_zero_only, "rank", 1, raising=False)
    logger = RegateLogger(NOWHERE, MODEL)
    FakeLightningTrainer(logger).fit()
    assert (logger.job_id, logger.verdict, logger.version, logger.complete()) == (None, None, "", None)
    assert job_count(db) == 0


def test_the_logger_values(db: Conn, db_dsn: str) -> None:
    numpy = pytest.importorskip("numpy")
    logger = RegateLogger(db_dsn, MODEL, flush_every=0)
    logger.log_metrics({"a": numpy.float32(0.5), "b": numpy.int64(7), "c": Scalar(math.inf), "d": "text"}, 3)
    logger.log_metrics({"train_loss": 0.2}, None)  # no step: the last one
    assert rows(db, logger.job_id) == [
        (3, None, None, None, None, None, {"a": 0.5, "b": 7, "c": "Infinity"}),
        (3, None, 0.2, None, None, None, {}),
    ]
    assert logger.skipped == {"d": 1}
    strict = RegateLogger(db_dsn, MODEL, strict=True)
    with pytest.raises(MetricImportError, match="log_metrics at step 1: d is not a number"):
        strict.log_metrics({"d": "text"}, 1)
    with pytest.raises(MetricImportError, match="'step' is the row's step, not a metric name"):
        logger.log_metrics({"step": 4.0}, 4)


def test_the_logger_has_what_lightning_asks_of_a_logger() -> None:
    logger = RegateLogger(NOWHERE, MODEL)
    assert (logger.name, logger.save_dir, logger.root_dir, logger.log_dir, logger.group_separator) == (
        MODEL,
        None,
        None,
        None,
        "/",
    )
    logger.log_hyperparams({"lr": 0.1})
    logger.log_graph(None)
    assert isinstance(logger, LoggerMethods) or type(logger).__mro__[1].__name__ == "Logger"


# --- the real frameworks (optional: the `integrations` extra) -------------------------------------------------


def _framework(name: str) -> Any:
    """The framework module; skipped when it is not installed, unless REGATE_REQUIRE_FRAMEWORKS=1 (set by
    `make test-integrations`, which installs them) makes that a failure."""
    if os.environ.get("REGATE_REQUIRE_FRAMEWORKS", "") not in ("", "0"):
        return importlib.import_module(name)
    return pytest.importorskip(name)


@pytest.fixture
def hf_trainer() -> Iterator[Any]:
    _framework("torch")
    _framework("accelerate")
    yield _framework("transformers")


def _tiny_regression(torch: Any) -> tuple[Any, Any]:
    """A linear model (4 -> 1) on 32 fixed samples of y = sum(x), as a Trainer model and a dataset."""

    def forward(self: Any, x: Any, labels: Any = None) -> dict[str, Any]:
        out = self.linear(x).squeeze(-1)
        return {"loss": ((out - labels) ** 2).mean(), "logits": out}

    def init(self: Any) -> None:
        torch.nn.Module.__init__(self)
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 1)

    model_class = type("TinyRegression", (torch.nn.Module,), {"__init__": init, "forward": forward})
    generator = torch.Generator().manual_seed(1)
    xs = torch.randn(32, 4, generator=generator)
    data = [{"x": x, "labels": x.sum()} for x in xs]
    return model_class(), data


def test_a_real_trainer(hf_trainer: Any, db: Conn, db_dsn: str, tmp_path: Path) -> None:
    torch, transformers = _framework("torch"), hf_trainer
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'eval_loss', baseline_value => 100.0,"
        " min_relative_change => -0.05)",
        (MODEL,),
    )
    callback = RegateCallback(db_dsn, MODEL, config={"blockOnCriticalFailures": True}, raise_on_block=True)
    assert isinstance(callback, transformers.TrainerCallback)
    model, data = _tiny_regression(torch)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=6,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=3,
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, eval_dataset=data, callbacks=[callback])
    trainer.train()
    assert callback.verdict is not None and (callback.verdict.status, callback.verdict.blocked) == ("passed", False)
    logged = rows(db, callback.job_id)
    assert [r[0] for r in logged] == [2, 3, 4, 6, 6, 6]
    # the trainer_state.json the Trainer writes imports into the same rows
    trainer.save_state()
    imported = import_trainer_state(db_dsn, tmp_path / "out" / "trainer_state.json", model="imported")
    assert rows(db, imported.job_id) == logged
    assert imported.final["train_loss"] == logged[3][2] and "train_loss_mean" in imported.final


def test_a_real_lightning_fit(db: Conn, db_dsn: str, tmp_path: Path) -> None:
    torch = _framework("torch")
    lightning = _framework("lightning")

    def training_step(self: Any, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        loss = ((self.linear(x).squeeze(-1) - y) ** 2).mean()
        self.log("train_loss", loss)
        return loss

    def validation_step(self: Any, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", ((self.linear(x).squeeze(-1) - y) ** 2).mean())

    def init(self: Any) -> None:
        lightning.LightningModule.__init__(self)
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 1)

    module_class = type(
        "TinyModule",
        (lightning.LightningModule,),
        {
            "__init__": init,
            "training_step": training_step,
            "validation_step": validation_step,
            "configure_optimizers": lambda self: torch.optim.SGD(self.parameters(), lr=0.05),
        },
    )
    xs = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    dataset = torch.utils.data.TensorDataset(xs, xs.sum(dim=1))
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    logger = RegateLogger(db_dsn, MODEL, rename={"val_loss": "eval_loss"})
    assert isinstance(logger, lightning.pytorch.loggers.Logger)
    trainer = lightning.Trainer(
        max_epochs=2,
        logger=logger,
        log_every_n_steps=1,
        accelerator="cpu",
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module_class(), loader, loader)
    # no baselines: nothing fails, and nothing was checked (the job's column says passed)
    assert logger.verdict is not None and logger.verdict.status == "no_baselines"
    logged = rows(db, logger.job_id)
    assert [r[0] for r in logged if r[2] is not None] == list(range(8))  # train_loss at every step
    assert [(r[0], r[1]) for r in logged if r[3] is not None] == [(3, 0.0), (7, 1.0)]  # eval_loss per epoch
    assert job_row(db, logger.job_id)[2:] == ("completed", "passed")
