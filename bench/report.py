"""The benchmark figures as Markdown, and the generated parts of docs/performance.md.

    python -m bench.report            # rewrite the generated blocks of docs/performance.md from bench/results.json
    python -m bench.report --check    # exit 1 (with a diff) when they differ from what it would write

A generated block sits between two marker comments; everything outside them is hand-written prose:

    <!-- bench:begin NAME -->
    ... generated, do not edit ...
    <!-- bench:end -->

NAME is one of: `run` (mode, date, duration, commit, machine and the count of targets met and missed), `targets`
(the figures that have a target) and `figures` (every figure). tests/test_perf_doc.py fails when the committed
doc and the committed bench/results.json disagree: after `make bench` or `make bench-quick`, run `make perf-doc`
and commit both files.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Figure

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "performance.md"

BLOCK_RE = re.compile(
    r"(?P<begin><!-- bench:begin (?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<end><!-- bench:end -->)", re.DOTALL
)


def format_value(value: float, unit: str = "") -> str:
    if unit == "count" or (value == int(value) and abs(value) >= 100):
        return f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def table(figures: list[Figure]) -> str:
    """The figures as a Markdown table (it reads as plain text too)."""
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


def describe(description: dict[str, Any]) -> str:
    """The machine, the server, its settings and the regate commit measured, in one line."""
    s = description["settings"]
    return (
        f"machine: {description['cores']} cores, {description['memory_gb']} GB RAM, {description['platform']};"
        f" {description['postgresql']} ({description['server']}, {description['connection']});"
        f" shared_buffers={s.get('shared_buffers')}, synchronous_commit={s.get('synchronous_commit')},"
        f" fsync={s.get('fsync')}, wal_sync_method={s.get('wal_sync_method')}, jit={s.get('jit')},"
        f" max_wal_size={s.get('max_wal_size')}; regate at {description['source']['commit']}"
        + (" with uncommitted SQL changes" if description["source"]["sql_modified"] else "")
    )


def figures_of(results: dict[str, Any]) -> list[Figure]:
    return [Figure(**f) for f in results["figures"]]


def _run(results: dict[str, Any]) -> str:
    figures = figures_of(results)
    met = sum(f.met is True for f in figures)
    missed = sum(f.met is False for f in figures)
    durations = ", ".join(f"{name} {s:.0f} s" for name, s in results["benchmark_durations_s"].items())
    return (
        f"{results['mode'].capitalize()} mode, started {results['started_at']}, {results['duration_s']:.0f} s"
        f" ({durations}); targets met: {met}, missed: {missed}.\n\n"
        f"{describe(results['machine'])}."
    )


def _targets(results: dict[str, Any]) -> str:
    return table([f for f in figures_of(results) if f.target is not None])


def _figures(results: dict[str, Any]) -> str:
    return table(figures_of(results))


BLOCKS: dict[str, Callable[[dict[str, Any]], str]] = {"run": _run, "targets": _targets, "figures": _figures}


def render(doc: str, results: dict[str, Any]) -> str:
    """`doc` with every generated block rewritten from `results`; ValueError for unknown or unbalanced markers."""
    begins = doc.count("<!-- bench:begin ")
    ends = doc.count("<!-- bench:end -->")
    found = list(BLOCK_RE.finditer(doc))
    if not (begins == ends == len(found)):
        raise ValueError(f"unbalanced bench markers: {begins} begin, {ends} end, {len(found)} well-formed blocks")
    for m in found:
        if m["name"] not in BLOCKS:
            raise ValueError(f"unknown generated block {m['name']!r}; known: {', '.join(BLOCKS)}")

    def replace(m: re.Match[str]) -> str:
        return f"{m['begin']}{BLOCKS[m['name']](results)}\n{m['end']}"

    return BLOCK_RE.sub(replace, doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the doc is out of date")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"default: {RESULTS.relative_to(ROOT)}")
    parser.add_argument("--doc", type=Path, default=DOC, help=f"default: {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    current = args.doc.read_text(encoding="utf-8")
    try:
        wanted = render(current, results)
    except ValueError as exc:
        print(f"{args.doc}: {exc}", file=sys.stderr)
        return 2
    if wanted == current:
        print(f"{args.doc} is up to date with {args.results}")
        return 0
    if args.check:
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True), wanted.splitlines(keepends=True), str(args.doc), "generated"
            )
        )
        print(f"{args.doc} differs from {args.results}: run `make perf-doc`", file=sys.stderr)
        return 1
    args.doc.write_text(wanted, encoding="utf-8")
    print(f"{args.doc} rewritten from {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
