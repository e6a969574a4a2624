"""What every benchmark shares: the figures, the sizes of a run, the server, fresh databases, timing, test data."""

from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

from regate_db import connect as connect_mod
from regate_db.migrate import migrate

Conn = psycopg.Connection[Any]

# Every database the bench creates starts with this prefix, so that a killed run's leftovers are recognisable.
DB_PREFIX = "regate_bench_"


@dataclass
class Figure:
    """One line of the report and one object of bench/results.json."""

    name: str
    value: float
    unit: str
    target: str | None = None
    met: bool | None = None


def checked(name: str, value: float, unit: str, target: str) -> Figure:
    """A figure with a target such as '<= 3', '>= 0.8' or '= 0'; met says whether value satisfies it."""
    op, _, bound_text = target.partition(" ")
    bound = float(bound_text)
    ok = {"<=": value <= bound, ">=": value >= bound, "=": value == bound}[op]
    return Figure(name, value, unit, target, ok and not math.isnan(value))


@dataclass(frozen=True)
class Sizes:
    """How big a run is. Quick mode takes about 4 minutes (two 1M-row jobs); full mode about 20 on 2 cores."""

    quick: bool
    # 1. completion overhead: metric rows of the measured jobs, total metric rows in the table, repetitions
    completion_rows: tuple[int, ...]
    completion_table_rows: int
    completion_repeat: int
    # 2. against the application-side alternative
    alternative_rows: int
    alternative_repeat: int
    # 3. ingest: rows per trial for each method, trials
    ingest_single_rows: int
    ingest_batch_rows: int
    ingest_batch_size: int
    ingest_copy_rows: int
    ingest_repeat: int
    # 4. bulk completion
    bulk_jobs: int
    bulk_rows_per_job: int
    bulk_repeat: int
    # 5. concurrency: seconds (upper bound), jobs per completer (upper bound), rows per ingest batch
    concurrency_seconds: float
    concurrency_jobs_per_completer: int
    concurrency_batch_rows: int
    # install cost (migrate)
    migrate_repeat: int


QUICK = Sizes(
    quick=True,
    completion_rows=(1_000, 1_000_000),
    completion_table_rows=2_100_000,
    completion_repeat=11,
    alternative_rows=1_000,
    alternative_repeat=21,
    ingest_single_rows=200,
    ingest_batch_rows=2_000,
    ingest_batch_size=1_000,
    ingest_copy_rows=10_000,
    ingest_repeat=3,
    bulk_jobs=1_000,
    bulk_rows_per_job=20,
    bulk_repeat=1,
    concurrency_seconds=4.0,
    concurrency_jobs_per_completer=60,
    concurrency_batch_rows=20,
    migrate_repeat=3,
)

FULL = Sizes(
    quick=False,
    completion_rows=(1_000, 100_000, 1_000_000),
    completion_table_rows=10_000_000,
    completion_repeat=31,
    alternative_rows=1_000,
    alternative_repeat=101,
    ingest_single_rows=1_000,
    ingest_batch_rows=10_000,
    ingest_batch_size=1_000,
    ingest_copy_rows=100_000,
    ingest_repeat=5,
    bulk_jobs=10_000,
    bulk_rows_per_job=20,
    bulk_repeat=3,
    concurrency_seconds=30.0,
    concurrency_jobs_per_completer=1_000,
    concurrency_batch_rows=20,
    migrate_repeat=10,
)


# --- server and databases -------------------------------------------------------------------------------------


@contextmanager
def server() -> Iterator[str]:
    """The maintenance DSN of the server to benchmark: REGATE_BENCH_DSN, or a fresh embedded PostgreSQL 18."""
    dsn = os.environ.get("REGATE_BENCH_DSN")
    if dsn:
        yield dsn
        return
    with tempfile.TemporaryDirectory(prefix="regate-bench-") as tmp:
        module = connect_mod._embedded_module()
        srv = module.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            yield srv.get_uri()
        finally:
            srv.cleanup()


def with_db(maintenance: str, name: str, **extra: Any) -> str:
    """The DSN of database `name` on the server of `maintenance` (password kept)."""
    params = conninfo.conninfo_to_dict(maintenance)
    params["dbname"] = name
    params.update(extra)
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


