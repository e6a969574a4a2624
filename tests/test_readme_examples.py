"""README.md's examples beyond SQL (tests/test_docs.py runs its ```sql blocks): the Python client, the two
commands that turn a trainer_state.json into a verdict, and the pytest-plugin test, which runs as a user's test
file through the plugin (on REGATE_TEST_DSN when set, else the plugin's embedded server). Blocks fenced
``no-run`` (make demo, pip install) are covered elsewhere (test_demo, test_wheel)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import psycopg

from tests.guides import guide_blocks, run_guide
from tests.helpers import REPO
from tests.test_pytest_plugin import outcome, run_pytest, user_env

README = REPO / "README.md"


def test_the_readme_runs_in_order(db: psycopg.Connection[Any], db_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    shutil.copy(REPO / "tests" / "data" / "trainer_state_complete.json", tmp_path / "out" / "trainer_state.json")
    blocks = run_guide(README, db, db_dsn, tmp_path)
    assert {b.language for b in blocks} == {"bash", "python", "sql"}
    assert any("regate-db import trainer-state" in b.body for b in blocks)
    assert any("Client(" in b.body for b in blocks)
    imported = db.execute(
        "select j.status, j.validation_status from regate.local_training_jobs as j"
        " where j.model_name = 'sentiment-bert' order by j.created_at desc limit 1"
    ).fetchone()
    assert imported is not None and imported[0] == "completed" and imported[1] is not None


def test_the_readme_plugin_example_passes_as_a_users_test(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    (block,) = re.findall(r"^```python no-run\n(def test_.*?)^```$", text, flags=re.S | re.M)
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_readme_plugin.py").write_text(block, encoding="utf-8")
    result = run_pytest(project, user_env(), "-q")
    assert result.returncode == 0, outcome(result)
    assert "1 passed" in result.stdout
    assert guide_blocks(README)  # the other blocks run in test_the_readme_runs_in_order
