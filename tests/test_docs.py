"""The SQL reference and the README say what the database does: their examples run, and nothing goes undocumented.

Every ```sql block of docs/sql-reference.md (and of README.md) runs, in order, on a fresh migrated database.
Conventions inside a block:
- a first line ``-- expect-error: RG004`` means the block must fail with exactly that SQLSTATE;
- lines ``-- => a | b`` are the rows the block's last statement returns (columns joined by `` | ``, NULL as
  ``NULL``, booleans as ``t``/``f``, json as PostgreSQL prints it); without them the result is not checked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import REPO

SQL_REFERENCE = REPO / "docs" / "sql-reference.md"
README = REPO / "README.md"
JSON_OIDS = {114, 3802}  # json, jsonb

EXPECT_ERROR_RE = re.compile(r"^--\s*expect-error:\s*(\w{5})\s*$")
EXPECT_ROW_PREFIX = "-- => "


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    sql: str
    expect_error: str | None
    expect_rows: list[str] | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def sql_blocks(path: Path) -> list[Block]:
    """Every ```sql fenced block of a Markdown file, in order."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sql":
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"{path.name}:{start + 1}: unterminated ```sql block"
            first = body[0].strip() if body else ""
            match = EXPECT_ERROR_RE.match(first)
            rows = [line.strip()[len(EXPECT_ROW_PREFIX) :] for line in body if line.strip().startswith("-- =>")]
            blocks.append(
                Block(
                    path=path,
                    line=start + 1,
                    sql="\n".join(body),
                    expect_error=match.group(1) if match else None,
                    expect_rows=rows or None,
                )
            )
        i += 1
    return blocks


def _render(value: Any, type_oid: int) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    if type_oid in JSON_OIDS:
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "{" + ",".join(_render(v, 0) for v in value) + "}"
    return str(value)


def run_block(conn: psycopg.Connection[Any], block: Block) -> None:
    """Run one block as psql would run a script (one implicit transaction); fail with the block's line."""
    with conn.cursor() as cur:
        try:
            cur.execute(block.sql.encode())  # bytes: no parameters, so '%' in the examples is literal
        except psycopg.Error as exc:
            if block.expect_error is None:
                pytest.fail(f"{block.where}: the example failed: [{exc.sqlstate}] {exc}\n{block.sql}")
            assert exc.sqlstate == block.expect_error, (
                f"{block.where}: expected SQLSTATE {block.expect_error}, got [{exc.sqlstate}] {exc}"
            )
            return
        if block.expect_error is not None:
            pytest.fail(f"{block.where}: expected SQLSTATE {block.expect_error}, but the example succeeded")
        while cur.nextset():
            pass
        if block.expect_rows is None:
            return
        assert cur.description is not None, f"{block.where}: '-- =>' rows given, but the last statement returns none"
        oids = [d.type_code for d in cur.description]
        got = [" | ".join(_render(v, oid) for v, oid in zip(row, oids, strict=True)) for row in cur.fetchall()]
        assert got == block.expect_rows, f"{block.where}: the example returned other rows than it shows"


def _sections(text: str) -> dict[str, str]:
    """Markdown sections by heading text (without #, backticks): the text up to the next heading."""
    found: dict[str, str] = {}
    parts = re.split(r"^(#{2,4} .+)$", text, flags=re.MULTILINE)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        found[heading.lstrip("#").strip().replace("`", "")] = body
    return found


def _section(text: str, name: str) -> str:
    """The section whose heading starts with ``name`` (e.g. 'regate.create_baseline')."""
    matches = [body for heading, body in _sections(text).items() if re.match(re.escape(name) + r"\b", heading)]
    assert matches, f"docs/sql-reference.md has no section headed `{name}`"
    return "\n".join(matches)


@pytest.fixture(scope="module")
def reference() -> str:
    return SQL_REFERENCE.read_text(encoding="utf-8")


def test_sql_reference_examples_run_in_order(db: psycopg.Connection[Any]) -> None:
    blocks = sql_blocks(SQL_REFERENCE)
    assert len(blocks) >= 20, "the SQL reference lost its examples"
    for block in blocks:
        run_block(db, block)


def test_readme_sql_examples_run(db: psycopg.Connection[Any]) -> None:
    blocks = sql_blocks(README)
    assert blocks, "README.md has no ```sql example"
    for block in blocks:
        run_block(db, block)


