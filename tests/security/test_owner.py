"""Installing without a superuser: a dedicated NOLOGIN owner role with CREATE on the database is enough, and a
superuser-owned schema is warned about (refused with strict)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

from regate_db.errors import MigrationError
from regate_db.migrate import migrate, owner_problem
from regate_db.resources import default_source

Conn = psycopg.Connection[Any]

LATEST = default_source().versioned()[-1].version


def test_a_superuser_owner_is_warned_about_and_refused_when_strict(new_database: Callable[[], str]) -> None:
    with psycopg.connect(new_database(), autocommit=True) as conn:
        with pytest.raises(MigrationError, match=r"owned by superuser .* nothing was changed"):
            migrate(conn, strict=True)
        assert conn.execute("select to_regnamespace('regate')").fetchone() == (None,)
        messages: list[str] = []
        migrate(conn, report=messages.append)
        assert any(m.startswith("WARNING: schema regate is owned by superuser") for m in messages)


def test_a_non_superuser_owner_installs_and_runs_the_gate(new_database: Callable[[], str]) -> None:
    dsn = new_database()
    owner = f"rg_owner_{uuid.uuid4().hex[:8]}"
    writer = f"rg_writer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as su:
        dbname = su.info.dbname
        su.execute(f"create role {owner} nologin")
        su.execute(f'grant create on database "{dbname}" to {owner}')
        su.execute(f"grant {owner} to current_user")
        su.execute(f"create role {writer} login password 'pw'")
        try:
            messages: list[str] = []
            migrate(su, owner=owner, strict=True, report=messages.append)
            assert not [m for m in messages if m.startswith("WARNING")]
            assert owner_problem(su) is None
            owners = su.execute(
                "select distinct pg_get_userbyid(x.o) from (select relowner o from pg_class where relnamespace in"
                " ('regate'::regnamespace, 'regate_internal'::regnamespace) union all select proowner from pg_proc"
                " where pronamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)) x"
            ).fetchall()
            assert owners == [(owner,)]
            # admin work through the owner role, then a writer's job is judged
            su.execute(f"set role {owner}")
            su.execute(
                "select regate.create_baseline(model_name => 'm', metric_name => 'eval_loss', baseline_value => 0.4,"
                " min_relative_change => -0.05)"
            )
            su.execute("reset role")
            su.execute(f"grant regate_writer to {writer}")  # the roles' admin grants them (here: who created them)
            with psycopg.connect(conninfo.make_conninfo(dsn, user=writer, password="pw"), autocommit=True) as w:
                row = w.execute("insert into regate.local_training_jobs (model_name) values ('m') returning id")
                job = row.fetchone()
                assert job is not None
                w.execute(
                    "insert into regate.local_training_metrics (job_id, step, eval_loss) values (%s, 1, 0.9)", job
                )
                status = w.execute(
                    "update regate.local_training_jobs set status = 'completed' where id = %s"
                    " returning validation_status",
                    job,
                ).fetchone()
                assert status == ("failed",)
            # a second run as the owner is a no-op
            assert not migrate(su, owner=owner).changed
            # a run without --owner acts as the schema's owner: nothing ends up owned by the superuser
            assert migrate(su, reapply=True).repeatables_applied
            assert su.execute(
                "select distinct pg_get_userbyid(x.o) from (select relowner o from pg_class where relnamespace in"
                " ('regate'::regnamespace, 'regate_internal'::regnamespace) union all select proowner from pg_proc"
                " where pronamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)) x"
            ).fetchall() == [(owner,)]
        finally:
            su.execute("reset role")
            su.execute("drop schema if exists regate cascade")
            su.execute("drop schema if exists regate_internal cascade")
            su.execute(f"drop owned by {writer} cascade")
            su.execute(f"drop role {writer}")
            su.execute(f"drop owned by {owner} cascade")
            su.execute(f"drop role {owner}")


def test_a_schema_someone_else_made_first_is_not_installed_into(new_database: Callable[[], str]) -> None:
    """Schema squatting: a role with CREATE on the database makes schema regate before the first migrate."""
    squatter = f"rg_squat_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(new_database(), autocommit=True) as su:
        su.execute(f"create role {squatter} nologin")
        su.execute(f"create schema regate authorization {squatter}")
        try:
            with pytest.raises(MigrationError, match=f"schema regate exists, owned by {squatter}"):
                migrate(su)
            assert su.execute("select to_regnamespace('regate_internal')").fetchone() == (None,)
        finally:
            su.execute("drop schema regate cascade")
            su.execute(f"drop role {squatter}")


@pytest.mark.slow
def test_an_installer_that_may_not_create_roles_is_told_what_to_create(tmp_path: Any) -> None:
    """A fresh server (roles are cluster-wide, so the session's server already has them): the installer has CREATE on
    the database and nothing else. migrate installs, says which roles to create, and grants them after --reapply."""
    import tempfile
    from pathlib import Path

    from regate_db import connect as connect_mod
    from tests import conftest

    folder = Path(tempfile.mkdtemp(prefix="roles-", dir=conftest.test_root()))
    server = connect_mod._embedded_module().get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        uri = server.get_uri()
        with psycopg.connect(uri, autocommit=True) as su:
            su.execute("create role installer login")
            su.execute("grant create on database postgres to installer")
            assert su.execute("select count(*) from pg_roles where rolname like 'regate\\_%'").fetchone() == (0,)
            with psycopg.connect(conninfo.make_conninfo(uri, user="installer"), autocommit=True) as inst:
                messages: list[str] = []
                migrate(inst, report=messages.append)
                warned = [m for m in messages if "could not create role" in m]
                assert len(warned) == 3 and all("CREATE ROLE regate_" in m and "--reapply" in m for m in warned)
                assert inst.execute("select regate.schema_version()").fetchone() == (LATEST,)
                for role in ("regate_reader", "regate_writer", "regate_admin"):
                    su.execute(f"create role {role} nologin")
                assert not migrate(inst).changed  # same release: nothing to do, and no grants
                assert su.execute("select has_schema_privilege('regate_writer', 'regate', 'USAGE')").fetchone() == (
                    False,
                )
                migrate(inst, reapply=True)
                assert su.execute(
                    "select has_schema_privilege('regate_writer', 'regate', 'USAGE'),"
                    " has_function_privilege('regate_writer', 'regate.run_gate(text,jsonb,text,boolean,text[],uuid)',"
                    " 'EXECUTE'), has_table_privilege('regate_writer', 'regate.local_training_metrics', 'INSERT')"
                ).fetchone() == (True, True, True)
    finally:
        server.cleanup()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
