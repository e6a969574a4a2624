-- Statistics for repeated runs: log-gamma, the regularized incomplete beta function, Student's t distribution
-- (CDF and quantiles for any df >= 1, integer or not) and the mean of n runs with its two-sided Student-t
-- confidence interval. The noise-aware checks of run groups build on _mean_interval.
--
-- Internal helpers, never granted: PL/pgSQL (cached, no dynamic SQL, no table access) with a pinned search_path.
-- PostgreSQL's float8 operators raise on overflow and underflow where IEEE 754 would round, so every exp(),
-- square and quotient below is guarded: tails below ~1e-307 are returned as 0, and extreme magnitudes of run
-- values are rescaled by powers of two.
--
-- Accuracy, measured by tests/test_stats.py against math.lgamma and scipy: _log_gamma 1e-14 relative (absolute
-- near its zeros at 1 and 2); _incomplete_beta 1e-15 absolute for small a, b, growing to 4e-13 at a or b = 500
-- (the log-gammas of its prefactor cancel); _t_cdf 1e-14 absolute and 1e-12 relative in the smaller tail;
-- _t_quantile 1e-14 (relative for |t| > 1) for df in [1, 1000]. For larger df the continued fraction's first
-- terms cancel (~1e-16 df relative): 4e-12 at df = 1e6, 5e-11 at 1e7; it takes O(sqrt(df)) terms and stops after
-- 20000, so beyond df ~ 1e8 the t functions lose accuracy.
--
-- Error codes raised here:
--   22023  an argument outside its domain (p or confidence not in (0, 1), df < 1, x not in [0, 1], a or b <= 0)

-- regate_internal._log_gamma(x): ln Γ(x) for x > 0: the Lanczos approximation (g = 7, 9 coefficients), with
-- Γ(x) = Γ(x + 1) / x below 0.5. Raises 22023 for x <= 0 or NaN.
create or replace function regate_internal._log_gamma(p_x double precision)
returns double precision
language plpgsql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_x double precision := p_x;
    v_shift double precision := 0::float8;
    v_sum double precision;
    v_t double precision;
begin
    if not (p_x > 0) or p_x = 'NaN'::float8 then
        raise exception using errcode = '22023', message = format('_log_gamma: x must be > 0, got %s', p_x);
    end if;
    if p_x = 'Infinity'::float8 then
        return p_x;
    end if;
    if v_x < 0.5 then
        v_shift := ln(v_x);
        v_x := v_x + 1;
    end if;
    v_x := v_x - 1;
    v_sum := 0.99999999999980993
        + 676.5203681218851 / (v_x + 1)
        - 1259.1392167224028 / (v_x + 2)
        + 771.32342877765313 / (v_x + 3)
        - 176.61502916214059 / (v_x + 4)
        + 12.507343278686905 / (v_x + 5)
        - 0.13857109526572012 / (v_x + 6)
        + 9.9843695780195716e-6 / (v_x + 7)
        + 1.5056327351493116e-7 / (v_x + 8);
    v_t := v_x + 7.5;
    return 0.91893853320467274178 + (v_x + 0.5) * ln(v_t) - v_t + ln(v_sum) - v_shift;
end;
$$;

