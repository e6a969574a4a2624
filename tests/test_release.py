"""Release control (issue 9): the deployment guard and its messages, champions, overrides (scope, expiry, the
four-eyes rule), policy precedence, the monitoring figures and the alerts outbox, on a real server with real
logins."""

from __future__ import annotations

import json
import select
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.helpers import complete, log, message, new_job, refused
from tests.security.conftest import Logins

Conn = psycopg.Connection[Any]
MODEL = "fraud-detector"


@pytest.fixture
def logins(db: Conn, db_dsn: str) -> Iterator[Logins]:
    made = Logins(db, db_dsn)
    yield made
    made.close()


@pytest.fixture
def gated(db: Conn) -> Conn:
    """A critical eval_loss baseline of MODEL: at most 0.5."""
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'eval_loss', baseline_value => 0.4,"
        " greater_is_better => false, threshold => 0.5)",
        (MODEL,),
    )
    return db


def run_job(db: Conn, eval_loss: float, *, model: str = MODEL, config: dict[str, Any] | None = None) -> uuid.UUID:
    job = new_job(db, model, config=config if config is not None else {"blockOnCriticalFailures": True})
    log(db, job, 1, eval_loss=eval_loss)
    complete(db, job)
    return job


def status(db: Conn, job: uuid.UUID) -> str:
    row = db.execute("select validation_status from regate.local_training_jobs where id = %s", (job,)).fetchone()
    assert row is not None
    return str(row[0])


def allowed(db: Conn, job: uuid.UUID) -> bool:
    row = db.execute("select regate.deployment_allowed(%s, 'production')", (job,)).fetchone()
    assert row is not None
    return bool(row[0])


def deploy(db: Conn, job: uuid.UUID, env: str = "production") -> dict[str, Any]:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    row = cur.execute("select * from regate.deploy(%s, %s)", (job, env)).fetchone()
    assert row is not None
    return row


def champion(db: Conn, env: str = "production") -> uuid.UUID | None:
    row = db.execute(
        "select job_id from regate.champions where model_name = %s and environment = %s", (MODEL, env)
    ).fetchone()
    return None if row is None else row[0]


# --- the deployment guard ---------------------------------------------------------------------------------------


def test_a_deployment_is_refused_with_its_reason_for_every_role(gated: Conn, logins: Logins) -> None:
    db = gated
    running = new_job(db, MODEL)
    err = refused(db, "RG012", "select regate.deploy(%s, 'production')", (running,))
    assert (
        message(err) == f"deployment refused: job {running} is running, not completed: only a completed job may deploy"
    )

    blocked = run_job(db, 0.9)
    assert status(db, blocked) == "blocked" and not allowed(db, blocked)
    # a superuser is bound too, and a plain INSERT is the same door
    err = refused(
        db, "RG012", "insert into regate.deployments (job_id, environment) values (%s, 'production')", (blocked,)
    )
    text = message(err)
    assert f"job {blocked} of model {MODEL} is blocked by its verdict #" in text
    assert "critical checks failed: eval_loss 0.9 is above the threshold 0.5 (lower is better)" in text
    assert f"select regate.override_gate('{blocked}', reason => '...')" in text
    assert err.diag.message_hint is not None and "override" in err.diag.message_hint
    assert db.execute("select count(*) from regate.deployments").fetchone() == (0,)

    # warn-only failures, warnings, passes and not_run jobs may deploy
    failed = run_job(db, 0.9, config={})
    passed = run_job(db, 0.3)
    db.execute("select regate.disable_gates('INC-7: eval set broken')")
    not_run = run_job(db, 0.9)
    db.execute("select regate.enable_gates()")
    assert [status(db, j) for j in (failed, passed, not_run)] == ["failed", "passed", "not_run"]
    assert all(allowed(db, j) for j in (failed, passed, not_run))

    # a completed job without any verdict (completed while regate-db did not run) may not
    db.execute("set session_replication_role = replica")
    bare = new_job(db, MODEL, status="completed")
    db.execute("reset session_replication_role")
    err = refused(db, "RG012", "select regate.deploy(%s, 'production')", (bare,))
    assert "has no verdict" in message(err) and "regate.validate_training_results" in message(err)

    # the database fills in who and what, whatever the client sends
    db.execute(
        "insert into regate.deployments (job_id, environment, deployed_by, model_name, validation_status)"
        " values (%s, 'staging', 'somebody-else', 'other-model', 'passed')",
        (failed,),
    )
    row = db.execute(
        "select deployed_by = session_user, model_name, validation_status from regate.deployments where job_id = %s",
        (failed,),
    ).fetchone()
    assert row == (True, MODEL, "failed")
    err = refused(db, "22023", "select regate.deploy(%s, ' ')", (passed,))
    assert "environment must be a non-empty name" in message(err)
    # append-only, for everyone
    refused(db, "42501", "update regate.deployments set environment = 'production'")
    refused(db, "42501", "delete from regate.deployments")
    refused(db, "42501", "truncate regate.deployments")

    # a writer deploys its own jobs only; a reader none
    _, alice = logins.login("writer")
    _, bob = logins.login("writer")
    _, reader = logins.login("reader")
    mine = run_job(alice, 0.3)
    assert deploy(alice, mine)["deployed_by"] != "postgres"
    err = refused(bob, "RG008", "select regate.deploy(%s, 'production')", (mine,))
    assert message(err) == f"no training job with id {mine}"
    refused(bob, "RG008", "select regate.deploy(%s, 'production')", (uuid.uuid4(),))
    refused(reader, "42501", "select regate.deploy(%s, 'production')", (mine,))
    refused(reader, "42501", "insert into regate.deployments (job_id, environment) values (%s, 'x')", (mine,))


