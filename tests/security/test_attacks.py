"""Every attack class of the security issue, run as real login roles over real connections: each is refused
with its exact SQLSTATE, or finds nothing (zero rows)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.blocking import Blocked
from tests.security.conftest import Logins, complete, log, new_job, refused

Conn = psycopg.Connection[Any]
GHOST = "00000000-0000-4000-8000-00000000dead"


def trigger_functions(db: Conn) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "select p.oid::regprocedure::text from pg_proc p"
            " where p.pronamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)"
            " and p.prorettype = 'trigger'::regtype order by 1"
        ).fetchall()
    ]


def spy_on(conn: Conn, table: str) -> None:
    """The grantee's own trigger zz_spy on `table` (it holds TRIGGER on it and CREATE on schema public): a function
    of its own that would run with the rights of whoever fires it."""
    conn.execute(
        "create or replace function public.rg_spy() returns trigger language plpgsql as"
        " $$ begin raise notice 'running as %', current_user; return new; end $$"
    )
    conn.execute(f"create trigger zz_spy after insert on {table} for each row execute function public.rg_spy()")


def test_no_trigger_function_can_be_attached_to_a_hostile_temp_table(db: Conn, logins: Logins) -> None:
    """A temp table whose column type is the attacker's domain with a function of the attacker's: attaching any
    regate-db trigger function to it would run that function as the schema owner. Refused: no EXECUTE."""
    _, eve = logins.login("writer")
    eve.execute(
        "create function pg_temp.grab(v text) returns boolean language sql as"
        " $$ select pg_catalog.current_setting('is_superuser') = 'on' $$"
    )
    eve.execute("create domain pg_temp.evil as text check (pg_temp.grab(value))")
    eve.execute(
        "create temp table hostile (id uuid, status text, config jsonb, model_name pg_temp.evil, model_version text,"
        " owner_id text, validation_status text, validation_result_id bigint, job_id uuid, step bigint)"
    )
    names = trigger_functions(db)
    assert len(names) >= 10
    for fn in names:
        err = refused(eve, "42501", f"create trigger t before insert on hostile for each row execute function {fn}")
        assert "permission denied" in str(err)


def test_definer_trigger_functions_refuse_to_fire_elsewhere(db: Conn) -> None:
    """Only the owner could attach them elsewhere (EXECUTE is theirs alone); even then they refuse (RG010)."""
    db.execute(
        "create temp table decoy (id uuid, status text, config jsonb, model_name text, model_version text,"
        " owner_id text, validation_status text, validation_result_id bigint, job_id uuid, step bigint)"
    )
    for fn, when in (
        ("_jobs_gate", "before insert on decoy for each row"),
        ("_jobs_check_config", "before insert on decoy for each row"),
        ("_jobs_keep_verdicts", "before delete on decoy for each row"),
        ("_jobs_forget_candidates", "after delete on decoy for each row"),
        ("_metrics_append_only", "before delete on decoy for each row"),
        ("_metrics_after_insert", "after insert on decoy referencing new table as new_rows for each statement"),
    ):
        db.execute("insert into decoy (id) values (gen_random_uuid())")
        db.execute(f"create trigger t_{fn} {when} execute function regate_internal.{fn}()")
        sql = "insert into decoy (id) values (gen_random_uuid())" if "insert" in when else "delete from decoy"
        err = refused(db, "RG010", sql)
        assert "fires only where regate-db attached it" in str(err)
        db.execute(f"drop trigger t_{fn} on decoy")


def test_no_internal_function_is_callable(db: Conn, logins: Logins) -> None:
    _, eve = logins.login("admin")  # even an admin: internals are the owner's
    rows = db.execute(
        "select p.oid::regprocedure::text, p.pronargs from pg_proc p"
        " where p.pronamespace = 'regate_internal'::regnamespace and p.prorettype <> 'trigger'::regtype"
    ).fetchall()
    assert len(rows) > 30
    for fn, nargs in rows:
        name = fn.split("(")[0]
        refused(eve, "42501", f"select {name}({', '.join(['null'] * nargs)})")


@pytest.mark.parametrize("level", ["reader", "writer"])
def test_admin_functions_are_refused(db: Conn, logins: Logins, level: str) -> None:
    _, eve = logins.login(level)
    for sql in (
        "select regate.create_baseline(model_name => 'm', metric_name => 'eval_loss', baseline_value => 1,"
        " threshold => 2)",
        f"select regate.create_baselines_from_job('{GHOST}')",
        "select regate.disable_gates('mine')",
        "select regate.enable_gates()",
        "select regate.skip_gates_in_transaction('mine')",
        "select regate.set_policy(model_name => 'm', enable_gates => false)",
        "select regate.set_identity_mode('login')",
        "select regate.grant_usage('postgres', 'admin')",
    ):
        refused(eve, "42501", sql)


def test_verdicts_cannot_be_forged_or_rerolled(db: Conn, logins: Logins, baseline: Callable[..., None]) -> None:
    _, eve = logins.login("writer")
    job = new_job(eve, config='{"blockOnCriticalFailures": true}')
    log(eve, job, 1, eval_loss=0.9)
    assert complete(eve, job)[0] == "blocked"
    # direct writes of verdicts and gate columns
    refused(
        eve,
        "42501",
        "insert into regate.validation_results (job_id, model_name, status, source) values"
        " (%s, 'secure-model', 'passed', 'auto')",
        (job,),
    )
    refused(eve, "RG009", "update regate.local_training_jobs set validation_status = 'passed' where id = %s", (job,))
    refused(
        eve,
        "42501",
        "insert into regate.model_baselines (model_name, metric_name, baseline_value,"
        " greater_is_better, threshold) values ('secure-model', 'eval_loss', 9, false, 9)",
    )
    refused(eve, "42501", "update regate.model_baselines set is_active = false")
    # re-rolling: reopen, change model, config, version; validate against another model
    refused(eve, "RG011", "update regate.local_training_jobs set status = 'running' where id = %s", (job,))
    refused(eve, "RG011", "update regate.local_training_jobs set model_name = 'no-such-model' where id = %s", (job,))
    refused(eve, "RG011", "update regate.local_training_jobs set model_version = 'v9' where id = %s", (job,))
    refused(
        eve,
        "RG011",
        """update regate.local_training_jobs set config = '{"enableRegressionGates": false}'
            where id = %s""",
        (job,),
    )
    refused(eve, "RG011", "update regate.local_training_jobs set owner_id = 'someone' where id = %s", (job,))
    refused(
        eve, "42501", "select regate.validate_training_results(job_id => %s, model_name => 'no-such-model')", (job,)
    )
    # a re-check by the tenant is recorded but leaves the job blocked
    eve.execute("select regate.validate_training_results(%s)", (job,))
    # metrics after completion
    refused(
        eve, "RG002", "insert into regate.local_training_metrics (job_id, step, eval_loss) values (%s, 2, 0.1)", (job,)
    )
    # deleting the verdict's job, truncating
    refused(eve, "RG006", "delete from regate.local_training_jobs where id = %s", (job,))
    for table in ("local_training_jobs", "local_training_metrics", "validation_results", "model_baselines"):
        refused(eve, "42501", f"truncate regate.{table} cascade")
    assert eve.execute("select validation_status from regate.local_training_jobs where id = %s", (job,)).fetchone() == (
        "blocked",
    )
    # a fake transition table cannot plant candidates: the ingest trigger function cannot be attached
    refused(eve, "42501", "select regate_internal._final_metrics(%s)", (job,))


def test_job_config_cannot_loosen_an_enforcing_policy(db: Conn, logins: Logins, baseline: Callable[..., None]) -> None:
    db.execute(
        "select regate.set_policy(model_name => 'secure-model', block_on_critical_failures => true, enforce => true)"
    )
    _, eve = logins.login("writer")
    notices: list[str] = []
    eve.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    for config in (
        '{"enableRegressionGates": false}',
        '{"blockOnCriticalFailures": false}',
        '{"regressionGateConfig": {"metricsToValidate": ["nothing_baselined"]}}',
        '{"regressionGateConfig": {"failOpen": true}}',
    ):
        job = new_job(eve, config=config)
        log(eve, job, 1, eval_loss=0.9)
        assert complete(eve, job)[0] == "blocked", config
    assert any("were ignored" in n for n in notices)
    # tightening stays allowed: requireBaselines on a model without baselines
    db.execute("select regate.set_policy(model_name => 'bare-model', enforce => true)")
    job = new_job(
        eve,
        model="bare-model",
        config='{"blockOnCriticalFailures": true, "regressionGateConfig": {"requireBaselines": true}}',
    )
    assert complete(eve, job)[0] == "blocked"
    # the kill switch still beats everything
    db.execute("select regate.disable_gates('rollback')")
    job = new_job(eve)
    assert complete(eve, job) == ("not_run", None)


def test_tenants_cannot_see_or_touch_each_other(db: Conn, logins: Logins, baseline: Callable[..., None]) -> None:
    _, alice = logins.login("writer")
    _, bob = logins.login("writer")
    _, reader = logins.login("reader")
    job = new_job(alice)
    log(alice, job, 1, eval_loss=0.9)
    assert complete(alice, job)[0] == "failed"
    for table in (
        "local_training_jobs",
        "local_training_metrics",
        "validation_results",
        "validation_history",
        "validation_checks",
    ):
        assert bob.execute(f"select count(*) from regate.{table}").fetchone() == (0,), table
        assert reader.execute(f"select count(*) from regate.{table}").fetchone() == (0,), table
    assert bob.execute("update regate.local_training_jobs set status = 'cancelled' where id = %s", (job,)).rowcount == 0
    assert bob.execute("delete from regate.local_training_jobs where id = %s", (job,)).rowcount == 0
    # missing and not-yours are one error
    for target in (job, GHOST):
        e1 = refused(
            bob,
            "42501",
            "insert into regate.local_training_metrics (job_id, step, eval_loss) values (%s, 1, 0.1)",
            (target,),
        )
        assert "row-level security" in str(e1)
        e2 = refused(bob, "RG008", "select regate.validate_training_results(%s)", (target,))
        e3 = refused(
            bob,
            "RG008",
            "select regate.run_gate(model_name => 'secure-model',"
            " current_metrics => '{\"eval_loss\": 0.1}', job_id => %s)",
            (target,),
        )
        assert str(e2).replace(target, "X") == f"no training job with id X\nCONTEXT:  {str(e2).split('CONTEXT:  ')[1]}"
        assert "no training job" in str(e3)
        assert bob.execute("select regate.extract_final_metrics(%s)", (target,)).fetchone() == (None,)
    # the owner cannot be chosen by the client
    row = bob.execute(
        "insert into regate.local_training_jobs (model_name, owner_id) values ('m', %s) returning owner_id",
        (alice.info.user,),
    ).fetchone()
    assert row == (bob.info.user,)
    # an admin sees everything
    assert db.execute("select count(*) from regate.validation_results").fetchone() == (1,)


def test_who_is_an_admin(db: Conn, logins: Logins) -> None:
    """regate.is_admin() per kind of login: a superuser, a member of regate_admin and a member of the role that owns
    schema regate are admins; writers and readers are not."""
    row = db.execute("select nspowner::regrole::text from pg_namespace where nspname = 'regate'").fetchone()
    assert row is not None
    owner = row[0]
    assert db.execute("select regate.is_admin(), rolsuper from pg_roles where rolname = session_user").fetchone() == (
        True,
        True,
    )
    expected: dict[str, bool] = {}
    conns: dict[str, Conn] = {}
    for level, admin in (("admin", True), ("writer", False), ("reader", False)):
        _, conns[level] = logins.login(level)
        expected[level] = admin
    member = logins.role("reader")
    db.execute(f'grant "{owner}" to {member}')
    conns["member of the owner"], expected["member of the owner"] = logins.connect(member), True
    for kind, conn in conns.items():
        assert conn.execute("select regate.is_admin()").fetchone() == (expected[kind],), kind


def test_metric_rows_row_level_security_both_ways(db: Conn, logins: Logins) -> None:
    """Row-level security on metric rows tests the job first on insert and is_admin() first on read: either way a
    tenant logs into and reads its own jobs only, and an admin login (not a superuser, so the policy applies to it)
    logs into and reads every job's."""
    _, alice = logins.login("writer")
    _, bob = logins.login("writer")
    _, admin = logins.login("admin")
    job = new_job(alice)
    log(alice, job, 1, eval_loss=0.5)
    log(admin, job, 2, eval_loss=0.4)
    for target in (job, GHOST):
        refused(bob, "42501", "insert into regate.local_training_metrics (job_id, step) values (%s, 3)", (target,))
    refused(admin, "23503", "insert into regate.local_training_metrics (job_id, step) values (%s, 3)", (GHOST,))
    count = "select count(*) from regate.local_training_metrics where job_id = %s"
    assert alice.execute(count, (job,)).fetchone() == (2,)
    assert admin.execute(count, (job,)).fetchone() == (2,)
    assert bob.execute(count, (job,)).fetchone() == (0,)