-- regate_internal._log1p(x): ln(1 + x), accurate for small x too (Goldberg's correction of the rounded 1 + x).
create or replace function regate_internal._log1p(p_x double precision)
returns double precision
language plpgsql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_u double precision := 1 + p_x;
begin
    return case when v_u = 1 then p_x else ln(v_u) * p_x / (v_u - 1) end;
end;
$$;

-- regate_internal._beta_cf(x, a, b): the continued fraction of I_x(a, b) = x^a (1-x)^b / (a B(a, b)) * cf, as
-- Numerical Recipes' betacf evaluates it (modified Lentz; 1e-30 stands in for a zero denominator). It converges
-- quickly, in O(sqrt(max(a, b))) terms, for x < (a + 1) / (a + b + 2); callers check the arguments.
create or replace function regate_internal._beta_cf(p_x double precision, p_a double precision, p_b double precision)
returns double precision
language plpgsql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_c double precision := 1::float8;
    v_d double precision;
    v_h double precision;
    v_aa double precision;
    v_del double precision;
    v_m2 integer;
begin
    if p_x < 1e-300 then
        -- 1 + O(x)
        return 1::float8;
    end if;
    v_d := 1 - (p_a + p_b) * p_x / (p_a + 1);
    if abs(v_d) < 1e-30 then
        v_d := 1e-30;
    end if;
    v_d := 1 / v_d;
    v_h := v_d;
    for v_m in 1..20000 loop
        v_m2 := 2 * v_m;
        v_aa := v_m * (p_b - v_m) * p_x / ((p_a - 1 + v_m2) * (p_a + v_m2));
        v_d := 1 + v_aa * v_d;
        if abs(v_d) < 1e-30 then
            v_d := 1e-30;
        end if;
        v_c := 1 + v_aa / v_c;
        if abs(v_c) < 1e-30 then
            v_c := 1e-30;
        end if;
        v_d := 1 / v_d;
        v_h := v_h * v_d * v_c;
        v_aa := -(p_a + v_m) * (p_a + p_b + v_m) * p_x / ((p_a + v_m2) * (p_a + 1 + v_m2));
        v_d := 1 + v_aa * v_d;
        if abs(v_d) < 1e-30 then
            v_d := 1e-30;
        end if;
        v_c := 1 + v_aa / v_c;
        if abs(v_c) < 1e-30 then
            v_c := 1e-30;
        end if;
        v_d := 1 / v_d;
        v_del := v_d * v_c;
        v_h := v_h * v_del;
        exit when abs(v_del - 1) < 1e-16;
    end loop;
    return v_h;
end;
$$;

-- regate_internal._incomplete_beta(x, a, b): the regularized incomplete beta function I_x(a, b) for 0 <= x <= 1,
-- a, b > 0: _beta_cf where it converges quickly (x < (a + 1) / (a + b + 2)), through I_x(a, b) = 1 - I_{1-x}(b, a)
-- elsewhere. Values below ~1e-307 are returned as 0. Raises 22023 for arguments outside the domain.
create or replace function regate_internal._incomplete_beta(
    p_x double precision, p_a double precision, p_b double precision
)
returns double precision
language plpgsql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_swap boolean;
    v_x double precision;
    v_a double precision;
    v_b double precision;
    v_log double precision;
    v_result double precision := 0::float8;
begin
    if not (p_x >= 0 and p_x <= 1) then
        raise exception using errcode = '22023', message = format('_incomplete_beta: x must be in [0, 1], got %s', p_x);
    end if;
    if not (p_a > 0 and p_b > 0) or p_a = 'NaN'::float8 or p_b = 'NaN'::float8
        or p_a = 'Infinity'::float8 or p_b = 'Infinity'::float8 then
        raise exception using errcode = '22023', message = format(
            '_incomplete_beta: a and b must be finite and > 0, got a = %s, b = %s', p_a, p_b
        );
    end if;
    if p_x = 0 or p_x = 1 then
        return p_x;
    end if;
    v_swap := p_x >= (p_a + 1) / (p_a + p_b + 2);
    if v_swap then
        v_x := 1 - p_x;
        v_a := p_b;
        v_b := p_a;
    else
        v_x := p_x;
        v_a := p_a;
        v_b := p_b;
    end if;
    -- ln of x^a (1-x)^b / (a B(a, b))
    v_log := regate_internal._log_gamma(v_a + v_b) - regate_internal._log_gamma(v_a)
        - regate_internal._log_gamma(v_b) + v_a * ln(v_x) + v_b * regate_internal._log1p(-v_x) - ln(v_a);
    if v_log >= -708 then
        v_log := v_log + ln(regate_internal._beta_cf(v_x, v_a, v_b));
        if v_log >= -708 then
            v_result := exp(v_log);
        end if;
    end if;
    return case when v_swap then 1 - v_result else v_result end;
end;
$$;

-- regate_internal._t_log_norm(df): ln of the constant of Student's t density, Γ((df+1)/2) / (Γ(df/2) sqrt(df pi)).
-- From df = 40 on through Stirling's series of the two log-gammas' difference, which does not cancel.
create or replace function regate_internal._t_log_norm(p_df double precision)
returns double precision
language plpgsql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_a double precision := p_df / 2;
    v_b double precision := p_df / 2 + 0.5;
    v_ia double precision := 1 / (p_df / 2);
    v_ib double precision := 1 / (p_df / 2 + 0.5);
begin
    if p_df < 40 then
        return regate_internal._log_gamma(v_b) - regate_internal._log_gamma(v_a) - 0.5 * ln(p_df * pi());
    end if;
    -- a ln(1 + 1/(2a)) - 1/2 - ln(2 pi)/2 + w(a + 1/2) - w(a), with Stirling's
    -- w(z) = 1/(12z) - 1/(360z^3) + 1/(1260z^5) - 1/(1680z^7) + 1/(1188z^9) (next term below 1e-17 for z >= 20)
    return v_a * regate_internal._log1p(0.5 / v_a) - 0.5 - 0.91893853320467274178
        + v_ib * (1.0 / 12 - v_ib * v_ib * (1.0 / 360 - v_ib * v_ib * (1.0 / 1260 - v_ib * v_ib * (1.0 / 1680
            - v_ib * v_ib / 1188))))
        - v_ia * (1.0 / 12 - v_ia * v_ia * (1.0 / 360 - v_ia * v_ia * (1.0 / 1260 - v_ia * v_ia * (1.0 / 1680
            - v_ia * v_ia / 1188))));
end;
$$;

-- regate_internal._t_cdf(t, df): P(T <= t) for Student's t with df >= 1 degrees of freedom (not necessarily an
-- integer). The smaller tail is computed directly (relative accuracy far out in it): I_x(df/2, 1/2) / 2 with
-- x = df / (df + t^2), or near the centre 1/2 - I_y(1/2, df/2) / 2 with y = t^2 / (df + t^2); both share the factor
-- x^(df/2) y^(1/2) / B(df/2, 1/2) = |t| pdf(t), computed here with ln(1 + t^2/df) so that no power of a rounded x
-- loses accuracy for large df. NaN for a NaN t. Raises 22023 for df < 1 or df not finite.
create or replace function regate_internal._t_cdf(p_t double precision, p_df double precision)
returns double precision
language plpgsql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_abs double precision := abs(p_t);
    v_t2 double precision;
    v_x double precision;
    v_log double precision;
    v_tail double precision := 0::float8;
