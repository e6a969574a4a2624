"""3. Ingest: metric rows per second into regate.local_training_metrics versus a plain table.

The plain table (schema bench_plain) is `like regate.local_training_metrics including all` (same columns,
defaults, identity, checks and indexes) with a plain FK to a plain jobs table (`like regate.local_training_jobs
including all`) holding the same job ids, so both sides pay an FK check; it has no regate triggers. Rows look like
trainer logs: round-robin over 8 running jobs, the fixed columns (eval columns every 10th step) plus a metrics jsonb
with 5 keys. Three methods: single-row INSERTs in autocommit, `executemany` of `ingest_batch_size` rows per call
(one transaction per call), and COPY (one statement). Every trial inserts the same rows into both tables, taking
turns row by row (single), call by call (executemany) or trial by trial (COPY); the figure is the ratio of the
median rows per second.

Two more copies of the plain table measure what any trigger costs, for information: one with an empty
statement-level trigger of the kind regate-db needs (AFTER INSERT, a transition table, PL/pgSQL, SECURITY DEFINER,
pinned search_path), one whose trigger runs a single query over the new rows. They bound what a PL/pgSQL ingest
trigger can reach against the >= 0.8 targets (docs/performance.md).

Also for information, what real clients get. The methods above run as a superuser, which row-level security
does not apply to (and only a superuser or a BYPASSRLS role may COPY into a table with row-level security at all).
So: the statement regate_db.Client sends (`ingest_batch_size` rows per INSERT, the columns as arrays unnested
server-side; `ingest_copy_rows` rows per trial, one transaction per statement), as the superuser and as a tenant
(a login granted regate_writer, whose jobs these are; the plain tables granted to it, without row-level security),
and executemany as that tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import conninfo

from bench.common import (
    METRIC_COLUMNS,
    Conn,
    Figure,
    Sizes,
    checked,
    connect,
    create_jobs,
    fresh_database,
    log,
    median,
    timed_ms,
    trainer_rows,
)
from regate_db import client

MODEL = "bench-ingest"
JOBS = 8
REGATE = "regate.local_training_metrics"
PLAIN = "bench_plain.metrics"

PLAIN_SCHEMA = """
create schema bench_plain;
create table bench_plain.jobs (like regate.local_training_jobs including all);
create table bench_plain.metrics (like regate.local_training_metrics including all);
alter table bench_plain.metrics add foreign key (job_id) references bench_plain.jobs (id) on delete cascade;
"""

# The trigger floors: the plain table again, with the shell of an ingest trigger and nothing (or one query) in it.
EMPTY_TRIGGER = "bench_plain.metrics_empty_trigger"
ONE_QUERY = "bench_plain.metrics_one_query"
FLOOR_SCHEMA = f"""
create table {EMPTY_TRIGGER} (like regate.local_training_metrics including all);
alter table {EMPTY_TRIGGER} add foreign key (job_id) references bench_plain.jobs (id) on delete cascade;
create function bench_plain.empty_trigger() returns trigger language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$ begin return null; end $$;
create trigger ingest after insert on {EMPTY_TRIGGER} referencing new table as new_rows
for each statement execute function bench_plain.empty_trigger();
create table {ONE_QUERY} (like regate.local_training_metrics including all);
alter table {ONE_QUERY} add foreign key (job_id) references bench_plain.jobs (id) on delete cascade;
create function bench_plain.one_query() returns trigger language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
begin
    if exists (select from new_rows as n where n.job_id is null) then
        raise exception 'a row without job';
    end if;
    return null;
