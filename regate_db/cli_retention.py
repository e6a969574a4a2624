"""``regate-db purge``: the retention of raw metric rows, and the same operations from Python.

The database does the work (``regate.purge_metrics``, ``regate.purge_metrics_preview``; docs/sql-reference.md): one
call purges one batch of old finished jobs, deleting their metric rows that carry none of their final values, and
says how many jobs remain. PostgreSQL allows no COMMIT inside a SECURITY DEFINER function, so the loop is here:
:func:`purge` calls the function until no job remains, each call in its own transaction, so that every batch holds
its locks (the rows it deletes and the jobs of the batch) only for the time of one call.

Output: a progress bar on stderr when it is a terminal, then a summary; ``--json``: one JSON document. Exit codes: 0
done (or nothing to do, or ``--dry-run``); 1 stopped with jobs left that other sessions kept busy (run it again
later); 2 an error (one line on stderr: not an admin, a date in the future, no database, ...).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click
import psycopg
from psycopg.rows import dict_row
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from regate_db import release
from regate_db.cli_release import emit_json
from regate_db.clikit import Options, connection, db_options, json_option
from regate_db.errors import RegateError

EXIT_BUSY = 1
#: How long one call may wait for a lock (it takes none that trainers hold: a backstop, set per transaction).
LOCK_TIMEOUT = "5s"

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class PurgePreview:
    """What a purge would do: the jobs it would purge, the metric rows it would delete and keep."""

    jobs: int
    rows_to_delete: int
    rows_to_keep: int


@dataclass(frozen=True)
class PurgeBatch:
    """One call of regate.purge_metrics: what it did, and how many jobs still match."""

    jobs_purged: int
    rows_deleted: int
    rows_kept: int
    jobs_remaining: int
    seconds: float

    @property
    def progressed(self) -> bool:
        return bool(self.jobs_purged or self.rows_deleted)


@dataclass
class PurgeSummary:
    """A whole purge: the sums of its batches. ``busy``: it stopped with jobs left that other sessions held."""

    completed_before: datetime
    model_name: str | None
    batches: int = 0
    jobs_purged: int = 0
    rows_deleted: int = 0
    rows_kept: int = 0
    jobs_remaining: int = 0
    seconds: float = 0.0
    busy: bool = False

    def add(self, batch: PurgeBatch) -> None:
        self.batches += 1
        self.jobs_purged += batch.jobs_purged
        self.rows_deleted += batch.rows_deleted
        self.rows_kept += batch.rows_kept
        self.jobs_remaining = batch.jobs_remaining
        self.seconds += batch.seconds


def _row(conn: Conn, action: str, query: str, params: tuple[Any, ...]) -> dict[str, Any]:
    """The one row of ``query``; a database error as regate's exception for ``action`` (one clear line)."""
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(query, params).fetchone()
    except psycopg.Error as exc:
        raise release.translate_error(conn, exc, action) from exc
    assert row is not None
    return row


def preview(conn: Conn, completed_before: datetime, model_name: str | None = None) -> PurgePreview:
    """regate.purge_metrics_preview: what a purge with these arguments would do (reads only)."""
    row = _row(
        conn,
        "preview a purge of metrics",
        "select jobs, rows_to_delete, rows_to_keep"
        " from regate.purge_metrics_preview(completed_before => %s, model_name => %s)",
        (completed_before, model_name),
    )
    return PurgePreview(int(row["jobs"]), int(row["rows_to_delete"]), int(row["rows_to_keep"]))


