"""Benchmarks. Each figure is measured side by side in one run (medians of repeated runs) and reported as a
table and as bench/results.json: one object per figure with name, value, unit, target and met, plus the machine.

Run with `make bench` (full) or `make bench-quick` (under a minute). REGATE_BENCH_DSN points them at a server of
your own (its maintenance database, e.g. postgresql://user@host/postgres); by default an embedded PostgreSQL 18
is started in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

from regate_db import connect as connect_mod
from regate_db.migrate import migrate

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str | None = None
    met: bool | None = None


@contextmanager
def server() -> Iterator[str]:
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


def with_db(maintenance: str, name: str) -> str:
    params = conninfo.conninfo_to_dict(maintenance)
    params["dbname"] = name
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


def median_ms(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def machine(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    settings = dict(
        conn.execute(
            "select name, setting || coalesce(unit, '') from pg_settings where name = any(%s)",
            (["shared_buffers", "work_mem", "synchronous_commit", "fsync", "max_connections", "jit"],),
        ).fetchall()
    )
    row = conn.execute("select version()").fetchone()
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgresql": row[0] if row else None,
        "settings": settings,
    }


def bench_migrate(maintenance: str, repeat: int) -> list[Figure]:
    """Install cost: a fresh migrate, a no-op migrate, and cloning the migrated template (what each test pays)."""
    admin = psycopg.connect(maintenance, autocommit=True)
    names: list[str] = []

    def new_db(template: str | None = None) -> str:
        name = f"regate_bench_{uuid.uuid4().hex[:10]}"
        admin.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
        names.append(name)
        return name

    try:

        def fresh() -> None:
            with psycopg.connect(with_db(maintenance, new_db()), autocommit=True) as conn:
                migrate(conn)

        template = new_db()
        with psycopg.connect(with_db(maintenance, template), autocommit=True) as conn:
            migrate(conn)

        def noop() -> None:
            with psycopg.connect(with_db(maintenance, template), autocommit=True) as conn:
                migrate(conn)

        fresh_ms = median_ms(fresh, repeat)
        noop_ms = median_ms(noop, repeat)
        clone_ms = median_ms(lambda: new_db(template), repeat)
    finally:
        for name in names:
            admin.execute(f'drop database if exists "{name}" with (force)')
        admin.close()
    return [
        Figure("migrate: fresh install", fresh_ms, "ms"),
        Figure("migrate: no-op run", noop_ms, "ms"),
        Figure("migrate: no-op / fresh", noop_ms / fresh_ms, "ratio", "<= 0.5", noop_ms / fresh_ms <= 0.5),
        Figure("test database clone (create database ... template)", clone_ms, "ms"),
    ]


def report(figures: list[Figure], description: dict[str, Any]) -> None:
    width = max(len(f.name) for f in figures)
    print(f"{'figure':<{width}}  {'value':>12}  {'unit':<6} {'target':<10} met")
    for f in figures:
        met = "-" if f.met is None else ("yes" if f.met else "NO")
        print(f"{f.name:<{width}}  {f.value:>12.3f}  {f.unit:<6} {f.target or '-':<10} {met}")
    print(f"machine: {description['cores']} cores, {description['postgresql']}")
    RESULTS.write_text(json.dumps({"machine": description, "figures": [asdict(f) for f in figures]}, indent=2))
    print(f"results written to {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller data (under a minute)")
    args = parser.parse_args()
    repeat = 3 if args.quick else 10
    with server() as dsn:
        with psycopg.connect(dsn) as conn:
            description = machine(conn)
        figures = bench_migrate(dsn, repeat)
    report(figures, description)


if __name__ == "__main__":
    main()