def test_broad_grants_and_default_privileges_are_harmless(
    db: Conn, logins: Logins, baseline: Callable[..., None]
) -> None:
    name, eve = logins.login("writer")
    job = new_job(eve)
    log(eve, job, 1, eval_loss=0.9)
    db.execute(f"grant all on all tables in schema regate to {name}")
    db.execute(f"grant all on all sequences in schema regate to {name}")
    db.execute(f"grant all on schema regate to {name}")
    db.execute(f"alter default privileges in schema regate grant all on tables to {name}")
    db.execute(f"alter default privileges grant all on schemas to {name}")
    problems = [p for p, _ in db.execute("select * from regate.security_problems()").fetchall()]
    assert f"{name} may create objects in schema regate" in problems
    assert f"{name} holds REFERENCES, TRIGGER, TRUNCATE on regate.validation_results" in problems
    # While anyone but the owner may create objects in schema regate, the gate refuses to run (RG010): an overload
    # of a regate function of theirs would catch an admin's call.
    err = refused(eve, "RG010", "update regate.local_training_jobs set status = 'completed' where id = %s", (job,))
    assert f"role {name} may create objects in schema regate" in str(err)
    # migrate takes back what only the owner may hold, and keeps regate_internal closed
    from regate_db.migrate import migrate

    messages: list[str] = []
    migrate(db, reapply=True, report=messages.append)
    assert not [p for p, _ in db.execute("select * from regate.security_problems()").fetchall() if name in p]
    refused(
        eve,
        "42501",
        "create function regate.create_baseline(model_name text, metric_name text,"
        " baseline_value numeric) returns int language sql as $$ select 1 $$",
    )
    refused(eve, "42501", "select * from regate_internal._metric_candidates")
    refused(eve, "42501", "insert into regate.gate_switch_events (enabled) values (false)")
    refused(
        eve,
        "42501",
        "insert into regate.gate_policies (model_name, enable_gates, enforce) values ('secure-model', false, false)",
    )
    refused(eve, "42501", "update regate.model_baselines set is_active = false")
    refused(
        eve,
        "42501",
        "insert into regate.validation_results (model_name, status, source, owner_id)"
        f" values ('secure-model', 'passed', 'auto', '{name}')",
    )
    refused(eve, "42501", "truncate regate.gate_switch_events")
    refused(eve, "42501", "select setval('regate.validation_results_id_seq', 1)")
    refused(
        eve,
        "42501",
        "create trigger zz_spy after insert on regate.validation_results"
        " for each row execute function regate_internal._jobs_timestamps()",
    )
    # TRIGGER granted again after migrate: a trigger of the grantee's own on a table the gate writes would run as
    # the schema owner. The gate refuses to run next to it, so nothing of the grantee's runs with those rights.
    db.execute(f"grant trigger on regate.validation_results, regate.local_training_metrics to {name}")
    db.execute(f"grant create on schema public to {name}")
    spy_on(eve, "regate.validation_results")
    err = refused(eve, "RG010", "update regate.local_training_jobs set status = 'completed' where id = %s", (job,))
    assert "zz_spy" in str(err)
    db.execute("drop trigger zz_spy on regate.validation_results")
    # on the tables every other tenant writes, it would run as them: the gate refuses that too
    eve.execute(
        "create trigger zz_spy before insert on regate.local_training_metrics"
        " for each row execute function public.rg_spy()"
    )
    refused(
        eve, "RG010", "insert into regate.local_training_metrics (job_id, step, eval_loss) values (%s, 2, 0.5)", (job,)
    )
    refused(eve, "RG010", "update regate.local_training_jobs set status = 'completed' where id = %s", (job,))
    assert any("zz_spy" in p for p, _ in db.execute("select * from regate.security_problems()").fetchall())
    db.execute("drop trigger zz_spy on regate.local_training_metrics")
    assert complete(eve, job)[0] == "failed"