def test_every_error_code_has_a_failing_example() -> None:
    raised = set()
    for path in sorted((REPO / "sql").glob("*.sql")):
        raised |= set(re.findall(r"errcode\s*=\s*'(RG\d{3})'", path.read_text(encoding="utf-8")))
        raised |= set(re.findall(r"_refuse_truncate\('(RG\d{3})'\)", path.read_text(encoding="utf-8")))
    assert raised, "found no RG error code in sql/"
    shown = {b.expect_error for b in sql_blocks(SQL_REFERENCE)}
    missing = sorted(raised - shown)
    assert not missing, f"error codes without an '-- expect-error' example in docs/sql-reference.md: {missing}"
    text = SQL_REFERENCE.read_text(encoding="utf-8")
    errors = _section(text, "Error codes")
    for code in sorted(raised | {"23514", "23505", "23503", "42501", "22023"}):
        assert f"`{code}`" in errors, f"error code {code} is not in the table of the 'Error codes' section"


def test_every_public_function_is_documented_with_its_parameters(db: psycopg.Connection[Any], reference: str) -> None:
    rows = db.execute(
        "select p.proname, coalesce(p.proargnames, '{}'), pg_get_function_identity_arguments(p.oid)"
        " from pg_proc as p where p.pronamespace = 'regate'::regnamespace and p.proname !~ '^_'"
        " order by p.proname"
    ).fetchall()
    assert len(rows) >= 10
    for name, argnames, identity in rows:
        section = _section(reference, f"regate.{name}")
        assert f"regate.{name}(" in section, f"regate.{name}: its section shows no signature"
        for arg in argnames:
            assert re.search(rf"\b{re.escape(arg)}\b", section), (
                f"regate.{name}({identity}): parameter {arg} is not in its section of docs/sql-reference.md"
            )


def test_every_table_and_view_is_documented_with_its_columns(db: psycopg.Connection[Any], reference: str) -> None:
    rows = db.execute(
        "select c.relnamespace::regnamespace::text || '.' || c.relname, c.relkind,"
        " array(select a.attname from pg_attribute as a"
        "       where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum)"
        " from pg_class as c where c.relnamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)"
        " and c.relkind in ('r', 'p', 'v', 'm') order by 1"
    ).fetchall()
    names = {r[0] for r in rows}
    assert {
        "regate_internal.schema_migrations",
        "regate_internal.schema_repeatables",
        "regate_internal.metric_spans",
        "regate.validation_history",
    } <= names
    for name, _kind, columns in rows:
        section = _section(reference, name)
        for column in columns:
            assert f"`{column}`" in section, f"{name}.{column} is not documented in its section"


def test_every_trigger_is_documented(db: psycopg.Connection[Any], reference: str) -> None:
    rows = db.execute(
        "select tgrelid::regclass::text, tgname from pg_trigger"
        " where not tgisinternal and tgrelid in (select oid from pg_class where relnamespace = 'regate'::regnamespace)"
    ).fetchall()
    assert rows
    triggers = _section(reference, "Triggers")
    for table, trigger in rows:
        assert re.search(rf"`{re.escape(trigger)}`[^\n]*`{re.escape(table)}`", triggers), (
            f"trigger {trigger} on {table} is not in the table of the 'Triggers' section"
        )


def test_every_status_and_config_key_is_documented(db: psycopg.Connection[Any], reference: str) -> None:
    statuses = _section(reference, "Statuses")
    constraints = db.execute(
        "select conname, pg_get_constraintdef(oid) from pg_constraint"
        " where connamespace = 'regate'::regnamespace and conname ~ '_(status|source)_valid$'"
    ).fetchall()
    assert len(constraints) >= 3
    for conname, definition in constraints:
        for value in re.findall(r"'(\w+)'::text", definition):
            assert f"`{value}`" in statuses, f"{value} (allowed by {conname}) is not in the 'Statuses' section"
    for outcome in ("passed", "failed", "missing", "invalid", "no_baseline"):
        assert f"`{outcome}`" in statuses, f"check outcome {outcome} is not in the 'Statuses' section"

    config = _section(reference, "Gate config")
    row = db.execute("select regate.effective_config('{}')").fetchone()
    assert row is not None

    def leaves(obj: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        for key, value in obj.items():
            out += leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [(f"{prefix}{key}", value)]
        return out

    for key, default in leaves(row[0]):
        line = next((ln for ln in config.splitlines() if f"`{key}`" in ln), None)
        assert line is not None, f"config key {key} is not in the 'Gate config' section"
        assert f"`{json.dumps(default)}`" in line, f"the default of {key} ({json.dumps(default)}) is not on its line"
