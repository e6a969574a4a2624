"""psql describes every public object of schema regate: `\\d+ regate.local_training_jobs`, `\\df+ regate.deploy`,
`\\dv+` and `\\dd` show a comment on each table, column, view, view column, function and trigger
(sql/950_comments.sql), and schema regate holds only the documented API: everything else is in regate_internal,
which nobody may use anyway."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from regate_db.migrate import migrate
from tests.released import Release, releases
from tests.security.test_catalog import ADMIN_ONLY, WRITER_API

Conn = psycopg.Connection[Any]

# (kind, label, description) of every public object of schema regate, the schema included. Labels are what psql
# users type: regate.deploy(uuid, text, text), regate.local_training_jobs.status, _500_gate_on_update on ....
PUBLIC_OBJECTS = """
    select 'schema', n.nspname::text, obj_description(n.oid, 'pg_namespace')
    from pg_namespace as n where n.nspname = 'regate'
    union all
    select case when c.relkind = 'v' then 'view' else 'table' end, c.oid::regclass::text,
           obj_description(c.oid, 'pg_class')
    from pg_class as c where c.relnamespace = 'regate'::regnamespace and c.relkind in ('r', 'p', 'v')
    union all
    select case when c.relkind = 'v' then 'view column' else 'column' end,
           format('%s.%I', c.oid::regclass, a.attname), col_description(c.oid, a.attnum)
    from pg_class as c join pg_attribute as a on a.attrelid = c.oid
    where c.relnamespace = 'regate'::regnamespace and c.relkind in ('r', 'p', 'v')
      and a.attnum > 0 and not a.attisdropped
    union all
    select 'function', p.oid::regprocedure::text, obj_description(p.oid, 'pg_proc')
    from pg_proc as p where p.pronamespace = 'regate'::regnamespace
    union all
    select 'trigger', format('%I on %s', t.tgname, t.tgrelid::regclass), obj_description(t.oid, 'pg_trigger')
    from pg_trigger as t join pg_class as c on c.oid = t.tgrelid
    where c.relnamespace = 'regate'::regnamespace and not t.tgisinternal
    order by 1, 2"""

PLACEHOLDER_RE = re.compile(r"\b(todo|tbd|fixme|xxx)\b", re.IGNORECASE)
MIN_LENGTH = 20


def public_objects(db: Conn) -> list[tuple[str, str, str | None]]:
    return [(str(k), str(label), d) for k, label, d in db.execute(PUBLIC_OBJECTS).fetchall()]


def undescribed(db: Conn) -> list[str]:
    return [f"{kind} {label}" for kind, label, description in public_objects(db) if not (description or "").strip()]


def test_every_public_object_has_a_comment(db: Conn) -> None:
    found = public_objects(db)
    kinds = {kind for kind, _, _ in found}
    assert kinds == {"schema", "table", "column", "view", "view column", "function", "trigger"}
    missing = undescribed(db)
    assert not missing, f"{len(missing)} public objects without a COMMENT (add them to sql/950_comments.sql):\n" + (
        "\n".join(missing)
    )


def test_no_comment_is_a_placeholder(db: Conn) -> None:
    bad = [
        f"{kind} {label}: {description!r}"
        for kind, label, description in public_objects(db)
        if description is not None
        and (len(description.strip()) < MIN_LENGTH or PLACEHOLDER_RE.search(description) is not None)
    ]
    assert not bad, "comments that say nothing yet:\n" + "\n".join(bad)


def test_comments_survive_a_reapply_of_the_repeatable_files(db: Conn) -> None:
    """Views and triggers are dropped and re-created whenever sql/ is applied: their comments must come back."""
    migrate(db, reapply=True)
    assert undescribed(db) == []


RELEASES = releases()


@pytest.mark.slow
@pytest.mark.parametrize("release", RELEASES, ids=[r.version for r in RELEASES])
def test_a_database_upgraded_from_a_release_is_described_too(
    release: Release, tmp_path: Path, new_database: Callable[[], str]
) -> None:
    old = release.extract(tmp_path / release.version)
    with psycopg.connect(new_database(), autocommit=True) as conn:
        release.migrate_function(tmp_path / release.version)(conn, old)
        migrate(conn)
        assert undescribed(conn) == []


def test_schema_regate_holds_exactly_the_documented_functions(db: Conn) -> None:
    """The functions in regate are the public API of tests/security/test_catalog.py; helpers, trigger functions
    and everything else that is not API live in regate_internal."""
    rows = db.execute(
        "select p.oid::regprocedure::text from pg_proc as p where p.pronamespace = 'regate'::regnamespace"
    ).fetchall()
    public = {r[0].removeprefix("regate.").replace(", ", ",") for r in rows}
    assert public == WRITER_API | ADMIN_ONLY
    elsewhere = db.execute(
        "select t.tgrelid::regclass::text, t.tgname, p.oid::regprocedure::text"
        " from pg_trigger as t join pg_class as c on c.oid = t.tgrelid join pg_proc as p on p.oid = t.tgfoid"
        " where c.relnamespace = 'regate'::regnamespace and not t.tgisinternal"
        " and p.pronamespace <> 'regate_internal'::regnamespace"
    ).fetchall()
    assert elsewhere == [], "trigger functions outside regate_internal"
