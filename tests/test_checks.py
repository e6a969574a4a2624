"""One check (sql/030_checks.sql) against real PostgreSQL: MLflow 3.17's MetricThreshold semantics, IEEE 754
arithmetic where PostgreSQL's float8 operators would raise, and the sentence a person reads.

The centrepiece is a differential test: hypothesis draws inputs MLflow's MetricThreshold accepts, and
regate_internal._evaluate_check must fail exactly the criteria that MLflow's own `_validate` fails. A second property
test covers what MLflow does not accept (negative changes = tolerated regressions, NaN, infinities, NULL) against a
reference written from the issue, in Python floats (IEEE 754, like MLflow).
"""

from __future__ import annotations

import logging
import math
import re
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from mlflow.models.evaluation.validation import MetricThreshold, ModelValidationFailedException, _validate
from psycopg.types.json import Jsonb

from regate_db.migrate import migrate
from tests.helpers import complete, new_job

Conn = psycopg.Connection[Any]
Result = tuple[str, list[str], float | None]

EVAL = "select outcome, failed_criteria, relative_change from regate_internal._evaluate_check(%s, %s, %s, %s, %s, %s)"
CRITERIA = ("threshold", "min_absolute_change", "min_relative_change")
# What MLflow's _MetricValidationResult.__str__ says for each failed criterion.
MLFLOW_PHRASES = {
    "threshold": "value threshold check failed",
    "min_absolute_change": "minimum absolute change check failed",
    "min_relative_change": "minimum relative change check failed",
}
NAN = float("nan")
INF = float("inf")
MAX = sys.float_info.max
TINY = 5e-324  # the smallest subnormal
MIN_NORMAL = sys.float_info.min
HUGE_NEXT = math.nextafter(1e308, INF)


@pytest.fixture(scope="module")
def shared_db(pg_server: Any) -> Iterator[Conn]:
    """One migrated database for the read-only tests of this module (regate_internal._evaluate_check touches no table):
    a fresh clone per parametrized case costs more than the case itself on a disk-backed server."""
    name = f"regate_checks_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    try:
        with psycopg.connect(pg_server.dsn(name)) as conn:
            migrate(conn)
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def evaluate(
    db: Conn, c: float | None, b: float | None, gib: bool, t: float | None, m: float | None, r: float | None
) -> Result:
    row = db.execute(EVAL, (c, b, gib, t, m, r)).fetchone()
    assert row is not None
    return row[0], list(row[1]), row[2]


def reference(c: float | None, b: float, gib: bool, t: float | None, m: float | None, r: float | None) -> Result:
    """The issue's semantics in Python floats (IEEE 754: overflow gives +/-inf, underflow 0, nothing raises)."""
    if c is None:
        return "missing", [], None
    if not math.isfinite(c):
        return "invalid", [], None
    failed: list[str] = []
    d = None if b == 0 else (c - b) / abs(b) if gib else (b - c) / abs(b)
    if t is not None and not (c >= t if gib else c <= t):
        failed.append("threshold")
    if m is not None and not (c >= b + m if gib else c <= b - m):
        failed.append("min_absolute_change")
    if r is not None:
        if b == 0:
            margin = 1e-10 if r >= 0 else 0.0  # strictly better by 1e-10, or (tolerated regression) no worse
            ok = c >= margin if gib else c <= -margin
        else:
            assert d is not None
            ok = d >= r
        if not ok:
            failed.append("min_relative_change")
    return ("failed" if failed else "passed"), failed, d


def mlflow_failed(c: float, b: float, gib: bool, t: float | None, m: float | None, r: float | None) -> list[str]:
    """The criteria MLflow 3.17's own validation fails, in our order (raises if MLflow refuses the inputs)."""
    threshold = MetricThreshold(threshold=t, min_absolute_change=m, min_relative_change=r, greater_is_better=gib)
    try:
        _validate({"metric": threshold}, {"metric": c}, {"metric": b})
    except ModelValidationFailedException as exc:
        message = exc.message
        failed = [name for name in CRITERIA if MLFLOW_PHRASES[name] in message]
        assert failed, f"MLflow failed without naming a criterion: {message}"
        return failed
    return []


def same_d(actual: float | None, expected: float | None, r: float | None) -> bool:
    """relative_change is d whenever min_relative_change is set (NULL at b = 0); without it d may be left out."""
    return same_float(actual, expected) or (r is None and actual is None)


def same_float(actual: float | None, expected: float | None) -> bool:
    if expected is None or actual is None:
        return actual is expected
    return actual == expected or (math.isnan(actual) and math.isnan(expected))


# --- inputs -------------------------------------------------------------------------------------------------------

