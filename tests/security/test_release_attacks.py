"""The hostile suite for release control: what a writer, a reader or an admin with broad grants could try against
the deployment guard, the overrides and the alerts outbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from tests.security.conftest import Logins, complete, log, new_job, refused

Conn = psycopg.Connection[Any]


def blocked_job(conn: Conn) -> str:
    job = new_job(conn, config='{"blockOnCriticalFailures": true}')
    log(conn, job, 1, eval_loss=0.9)
    assert complete(conn, job)[0] == "blocked"
    return job


def test_release_definer_trigger_functions_refuse_to_fire_elsewhere(db: Conn) -> None:
    db.execute(
        "create temp table decoy (id bigint, seq bigint, job_id uuid, environment text, status text, blocked boolean,"
        " model_name text, override_id bigint, enabled boolean)"
    )
    for fn, when in (
        ("_deployments_guard", "before insert on decoy for each row"),
        ("_results_alert", "after insert on decoy for each row"),
        ("_overrides_alert", "after insert on decoy for each row"),
        ("_confirmations_alert", "after insert on decoy for each row"),
        ("_policy_alert", "after insert on decoy for each row"),
        ("_switch_alert", "after insert on decoy for each row"),
        ("_alerts_number", "after insert on decoy for each row"),
    ):
        db.execute(f"create trigger t_{fn} {when} execute function regate_internal.{fn}()")
        err = refused(db, "RG010", "insert into decoy (id) values (1)")
        assert "fires only where regate-db attached it" in str(err), fn
        db.execute(f"drop trigger t_{fn} on decoy")


def test_writers_and_readers_cannot_override_forge_or_rewrite_release_records(
    db: Conn, logins: Logins, baseline: Callable[..., None]
) -> None:
    name, eve = logins.login("writer")
    _, reader = logins.login("reader")
    job = blocked_job(eve)
    for sql in (
        f"select regate.override_gate('{job}', 'mine')",
        "select regate.confirm_override(1)",
        "select regate.deactivate_baseline(1)",
    ):
        refused(eve, "42501", sql)
        refused(reader, "42501", sql)
    # even with every table privilege, the records stay the database's
    db.execute(f"grant all on all tables in schema regate to {name}")
    refused(eve, "RG012", "insert into regate.deployments (job_id, environment) values (%s, 'production')", (job,))
    refused(
        eve,
        "42501",
        "insert into regate.gate_overrides (job_id, reason, overridden_by) values (%s, 'forged', 'postgres')",
        (job,),
    )
    refused(eve, "42501", "insert into regate.gate_override_confirmations (override_id) values (1)")
    refused(eve, "42501", "insert into regate.alerts (kind, model_name) values ('override', 'secure-model')")
    refused(eve, "42501", "truncate regate.deployments")
    refused(eve, "42501", "truncate regate.alerts")
    # an admin's override, then the writer deploys through it; nobody rewrites or removes the records
    override = db.execute("select id from regate.override_gate(%s, 'INC-1')", (job,)).fetchone()
    assert override is not None
    row = eve.execute(
        "insert into regate.deployments (job_id, environment, deployed_by) values (%s, 'production', 'somebody')"
        " returning deployed_by, override_id",
        (job,),
    ).fetchone()
    assert row == (name, override[0])
    for sql in (
        "update regate.deployments set environment = 'staging'",
        "delete from regate.deployments",
        "update regate.gate_overrides set expires_at = now() + interval '100 years'",
        "delete from regate.gate_overrides",
    ):
        refused(eve, "42501", sql)
        refused(db, "42501", sql)  # the owner too: append-only
    # migrate takes TRIGGER back; granted again, the guard refuses to run next to a foreign trigger
    db.execute(f"grant trigger on regate.deployments to {name}")
    db.execute(f"grant create on schema public to {name}")
    eve.execute(
        "create function public.rg_spy() returns trigger language plpgsql as"
        " $$ begin raise notice 'running as %', current_user; return new; end $$"
    )
    eve.execute(
        "create trigger aa_spy before insert on regate.deployments for each row execute function public.rg_spy()"
    )
    err = refused(db, "RG010", "select regate.deploy(%s, 'staging')", (job,))
    assert "aa_spy" in str(err)
    db.execute("drop trigger aa_spy on regate.deployments")


def test_a_tenant_sees_only_its_own_alerts_and_cannot_read_others_through_functions(
    db: Conn, logins: Logins, baseline: Callable[..., None]
) -> None:
    _, alice = logins.login("writer")
    _, bob = logins.login("writer")
    job = blocked_job(alice)
    assert [k for (k,) in alice.execute("select kind from regate.alerts order by id").fetchall()] == [
        "blocked",
        "first_failure",
    ]
    assert bob.execute("select count(*) from regate.alerts").fetchone() == (0,)
    # deployment_refusal / deployment_allowed say nothing about another owner's job
    assert bob.execute("select regate.deployment_refusal(%s)", (job,)).fetchone() == (f"no training job with id {job}",)
    assert bob.execute("select regate.deployment_allowed(%s)", (job,)).fetchone() == (False,)
    refused(bob, "RG008", "select regate.deploy(%s, 'production')", (job,))
    assert bob.execute("select count(*) from regate.blocked_jobs").fetchone() == (0,)
    assert alice.execute("select count(*) from regate.blocked_jobs").fetchone() == (1,)
    stats = bob.execute("select count(*) from regate.gate_stats").fetchone()
    assert stats == (0,)
