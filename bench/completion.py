"""1. Completion overhead: the latency of the UPDATE that completes one job, gate on versus gate off.

One job per size (e.g. 1k, 100k, 1M metric rows), each with the same 20 applicable baselines, in a table that
holds `completion_table_rows` metric rows in all (filler jobs, completed through the gate as real history would
be). Every measurement times `update regate.local_training_jobs set status = 'completed' where id = ...`, two
ways: the statement alone (inside a transaction whose COMMIT is not timed: the work the gate adds, stable), and
in autocommit (statement + commit, what a client waits for; the commit's WAL flush is the same for both and its
cost depends on the disk, from 0.1 to 4 ms on this machine's virtual disk). Between measurements the job is set
back to 'running', outside the timed part. Gated and ungated runs (a second session with
`set session_replication_role = replica`) alternate, and which of the two goes first alternates too, so that drift
affects both.

Also measured: the floor (issue 12): the same UPDATE plus an INSERT of a verdict row of the same size (the measured
job's own last verdict, sent back as parameters), in the ungated session, nothing computed; and a worst-case job:
as many rows as the largest, plus one metric logged only once, at step 1 (the completion's lookup of that metric's
final value reads at most one span of 1024 steps, however long the job).

Scale (issue 12): in the same database (full mode: 10M metric rows over 10k jobs; quick: 2.1M over 2.1k jobs), the
ingest ratios against a plain table holding the same rows (executemany and COPY, as in bench/ingest.py, whose tables
are nearly empty),
`regate.extract_final_metrics` of 100 completed jobs, and the `gate_stats` view over every verdict.
"""

from __future__ import annotations

import uuid