def purge_batch(
    conn: Conn,
    completed_before: datetime,
    model_name: str | None = None,
    *,
    batch_jobs: int = 100,
    batch_rows: int = 100_000,
) -> PurgeBatch:
    """One call of regate.purge_metrics in a transaction of its own (``conn`` must be in autocommit mode), with
    lock_timeout set for that transaction only (nothing leaks to the session, also behind a transaction pooler)."""
    if not conn.autocommit:
        raise release.InvalidRequestError("purge needs a connection in autocommit mode: every batch commits alone")
    started = time.perf_counter()
    try:
        with conn.transaction():
            conn.execute("select set_config('lock_timeout', %s, true)", (LOCK_TIMEOUT,))
            row = _row(
                conn,
                "purge metrics",
                "select jobs_purged, rows_deleted, rows_kept, jobs_remaining"
                " from regate.purge_metrics(completed_before => %s, model_name => %s, batch_jobs => %s,"
                " batch_rows => %s)",
                (completed_before, model_name, batch_jobs, batch_rows),
            )
    except psycopg.Error as exc:  # the transaction's own statements (set_config)
        raise release.translate_error(conn, exc, "purge metrics") from exc
    return PurgeBatch(
        jobs_purged=int(row["jobs_purged"]),
        rows_deleted=int(row["rows_deleted"]),
        rows_kept=int(row["rows_kept"]),
        jobs_remaining=int(row["jobs_remaining"]),
        seconds=time.perf_counter() - started,
    )


def purge(
    conn: Conn,
    completed_before: datetime,
    model_name: str | None = None,
    *,
    batch_jobs: int = 100,
    batch_rows: int = 100_000,
    on_batch: Callable[[PurgeBatch, PurgeSummary], None] | None = None,
    retries: int = 5,
    pause: float = 1.0,
) -> PurgeSummary:
    """Purge in batches until no job remains. Jobs that other sessions hold are skipped by a batch; when a batch
    makes no progress (every remaining job is held), wait ``pause`` seconds and try again, at most ``retries``
    times in a row, then stop with ``busy`` set."""
    summary = PurgeSummary(completed_before, model_name)
    idle = 0
    while True:
        batch = purge_batch(conn, completed_before, model_name, batch_jobs=batch_jobs, batch_rows=batch_rows)
        summary.add(batch)
        if on_batch is not None:
            on_batch(batch, summary)
        if batch.jobs_remaining == 0:
            return summary
        idle = 0 if batch.progressed else idle + 1
        if idle > retries:
            summary.busy = True
            return summary
        if idle:
            time.sleep(pause)


# --- the command ----------------------------------------------------------------------------------------------


def _scope(completed_before: datetime, model_name: str | None) -> str:
    """'jobs of MODEL that finished before WHEN'."""
    jobs = f"jobs of {model_name}" if model_name else "jobs"
    return f"{jobs} that finished before {completed_before:%Y-%m-%d %H:%M:%S%z}"


class _Bar:
    """A progress bar of deleted rows on stderr, only when stderr is a terminal."""

    def __init__(self, total: int) -> None:
        console = Console(stderr=True)
        self._progress: Progress | None = None
        if console.is_terminal and total > 0:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("rows"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("purging", total=total)

    def __call__(self, batch: PurgeBatch, summary: PurgeSummary) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task,
                completed=summary.rows_deleted,
                description=f"purging: {summary.jobs_purged} job(s) done, {batch.jobs_remaining} left",
            )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _summary_json(summary: PurgeSummary) -> dict[str, Any]:
    return {
        "dry_run": False,
        "completed_before": summary.completed_before,
        "model_name": summary.model_name,
        "batches": summary.batches,
        "jobs_purged": summary.jobs_purged,
        "rows_deleted": summary.rows_deleted,
        "rows_kept": summary.rows_kept,
        "jobs_remaining": summary.jobs_remaining,
        "busy": summary.busy,
        "seconds": round(summary.seconds, 3),
    }