begin
    if not (p_df >= 1) or p_df = 'NaN'::float8 or p_df = 'Infinity'::float8 then
        raise exception using errcode = '22023', message = format(
            '_t_cdf: df (degrees of freedom) must be finite and >= 1, got %s', p_df
        );
    end if;
    if p_t = 'NaN'::float8 then
        return p_t;
    elsif v_abs = 'Infinity'::float8 then
        return case when p_t > 0 then 1::float8 else 0::float8 end;
    elsif v_abs < 1e-100 then
        -- 0.5 + t pdf(0) rounds to 0.5
        return 0.5::float8;
    elsif v_abs > 1e150 then
        -- t^2 would overflow: ln(1 + t^2/df) = 2 ln|t| - ln df to double precision
        v_log := regate_internal._t_log_norm(p_df) + ln(v_abs) - (p_df + 1) / 2 * (2 * ln(v_abs) - ln(p_df));
        if v_log >= -708 then
            v_x := exp(greatest(ln(p_df) - 2 * ln(v_abs), -708));
            v_tail := exp(v_log) * regate_internal._beta_cf(v_x, p_df / 2, 0.5) / p_df;
        end if;
    else
        v_t2 := v_abs * v_abs;
        v_log := regate_internal._t_log_norm(p_df) + ln(v_abs) - (p_df + 1) / 2 * regate_internal._log1p(v_t2 / p_df);
        v_x := p_df / (p_df + v_t2);
        if v_x < (p_df / 2 + 1) / (p_df / 2 + 2.5) then
            if v_log >= -708 then
                v_tail := exp(v_log) * regate_internal._beta_cf(v_x, p_df / 2, 0.5) / p_df;
            end if;
        else
            v_tail := 0.5 - exp(v_log) * regate_internal._beta_cf(v_t2 / (p_df + v_t2), 0.5, p_df / 2);
        end if;
    end if;
    return case when p_t < 0 then v_tail else 1 - v_tail end;
end;
$$;

