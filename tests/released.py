"""What was released: the archives of each release's SQL and the frozen checksums of its migrations.

* ``tests/releases/vX.Y.Z.tar.gz``: the ``migrations/`` and ``sql/`` folders of release vX.Y.Z and its migration
  runner ``regate_db/migrate.py``, as ``git archive vX.Y.Z migrations sql regate_db/migrate.py | gzip -9 -n`` wrote
  them. Committed, so that the upgrade tests need no git tags
  (CI clones may not carry them). The next release only adds an archive.
* ``migrations/frozen.txt``: one line ``filename sha256`` per released migration, the checksum being the one the
  migration runner records (:attr:`regate_db.resources.SqlFile.sha256`). A released migration must never change:
  databases that applied it would refuse the upgrade (drift), and fresh installs would differ from upgrades.

``scripts/release.sh`` writes both, through ``python -m tests.released freeze``. This module needs only the
standard library and :mod:`regate_db.resources`.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regate_db.resources import Source

REPO = Path(__file__).resolve().parent.parent
RELEASES = REPO / "tests" / "releases"
FROZEN = REPO / "migrations" / "frozen.txt"

ARCHIVE_RE = re.compile(r"^v(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)\.tar\.gz$")
FROZEN_LINE_RE = re.compile(r"^(?P<filename>\S+\.sql) (?P<sha256>[0-9a-f]{64})$")
FROZEN_HEADER = """\
# Released migrations, one line each: filename sha256 (the checksum regate-db records when it applies the file).
# Appended by scripts/release.sh; never edit a listed migration (tests/test_releases.py fails if one changes).
"""


@dataclass(frozen=True)
class Release:
    version: str  # "v0.1.0"
    key: tuple[int, int, int]
    archive: Path

    def extract(self, into: Path) -> Source:
        """Unpack the release's migrations/ and sql/ into ``into``; a Source reading them."""
        with tarfile.open(self.archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.split("/")[0] in ("migrations", "sql")]
            tar.extractall(into, members=members, filter="data")
        return Source.from_dirs(into / "migrations", into / "sql")

    def migrate_function(self, into: Path) -> Any:
        """The release's own ``regate_db.migrate.migrate`` (from the archive), so that a test installs the release
        exactly as its users did; today's runner when the archive holds none."""
        with tarfile.open(self.archive, "r:gz") as tar:
            names = tar.getnames()
            if "regate_db/migrate.py" not in names:
                from regate_db.migrate import migrate

                return migrate
            tar.extract("regate_db/migrate.py", into, filter="data")
        spec = importlib.util.spec_from_file_location(
            f"regate_migrate_{self.version.replace('.', '_')}", into / "regate_db" / "migrate.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module.migrate


def releases(folder: Path = RELEASES) -> list[Release]:
    """Every archived release, oldest first. Raises ValueError for a file that is not vX.Y.Z.tar.gz."""
    found = []
    for path in folder.iterdir() if folder.is_dir() else []:
        m = ARCHIVE_RE.match(path.name)
        if m is None:
            raise ValueError(f"{path}: not a release archive (expected vMAJOR.MINOR.PATCH.tar.gz)")
        key = (int(m["major"]), int(m["minor"]), int(m["patch"]))
        found.append(Release(path.name.removesuffix(".tar.gz"), key, path))
    return sorted(found, key=lambda r: r.key)


def read_frozen(text: str) -> dict[str, str]:
    """filename -> sha256 of frozen.txt's lines (``#`` comments and blank lines allowed)."""
    frozen: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = FROZEN_LINE_RE.match(line)
        if m is None:
            raise ValueError(f"frozen.txt:{number}: expected 'NNNN_name.sql <64 hex digits>', got {line!r}")
        if m["filename"] in frozen:
            raise ValueError(f"frozen.txt:{number}: {m['filename']} is listed twice")
        frozen[m["filename"]] = m["sha256"]
    return frozen


def frozen_problems(frozen: dict[str, str], source: Source) -> list[str]:
    """Why ``source``'s migrations break the frozen list: an edited or missing released migration, or a new one
    that sorts before a released one (upgraded databases would run it last, fresh installs in between)."""
    files = {f.filename: f.sha256 for f in source.versioned()}
    problems = []
    for filename, sha in frozen.items():
        if filename not in files:
            problems.append(f"{filename} was released (frozen sha256 {sha}) but is missing from migrations/")
        elif files[filename] != sha:
            problems.append(
                f"{filename} was released and must never change: frozen sha256 {sha}, file sha256 {files[filename]}"
                " (add a new migration instead)"
            )
    last = max(frozen, default=None)
    for filename in files:
        if last is not None and filename not in frozen and filename < last:
            problems.append(
                f"{filename} is not released but sorts before the released {last}: number it after the last release"
            )
    return problems


def freeze(frozen_path: Path, source: Source) -> list[str]:
    """Append ``source``'s migrations that are not yet frozen to ``frozen_path``; the lines added.

    Raises ValueError, changing nothing, when the release breaks the frozen list (see :func:`frozen_problems`).
    """
    text = frozen_path.read_text(encoding="utf-8") if frozen_path.exists() else FROZEN_HEADER
    frozen = read_frozen(text)
    problems = frozen_problems(frozen, source)
    if problems:
        raise ValueError("; ".join(problems))
    added = [f"{f.filename} {f.sha256}" for f in source.versioned() if f.filename not in frozen]
    if added or not frozen_path.exists():
        frozen_path.write_text(text + "".join(line + "\n" for line in added), encoding="utf-8")
    return added


def main(argv: list[str]) -> int:
    """``python -m tests.released freeze FROZEN_TXT MIGRATIONS_DIR SQL_DIR``: used by scripts/release.sh."""
    if len(argv) != 5 or argv[1] != "freeze":
        print("usage: python -m tests.released freeze FROZEN_TXT MIGRATIONS_DIR SQL_DIR", file=sys.stderr)
        return 2
    try:
        added = freeze(Path(argv[2]), Source.from_dirs(argv[3], argv[4]))
    except ValueError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    for line in added:
        print(f"frozen: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
