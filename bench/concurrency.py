"""5. Concurrency: 8 connections complete jobs while 8 others ingest metrics.

Every thread has its own psycopg connection (autocommit) and stops by itself: after `concurrency_seconds` or
when its work runs out (each completer owns `concurrency_jobs_per_completer` running jobs, each ingester sends
at most MAX_BATCHES batches). Completers complete their jobs one UPDATE at a time, back to back. Ingesters log
batches of `concurrency_batch_rows` trainer-like rows (executemany in one transaction) for random jobs that are
still open, so that ingest and completion contend for the same job rows, metric rows and latest values; a
completer withdraws a job from the open set just before completing it, and a batch that still races with the
completion is refused with RG002, as designed (counted, not an error). Two scenarios, each in its own database:

* trainers: every ingest transaction logs one job (several ingesters may log the same job at once);
* log shippers: every ingest transaction logs two jobs, rows interleaved (one INSERT per row, as executemany
  sends them), so two transactions can touch the same two jobs in opposite orders.

Afterwards: throughput, p50/p99 latency, SQLSTATE 40P01 (deadlock) count, and lost verdicts: completed jobs
without validation_status or without exactly one result row. The first few errors (other than RG002) are
logged with relation names and the role of every process in the lock cycle.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.common import (
    METRIC_COLUMNS,
    Conn,
    Figure,
    Sizes,
    checked,
    connect,
    create_baselines,
    create_jobs,
    fresh_database,
    load_metrics,
    log,
    percentile,
    settle,
    timed_ms,
    trainer_rows,
)

MODEL = "bench-concurrency"
COMPLETERS = 8
INGESTERS = 8
PRELOADED_ROWS = 50
MAX_BATCHES = 100_000  # per ingester; the deadline comes first
INSERT = (
    f"insert into regate.local_training_metrics ({', '.join(METRIC_COLUMNS)})"
    f" values ({', '.join(['%s'] * len(METRIC_COLUMNS))})"
)
COMPLETE = "update regate.local_training_jobs set status = 'completed' where id = %s"


def send(conn: Conn, rows: list[tuple[Any, ...]]) -> None:
    """One ingest batch: executemany in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(INSERT, rows)


@dataclass
class Shared:
    deadline: float
    open_jobs: list[uuid.UUID]
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: Counter[str] = field(default_factory=Counter)
    completion_ms: list[float] = field(default_factory=list)
    batch_ms: list[float] = field(default_factory=list)
    completed: list[uuid.UUID] = field(default_factory=list)
    rows: int = 0
    failures: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # the first few errors other than RG002, for the log
    roles: dict[int, str] = field(default_factory=dict)  # backend pid -> completer / ingester
    # when the last completer and the last ingester stopped (time.monotonic())
    completers_done: float = 0.0
    ingesters_done: float = 0.0

    def withdraw(self, job: uuid.UUID) -> None:
        with self.lock:
            self.open_jobs.remove(job)

    def pick(self, rng: random.Random, k: int) -> list[uuid.UUID]:
        with self.lock:
            return rng.sample(self.open_jobs, min(k, len(self.open_jobs)))

    def error(self, exc: psycopg.Error, what: str) -> None:
        with self.lock:
            self.errors[exc.sqlstate or type(exc).__name__] += 1
            if exc.sqlstate != "RG002" and len(self.details) < 5:
                self.details.append(f"{what}: {exc.sqlstate} {exc.diag.message_primary}; {exc.diag.message_detail}")


def completer(dsn: str, jobs: list[uuid.UUID], shared: Shared) -> None:
    try:
        with connect(dsn) as conn:
            conn.execute("set statement_timeout = '30s'")
            shared.roles[conn.info.backend_pid] = "completer"
            for job in jobs:
                if time.monotonic() >= shared.deadline:
                    break
                shared.withdraw(job)
                try:
                    ms = timed_ms(conn.execute, COMPLETE, (job,))
                except psycopg.Error as exc:
                    shared.error(exc, "completer")
                    continue
                with shared.lock:
                    shared.completion_ms.append(ms)
                    shared.completed.append(job)
    except Exception as exc:  # a thread must report, never die silently
        shared.failures.append(f"completer: {exc!r}")
    with shared.lock:
        shared.completers_done = max(shared.completers_done, time.monotonic())


def ingester(dsn: str, seed: int, batches: int, rows_per_batch: int, jobs_per_batch: int, shared: Shared) -> None:
    rng = random.Random(seed)
    step = 1_000_000 * (seed + 1)  # steps past the preloaded ones, distinct per ingester
    try:
        with connect(dsn) as conn:
            conn.execute("set statement_timeout = '30s'")
            shared.roles[conn.info.backend_pid] = "ingester"
            for _ in range(batches):
                if time.monotonic() >= shared.deadline:
                    break
                jobs = shared.pick(rng, jobs_per_batch)
                if not jobs:
                    break
                rows = trainer_rows(jobs, rows_per_batch, step)
                step += rows_per_batch
                try:
                    ms = timed_ms(send, conn, rows)
                except psycopg.Error as exc:
                    shared.error(exc, "ingester")
                    continue
                with shared.lock:
                    shared.batch_ms.append(ms)
                    shared.rows += len(rows)
    except Exception as exc:
        shared.failures.append(f"ingester: {exc!r}")
    with shared.lock:
        shared.ingesters_done = max(shared.ingesters_done, time.monotonic())