EDGE_VALUES = [
    0.0,
    -0.0,
    TINY,
    -TINY,
    1e-310,
    -1e-310,
    MIN_NORMAL,
    1e-300,
    1e-10,
    -1e-10,
    5e-11,
    1e-5,
    0.1,
    0.43,
    0.52,
    0.5,
    1.0,
    -1.0,
    2.0,
    100.0,
    1e15,
    1e290,
    1e300,
    1e308,
    -1e308,
    MAX,
    -MAX,
    2.0**1022,
    2.0**1023,
    -(2.0**1023),
]
finite = st.floats(allow_nan=False, allow_infinity=False)
values = st.one_of(st.sampled_from(EDGE_VALUES), finite, st.floats(-10, 10), st.integers(-5, 5).map(float))
positive = st.one_of(
    st.sampled_from([TINY, 1e-310, 1e-10, 0.01, 0.05, 0.1, 1.0, 1e300, 1e308, MAX]),
    st.floats(min_value=TINY, allow_infinity=False),
    st.floats(min_value=1e-6, max_value=10.0),
)
unit = st.one_of(st.sampled_from([0.0, TINY, 1e-10, 0.05, 0.1, 0.5, 1.0]), st.floats(0.0, 1.0))


def nudge(draw: st.DrawFn, anchors: list[float | None]) -> float:
    """A candidate value at, just above or just below one of the bounds (or anywhere)."""
    usable = [a for a in anchors if a is not None and math.isfinite(a)]
    how = draw(st.sampled_from(["free", "at", "above", "below"]))
    if how == "free" or not usable:
        return draw(values)
    anchor = draw(st.sampled_from(usable))
    c = {"at": anchor, "above": math.nextafter(anchor, INF), "below": math.nextafter(anchor, -INF)}[how]
    return c if math.isfinite(c) else anchor


@st.composite
def mlflow_cases(draw: st.DrawFn) -> tuple[float, float, bool, float | None, float | None, float | None]:
    """Inputs MLflow 3.17's MetricThreshold accepts: finite threshold, positive absolute change, relative in [0, 1]."""
    gib = draw(st.booleans())
    if draw(st.integers(0, 7)) == 0:  # near the top and bottom of the range, where PostgreSQL's float8 raises
        b = draw(st.sampled_from([1e308, -1e308, MAX, -MAX, 2.0**1023, -(2.0**1023), 1e-310, -1e-310, TINY]))
        m = draw(st.none() | st.sampled_from([1e308, MAX, 2.0**1023, 2.0**970, 2.0**969]))
    else:
        b = draw(values)
        m = draw(st.none() | positive)
    t = draw(st.none() | values)
    r = draw(st.none() | unit)
    if t is None and m is None and r is None:
        t = draw(values)
    anchors = [b, t, 1e-10, -1e-10, 0.0]
    if m is not None:
        anchors += [b + m, b - m]
    if r is not None:
        anchors += [b + r * abs(b), b - r * abs(b)]
    return nudge(draw, anchors), b, gib, t, m, r


@st.composite
def extended_cases(
    draw: st.DrawFn,
) -> tuple[float | None, float, bool, float | None, float | None, float | None]:
    """What regate accepts beyond MLflow: negative (tolerated) and zero changes, r outside [0, 1], NaN/inf/NULL."""
    gib = draw(st.booleans())
    b = draw(values)
    c: float | None = draw(st.sampled_from([None, NAN, INF, -INF]))
    if draw(st.booleans()):
        # One tolerated regression (a negative change), the candidate at or just past its bound.
        t = m = r = None
        if draw(st.booleans()):
            m = draw(st.floats(-10.0, -1e-6) | st.sampled_from([-0.1, -1.0, -MAX]))
            bound = b + m if gib else b - m
        else:
            r = draw(st.floats(-1.0, -1e-6) | st.sampled_from([-0.05, -0.5, -1.0, -2.0]))
            bound = b + r * abs(b) if gib else b - r * abs(b)
        if draw(st.integers(0, 9)) > 0:
            worse, better = (-INF, INF) if gib else (INF, -INF)
            c = draw(st.sampled_from([math.nextafter(bound, worse), bound, math.nextafter(bound, better)]))
            if draw(st.booleans()):  # half of them just past the tolerance
                c = math.nextafter(bound, worse)
            if not math.isfinite(c):
                c = draw(values)
        return c, b, gib, t, m, r
    t = draw(st.none() | values)
    m = draw(st.none() | values)
    r = draw(st.none() | values | st.floats(-1.0, 1.0))
    if t is None and m is None and r is None:
        m = draw(values)
    anchors = [b, t, 1e-10, -1e-10, 0.0]
    if m is not None:
        anchors += [b + m, b - m]
    if r is not None:
        anchors += [b + r * abs(b), b - r * abs(b)]
    if draw(st.integers(0, 9)) > 0:  # mostly finite candidates
        c = nudge(draw, anchors)
    return c, b, gib, t, m, r


# --- the differential test against MLflow ----------------------------------------------------------------------------


