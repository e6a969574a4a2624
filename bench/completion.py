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
"""

from __future__ import annotations

import uuid

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
FILLER_ROWS_PER_JOB = 10_000

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


def build(conn: Conn, sizes: Sizes) -> list[tuple[int, uuid.UUID]]:
    """The measured jobs (one per size) and the filler; returns (rows, job id) per size."""
    create_baselines(conn, MODEL)
    measured = create_jobs(conn, MODEL, len(sizes.completion_rows))
    for job, rows in zip(measured, sizes.completion_rows, strict=True):
        log(f"loading {rows:,} metric rows for the {label(rows)} job")
        load_metrics(conn, [job], rows)
    filler_rows = sizes.completion_table_rows - sum(sizes.completion_rows)
    filler_jobs = max(0, -(-filler_rows // FILLER_ROWS_PER_JOB))  # rounded up: at least the table's size
    if filler_jobs:
        log(
            f"loading {filler_jobs * FILLER_ROWS_PER_JOB:,} filler rows ({filler_jobs} jobs of {FILLER_ROWS_PER_JOB:,})"
        )
        filler = create_jobs(conn, MODEL, filler_jobs)
        step = max(1, 1_000_000 // FILLER_ROWS_PER_JOB)

        def progress(done: int) -> None:
            if done % 1_000_000 == 0:
                log(f"  {done:,} filler rows")

        for first in range(0, len(filler), step):
            load_metrics(conn, filler[first : first + step], FILLER_ROWS_PER_JOB)
            progress((first + step) * FILLER_ROWS_PER_JOB)
        conn.execute("update regate.local_training_jobs set status = 'completed' where id = any(%s)", (filler,))
    log("vacuum analyze, checkpoint")
    settle(
        conn,
        [
            *(f"regate.{t}" for t in ("local_training_jobs", "local_training_metrics")),
            "regate_internal._metric_candidates",
        ],
    )
    row = conn.execute("select count(*) from regate.local_training_metrics").fetchone()
    assert row is not None and row[0] == sum(sizes.completion_rows) + filler_jobs * FILLER_ROWS_PER_JOB, row
    log(f"{row[0]:,} metric rows in the table")
    return list(zip(sizes.completion_rows, measured, strict=True))


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


def run(maintenance: str, sizes: Sizes) -> list[Figure]:
    with fresh_database(maintenance) as dsn:
        with connect(dsn) as conn:
            jobs = build(conn, sizes)
        with connect(dsn) as gated, connect(dsn, gated=False) as ungated:
            for conn in (gated, ungated):  # warm both sessions' caches (plans, plpgsql functions)
                for _ in range(5):
                    complete_once(conn, jobs[0][1], False)
            # (rows, gated, commit) -> milliseconds
            times: dict[tuple[int, bool, bool], list[float]] = {}
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
    figures: list[Figure] = []
    for rows, _ in jobs:
        for commit, how in ((False, "statement"), (True, "incl. commit")):
            g, u = median(times[(rows, True, commit)]), median(times[(rows, False, commit)])
            figures += [
                Figure(f"completion {label(rows)} rows, {how}: gated", g, "ms"),
                Figure(f"completion {label(rows)} rows, {how}: ungated", u, "ms"),
                checked(f"completion {label(rows)} rows, {how}: gated / ungated", g / u, "ratio", "<= 3"),
            ]
    small, large = jobs[0][0], jobs[-1][0]
    figures.append(
        checked(
            f"completion gated, statement: {label(large)} rows / {label(small)} rows",
            median(times[(large, True, False)]) / median(times[(small, True, False)]),
            "ratio",
            "<= 1.5",
        )
    )
    return figures
