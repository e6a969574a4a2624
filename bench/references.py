"""Baselines with a resolved reference: what a completion costs with one champion baseline and with one rolling
baseline over a window of 20 accepted runs, against the same completion with a fixed baseline (statement +
commit, the job reset between runs, medians)."""

from __future__ import annotations

import uuid

from bench.common import Conn, Figure, Sizes, checked, connect, fresh_database, median, timed_ms

MODELS = {
    "fixed": "reference => 'fixed', baseline_value => 0.9",
    "champion": "reference => 'champion', environment => 'production'",
    "rolling": "reference => 'rolling', window_size => 20, min_runs => 20",
}
RESET = "update regate.local_training_jobs set status = 'running' where id = %s"
COMPLETE = "update regate.local_training_jobs set status = 'completed' where id = %s"


def _job(conn: Conn, model: str, accuracy: float) -> uuid.UUID:
    row = conn.execute(
        "insert into regate.local_training_jobs (model_name) values (%s) returning id", (model,)
    ).fetchone()
    assert row is not None
    conn.execute(
        "insert into regate.local_training_metrics (job_id, step, metrics) values (%s, 1, jsonb_build_object("
        "'accuracy', %s::float8))",
        (row[0], accuracy),
    )
    return uuid.UUID(str(row[0]))


def run(maintenance: str, sizes: Sizes) -> list[Figure]:
    repeat = max(51, sizes.completion_repeat * 5)
    timings: dict[str, float] = {}
    with fresh_database(maintenance) as dsn, connect(dsn) as conn:
        jobs: dict[str, uuid.UUID] = {}
        for kind, reference in MODELS.items():
            model = f"bench-{kind}"
            conn.execute(
                "select regate.create_baseline(model_name => %s, metric_name => 'accuracy', greater_is_better => true,"
                f" min_relative_change => -0.02, {reference})",
                (model,),
            )
            # 20 accepted runs of every model, one of them the champion in production
            history = [_job(conn, model, 0.9 + i / 1000) for i in range(20)]
            for job in history:
                conn.execute(COMPLETE, (job,))
            conn.execute("select regate.deploy(%s, 'production')", (history[-1],))
            jobs[kind] = _job(conn, model, 0.91)
        conn.execute("analyze")
        samples: dict[str, list[float]] = {kind: [] for kind in MODELS}
        for _ in range(repeat):
            for kind, job in jobs.items():
                conn.execute(RESET, (job,))
                samples[kind].append(timed_ms(conn.execute, COMPLETE, (job,)))
        for kind, job in jobs.items():
            row = conn.execute(
                "select r.checks -> 0 ->> 'outcome' from regate.local_training_jobs j"
                " join regate.validation_results r on r.id = j.validation_result_id where j.id = %s",
                (job,),
            ).fetchone()
            assert row == ("passed",), (kind, row)
        timings = {kind: median(values) for kind, values in samples.items()}
    return [
        Figure("references: completion, 1 fixed baseline (statement + commit)", timings["fixed"], "ms"),
        Figure("references: completion, 1 champion baseline", timings["champion"], "ms"),
        Figure("references: completion, 1 rolling baseline, window 20", timings["rolling"], "ms"),
        checked("references: champion / fixed", timings["champion"] / timings["fixed"], "ratio", "<= 1.5"),
        checked("references: rolling (window 20) / fixed", timings["rolling"] / timings["fixed"], "ratio", "<= 2"),
    ]
