"""4. Bulk: one statement that completes `bulk_jobs` jobs (each with metric rows and the model's 20 baselines).

The statement is `update regate.local_training_jobs set status = 'completed' where model_name = ... and status =
'running'` in autocommit. Afterwards every job must have exactly one new verdict (counted, asserted) and its
validation_status and validation_result_id set. For context the same statement runs with the gate off; gated and
ungated runs alternate, and the jobs go back to 'running' between runs (untimed).
"""

from __future__ import annotations

from bench.common import (
    BASELINED,
    Conn,
    Figure,
    Sizes,
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

MODEL = "bench-bulk"


def complete_all(conn: Conn, jobs: int, gated: bool) -> float:
    """Complete every job in one statement and check the verdicts; returns the statement's milliseconds."""
    conn.execute("update regate.local_training_jobs set status = 'running' where model_name = %s", (MODEL,))
    row = conn.execute("select coalesce(max(id), 0) from regate.validation_results").fetchone()
    assert row is not None
    last_result = row[0]
    updated = 0

    def statement() -> None:
        nonlocal updated
        cur = conn.execute(
            "update regate.local_training_jobs set status = 'completed' where model_name = %s and status = 'running'",
            (MODEL,),
        )
        updated = cur.rowcount

    ms = timed_ms(statement)
    assert updated == jobs, (updated, jobs)
    check = conn.execute(
        """
        select
            count(*) filter (where r.verdicts = 1),
            count(*) filter (where r.verdicts <> 1),
            (select count(*) from regate.local_training_jobs as j
             where j.model_name = %(model)s and j.validation_status is null),
            (select count(*) from regate.local_training_jobs as j
             join regate.validation_results as v on v.id = j.validation_result_id
             where j.model_name = %(model)s and v.id > %(last)s and jsonb_array_length(v.checks) = %(checks)s)
        from (
            select v.job_id, count(*) as verdicts from regate.validation_results as v
            where v.id > %(last)s group by v.job_id
        ) as r
        """,
        {"model": MODEL, "last": last_result, "checks": 2 * len(BASELINED)},
    ).fetchone()
    assert check is not None
    one, more, unset, linked = check
    if gated:
        assert (one, more, unset, linked) == (jobs, 0, 0, jobs), (one, more, unset, linked)
    else:
        assert (one, more, unset) == (0, 0, 0), (one, more, unset)
    return ms


def run(maintenance: str, sizes: Sizes) -> list[Figure]:
    n = sizes.bulk_jobs
    with fresh_database(maintenance) as dsn:
        with connect(dsn) as conn:
            create_baselines(conn, MODEL)
            jobs = create_jobs(conn, MODEL, n)
            log(f"bulk: {n:,} jobs x {sizes.bulk_rows_per_job} metric rows")
            load_metrics(conn, jobs, sizes.bulk_rows_per_job)
            settle(
                conn,
                [
                    *(f"regate.{t}" for t in ("local_training_jobs", "local_training_metrics")),
                    "regate_internal.metric_spans",
                ],
            )
        with connect(dsn) as gated, connect(dsn, gated=False) as ungated:
            gated_ms: list[float] = []
            ungated_ms: list[float] = []
            for rep in range(sizes.bulk_repeat):
                order = (True, False) if rep % 2 == 0 else (False, True)
                for is_gated in order:
                    ms = complete_all(gated if is_gated else ungated, n, is_gated)
                    (gated_ms if is_gated else ungated_ms).append(ms)
                    log(f"bulk {'gated' if is_gated else 'ungated'}: {ms / 1000:.2f} s")
    g, u = median(gated_ms), median(ungated_ms)
    return [
        Figure(f"bulk: completing {n:,} jobs in one statement, gated", n / (g / 1000), "jobs/s"),
        Figure(f"bulk: completing {n:,} jobs in one statement, ungated", n / (u / 1000), "jobs/s"),
        Figure("bulk: gated time per job", g / n, "ms"),
        Figure("bulk: gated / ungated time", g / u, "ratio"),
    ]