def test_evaluate_check_matches_mlflow(db: Conn, caplog: pytest.LogCaptureFixture) -> None:
    # MLflow logs a warning for every baseline of 0 (its fallback): not what this test is about.
    caplog.set_level(logging.ERROR, logger="mlflow.models.evaluation.validation")
    seen: Counter[str] = Counter()

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=mlflow_cases())
    def run(case: tuple[float, float, bool, float | None, float | None, float | None]) -> None:
        c, b, gib, t, m, r = case
        try:
            expected = mlflow_failed(c, b, gib, t, m, r)
        except (ArithmeticError, ValueError):  # MLflow itself cannot judge these inputs: nothing to compare
            seen["mlflow_raised"] += 1
            assume(False)
        outcome, failed, d = evaluate(db, c, b, gib, t, m, r)
        assert failed == expected, f"MLflow fails {expected}, regate fails {failed} for {case}"
        assert outcome == ("failed" if expected else "passed")
        # The oracle written from the issue agrees with MLflow on MLflow's domain, and d is bit-exact.
        ref = reference(c, b, gib, t, m, r)
        assert ref[1] == expected
        assert same_d(d, ref[2], r), f"relative_change {d!r}, expected {ref[2]!r} for {case}"
        seen["examples"] += 1
        seen[outcome] += 1
        for name, value in zip(CRITERIA, (t, m, r), strict=True):
            if value is not None:
                verdict = "failed" if name in failed else "passed"
                seen[f"{name} {verdict}"] += 1
                event(f"{name} {verdict}")
        if r is not None and b == 0:
            seen["zero baseline fallback"] += 1
        if d is not None and math.isinf(d):
            seen["infinite relative change"] += 1
        if m is not None and math.isinf(b + m if gib else b - m):
            seen["infinite absolute bound"] += 1

    run()
    print("\ndifferential test vs MLflow:", dict(sorted(seen.items())))
    # The test is only worth something when each criterion both passes and fails often.
    assert seen["examples"] >= 250
    for name in CRITERIA:
        assert seen[f"{name} failed"] >= 20, seen
        assert seen[f"{name} passed"] >= 20, seen
    assert seen["passed"] >= 30 and seen["failed"] >= 30, seen
    assert seen["zero baseline fallback"] >= 3, seen


def test_evaluate_check_matches_the_issue_beyond_mlflow(db: Conn) -> None:
    """Negative changes (tolerated regressions), r outside [0, 1], NaN, infinities and NULL: the issue's rules."""
    seen: Counter[str] = Counter()

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=extended_cases())
    def run(case: tuple[float | None, float, bool, float | None, float | None, float | None]) -> None:
        c, b, gib, t, m, r = case
        outcome, failed, d = evaluate(db, c, b, gib, t, m, r)
        exp_outcome, exp_failed, exp_d = reference(c, b, gib, t, m, r)
        assert (outcome, failed) == (exp_outcome, exp_failed), f"{case}"
        if outcome in ("passed", "failed"):
            assert same_d(d, exp_d, r), f"relative_change {d!r}, expected {exp_d!r} for {case}"
        seen[outcome] += 1
        for name, value in zip(CRITERIA, (t, m, r), strict=True):
            if value is not None and value < 0 and outcome in ("passed", "failed"):
                seen[f"negative {name} {'failed' if name in failed else 'passed'}"] += 1

    run()
    print("\nextended property test:", dict(sorted(seen.items())))
    assert seen["passed"] >= 10 and seen["failed"] >= 10, seen
    assert seen["invalid"] >= 3 and seen["missing"] >= 1, seen
    for name in ("min_absolute_change", "min_relative_change"):
        assert seen[f"negative {name} passed"] >= 3 and seen[f"negative {name} failed"] >= 3, seen


# --- the edge cases, one by one ---------------------------------------------------------------------------------------