def explain(conn: Conn, detail: str, roles: dict[int, str]) -> str:
    """An error detail with relation oids replaced by names and backend pids labelled with their role."""

    def relation(m: re.Match[str]) -> str:
        row = conn.execute("select %s::oid::regclass::text", (int(m.group(1)),)).fetchone()
        return f"relation {row[0] if row else m.group(1)}"

    detail = re.sub(r"relation (\d+)", relation, detail)
    return re.sub(
        r"process (\d+)", lambda m: f"{roles.get(int(m.group(1)), 'process')} {m.group(1)}", detail, flags=re.I
    )


def scenario(maintenance: str, sizes: Sizes, jobs_per_batch: int) -> list[Figure]:
    """One run: 8 completers and 8 ingesters whose transactions each log `jobs_per_batch` jobs."""
    per_completer = sizes.concurrency_jobs_per_completer
    with fresh_database(maintenance) as dsn:
        with connect(dsn) as conn:
            create_baselines(conn, MODEL)
            jobs = create_jobs(conn, MODEL, COMPLETERS * per_completer)
            load_metrics(conn, jobs, PRELOADED_ROWS)
            settle(
                conn,
                [
                    *(f"regate.{t}" for t in ("local_training_jobs", "local_training_metrics")),
                    "regate_internal.metric_spans",
                ],
            )
        log(
            f"concurrency: {COMPLETERS} completers ({per_completer} jobs each) and {INGESTERS} ingesters"
            f" ({sizes.concurrency_batch_rows} rows for {jobs_per_batch} job(s) per transaction)"
            f" for at most {sizes.concurrency_seconds:.0f} s"
        )
        shared = Shared(deadline=0.0, open_jobs=list(jobs))
        threads = [
            threading.Thread(target=completer, args=(dsn, jobs[i::COMPLETERS], shared), name=f"completer-{i}")
            for i in range(COMPLETERS)
        ]
        threads += [
            threading.Thread(
                target=ingester,
                args=(dsn, i, MAX_BATCHES, sizes.concurrency_batch_rows, jobs_per_batch, shared),
                name=f"ingester-{i}",
            )
            for i in range(INGESTERS)
        ]
        started = time.monotonic()
        shared.deadline = started + sizes.concurrency_seconds
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=sizes.concurrency_seconds + 120)
            assert not t.is_alive(), f"{t.name} did not stop"
        completing_s = shared.completers_done - started
        ingesting_s = shared.ingesters_done - started
        assert not shared.failures, shared.failures
        with connect(dsn) as conn:
            row = conn.execute(
                """
                select
                    count(*),
                    count(*) filter (
                        where j.validation_status is null or j.validation_result_id is null
                        or (select count(*) from regate.validation_results as r where r.job_id = j.id) <> 1
                    ),
                    count(*) filter (where r.status = 'error')
                from regate.local_training_jobs as j
                left join regate.validation_results as r on r.id = j.validation_result_id
                where j.model_name = %s and j.status = 'completed'
                """,
                (MODEL,),
            ).fetchone()
            assert row is not None
            completed_in_db, lost, error_verdicts = row
            shared.details = [explain(conn, d, shared.roles) for d in shared.details]
    assert completed_in_db == len(shared.completed), (completed_in_db, len(shared.completed))
    deadlocks = shared.errors.pop("40P01", 0)
    refused = shared.errors.pop("RG002", 0)
    other = sum(shared.errors.values())
    if shared.errors:
        log(f"concurrency: unexpected errors by SQLSTATE: {dict(shared.errors)}")
    for detail in shared.details:
        log(f"concurrency: {detail}")
    what = f"concurrency, {jobs_per_batch} job{'s' if jobs_per_batch > 1 else ''} per ingest transaction"
    return [
        Figure(f"{what}: completions per second", len(shared.completed) / completing_s, "jobs/s"),
        Figure(f"{what}: completion latency p50", percentile(shared.completion_ms, 50), "ms"),
        Figure(f"{what}: completion latency p99", percentile(shared.completion_ms, 99), "ms"),
        Figure(f"{what}: ingested rows per second", shared.rows / ingesting_s, "rows/s"),
        Figure(f"{what}: ingest transaction latency p99", percentile(shared.batch_ms, 99), "ms"),
        Figure(f"{what}: batches refused, job completed (RG002, by design)", refused, "count"),
        Figure(f"{what}: deadlocks (SQLSTATE 40P01)", deadlocks, "count"),
        Figure(f"{what}: lost verdicts", lost, "count"),
        checked(f"{what}: other errors", other, "count", "= 0"),
        Figure(f"{what}: error verdicts (status 'error')", error_verdicts, "count"),
    ]


def run(maintenance: str, sizes: Sizes) -> list[Figure]:
    """Two scenarios: trainers (each ingest transaction logs one job) and log shippers (two jobs)."""
    figures = scenario(maintenance, sizes, 1) + scenario(maintenance, sizes, 2)
    total = {
        what: sum(f.value for f in figures if f.name.endswith(f": {what}"))
        for what in ("deadlocks (SQLSTATE 40P01)", "lost verdicts")
    }
    return [
        *figures,
        checked("concurrency deadlocks", total["deadlocks (SQLSTATE 40P01)"], "count", "= 0"),
        checked("concurrency lost verdicts", total["lost verdicts"], "count", "= 0"),
    ]