def test_an_error_verdict_refuses_deployment_when_the_policy_fails_closed(gated: Conn) -> None:
    db = gated
    job = new_job(db, MODEL, config={"regressionGateConfig": {"failOpen": True}})
    log(db, job, 1, eval_loss=0.3)
    db.execute("alter function regate_internal._checks(text, text, text [], jsonb, jsonb, uuid) rename to _checks_gone")
    try:
        assert complete(db, job)[0] == "error"
    finally:
        db.execute(
            "alter function regate_internal._checks_gone(text, text, text [], jsonb, jsonb, uuid) rename to _checks"
        )
    assert allowed(db, job)  # failOpen: an error lets it through
    # the policy is read at deployment: an enforcing policy fails closed by default
    db.execute("select regate.set_policy(%s, enforce => true)", (MODEL,))
    err = refused(db, "RG012", "select regate.deploy(%s, 'production')", (job,))
    assert "has a validation error as its verdict" in message(err) and "fails closed" in message(err)
    assert "42883" in message(err)
    row = db.execute("select reason is not null from regate.blocked_jobs where job_id = %s", (job,)).fetchone()
    assert row == (True,)


# --- champions ----------------------------------------------------------------------------------------------------


def test_the_latest_deployment_is_the_champion_and_rollback_deploys_an_earlier_job(gated: Conn) -> None:
    db = gated
    v1, v2 = run_job(db, 0.35), run_job(db, 0.32)
    assert champion(db) is None
    deploy(db, v1)
    assert champion(db) == v1
    deploy(db, v2)
    deploy(db, v1, "staging")
    assert champion(db) == v2 and champion(db, "staging") == v1
    deploy(db, v1)  # rollback
    assert champion(db) == v1
    row = db.execute(
        "select validation_status, deployed_by = session_user, override_id from regate.champions"
        " where model_name = %s and environment = 'production'",
        (MODEL,),
    ).fetchone()
    assert row == ("passed", True, None)
    assert db.execute("select count(*) from regate.deployments").fetchone() == (4,)


# --- overrides ----------------------------------------------------------------------------------------------------