E = pytest.param
EDGE_CASES = [
    # c, b, gib, t, m, r, outcome, failed_criteria, relative_change
    # Not a number: NaN >= t is true in PostgreSQL, NaN <= t false; both directions must be 'invalid'.
    E(NAN, 0.5, True, 0.1, None, None, "invalid", [], None, id="nan-higher-is-better"),
    E(NAN, 0.5, False, 0.9, None, None, "invalid", [], None, id="nan-lower-is-better"),
    E(NAN, 0.5, True, 0.1, 0.01, 0.01, "invalid", [], None, id="nan-all-criteria"),
    E(NAN, 0.5, False, 0.9, -0.01, -0.01, "invalid", [], None, id="nan-all-criteria-lower"),
    E(INF, 0.5, True, 0.1, 0.01, 0.01, "invalid", [], None, id="inf-higher-is-better"),
    E(INF, 0.5, False, 0.9, -0.01, -0.01, "invalid", [], None, id="inf-lower-is-better"),
    E(-INF, 0.5, True, 0.1, None, None, "invalid", [], None, id="minus-inf-higher-is-better"),
    E(-INF, 0.5, False, 0.9, -0.01, -0.01, "invalid", [], None, id="minus-inf-lower-is-better"),
    E(None, 0.5, True, 0.1, 0.01, 0.01, "missing", [], None, id="null-missing"),
    E(None, 0.5, False, 0.9, None, None, "missing", [], None, id="null-missing-lower"),
    # The threshold is inclusive.
    E(0.9, 0.5, True, 0.9, None, None, "passed", [], None, id="threshold-equal-higher"),
    E(math.nextafter(0.9, 0), 0.5, True, 0.9, None, None, "failed", ["threshold"], None, id="threshold-below"),
    E(0.9, 0.5, False, 0.9, None, None, "passed", [], None, id="threshold-equal-lower"),
    E(math.nextafter(0.9, 1), 0.5, False, 0.9, None, None, "failed", ["threshold"], None, id="threshold-above"),
    E(-MAX, 0.0, True, -MAX, None, None, "passed", [], None, id="threshold-equal-at-minus-max"),
    # The absolute bound b +/- m, inclusive, in IEEE double precision.
    E(1.1, 1.0, True, None, 0.1, None, "passed", [], None, id="absolute-equal-higher"),
    E(0.9, 1.0, False, None, 0.1, None, "passed", [], None, id="absolute-equal-lower"),
    E(math.nextafter(1.1, 0), 1.0, True, None, 0.1, None, "failed", ["min_absolute_change"], None, id="abs-below"),
    # b + m overflows: the bound is +inf (PostgreSQL's float8 + would raise), no finite value reaches it.
    E(1.0, 1e308, True, None, 1e308, None, "failed", ["min_absolute_change"], None, id="abs-bound-overflow"),
    E(MAX, 1e308, True, None, 1e308, None, "failed", ["min_absolute_change"], None, id="abs-bound-overflow-max"),
    E(-MAX, -1e308, False, None, 1e308, None, "failed", ["min_absolute_change"], None, id="abs-bound-minus-inf"),
    E(MAX, 2.0**1023, True, None, 2.0**1023, None, "failed", ["min_absolute_change"], None, id="abs-bound-2-1024"),
    # MAX + half an ulp rounds to even: +inf; a quarter ulp less rounds back to MAX.
    E(MAX, MAX, True, None, 2.0**970, None, "failed", ["min_absolute_change"], None, id="abs-bound-tie-to-inf"),
    E(MAX, MAX, True, None, 2.0**969, None, "passed", [], None, id="abs-bound-rounds-to-max"),
    E(-MAX, -MAX, False, None, 2.0**969, None, "passed", [], None, id="abs-bound-rounds-to-minus-max"),
    # A negative m is a tolerated regression of |m|.
    E(1.1, 1.0, False, None, -0.1, None, "passed", [], None, id="negative-abs-tolerated"),
    E(1.1000001, 1.0, False, None, -0.1, None, "failed", ["min_absolute_change"], None, id="negative-abs-exceeded"),
    E(0.9, 1.0, True, None, -0.1, None, "passed", [], None, id="negative-abs-tolerated-higher"),
    E(0.8999999, 1.0, True, None, -0.1, None, "failed", ["min_absolute_change"], None, id="negative-abs-exceeded-hi"),
    E(-MAX, MAX, True, None, -MAX, None, "failed", ["min_absolute_change"], None, id="negative-abs-huge"),
    E(0.0, MAX, True, None, -MAX, None, "passed", [], None, id="negative-abs-huge-passes"),
    # Relative change d: b tiny makes d overflow to +/-inf (PostgreSQL's float8 / would raise).
    E(1.0, 1e-310, True, None, None, 0.1, "passed", [], INF, id="relative-infinite"),
    E(-1.0, 1e-310, True, None, None, 0.1, "failed", ["min_relative_change"], -INF, id="relative-minus-infinite"),
    E(1.0, 1e-310, False, None, None, -0.5, "failed", ["min_relative_change"], -INF, id="relative-minus-inf-lower"),
    E(1e308, TINY, True, None, None, 1.0, "passed", [], INF, id="relative-subnormal-baseline"),
    # c - b overflows before the division.
    E(-MAX, MAX, True, None, None, -1.0, "failed", ["min_relative_change"], -INF, id="relative-difference-overflows"),
    E(MAX, -MAX, True, None, None, 1.0, "passed", [], INF, id="relative-difference-overflows-up"),
    # Subnormal inputs: differences and quotients near the bottom of the range stay exact.
    E(TINY, 2 * TINY, True, None, None, -0.5, "passed", [], -0.5, id="relative-subnormals"),
    E(TINY, 2 * TINY, False, None, None, 0.5, "passed", [], 0.5, id="relative-subnormals-lower"),
    E(TINY, 1e308, True, None, None, -1.0, "passed", [], -1.0, id="relative-subnormal-c-huge-b"),
    E(
        1e308,
        HUGE_NEXT,
        True,
        None,
        None,
        0.0,
        "failed",
        ["min_relative_change"],
        (1e308 - HUGE_NEXT) / HUGE_NEXT,
        id="ulp",
    ),
    E(TINY, MIN_NORMAL, True, None, None, -1.0, "passed", [], (TINY - MIN_NORMAL) / MIN_NORMAL, id="rel-sub-normal"),
    # Baseline 0: r >= 0 needs strictly better by 1e-10, r < 0 needs no worse; -0.0 is 0.
    E(1e-10, 0.0, True, None, None, 0.0, "passed", [], None, id="zero-baseline-1e-10"),
    E(5e-11, 0.0, True, None, None, 0.0, "failed", ["min_relative_change"], None, id="zero-baseline-5e-11"),
    E(
        math.nextafter(1e-10, 0),
        0.0,
        True,
        None,
        None,
        0.5,
        "failed",
        ["min_relative_change"],
        None,
        id="zero-just-below",
    ),
    E(-1e-10, 0.0, False, None, None, 0.0, "passed", [], None, id="zero-baseline-lower-1e-10"),
    E(-5e-11, 0.0, False, None, None, 0.1, "failed", ["min_relative_change"], None, id="zero-baseline-lower-5e-11"),
    E(1e-10, -0.0, True, None, None, 0.0, "passed", [], None, id="minus-zero-baseline"),
    E(0.0, 0.0, True, None, None, -0.05, "passed", [], None, id="zero-baseline-tolerated-equal"),
    E(-0.0, 0.0, True, None, None, -0.05, "passed", [], None, id="zero-baseline-tolerated-minus-zero"),
    E(-1e-300, 0.0, True, None, None, -0.05, "failed", ["min_relative_change"], None, id="zero-baseline-tol-worse"),
    E(-TINY, 0.0, True, None, None, -0.05, "failed", ["min_relative_change"], None, id="zero-baseline-tol-subnormal"),
    E(0.0, 0.0, False, None, None, -0.05, "passed", [], None, id="zero-baseline-tolerated-lower"),
    E(1e-300, 0.0, False, None, None, -0.05, "failed", ["min_relative_change"], None, id="zero-baseline-tol-worse-lo"),
    # A negative r is a tolerated relative regression.
    E(0.45, 0.43, False, None, None, -0.05, "passed", [], (0.43 - 0.45) / 0.43, id="negative-relative-tolerated"),
    E(0.52, 0.43, False, None, None, -0.05, "failed", ["min_relative_change"], (0.43 - 0.52) / 0.43, id="neg-rel-fail"),
    E(-0.6, -0.5, True, None, None, -0.1, "failed", ["min_relative_change"], (-0.6 - -0.5) / 0.5, id="neg-baseline"),
    E(-0.45, -0.5, True, None, None, 0.05, "passed", [], (-0.45 - -0.5) / 0.5, id="negative-baseline-improves"),
    E(
        -0.45,
        -0.5,
        True,
        None,
        None,
        0.1,
        "failed",
        ["min_relative_change"],
        (-0.45 - -0.5) / 0.5,
        id="negative-baseline-ieee-short-of-10pct",
    ),
    # Every criterion is evaluated; the failures are listed in a fixed order.
    E(0.8, 0.85, True, 0.9, 0.01, 0.02, "failed", list(CRITERIA), (0.8 - 0.85) / 0.85, id="all-three-fail"),
    E(0.6, 0.5, False, 0.55, 0.01, 0.02, "failed", list(CRITERIA), (0.5 - 0.6) / 0.5, id="all-three-fail-lower"),
    E(0.95, 0.94, True, 0.9, 0.05, 0.1, "failed", CRITERIA[1:], (0.95 - 0.94) / 0.94, id="abs-and-rel-fail"),
    E(0.85, 0.5, True, 0.9, 0.01, 0.5, "failed", ["threshold"], (0.85 - 0.5) / 0.5, id="only-threshold-fails"),
    E(
        0.85,
        0.5,
        True,
        0.9,
        0.5,
        0.1,
        "failed",
        ["threshold", "min_absolute_change"],
        (0.85 - 0.5) / 0.5,
        id="threshold-and-abs",
    ),
    E(0.95, 0.5, True, 0.9, 0.01, 0.5, "passed", [], (0.95 - 0.5) / 0.5, id="all-three-pass"),
]


