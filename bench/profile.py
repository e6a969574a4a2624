"""Where the time goes: a profile of the completion trigger and of the ingest trigger, for whoever tunes the SQL.

Run with `.venv/bin/python -m bench.profile` (REGATE_BENCH_DSN as for the benchmarks; a superuser, for
`track_functions` and `set session_replication_role = replica`). In a fresh database it prints:

* completion: time per completion of every regate function (pg_stat_user_functions with
  `track_functions = 'all'`: calls, total and self microseconds) and EXPLAIN ANALYZE of one gated and one
  ungated completing UPDATE (the trigger times);
* ingest: microseconds per row into regate's table and into a plain copy for COPY, executemany and single-row
  inserts, the regate functions' time per row, and the rows regate_internal.metric_spans and metric_names gained
  (a name new to its job's span of 1024 steps: rare) and their size afterwards.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import psycopg

from bench import completion, ingest
from bench.common import (
    Conn,
    connect,
    create_baselines,
    create_jobs,
    fresh_database,
    load_metrics,
    median,
    server,
    timed_ms,
    trainer_rows,
)


def flush_stats(conn: Conn) -> None:
    """Make this session's pending statistics visible to its next read of the pg_stat views."""
    conn.execute("select pg_stat_force_next_flush()")  # PostgreSQL 15+
    conn.execute("select 1")
    time.sleep(1.1)  # pending counters are flushed at most once a second
    conn.execute("select pg_stat_clear_snapshot()")


def function_stats(conn: Conn, per: int, unit: str) -> None:
    """Print pg_stat_user_functions divided by `per` (completions, rows), then reset the counters."""
    flush_stats(conn)
    rows = conn.execute(
        "select funcname, calls, total_time, self_time from pg_stat_user_functions"
        " where schemaname in ('regate', 'regate_internal') and calls > 0 order by self_time desc"
    ).fetchall()
    print(f"    {'function':32} {'calls/' + unit:>12} {'total us/' + unit:>16} {'self us/' + unit:>16}")
    for name, calls, total, self_ in rows:
        print(f"    {name:32} {calls / per:12.3f} {total * 1000 / per:16.2f} {self_ * 1000 / per:16.2f}")
    conn.execute("select pg_stat_reset()")


def explain(conn: Conn, sql: str, params: Any = None) -> None:
    with conn.transaction():
        for (line,) in conn.execute(f"explain (analyze, buffers, costs off) {sql}", params).fetchall():
            print(f"      {line}")
        raise psycopg.Rollback()


def profile_completion(dsn: str, rows: int, repeat: int) -> None:
    print(f"completion: one job, {rows:,} metric rows, 20 baselines; {repeat} gated completions (statement only)")
    with connect(dsn) as conn:
        create_baselines(conn, completion.MODEL)
        (job,) = create_jobs(conn, completion.MODEL, 1)
        load_metrics(conn, [job], rows)
    with connect(dsn) as gated, connect(dsn, gated=False) as ungated:
        for conn in (gated, ungated):
            for _ in range(5):
                completion.complete_once(conn, job, False)
        gated.execute("set track_functions = 'all'")
        gated.execute("select pg_stat_reset()")
        ms = [completion.complete_once(gated, job, False) for _ in range(repeat)]
        gated.execute("set track_functions = 'none'")
        print(f"  gated statement median {median(ms):.3f} ms (with function tracking on); per completion:")
        function_stats(gated, repeat, "completion")
        um = [completion.complete_once(ungated, job, False) for _ in range(repeat)]
        gm = [completion.complete_once(gated, job, False) for _ in range(repeat)]
        print(f"  without tracking: gated {median(gm):.3f} ms, ungated {median(um):.3f} ms (statement medians)")
        for name, conn in (("gated", gated), ("ungated", ungated)):
            conn.execute(completion.RESET, (job,))
            print(f"  EXPLAIN ANALYZE, {name}:")
            explain(conn, completion.COMPLETE, (job,))


def profile_ingest(dsn: str) -> None:
    with connect(dsn) as conn:
        jobs = create_jobs(conn, ingest.MODEL, ingest.JOBS)
        conn.execute(ingest.PLAIN_SCHEMA)
        conn.execute("insert into bench_plain.jobs select * from regate.local_training_jobs")
        step = 1
        cases: list[tuple[str, ingest.Method, int, int]] = [
            ("COPY of 100,000 rows", ingest.copy_rows, 100_000, 100_000),
            ("executemany, 5 x 1,000 rows (one transaction each)", ingest.insert_batch, 1_000, 5_000),
            ("single-row inserts, 1,000 (autocommit)", ingest.insert_single, 1, 1_000),
        ]
        for name, method, unit, count in cases:
            rows = trainer_rows(jobs, count, step)
            step += count
            conn.execute("set track_functions = 'all'")
            conn.execute("select pg_stat_reset()")
            for first in range(0, count, unit):
                method(conn, ingest.REGATE, rows[first : first + unit])
            conn.execute("set track_functions = 'none'")
            print(f"ingest: {name}; regate functions per row:")
            function_stats(conn, count, "row")
            rows = trainer_rows(jobs, count, step)
            step += count
            spent = {ingest.REGATE: 0.0, ingest.PLAIN: 0.0}
            for first in range(0, count, unit):
                for table in spent:
                    spent[table] += timed_ms(method, conn, table, rows[first : first + unit])
            r, p = (spent[t] * 1000 / count for t in (ingest.REGATE, ingest.PLAIN))
            print(f"  us per row: regate {r:.1f}, plain {p:.1f} (regate adds {r - p:.1f})")
        flush_stats(conn)
        for table in ("metric_spans", "metric_names"):
            row = conn.execute(
                "select n_tup_ins, n_tup_upd, pg_size_pretty(pg_total_relation_size(relid))"
                " from pg_stat_user_tables where schemaname = 'regate_internal' and relname = %s",
                (table,),
            ).fetchone()
            if row:
                print(
                    f"  regate_internal.{table}: {row[0]:,} rows inserted, {row[1]:,} updated (always 0);"
                    f" {row[2]} in all"
                )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000, help="metric rows of the completed job (default 1000)")
    parser.add_argument("--repeat", type=int, default=200, help="completions to profile (default 200)")
    args = parser.parse_args()
    # psycopg logs a warning when a pipeline (executemany) ends in an error the bench expects and counts (RG002)
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    with server() as maintenance:
        with fresh_database(maintenance) as dsn:
            profile_completion(dsn, args.rows, args.repeat)
        with fresh_database(maintenance) as dsn:
            profile_ingest(dsn)


if __name__ == "__main__":
    main()