@pytest.mark.parametrize(
    ("schema", "function"),
    [("public", 'public."regate_internal.spy"'), ('"regate_internal.spy"', '"regate_internal.spy".spy')],
    ids=["name-with-the-prefix", "schema-with-the-prefix"],
)
def test_a_trigger_function_named_like_regate_internal_is_still_foreign(
    db: Conn, logins: Logins, baseline: Callable[..., None], schema: str, function: str
) -> None:
    """The catalog check's fast path trusts a trigger whose function prints as regate_internal.<name>. A function of
    another role whose schema-qualified name starts with those characters prints quoted, so it takes the exact
    lookup: refused (RG010), on ingest and on completion."""
    name, eve = logins.login("writer")
    job = new_job(eve)
    if schema != "public":
        db.execute(f"create schema {schema} authorization {name}")
    db.execute(f"grant create on schema public to {name}")
    db.execute(f"grant trigger on regate.local_training_metrics to {name}")
    eve.execute(
        f"create function {function}() returns trigger language plpgsql as"
        " $$ begin raise notice 'running as %', current_user; return new; end $$"
    )
    eve.execute(
        "create trigger zz_spy before insert on regate.local_training_metrics"
        f" for each row execute function {function}()"
    )
    err = refused(
        eve, "RG010", "insert into regate.local_training_metrics (job_id, step, eval_loss) values (%s, 2, 0.5)", (job,)
    )
    assert "zz_spy" in str(err)
    refused(eve, "RG010", "update regate.local_training_jobs set status = 'completed' where id = %s", (job,))
    db.execute("drop trigger zz_spy on regate.local_training_metrics")
    log(eve, job, 2, eval_loss=0.9)