@contextmanager
def fresh_database(maintenance: str, *, migrated: bool = True) -> Iterator[str]:
    """A new database (migrated with regate_db.migrate unless told otherwise), dropped afterwards; yields its DSN."""
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    try:
        dsn = with_db(maintenance, name, application_name="regate-bench")
        if migrated:
            with psycopg.connect(dsn, autocommit=True) as conn:
                migrate(conn)
        yield dsn
    finally:
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def connect(dsn: str, *, gated: bool = True, autocommit: bool = True) -> Conn:
    """A connection; gated=False fires no trigger in the session (`session_replication_role = replica`, superusers
    only). regate-db has no session-wide off switch any more (it would leak through a transaction pooler), so the
    ungated figures now also leave out the jobs' own row triggers (timestamps, guards)."""
    conn = psycopg.connect(dsn, autocommit=autocommit)
    if not gated:
        conn.execute("set session_replication_role = replica")
        if not autocommit:
            conn.commit()
    return conn


def machine(conn: Conn) -> dict[str, Any]:
    """Cores, memory, PostgreSQL version and the server settings that matter for these figures."""
    names = [
        "shared_buffers",
        "work_mem",
        "maintenance_work_mem",
        "effective_cache_size",
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
        "full_page_writes",
        "wal_level",
        "max_wal_size",
        "checkpoint_timeout",
        "max_connections",
        "jit",
        "autovacuum",
        "deadlock_timeout",
        "max_parallel_workers_per_gather",
    ]
    settings = dict(
        conn.execute(
            "select name, current_setting(name) from pg_settings where name = any(%s) order by name",
            (names,),
        ).fetchall()
    )
    row = conn.execute("select version(), current_setting('server_version')").fetchone()
    assert row is not None
    try:
        data_dir = conn.execute("select current_setting('data_directory')").fetchone()
    except psycopg.Error:
        data_dir = None
    mem = None
    with suppress(ValueError, OSError, AttributeError):
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    info = conn.info
    return {
        "cores": os.cpu_count(),
        "memory_gb": mem,
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "platform": platform.platform(),
        "postgresql": row[0],
        "server_version": row[1],
        "server": "REGATE_BENCH_DSN" if os.environ.get("REGATE_BENCH_DSN") else "embedded",
        "connection": f"{'unix socket' if info.host.startswith('/') else 'tcp ' + info.host}",
        "data_directory": data_dir[0] if data_dir else None,
        "settings": settings,
    }


def settle(conn: Conn, tables: Sequence[str]) -> None:
    """Before timing: vacuum analyze what was just loaded (so autovacuum leaves it alone and plans are right) and
    checkpoint (so the load's dirty pages are not written while timed work runs). Needs a superuser, like
    the ungated connections."""
    for table in tables:
        conn.execute(f"vacuum analyze {table}")
    with suppress(psycopg.errors.InsufficientPrivilege):  # not a superuser (nor pg_checkpoint): skip it
        conn.execute("checkpoint")


# --- timing ---------------------------------------------------------------------------------------------------


def timed_ms(fn: Callable[..., object], *args: Any) -> float:
    """Wall-clock milliseconds of fn(*args)."""
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def log(message: str) -> None:
    print(f"  .. {message}", flush=True)


# --- test data ------------------------------------------------------------------------------------------------

# The 10 baselined metrics: 6 fixed columns and 4 of the 5 keys of metrics jsonb; each gets a critical and a
# warning baseline: 20 applicable baselines per model. (name, baseline value, greater_is_better)
BASELINED: tuple[tuple[str, float, bool], ...] = (
    ("train_loss", 1.30, False),
    ("eval_loss", 1.35, False),
    ("perplexity", 3.90, False),
    ("grad_norm", 1.20, False),
    ("learning_rate", 1e-4, False),
    ("epoch", 3.0, True),
    ("accuracy", 0.78, True),
    ("f1", 0.74, True),
    ("tokens_per_sec", 9000.0, True),
    ("gpu_mem_gb", 39.0, False),
)

METRIC_COLUMNS = (
    "job_id",
    "step",
    "epoch",
    "train_loss",
    "eval_loss",
    "perplexity",
    "learning_rate",
    "grad_norm",
    "metrics",
)


