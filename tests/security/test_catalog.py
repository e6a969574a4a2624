"""The privilege boundary, read from the catalogs after a real migrate: what each role may execute, that no
function is PUBLIC's, definer functions pin their search_path, views run as the invoker, tenant tables force
row-level security, and regate_internal is out of everybody's reach."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.security.conftest import Logins

Conn = psycopg.Connection[Any]

READER_API = {
    "current_identity()",
    "is_admin()",
    "schema_version()",
    "gate_status()",
    "extract_final_metrics(uuid)",
    "effective_config(jsonb,text)",
    "should_block_deployment(regate.validation_results,jsonb)",
    "deployment_allowed(uuid,text)",
    "deployment_refusal(uuid,text)",
    "gate_stats_for(timestamp with time zone,timestamp with time zone,boolean)",
    "number_alerts()",
    "metrics_purge_status(uuid)",
}
WRITER_API = READER_API | {
    "validate_training_results(uuid,text,text)",
    "run_gate(text,jsonb,text,boolean,text[],uuid)",
    "deploy(uuid,text,text)",
    "validate_run_group(text,text)",
}
ADMIN_ONLY = {
    "create_baseline(text,text,double precision,boolean,double precision,double precision,double precision,text,"
    "text,text,text,text,integer,integer,text,double precision,double precision,text,boolean)",
    "create_baselines_from_job(uuid,text[],double precision,text,jsonb)",
    "deactivate_baseline(bigint)",
    "disable_gates(text)",
    "enable_gates(text)",
    "skip_gates_in_transaction(text)",
    "set_policy(text,boolean,boolean,boolean,boolean,text[],boolean,text[],boolean,boolean)",
    "override_gate(uuid,text,timestamp with time zone)",
    "confirm_override(bigint)",
    "set_identity_mode(text,text[],text)",
    "grant_usage(name,text)",
    "security_problems()",
    "purge_metrics(timestamp with time zone,text,integer,bigint)",
    "purge_metrics_preview(timestamp with time zone,text)",
}
DOCUMENTED = {"regate_reader": READER_API, "regate_writer": WRITER_API, "regate_admin": WRITER_API | ADMIN_ONLY}
TENANT_TABLES = ("local_training_jobs", "local_training_metrics", "validation_results")


def functions(db: Conn) -> list[tuple[str, str, bool, list[str] | None, int]]:
    """(schema, name(argument types) without the schema and spaces, definer?, settings, oid) of every function."""
    rows = db.execute(
        "select n.nspname, p.oid::regprocedure::text, p.prosecdef, p.proconfig, p.oid::int"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname in ('regate', 'regate_internal') order by 1, 2"
    ).fetchall()
    return [(r[0], r[1].removeprefix(r[0] + ".").replace(", ", ","), r[2], r[3], r[4]) for r in rows]


def executes(db: Conn, role: str, oid: int) -> bool:
    row = db.execute("select has_function_privilege(%s, %s::oid, 'EXECUTE')", (role, oid)).fetchone()
    return row is not None and bool(row[0])


def test_no_function_is_executable_by_public(db: Conn) -> None:
    rows = db.execute(
        "select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname in ('regate', 'regate_internal')"
        " and (p.proacl is null or exists (select from aclexplode(p.proacl) a where a.grantee = 0))"
    ).fetchall()
    assert rows == []


@pytest.mark.parametrize("role", sorted(DOCUMENTED))
def test_each_role_executes_exactly_the_documented_api(db: Conn, role: str) -> None:
    executable = {
        name if schema == "regate" else f"{schema}.{name}"
        for schema, name, _, _, oid in functions(db)
        if executes(db, role, oid)
    }
    assert executable == DOCUMENTED[role]


def test_a_login_without_a_regate_role_can_execute_nothing(db: Conn, logins: Logins) -> None:
    name = logins.role(level=None)
    for schema, fn, _, _, oid in functions(db):
        assert not executes(db, name, oid), f"{name} may execute {schema}.{fn}"


def test_every_definer_function_pins_its_search_path(db: Conn) -> None:
    definers = [(s, n, cfg) for s, n, definer, cfg, _ in functions(db) if definer]
    assert len(definers) > 10
    for schema, name, config in definers:
        assert config is not None and "search_path=pg_catalog, pg_temp" in config, f"{schema}.{name}: {config}"


def test_every_view_runs_as_the_invoker(db: Conn) -> None:
    views = db.execute(
        "select c.relname, c.reloptions from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('regate', 'regate_internal') and c.relkind = 'v' order by 1"
    ).fetchall()
    assert [v[0] for v in views] == [
        "blocked_jobs",
        "champions",
        "gate_stats",
        "override_status",
        "validation_checks",
        "validation_history",
    ]
    for name, options in views:
        assert options is not None and "security_invoker=true" in options, name


def test_row_level_security_is_enabled_and_forced_on_tenant_tables(db: Conn) -> None:
    rows = db.execute(
        "select c.relname, c.relrowsecurity, c.relforcerowsecurity from pg_class c"
        " where c.relnamespace = 'regate'::regnamespace and c.relname = any(%s) order by 1",
        (list(TENANT_TABLES),),
    ).fetchall()
    assert rows == [(t, True, True) for t in sorted(TENANT_TABLES)]


def test_regate_internal_is_granted_to_nobody(db: Conn) -> None:
    owner = db.execute("select nspowner from pg_namespace where nspname = 'regate_internal'").fetchone()
    assert owner is not None
    grants = db.execute(
        "select 'schema', a.grantee from pg_namespace n, aclexplode(n.nspacl) a"
        " where n.nspname = 'regate_internal' and a.grantee <> n.nspowner"
        " union all select c.relname, a.grantee from pg_class c, aclexplode(c.relacl) a"
        " where c.relnamespace = 'regate_internal'::regnamespace and a.grantee <> c.relowner"
    ).fetchall()
    assert grants == []


def test_everything_is_owned_by_the_schema_owner(db: Conn) -> None:
    """One owner for everything regate-db installs (a superuser here only because the test server's login is)."""
    rows = db.execute(
        "select distinct pg_get_userbyid(x.owner) from ("
        " select c.relowner as owner from pg_class c where c.relnamespace in"
        " ('regate'::regnamespace, 'regate_internal'::regnamespace)"
        " union all select p.proowner from pg_proc p where p.pronamespace in"
        " ('regate'::regnamespace, 'regate_internal'::regnamespace)"
        " union all select n.nspowner from pg_namespace n where n.nspname in ('regate', 'regate_internal')) x"
    ).fetchall()
    assert rows == [(db.info.user,)]