def test_a_trigger_added_while_a_session_logs_is_refused_at_its_next_insert(
    db: Conn, logins: Logins, baseline: Callable[..., None]
) -> None:
    """A session that logs keeps the catalog check's answer in a cached plan (only regate-db's triggers on the
    tables); a trigger another role attaches meanwhile re-plans it: the session's next insert is refused (RG010),
    and logs again once the trigger is gone."""
    _, eve = logins.login("writer")
    job = new_job(eve)
    for step in (1, 2, 3):
        log(eve, job, step, eval_loss=0.9)
    mallory, mal = logins.login("writer")
    db.execute(f"grant trigger on regate.local_training_jobs to {mallory}")
    db.execute(f"grant create on schema public to {mallory}")
    mal.execute(
        "create function public.rg_watch() returns trigger language plpgsql as"
        " $$ begin raise notice 'running as %', current_user; return null; end $$"
    )
    mal.execute(
        "create trigger zz_watch after update on regate.local_training_jobs"
        " for each statement execute function public.rg_watch()"
    )
    err = refused(
        eve, "RG010", "insert into regate.local_training_metrics (job_id, step, eval_loss) values (%s, 4, 0.5)", (job,)
    )
    assert "zz_watch" in str(err)
    db.execute("drop trigger zz_watch on regate.local_training_jobs")
    log(eve, job, 4, eval_loss=0.9)


