"""Released SQL stays released: the frozen checksums of migrations, the release archives, scripts/release.sh."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regate_db.resources import Source
from tests.released import FROZEN, REPO, frozen_problems, read_frozen, releases


def checkout_source() -> Source:
    return Source.from_dirs(REPO / "migrations", REPO / "sql")


def test_released_migrations_are_unchanged() -> None:
    frozen = read_frozen(FROZEN.read_text(encoding="utf-8"))
    assert frozen, "migrations/frozen.txt lists no migration"
    problems = frozen_problems(frozen, checkout_source())
    assert not problems, "\n".join(problems)


def test_frozen_check_names_the_file_and_both_checksums(tmp_path: Path) -> None:
    shutil.copytree(REPO / "migrations", tmp_path / "migrations")
    source = Source.from_dirs(tmp_path / "migrations", REPO / "sql")
    first, second = source.versioned()[:2]
    frozen = {first.filename: first.sha256, second.filename: second.sha256}
    assert frozen_problems(frozen, source) == []

    path = tmp_path / "migrations" / first.filename
    path.write_text(path.read_text() + "-- a harmless-looking edit\n")
    edited = next(f for f in source.versioned() if f.filename == first.filename)
    (tmp_path / "migrations" / second.filename).unlink()
    problems = frozen_problems(frozen, source)
    assert problems == [
        f"{first.filename} was released and must never change: frozen sha256 {first.sha256}, "
        f"file sha256 {edited.sha256} (add a new migration instead)",
        f"{second.filename} was released (frozen sha256 {second.sha256}) but is missing from migrations/",
    ]
    # A migration added after a release must sort after every released one.
    assert frozen_problems({second.filename: second.sha256}, checkout_source()) == [
        f"{first.filename} is not released but sorts before the released {second.filename}: "
        "number it after the last release"
    ]


def test_frozen_list_is_not_read_as_a_migration() -> None:
    assert FROZEN.is_file()
    names = [f.filename for f in checkout_source().versioned()]
    assert names == sorted(p.name for p in (REPO / "migrations").glob("*.sql"))
    assert "frozen.txt" not in names


def test_every_release_is_archived_and_frozen(tmp_path: Path) -> None:
    archived = releases()
    assert archived and archived[0].version == "v0.1.0"
    frozen = read_frozen(FROZEN.read_text(encoding="utf-8"))
    released: set[str] = set()
    for release in archived:
        source = release.extract(tmp_path / release.version)
        assert source.repeatable(), f"{release.archive.name} holds no sql/ files"
        for f in source.versioned():
            assert frozen.get(f.filename) == f.sha256, (
                f"{f.filename} of {release.version} (sha256 {f.sha256}) is not frozen with that checksum "
                f"in migrations/frozen.txt (frozen: {frozen.get(f.filename)})"
            )
            released.add(f.filename)
    assert set(frozen) == released, "migrations/frozen.txt lists files that no archived release holds"


def test_release_archives_are_gzip_without_a_timestamp() -> None:
    for release in releases():
        header = release.archive.read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\0\0\0\0", f"{release.archive.name}: not gzip -n"
        with gzip.open(release.archive) as f:
            assert f.read(1)


class Repo:
    """A scratch git repository holding what scripts/release.sh needs from this checkout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Release Test",
            "GIT_AUTHOR_EMAIL": "release@example.invalid",
            "GIT_COMMITTER_NAME": "Release Test",
            "GIT_COMMITTER_EMAIL": "release@example.invalid",
            "PYTHON": sys.executable,
        }
        ignore = shutil.ignore_patterns("__pycache__", "frozen.txt")
        for folder in ("migrations", "sql", "regate_db"):
            shutil.copytree(REPO / folder, root / folder, ignore=ignore)
        (root / "scripts").mkdir()
        shutil.copy2(REPO / "scripts" / "release.sh", root / "scripts" / "release.sh")
        (root / "tests").mkdir()
        for name in ("__init__.py", "released.py"):
            shutil.copy2(REPO / "tests" / name, root / "tests" / name)
        (root / ".gitignore").write_text("__pycache__/\n")
        self.git("init", "-q", "-b", "main")
        self.commit("initial")

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=self.root, env=self.env, capture_output=True, text=True, check=True, timeout=60
        )
        return proc.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def release(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["scripts/release.sh", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def tags(self) -> list[str]:
        return self.git("tag").split()

    def frozen(self) -> dict[str, str]:
        return read_frozen((self.root / "migrations" / "frozen.txt").read_text())


@pytest.mark.slow
def test_release_script_tags_archives_and_freezes(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    first = repo.git("rev-parse", "HEAD")
    proc = repo.release("v1.0.0")
    assert proc.returncode == 0, proc.stderr
    assert "git push origin HEAD v1.0.0" in proc.stdout
    assert repo.git("cat-file", "-t", "v1.0.0") == "tag"  # annotated
    assert repo.git("rev-parse", "v1.0.0^{commit}") == first
    assert repo.git("status", "--porcelain") == ""  # archive and frozen list committed
    assert repo.git("show", "--name-only", "--format=", "HEAD").split() == [
        "migrations/frozen.txt",
        "tests/releases/v1.0.0.tar.gz",
    ]
    archive = repo.root / "tests" / "releases" / "v1.0.0.tar.gz"
    # Deterministic: the same bytes as archiving the tag again.
    again = subprocess.run(
        "git archive --format=tar v1.0.0 migrations sql regate_db/migrate.py | gzip -9 -n",
        shell=True,
        cwd=repo.root,
        env=repo.env,
        capture_output=True,
        check=True,
    ).stdout
    assert archive.read_bytes() == again
    (release,) = releases(repo.root / "tests" / "releases")
    source = release.extract(tmp_path / "x")
    here = checkout_source()
    assert [(f.filename, f.text) for f in source.versioned()] == [(f.filename, f.text) for f in here.versioned()]
    assert [(f.filename, f.text) for f in source.repeatable()] == [(f.filename, f.text) for f in here.repeatable()]
    assert repo.frozen() == {f.filename: f.sha256 for f in here.versioned()}

    # A dirty tree is refused before anything happens.
    (repo.root / "scratch.txt").write_text("wip\n")
    proc = repo.release("v1.1.0")
    assert proc.returncode == 1 and "the tree is not clean" in proc.stderr
    assert repo.tags() == ["v1.0.0"]
    (repo.root / "scratch.txt").unlink()

    # The next release appends only its new migrations.
    last = here.versioned()[-1].version or "0"
    new = repo.root / "migrations" / f"{int(last) + 1:04d}_more.sql"
    new.write_text("create table regate.t_more (id int);\n")
    repo.commit("a new migration")
    proc = repo.release("v1.1.0")
    assert proc.returncode == 0, proc.stderr
    frozen = repo.frozen()
    assert list(frozen)[-1] == new.name and len(frozen) == len(here.versioned()) + 1

    # Older or existing versions are refused.
    assert "not newer than the latest archived release v1.1.0" in repo.release("v1.0.5").stderr
    assert "tag v1.1.0 exists already" in repo.release("v1.1.0").stderr

    # An edited released migration is refused, naming the file and both checksums; nothing is tagged or written.
    edited = repo.root / "migrations" / here.versioned()[0].filename
    edited.write_text(edited.read_text() + "-- edited after release\n")
    head = repo.commit("edit a released migration")
    proc = repo.release("v1.2.0")
    assert proc.returncode == 1
    new_sha = Source.from_dirs(repo.root / "migrations", repo.root / "sql").versioned()[0].sha256
    assert f"{edited.name} was released and must never change: frozen sha256 {frozen[edited.name]}" in proc.stderr
    assert new_sha in proc.stderr
    assert repo.tags() == ["v1.0.0", "v1.1.0"]
    assert repo.git("rev-parse", "HEAD") == head and repo.git("status", "--porcelain") == ""
