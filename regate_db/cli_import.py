"""``regate-db import``: a run's metric history from a Trainer's ``trainer_state.json``, JSON lines, CSV or an MLflow
run into a job (an existing one, or one it creates), optionally completed: a verdict in one command. Argument
parsing and output only: the work is :mod:`regate_db.importers` and :mod:`regate_db.integrations.mlflow`.

The whole source is read and checked first (a malformed one is one ``error:`` line on stderr, exit 2, nothing
sent), then everything goes in one transaction. Output: a summary and the job's final metrics (``--json``: one
JSON document), then with ``--complete`` the verdict. Exit codes as for ``validate``/``gate``: 0 done, 1 the
verdict blocks, 2 an error. Long imports show a progress bar on stderr when it is a terminal.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from regate_db import importers, release
from regate_db.cli_release import emit_json, print_verdict, table
from regate_db.clikit import Options, connection, db_options, echo_err, json_option
from regate_db.importers import Events, ImportResult, NewJob

EXIT_BLOCKED = 1
#: Imports of at least this many rows show a progress bar (on a terminal).
PROGRESS_MIN_ROWS = 10_000

F = TypeVar("F", bound=Callable[..., Any])


class ProgressBar:
    """``progress(done, total)`` for the importers: a rich bar on stderr, only when stderr is a terminal and
    ``total`` reaches ``min_total``; it disappears when closed."""

    def __init__(self, label: str, min_total: int, *, console: Console | None = None) -> None:
        self.label = label
        self.min_total = min_total
        self._console = console
        self._progress: Progress | None = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_total:
            return
        if self._progress is None:
            console = self._console or Console(stderr=True)
            if not console.is_terminal:
                self.min_total = sys.maxsize
                return
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=total)
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@contextmanager
def progress_bar(label: str, min_total: int = PROGRESS_MIN_ROWS) -> Iterator[ProgressBar]:
    bar = ProgressBar(label, min_total)
    try:
        yield bar
    finally:
        bar.close()


@click.group("import", short_help="Import a run's metrics: trainer_state.json, JSON lines, CSV, an MLflow run.")
def import_group() -> None:
    """Import a training run's metric history into a job, all or nothing; optionally complete it (the verdict).

    Give the JOB_ID of a job you created, or --model MODEL to create one in the same transaction. Names: the
    metric columns (epoch, train_loss, eval_loss, perplexity, learning_rate, grad_norm) go to their columns,
    every other metric into the row's metrics; --rename OLD=NEW renames first. Values that are not numbers are
    left out and counted (--strict refuses them). docs/integrations.md has the details.

    \b
    Examples:
      regate-db import trainer-state --model sentiment-bert --complete out/trainer_state.json
      regate-db import jsonl 0190c2a4-7d1e-7000-8000-000000000001 metrics.jsonl --json
      regate-db import csv --model sentiment-bert --rename val_loss=eval_loss metrics.csv
      regate-db import mlflow --model sentiment-bert 3f2b9c... --tracking-uri http://mlflow:5000 --complete
    """


def _import_options(f: F) -> F:
    for option in reversed(
        (
            click.option(
                "--model", metavar="MODEL", help="Create a new job of MODEL for the import (instead of JOB_ID)."
            ),
            click.option(
                "--model-version", "--version", "model_version", metavar="VERSION", help="With --model: its version."
            ),
            click.option(
                "--config",
                "config_text",
                metavar="JSON",
                help="With --model: the job's config, e.g. '{\"blockOnCriticalFailures\": true}'.",
            ),
            click.option(
                "--complete",
                is_flag=True,
                help="Complete the job in the same transaction and print the verdict (exit 1 when it blocks).",
            ),
            click.option(
                "--strict", is_flag=True, help="Refuse values that are not numbers instead of leaving them out."
            ),
            click.option(
                "--rename",
                "renames",
                multiple=True,
                metavar="OLD=NEW",
                help="Store the source's OLD under NEW (repeatable), e.g. --rename val_loss=eval_loss.",
            ),
        )
    ):
        f = option(f)
    return db_options(json_option(f))


def _job_and_source(
    args: tuple[str, ...], model: str | None, model_version: str | None, config_text: str | None, what: str
) -> tuple[uuid.UUID | None, NewJob | None, str]:
    if model is None:
        if model_version is not None or config_text is not None:
            raise click.UsageError("--model-version and --config describe a new job: use them with --model")
        if len(args) != 2:
            raise click.UsageError(f"give JOB_ID and {what}, or --model MODEL and {what}")
        return release.parse_job_id(args[0]), None, args[1]
    if len(args) != 1:
        raise click.UsageError(f"give JOB_ID or --model, not both: with --model, give only {what}")
    return None, NewJob(model, model_version, _config(config_text)), args[0]


def _config(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise release.InvalidRequestError(f"--config: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise release.InvalidRequestError("--config must be a JSON object, e.g. '{\"blockOnCriticalFailures\": true}'")
    return value


def _send(opts: Options, events: Events, job_id: uuid.UUID | None, new_job: NewJob | None, complete: bool) -> None:
    with connection(opts) as conn, progress_bar(f"importing {Path(events.source).name}") as bar:
        conn.autocommit = True
        result = importers.import_events(conn, events, job_id=job_id, new_job=new_job, complete=complete, progress=bar)
    _report(opts, result, new_job)


def _report(opts: Options, result: ImportResult, new_job: NewJob | None) -> None:
    if result.skipped:
        count = sum(result.skipped.values())
        names = ", ".join(f"{name} ({n})" for name, n in sorted(result.skipped.items()))
        values = "value that is not a number" if count == 1 else "values that are not numbers"
        echo_err(f"warning: left out {count} {values} (--strict refuses them): {names}")
    if opts.json:
        emit_json(result.to_json())
    else:
        steps = result.steps
        if not steps:
            where = "at no step"
        elif len(steps) == 1:
            where = f"at step {steps[0]}"
        else:
            where = f"at {len(steps)} steps ({steps[0]} to {steps[-1]})"
        job = f"new job {result.job_id} of model {new_job.model_name}" if new_job else f"job {result.job_id}"
        click.echo(
            f"imported {result.rows} row{'' if result.rows == 1 else 's'} {where} from {result.source} into {job}"
        )
        if result.empty:
            click.echo(f"note: {result.empty} entries had no metric to import")
        for note in result.notes:
            click.echo(f"note: {note}")
        table(["metric", "final value"], sorted(result.final.items()), title="final metrics:")
        verdict = result.verdict
        if verdict is not None:
            shown = "passed (no baselines: nothing was checked)" if verdict.status == "no_baselines" else verdict.status
            click.echo(f"completed job {result.job_id}: validation_status {shown}")
            if verdict.record is not None:
                print_verdict(verdict.record)
            else:
                click.echo(verdict.message)
    if result.verdict is not None and result.verdict.blocked:
        failing = ", ".join(c.metric_name for c in result.verdict.failing) or result.verdict.status
        echo_err(f"blocked: the verdict on job {result.job_id} blocks deployment ({failing})")
        sys.exit(EXIT_BLOCKED)


def _file_command(
    parse: Callable[..., Events],
    opts: Options,
    args: tuple[str, ...],
    model: str | None,
    model_version: str | None,
    config_text: str | None,
    complete: bool,
    strict: bool,
    renames: tuple[str, ...],
) -> None:
    job_id, new_job, path = _job_and_source(args, model, model_version, config_text, "FILE")
    rename = importers.parse_rename(renames)
    text, source = importers.read_text(path)
    events = parse(text, source, strict=strict, rename=rename)  # the whole file, before connecting
    _send(opts, events, job_id, new_job, complete)


@import_group.command("trainer-state")
@click.argument("args", nargs=-1, metavar="[JOB_ID] FILE")
@_import_options
@click.pass_obj
def trainer_state_cmd(
    opts: Options,
    args: tuple[str, ...],
    model: str | None,
    model_version: str | None,
    config_text: str | None,
    complete: bool,
    strict: bool,
    renames: tuple[str, ...],
) -> None:
    """A Hugging Face Trainer's trainer_state.json (- reads stdin): every log_history entry is a row at its step.

    loss -> train_loss; eval_loss, learning_rate, grad_norm, epoch -> their columns; every other number into
    metrics under its own name. The end-of-training summary (the entry with train_runtime and no loss) keeps
    train_runtime, total_flos, ... under their names, and its average train_loss as train_loss_mean, so the last
    per-step train_loss stays the final one. Bare NaN and Infinity are read as such.

    \b
    Examples (a verdict in two commands):
      regate-db baseline create sentiment-bert eval_loss --value 0.42 --min-relative-change -0.05
      regate-db import trainer-state --model sentiment-bert --complete out/trainer_state.json
    """
    _file_command(
        importers.parse_trainer_state, opts, args, model, model_version, config_text, complete, strict, renames
    )


@import_group.command("jsonl")
@click.argument("args", nargs=-1, metavar="[JOB_ID] FILE")
@_import_options
@click.pass_obj
def jsonl_cmd(
    opts: Options,
    args: tuple[str, ...],
    model: str | None,
    model_version: str | None,
    config_text: str | None,
    complete: bool,
    strict: bool,
    renames: tuple[str, ...],
) -> None:
    """JSON lines (- reads stdin): one object per line, {"step": 10, "eval_loss": 0.41, "accuracy": 0.9}.

    Bare NaN/Infinity and the strings "NaN", "Infinity", "-Infinity" are numbers; null is "not logged".
    """
    _file_command(importers.parse_jsonl, opts, args, model, model_version, config_text, complete, strict, renames)


@import_group.command("csv")
@click.argument("args", nargs=-1, metavar="[JOB_ID] FILE")
@_import_options
@click.pass_obj
def csv_cmd(
    opts: Options,
    args: tuple[str, ...],
    model: str | None,
    model_version: str | None,
    config_text: str | None,
    complete: bool,
    strict: bool,
    renames: tuple[str, ...],
) -> None:
    """CSV with a header row (- reads stdin): a step column and one column per metric.

    An empty cell is "not logged"; cells are read as Python's int() or float() read them (nan, inf, 1e-3).
    """
    _file_command(importers.parse_csv, opts, args, model, model_version, config_text, complete, strict, renames)


@import_group.command("mlflow")
@click.argument("args", nargs=-1, metavar="[JOB_ID] RUN_ID")
@click.option(
    "--tracking-uri",
    metavar="URI",
    help="The MLflow tracking store (http://..., sqlite:///..., file://...). Default: MLflow's, $MLFLOW_TRACKING_URI.",
)
@_import_options
@click.pass_obj
def mlflow_cmd(
    opts: Options,
    args: tuple[str, ...],
    tracking_uri: str | None,
    model: str | None,
    model_version: str | None,
    config_text: str | None,
    complete: bool,
    strict: bool,
    renames: tuple[str, ...],
) -> None:
    """An MLflow run's full metric history: every metric, every step (needs the mlflow extra, or mlflow-skinny).

    At each step, one row holds each metric's first value there, a second row the second values, and so on, so
    that a value logged twice at a step is kept and the later one is final, as in MLflow.
    """
    from regate_db.integrations import mlflow as mlflow_import

    job_id, new_job, run_id = _job_and_source(args, model, model_version, config_text, "RUN_ID")
    rename = importers.parse_rename(renames)
    with progress_bar(f"reading mlflow run {run_id}", 1) as bar:
        events = mlflow_import.read_run(run_id, tracking_uri=tracking_uri, rename=rename, strict=strict, progress=bar)
    _send(opts, events, job_id, new_job, complete)
