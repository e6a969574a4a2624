"""docs/user-guide.md: every command, Python snippet and SQL example runs, in order, on a fresh database, and the
guide covers what the issue asks of it (tests/guides.py says how blocks are run and checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from tests.guides import guide_blocks, run_guide
from tests.helpers import REPO

USER_GUIDE = REPO / "docs" / "user-guide.md"
SECTIONS = (
    "What a gate is",
    "Install",
    "Baselines",
    "When the gate runs",
    "From training code",
    "Reading verdicts",
    "The config keys",
    "Troubleshooting",
    "Clients and poolers",
    "Uninstall",
)


def test_the_user_guide_has_its_sections() -> None:
    headings = [line[3:] for line in USER_GUIDE.read_text(encoding="utf-8").splitlines() if line.startswith("## ")]
    assert headings == list(SECTIONS)


def test_every_config_key_is_in_the_guide(db: psycopg.Connection[Any]) -> None:
    text = USER_GUIDE.read_text(encoding="utf-8")
    row = db.execute("select regate.effective_config('{}'::jsonb)").fetchone()
    assert row is not None
    config = row[0]
    keys = [k for k in config if k != "regressionGateConfig"]
    keys += [f"regressionGateConfig.{k}" for k in config["regressionGateConfig"]]
    for key in keys:
        assert f"`{key}`" in text, f"docs/user-guide.md does not document the config key {key}"


def test_the_user_guide_runs_in_order(db: psycopg.Connection[Any], db_dsn: str, tmp_path: Path) -> None:
    blocks = run_guide(USER_GUIDE, db, db_dsn, tmp_path)
    assert {b.language for b in blocks} == {"bash", "python", "sql"}
    assert len(guide_blocks(USER_GUIDE)) == len(blocks) >= 12
