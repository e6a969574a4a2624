"""The SQL that regate-db installs: versioned migrations and repeatable definitions.

In a wheel they are package data (``regate_db/migrations``, ``regate_db/sql``); in a source checkout they live
at the top of the repository. :func:`default_source` finds whichever is present.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

from regate_db.errors import MigrationError

VERSIONED_RE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
REPEATABLE_RE = re.compile(r"^(?P<order>\d{3})_(?P<name>[a-z0-9_]+)\.sql$")

Kind = Literal["versioned", "repeatable"]


@dataclass(frozen=True)
class SqlFile:
    """One SQL file, with the checksum recorded when it is applied."""

    kind: Kind
    filename: str
    version: str | None
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Source:
    """Where the migration and repeatable files are read from."""

    migrations: Traversable
    sql: Traversable

    @classmethod
    def from_dirs(cls, migrations: str | Path, sql: str | Path) -> Source:
        return cls(Path(migrations), Path(sql))

    def versioned(self) -> list[SqlFile]:
        files = []
        seen: dict[str, str] = {}
        for entry in _sql_entries(self.migrations):
            m = VERSIONED_RE.match(entry.name)
            if m is None:
                raise MigrationError(
                    f"migration file {entry.name!r} is misnamed: expected NNNN_description.sql "
                    "(four digits, lower-case letters, digits and underscores)"
                )
            version = m["version"]
            if version in seen:
                raise MigrationError(f"migration files {seen[version]!r} and {entry.name!r} share version {version}")
            seen[version] = entry.name
            files.append(SqlFile("versioned", entry.name, version, entry.read_text(encoding="utf-8")))
        return sorted(files, key=lambda f: f.filename)

    def repeatable(self) -> list[SqlFile]:
        files = []
        for entry in _sql_entries(self.sql):
            if REPEATABLE_RE.match(entry.name) is None:
                raise MigrationError(
                    f"repeatable file {entry.name!r} is misnamed: expected NNN_topic.sql "
                    "(three digits, lower-case letters, digits and underscores)"
                )
            files.append(SqlFile("repeatable", entry.name, None, entry.read_text(encoding="utf-8")))
        return sorted(files, key=lambda f: f.filename)


def _sql_entries(folder: Traversable) -> list[Traversable]:
    if not folder.is_dir():
        return []
    return [e for e in folder.iterdir() if e.is_file() and e.name.endswith(".sql")]


def default_source() -> Source:
    """The files shipped with this installation of regate-db."""
    package = resources.files("regate_db")
    if package.joinpath("migrations").is_dir():
        return Source(package.joinpath("migrations"), package.joinpath("sql"))
    # A source checkout (editable install): the files live beside the package.
    root = Path(__file__).resolve().parent.parent
    if (root / "migrations").is_dir():
        return Source(root / "migrations", root / "sql")
    raise MigrationError("this installation of regate-db has no migrations/ folder: the package is broken")
