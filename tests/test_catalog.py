"""What the catalog checks see (every schema whose name starts with regate), and no object without a file."""

from __future__ import annotations

from typing import Any

import psycopg

from regate_db.migrate import migrate
from regate_db.resources import default_source
from tests.catalog import objects, orphans, shipped_text, snapshot

Conn = psycopg.Connection[Any]


def test_snapshot_covers_every_regate_schema(db: Conn) -> None:
    before = snapshot(db)
    db.execute("create schema regate_extra")
    db.execute("create function regate_extra._helper() returns int language sql as $$ select 1 $$")
    db.execute("create table regate_extra._state (id int primary key)")
    after = snapshot(db)
    assert [r[0] for r in after["schemas"]] == ["regate", "regate_extra", "regate_internal"]
    assert ("regate_extra", "regate_extra._helper()") in [r[:2] for r in after["functions"]]
    assert ("regate_extra", "_state") in [r[:2] for r in after["relations"]]
    # Other schemas stay out of it.
    db.execute("create schema unrelated")
    db.execute("create table unrelated.t (id int)")
    assert snapshot(db) == after != before


def test_snapshot_tells_a_moved_object_apart(db: Conn) -> None:
    db.execute("create schema regate_extra")
    before = snapshot(db)
    db.execute("alter table regate.gate_switch_events set schema regate_extra")
    after = snapshot(db)
    assert before["relations"] != after["relations"]
    assert ("regate_extra", "gate_switch_events") in [r[:2] for r in after["relations"]]


def test_every_object_of_a_fresh_install_is_named_in_the_shipped_files(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        migrate(conn)
        found = orphans(conn, shipped_text(default_source()))
    assert not found, "objects in the regate* schemas that no shipped SQL names: " + "; ".join(found)


def test_objects_lists_what_files_create_and_not_what_postgres_derives(db: Conn) -> None:
    listed = {(kind, schema, name) for kind, schema, name, _ in objects(db)}
    for expected in [
        ("function", "regate", "create_baseline"),
        ("function", "regate_internal", "_jobs_gate"),
        ("table", "regate", "local_training_jobs"),
        ("table", "regate_internal", "schema_migrations"),
        ("view", "regate", "validation_history"),
        ("trigger", "regate", "_500_gate_on_update"),
    ]:
        assert expected in listed
    names = {name for _, _, name in listed}
    # Identity sequences, row types, array types and constraint triggers come with what a file names.
    assert not names & {"local_training_metrics_id_seq", "_local_training_jobs", "local_training_jobs_pkey"}
    assert not any(name.startswith("RI_ConstraintTrigger") for name in names)
    assert ("type", "regate", "local_training_jobs") not in listed


def test_orphans_names_objects_no_file_defines(db: Conn) -> None:
    text = shipped_text(default_source())
    assert orphans(db, text) == []
    db.execute("create function regate._renamed_away(p int) returns int language sql as $$ select p $$")
    db.execute("create sequence regate_internal.stray_seq")
    db.execute("create type regate.\"Mood\" as enum ('ok')")
    db.execute("create table regate.left_over (id int generated always as identity)")
    db.execute(
        "create trigger _999_stale before insert on regate.local_training_jobs"
        " for each row execute function regate_internal._jobs_timestamps()"
    )
    db.execute("alter table regate.local_training_jobs enable row level security")
    db.execute("create policy stale_policy on regate.local_training_jobs using (true)")
    assert orphans(db, text) == [
        "function regate._renamed_away(integer)",
        "policy stale_policy on regate.local_training_jobs",
        "sequence regate_internal.stray_seq",
        "table regate.left_over",
        "trigger _999_stale on regate.local_training_jobs",
        'type regate."Mood"',
    ]
    # A name the text spells out (here in a drop statement) is not an orphan.
    assert "function regate._renamed_away(integer)" not in orphans(db, text + "drop function regate._renamed_away;")