def test_the_completions_cached_catalog_check_sees_new_triggers_and_grants(
    db: Conn, logins: Logins, baseline: Callable[..., None]
) -> None:
    """A session that completed a job keeps the catalog check's answer in a cached plan; a trigger attached to a
    table the gate writes, or CREATE granted on schema regate, re-plans it: the session's next completion is
    refused (RG010) until they are gone."""
    name, eve = logins.login("writer")
    first, second = new_job(eve), new_job(eve)
    log(eve, first, 1, eval_loss=0.9)
    log(eve, second, 1, eval_loss=0.9)
    assert complete(eve, first)[0] == "failed"
    db.execute(f"grant create on schema regate to {name}")
    err = refused(eve, "RG010", "update regate.local_training_jobs set status = 'completed' where id = %s", (second,))
    assert f"role {name} may create objects in schema regate" in str(err)
    db.execute(f"revoke create on schema regate from {name}")
    db.execute(f"grant trigger on regate.validation_results to {name}")
    db.execute(f"grant create on schema public to {name}")
    spy_on(eve, "regate.validation_results")
    err = refused(eve, "RG010", "update regate.local_training_jobs set status = 'completed' where id = %s", (second,))
    assert "zz_spy" in str(err)
    db.execute("drop trigger zz_spy on regate.validation_results")
    assert complete(eve, second)[0] == "failed"


