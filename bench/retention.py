"""Retention: `regate-db purge`'s loop (regate.purge_metrics, one transaction per batch, default batch sizes) over
jobs logged the way trainers log, with a trainer logging alongside.

Data: JOBS completed jobs of STEPS steps each (quick: 100 x 400, full: 400 x 1,000), logged one step at a time
across all jobs (one INSERT per step with one row per job), then completed and set back 30 days. The purge removes
every job's rows but those of its final values (one per job here: the last step carries all of them).

Figures: metric rows deleted per second over the whole purge; the duration of one batch (median and max: how long
a batch holds its jobs and deleted rows); the size on disk of regate.local_training_metrics (the table with its
indexes) before; after the purge and a plain VACUUM (which
makes the space reusable by new rows but gives back only the tail of a file); after a second VACUUM and logging as
many rows again into new jobs (the freed space is reused: the heaps do not grow, the indexes little); and after
VACUUM FULL (a rewrite under an ACCESS EXCLUSIVE lock: what pg_repack or a maintenance window would give back). The
insert latency of a trainer logging single rows into a running job, alone and while the purge runs (median and
max: a lock wait would show in the max). Checked: every job's final metrics are identical before and after (bit
for bit).
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime
from typing import Any

from bench.common import Conn, Figure, Sizes, checked, connect, fresh_database, log, median, settle

MODEL = "bench-retention"
TABLES = ("regate.local_training_metrics",)

# One step of every job, as a trainer logs it: the fixed columns (eval columns every 10th step) and 5 other metrics.
STEP = """
insert into regate.local_training_metrics
    (job_id, step, epoch, train_loss, eval_loss, perplexity, learning_rate, grad_norm, metrics)
select
    j.id, %(step)s, 3.0 * %(step)s / %(steps)s, 1.28 + 1.2 * (1 - %(step)s::float8 / %(steps)s) + 0.02 * random(),
    case when %(step)s %% 10 = 0 then 1.36 + 1.2 * (1 - %(step)s::float8 / %(steps)s) end,
    case when %(step)s %% 10 = 0 then exp(1.36 + 1.2 * (1 - %(step)s::float8 / %(steps)s)) end,
    1e-4 + 2e-4 * (1 - %(step)s::float8 / %(steps)s), 0.9 + 0.3 * random(),
    jsonb_build_object(
        'accuracy', 0.3 + 0.48 * %(step)s / %(steps)s + 0.005 * random(),
        'f1', 0.25 + 0.5 * %(step)s / %(steps)s + 0.005 * random(),
        'tokens_per_sec', 8950 + 100 * random(), 'gpu_mem_gb', 39.5 + random(), 'loss_scale', 65536
    )
from unnest(%(jobs)s::uuid[]) as j (id)
"""
PURGE = (
    "select jobs_purged, rows_deleted, rows_kept, jobs_remaining"
    " from regate.purge_metrics(completed_before => %s, model_name => %s)"
)
FINALS = "select id, regate.extract_final_metrics(id)::text from regate.local_training_jobs where model_name = %s"


def _mb(conn: Conn, stage: str) -> dict[str, float]:
    """Each table's size with its indexes, in MB; logs the heap and the indexes apart."""
    sizes: dict[str, float] = {}
    for table in TABLES:
        row = conn.execute(
            "select pg_total_relation_size(%s::regclass), pg_relation_size(%s::regclass)", (table, table)
        ).fetchone()
        assert row is not None
        sizes[table] = row[0] / 2**20
        log(f"retention: {stage}: {table} {row[1] / 2**20:.1f} MB heap + {(row[0] - row[1]) / 2**20:.1f} MB indexes")
    return sizes


def _count(conn: Conn, table: str) -> int:
    row = conn.execute(f"select count(*) from {table}").fetchone()
    assert row is not None
    return int(row[0])


class Trainer(threading.Thread):
    """Logs single rows into a running job, back to back, recording each insert's milliseconds per phase."""

    def __init__(self, dsn: str, job: uuid.UUID) -> None:
        super().__init__(daemon=True)
        self.dsn, self.job = dsn, job
        self.phase = "alone"
        self.latencies: dict[str, list[float]] = {"alone": [], "purge": []}
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with connect(self.dsn) as conn:
                conn.execute("set lock_timeout = '5s'")
                step = 0
                while not self.stop.is_set():
                    step += 1
                    started = time.perf_counter()
                    conn.execute(
                        "insert into regate.local_training_metrics (job_id, step, train_loss, metrics)"
                        " values (%s, %s, %s, '{\"accuracy\": 0.5}')",
                        (self.job, step, 1.0 / step),
                    )
                    self.latencies[self.phase].append((time.perf_counter() - started) * 1000)
        except BaseException as exc:  # reported by run()
            self.error = exc


