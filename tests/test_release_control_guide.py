"""docs/release-control.md walks through release control: its recipes run, and the three rollout stages are there.

* Every ```sql block runs, in order, on a fresh migrated database, with the conventions of tests/test_docs.py
  (``-- expect-error: NNNNN`` first lines, ``-- =>`` result rows); the four-eyes recipe plays two admin logins
  with ``set session authorization``, so the test needs a superuser.
* Each rollout stage has its section, with a ``regate.set_policy`` recipe; stage 2 shows (as checked result rows)
  a regressed job of the critical model ending ``blocked`` while one of another model ends ``failed``.
* "Baselines that track reality" shows (as checked result rows) a champion baseline, a first deployment's
  ``no_reference`` warning, a rolling median that a blocked run never enters, and repeated runs: run groups ending
  ``passed`` and ``warning`` (inconclusive), ``run_gate`` over an array of runs, and ``inconclusiveFails`` in a policy.

Roles are cluster-wide: the guide's logins start with ``regate_guide_``; the guide drops them itself, and the test
drops them when it fails.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

from tests.helpers import REPO
from tests.test_docs import Block, run_block, sql_blocks

USER_GUIDE = REPO / "docs" / "release-control.md"
GUIDE_ROLES = ("regate_guide_ana", "regate_guide_ben")
REFERENCES = "Baselines that track reality"
REFERENCE_PARTS = (
    "No worse than production: a champion baseline",
    "The first deployment: no reference yet",
    "A rolling baseline: the median of the last accepted runs",
    "Repeated runs: five seeds, one verdict",
)
STAGES = (
    "Stage 1: warn-only everywhere",
    "Stage 2: blocking for one critical model",
    "Stage 3: blocking by default, one experimental model warn-only",
)


def drop_guide_roles(conn: psycopg.Connection[Any]) -> None:
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute("rollback")
    conn.execute("reset session authorization")
    for role in GUIDE_ROLES:
        if conn.execute("select from pg_roles where rolname = %s", (role,)).fetchone() is not None:
            conn.execute(f'drop owned by "{role}"')
            conn.execute(f'drop role "{role}"')


def stage_blocks(blocks: list[Block], text: str, heading: str, level: str = "##") -> list[Block]:
    """The ```sql blocks between the heading ``{level} {heading}`` and the next heading of that level or higher."""
    lines = text.splitlines()
    start = lines.index(f"{level} {heading}") + 1
    ends = tuple("#" * n + " " for n in range(2, len(level) + 1))
    end = next((i for i in range(start, len(lines)) if lines[i].startswith(ends)), len(lines))
    return [b for b in blocks if start < b.line <= end]


def shown_rows(blocks: list[Block]) -> list[str]:
    return [row for b in blocks for row in (b.expect_rows or [])]


def test_release_control_guide_shows_baselines_that_track_reality() -> None:
    text = USER_GUIDE.read_text(encoding="utf-8")
    lines = text.splitlines()
    blocks = sql_blocks(USER_GUIDE)
    assert f"## {REFERENCES}" in lines, f"docs/release-control.md has no section '{REFERENCES}'"
    # after the rollout stages and deployments, before the emergency path
    assert lines.index("## Deployments and champions") < lines.index(f"## {REFERENCES}")
    assert lines.index(f"## {REFERENCES}") < lines.index("## The emergency path")
    for part in REFERENCE_PARTS:
        assert f"### {part}" in lines, part
        assert any(b.expect_rows for b in stage_blocks(blocks, text, part, "###")), f"'{part}' shows no checked result"
    champion, first, rolling, repeated = (stage_blocks(blocks, text, part, "###") for part in REFERENCE_PARTS)

    # no worse than production: the check is against the champion's value, and names the champion's job
    assert any("reference => 'champion', environment => 'production'" in b.sql for b in champion)
    assert any(
        row.startswith("passed | 0.83 | b0000000-0000-4000-8000-000000000001 |") and "the champion's 0.83" in row
        for row in shown_rows(champion)
    ), shown_rows(champion)

    # a first deployment: no champion yet, no_reference, a warning by default, and it may deploy
    rows = shown_rows(first)
    assert "warning" in rows, rows
    assert any(r.startswith("no_reference | ") and "on_missing_reference: warn" in r for r in rows), rows
    assert any("regate.deploy(" in b.sql for b in first)
    assert "`warn`, is deliberate" in text, "the guide must say why warn is the default"

    # rolling: the median of the accepted runs; the blocked run is not in the next run's window
    assert any("reference => 'rolling', window_size => 5, min_runs => 3" in b.sql for b in rolling)
    rows = shown_rows(rolling)
    assert "124 | blocked | failed | 1.1 | 3" in rows and "125 | passed | passed | 1.1 | 3" in rows, rows

    # repeated runs: one verdict per group of 5 seeds, run_gate over arrays, inconclusiveFails in a policy
    sql = "\n".join(b.sql for b in repeated)
    assert "run_group_size" in sql and "regate.run_gate(" in sql
    assert re.search(r"regate\.set_policy\(model_name => 'ranker', inconclusive_fails => true\)", sql)
    rows = shown_rows(repeated)
    assert "ranker-4.0-lr3e-5 | passed | 5 | 1" in rows and "ranker-4.0-lr1e-4 | warning | 5 | 1" in rows, rows
    assert any(" (n=5) is inconclusive: " in r for r in rows), rows
    assert any(" (n=5) passes at the worse end" in r for r in rows), rows
    assert "warning | f | inconclusive | 5" in rows, "run_gate over 5 runs: inconclusive is a warning by default"
    assert "failed | t | inconclusive" in rows, "with inconclusiveFails, inconclusive fails (and blocks)"


def test_release_control_guide_has_a_recipe_per_rollout_stage() -> None:
    text = USER_GUIDE.read_text(encoding="utf-8")
    blocks = sql_blocks(USER_GUIDE)
    for heading in STAGES:
        assert f"## {heading}" in text.splitlines(), f"docs/release-control.md has no section '{heading}'"
        recipe = stage_blocks(blocks, text, heading)
        assert any("regate.set_policy(" in b.sql for b in recipe), f"'{heading}' has no set_policy recipe"
        assert any(b.expect_rows for b in recipe), f"'{heading}' shows no checked result"

    # stage 2: the critical model's regressed job is blocked, another model's is only failed (warn-only)
    shown = [row for b in stage_blocks(blocks, text, STAGES[1]) for row in (b.expect_rows or [])]
    assert "ranker | blocked" in shown and "summarizer | failed" in shown, shown
    stage2 = "\n".join(b.sql for b in stage_blocks(blocks, text, STAGES[1]))
    assert re.search(r"model_name => 'ranker',[^)]*block_on_critical_failures => true,[^)]*enforce => true", stage2)
    assert "'{\"blockOnCriticalFailures\": false}'" in stage2, "stage 2 must show a job config that is ignored"

    # the emergency path and the rest of release control are there
    for heading in ("Override with an expiry", "Four eyes: a second admin confirms", "The kill switch"):
        assert f"### {heading}" in text.splitlines(), heading
    for name in ("regate.override_gate(", "regate.confirm_override(", "regate.disable_gates(", "regate.deploy("):
        assert any(name in b.sql for b in blocks), name
    assert "docs/alerts.md" in text or "(alerts.md)" in text


def test_release_control_guide_examples_run_in_order(db: psycopg.Connection[Any]) -> None:
    row = db.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()
    if not row or not row[0]:
        pytest.skip("the four-eyes recipe plays two logins with SET SESSION AUTHORIZATION: it needs a superuser")
    blocks = sql_blocks(USER_GUIDE)
    assert len(blocks) >= 20, "docs/release-control.md lost its recipes"
    assert {"RG012", "42501", "22023"} <= {b.expect_error for b in blocks}
    try:
        for block in blocks:
            run_block(db, block)
        left = db.execute("select count(*) from pg_roles where rolname = any(%s)", (list(GUIDE_ROLES),)).fetchone()
    finally:
        drop_guide_roles(db)
    assert left == (0,), "the guide's cleanup block left roles behind"