-- regate_internal._normal_quantile(p): the standard normal quantile, Acklam's rational approximation (relative
-- error below 1.15e-9): the start of _t_quantile's iteration. Raises 22023 for p outside (0, 1).
create or replace function regate_internal._normal_quantile(p_p double precision)
returns double precision
language plpgsql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_q double precision;
    v_r double precision;
begin
    if not (p_p > 0 and p_p < 1) then
        raise exception using errcode = '22023', message = format(
            '_normal_quantile: p must be between 0 and 1 (exclusive), got %s', p_p
        );
    end if;
    if p_p < 0.02425 or p_p > 0.97575 then
        v_q := sqrt(-2 * ln(least(p_p, 1 - p_p)));
        v_r := (((((-7.784894002430293e-03 * v_q - 3.223964580411365e-01) * v_q - 2.400758277161838e+00) * v_q
            - 2.549732539343734e+00) * v_q + 4.374664141464968e+00) * v_q + 2.938163982698783e+00)
            / ((((7.784695709041462e-03 * v_q + 3.224671290700398e-01) * v_q + 2.445134137142996e+00) * v_q
                + 3.754408661907416e+00) * v_q + 1);
        return case when p_p < 0.5 then v_r else -v_r end;
    end if;
    v_q := p_p - 0.5;
    v_r := v_q * v_q;
    return (((((-3.969683028665376e+01 * v_r + 2.209460984245205e+02) * v_r - 2.759285104469687e+02) * v_r
        + 1.383577518672690e+02) * v_r - 3.066479806614716e+01) * v_r + 2.506628277459239e+00) * v_q
        / (((((-5.447609879822406e+01 * v_r + 1.615858368580409e+02) * v_r - 1.556989798598866e+02) * v_r
            + 6.680131188771972e+01) * v_r - 1.328068155288572e+01) * v_r + 1);
end;
$$;

-- regate_internal._t_quantile(p, df): the p-quantile of Student's t with df >= 1 degrees of freedom (not
-- necessarily an integer), 0 < p < 1. Closed forms for df = 1 and df = 2; otherwise Hill's start (Algorithm 396,
-- 1970, as R's qt uses it) refined by Halley steps on the smaller tail of _t_cdf, inside a bracket that falls back
-- to bisection. Raises 22023 for p outside (0, 1) or df < 1 or df not finite.
create or replace function regate_internal._t_quantile(p_p double precision, p_df double precision)
returns double precision
language plpgsql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    -- the smaller tail probability: 1 - p is exact for p >= 0.5
    v_q double precision := case when p_p < 0.5 then p_p else 1 - p_p end;
    v_two double precision;
    v_x double precision;
    v_y double precision;
    v_a double precision;
    v_b double precision;
    v_c double precision;
    v_d double precision;
    v_lo double precision := 0::float8;
    v_hi double precision := 'Infinity'::float8;
    v_tail double precision;
    v_log_norm double precision;
    v_log_pdf double precision;
    v_u double precision;
    v_next double precision;
    v_halley boolean;
