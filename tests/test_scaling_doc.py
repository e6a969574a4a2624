"""docs/scaling.md is on paper (nothing in it ran on Citus or a standby), but what it says about regate-db's own
schema must stay true: every table is placed exactly once, each distribution column exists with the type of the
jobs' id (Citus colocates only columns of one type), every regate name it mentions exists or is listed as proposed,
and its standby table classifies every public function and view: the ones it calls standby-safe run in a read-only
transaction, the others are refused there (25006). A read-only transaction on the primary is the nearest thing to a
hot standby this suite can run; it is not one (a standby also refuses LISTEN and NOTIFY)."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import errors

from tests.helpers import REPO

DOC = REPO / "docs" / "scaling.md"
NAME_RE = re.compile(r"(?<![\w.])(regate|regate_internal)\.([a-z_][a-z0-9_]*)")
ROW_NAME_RE = re.compile(r"`((?:regate|regate_internal)\.[a-z_][a-z0-9_]*)`")


def _section(begin: str) -> list[list[str]]:
    """The body rows of the Markdown table between <!-- scaling:{begin}:begin --> and its end marker, as cells."""
    text = DOC.read_text(encoding="utf-8")
    start, end = f"<!-- scaling:{begin}:begin -->", f"<!-- scaling:{begin}:end -->"
    assert text.count(start) == 1 and text.count(end) == 1, f"docs/scaling.md lost its {start} block"
    body = text.split(start, 1)[1].split(end, 1)[0].strip().splitlines()
    assert len(body) > 2 and set(body[1]) <= set("|-: "), f"the {begin} block is not one Markdown table"
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in body[2:]]


def _catalog_relations(db: psycopg.Connection[Any], kinds: str) -> set[str]:
    rows = db.execute(
        "select n.nspname || '.' || c.relname from pg_catalog.pg_class as c"
        " inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid"
        " where n.nspname in ('regate', 'regate_internal') and c.relkind = any(%s)",
        (list(kinds),),
    ).fetchall()
    return {r[0] for r in rows}


def _proposed() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    paragraph = text.split("Proposed objects", 1)[1].split("\n\n", 1)[0]
    return {f"{s}.{n}" for s, n in NAME_RE.findall(paragraph)}


def test_every_table_is_placed_once_and_each_distribution_column_exists(db: psycopg.Connection[Any]) -> None:
    rows = _section("tables")
    matches = [ROW_NAME_RE.fullmatch(r[0]) for r in rows]
    placed = [m.group(1) for m in matches if m is not None]
    assert len(placed) == len(rows), "every row of the placement table names one regate table in backquotes"
    assert len(placed) == len(set(placed)), "a table is placed twice in docs/scaling.md"
    tables = _catalog_relations(db, "rp")
    assert set(placed) == tables, (
        "docs/scaling.md places tables that do not exist, or leaves out tables the schema has: "
        f"unplaced {sorted(tables - set(placed))}, gone {sorted(set(placed) - tables)}"
    )
    jobs_id_type = db.execute(
        "select pg_catalog.format_type(a.atttypid, a.atttypmod) from pg_catalog.pg_attribute as a"
        " where a.attrelid = 'regate.local_training_jobs'::regclass and a.attname = 'id'"
    ).fetchone()
    assert jobs_id_type is not None
    anchors = 0
    for name, (_cell, kind, column, _why) in zip(placed, rows, strict=True):
        if not kind.startswith("distributed"):
            assert kind in ("reference", "local (coordinator)") and column == "—", f"{name}: {kind} / {column}"
            continue
        anchors += kind == "distributed"
        match = re.fullmatch(r"`([a-z_]+)`( \(new column\))?", column)
        assert match, f"{name}: distribution column {column!r} is not `name` or `name` (new column)"
        found = db.execute(
            "select pg_catalog.format_type(a.atttypid, a.atttypmod) from pg_catalog.pg_attribute as a"
            " where a.attrelid = %s::regclass and a.attname = %s and not a.attisdropped",
            (name, match.group(1)),
        ).fetchone()
        if match.group(2):
            assert found is None, f"{name}.{match.group(1)} exists now: docs/scaling.md still calls it a new column"
        else:
            assert found is not None, f"docs/scaling.md distributes {name} on {match.group(1)}, which it lacks"
            assert found[0] == jobs_id_type[0], f"{name}.{match.group(1)} is {found[0]}, not {jobs_id_type[0]}"
    assert anchors == 1, "exactly one distributed table anchors the colocation group"


def test_every_regate_name_in_the_doc_exists_or_is_proposed(db: psycopg.Connection[Any]) -> None:
    text = DOC.read_text(encoding="utf-8")
    mentioned = {f"{s}.{n}" for s, n in NAME_RE.findall(text)}
    relations = _catalog_relations(db, "rpvmS")
    functions = {
        r[0]
        for r in db.execute(
            "select p.pronamespace::regnamespace::text || '.' || p.proname from pg_catalog.pg_proc as p"
            " where p.pronamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)"
        ).fetchall()
    }
    proposed = _proposed()
    assert proposed, "docs/scaling.md lists no proposed objects"
    assert not proposed & (relations | functions), (
        f"{sorted(proposed & (relations | functions))} exist now: docs/scaling.md still calls them proposed"
    )
    unknown = mentioned - relations - functions - proposed
    assert not unknown, f"docs/scaling.md names {sorted(unknown)}, which regate-db does not define"


def _standby_rows() -> dict[str, bool]:
    classified: dict[str, bool] = {}
    for cells in _section("standby"):
        verdict = cells[1].split()[0].rstrip(":")
        assert verdict in ("yes", "no"), f"standby column must start with yes or no: {cells[1]!r}"
        for name in ROW_NAME_RE.findall(cells[0]):
            assert name not in classified, f"{name} is classified twice"
            classified[name] = verdict == "yes"
    return classified


def test_the_standby_table_classifies_every_public_function_and_view(db: psycopg.Connection[Any]) -> None:
    public = _catalog_relations(db, "v") | {
        r[0]
        for r in db.execute(
            "select 'regate.' || p.proname from pg_catalog.pg_proc as p where p.pronamespace = 'regate'::regnamespace"
        ).fetchall()
    }
    classified = set(_standby_rows())
    assert classified == public, (
        f"docs/scaling.md's standby table: unclassified {sorted(public - classified)}, "
        f"gone {sorted(classified - public)}"
    )


# One call per public function and view: what a dashboard (or a writer) would run. %(job)s is a completed, blocked
# job with metrics, %(baseline)s an active baseline; override 1 need not exist (its lock is refused first).
CALLS: dict[str, str] = {
    "regate.validation_history": "select count(*) from regate.validation_history",
    "regate.validation_checks": "select count(*) from regate.validation_checks",
    "regate.champions": "select count(*) from regate.champions",
    "regate.override_status": "select count(*) from regate.override_status",
    "regate.blocked_jobs": "select count(*) from regate.blocked_jobs",
    "regate.gate_stats": "select count(*) from regate.gate_stats",
    "regate.gate_stats_for": "select count(*) from regate.gate_stats_for(by_day => true)",
    "regate.extract_final_metrics": "select regate.extract_final_metrics(job_id => %(job)s)",
    "regate.deployment_refusal": "select regate.deployment_refusal(job_id => %(job)s)",
    "regate.deployment_allowed": "select regate.deployment_allowed(job_id => %(job)s, environment => 'production')",
    "regate.should_block_deployment": (
        "select regate.should_block_deployment(r, '{\"blockOnCriticalFailures\": true}')"
        " from regate.validation_results as r"
    ),
    "regate.effective_config": "select regate.effective_config('{}'::jsonb, 'scaling-model')",
    "regate.gate_status": "select * from regate.gate_status()",
    "regate.current_identity": "select regate.current_identity()",
    "regate.is_admin": "select regate.is_admin()",
    "regate.schema_version": "select regate.schema_version()",
    "regate.security_problems": "select count(*) from regate.security_problems()",
    "regate.validate_training_results": "select regate.validate_training_results(job_id => %(job)s)",
    "regate.run_gate": (
        "select regate.run_gate(model_name => 'scaling-model', current_metrics => '{\"eval_loss\": 0.5}')"
    ),
    "regate.validate_run_group": "select regate.validate_run_group(run_group => 'scaling-group')",
    "regate.deploy": "select regate.deploy(job_id => %(job)s, environment => 'production')",
    "regate.override_gate": "select regate.override_gate(job_id => %(job)s, reason => 'scaling doc')",
    "regate.confirm_override": "select regate.confirm_override(override_id => 1)",
    "regate.create_baseline": (
        "select regate.create_baseline(model_name => 'scaling-other', metric_name => 'eval_loss',"
        " baseline_value => 1, min_relative_change => -0.05)"
    ),
    "regate.create_baselines_from_job": "select regate.create_baselines_from_job(job_id => %(job)s)",
    "regate.deactivate_baseline": "select regate.deactivate_baseline(baseline_id => %(baseline)s)",
    "regate.set_policy": "select regate.set_policy(model_name => 'scaling-other', block_on_critical_failures => true)",
    "regate.enable_gates": "select regate.enable_gates(reason => 'scaling doc')",
    "regate.disable_gates": "select regate.disable_gates(reason => 'scaling doc')",
    "regate.skip_gates_in_transaction": "select regate.skip_gates_in_transaction(reason => 'scaling doc')",
    "regate.set_identity_mode": "select regate.set_identity_mode(mode => 'login')",
    "regate.grant_usage": "select regate.grant_usage(role => current_user, level => 'reader')",
    "regate.number_alerts": "select regate.number_alerts()",
    "regate.metrics_purge_status": "select * from regate.metrics_purge_status(job_id => %(job)s)",
    "regate.purge_metrics_preview": (
        "select * from regate.purge_metrics_preview(completed_before => now() - interval '1 second')"
    ),
    "regate.purge_metrics": "select * from regate.purge_metrics(completed_before => now() - interval '1 second')",
}


def _seed(db: psycopg.Connection[Any]) -> dict[str, Any]:
    """A blocked job with metrics and an alert, a completed run of an unfinished group, an active baseline."""
    baseline = db.execute(
        "select (regate.create_baseline(model_name => 'scaling-model', metric_name => 'eval_loss',"
        " baseline_value => 0.42, min_relative_change => -0.05)).id"
    ).fetchone()
    job = db.execute(
        "insert into regate.local_training_jobs (model_name, status, config)"
        " values ('scaling-model', 'running', '{\"blockOnCriticalFailures\": true}') returning id"
    ).fetchone()
    assert baseline is not None and job is not None
    db.execute("insert into regate.local_training_metrics (job_id, step, eval_loss) values (%s, 10, 0.9)", (job[0],))
    status = db.execute(
        "update regate.local_training_jobs set status = 'completed' where id = %s returning validation_status",
        (job[0],),
    ).fetchone()
    assert status == ("blocked",)
    db.execute(
        "insert into regate.local_training_jobs (model_name, status, run_group, run_group_size)"
        " values ('scaling-model', 'completed', 'scaling-group', 2)"
    )
    return {"job": job[0], "baseline": baseline[0]}


def _refused_or_ran(db: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> str:
    """'ran' or 'refused' (25006) for one call in a read-only transaction that is rolled back either way."""
    try:
        with db.transaction(force_rollback=True):
            db.execute("set transaction read only")
            db.execute(sql, params).fetchall()
    except errors.ReadOnlySqlTransaction:
        return "refused"
    return "ran"


def test_standby_safe_calls_run_read_only_and_the_others_are_refused(db: psycopg.Connection[Any]) -> None:
    classified = _standby_rows()
    missing = set(classified) - set(CALLS)
    assert not missing, f"tests/test_scaling_doc.py has no call for {sorted(missing)}: add one to CALLS"
    params = _seed(db)
    assert db.execute("select count(*) from regate.alerts").fetchone() != (0,), "the seed raised no alert"
    # Switching a gate to the state it is in writes nothing: enable_gates is called once they are off (below).
    outcomes = {
        name: _refused_or_ran(db, CALLS[name], params) for name in sorted(classified) if name != "regate.enable_gates"
    }
    db.execute("select regate.disable_gates(reason => 'scaling doc: enable_gates must have something to do')")
    outcomes["regate.enable_gates"] = _refused_or_ran(db, CALLS["regate.enable_gates"], params)
    wrong = {name: outcome for name, outcome in outcomes.items() if (outcome == "ran") != classified[name]}
    assert not wrong, (
        "docs/scaling.md's standby table is wrong for these (yes: must run read-only; no: must be refused, 25006): "
        f"{wrong}"
    )