def create_baselines(conn: Conn, model: str, *, table: str = "regate.model_baselines") -> None:
    """20 active baselines for `model` (all versions): per metric a critical and a warning one, with the three
    MLflow criteria mixed (threshold, min_absolute_change, min_relative_change; negative = tolerated regression)."""
    rows: list[tuple[Any, ...]] = []
    for name, value, gib in BASELINED:
        worse = -1 if gib else 1
        # critical: a hard threshold 25% worse than the baseline and a tolerated 10% relative regression
        rows.append((model, name, value, gib, value * (1 + worse * 0.25), None, -0.10, "critical"))
        # warning: no worse than the baseline by more than 2% of it, absolute
        rows.append((model, name, value, gib, None, -0.02 * value, None, "warning"))
    with conn.cursor() as cur:
        cur.executemany(
            f"insert into {table} (model_name, metric_name, baseline_value, greater_is_better, threshold,"
            " min_absolute_change, min_relative_change, severity) values (%s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


def create_jobs(conn: Conn, model: str, count: int, *, table: str = "regate.local_training_jobs") -> list[uuid.UUID]:
    """`count` running jobs of `model`, created server-side; returns their ids in creation order."""
    rows = conn.execute(
        f"insert into {table} (model_name, model_version, status, config)"
        " select %s, 'v' || (g %% 3 + 1), 'running', '{\"learning_rate\": 0.0003, \"batch_size\": 32}'::jsonb"
        " from generate_series(1, %s) as g returning id",
        (model, count),
    ).fetchall()
    return [r[0] for r in rows]


# Server-side generation of trainer-like metric rows: the fixed columns plus a metrics jsonb with 5 keys; eval
# columns every 10th step. Final values (at progress 1.0) sit close to the baselines: most checks pass, some warn.
_GENERATE = """
insert into {table} (job_id, step, epoch, train_loss, eval_loss, perplexity, learning_rate, grad_norm, metrics)
select
    j.id,
    g,
    3.0 * g / %(total)s,
    1.28 + 1.2 * (1 - g::float8 / %(total)s) + 0.02 * random(),
    case when g %% 10 = 0 then 1.36 + 1.2 * (1 - g::float8 / %(total)s) end,
    case when g %% 10 = 0 then exp(1.36 + 1.2 * (1 - g::float8 / %(total)s)) end,
    1e-4 + 2e-4 * (1 - g::float8 / %(total)s),
    0.9 + 0.3 * random(),
    jsonb_build_object(
        'accuracy', 0.3 + 0.48 * g / %(total)s + 0.005 * random(),
        'f1', 0.25 + 0.5 * g / %(total)s + 0.005 * random(),
        'tokens_per_sec', 8950 + 100 * random(),
        'gpu_mem_gb', 39.5 + random(),
        'loss_scale', 65536
    )
from unnest(%(jobs)s::uuid[]) as j (id)
cross join generate_series(%(lo)s::bigint, %(hi)s::bigint) as g
"""


def load_metrics(
    conn: Conn,
    jobs: Sequence[uuid.UUID],
    rows_per_job: int,
    *,
    table: str = "regate.local_training_metrics",
    chunk_rows: int = 250_000,
    progress: Callable[[int], None] | None = None,
) -> None:
    """`rows_per_job` metric rows for every job (steps 1..rows_per_job), inserted server-side with
    `insert ... select ... generate_series`, through every trigger of `table`, `chunk_rows` rows per statement."""
    sql = _GENERATE.format(table=table)
    done = 0
    jobs_per_chunk = max(1, chunk_rows // rows_per_job)
    steps_per_chunk = min(rows_per_job, chunk_rows)
    for first in range(0, len(jobs), jobs_per_chunk):
        group = list(jobs[first : first + jobs_per_chunk])
        for lo in range(1, rows_per_job + 1, steps_per_chunk):
            hi = min(rows_per_job, lo + steps_per_chunk - 1)
            conn.execute(sql, {"jobs": group, "lo": lo, "hi": hi, "total": rows_per_job})
            done += len(group) * (hi - lo + 1)
            if progress:
                progress(done)


def trainer_rows(jobs: Sequence[uuid.UUID], count: int, first_step: int) -> list[tuple[Any, ...]]:
    """`count` metric rows as a trainer logs them, round-robin over `jobs`, in METRIC_COLUMNS order."""
    from psycopg.types.json import Jsonb

    rows: list[tuple[Any, ...]] = []
    for i in range(count):
        step = first_step + i // len(jobs)
        evaluated = step % 10 == 0
        eval_loss = 1.4 + 1.0 / (1 + step * 1e-3) if evaluated else None
        rows.append(
            (
                jobs[i % len(jobs)],
                step,
                step / 1000.0,
                1.3 + 1.0 / (1 + step * 1e-3),
                eval_loss,
                math.exp(eval_loss) if eval_loss is not None else None,
                3e-4 * 0.999**step,
                0.9 + (i % 7) * 0.05,
                Jsonb(
                    {
                        "accuracy": 0.5 + (i % 100) / 400,
                        "f1": 0.45 + (i % 90) / 400,
                        "tokens_per_sec": 9000.0 + (i % 50),
                        "gpu_mem_gb": 39.5 + (i % 10) / 10,
                        "loss_scale": 65536,
                    }
                ),
            )
        )
    return rows