def test_gateway_end_users_are_tenants_in_their_own_namespace(
    db: Conn, logins: Logins, baseline: Callable[..., None]
) -> None:
    """In gateway mode the end user comes from request.jwt.claims, only for the gateway's login; an end user is
    never an admin (whatever roles the gateway may reach) and never a login of the same name."""
    gateway = logins.role("writer")
    db.execute(f"grant regate_admin to {gateway}")  # a gateway that can also reach admin: its users still cannot
    victim, victim_conn = logins.login("writer")
    victim_job = new_job(victim_conn)
    db.execute("select regate.set_identity_mode('gateway', gateway_roles => array[%s], claim => 'sub')", (gateway,))
    gw = logins.connect(gateway, autocommit=False)
    gw.execute("select set_config('request.jwt.claims', %s, true)", (f'{{"sub": "{victim}"}}',))
    assert gw.execute("select regate.current_identity(), regate.is_admin()").fetchone() == (f"jwt:{victim}", False)
    assert gw.execute("select count(*) from regate.local_training_jobs where id = %s", (victim_job,)).fetchone() == (0,)
    job = new_job(gw)
    log(gw, job, 1, eval_loss=0.39)
    assert complete(gw, job)[0] == "passed"
    gw.commit()
    # without the claim the gateway's session owns nothing and may write nothing
    refused(gw, "42501", "insert into regate.local_training_jobs (model_name) values ('m')")
    gw.rollback()
    # a claim means nothing to anyone but the gateway
    victim_conn.execute("select set_config('request.jwt.claims', '{\"sub\": \"someone\"}', false)")
    assert victim_conn.execute("select regate.current_identity()").fetchone() == (victim,)
    row = db.execute(
        "select owner_id, caused_by, end_user from regate.validation_results where job_id = %s", (job,)
    ).fetchone()
    assert row == (f"jwt:{victim}", gateway, f"jwt:{victim}")
    db.execute("select regate.set_identity_mode('login')")


def test_writers_cannot_lock_what_the_gate_reads(db: Conn, logins: Logins) -> None:
    _, eve = logins.login("writer")
    for table in ("model_baselines", "gate_policies", "validation_results", "gate_switch_events"):
        eve.execute("begin")
        refused(eve, "42501", f"lock table regate.{table} in exclusive mode")
        eve.execute("rollback")
    eve.execute("begin")
    refused(eve, "42501", "lock table regate_internal._metric_candidates in access share mode")
    eve.execute("rollback")


def test_a_lock_on_the_jobs_table_delays_but_never_passes(
    db: Conn, logins: Logins, baseline: Callable[..., None]
) -> None:
    """Writers update their jobs directly, so they may lock that table: others' completions wait, then are judged."""
    _, alice = logins.login("writer")
    _, eve = logins.login("writer")
    job = new_job(alice)
    log(alice, job, 1, eval_loss=0.9)
    eve.execute("begin")
    eve.execute("lock table regate.local_training_jobs in access exclusive mode")
    waiting = Blocked(db, alice, complete, job)
    eve.execute("rollback")
    assert waiting.join()[0] == "failed"


def test_a_pooled_connection_carries_no_gate_state_to_the_next_client(
    db: Conn, logins: Logins, baseline: Callable[..., None]
) -> None:
    """What a transaction pooler does: one server connection serves an admin, then a tenant's transaction."""
    _, alice = logins.login("writer")
    job = new_job(alice)
    log(alice, job, 1, eval_loss=0.9)
    admin = logins.connect(logins.role("admin"))
    with admin.transaction():
        admin.execute("select regate.skip_gates_in_transaction('maintenance')")
    admin.execute("set regate.enabled = off")  # session state a pooler would hand on
    admin.execute("set regate.skip_xact = '1'")  # a stale or forged skip marker
    # the next "client" of this server connection completes a job
    row = admin.execute(
        "update regate.local_training_jobs set status = 'completed' where id = %s returning validation_status", (job,)
    ).fetchone()
    assert row == ("failed",)