def test_an_override_covers_the_verdict_it_names_until_it_expires(gated: Conn, logins: Logins) -> None:
    db = gated
    job = run_job(db, 0.9)
    _, writer = logins.login("writer")
    refused(writer, "42501", "select regate.override_gate(%s, 'please')", (job,))
    for reason in ("", "   "):
        refused(db, "22023", "select regate.override_gate(%s, %s)", (job, reason))
    refused(db, "22023", "select regate.override_gate(%s, 'late', now() - interval '1 minute')", (job,))
    refused(db, "RG008", "select regate.override_gate(%s, 'ghost')", (uuid.uuid4(),))
    passed = run_job(db, 0.3)
    err = refused(db, "22023", "select regate.override_gate(%s, 'nothing to do')", (passed,))
    assert "may deploy already" in message(err)

    row = db.execute(
        "select id, validation_result_id, overridden_by = session_user, requires_confirmation"
        " from regate.override_gate(%s, 'INC-9: known label noise', now() + interval '1 hour')",
        (job,),
    ).fetchone()
    assert row is not None
    override_id, result_id, by_me, needs_second = row
    assert by_me and not needs_second
    current = db.execute("select validation_result_id from regate.local_training_jobs where id = %s", (job,))
    assert (result_id,) == current.fetchone()
    assert allowed(db, job)
    assert deploy(db, job)["override_id"] == override_id
    refused(db, "42501", "delete from regate.gate_overrides")
    refused(db, "42501", "update regate.gate_overrides set reason = 'other'")

    # a later verdict that blocks again is not covered
    db.execute("select regate.validate_training_results(%s)", (job,))
    assert status(db, job) == "blocked"
    err = refused(db, "RG012", "select regate.deploy(%s, 'production')", (job,))
    assert "is blocked by its verdict" in message(err)
    assert db.execute("select in_effect from regate.override_status where id = %s", (override_id,)).fetchone() == (
        False,
    )

    # expiry: an override whose time has passed no longer lets the job through
    db.execute("select regate.override_gate(%s, 'short window', now() + interval '1 second')", (job,))
    assert allowed(db, job)
    db.execute("select pg_sleep(1.1)")
    assert not allowed(db, job)


def test_the_four_eyes_rule_needs_a_second_different_admin(gated: Conn, logins: Logins) -> None:
    db = gated
    db.execute("select regate.set_policy(null, override_requires_second_admin => true)")
    job = run_job(db, 0.9)
    first, first_conn = logins.login("admin")
    second, second_conn = logins.login("admin")
    notices: list[str] = []
    first_conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    row = first_conn.execute(
        "select id, requires_confirmation, overridden_by from regate.override_gate(%s, 'INC-11')", (job,)
    ).fetchone()
    assert row is not None and row[1:] == (True, first)
    override_id = row[0]
    assert any("second admin" in n for n in notices)
    assert not allowed(db, job)
    err = refused(first_conn, "42501", "select regate.confirm_override(%s)", (override_id,))
    assert "a second, different admin must confirm it" in message(err)
    _, writer = logins.login("writer")
    refused(writer, "42501", "select regate.confirm_override(%s)", (override_id,))
    confirmed = second_conn.execute("select confirmed_by from regate.confirm_override(%s)", (override_id,)).fetchone()
    assert confirmed == (second,)
    assert allowed(db, job)
    refused(second_conn, "22023", "select regate.confirm_override(%s)", (override_id,))
    assert deploy(second_conn, job)["override_id"] == override_id
    # the model's own policy decides over the default one
    db.execute("select regate.set_policy(%s, override_requires_second_admin => false)", (MODEL,))
    other = run_job(db, 0.9)
    row = db.execute("select requires_confirmation from regate.override_gate(%s, 'INC-12')", (other,)).fetchone()
    assert row == (False,)
    refused(db, "22023", "select regate.confirm_override(%s)", (override_id + 1,))


# --- policies: precedence ---------------------------------------------------------------------------------------


def test_policy_precedence_defaults_default_policy_model_policy_job(gated: Conn) -> None:
    db = gated

    def effective(config: dict[str, Any], model: str = MODEL) -> dict[str, Any]:
        row = db.execute("select regate.effective_config(%s, %s)", (json.dumps(config), model)).fetchone()
        assert row is not None
        return dict(row[0])

    assert effective({})["blockOnCriticalFailures"] is False  # built-in default
    db.execute("select regate.set_policy(null, block_on_critical_failures => true)")
    assert effective({})["blockOnCriticalFailures"] is True  # default policy
    db.execute("select regate.set_policy(%s, block_on_critical_failures => false)", (MODEL,))
    assert effective({})["blockOnCriticalFailures"] is False  # the model's policy
    assert effective({}, "other")["blockOnCriticalFailures"] is True
    assert effective({"blockOnCriticalFailures": True})["blockOnCriticalFailures"] is True  # job config
    # enforcing: the job may tighten, never loosen, also what the policy inherits
    db.execute("select regate.set_policy(%s, block_on_critical_failures => true, enforce => true)", (MODEL,))
    cfg = effective({"blockOnCriticalFailures": False, "enableRegressionGates": False})
    assert cfg["blockOnCriticalFailures"] is True and cfg["enableRegressionGates"] is True
    assert cfg["regressionGateConfig"]["failOpen"] is False
    job = run_job(db, 0.9, config={"blockOnCriticalFailures": False, "enableRegressionGates": False})
    row = db.execute(
        "select r.blocked, r.config -> 'blockOnCriticalFailures', r.policy_id = p.id, r.policy_version = p.version"
        " from regate.validation_results r, regate.gate_policies p"
        " where r.job_id = %s and p.model_name = %s",
        (job, MODEL),
    ).fetchone()
    assert row == (True, True, True, True)
    # the kill switch beats everything
    db.execute("select regate.disable_gates('rollback')")
    assert status(db, run_job(db, 0.9)) == "not_run"


