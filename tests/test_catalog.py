"""What the catalog checks see: every schema whose name starts with regate, not only schema regate."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.catalog import snapshot

Conn = psycopg.Connection[Any]


def test_snapshot_covers_every_regate_schema(db: Conn) -> None:
    before = snapshot(db)
    db.execute("create schema regate_internal")
    db.execute("create function regate_internal._helper() returns int language sql as $$ select 1 $$")
    db.execute("create table regate_internal._state (id int primary key)")
    after = snapshot(db)
    assert [r[0] for r in after["schemas"]] == ["regate", "regate_internal"]
    assert ("regate_internal", "regate_internal._helper()") in [r[:2] for r in after["functions"]]
    assert ("regate_internal", "_state") in [r[:2] for r in after["relations"]]
    # Other schemas stay out of it.
    db.execute("create schema unrelated")
    db.execute("create table unrelated.t (id int)")
    assert snapshot(db) == after != before


def test_snapshot_tells_a_moved_object_apart(db: Conn) -> None:
    db.execute("create schema regate_internal")
    before = snapshot(db)
    db.execute("alter table regate.gate_switch_events set schema regate_internal")
    after = snapshot(db)
    assert before["relations"] != after["relations"]
    assert ("regate_internal", "gate_switch_events") in [r[:2] for r in after["relations"]]
