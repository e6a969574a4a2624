"""Release control: what the deployment guard, the alerts outbox and the monitoring views cost.

- deployment: `regate.deploy` of an allowed job (guard: the job's verdict, its policy, overrides) against the same
  insert into a plain table of the same shape, each in autocommit (statement + commit);
- alerts: completing a job whose verdict blocks (an alert row, numbered and notified at commit) against
  completing one that passes (no alert), statement + commit;
- monitoring: `regate.gate_stats` and `regate.blocked_jobs` over a history of verdicts.
"""

from __future__ import annotations

import uuid

from bench.common import Conn, Figure, Sizes, checked, connect, fresh_database, log, median, timed_ms

MODEL = "bench-release"
RESET = (
    "update regate.local_training_jobs set status = 'running', validation_status = null,"
    " validation_result_id = null where id = %s"
)


def _jobs(conn: Conn, count: int, eval_loss: float) -> list[uuid.UUID]:
    rows = conn.execute(
        "insert into regate.local_training_jobs (model_name, config)"
        " select %s, '{\"blockOnCriticalFailures\": true}'::jsonb from generate_series(1, %s) returning id",
        (MODEL, count),
    ).fetchall()
    jobs = [r[0] for r in rows]
    conn.execute(
        "insert into regate.local_training_metrics (job_id, step, eval_loss) select j, 1, %s from unnest(%s::uuid[]) j",
        (eval_loss, jobs),
    )
    return jobs


def _complete(conn: Conn, job: uuid.UUID) -> float:
    return timed_ms(conn.execute, "update regate.local_training_jobs set status = 'completed' where id = %s", (job,))


def run(maintenance: str, sizes: Sizes) -> list[Figure]:
    repeat = max(21, sizes.completion_repeat * 3)
    history = 2_000 if sizes.quick else 20_000
    with fresh_database(maintenance) as dsn, connect(dsn) as conn:
        conn.execute(
            "select regate.create_baseline(model_name => %s, metric_name => 'eval_loss', baseline_value => 0.4,"
            " greater_is_better => false, threshold => 0.5)",
            (MODEL,),
        )
        # alerts: a first blocked verdict of the model (first_failure) is paid once, outside the timing
        first = _jobs(conn, 1, 0.9)[0]
        _complete(conn, first)
        passing, blocking = _jobs(conn, repeat, 0.3), _jobs(conn, repeat, 0.9)
        passed_ms, blocked_ms = [], []
        for good, bad in zip(passing, blocking, strict=True):
            passed_ms.append(_complete(conn, good))
            blocked_ms.append(_complete(conn, bad))
        alerts = conn.execute("select count(*) from regate.alerts where id is not null").fetchone()
        assert alerts is not None and alerts[0] == repeat + 2, alerts

        # deployments: guarded against a plain table of the same shape
        conn.execute("create table public.plain_deployments (like regate.deployments including all)")
        guarded_ms, plain_ms = [], []
        for job in passing:
            guarded_ms.append(timed_ms(conn.execute, "select regate.deploy(%s, 'production')", (job,)))
            plain_ms.append(
                timed_ms(
                    conn.execute,
                    "insert into public.plain_deployments (job_id, model_name, environment)"
                    " values (%s, %s, 'production')",
                    (job, MODEL),
                )
            )

        # monitoring over a history of verdicts (half of them blocked)
        log(f"release: building a history of {history} verdicts")
        more = _jobs(conn, history // 2, 0.3) + _jobs(conn, history // 2, 0.9)
        conn.execute(
            "update regate.local_training_jobs set status = 'completed' where id = any(%s)",
            (more,),
        )
        conn.execute("analyze")
        stats_ms = median([timed_ms(conn.execute, "select * from regate.gate_stats") for _ in range(5)])
        blocked_jobs_ms = median([timed_ms(conn.execute, "select count(*) from regate.blocked_jobs") for _ in range(3)])
    passed, blocked = median(passed_ms), median(blocked_ms)
    guarded, plain = median(guarded_ms), median(plain_ms)
    return [
        Figure("release: completion that passes (statement + commit)", passed, "ms"),
        Figure("release: completion that blocks, with its alert (statement + commit)", blocked, "ms"),
        checked("release: blocked with alert / passed", blocked / passed, "ratio", "<= 1.5"),
        Figure("release: deploy through the guard (statement + commit)", guarded, "ms"),
        Figure("release: insert into a plain deployments table (statement + commit)", plain, "ms"),
        checked("release: guarded deploy / plain insert", guarded / plain, "ratio", "<= 3"),
        Figure(f"release: gate_stats over {history + 2 * repeat + 1} verdicts", stats_ms, "ms"),
        Figure(f"release: blocked_jobs over {history // 2 + repeat + 1} blocked jobs", blocked_jobs_ms, "ms"),
    ]