# --- monitoring ---------------------------------------------------------------------------------------------------


def test_gate_stats_count_a_known_history(gated: Conn) -> None:
    db = gated
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'accuracy', baseline_value => 0.9,"
        " greater_is_better => true, threshold => 0.8, severity => 'warning')",
        (MODEL,),
    )

    def job_with(eval_loss: float, accuracy: float, config: dict[str, Any]) -> uuid.UUID:
        j = new_job(db, MODEL, config=config)
        log(db, j, 1, {"accuracy": accuracy}, eval_loss=eval_loss)
        complete(db, j)
        return j

    block = {"blockOnCriticalFailures": True}
    job_with(0.3, 0.95, {})  # passed
    job_with(0.3, 0.95, {})  # passed
    job_with(0.3, 0.70, {})  # warning
    job_with(0.9, 0.95, {})  # failed
    b1 = job_with(0.9, 0.95, block)  # failed, blocked
    job_with(0.9, 0.95, block)  # failed, blocked
    db.execute("select regate.override_gate(%s, 'label noise')", (b1,))
    db.execute("alter function regate_internal._checks(text, text, text [], jsonb, jsonb, uuid) rename to _checks_gone")
    job_with(0.3, 0.95, {})  # error (fail open)
    db.execute("alter function regate_internal._checks_gone(text, text, text [], jsonb, jsonb, uuid) rename to _checks")
    db.execute("select regate.disable_gates('maintenance')")
    job_with(0.9, 0.95, block)  # not_run
    db.execute("select regate.enable_gates()")
    run_job(db, 0.3, model="typo-model", config={})  # no_baselines
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    rows = {r["model_name"]: r for r in cur.execute("select * from regate.gate_stats").fetchall()}
    assert set(rows) == {MODEL, "typo-model", None}
    m = rows[MODEL]
    figures = {k: m[k] for k in ("validations", "passed", "warning", "failed", "no_baselines", "errors", "blocked")}
    assert figures == {
        "validations": 7,
        "passed": 2,
        "warning": 1,
        "failed": 3,
        "no_baselines": 0,
        "errors": 1,
        "blocked": 2,
    }
    assert (m["not_run"], m["overrides"]) == (1, 1)
    assert m["pass_rate"] == pytest.approx(2 / 7)
    assert m["override_rate"] == pytest.approx(1 / 3)
    assert m["error_rate"] == pytest.approx(1 / 7)
    assert rows["typo-model"]["no_baselines"] == 1 and rows["typo-model"]["validations"] == 1
    overall = rows[None]
    assert (overall["validations"], overall["no_baselines"], overall["blocked"], overall["not_run"]) == (8, 1, 2, 1)
    assert overall["last_validation_at"] >= m["last_validation_at"]
    # windows and days
    later = datetime.now(UTC) + timedelta(days=1)
    assert db.execute("select count(*) from regate.gate_stats_for(since => %s)", (later,)).fetchone() == (0,)
    days = cur.execute("select * from regate.gate_stats_for(by_day => true) where model_name = %s", (MODEL,)).fetchall()
    assert len(days) == 1 and days[0]["day"] is not None and days[0]["validations"] == 7
    # blocked_jobs: the blocked job that was not overridden, with its failing check
    blocked = cur.execute("select * from regate.blocked_jobs").fetchall()
    assert len(blocked) == 1
    assert [c["metric_name"] for c in blocked[0]["failing_checks"]] == ["eval_loss"]
    assert "is blocked by its verdict" in blocked[0]["reason"]


def test_a_completion_without_baselines_says_so(gated: Conn) -> None:
    notices: list[str] = []
    gated.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    run_job(gated, 0.3, model="fraud-detecter", config={})
    assert any("no active baseline applies to model fraud-detecter" in n for n in notices)


