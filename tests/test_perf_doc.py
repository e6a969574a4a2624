"""docs/performance.md shows the figures of the committed bench/results.json: its generated blocks are exactly what
`python -m bench.report` (make perf-doc) writes, so a table cannot drift from the measurements it quotes."""

from __future__ import annotations

import difflib
import json

import pytest

from bench import report


def test_generated_blocks_of_the_performance_doc_match_the_committed_results() -> None:
    assert report.RESULTS.exists(), "bench/results.json is missing: it is committed, the doc's figures come from it"
    results = json.loads(report.RESULTS.read_text(encoding="utf-8"))
    doc = report.DOC.read_text(encoding="utf-8")
    assert doc.count("<!-- bench:begin figures -->") == 1, "the doc has no generated figure table"
    wanted = report.render(doc, results)
    diff = "".join(
        difflib.unified_diff(doc.splitlines(True), wanted.splitlines(True), "docs/performance.md", "generated", n=1)
    )
    assert not diff, (
        "docs/performance.md differs from bench/results.json: run `make perf-doc` and commit both files"
        " (or `git checkout bench/results.json` to drop a run you did not mean to publish)\n" + diff
    )


def test_render_rewrites_only_between_markers_and_refuses_unknown_blocks() -> None:
    results = {
        "mode": "quick",
        "started_at": "2026-12-01T00:00:00+00:00",
        "duration_s": 1.0,
        "benchmark_durations_s": {"install": 1.0},
        "machine": {
            "cores": 2,
            "memory_gb": 1.0,
            "platform": "Linux",
            "postgresql": "PostgreSQL 18.6",
            "server": "embedded",
            "connection": "unix socket",
            "settings": {},
            "source": {"commit": "abc1234", "sql_modified": False},
        },
        "figures": [{"name": "migrate: no-op / fresh", "value": 0.1, "unit": "ratio", "target": "<= 0.5", "met": True}],
    }
    doc = "prose\n<!-- bench:begin targets -->\nstale\n<!-- bench:end -->\nmore prose\n"
    out = report.render(doc, results)
    assert out.startswith("prose\n<!-- bench:begin targets -->\n| figure ")
    assert "| migrate: no-op / fresh |   0.1 | ratio | <= 0.5 | yes |" in out
    assert "stale" not in out and out.endswith("<!-- bench:end -->\nmore prose\n")
    assert report.render(out, results) == out
    with pytest.raises(ValueError, match="unknown generated block 'nope'"):
        report.render("<!-- bench:begin nope -->\n<!-- bench:end -->\n", results)
    with pytest.raises(ValueError, match="unbalanced"):
        report.render("<!-- bench:begin figures -->\n", results)