@pytest.mark.parametrize(("c", "b", "gib", "t", "m", "r", "outcome", "failed", "d"), EDGE_CASES)
def test_evaluate_check_edge_cases(
    shared_db: Conn,
    c: float | None,
    b: float,
    gib: bool,
    t: float | None,
    m: float | None,
    r: float | None,
    outcome: str,
    failed: list[str],
    d: float | None,
) -> None:
    got = evaluate(shared_db, c, b, gib, t, m, r)
    assert got[:2] == (outcome, list(failed))
    ref = reference(c, b, gib, t, m, r)
    # The table itself agrees with the issue's rules as Python floats compute them.
    assert ref[:2] == (outcome, list(failed))
    if r is not None:  # the table's d is the one the criterion used
        assert same_float(got[2], d), f"relative_change {got[2]!r}, expected {d!r}"
    assert same_d(got[2], ref[2], r), f"relative_change {got[2]!r}, expected {ref[2]!r}"


def test_negative_relative_change_is_about_21_percent(shared_db: Conn) -> None:
    outcome, failed, d = evaluate(shared_db, 0.52, 0.43, False, None, None, -0.05)
    assert (outcome, failed) == ("failed", ["min_relative_change"])
    assert d == pytest.approx(-0.209, abs=5e-4)


GRID = [0.0, -0.0, TINY, -TINY, 1e-310, -1e-310, MIN_NORMAL, 1e-10, -1e-10, 1.0, -1.0, 1e308, -1e308, MAX, -MAX]
CHANGES = [None, -MAX, -1e308, -1.0, -0.05, 0.0, TINY, 0.05, 1.0, 1e308, MAX]