# --- alerts -------------------------------------------------------------------------------------------------------


def _listen(dsn: str) -> Conn:
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("listen regate_alerts")
    return conn


def _received(conn: Conn, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    for notify in conn.notifies(timeout=timeout, stop_after=count):
        assert notify.channel == "regate_alerts"
        got.append(json.loads(notify.payload))
    return got


def test_each_alert_kind_reaches_a_listener_in_id_order_and_none_after_a_rollback(
    gated: Conn, db_dsn: str, logins: Logins
) -> None:
    db = gated
    listener = _listen(db_dsn)
    try:
        blocked = run_job(db, 0.9)  # blocked + first_failure
        run_job(db, 0.3)  # passed: no alert
        run_job(db, 0.9, config={})  # failed, not the first: no alert
        db.execute("select regate.override_gate(%s, 'INC-3')", (blocked,))
        db.execute("select regate.set_policy(%s, fail_open => false)", (MODEL,))
        db.execute("select regate.disable_gates('INC-4')")
        db.execute("select regate.enable_gates()")
        job = new_job(db, MODEL, config={"regressionGateConfig": {"failOpen": True}})
        db.execute(
            "alter function regate_internal._checks(text, text, text [], jsonb, jsonb, uuid) rename to _checks_gone"
        )
        complete(db, job)  # error
        db.execute(
            "alter function regate_internal._checks_gone(text, text, text [], jsonb, jsonb, uuid) rename to _checks"
        )
        got = _received(listener, 7)
        kinds = [g["kind"] for g in got]
        assert kinds == [
            "blocked",
            "first_failure",
            "override",
            "policy_changed",
            "gates_switched",
            "gates_switched",
            "error",
        ]
        ids = [g["id"] for g in got]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert got[0] == {
            "id": ids[0],
            "kind": "blocked",
            "model": MODEL,
            "job": str(blocked),
            "result": got[0]["result"],
        }
        assert isinstance(got[0]["result"], int)
        # the outbox holds the same rows, numbered, with details
        rows = db.execute("select id, kind, details from regate.alerts order by id").fetchall()
        assert [r[0] for r in rows] == ids and [r[1] for r in rows] == kinds
        assert rows[0][2]["failed_metrics"] == ["eval_loss"]
        assert len(json.dumps(got)) < 8000

        # a rolled-back transaction sends nothing and leaves no row
        with db.transaction(force_rollback=True):
            run_job(db, 0.9)
            db.execute("select regate.disable_gates('never mind')")
        assert _received(listener, 1, timeout=0.5) == []
        assert db.execute("select count(*) from regate.alerts").fetchone() == (len(ids),)

        # tenants read their own alerts and the global ones; clients never write them
        _, alice = logins.login("writer")
        run_job(alice, 0.9)
        seen = alice.execute("select kind from regate.alerts order by id").fetchall()
        assert [k for (k,) in seen] == ["policy_changed", "gates_switched", "gates_switched", "blocked"]
        refused(alice, "42501", "insert into regate.alerts (kind) values ('blocked')")
        _, admin = logins.login("admin")
        db.execute("grant insert, update, delete on regate.alerts to regate_admin")  # even granted: no
        refused(admin, "42501", "insert into regate.alerts (kind) values ('blocked')")
        # row-level security has no policy for writes: nothing matches
        assert admin.execute("update regate.alerts set kind = 'error'").rowcount == 0
        assert admin.execute("delete from regate.alerts").rowcount == 0
        assert db.execute("select count(*) from regate.alerts where kind = 'error'").fetchone() == (1,)
    finally:
        listener.close()


def test_alert_ids_follow_commit_order(gated: Conn, db_dsn: str) -> None:
    """An alert of a transaction that started first but commits last gets the larger id: a consumer that has read
    every id up to n never finds a smaller one later."""
    db = gated
    listener = _listen(db_dsn)
    first = psycopg.connect(db_dsn)
    second = psycopg.connect(db_dsn)
    try:
        first.execute("select regate.disable_gates('first, commits last')")  # alert row inserted, not numbered
        second.execute("select regate.set_policy('m2', enforce => true)")
        second.commit()
        first.commit()
        got = _received(listener, 2)
        assert [g["kind"] for g in got] == ["policy_changed", "gates_switched"]
        assert got[0]["id"] < got[1]["id"]
        rows = db.execute("select id, kind from regate.alerts order by id").fetchall()
        assert [r[1] for r in rows] == ["policy_changed", "gates_switched"]
    finally:
        for conn in (first, second, listener):
            conn.close()


def test_savepoint_rollback_drops_its_alert_but_not_the_others(gated: Conn, db_dsn: str) -> None:
    db = gated
    listener = _listen(db_dsn)
    try:
        with db.transaction():
            db.execute("select regate.set_policy('a', enforce => true)")
            with pytest.raises(psycopg.errors.RaiseException), db.transaction():
                db.execute("select regate.set_policy('b', enforce => true)")
                db.execute("do $$ begin raise exception 'undo b'; end $$")
        got = _received(listener, 2, timeout=1)
        assert [(g["kind"], g["model"]) for g in got] == [("policy_changed", "a")]
    finally:
        listener.close()


def test_notifications_survive_select_based_waiting(db_dsn: str, gated: Conn) -> None:
    """A plain LISTEN client (as psql or node-postgres would) sees the payload; no psycopg generator needed."""
    conn = psycopg.connect(db_dsn, autocommit=True)
    try:
        conn.execute("listen regate_alerts")
        gated.execute("select regate.disable_gates('select-based')")
        ready, _, _ = select.select([conn.fileno()], [], [], 5)
        assert ready
        notes = list(conn.notifies(timeout=1, stop_after=1))
        assert json.loads(notes[0].payload)["kind"] == "gates_switched"
    finally:
        conn.close()


def test_a_transaction_that_numbers_early_and_idles_never_reorders_the_outbox(
    gated: Conn, db_dsn: str, logins: Logins
) -> None:
    """SET CONSTRAINTS ALL IMMEDIATE makes the numbering trigger fire at the statement, so its lock is held until
    that transaction ends. Another alerting commit waits for it at most 2 s and leaves its alert unnumbered: it is
    numbered (and notified) after the early one, by the next numbering or regate.number_alerts()."""
    idle = psycopg.connect(db_dsn)
    other = psycopg.connect(db_dsn, autocommit=True)
    listener = _listen(db_dsn)
    _, reader = logins.login("reader")
    warnings: list[str] = []
    other.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
    try:
        idle.execute("set constraints all immediate")
        idle.execute("select regate.set_policy('early', enforce => true)")  # numbered now, lock held
        other.execute("select regate.disable_gates('must not hang')")  # commits despite the idle holder
        assert any("left unnumbered" in w for w in warnings)
        assert gated.execute("select count(*) from regate.alerts where id is null").fetchone() == (1,)
        assert reader.execute("select regate.number_alerts()").fetchone() == (None,)  # lock still busy
        idle.commit()
        assert reader.execute("select regate.number_alerts()").fetchone() == (1,)
        assert reader.execute("select regate.number_alerts()").fetchone() == (0,)
        got = _received(listener, 2)
        assert [g["kind"] for g in got] == ["policy_changed", "gates_switched"]
        assert got[0]["id"] < got[1]["id"]
        rows = gated.execute("select id, kind from regate.alerts order by id").fetchall()
        assert [r[1] for r in rows] == ["policy_changed", "gates_switched"] and rows[0][0] == got[0]["id"]
    finally:
        for conn in (idle, other, listener):
            conn.close()


def test_an_admin_deactivates_a_baseline_and_it_stops_applying(gated: Conn, logins: Logins) -> None:
    db = gated
    row = db.execute("select id from regate.model_baselines where model_name = %s", (MODEL,)).fetchone()
    assert row is not None
    _, admin = logins.login("admin")
    _, writer = logins.login("writer")
    refused(writer, "42501", "select regate.deactivate_baseline(%s)", (row[0],))
    assert admin.execute("select is_active from regate.deactivate_baseline(%s)", (row[0],)).fetchone() == (False,)
    assert admin.execute("select is_active from regate.deactivate_baseline(%s)", (row[0],)).fetchone() == (False,)
    err = refused(admin, "22023", "select regate.deactivate_baseline(%s)", (row[0] + 1000,))
    assert message(err) == f"deactivate_baseline: no baseline with id {row[0] + 1000}"
    job = run_job(db, 0.9)
    assert status(db, job) == "passed"  # nothing applies any more: no_baselines


def test_the_sql_of_the_alerts_doc_runs(db: Conn) -> None:
    from tests.helpers import REPO
    from tests.test_docs import run_block, sql_blocks

    blocks = sql_blocks(REPO / "docs" / "alerts.md")
    assert len(blocks) >= 2
    for block in blocks:
        run_block(db, block)


def test_a_model_policy_inherits_enforce_from_the_default_policy(gated: Conn) -> None:
    db = gated
    db.execute("select regate.set_policy(null, block_on_critical_failures => true, enforce => true)")
    loosen = json.dumps({"blockOnCriticalFailures": False})
    # giving the model a policy of its own for another setting keeps the default's enforcement
    db.execute("select regate.set_policy(%s, override_requires_second_admin => true)", (MODEL,))
    row = db.execute("select regate.effective_config(%s, %s) -> 'blockOnCriticalFailures'", (loosen, MODEL)).fetchone()
    assert row == (True,)
    # only enforce => false on the model's policy exempts it; reset => enforce inherits again
    db.execute("select regate.set_policy(%s, enforce => false)", (MODEL,))
    row = db.execute("select regate.effective_config(%s, %s) -> 'blockOnCriticalFailures'", (loosen, MODEL)).fetchone()
    assert row == (False,)
    db.execute("select regate.set_policy(%s, reset => array['enforce'])", (MODEL,))
    notices: list[str] = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    assert status(db, run_job(db, 0.9, config={"blockOnCriticalFailures": False})) == "blocked"
    assert any(f"the gate policy that applies to model {MODEL} enforces" in n for n in notices)


def _first_failures(db: Conn) -> list[tuple[str, uuid.UUID]]:
    rows = db.execute("select kind, job_id from regate.alerts where kind = 'first_failure' order by seq").fetchall()
    return [(kind, job) for kind, job in rows]


@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_concurrent_first_failures_of_a_model_never_wait_for_each_other(gated: Conn, db_dsn: str, ending: str) -> None:
    """Two transactions complete failing jobs of a model that has never failed: the second neither waits for the
    first nor fails (the gate's lock_timeout used to turn that wait into a failed status update). Exactly one
    first_failure: the open transaction's when it commits; the next failure's when it rolls back."""
    db = gated
    first_job, second_job = new_job(db, MODEL), new_job(db, MODEL)
    log(db, first_job, 1, eval_loss=0.9)
    log(db, second_job, 1, eval_loss=0.9)
    with psycopg.connect(db_dsn) as first, psycopg.connect(db_dsn) as second:
        complete(first, first_job)  # open: its first_failures row is not committed
        second.execute("set lock_timeout = '30s'")
        started = datetime.now(UTC)
        assert complete(second, second_job)[0] == "failed"
        second.commit()
        assert datetime.now(UTC) - started < timedelta(seconds=5)  # not a wait for the open transaction
        getattr(first, ending)()
    kinds = _first_failures(db)
    if ending == "commit":
        assert kinds == [("first_failure", first_job)]
    else:
        assert kinds == []
        third = run_job(db, 0.9, config={})
        assert _first_failures(db) == [("first_failure", third)]


def test_a_repeatable_read_failure_after_a_committed_first_failure_is_not_first(gated: Conn, db_dsn: str) -> None:
    """A REPEATABLE READ transaction whose snapshot predates the model's committed first failure completes its
    failing job without error, and its verdict is not a second first_failure."""
    db = gated
    job = new_job(db, MODEL)
    log(db, job, 1, eval_loss=0.9)
    with psycopg.connect(db_dsn) as late:
        late.execute("begin isolation level repeatable read")
        late.execute("select count(*) from regate.validation_results")  # the snapshot is taken here
        first = run_job(db, 0.9, config={})
        assert complete(late, job)[0] == "failed"
        late.commit()
    assert _first_failures(db) == [("first_failure", first)]


def test_a_job_less_gate_check_raises_blocked_but_not_the_first_failure(gated: Conn) -> None:
    db = gated
    db.execute(
        "select regate.run_gate(model_name => %s, current_metrics => '{\"eval_loss\": 0.9}', block_on_failure => true)",
        (MODEL,),
    )
    assert [k for (k,) in db.execute("select kind from regate.alerts order by id").fetchall()] == ["blocked"]
    run_job(db, 0.9)
    kinds = [k for (k,) in db.execute("select kind from regate.alerts order by id").fetchall()]
    assert kinds == ["blocked", "blocked", "first_failure"]
