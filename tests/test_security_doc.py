"""docs/security.md says what the security boundary is: its setup commands and examples run.

* Every ```sql block runs, in order, on a fresh migrated database, with the conventions of tests/test_docs.py
  (``-- expect-error: NNNNN`` first lines, ``-- =>`` result rows): the examples create login roles, grant them,
  and play them with ``set session authorization``.
* The ```sql install block (the dedicated owner) runs on empty databases, one installed by the ```sh block's
  ``regate-db ... migrate --owner ... --strict``, one by the ```python block (``migrate(conn, owner=, strict=)``);
  then the examples run again on the latter, where the schema owner is not a superuser and row-level security
  binds regate-db's own SECURITY DEFINER code.

Roles are cluster-wide: the examples use names starting with ``regate_sec_`` and create them idempotently, the
owner is renamed ``regate_secdoc_owner``, and every test drops what it created even when it fails.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from regate_db.errors import MigrationError
from regate_db.migrate import migrate, owner_problem
from tests.helpers import REPO, run
from tests.test_docs import Block, run_block, sql_blocks

SECURITY = REPO / "docs" / "security.md"
EXAMPLE_ROLES = (
    "regate_sec_alice",
    "regate_sec_bob",
    "regate_sec_viewer",
    "regate_sec_ops",
    "regate_sec_authenticator",
    "regate_sec_web",
)
OWNER = "regate_secdoc_owner"  # the doc's regate_owner, under a name no real installation uses
DOC_DSN = '"postgresql://installer@db.example.com/app"'


def fenced(path: Path, info: str) -> list[str]:
    """The bodies of the fenced blocks of a Markdown file whose info string is exactly ``info``."""
    found: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == f"```{info}":
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            found.append("\n".join(body))
        i += 1
    return found


def drop_example_roles(conn: psycopg.Connection[Any]) -> None:
    """Undo what the examples create (they end by doing so themselves; this is for a failed run)."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute("rollback")
    conn.execute("reset session authorization")
    conn.execute("reset role")
    conn.execute("drop schema if exists regate_sec_bob cascade")
    for role in EXAMPLE_ROLES:
        if conn.execute("select from pg_roles where rolname = %s", (role,)).fetchone() is not None:
            conn.execute(f'drop owned by "{role}"')
            conn.execute(f'drop role "{role}"')


def run_examples(conn: psycopg.Connection[Any], blocks: list[Block]) -> None:
    try:
        for block in blocks:
            run_block(conn, block)
    finally:
        drop_example_roles(conn)
    left = conn.execute("select count(*) from pg_roles where rolname = any(%s)", (list(EXAMPLE_ROLES),)).fetchone()
    assert left == (0,), "the examples' cleanup block left roles behind"


def require_superuser(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()
    if not row or not row[0]:
        pytest.skip("the examples play other logins with SET SESSION AUTHORIZATION: they need a superuser")


def test_security_examples_run_in_order(db: psycopg.Connection[Any]) -> None:
    require_superuser(db)
    blocks = sql_blocks(SECURITY)
    assert len(blocks) >= 40, "docs/security.md lost its examples"
    shown = {b.expect_error for b in blocks}
    for code in ("42501", "RG002", "RG006", "RG008", "RG009", "RG010", "RG011"):
        assert code in shown, f"docs/security.md has no failing example for {code}"
    run_examples(db, blocks)


def owner_install(conn: psycopg.Connection[Any], install: str) -> None:
    """Run the doc's install block on this database, for the renamed owner."""
    install = re.sub(r"\bregate_owner\b", OWNER, install)
    conn.execute(install.replace("database app", f'database "{conn.info.dbname}"').encode())


def assert_owned_by_owner(conn: psycopg.Connection[Any]) -> None:
    assert owner_problem(conn) is None
    owners = conn.execute(
        "select distinct pg_get_userbyid(p.proowner) from pg_proc as p"
        " where p.pronamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)"
        " union select pg_get_userbyid(c.relowner) from pg_class as c"
        " where c.relnamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)"
        " union select pg_get_userbyid(n.nspowner) from pg_namespace as n"
        " where n.nspname in ('regate', 'regate_internal')"
    ).fetchall()
    assert owners == [(OWNER,)]


@pytest.fixture
def owner_databases(new_database: Callable[[], str]) -> Iterator[Callable[[], str]]:
    """A factory of empty databases; afterwards, what the owner owns in them, and the owner, are dropped."""
    made: list[str] = []

    def make() -> str:
        made.append(new_database())
        return made[-1]

    yield make
    for dsn in made:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if conn.execute("select from pg_roles where rolname = %s", (OWNER,)).fetchone() is not None:
                drop_example_roles(conn)
                conn.execute(f'drop owned by "{OWNER}" cascade')
    if made:
        with psycopg.connect(made[0], autocommit=True) as conn:
            conn.execute(f'drop role if exists "{OWNER}"')


def test_install_with_a_dedicated_owner_then_the_examples(
    owner_databases: Callable[[], str], cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    (install,) = fenced(SECURITY, "sql install")
    (python,) = fenced(SECURITY, "python")
    (command,) = [
        line for block in fenced(SECURITY, "sh") for line in block.splitlines() if line.startswith("regate-db")
    ]
    assert "regate_owner" in install and "database app" in install and DOC_DSN in python and DOC_DSN in command

    # strict refuses an install that a superuser would own, changing nothing
    with psycopg.connect(owner_databases(), autocommit=True) as conn:
        require_superuser(conn)
        with pytest.raises(MigrationError, match="superuser"):
            migrate(conn, strict=True)
        assert conn.execute("select to_regnamespace('regate')").fetchone() == (None,)

    # the command line
    dsn = owner_databases()
    with psycopg.connect(dsn, autocommit=True) as conn:
        owner_install(conn, install)
        args = shlex.split(command)
        assert args[0] == "regate-db"
        args = [dsn if a == shlex.split(DOC_DSN)[0] else OWNER if a == "regate_owner" else a for a in args[1:]]
        proc = run(regate_cmd, cli_env, *args)
        assert proc.returncode == 0, proc.stderr
        assert "WARNING" not in proc.stdout + proc.stderr
        assert_owned_by_owner(conn)

    # Python, then every example of the page on that install
    dsn = owner_databases()
    python = python.replace(DOC_DSN, repr(dsn)).replace('"regate_owner"', repr(OWNER))
    with psycopg.connect(dsn, autocommit=True) as conn:
        owner_install(conn, install)
        report: list[str] = []
        exec(compile(python, f"{SECURITY.name} (python block)", "exec"), {"print": report.append})
        assert not [line for line in report if line.startswith("WARNING")], report
        assert_owned_by_owner(conn)
        run_examples(conn, sql_blocks(SECURITY))