end $$;
create trigger ingest after insert on {ONE_QUERY} referencing new table as new_rows
for each statement execute function bench_plain.one_query();
"""

COLUMNS = ", ".join(METRIC_COLUMNS)
PLACEHOLDERS = ", ".join(["%s"] * len(METRIC_COLUMNS))

Rows = Sequence[tuple[Any, ...]]


def insert_single(conn: Conn, table: str, rows: Rows) -> None:
    """One INSERT per row, each its own transaction (autocommit)."""
    sql = f"insert into {table} ({COLUMNS}) values ({PLACEHOLDERS})"
    for row in rows:
        conn.execute(sql, row)


def insert_batch(conn: Conn, table: str, rows: Rows) -> None:
    """One executemany call (psycopg pipelines one INSERT per row) in one transaction."""
    sql = f"insert into {table} ({COLUMNS}) values ({PLACEHOLDERS})"
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(sql, rows)


# The statement regate_db.Client.flush sends, into either table.
CLIENT_INSERT = client._INSERT_SQL
assert client._ROW_COLUMNS == METRIC_COLUMNS and CLIENT_INSERT.startswith(f"insert into {REGATE} ")


def insert_client_batches(conn: Conn, table: str, rows: Rows, batch: int = 1_000) -> None:
    """regate_db.Client's statement: `batch` rows per INSERT as column arrays, each its own transaction
    (autocommit, as Client.flush outside a transaction)."""
    sql = CLIENT_INSERT.replace(REGATE, table, 1)
    for first in range(0, len(rows), batch):
        conn.execute(sql, [list(column) for column in zip(*rows[first : first + batch], strict=True)])


def copy_rows(conn: Conn, table: str, rows: Rows) -> None:
    """One COPY statement (its own transaction)."""
    with conn.cursor() as cur, cur.copy(f"copy {table} ({COLUMNS}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)


Method = Callable[[Conn, str, Rows], None]


def measure(
    conn: Conn, jobs: list[uuid.UUID], method: Method, unit: int, count: int, repeat: int, step: int
) -> tuple[float, float, int]:
    """Median rows per second into regate's table and into the plain one; returns them and the next free step."""
    rates, step = measure_tables(conn, jobs, method, unit, count, repeat, step, (REGATE, PLAIN))
    return rates[REGATE], rates[PLAIN], step


def measure_tables(
    conn: Conn,
    jobs: list[uuid.UUID],
    method: Method,
    unit: int,
    count: int,
    repeat: int,
    step: int,
    tables: Sequence[str],
) -> tuple[dict[str, float], int]:
    """Median rows per second into each table; returns them and the next free step.

    A trial sends `count` rows to each table in units of `unit` rows (one call of `method`); the tables take
    turns unit by unit (and the order reverses every other unit), so that drift, e.g. in the disk's flush latency,
    hits all alike."""
    rates: dict[str, list[float]] = {table: [] for table in tables}
    for rep in range(repeat):
        rows = trainer_rows(jobs, count, step)
        step += count // len(jobs) + 1
        spent = dict.fromkeys(tables, 0.0)
        for n, first in enumerate(range(0, count, unit)):
            chunk = rows[first : first + unit]
            for table in tables if (rep + n) % 2 == 0 else tuple(reversed(tables)):
                spent[table] += timed_ms(method, conn, table, chunk)
        for table, ms in spent.items():
            rates[table].append(count / (ms / 1000))
    return {table: median(r) for table, r in rates.items()}, step


