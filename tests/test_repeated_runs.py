"""Repeated runs (issue 10 §2): a metric given as an array of runs is checked on the interval of its mean —
passed at the worse end, failed even at the better end, inconclusive in between — and the statistics are proven
by simulation: the false-alarm rate of A/A groups and the power against 1 and 2 standard deviations of
regression, against the Student-t theory (scipy, a test-only dependency)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import psycopg
import pytest
from scipy import stats

from tests.helpers import refused

Conn = psycopg.Connection[Any]
MODEL = "seeded"


@pytest.fixture
def gated(db: Conn) -> Conn:
    """accuracy must not be worse than 0.89 by more than 1% (critical)."""
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'accuracy', baseline_value => 0.89,"
        " greater_is_better => true, min_relative_change => -0.01)",
        (MODEL,),
    )
    return db


def gate(db: Conn, metrics: dict[str, Any], model: str = MODEL) -> dict[str, Any]:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    row = cur.execute("select * from regate.run_gate(%s, %s::jsonb)", (model, json.dumps(metrics))).fetchone()
    assert row is not None
    return row


def test_the_interval_of_the_mean_decides(gated: Conn) -> None:
    runs = [0.871, 0.868, 0.874, 0.870, 0.872]
    v = gate(gated, {"accuracy": runs})
    check = v["checks"][0]
    assert (v["status"], v["blocked"], check["outcome"]) == ("failed", True, "failed")
    mean, sd = sum(runs) / 5, math.sqrt(sum((x - sum(runs) / 5) ** 2 for x in runs) / 4)
    half = stats.t.ppf(0.975, 4) * sd / math.sqrt(5)
    assert check["n"] == 5 and check["confidence"] == 0.95
    assert check["mean"] == pytest.approx(mean, rel=1e-12) and check["observed"] == pytest.approx(mean, rel=1e-12)
    assert check["stddev"] == pytest.approx(sd, rel=1e-9)
    assert (check["ci_low"], check["ci_high"]) == (pytest.approx(mean - half, rel=1e-12), pytest.approx(mean + half))
    assert check["message"].startswith("accuracy 0.871 ± 0.0028 (n=5) is significantly worse: even the better end")
    assert check["failed_criteria"] == ["min_relative_change"]
    # in between: inconclusive, a warning
    v = gate(gated, {"accuracy": [0.90, 0.86, 0.89]})
    assert (v["status"], v["blocked"], v["checks"][0]["outcome"]) == ("warning", False, "inconclusive")
    assert "is inconclusive: the worse end of its 95% interval fails" in v["checks"][0]["message"]
    # the worse end holds: passed
    v = gate(gated, {"accuracy": [0.90, 0.905, 0.91]})
    assert (v["status"], v["checks"][0]["outcome"]) == ("passed", "passed")
    # one value is a single run: point semantics; a non-finite run makes the check invalid
    v = gate(gated, {"accuracy": [0.80]})
    assert v["checks"][0]["outcome"] == "failed" and "n" not in v["checks"][0]
    assert gate(gated, {"accuracy": 0.80})["checks"][0] == v["checks"][0]
    v = gate(gated, {"accuracy": [0.90, "NaN", 0.91]})
    assert v["checks"][0]["outcome"] == "invalid" and v["blocked"]
    assert v["metrics"] == {"accuracy": [0.90, "NaN", 0.91]}
    refused(gated, "RG001", "select regate.run_gate(%s, '{\"accuracy\": []}')", (MODEL,))
    refused(gated, "RG001", 'select regate.run_gate(%s, \'{"accuracy": [0.9, "x"]}\')', (MODEL,))


def test_the_confidence_of_the_baseline_sets_the_interval(gated: Conn) -> None:
    runs = [0.887, 0.893, 0.889, 0.891]
    assert gate(gated, {"accuracy": runs})["checks"][0]["outcome"] == "passed"
    gated.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'accuracy', baseline_value => 0.89,"
        " greater_is_better => true, min_relative_change => -0.01, confidence => 0.999)",
        (MODEL,),
    )
    check = gate(gated, {"accuracy": runs})["checks"][0]
    assert check["confidence"] == 0.999 and check["outcome"] == "inconclusive"
    refused(
        gated,
        "RG004",
        "select regate.create_baseline(model_name => 'm', metric_name => 'accuracy', baseline_value => 0.9,"
        " greater_is_better => true, threshold => 0.8, confidence => 1)",
    )


def test_a_policy_makes_inconclusive_fail(gated: Conn) -> None:
    runs = {"accuracy": [0.90, 0.86, 0.89]}
    assert gate(gated, runs)["status"] == "warning"
    gated.execute("select regate.set_policy(%s, inconclusive_fails => true)", (MODEL,))
    v = gate(gated, runs)
    assert (v["status"], v["blocked"], v["config"]["regressionGateConfig"]["inconclusiveFails"]) == (
        "failed",
        True,
        True,
    )
    # a job's config may turn it on too, and an enforcing policy keeps it on
    row = gated.execute(
        "select regate.effective_config('{\"regressionGateConfig\": {\"inconclusiveFails\": true}}', 'other')"
        " #> '{regressionGateConfig,inconclusiveFails}'"
    ).fetchone()
    assert row == (True,)
    gated.execute("select regate.set_policy(%s, enforce => true)", (MODEL,))
    row = gated.execute(
        'select regate.effective_config(\'{"regressionGateConfig": {"inconclusiveFails": false}}\', %s)'
        " #> '{regressionGateConfig,inconclusiveFails}'",
        (MODEL,),
    ).fetchone()
    assert row == (True,)


# --- the statistics, by simulation ------------------------------------------------------------------------------

MU, SIGMA, TRIALS = 0.9, 0.01, 400


def failure_rate(db: Conn, n: int, shift_sigmas: float, seed: int) -> float:
    """The share of TRIALS groups of n runs drawn from N(MU - shift * SIGMA, SIGMA) that the gate fails, against a
    baseline at MU that tolerates no regression (min_relative_change 0): one statement per configuration."""
    rng = random.Random(seed)
    groups = [
        json.dumps({"accuracy": [rng.gauss(MU - shift_sigmas * SIGMA, SIGMA) for _ in range(n)]}) for _ in range(TRIALS)
    ]
    row = db.execute(
        "select avg((r.checks -> 0 ->> 'outcome' = 'failed')::int)::float8"
        " from unnest(%s::jsonb[]) as g (metrics) cross join lateral regate.run_gate('sim', g.metrics) as r",
        (groups,),
    ).fetchone()
    assert row is not None
    return float(row[0])


def test_simulation_false_alarms_and_power(db: Conn, record_property: Any) -> None:
    db.execute(
        "select regate.create_baseline(model_name => 'sim', metric_name => 'accuracy', baseline_value => %s,"
        " greater_is_better => true, min_relative_change => 0)",
        (MU,),
    )
    figures: dict[str, float] = {}
    for i, n in enumerate((3, 5, 10)):
        # A/A: the group comes from the reference's own distribution. "failed" needs the whole 95% interval below
        # the reference: a one-sided 2.5% event, so the false-alarm rate stays under the nominal 5%.
        rate = failure_rate(db, n, 0.0, seed=100 + i)
        figures[f"false alarms n={n}"] = rate
        assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / TRIALS), (n, rate)
        for shift in (1.0, 2.0):
            power = failure_rate(db, n, shift, seed=200 + 10 * i + int(shift))
            figures[f"power {shift:g} sd n={n}"] = power
            # Student-t theory: fail when mean + t * s / sqrt(n) < MU, i.e. a noncentral t above the quantile
            crit = stats.t.ppf(0.975, n - 1)
            theory = float(stats.nct.sf(crit, n - 1, shift * math.sqrt(n)))
            se = math.sqrt(max(theory * (1 - theory), 0.01) / TRIALS)
            assert abs(power - theory) <= 4 * se, (n, shift, power, theory)
    for name, value in figures.items():
        record_property(name, value)
    assert figures["power 2 sd n=10"] > 0.95 and figures["power 1 sd n=10"] > figures["power 1 sd n=3"]
    print("\n".join(f"{k}: {v:.3f}" for k, v in figures.items()))


# --- run groups of jobs ------------------------------------------------------------------------------------------


def group_runs(
    db: Conn, group: str, values: list[float], size: int, config: str = '{"blockOnCriticalFailures": true}'
) -> list[str]:
    ids = []
    for value in values:
        row = db.execute(
            "insert into regate.local_training_jobs (model_name, run_group, run_group_size, config)"
            " values (%s, %s, %s, %s::jsonb) returning id",
            (MODEL, group, size, config),
        ).fetchone()
        assert row is not None
        db.execute(
            "insert into regate.local_training_metrics (job_id, step, metrics) values (%s, 1, %s::jsonb)",
            (row[0], json.dumps({"accuracy": value})),
        )
        ids.append(str(row[0]))
    return ids


def states(db: Conn, ids: list[str]) -> list[tuple[Any, Any]]:
    rows = db.execute(
        "select validation_status, validation_result_id from regate.local_training_jobs j"
        " join unnest(%s::uuid[]) with ordinality as x (id, i) on x.id = j.id order by x.i",
        (ids,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_a_run_group_gets_one_verdict_when_its_last_run_completes(gated: Conn) -> None:
    db = gated
    runs = group_runs(db, "seeds-a", [0.871, 0.868, 0.874, 0.870, 0.872], size=5)
    notices: list[str] = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    for i, job in enumerate(runs[:4]):
        db.execute("update regate.local_training_jobs set status = 'completed' where id = %s", (job,))
        assert states(db, [job]) == [(None, None)]
        assert f"run {i + 1} of 5 of group seeds-a" in notices[-1]
    err = refused(db, "RG012", "select regate.deploy(%s, 'production')", (runs[0],))
    assert "is a run of group seeds-a (5 runs expected), which has no verdict yet" in str(err)
    db.execute("update regate.local_training_jobs set status = 'completed' where id = %s", (runs[4],))
    got = states(db, runs)
    assert {s for s, _ in got} == {"blocked"} and len({r for _, r in got}) == 1
    row = db.execute(
        "select job_id, run_group, source, metrics, checks -> 0 ->> 'outcome', checks -> 0 -> 'n'"
        " from regate.validation_results where id = %s",
        (got[0][1],),
    ).fetchone()
    assert row == (None, "seeds-a", "group", {"accuracy": [0.871, 0.868, 0.874, 0.870, 0.872]}, "failed", 5)
    # a group that passes: its runs are accepted runs (a rolling reference may use them) and may deploy
    good = group_runs(db, "seeds-b", [0.90, 0.905, 0.91], size=3)
    db.execute("update regate.local_training_jobs set status = 'completed' where id = any(%s::uuid[])", (good,))
    assert {s for s, _ in states(db, good)} == {"passed"}
    db.execute("select regate.deploy(%s, 'production')", (good[0],))
    accepted = db.execute(
        "select count(*) from regate_internal.accepted_runs where job_id = any(%s::uuid[])", (good,)
    ).fetchone()
    assert accepted == (3,)


def test_concurrent_last_runs_make_exactly_one_group_verdict(gated: Conn, db_dsn: str) -> None:
    import threading

    runs = group_runs(gated, "seeds-c", [0.90, 0.905, 0.91, 0.895], size=4)
    gated.execute("update regate.local_training_jobs set status = 'completed' where id = any(%s::uuid[])", (runs[:2],))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def complete(job: str) -> None:
        try:
            with psycopg.connect(db_dsn) as conn:
                conn.execute("select 1")
                barrier.wait()
                conn.execute("update regate.local_training_jobs set status = 'completed' where id = %s", (job,))
                conn.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=complete, args=(job,)) for job in runs[2:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    verdicts = gated.execute(
        "select count(*) from regate.validation_results where run_group = 'seeds-c' and source = 'group'"
    ).fetchone()
    assert verdicts == (1,)
    assert {s for s, _ in states(gated, runs)} == {"passed"}


def test_validate_run_group_judges_the_runs_there_are(gated: Conn) -> None:
    db = gated
    runs = group_runs(db, "seeds-d", [0.90, 0.91, 0.905], size=5)
    db.execute("update regate.local_training_jobs set status = 'completed' where id = any(%s::uuid[])", (runs,))
    assert {s for s, _ in states(db, runs)} == {None}
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    verdict = cur.execute("select * from regate.validate_run_group('seeds-d')").fetchone()
    assert verdict is not None and verdict["status"] == "passed" and verdict["checks"][0]["n"] == 3
    assert {r for _, r in states(db, runs)} == {verdict["id"]}
    refused(db, "RG008", "select regate.validate_run_group('no-such-group')")