def run(maintenance: str, sizes: Sizes) -> list[Figure]:
    jobs_n, steps = (100, 400) if sizes.quick else (400, 1_000)
    alone_s = 1.0 if sizes.quick else 5.0
    with fresh_database(maintenance) as dsn, connect(dsn) as conn:
        jobs = [
            r[0]
            for r in conn.execute(
                "insert into regate.local_training_jobs (model_name, status)"
                " select %s, 'running' from generate_series(1, %s) returning id",
                (MODEL, jobs_n),
            ).fetchall()
        ]
        log(f"retention: {jobs_n:,} jobs x {steps:,} steps, one INSERT per step")
        for step in range(1, steps + 1):
            conn.execute(STEP, {"jobs": jobs, "step": step, "steps": steps})
        conn.execute("update regate.local_training_jobs set status = 'completed' where model_name = %s", (MODEL,))
        conn.execute(
            "update regate.local_training_jobs set completed_at = completed_at - interval '30 days'"
            " where model_name = %s",
            (MODEL,),
        )
        running = conn.execute(
            "insert into regate.local_training_jobs (model_name) values ('bench-trainer') returning id"
        ).fetchone()
        assert running is not None
        settle(conn, ["regate.local_training_jobs", *TABLES])
        rows_before = _count(conn, "regate.local_training_metrics")
        before = _mb(conn, "before")
        finals = dict(conn.execute(FINALS, (MODEL,)).fetchall())
        cutoff_row = conn.execute("select now() - interval '1 day'").fetchone()
        assert cutoff_row is not None
        cutoff: datetime = cutoff_row[0]
        log(f"retention: {rows_before:,} metric rows")

        trainer = Trainer(dsn, running[0])
        trainer.start()
        time.sleep(alone_s)
        trainer.phase = "purge"
        batches: list[float] = []
        totals = [0, 0, 0]
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            row: Any = conn.execute(PURGE, (cutoff, MODEL)).fetchone()
            batches.append((time.perf_counter() - t0) * 1000)
            for i in range(3):
                totals[i] += row[i]
            if row[3] == 0:
                break
        seconds = time.perf_counter() - started
        trainer.stop.set()
        trainer.join(timeout=30)
        if trainer.error is not None:
            raise RuntimeError(f"the trainer failed during the purge: {trainer.error}") from trainer.error
        jobs_purged, rows_deleted, rows_kept = totals
        assert jobs_purged == jobs_n and rows_deleted + rows_kept == rows_before, (totals, rows_before)
        changed = sum(1 for job, text in conn.execute(FINALS, (MODEL,)).fetchall() if finals[job] != text)
        log(f"retention: purged in {seconds:.1f} s, {len(batches)} batches; {changed} final metrics changed")

        for table in TABLES:
            conn.execute(f"vacuum {table}")
        vacuumed = _mb(conn, "purged + VACUUM")
        # B-tree pages that the purge emptied are reusable only once no snapshot can still need them: a later
        # VACUUM hands them out (autovacuum does, over time). Some transactions, then that second pass.
        for _ in range(100):
            conn.execute("select pg_current_xact_id()")
        for table in TABLES:
            conn.execute(f"vacuum {table}")
        log("retention: logging as many rows again, into new jobs")
        again = [
            r[0]
            for r in conn.execute(
                "insert into regate.local_training_jobs (model_name, status)"
                " select 'bench-again', 'running' from generate_series(1, %s) returning id",
                (jobs_n,),
            ).fetchall()
        ]
        for step in range(1, steps + 1):
            conn.execute(STEP, {"jobs": again, "step": step, "steps": steps})
        reused = _mb(conn, "as many rows again")
        conn.execute("delete from regate.local_training_jobs where model_name = 'bench-again'")
        for table in TABLES:
            conn.execute(f"vacuum full {table}")
        rewritten = _mb(conn, "VACUUM FULL")

    alone, during = trainer.latencies["alone"], trainer.latencies["purge"]
    (m,) = TABLES
    return [
        Figure(
            f"retention: purge of {jobs_n:,} jobs x {steps:,} steps, metric rows deleted",
            rows_deleted / seconds,
            "rows/s",
        ),
        Figure(f"retention: batch (100 jobs, <= 100k rows), median of {len(batches)}", median(batches), "ms"),
        Figure("retention: batch, max", max(batches), "ms"),
        Figure("retention: metrics table before", before[m], "MB"),
        Figure("retention: metrics table after purge + VACUUM", vacuumed[m], "MB"),
        Figure("retention: metrics table after logging as many rows again", reused[m], "MB"),
        Figure("retention: metrics table after VACUUM FULL", rewritten[m], "MB"),
        Figure("retention: trainer single-row insert alone, median", median(alone), "ms"),
        Figure("retention: trainer single-row insert during the purge, median", median(during), "ms"),
        Figure("retention: trainer single-row insert during the purge, max", max(during), "ms"),
        checked("retention: jobs whose final metrics changed", changed, "jobs", "= 0"),
    ]
