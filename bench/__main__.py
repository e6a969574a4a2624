"""Benchmarks. Each figure is measured side by side in one run (medians of repeated runs) and reported as a
table and as bench/results.json: one object per figure with name, value, unit, target and met, plus the machine.
bench/results.json is committed: the figure tables of docs/performance.md are generated from it (`make perf-doc`).

Run with `make bench` (full) or `make bench-quick` (about 4 minutes). REGATE_BENCH_DSN points them at a server of
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

from bench import alternative, bulk, completion, concurrency, ingest, install, references, release, retention
from bench.common import FULL, QUICK, Figure, Sizes, machine, server
from bench.report import describe, table

RESULTS = Path(__file__).resolve().parent / "results.json"

BENCHMARKS: dict[str, Callable[[str, Sizes], list[Figure]]] = {
    "completion": completion.run,
    "alternative": alternative.run,
    "ingest": ingest.run,
    "bulk": bulk.run,
    "concurrency": concurrency.run,
    "install": install.run,
    "release": release.run,
    "references": references.run,
    "retention": retention.run,
}


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


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer repetitions (about 4 minutes)")
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