@pytest.mark.parametrize("criterion", CRITERIA)
def test_no_finite_input_raises(shared_db: Conn, criterion: str) -> None:
    """Every extreme finite combination gives a verdict (never an error) and the one Python floats give."""
    rows = []
    for c in GRID:
        for b in GRID:
            for gib in (True, False):
                for x in CHANGES[1:] if criterion != "threshold" else GRID:
                    t, m, r = (x if name == criterion else None for name in CRITERIA)
                    rows.append((c, b, gib, t, m, r))
    got = shared_db.execute(
        "select e.outcome, e.failed_criteria, e.relative_change"
        " from unnest(%s::float8[], %s::float8[], %s::boolean[], %s::float8[], %s::float8[], %s::float8[])"
        " with ordinality as u (c, b, gib, t, m, r, n)"
        " cross join lateral regate_internal._evaluate_check(u.c, u.b, u.gib, u.t, u.m, u.r) as e"
        " order by u.n",
        [list(column) for column in zip(*rows, strict=True)],
    ).fetchall()
    assert len(got) == len(rows)
    mismatches = []
    for case, (outcome, failed, d) in zip(rows, got, strict=True):
        exp_outcome, exp_failed, exp_d = reference(*case)
        if (outcome, failed) != (exp_outcome, exp_failed) or not same_d(d, exp_d, case[5]):
            mismatches.append((case, (outcome, failed, d), (exp_outcome, exp_failed, exp_d)))
    assert not mismatches, mismatches[:5]
    outcomes = Counter(outcome for outcome, _, _ in got)
    assert outcomes["passed"] > 100 and outcomes["failed"] > 100


# --- messages and the check object ------------------------------------------------------------------------------------