from bench import ingest
from bench.common import (
    BASELINED,
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

MODEL = "bench-completion"
ROWS_PER_JOB_IN_TABLE = 1_000  # the table holds one job per 1,000 rows: full mode's 10M rows are 10k jobs

COMPLETE = "update regate.local_training_jobs set status = 'completed' where id = %s"
RESET = "update regate.local_training_jobs set status = 'running' where id = %s"


def label(rows: int) -> str:
    if rows >= 1_000_000 and rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows >= 1_000 and rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def complete_once(conn: Conn, job: uuid.UUID, commit: bool) -> float:
    """Reset the job to running (untimed), then time the completing UPDATE: with `commit` in autocommit
    (statement + commit), else inside a transaction whose BEGIN and COMMIT are not timed."""
    conn.execute(RESET, (job,))
    if commit:
        return timed_ms(conn.execute, COMPLETE, (job,))
    with conn.transaction():
        return timed_ms(conn.execute, COMPLETE, (job,))


def build(conn: Conn, sizes: Sizes) -> tuple[list[tuple[int, uuid.UUID]], uuid.UUID]:
    """The measured jobs (one per size), the worst-case job and the filler; returns (rows, job id) per size and the
    worst-case job."""
    create_baselines(conn, MODEL)
    measured = create_jobs(conn, MODEL, len(sizes.completion_rows) + 1)
    worst = measured.pop()
    for job, rows in zip(measured, sizes.completion_rows, strict=True):
        log(f"loading {rows:,} metric rows for the {label(rows)} job")
        load_metrics(conn, [job], rows)
    largest = sizes.completion_rows[-1]
    log(f"loading {largest:,} metric rows for the worst-case job, and its metric logged only at step 1")
    load_metrics(conn, [worst], largest)
    conn.execute(
        "insert into regate.local_training_metrics (job_id, step, metrics) values (%s, 1, '{\"rare_metric\": 0.25}')",
        (worst,),
    )
    filler_rows = sizes.completion_table_rows - sum(sizes.completion_rows) - largest - 1
    # as many filler jobs as make the table hold one job per ROWS_PER_JOB_IN_TABLE rows, sharing the rows left
    filler_target = max(1, sizes.completion_table_rows // ROWS_PER_JOB_IN_TABLE - len(measured) - 1)
    per_job = max(1, filler_rows // filler_target)
    filler_jobs = max(0, -(-filler_rows // per_job))  # rounded up: at least the table's size
    if filler_jobs:
        log(f"loading {filler_jobs * per_job:,} filler rows ({filler_jobs:,} jobs of {per_job:,})")
        filler = create_jobs(conn, MODEL, filler_jobs)
        step = max(1, 1_000_000 // per_job)

        def progress(done: int) -> None:  # about every 1M rows
            log(f"  {min(done, filler_jobs * per_job):,} filler rows")

        for first in range(0, len(filler), step):
            load_metrics(conn, filler[first : first + step], per_job)
            progress((first + step) * per_job)
        conn.execute("update regate.local_training_jobs set status = 'completed' where id = any(%s)", (filler,))
    log("vacuum analyze, checkpoint")
    settle(
        conn,
        [
            *(f"regate.{t}" for t in ("local_training_jobs", "local_training_metrics")),
            "regate_internal.metric_spans",
            "regate_internal.metric_names",
        ],
    )
    row = conn.execute("select count(*), count(distinct job_id) from regate.local_training_metrics").fetchone()
    expected = sum(sizes.completion_rows) + largest + 1 + filler_jobs * per_job
    assert row is not None and row[0] == expected, row
    log(f"{row[0]:,} metric rows of {row[1]:,} jobs in the table")
    return list(zip(sizes.completion_rows, measured, strict=True)), worst


def sanity(conn: Conn, job: uuid.UUID, gated: bool) -> None:
    """The measured statement did what it should: a verdict with 20 checks (gated), or a completed job whose gate
    columns no trigger touched (ungated: session_replication_role = replica fires none)."""
    row = conn.execute(
        "select j.validation_status, jsonb_array_length(r.checks), j.status from regate.local_training_jobs as j"
        " left join regate.validation_results as r on r.id = j.validation_result_id where j.id = %s",
        (job,),
    ).fetchone()
    assert row is not None
    if gated:
        assert row[0] in ("passed", "warning", "failed") and row[1] == 2 * len(BASELINED), row
    else:
        assert row[2] == "completed", row


VERDICT_COLUMNS = """
select string_agg(quote_ident(a.attname), ', ' order by a.attnum)
from pg_attribute as a
where a.attrelid = 'regate.validation_results'::regclass and a.attnum > 0 and not a.attisdropped
    and a.attidentity = ''
"""


def floor_statement(conn: Conn, job: uuid.UUID) -> tuple[str, tuple[object, ...]]:
    """The floor: the completing UPDATE and, in the same statement, an INSERT of the job's last verdict row again
    (every column but the identity, as parameters): what the gate writes, with nothing computed."""
    row = conn.execute(VERDICT_COLUMNS).fetchone()
    assert row is not None
    columns: str = row[0]
    verdict = conn.execute(
        f"select {columns} from regate.validation_results where job_id = %s order by id desc limit 1", (job,)
    ).fetchone()
    assert verdict is not None
    from psycopg.types.json import Jsonb

    params = tuple(Jsonb(v) if isinstance(v, dict | list) else v for v in verdict)
    placeholders = ", ".join(["%s"] * len(params))
    sql = (
        "with u as (update regate.local_training_jobs set status = 'completed' where id = %s returning id)"
        f" insert into regate.validation_results ({columns}) select {placeholders} from u"
    )
    return sql, (job, *params)


def floor_once(conn: Conn, job: uuid.UUID, statement: tuple[str, tuple[object, ...]]) -> float:
    """Reset the job (untimed), then time the floor statement inside a transaction (BEGIN/COMMIT untimed)."""
    conn.execute(RESET, (job,))
    with conn.transaction():
        return timed_ms(conn.execute, statement[0], statement[1])


def scale(conn: Conn, sizes: Sizes) -> list[Figure]:
    """Ingest, final-metric reads and gate_stats in the big table (see the module docstring)."""
    row = conn.execute(
        "select (select count(*) from regate.local_training_metrics), (select count(*) from regate.local_training_jobs)"
    ).fetchone()
    assert row is not None
    what = f"scale ({row[0] / 1e6:.1f}M metric rows, {row[1]:,} jobs)"
    log(f"{what}: ingest against a plain table, final metrics, gate_stats")
    running = create_jobs(conn, "bench-scale", ingest.JOBS)
    # The plain table gets the same rows (and its jobs table the same jobs): both sides insert into a table of this
    # size, with indexes of the same depth.
    conn.execute(ingest.PLAIN_SCHEMA)
    conn.execute("insert into bench_plain.jobs select * from regate.local_training_jobs")
    conn.execute("insert into bench_plain.metrics overriding system value select * from regate.local_training_metrics")
    conn.execute(
        "select setval(pg_get_serial_sequence('bench_plain.metrics', 'id'), (select max(id) from bench_plain.metrics))"
    )
    settle(conn, ["bench_plain.jobs", "bench_plain.metrics"])
    step = ingest.measure(conn, running, ingest.insert_batch, 100, 200, 2, 1)[2]  # warm up
    figures: list[Figure] = []
    for short, method, unit, count in (
        ("executemany", ingest.insert_batch, sizes.ingest_batch_size, sizes.ingest_batch_rows),
        ("copy", ingest.copy_rows, sizes.ingest_copy_rows, sizes.ingest_copy_rows),
    ):
        regate_rate, plain_rate, step = ingest.measure(conn, running, method, unit, count, sizes.ingest_repeat, step)
        figures.append(Figure(f"{what}: ingest {short} / plain", regate_rate / plain_rate, "ratio"))
    done = [
        r[0]
        for r in conn.execute(
            "select id from regate.local_training_jobs where status = 'completed' order by id limit 100"
        ).fetchall()
    ]
    for _ in range(2):  # warm
        conn.execute("select regate.extract_final_metrics(id) from unnest(%s::uuid[]) as j (id)", (done,))
    finals = median(
        [
            timed_ms(conn.execute, "select regate.extract_final_metrics(id) from unnest(%s::uuid[]) as j (id)", (done,))
            / len(done)
            for _ in range(5)
        ]
    )
    conn.execute("select * from regate.gate_stats")
    stats = median([timed_ms(conn.execute, "select * from regate.gate_stats") for _ in range(5)])
    verdicts = conn.execute("select count(*) from regate.validation_results").fetchone()
    assert verdicts is not None
    figures += [
        Figure(f"{what}: extract_final_metrics of a completed job", finals, "ms"),
        Figure(f"{what}: gate_stats over {verdicts[0]:,} verdicts", stats, "ms"),
    ]
    return figures


def run(maintenance: str, sizes: Sizes) -> list[Figure]:
    with fresh_database(maintenance) as dsn:
        with connect(dsn) as conn:
            jobs, worst = build(conn, sizes)
        with connect(dsn) as gated, connect(dsn, gated=False) as ungated:
            for conn in (gated, ungated):  # warm both sessions' caches (plans, plpgsql functions)
                for _ in range(5):
                    complete_once(conn, jobs[0][1], False)
            complete_once(gated, worst, False)
            sanity(gated, worst, True)
            floor = floor_statement(gated, jobs[0][1])
            floor_once(ungated, jobs[0][1], floor)
            # (rows, gated, commit) -> milliseconds
            times: dict[tuple[int, bool, bool], list[float]] = {}
            floors: list[float] = []
            worsts: list[float] = []
            log(f"measuring {sizes.completion_repeat} gated and ungated completions per size, each two ways")
            for rep in range(sizes.completion_repeat):
                for rows, job in jobs:
                    order = (True, False) if rep % 2 == 0 else (False, True)
                    for commit in (False, True):
                        for is_gated in order:
                            ms = complete_once(gated if is_gated else ungated, job, commit)
                            times.setdefault((rows, is_gated, commit), []).append(ms)
                            if rep == 0:
                                sanity(gated, job, is_gated)
                floors.append(floor_once(ungated, jobs[0][1], floor))
                worsts.append(complete_once(gated, worst, False))
            scaled = scale(gated, sizes)
    figures: list[Figure] = []
    for rows, _ in jobs:
        for commit, how in ((False, "statement"), (True, "incl. commit")):
            g, u = median(times[(rows, True, commit)]), median(times[(rows, False, commit)])
            figures += [
                Figure(f"completion {label(rows)} rows, {how}: gated", g, "ms"),
                Figure(f"completion {label(rows)} rows, {how}: ungated", u, "ms"),
                Figure(f"completion {label(rows)} rows, {how}: gated / ungated", g / u, "ratio"),
            ]
    small, large = jobs[0][0], jobs[-1][0]
    gated_small, gated_large = median(times[(small, True, False)]), median(times[(large, True, False)])
    floor_ms, worst_ms = median(floors), median(worsts)
    figures += [
        Figure(
            f"completion {label(small)} rows, statement: floor (UPDATE + INSERT of the same verdict row)",
            floor_ms,
            "ms",
        ),
        Figure(f"completion {label(large)} rows + one metric logged only at step 1, statement: gated", worst_ms, "ms"),
        checked("completion gated / floor", gated_small / floor_ms, "ratio", "<= 2.5"),
        checked(
            f"completion gated {label(large)} rows / {label(small)} rows", gated_large / gated_small, "ratio", "<= 1.5"
        ),
        checked("completion worst-case metric / regular", worst_ms / gated_large, "ratio", "<= 3"),
    ]
    return figures + scaled
