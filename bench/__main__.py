"""Benchmarks. Each figure is measured side by side in one run (medians of repeated runs) and reported as a
table and as bench/results.json: one object per figure with name, value, unit, target and met, plus the machine.

Run with `make bench` (full) or `make bench-quick` (under a minute). REGATE_BENCH_DSN points them at a server of
your own (its maintenance database, e.g. postgresql://user@host/postgres; the user must be a superuser, for
`set session_replication_role = replica`); by default an embedded PostgreSQL 18 is started in a temporary folder. Every
benchmark creates its own database (prefix regate_bench_) and drops it. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import alternative, bulk, completion, concurrency, ingest, install
from bench.common import FULL, QUICK, Figure, Sizes, machine, server

RESULTS = Path(__file__).resolve().parent / "results.json"

BENCHMARKS: dict[str, Callable[[str, Sizes], list[Figure]]] = {
    "completion": completion.run,
    "alternative": alternative.run,
    "ingest": ingest.run,
    "bulk": bulk.run,
    "concurrency": concurrency.run,
    "install": install.run,
}


def format_value(value: float, unit: str = "") -> str:
    if unit == "count" or (value == int(value) and abs(value) >= 100):
        return f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def table(figures: list[Figure]) -> str:
    """The figures as a Markdown table (it reads as plain text too, and pastes into docs/performance.md)."""
    rows = [("figure", "value", "unit", "target", "met")]
    for f in figures:
        met = "-" if f.met is None else ("yes" if f.met else "**NO**")
        rows.append((f.name, format_value(f.value, f.unit), f.unit, f.target or "-", met))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for n, r in enumerate(rows):
        cells = [
            r[0].ljust(widths[0]),
            r[1].rjust(widths[1]),
            *(c.ljust(w) for c, w in zip(r[2:], widths[2:], strict=True)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            lines.append(
                "|" + "|".join(("-" * (w + 1) + ":" if i == 1 else "-" * (w + 2)) for i, w in enumerate(widths)) + "|"
            )
    return "\n".join(lines)


def source_version() -> dict[str, Any]:
    """The commit measured, and whether the SQL that regate installs differs from it (best effort: needs git)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "sql", "migrations")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "sql_modified": bool(changed) if changed is not None else None,
    }


def describe(description: dict[str, Any]) -> str:
    s = description["settings"]
    return (
        f"machine: {description['cores']} cores, {description['memory_gb']} GB RAM, {description['platform']};"
        f" {description['postgresql']} ({description['server']}, {description['connection']});"
        f" shared_buffers={s.get('shared_buffers')}, synchronous_commit={s.get('synchronous_commit')},"
        f" fsync={s.get('fsync')}, wal_sync_method={s.get('wal_sync_method')}, jit={s.get('jit')},"
        f" max_wal_size={s.get('max_wal_size')}; regate at {description['source']['commit']}"
        + (" with uncommitted SQL changes" if description["source"]["sql_modified"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer repetitions (under a minute)")
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )
    args = parser.parse_args()
    # psycopg logs a warning when a pipeline (executemany) ends in an error the bench expects and counts (RG002)
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    names = list(BENCHMARKS) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    sizes = QUICK if args.quick else FULL
    mode = "quick" if args.quick else "full"
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    figures: list[Figure] = []
    durations: dict[str, float] = {}
    with server() as dsn:
        with psycopg.connect(dsn) as conn:
            description = machine(conn)
        description["source"] = source_version()
        print(f"regate-db benchmarks, {mode} mode", flush=True)
        print(describe(description), flush=True)
        for name in names:
            print(f"{name} ...", flush=True)
            t0 = time.perf_counter()
            got = BENCHMARKS[name](dsn, sizes)
            durations[name] = round(time.perf_counter() - t0, 1)
            print(table(got), flush=True)
            print(f"({name}: {durations[name]:.1f} s)", flush=True)
            figures += got
    total = time.perf_counter() - started
    print()
    print(table(figures))
    print(describe(description))
    missed = [f.name for f in figures if f.met is False]
    print(f"{mode} mode, {total:.0f} s; targets met: {sum(f.met is True for f in figures)}, missed: {len(missed)}")
    RESULTS.write_text(
        json.dumps(
            {
                "mode": mode,
                "started_at": started_at,
                "duration_s": round(total, 1),
                "benchmark_durations_s": durations,
                "machine": description,
                "figures": [asdict(f) for f in figures],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results written to {RESULTS}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