@click.command("purge", short_help="Delete old finished jobs' raw metric rows, keeping their final values (admins).")
@click.option(
    "--before",
    "before",
    required=True,
    metavar="WHEN",
    help="Purge jobs that finished before this date/time (2026-01-01, UTC without a zone) or this long ago (90d).",
)
@click.option("--model", metavar="MODEL", help="Only this model's jobs (default: every model).")
@click.option(
    "--batch-jobs", type=click.IntRange(min=1), default=100, show_default=True, help="Jobs per batch (transaction)."
)
@click.option(
    "--batch-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Metric rows deleted per batch at most; a larger job takes several batches.",
)
@click.option("--dry-run", is_flag=True, help="Only say how many jobs and rows would go, and how many stay.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@db_options
@json_option
@click.pass_obj
def purge_cmd(
    opts: Options, before: str, model: str | None, batch_jobs: int, batch_rows: int, dry_run: bool, yes: bool
) -> None:
    """Retention (admins only): delete the raw metric rows of jobs that finished (completed, failed or
    cancelled) before WHEN, in batches, keeping each job's final values.

    For every metric of a job, the row its final value comes from stays, so its final metrics, its verdicts,
    re-validation, promotion to baselines and champion and rolling references are exactly as before; jobs,
    verdicts and baselines are never deleted. Each batch is its own transaction and never waits for a job that
    a trainer or a completion holds (it comes back to it). Asks for confirmation unless --yes (without a
    terminal to ask, --yes is required).

    Exit status: 0 done (or nothing to purge, or --dry-run), 1 stopped with jobs left that other sessions kept
    busy (run it again later), 2 an error.

    \b
    Examples:
      regate-db purge --before 90d --dry-run
      regate-db purge --before 2026-01-01 --model sentiment-bert --yes
      regate-db purge --before 180d --batch-jobs 20 --yes --json
    """
    completed_before = release.parse_when(before, future=False)
    with connection(opts) as conn:
        conn.autocommit = True
        needs_preview = dry_run or not yes or (not opts.json and Console(stderr=True).is_terminal)
        plan = preview(conn, completed_before, model) if needs_preview else None
        if dry_run:
            assert plan is not None
            if opts.json:
                emit_json(
                    {
                        "dry_run": True,
                        "completed_before": completed_before,
                        "model_name": model,
                        "jobs": plan.jobs,
                        "rows_to_delete": plan.rows_to_delete,
                        "rows_to_keep": plan.rows_to_keep,
                    }
                )
                return
            click.echo(
                f"would purge the raw metrics of {plan.jobs} {_scope(completed_before, model)}:"
                f" {plan.rows_to_delete} row(s) deleted, {plan.rows_to_keep} kept (the rows of their final values)"
            )
            return
        if plan is not None and plan.jobs == 0:
            if opts.json:
                emit_json(_summary_json(PurgeSummary(completed_before, model)))
            else:
                click.echo(f"nothing to purge: no {_scope(completed_before, model)} and were not purged yet")
            return
        if not yes:
            assert plan is not None
            if not sys.stdin.isatty():
                raise RegateError("purge deletes metric rows: pass --yes to confirm (there is no terminal to ask)")
            click.confirm(
                f"delete {plan.rows_to_delete} metric row(s) of {plan.jobs} {_scope(completed_before, model)}"
                f" (keeping {plan.rows_to_keep}, the rows of their final values)?",
                abort=True,
                err=True,
            )
        bar = _Bar(plan.rows_to_delete if plan is not None and not opts.json else 0)
        try:
            summary = purge(conn, completed_before, model, batch_jobs=batch_jobs, batch_rows=batch_rows, on_batch=bar)
        finally:
            bar.close()
    if opts.json:
        emit_json(_summary_json(summary))
    elif not (summary.busy or summary.jobs_purged or summary.rows_deleted):
        click.echo(f"nothing to purge: no {_scope(completed_before, model)} and were not purged yet")
    else:
        click.echo(
            f"purged the raw metrics of {summary.jobs_purged} job(s): {summary.rows_deleted} row(s) deleted,"
            f" {summary.rows_kept} kept (the rows of their final values), in {summary.batches} batch(es),"
            f" {summary.seconds:.1f} s"
        )
    if summary.busy:
        click.echo(
            f"stopped: {summary.jobs_remaining} job(s) left that other sessions kept busy; run regate-db purge again"
            " later",
            err=True,
        )
        sys.exit(EXIT_BUSY)