def run(maintenance: str, sizes: Sizes) -> list[Figure]:
    batch = sizes.ingest_batch_size
    methods: list[tuple[str, str, Method, int, int]] = [
        ("single-row", "single-row inserts (autocommit)", insert_single, 1, sizes.ingest_single_rows),
        ("executemany", f"executemany, {batch} rows per call", insert_batch, batch, sizes.ingest_batch_rows),
        ("copy", "COPY", copy_rows, sizes.ingest_copy_rows, sizes.ingest_copy_rows),
    ]
    figures: list[Figure] = []
    with fresh_database(maintenance) as dsn, connect(dsn) as conn:
        jobs = create_jobs(conn, MODEL, JOBS)
        conn.execute(PLAIN_SCHEMA)
        conn.execute(FLOOR_SCHEMA)
        conn.execute("insert into bench_plain.jobs select * from regate.local_training_jobs")
        tables = (REGATE, PLAIN, EMPTY_TRIGGER, ONE_QUERY)
        step = 1
        # warm up: plans, plpgsql caches, and a first batch in every table
        step = measure_tables(conn, jobs, insert_batch, 100, 200, 2, step, tables)[1]
        for short, name, method, unit, count in methods:
            log(f"ingest: {name}, {count:,} rows x {sizes.ingest_repeat} trials per table")
            rates, step = measure_tables(conn, jobs, method, unit, count, sizes.ingest_repeat, step, tables)
            figures += [
                Figure(f"ingest {name}: regate", rates[REGATE], "rows/s"),
                Figure(f"ingest {name}: plain table", rates[PLAIN], "rows/s"),
                checked(f"ingest {short} / plain", rates[REGATE] / rates[PLAIN], "ratio", ">= 0.8"),
                Figure(f"ingest {short}: empty PL/pgSQL trigger / plain", rates[EMPTY_TRIGGER] / rates[PLAIN], "ratio"),
                Figure(f"ingest {short}: trigger running one query / plain", rates[ONE_QUERY] / rates[PLAIN], "ratio"),
            ]
        log(f"ingest: regate_db.Client's statement, {sizes.ingest_copy_rows:,} rows x {sizes.ingest_repeat} trials")
        figures += clients(conn, jobs, sizes, step, "")
        step += sizes.ingest_repeat * (sizes.ingest_copy_rows // len(jobs) + 1)
        counts = conn.execute(f"select (select count(*) from {REGATE}), (select count(*) from {PLAIN})").fetchone()
        assert counts is not None and counts[0] == counts[1], counts
        figures += as_tenant(conn, dsn, sizes)
    return figures


def clients(conn: Conn, jobs: list[uuid.UUID], sizes: Sizes, step: int, who: str) -> list[Figure]:
    """regate_db.Client's statement against the plain table (see the module docstring)."""

    def batches(c: Conn, table: str, rows: Rows) -> None:
        insert_client_batches(c, table, rows, sizes.ingest_batch_size)

    regate, plain, _ = measure(
        conn, jobs, batches, sizes.ingest_copy_rows, sizes.ingest_copy_rows, sizes.ingest_repeat, step
    )
    name = f"ingest{who} regate_db.Client, {sizes.ingest_batch_size} rows per statement"
    return [
        Figure(f"{name}: regate", regate, "rows/s"),
        Figure(f"{name}: plain table", plain, "rows/s"),
        Figure(f"ingest{who} client batches / plain", regate / plain, "ratio"),
    ]


def as_tenant(conn: Conn, dsn: str, sizes: Sizes) -> list[Figure]:
    """executemany and regate_db.Client's statement as a tenant login, under row-level security."""
    role = f"bench_tenant_{uuid.uuid4().hex[:8]}"
    conn.execute(f"create role {role} login password 'pw-{role}'")
    try:
        conn.execute("select regate.grant_usage(%s, 'writer')", (role,))
        conn.execute(f"grant usage on schema bench_plain to {role}")
        conn.execute(f"grant select, insert on bench_plain.jobs, bench_plain.metrics to {role}")
        with connect(conninfo.make_conninfo(dsn, user=role, password=f"pw-{role}")) as tenant:
            jobs = create_jobs(tenant, MODEL, JOBS)
            conn.execute(
                "insert into bench_plain.jobs select * from regate.local_training_jobs where id = any(%s)", (jobs,)
            )
            step = measure(tenant, jobs, insert_batch, 100, 200, 2, 1)[2]  # warm up
            log(f"ingest as a tenant: executemany, {sizes.ingest_batch_rows:,} rows x {sizes.ingest_repeat} trials")
            regate, plain, step = measure(
                tenant, jobs, insert_batch, sizes.ingest_batch_size, sizes.ingest_batch_rows, sizes.ingest_repeat, step
            )
            figures = [
                Figure(
                    f"ingest as a tenant, executemany, {sizes.ingest_batch_size} rows per call: regate",
                    regate,
                    "rows/s",
                ),
                Figure(
                    f"ingest as a tenant, executemany, {sizes.ingest_batch_size} rows per call: plain table",
                    plain,
                    "rows/s",
                ),
                Figure("ingest as a tenant executemany / plain", regate / plain, "ratio"),
            ]
            rows, trials = sizes.ingest_copy_rows, sizes.ingest_repeat
            log(f"ingest as a tenant: the client's statement, {rows:,} rows x {trials} trials")
            figures += clients(tenant, jobs, sizes, step, " as a tenant")
            owners = tenant.execute(
                "select count(*), count(*) filter (where owner_id = regate.current_identity())"
                " from regate.local_training_jobs where id = any(%s)",
                (jobs,),
            ).fetchone()
            assert owners is not None and owners[0] == owners[1] == JOBS, owners
        return figures
    finally:
        conn.execute(f"drop owned by {role}")
        conn.execute(f"drop role {role}")