begin
    if not (p_p > 0 and p_p < 1) then
        raise exception using errcode = '22023', message = format(
            '_t_quantile: p must be between 0 and 1 (exclusive), got %s', p_p
        );
    end if;
    if not (p_df >= 1) or p_df = 'NaN'::float8 or p_df = 'Infinity'::float8 then
        raise exception using errcode = '22023', message = format(
            '_t_quantile: df (degrees of freedom) must be finite and >= 1, got %s', p_df
        );
    end if;
    if p_p = 0.5 then
        return 0::float8;
    end if;
    if p_df = 1 then
        -- Cauchy: the upper tail q is at cot(pi q) = tan(pi (1/2 - q))
        v_x := case when v_q < 0.25 then cot(pi() * v_q) else tan(pi() * (0.5 - v_q)) end;
    elsif p_df = 2 then
        v_x := (1 - 2 * v_q) / sqrt(2 * v_q * (1 - v_q));
    else
        -- Hill's start, from the two-sided probability
        v_two := 2 * v_q;
        v_a := 1 / (p_df - 0.5);
        v_b := 48 / (v_a * v_a);
        v_c := ((20700 * v_a / v_b - 98) * v_a - 16) * v_a + 96.36;
        v_d := ((94.5 / (v_b + v_c) - 3) / v_b + 1) * sqrt(v_a * pi() / 2) * p_df;
        v_y := (2 / p_df) * ln(v_d * v_two);
        if v_y < -36 then
            -- far tail: t ~ sqrt(df) (d P)^(-1/df)
            v_x := exp(least(0.5 * ln(p_df) - v_y / 2, 700));
        else
            v_y := exp(v_y);
            if (p_df < 2.1 and v_two > 0.5) or v_y > 0.05 + v_a then
                v_x := regate_internal._normal_quantile(v_q);
                v_y := v_x * v_x;
                if p_df < 5 then
                    v_c := v_c + 0.3 * (p_df - 4.5) * (v_x + 0.6);
                end if;
                v_c := (((0.05 * v_d * v_x - 5) * v_x - 7) * v_x - 2) * v_x + v_b + v_c;
                v_y := (((((0.4 * v_y + 6.3) * v_y + 36) * v_y + 94.5) / v_c - v_y - 3) / v_b + 1) * v_x;
                v_y := v_a * v_y * v_y;
                v_y := case when v_y > 0.002 then exp(v_y) - 1 else (0.5 * v_y + 1) * v_y end;
            else
                v_y := ((1 / (((p_df + 6) / (p_df * v_y) - 0.089 * v_d - 0.822) * (p_df + 2) * 3)
                    + 0.5 / (p_df + 4)) * v_y - 1) * (p_df + 1) / (p_df + 2) + 1 / v_y;
            end if;
            v_x := sqrt(p_df * v_y);
        end if;
        if not (v_x > 0) or v_x = 'Infinity'::float8 then
            v_x := 1;
        end if;
        -- Halley steps on tail(x) = q, x > 0; the bracket [lo, hi] always holds the root
        v_log_norm := regate_internal._t_log_norm(p_df);
        for v_i in 1..200 loop
            v_tail := regate_internal._t_cdf(-v_x, p_df);
            exit when v_tail = v_q;
            if v_tail > v_q then
                v_lo := v_x;
            else
                v_hi := v_x;
            end if;
            v_log_pdf := v_log_norm - (p_df + 1) / 2 * case
                when v_x < 1e100 then regate_internal._log1p(v_x / p_df * v_x) else 2 * ln(v_x) - ln(p_df)
            end;
            v_next := null;
            if v_log_pdf > -650 then
                v_u := (v_tail - v_q) / exp(v_log_pdf);
                if abs(v_u) < 1e100 and v_x < 1e100 then
                    v_next := v_x + v_u * (1 + v_u * v_x * (p_df + 1) / (2 * (v_x * v_x + p_df)));
                end if;
            end if;
            v_halley := v_next > v_lo and v_next < v_hi;
            if not coalesce(v_halley, false) then
                v_next := case when v_hi = 'Infinity'::float8 then 2 * v_x else (v_lo + v_hi) / 2 end;
            end if;
            exit when v_next = v_x;
            v_u := abs(v_next - v_x);
            v_x := v_next;
            -- Halley converges cubically: after a step below 1e-9 relative the error is far below one ulp
            exit when v_u <= 1e-15 * v_x or (v_halley and v_u <= 1e-9 * v_x);
        end loop;
    end if;
    return case when p_p < 0.5 then -v_x else v_x end;
end;
$$;

