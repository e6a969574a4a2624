"""2. Against the usual alternative: the same validation done by application code over the connection.

The application path works on plain app-owned tables (schema bench_app, no regate triggers; the same columns,
constraints and indexes as regate's) holding a copy of the same data: one job with 1k metric rows and its
model's 20 baselines. Per job, in one transaction, it does what an app does: lock the job row, fetch the
applicable baselines, fetch the final metrics (the app has only the metrics table: per metric the value of the
latest row), compare in Python with the same rules as regate (threshold / min_absolute_change /
min_relative_change, greater_is_better), insert a result row into a plain results table and update the job.
Two ways to get the final metrics are measured:

* all metrics, like regate.extract_final_metrics: a `distinct on` over a lateral unnest of the fixed columns and
  the metrics jsonb of every row of the job (the figure with the target);
* lean: only the baselined metrics, each found by a backward scan of the (job_id, step, id) index (a lateral
  `order by step desc, id desc limit 1` per metric name).

The in-database path is one UPDATE that fires the gate. Each path is timed twice: including its transaction's
COMMIT (autocommit UPDATE; the app's whole transaction), and excluding BEGIN and COMMIT (the statements alone:
the WAL flush at commit costs the same for both and varies with the disk). Between runs each job goes back to
'running', outside the timed part; the paths take turns going first.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from psycopg.types.json import Jsonb

from bench.common import (
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
    median,
    settle,
    timed_ms,
)

MODEL = "bench-alternative"
COMPLETE_DB = "update regate.local_training_jobs set status = 'completed' where id = %s"
RESET_DB = "update regate.local_training_jobs set status = 'running' where id = %s"

APP_SCHEMA = """
create schema bench_app;
create table bench_app.jobs (like regate.local_training_jobs including all);
create table bench_app.metrics (like regate.local_training_metrics including all);
alter table bench_app.metrics add foreign key (job_id) references bench_app.jobs (id) on delete cascade;
create table bench_app.baselines (like regate.model_baselines including all);
create table bench_app.results (
    id bigint generated always as identity primary key,
    job_id uuid not null references bench_app.jobs (id),
    status text not null,
    blocked boolean not null,
    metrics jsonb,
    checks jsonb not null,
    created_at timestamptz not null default now()
);
create index on bench_app.results (job_id, id);
"""

# The final metrics as an application computes them from the metrics table alone: every metric of the job.
FINAL_METRICS = """
select distinct on (v.name) v.name, v.value
from bench_app.metrics as m
cross join lateral (
    values
    ('epoch', m.epoch), ('train_loss', m.train_loss), ('eval_loss', m.eval_loss),
    ('perplexity', m.perplexity), ('learning_rate', m.learning_rate), ('grad_norm', m.grad_norm)
    union all
    select e.key, case jsonb_typeof(e.value)
        when 'number' then e.value::float8 when 'string' then (e.value #>> '{}')::float8 end
    from jsonb_each(m.metrics) as e
) as v (name, value)
where m.job_id = %s and v.value is not null
order by v.name, m.step desc, m.id desc
"""

# A leaner application: only the baselined metrics, each the latest non-NULL value found by a backward scan of
# the (job_id, step, id) index.
LATEST_PER_METRIC = """
select n.name, x.value
from unnest(%s::text[]) as n (name)
cross join lateral (
    select v.value
    from bench_app.metrics as m
    cross join lateral (
        select case n.name
            when 'epoch' then m.epoch when 'train_loss' then m.train_loss when 'eval_loss' then m.eval_loss
            when 'perplexity' then m.perplexity when 'learning_rate' then m.learning_rate
            when 'grad_norm' then m.grad_norm
            else case jsonb_typeof(m.metrics -> n.name)
                when 'number' then (m.metrics -> n.name)::float8 when 'string' then (m.metrics ->> n.name)::float8 end
        end as value
    ) as v
    where m.job_id = %s and v.value is not null
    order by m.step desc, m.id desc
    limit 1
) as x
"""

# The applicable baselines: active, of the model, for its version or all versions (the specific one wins).
BASELINES = """
select distinct on (b.metric_name, b.severity)
    b.id, b.metric_name, b.severity, b.baseline_value, b.greater_is_better, b.threshold,
    b.min_absolute_change, b.min_relative_change
from bench_app.baselines as b
where b.is_active and b.model_name = %s and (b.model_version = %s or b.model_version is null)
order by b.metric_name, b.severity, b.model_version nulls last
"""


@dataclass(frozen=True)
class Baseline:
    id: int
    metric_name: str
    severity: str
    baseline_value: float | None
    greater_is_better: bool
    threshold: float | None
    min_absolute_change: float | None
    min_relative_change: float | None


def evaluate(value: float | None, b: Baseline) -> tuple[str, list[str]]:
    """One check with regate's rules (MLflow MetricThreshold, negative change = tolerated regression)."""
    if value is None:
        return "missing", []
    if math.isnan(value) or math.isinf(value):
        return "invalid", []
    failed: list[str] = []
    gib = b.greater_is_better
    if b.threshold is not None and not (value >= b.threshold if gib else value <= b.threshold):
        failed.append("threshold")
    base = b.baseline_value if b.baseline_value is not None else math.nan
    if b.min_absolute_change is not None:
        bound = base + b.min_absolute_change if gib else base - b.min_absolute_change
        if not (value >= bound if gib else value <= bound):
            failed.append("min_absolute_change")
    if b.min_relative_change is not None:
        if base == 0:
            if b.min_relative_change >= 0:
                ok = value >= 1e-10 if gib else value <= -1e-10
            else:
                ok = value >= 0 if gib else value <= 0
        else:
            change = (value - base) / abs(base) if gib else (base - value) / abs(base)
            ok = change >= b.min_relative_change
        if not ok:
            failed.append("min_relative_change")
    return ("failed" if failed else "passed"), failed


def app_complete(conn: Conn, job: uuid.UUID, lean: bool = False) -> str:
    """The application's completion of one job in one transaction; returns the verdict's status."""
    with conn.transaction():
        return app_validate(conn, job, lean)


def app_validate(conn: Conn, job: uuid.UUID, lean: bool = False) -> str:
    """The statements of the application's completion (the caller owns the transaction). `lean` fetches only the
    latest values of the baselined metrics (LATEST_PER_METRIC) instead of all final metrics (FINAL_METRICS)."""
    row = conn.execute(
        "select model_name, model_version, config from bench_app.jobs where id = %s for update", (job,)
    ).fetchone()
    assert row is not None
    model, version, config = row
    baselines = [Baseline(*r) for r in conn.execute(BASELINES, (model, version)).fetchall()]
    if lean:
        names = sorted({b.metric_name for b in baselines})
        final: dict[str, float] = dict(conn.execute(LATEST_PER_METRIC, (names, job)).fetchall())
    else:
        final = dict(conn.execute(FINAL_METRICS, (job,)).fetchall())
    checks: list[dict[str, Any]] = []
    for b in baselines:
        outcome, failed = evaluate(final.get(b.metric_name), b)
        checks.append(
            {
                "baseline_id": b.id,
                "metric_name": b.metric_name,
                "severity": b.severity,
                "outcome": outcome,
                "failed_criteria": failed,
                "observed": final.get(b.metric_name),
            }
        )
    if not checks:
        status = "no_baselines"
    elif any(c["severity"] == "critical" and c["outcome"] != "passed" for c in checks):
        status = "failed"
    elif any(c["severity"] == "warning" and c["outcome"] != "passed" for c in checks):
        status = "warning"
    else:
        status = "passed"
    blocked = status == "failed" and bool(config.get("blockOnCriticalFailures", False))
    conn.execute(
        "insert into bench_app.results (job_id, status, blocked, metrics, checks) values (%s, %s, %s, %s, %s)",
        (job, status, blocked, Jsonb(final), Jsonb(checks)),
    )
    conn.execute(
        "update bench_app.jobs set status = 'completed', validation_status = %s, completed_at = now(),"
        " updated_at = now() where id = %s",
        ("blocked" if blocked else status, job),
    )
    return status


def same_verdict(conn: Conn, job: uuid.UUID) -> None:
    """The application reproduced regate's verdict: the same outcome and failed criteria for every check."""
    row = conn.execute(
        "select r.status, r.checks from regate.validation_results as r where r.job_id = %s order by r.id desc limit 1",
        (job,),
    ).fetchone()
    app = conn.execute(
        "select status, checks from bench_app.results where job_id = %s order by id desc limit 1", (job,)
    ).fetchone()
    assert row is not None and app is not None

    def outcomes(checks: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[str, list[str]]]:
        return {(c["metric_name"], c["severity"]): (c["outcome"], c["failed_criteria"]) for c in checks}

    assert row[0] == app[0], (row[0], app[0])
    assert outcomes(row[1]) == outcomes(app[1]), (outcomes(row[1]), outcomes(app[1]))


def run(maintenance: str, sizes: Sizes) -> list[Figure]:
    with fresh_database(maintenance) as dsn:
        with connect(dsn) as conn:
            create_baselines(conn, MODEL)
            (job,) = create_jobs(conn, MODEL, 1)
            load_metrics(conn, [job], sizes.alternative_rows)
            conn.execute(APP_SCHEMA)
            conn.execute("insert into bench_app.jobs select * from regate.local_training_jobs where id = %s", (job,))
            conn.execute(
                "insert into bench_app.metrics overriding system value"
                " select * from regate.local_training_metrics where job_id = %s",
                (job,),
            )
            conn.execute(
                "insert into bench_app.baselines overriding system value"
                " select * from regate.model_baselines where model_name = %s",
                (MODEL,),
            )
            settle(conn, ["regate.local_training_metrics", "regate_internal.metric_spans", "bench_app.metrics"])
        # One session runs every path: same backend, same caches, no idle backend to wake up for one of them.
        with connect(dsn) as db:
            app = db

            def in_database(commit: bool) -> float:
                db.execute(RESET_DB, (job,))
                if commit:
                    return timed_ms(db.execute, COMPLETE_DB, (job,))
                with db.transaction():
                    return timed_ms(db.execute, COMPLETE_DB, (job,))

            def application(lean: bool, commit: bool) -> float:
                app.execute("update bench_app.jobs set status = 'running' where id = %s", (job,))
                if commit:
                    return timed_ms(app_complete, app, job, lean)
                with app.transaction():
                    return timed_ms(app_validate, app, job, lean)

            paths: dict[tuple[str, bool], Callable[[], float]] = {}
            for commit in (True, False):
                paths[("db", commit)] = partial(in_database, commit)
                paths[("app", commit)] = partial(application, False, commit)
                paths[("lean", commit)] = partial(application, True, commit)
            for _ in range(5):  # warm up the sessions
                for path in paths.values():
                    path()
            same_verdict(db, job)
            log(f"measuring {sizes.alternative_repeat} completions each way ({sizes.alternative_rows:,} metric rows)")
            times: dict[tuple[str, bool], list[float]] = {key: [] for key in paths}
            order = list(paths)
            for _ in range(sizes.alternative_repeat):
                for key in order:
                    times[key].append(paths[key]())
                order = order[1:] + order[:1]  # rotate, so that no path always goes first
            same_verdict(db, job)
    figures: list[Figure] = []
    for commit, how in ((True, "incl. commit"), (False, "excl. BEGIN/COMMIT")):
        d, a, lean = (median(times[(name, commit)]) for name in ("db", "app", "lean"))
        figures += [
            Figure(f"validation per job, {how}: in-database trigger (1 UPDATE)", d, "ms"),
            Figure(f"validation per job, {how}: app, all final metrics (distinct on)", a, "ms"),
            Figure(f"validation per job, {how}: app (distinct on) / in-database", a / d, "ratio"),
            Figure(f"validation per job, {how}: app, baselined metrics only (lateral)", lean, "ms"),
            Figure(f"validation per job, {how}: app (lateral) / in-database", lean / d, "ratio"),
        ]
    d, a, lean = (median(times[(name, True)]) for name in ("db", "app", "lean"))
    figures += [
        checked("app (all final metrics) / in-database", a / d, "ratio", ">= 5"),
        checked("app (baselined metrics only) / in-database", lean / d, "ratio", ">= 1.0"),
    ]
    return figures
