"""The statistics of sql/035_stats.sql against references: math.lgamma, scipy.special.betainc, scipy.stats.t
and numpy. Each grid is one query (arrays in, unnest), so the suite stays fast."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special, stats

Conn = psycopg.Connection[Any]

PS = [0.5, 0.9, 0.95, 0.975, 0.99, 0.995, 0.9995]
PS = sorted(set(PS + [1 - p for p in PS]))
DFS = [float(d) for d in [*range(1, 31), 40, 60, 100, 1000]] + [1.5, 2.5, 3.7, 10.25, 99.9, 250.5]


def pairs(db: Conn, function: str, xs: list[float], dfs: list[float]) -> list[float]:
    rows = db.execute(
        f"select regate_internal.{function}(g.x, g.df) from unnest(%s::float8[], %s::float8[]) as g (x, df)",
        (xs, dfs),
    ).fetchall()
    return [float(r[0]) for r in rows]


def scaled_error(got: float, want: float) -> float:
    """Absolute error, relative where |want| > 1."""
    return abs(got - want) / max(1.0, abs(want))


def test_t_quantile_matches_scipy_on_the_grid(db: Conn) -> None:
    grid = [(p, df) for p in PS for df in DFS]
    got = pairs(db, "_t_quantile", [p for p, _ in grid], [df for _, df in grid])
    errors = [scaled_error(g, float(stats.t.ppf(p, df))) for g, (p, df) in zip(got, grid, strict=True)]
    worst = max(range(len(grid)), key=lambda i: errors[i])
    assert errors[worst] < 1e-9, (grid[worst], got[worst])
    # what the header of sql/035_stats.sql claims
    assert errors[worst] < 1e-12, (grid[worst], got[worst], errors[worst])
    # the median is exactly 0, and the quantiles are antisymmetric
    assert all(g == 0 for g, (p, _) in zip(got, grid, strict=True) if p == 0.5)


def test_t_quantile_for_large_df_approaches_the_normal(db: Conn) -> None:
    grid = [(p, df) for p in PS for df in [1e4, 1e5, 1e6, 1e7]]
    got = pairs(db, "_t_quantile", [p for p, _ in grid], [df for _, df in grid])
    errors = [scaled_error(g, float(stats.t.ppf(p, df))) for g, (p, df) in zip(got, grid, strict=True)]
    assert max(errors) < 1e-10


def test_t_quantile_far_in_the_tails(db: Conn) -> None:
    dfs = [1.0, 1.2, 2.0, 3.0, 7.5, 50.0]
    grid = [(p, df) for p in [1e-100, 1e-20, 1e-12, 1 - 1e-12] for df in dfs]
    got = pairs(db, "_t_quantile", [p for p, _ in grid], [df for _, df in grid])
    for g, (p, df) in zip(got, grid, strict=True):
        want = float(stats.t.ppf(p, df))
        assert abs(g - want) <= 1e-12 * abs(want), (p, df, g, want)
    # scipy gives up near 1e-300 (inf, or a quantile whose CDF is not p): check that the CDF inverts the quantile
    rows = db.execute(
        "select regate_internal._t_cdf(regate_internal._t_quantile(1e-300, df), df) from unnest(%s::float8[]) as df",
        (dfs,),
    ).fetchall()
    assert all(abs(r[0] - 1e-300) <= 1e-12 * 1e-300 for r in rows), rows


def t_cdf_reference(t: float, df: float) -> float:
    """scipy.stats.t.cdf, the closed forms for df = 1 and 2 (scipy is off by 1.6e-9 at t = 1e-8, df = 1), and the
    leading term of the tail for |t| > 1e100."""
    if df == 1:
        tail = math.atan2(1.0, abs(t)) / math.pi
    elif df == 2:
        tail = 0.0 if abs(t) > 1e150 else 1 / ((2 + t * t) * (1 + abs(t) / math.sqrt(2 + t * t)))
    elif abs(t) > 1e100:
        # scipy returns 0 out there; the leading term of the tail is exact to double precision
        log_tail = (
            math.lgamma((df + 1) / 2)
            - math.lgamma(df / 2)
            - 0.5 * math.log(df * math.pi)
            + (df - 1) / 2 * math.log(df)
            - df * math.log(abs(t))
        )
        tail = math.exp(log_tail) if log_tail > -700 else 0.0
    else:
        return float(stats.t.cdf(t, df))
    return tail if t <= 0 else 1 - tail


def test_t_cdf_matches_scipy(db: Conn) -> None:
    ts = [0.0, 1e-120, 1e-8, 0.1, 0.5, 1.0, 1.7, 2.0, 3.0, 5.0, 10.0, 50.0, 1e3, 1e6, 1e160]
    ts = ts + [-t for t in ts if t]
    grid = [(t, df) for t in ts for df in [*DFS, 1e4, 1e6]]
    got = pairs(db, "_t_cdf", [t for t, _ in grid], [df for _, df in grid])
    for g, (t, df) in zip(got, grid, strict=True):
        want = t_cdf_reference(t, df)
        # the smaller tail to 1e-12 relative (absolute below 1e-300), the larger side to 1e-14 absolute; for
        # df >= 1e4 the continued fraction's first terms cancel (~1e-16 df relative)
        if t <= 0:
            assert abs(g - want) <= max((1e-12 if df <= 1000 else 1e-10) * want, 1e-300), (t, df, g, want)
        else:
            assert abs(g - want) <= (1e-14 if df <= 1000 else 1e-12), (t, df, g, want)
    row = db.execute(
        "select regate_internal._t_cdf('Infinity', 3), regate_internal._t_cdf('-Infinity', 3),"
        " regate_internal._t_cdf('NaN', 3)::text"
    ).fetchone()
    assert row == (1.0, 0.0, "NaN")


def test_incomplete_beta_matches_scipy(db: Conn) -> None:
    xs = [0.0, 1e-10, 0.001, 0.05, 0.2, 0.5, 0.7, 0.95, 0.999, 1.0]
    ab = [0.5, 1.0, 1.5, 2.0, 3.0, 7.5, 20.0, 100.0, 500.0]
    grid = [(x, a, b) for x in xs for a in ab for b in ab]
    rows = db.execute(
        "select regate_internal._incomplete_beta(g.x, g.a, g.b)"
        " from unnest(%s::float8[], %s::float8[], %s::float8[]) as g (x, a, b)",
        ([g[0] for g in grid], [g[1] for g in grid], [g[2] for g in grid]),
    ).fetchall()
    worst = 0.0
    for (got,), (x, a, b) in zip(rows, grid, strict=True):
        want = float(special.betainc(a, b, x))
        error = abs(got - want)
        # the prefactor's log-gammas cancel for large a, b: ~1e-15 * max(a, b)
        assert error <= 2e-12 * min(want, 1 - want) or error <= 1e-15, (x, a, b, got, want)
        worst = max(worst, error)
    assert worst < 5e-13


def test_log_gamma_matches_math_lgamma(db: Conn) -> None:
    xs = [1e-300, 1e-10, 0.001, 0.1, 0.25, 0.4999, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.5, 7.0, 10.0, 12.5, 33.3]
    xs += [100.0, 250.5, 1000.0, 1e4, 5e5, 1e10, 1e100, 1e300]
    rows = db.execute(
        "select regate_internal._log_gamma(x) from unnest(%s::float8[]) as x",
        (xs,),
    ).fetchall()
    for (got,), x in zip(rows, xs, strict=True):
        want = math.lgamma(x)
        assert abs(got - want) <= 1e-14 * max(1.0, abs(want)), (x, got, want)


def test_normal_quantile_is_acklams(db: Conn) -> None:
    ps = [1e-300, 1e-10, 0.001, 0.02, 0.02425, 0.1, 0.3, 0.5, 0.7, 0.97575, 0.99, 1 - 1e-10]
    rows = db.execute("select regate_internal._normal_quantile(p) from unnest(%s::float8[]) as p", (ps,)).fetchall()
    for (got,), p in zip(rows, ps, strict=True):
        want = float(stats.norm.ppf(p))
        assert abs(got - want) <= 1.2e-9 * abs(want), (p, got, want)


def mean_interval(db: Conn, values: list[float], confidence: float) -> tuple[Any, ...]:
    row = db.execute(
        "select n, mean, stddev, ci_low, ci_high from regate_internal._mean_interval(%s::float8[], %s)",
        (values, confidence),
    ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("n", [2, 3, 5, 10, 50])
def test_mean_interval_matches_scipy(db: Conn, n: int, confidence: float) -> None:
    rng = np.random.default_rng(1000 * n + int(confidence * 100))
    for loc, scale in [(0.87, 0.004), (-3.0, 2.0), (1e6, 1e-3)]:
        values = [float(v) for v in rng.normal(loc, scale, n)]
        got_n, mean, sd, low, high = mean_interval(db, values, confidence)
        want_mean = float(np.mean(values))
        want_sd = float(np.std(values, ddof=1))
        want_low, want_high = stats.t.interval(confidence, n - 1, loc=want_mean, scale=want_sd / math.sqrt(n))
        assert got_n == n
        assert mean == pytest.approx(want_mean, rel=1e-15, abs=1e-15 * scale)
        assert sd == pytest.approx(want_sd, rel=1e-12)
        assert low == pytest.approx(float(want_low), rel=1e-14, abs=1e-11 * scale)
        assert high == pytest.approx(float(want_high), rel=1e-14, abs=1e-11 * scale)


def test_mean_interval_of_one_run_none_and_constant_runs(db: Conn) -> None:
    assert mean_interval(db, [0.87], 0.95) == (1, 0.87, None, None, None)
    assert mean_interval(db, [], 0.95) == (0, None, None, None, None)
    row = db.execute("select n, mean from regate_internal._mean_interval(null, 0.95)").fetchone()
    assert row == (0, None)
    assert mean_interval(db, [0.5, 0.5, 0.5], 0.95) == (3, 0.5, 0.0, 0.5, 0.5)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", None])
def test_mean_interval_with_a_non_finite_run_is_invalid(db: Conn, bad: str | None) -> None:
    row = db.execute(
        "select n, mean, stddev, ci_low, ci_high"
        " from regate_internal._mean_interval(array[0.5, %s::float8, 0.7], 0.95)",
        (bad,),
    ).fetchone()
    assert row == (3, None, None, None, None)


def test_mean_interval_at_extreme_magnitudes(db: Conn) -> None:
    # no float8 overflow or underflow error: huge values are rescaled, an overflowing end is infinite
    n, mean, sd, low, high = mean_interval(db, [1e308, 1.5e308, 1.7e308], 0.95)
    assert (n, mean) == (3, pytest.approx(1.4e308, rel=1e-15))
    assert sd == pytest.approx(float(np.std(np.array([1.0, 1.5, 1.7]) * 1e8, ddof=1)) * 1e300, rel=1e-14)
    assert low == pytest.approx(
        float(stats.t.interval(0.95, 2, loc=1.4e308 / 1e300, scale=sd / 1e300 / 3**0.5)[0]) * 1e300, rel=1e-12
    )
    assert high == float("inf")
    n, mean, sd, low, high = mean_interval(db, [-1.7e308, 1.7e308], 0.99)
    assert (n, mean, low, high) == (2, 0.0, float("-inf"), float("inf")) and sd == float("inf")
    tiny = [3e-320, 5e-320, 4e-320]
    n, mean, sd, low, high = mean_interval(db, tiny, 0.95)
    assert n == 3 and mean == pytest.approx(4e-320, rel=1e-3) and sd == pytest.approx(1e-320, rel=1e-3)
    n, mean, sd, low, high = mean_interval(db, [1e-200, 2e-200, 3e-200, 1e200], 0.5)
    assert mean == pytest.approx(2.5e199, rel=1e-15) and sd == pytest.approx(5e199, rel=1e-15)
    # a tiny confidence gives an interval of width 0, not an underflow
    assert mean_interval(db, [1e-300, 2e-300], 1e-20)[3:] == (1.5e-300, 1.5e-300)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("select regate_internal._t_quantile(0, 3)", "p must be between 0 and 1"),
        ("select regate_internal._t_quantile(1, 3)", "p must be between 0 and 1"),
        ("select regate_internal._t_quantile('NaN', 3)", "p must be between 0 and 1"),
        ("select regate_internal._t_quantile(0.5, 0.5)", "df (degrees of freedom) must be finite and >= 1"),
        ("select regate_internal._t_quantile(0.5, 'NaN')", "df (degrees of freedom) must be finite and >= 1"),
        ("select regate_internal._t_quantile(0.5, 'Infinity')", "df (degrees of freedom) must be finite and >= 1"),
        ("select regate_internal._t_cdf(1, 0)", "df (degrees of freedom) must be finite and >= 1"),
        ("select regate_internal._normal_quantile(1.5)", "p must be between 0 and 1"),
        ("select regate_internal._incomplete_beta(1.5, 1, 1)", "x must be in [0, 1]"),
        ("select regate_internal._incomplete_beta(0.5, 0, 1)", "a and b must be finite and > 0"),
        ("select regate_internal._log_gamma(0)", "x must be > 0"),
        ("select regate_internal._mean_interval(array[1, 2], 1)", "confidence must be between 0 and 1"),
        ("select regate_internal._mean_interval(array[1, 2], 0)", "confidence must be between 0 and 1"),
        ("select regate_internal._mean_interval(array[1, 2], null)", "confidence must be between 0 and 1"),
    ],
)
def test_arguments_outside_the_domain_are_refused(db: Conn, query: str, message: str) -> None:
    with pytest.raises(psycopg.Error) as err:
        db.execute(query)
    assert err.value.sqlstate == "22023"
    assert message in (err.value.diag.message_primary or "")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    df=st.one_of(st.integers(min_value=1, max_value=500).map(float), st.floats(min_value=1.0, max_value=500.0)),
    p=st.floats(min_value=0.001, max_value=0.999),
)
def test_the_cdf_inverts_the_quantile(db: Conn, df: float, p: float) -> None:
    row = db.execute("select regate_internal._t_cdf(regate_internal._t_quantile(%s, %s), %s)", (p, df, df)).fetchone()
    assert row is not None
    assert abs(row[0] - p) <= 1e-10, (p, df, row[0])
