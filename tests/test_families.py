"""Metric families and slices (issue 10 §3): a baseline on accuracy/* checks every member the job logged, each
as its own check against the same member of the reference, skips slices below a minimum support read from a
sibling count metric, and calls a member the champion has but the candidate lacks missing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg

from tests.helpers import complete, log, message, new_job, refused

Conn = psycopg.Connection[Any]
MODEL = "multilingual"


def gate(db: Conn, metrics: dict[str, Any]) -> dict[str, Any]:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    row = cur.execute("select * from regate.run_gate(%s, %s::jsonb)", (MODEL, json.dumps(metrics))).fetchone()
    assert row is not None
    return row


def by_metric(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["metric_name"]: c for c in verdict["checks"]}


def test_every_member_is_its_own_check_and_small_slices_are_skipped(db: Conn) -> None:
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'accuracy/*', baseline_value => 0.9,"
        " greater_is_better => true, min_absolute_change => -0.02, min_support => 100, support_metric => 'n/*')",
        (MODEL,),
    )
    v = gate(
        db,
        {
            "accuracy/lang=de": 0.91,
            "accuracy/lang=fr": 0.85,
            "accuracy/lang=xx": 0.5,
            "accuracy/lang=it": 0.95,
            "n/lang=de": 500,
            "n/lang=fr": 300,
            "n/lang=xx": 12,
            "loss": 0.3,
        },
    )
    checks = by_metric(v)
    assert sorted(checks) == ["accuracy/lang=de", "accuracy/lang=fr", "accuracy/lang=it", "accuracy/lang=xx"]
    assert {k: c["outcome"] for k, c in checks.items()} == {
        "accuracy/lang=de": "passed",
        "accuracy/lang=fr": "failed",
        "accuracy/lang=it": "insufficient_support",  # no count logged: cannot show enough support
        "accuracy/lang=xx": "insufficient_support",
    }
    assert v["status"] == "failed"
    assert checks["accuracy/lang=xx"]["family"] == "accuracy/*"
    assert checks["accuracy/lang=xx"]["support"] == {"metric": "n/lang=xx", "value": 12}
    assert checks["accuracy/lang=xx"]["message"] == (
        "accuracy/lang=xx: skipped, its support n/lang=xx is 12, below min_support 100"
    )
    assert checks["accuracy/lang=it"]["message"].endswith("its support n/lang=it is not logged, below min_support 100")
    # skipped slices alone pass; no member at all is the family missing
    assert gate(db, {"accuracy/lang=xx": 0.1, "n/lang=xx": 3})["status"] == "passed"
    missing = gate(db, {"loss": 0.3})
    assert [(c["metric_name"], c["outcome"]) for c in missing["checks"]] == [("accuracy/*", "missing")]
    # repeated runs per slice: the support is the smallest count over the runs
    v = gate(db, {"accuracy/lang=de": [0.91, 0.92, 0.915], "n/lang=de": [500, 90, 510]})
    assert v["checks"][0]["outcome"] == "insufficient_support" and v["checks"][0]["support"]["value"] == 90


def test_a_champion_family_compares_member_by_member_and_misses_what_the_candidate_lacks(db: Conn) -> None:
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'f1/*', greater_is_better => true,"
        " min_relative_change => -0.01, reference => 'champion', environment => 'production')",
        (MODEL,),
    )

    def job(metrics: dict[str, float]) -> uuid.UUID:
        j = new_job(db, MODEL, config={"blockOnCriticalFailures": True})
        log(db, j, 1, metrics)
        complete(db, j)
        return j

    champion = job({"f1/de": 0.80, "f1/fr": 0.70, "f1/ja": 0.60})
    db.execute("select regate.deploy(%s, 'production')", (champion,))
    challenger = job({"f1/de": 0.81, "f1/fr": 0.65})
    row = db.execute(
        "select j.validation_status, r.checks from regate.local_training_jobs j"
        " join regate.validation_results r on r.id = j.validation_result_id where j.id = %s",
        (challenger,),
    ).fetchone()
    assert row is not None
    checks = {c["metric_name"]: c for c in row[1]}
    assert row[0] == "blocked"
    assert {k: c["outcome"] for k, c in checks.items()} == {"f1/de": "passed", "f1/fr": "failed", "f1/ja": "missing"}
    assert checks["f1/de"]["reference"]["value"] == 0.8 and checks["f1/fr"]["baseline_value"] == 0.7
    assert checks["f1/de"]["reference"]["job_id"] == str(champion)


def test_family_rules(db: Conn) -> None:
    def bad(extra: str, text: str, metric: str = "accuracy/*") -> None:
        err = refused(
            db,
            "RG004",
            "select regate.create_baseline(model_name => 'm', metric_name => %s, greater_is_better => true,"
            " threshold => 0.5" + extra + ")",
            (metric,),
        )
        assert text in message(err), message(err)

    bad(", min_support => 10", "min_support and support_metric go together")
    bad(", min_support => 10, support_metric => 'n/*'", "only for a metric family", metric="accuracy")
    bad(", min_support => 10, support_metric => 'n'", "support_metric must be a family of counts ending in /*")
    bad(", min_support => -1, support_metric => 'n/*'", "min_support must be a finite number >= 0")
    bad("", "a family needs a name before /*", metric="/*")


def test_benjamini_hochberg_spares_a_marginal_member_of_a_large_family(db: Conn) -> None:
    """Twenty slices checked over 4 runs each: one marginal regression (p just under 0.025) fails alone, but not
    once the family's false discoveries are controlled; a strong regression still fails."""
    marginal = [0.899, 0.896, 0.898, 0.895]  # mean 0.897, p about 0.01
    strong = [0.80, 0.81, 0.79, 0.80]
    fine = [0.905, 0.91, 0.9, 0.915]
    metrics: dict[str, Any] = {f"acc/s{i:02d}": fine for i in range(18)}
    metrics |= {"acc/marginal": marginal, "acc/strong": strong}
    for model, bh in (("plain", False), ("controlled", True)):
        db.execute(
            "select regate.create_baseline(model_name => %s, metric_name => 'acc/*', baseline_value => 0.9,"
            " greater_is_better => true, min_relative_change => 0, benjamini_hochberg => %s)",
            (model, bh),
        )
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    outcomes = {}
    for model in ("plain", "controlled"):
        row = cur.execute("select * from regate.run_gate(%s, %s::jsonb)", (model, json.dumps(metrics))).fetchone()
        assert row is not None
        outcomes[model] = {c["metric_name"]: c for c in row["checks"]}
    plain, controlled = outcomes["plain"], outcomes["controlled"]
    assert 0 < plain["acc/marginal"]["p_value"] < 0.025 and plain["acc/marginal"]["outcome"] == "failed"
    assert controlled["acc/marginal"]["outcome"] == "inconclusive"
    assert "but not among the 20 members of acc/* (Benjamini-Hochberg)" in controlled["acc/marginal"]["message"]
    assert plain["acc/strong"]["outcome"] == controlled["acc/strong"]["outcome"] == "failed"
    assert controlled["acc/strong"]["fdr"] == "benjamini_hochberg"
    refused(
        db,
        "RG004",
        "select regate.create_baseline(model_name => 'm', metric_name => 'acc', baseline_value => 0.9,"
        " greater_is_better => true, threshold => 0.5, benjamini_hochberg => true)",
    )
