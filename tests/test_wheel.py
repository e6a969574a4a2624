"""The wheel ships the SQL: `pip install regate-db && regate-db migrate` works without a checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import psycopg
import pytest

from regate_db.resources import default_source
from tests.helpers import REPO


@pytest.mark.slow
def test_wheel_installs_and_migrates_from_its_own_files(tmp_path: Path, empty_db: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (wheel,) = (tmp_path / "dist").glob("regate_db-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    source = default_source()
    for f in source.versioned():
        assert f"regate_db/migrations/{f.filename}" in names
    for f in source.repeatable():
        assert f"regate_db/sql/{f.filename}" in names
    assert "regate_db/py.typed" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # Run from a folder with no checkout in sight, with no path leading back to the repository.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [str(venv / "bin" / "regate-db"), "--dsn", empty_db, "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "done: schema version" in proc.stdout
    with psycopg.connect(empty_db) as conn:
        rows = conn.execute("select filename, sha256 from regate_internal.schema_migrations order by 1").fetchall()
    assert rows == [(f.filename, f.sha256) for f in source.versioned()]
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import regate_db.resources as r; print(r.default_source().migrations)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in where.stdout  # the SQL came from the installed package, not the checkout