def as_json(value: float) -> float | str:
    """A metric value as current_metrics takes it: a number, or "NaN", "Infinity", "-Infinity"."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def gate(db: Conn, model: str, metrics: dict[str, Any], **kwargs: Any) -> tuple[str, bool, list[dict[str, Any]]]:
    """regate.run_gate; a verdict with status 'error' fails the test with the SQL error it recorded."""
    extra = "".join(f", {k} => %({k})s" for k in kwargs)
    row = db.execute(
        f"select status, blocked, checks, error_sqlstate, error_message from regate.run_gate(model_name => %(model)s,"
        f" current_metrics => %(metrics)s{extra})",
        {"model": model, "metrics": Jsonb(metrics), **kwargs},
    ).fetchone()
    assert row is not None
    assert row[0] != "error", f"run_gate recorded an error: {row[3]} {row[4]} for {metrics}"
    return row[0], row[1], row[2]


def one_check(db: Conn, metric: str, value: float | None, **baseline: Any) -> dict[str, Any]:
    """The check of `value` against a new baseline (create_baseline's named arguments) of model 'model-<metric>',
    via run_gate."""
    names = "".join(f", {k} => %({k})s" for k in baseline)
    db.execute(
        f"select regate.create_baseline(model_name => %(model)s, metric_name => %(metric)s{names})",
        {"model": f"model-{metric}", "metric": metric, **baseline},
    )
    _, _, checks = gate(db, f"model-{metric}", {} if value is None else {metric: as_json(value)})
    (check,) = checks
    return check


RELATIVE_SENTENCE = "eval_loss 0.52 is worse than baseline 0.43 by 20.9%, tolerance 5%"


def test_relative_regression_sentence(db: Conn) -> None:
    check = one_check(db, "eval_loss", 0.52, baseline_value=0.43, greater_is_better=False, min_relative_change=-0.05)
    assert check["message"] == RELATIVE_SENTENCE
    assert check["outcome"] == "failed"
    assert check["failed_criteria"] == ["min_relative_change"]
    assert check["observed"] == 0.52
    assert check["step"] is None
    assert check["metric_name"] == "eval_loss"
    assert (check["baseline_value"], check["min_relative_change"], check["greater_is_better"]) == (0.43, -0.05, False)


def test_run_gate_checks(db: Conn) -> None:
    db.execute("select regate.create_baseline('g', 'eval_loss', 0.43, false, min_relative_change => -0.05)")
    db.execute("select regate.create_baseline('g', 'accuracy', 0.85, true, threshold => 0.9)")
    db.execute("select regate.create_baseline('g', 'f1', 0.5, true, min_absolute_change => -0.1)")
    db.execute("select regate.create_baseline('g', 'recall', 0.7, true, min_absolute_change => 0.01)")
    db.execute("select regate.create_baseline('g', 'val_loss', 1.5, threshold => 2.0)")
    status, blocked, checks = gate(db, "g", {"eval_loss": 0.52, "accuracy": 0.8, "f1": 0.3, "val_loss": 2.5})
    assert (status, blocked) == ("failed", True)
    by_name = {c["metric_name"]: c for c in checks}
    assert [c["metric_name"] for c in checks] == ["accuracy", "eval_loss", "f1", "recall", "val_loss"]
    assert all(c["step"] is None for c in checks)
    assert by_name["eval_loss"]["message"] == RELATIVE_SENTENCE
    accuracy = by_name["accuracy"]["message"]
    assert accuracy.startswith("accuracy 0.8 ") and "below the threshold 0.9" in accuracy, accuracy
    val_loss = by_name["val_loss"]["message"]
    assert val_loss.startswith("val_loss 2.5 ") and "above the threshold 2" in val_loss, val_loss
    f1 = by_name["f1"]["message"]
    assert f1.startswith("f1 0.3 ") and "worse than baseline 0.5" in f1 and "tolerance 0.1" in f1, f1
    assert by_name["f1"]["failed_criteria"] == ["min_absolute_change"]
    recall = by_name["recall"]
    assert (recall["outcome"], recall["observed"], recall["failed_criteria"]) == ("missing", None, [])
    assert "recall" in recall["message"] and "not logged" in recall["message"], recall["message"]
    for c in checks:
        assert isinstance(c["observed"], float | None)
        assert c["outcome"] in ("failed", "missing")

    # Passing values say so, naming the metric and the baseline.
    status, blocked, checks = gate(
        db, "g", {"eval_loss": 0.45, "accuracy": 0.95, "f1": 0.45, "recall": 0.75, "val_loss": 1.0}
    )
    assert (status, blocked) == ("passed", False)
    by_name = {c["metric_name"]: c for c in checks}
    assert by_name["eval_loss"]["message"].startswith("eval_loss 0.45 passes"), by_name["eval_loss"]["message"]
    assert "worse than baseline 0.43" in by_name["eval_loss"]["message"]
    assert "recall 0.75 passes" in by_name["recall"]["message"]
    assert "better than baseline 0.7" in by_name["recall"]["message"]
    assert by_name["recall"]["observed"] == 0.75


def test_positive_absolute_change_sentence(db: Conn) -> None:
    check = one_check(db, "recall", 0.705, baseline_value=0.7, greater_is_better=True, min_absolute_change=0.01)
    assert check["failed_criteria"] == ["min_absolute_change"]
    message = check["message"]
    assert message.startswith("recall 0.705 ") and "better than baseline 0.7" in message, message
    assert "must improve on it by at least 0.01" in message, message


def test_several_failures_in_one_sentence(db: Conn) -> None:
    check = one_check(
        db,
        "accuracy",
        0.8,
        baseline_value=0.85,
        greater_is_better=True,
        threshold=0.9,
        min_absolute_change=0.01,
        min_relative_change=0.02,
    )
    assert check["failed_criteria"] == list(CRITERIA)
    message = check["message"]
    assert message.startswith("accuracy 0.8 "), message
    parts = message.split("; ")
    assert len(parts) == 3, message
    assert "below the threshold 0.9" in parts[0]
    assert "at least 0.01" in parts[1]
    assert "at least 2%" in parts[2]


def test_zero_baseline_sentences(db: Conn) -> None:
    strict = one_check(db, "delta", 0.0, baseline_value=0.0, greater_is_better=True, min_relative_change=0.1)
    assert strict["failed_criteria"] == ["min_relative_change"]
    assert strict["message"].startswith("delta 0 ") and "baseline of 0" in strict["message"], strict["message"]
    tolerant = one_check(db, "gamma", -0.5, baseline_value=0.0, greater_is_better=True, min_relative_change=-0.1)
    assert tolerant["failed_criteria"] == ["min_relative_change"]
    assert "must not be worse than a baseline of 0" in tolerant["message"], tolerant["message"]


@pytest.mark.parametrize(
    ("metrics", "observed", "phrase"),
    [
        ({"eval_loss": "NaN"}, "NaN", "eval_loss is NaN, not a finite number"),
        ({"eval_loss": "Infinity"}, "Infinity", "eval_loss is Infinity, not a finite number"),
        ({"eval_loss": "-Infinity"}, "-Infinity", "eval_loss is -Infinity, not a finite number"),
        ({"other": 1.0}, None, "eval_loss was not logged"),
    ],
)
def test_invalid_and_missing_values(db: Conn, metrics: dict[str, Any], observed: str | None, phrase: str) -> None:
    # -Infinity is better than any threshold for a loss: it must still fail, as must NaN (above every number).
    db.execute("select regate.create_baseline('g', 'eval_loss', 0.43, false, threshold => 1.0)")
    status, blocked, checks = gate(db, "g", metrics)
    assert (status, blocked) == ("failed", True)
    (check,) = checks
    assert check["outcome"] == ("missing" if observed is None else "invalid")
    assert check["failed_criteria"] == []
    assert check["observed"] == observed
    assert check["step"] is None
    assert phrase in check["message"], check["message"]


def test_required_but_not_logged(db: Conn) -> None:
    status, blocked, checks = gate(db, "g", {"accuracy": 0.9}, required_metrics=["bleu"])
    assert (status, blocked) == ("failed", True)
    (check,) = checks
    assert (check["metric_name"], check["outcome"], check["observed"], check["step"]) == ("bleu", "missing", None, None)
    assert "bleu was not logged" in check["message"]


@pytest.mark.parametrize("value", [0.1, 1 / 3, 0.52, 123.456, -7.25, 1e-3, 2.0**40 + 1])
def test_observed_is_the_exact_number(db: Conn, value: float) -> None:
    db.execute("select regate.create_baseline('g', 'score', 0.5, true, threshold => 0.0)")
    _, _, (check,) = gate(db, "g", {"score": value})
    assert isinstance(check["observed"], float | int)
    assert check["observed"] == value
    assert check["step"] is None


def test_a_completed_job_check_carries_the_step(db: Conn) -> None:
    """Through the completion trigger (not run_gate) a check names the step its value was logged at."""
    db.execute("select regate.create_baseline('j', 'eval_loss', 0.43, false, min_relative_change => -0.05)")
    job = new_job(db, "j")
    db.execute(
        "insert into regate.local_training_metrics (job_id, step, eval_loss) values (%s, 100, 0.3), (%s, 1200, 0.52)",
        (job, job),
    )
    complete(db, job)
    result = db.execute(
        "select r.status, r.checks from regate.validation_results as r where r.job_id = %s", (job,)
    ).fetchone()
    assert result is not None
    status, (check,) = result
    assert status == "failed"
    assert (check["step"], check["observed"], check["message"]) == (1200, 0.52, RELATIVE_SENTENCE)


@st.composite
def finite_checks(draw: st.DrawFn) -> tuple[float, float, bool, float | None, float | None, float | None]:
    gib = draw(st.booleans())
    b, t, m, r = draw(values), draw(st.none() | values), draw(st.none() | values), draw(st.none() | values)
    if t is None and m is None and r is None:
        r = draw(values)
    return draw(values), b, gib, t, m, r


def test_run_gate_never_errors_for_finite_values(db: Conn) -> None:
    """A verdict and its sentence exist for every finite value and baseline: the whole path, through run_gate."""
    seen: Counter[str] = Counter()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=finite_checks())
    def run(case: tuple[float, float, bool, float | None, float | None, float | None]) -> None:
        c, b, gib, t, m, r = case
        check = one_check(
            db,
            "acc",
            c,
            baseline_value=b,
            greater_is_better=gib,
            threshold=t,
            min_absolute_change=m,
            min_relative_change=r,
        )
        outcome, failed, _ = reference(c, b, gib, t, m, r)
        assert (check["outcome"], check["failed_criteria"]) == (outcome, failed), case
        assert float(check["observed"]) == c  # JSON may spell 1e290 as its 291 digits
        message = check["message"]
        assert message.startswith("acc "), message
        assert ("passes" in message) == (outcome == "passed"), message
        seen[outcome] += 1

    run()
    print("\nrun_gate property test:", dict(sorted(seen.items())))
    assert seen["passed"] >= 10 and seen["failed"] >= 10, seen


# --- messages must never fail, and numbers must read as the numbers they are -----------------------------------------


@pytest.mark.parametrize(
    ("value", "baseline"),
    [
        (5e-5, {"baseline_value": 2e-5, "greater_is_better": False, "threshold": 1e-3}),  # a small loss
        (3e-5, {"baseline_value": 2e-5, "greater_is_better": False, "min_relative_change": -0.05}),
        (2e15, {"baseline_value": 1e15, "greater_is_better": True, "threshold": 1.0}),  # a token count
        (1e303, {"baseline_value": 1e-4, "greater_is_better": True, "min_relative_change": 0.1}),  # d = 1e307
        (TINY, {"baseline_value": 0.0, "greater_is_better": True, "min_absolute_change": -1.0}),
        (1.0, {"baseline_value": 1e-310, "greater_is_better": True, "min_relative_change": 0.1}),  # d = inf
    ],
)
def test_message_never_raises_for_finite_values(db: Conn, value: float, baseline: dict[str, Any]) -> None:
    check = one_check(db, "loss_like", value, **baseline)
    assert check["outcome"] in ("passed", "failed")
    assert check["message"].startswith("loss_like "), check["message"]
    assert float(check["observed"]) == value


def test_small_values_do_not_turn_the_gate_into_an_error(db: Conn) -> None:
    db.execute("select regate.create_baseline('g', 'eval_loss', 2e-5, threshold => 1e-3)")
    status, blocked, checks = gate(db, "g", {"eval_loss": 5e-5})
    assert (status, blocked) == ("passed", False)
    (check,) = checks
    assert re.search(r"\b5(\.0*)?e-0?5\b", check["message"]), check["message"]
    assert re.search(r"\b2(\.0*)?e-0?5\b", check["message"]), check["message"]


def test_numbers_in_messages_keep_their_zeros(db: Conn) -> None:
    check = one_check(
        db, "perplexity", 1300.0, baseline_value=1200.0, greater_is_better=False, min_absolute_change=50.0
    )
    assert check["failed_criteria"] == ["min_absolute_change"]
    message = check["message"]
    assert message.startswith("perplexity 1300 "), message
    assert "baseline 1200 " in message, message
    assert "at least 50" in message, message