def test_fifty_jobs_of_ten_tenants_complete_concurrently(
    db: Conn, logins: Logins, baseline: Callable[..., None]
) -> None:
    tenants = [logins.login("writer") for _ in range(10)]
    jobs: dict[str, list[str]] = {}
    for name, conn in tenants:
        jobs[name] = []
        for i in range(5):
            job = new_job(conn)
            log(conn, job, 1, eval_loss=0.39 if i % 2 else 0.9)
            jobs[name].append(job)
    errors: list[BaseException] = []
    start = threading.Barrier(len(tenants))

    def run(conn: Conn, mine: list[str]) -> None:
        try:
            start.wait()
            with conn.transaction():
                conn.execute(
                    "update regate.local_training_jobs set status = 'completed' where id = any(%s::uuid[])", (mine,)
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(conn, jobs[name])) for name, conn in tenants]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert db.execute("select count(*), count(distinct job_id) from regate.validation_results").fetchone() == (50, 50)
    for name, conn in tenants:
        rows = conn.execute("select job_id::text, status from regate.validation_results order by 1").fetchall()
        assert sorted(r[0] for r in rows) == sorted(jobs[name])
        assert {r[1] for r in rows} == {"passed", "failed"}


def test_default_privileges_set_before_the_first_migrate_give_nothing_away(
    new_database: Callable[[], str], logins: Logins, pg_server: Any
) -> None:
    """An installer's database whose default privileges already grant everything to some role, then migrate:
    nothing internal is reachable, nothing lets the role create or attach code, and the public functions it may
    execute check the caller themselves."""
    from regate_db.migrate import migrate

    name = logins.role(level=None)
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as su:
        try:
            for kind in ("tables", "sequences", "functions", "schemas", "types"):
                su.execute(f"alter default privileges grant all on {kind} to {name}")
            migrate(su)
            rows = su.execute(
                "select 'function ' || p.oid::regprocedure::text from pg_proc p"
                " where p.pronamespace = 'regate_internal'::regnamespace"
                " and has_function_privilege(%(r)s, p.oid, 'EXECUTE')"
                " union all select 'schema ' || n.nspname from pg_namespace n"
                " where n.nspname in ('regate', 'regate_internal') and has_schema_privilege(%(r)s, n.oid, 'CREATE')"
                " union all select 'usage regate_internal'"
                " where has_schema_privilege(%(r)s, 'regate_internal', 'USAGE')"
                " union all select 'internal ' || c.relname from pg_class c"
                " where c.relnamespace = 'regate_internal'::regnamespace and c.relkind in ('r', 'S')"
                " and (has_table_privilege(%(r)s, c.oid, 'SELECT') or has_table_privilege(%(r)s, c.oid, 'INSERT'))"
                " union all select 'trigger ' || c.relname from pg_class c"
                " where c.relnamespace = 'regate'::regnamespace and c.relkind = 'r'"
                " and has_table_privilege(%(r)s, c.oid, 'TRIGGER')"
                " union all select 'sequence ' || c.relname from pg_class c"
                " where c.relnamespace = 'regate'::regnamespace"
                " and case when c.relkind = 'S' then has_sequence_privilege(%(r)s, c.oid, 'UPDATE') end",
                {"r": name},
            ).fetchall()
            assert rows == []
            with psycopg.connect(
                psycopg.conninfo.make_conninfo(dsn, user=name, password=f"pw-{name}"), autocommit=True
            ) as x:
                for sql in ("select regate.disable_gates('mine')", "select regate.set_identity_mode('login')"):
                    refused(x, "42501", sql)
                refused(
                    x,
                    "42501",
                    "insert into regate.validation_results (model_name, status, source) values ('m', 'passed', 'gate')",
                )
        finally:
            su.execute(f"drop owned by {name}")