-- regate_internal._mean_interval(vals, confidence): n (the array's length), the mean, the sample standard deviation
-- (n - 1 in the denominator) and the two-sided confidence interval of the mean,
-- mean -/+ t_{(1 + confidence)/2, n-1} * stddev / sqrt(n). One value: its mean, NULL for the rest; none (an empty
-- or NULL array): n = 0 and NULLs. Any element that is NULL, NaN or infinite: n and NULLs (the caller treats the
-- check as invalid). Two passes: the mean (corrected by the mean deviation from it), then the deviations, scaled
-- by the largest one so that no square overflows or underflows. Values beyond 1e150 in magnitude (or all below
-- 1e-150) are scaled by 2^-600 (2^600) first; an interval end that overflows is +/-Infinity, and a result whose
-- magnitude is below ~1e-290 of the largest value counts as 0. Raises 22023 for a confidence outside (0, 1).
create or replace function regate_internal._mean_interval(
    p_vals double precision[],
    p_confidence double precision,
    out n integer,
    out mean double precision,
    out stddev double precision,
    out ci_low double precision,
    out ci_high double precision
)
language plpgsql
immutable
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_v double precision;
    v_max double precision := 0::float8;
    v_scale double precision := 1::float8;
    v_xs double precision [];
    v_sum double precision := 0::float8;
    v_mean double precision;
    v_dev double precision;
    v_dmax double precision := 0::float8;
    v_ss double precision := 0::float8;
    v_sd double precision := 0::float8;
    v_t double precision;
    v_half double precision := 0::float8;
    v_out double precision [];
begin
    if p_confidence is null or not (p_confidence > 0 and p_confidence < 1) then
        raise exception using errcode = '22023', message = format(
            '_mean_interval: confidence must be between 0 and 1 (exclusive), got %s',
            coalesce(p_confidence::text, 'NULL')
        );
    end if;
    n := coalesce(cardinality(p_vals), 0);
    if n = 0 then
        return;
    end if;
    foreach v_v in array p_vals loop
        if v_v is null or v_v = 'NaN'::float8 or abs(v_v) = 'Infinity'::float8 then
            return;
        end if;
        v_max := greatest(v_max, abs(v_v));
    end loop;
    if n = 1 then
        mean := p_vals[1];
        return;
    end if;
    if v_max > 1e150 then
        -- 2^-600: exact for the values that matter; those below 1e-140 cannot move the result
        v_scale := 2.409919865102884e-181;
        v_xs := array(
            select case when abs(x.v) < 1e-140 then 0 else x.v * 2.409919865102884e-181 end
            from unnest(p_vals) as x (v)
        );
    elsif v_max < 1e-150 and v_max > 0 then
        v_scale := 4.149515568880993e+180;
        v_xs := array(select x.v * 4.149515568880993e+180 from unnest(p_vals) as x (v));
    else
        v_xs := p_vals;
    end if;
    foreach v_v in array v_xs loop
        v_sum := v_sum + v_v;
    end loop;
    -- (the largest magnitude is now between 1e-143 and 1e150: sums below 1e-290 are negligible, and dividing
    -- them could underflow, which PostgreSQL raises)
    v_mean := case when abs(v_sum) < 1e-290 then 0 else v_sum / n end;
    v_sum := 0;
    foreach v_v in array v_xs loop
        v_sum := v_sum + (v_v - v_mean);
    end loop;
    v_mean := v_mean + case when abs(v_sum) < 1e-290 then 0 else v_sum / n end;
    foreach v_v in array v_xs loop
        v_dmax := greatest(v_dmax, abs(v_v - v_mean));
    end loop;
    if v_dmax >= 1e-290 then
        foreach v_v in array v_xs loop
            v_dev := v_v - v_mean;
            -- a deviation below 1e-150 of the largest adds less than 1e-300 to a sum of at least 1
            if abs(v_dev) * 1e150 >= v_dmax then
                v_ss := v_ss + (v_dev / v_dmax) * (v_dev / v_dmax);
            end if;
        end loop;
        v_sd := v_dmax * sqrt(v_ss / (n - 1));
        -- the upper quantile from the exact tail (1 - confidence) / 2: (1 + confidence) / 2 could round to 1
        v_t := -regate_internal._t_quantile((1 - p_confidence) / 2, n - 1);
        if v_t > 0 and ln(v_t) + ln(v_sd) - 0.5 * ln(n) > -690 then
            v_half := v_t * v_sd / sqrt(n);
        end if;
    end if;
    v_out := array[v_mean, v_sd, v_mean - v_half, v_mean + v_half];
    if v_scale < 1 then
        -- undo the scaling: multiplying by 2^600 overflows exactly when the magnitude reaches 2^424
        for v_i in 1..4 loop
            v_out[v_i] := case
                when abs(v_out[v_i]) >= 4.332296397063773e+127 then sign(v_out[v_i]) * 'Infinity'::float8
                else v_out[v_i] * 4.149515568880993e+180
            end;
        end loop;
    elsif v_scale > 1 then
        for v_i in 1..4 loop
            v_out[v_i] := case
                when abs(v_out[v_i]) < 1e-142 then 0 else v_out[v_i] * 2.409919865102884e-181
            end;
        end loop;
    end if;
    mean := v_out[1];
    stddev := v_out[2];
    ci_low := v_out[3];
    ci_high := v_out[4];
end;
$$;
