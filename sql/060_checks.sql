-- Checks: one baseline against one observed value, with MLflow 3.17's MetricThreshold semantics (extended to
-- negative change criteria = tolerated regressions), IEEE 754 arithmetic (030_floats.sql), and a sentence a
-- person understands.
--
-- The check functions are plain SQL without SET clauses on purpose: the planner inlines them into the one
-- query that builds all checks of a verdict (regate_internal._checks), which keeps a validation of 20 baselines
-- cheap. Their callers are SECURITY DEFINER functions that pin search_path.
--
-- Error codes raised here: none (data problems are outcomes of checks, never errors).

-- regate_internal._evaluate_check(value, baseline_value, greater_is_better, threshold, min_absolute_change,
-- min_relative_change): one row: the outcome of one check ('passed', 'failed', 'missing' when value is NULL,
-- 'invalid' when it is NaN or infinite), the criteria that failed (in the order threshold,
-- min_absolute_change, min_relative_change), and the relative change d = (c - b) / |b| (higher is better) or
-- (b - c) / |b| in IEEE 754 arithmetic (NULL when b is 0 or NULL, or the value is missing or invalid).
-- NaN sorts above every number in PostgreSQL (NaN >= t is true): invalid values never reach a comparison.
-- The `offset 0` fences make each intermediate value computed once, not once per reference.
create or replace function regate_internal._evaluate_check(
    p_value double precision,
    p_baseline_value double precision,
    p_greater_is_better boolean,
    p_threshold double precision,
    p_min_absolute_change double precision,
    p_min_relative_change double precision
)
returns table (outcome text, failed_criteria text[], relative_change double precision)
language sql
immutable
parallel safe
security invoker
as $$
    select
        case
            when p_value is null then 'missing'
            when r.invalid then 'invalid'
            when cardinality(f.failed) = 0 then 'passed'
            else 'failed'
        end,
        case when p_value is null or r.invalid then '{}'::text[] else f.failed end,
        case when not r.invalid then r.d end
    from (
        select
            (p_value = 'NaN'::float8 or abs(p_value) = 'Infinity'::float8) as invalid,
            case when p_baseline_value <> 0 then regate_internal._f8_div(n.num, abs(p_baseline_value)) end as d
        from (
            select
                case
                    when p_greater_is_better then regate_internal._f8_add(p_value, -p_baseline_value)
                    else regate_internal._f8_add(p_baseline_value, -p_value)
                end as num
            offset 0
        ) as n
        offset 0
    ) as r
    cross join lateral (
        select array_remove(array[
            case when p_threshold is not null and not (
                case when p_greater_is_better then p_value >= p_threshold else p_value <= p_threshold end
            ) then 'threshold' end,
            case when p_min_absolute_change is not null and not (
                case
                    when p_greater_is_better then p_value >= regate_internal._f8_add(p_baseline_value, p_min_absolute_change)
                    else p_value <= regate_internal._f8_add(p_baseline_value, -p_min_absolute_change)
                end
            ) then 'min_absolute_change' end,
            case when p_min_relative_change is not null and not (
                case
                    -- MLflow's fallback at b = 0: strictly better by 1e-10; a tolerated regression: no worse.
                    when p_baseline_value = 0 and p_min_relative_change >= 0
                        then case when p_greater_is_better then p_value >= 1e-10 else p_value <= -1e-10 end
                    when p_baseline_value = 0
                        then case when p_greater_is_better then p_value >= 0 else p_value <= 0 end
                    else r.d >= p_min_relative_change
                end
            ) then 'min_relative_change' end
        ], null) as failed
        offset 0
    ) as f
$$;

-- regate_internal._fmt(x): a number for messages: 4 significant digits below 1000, whole numbers above, scientific
-- notation for the very small and very large.
create or replace function regate_internal._fmt(p_x double precision)
returns text
language sql
stable
parallel safe
security invoker
as $$
    select case
        when p_x is null then 'NULL'
        when p_x = 'NaN'::float8 or abs(p_x) = 'Infinity'::float8 then p_x::text
        when p_x = 0 then '0'
        when abs(p_x) < 1e-4 or abs(p_x) >= 1e15 then btrim(to_char(p_x, '9.999EEEE'))
        when abs(p_x) >= 1000 then round(p_x)::text
        else (round(p_x * 10 ^ (3 - floor(log(abs(p_x))))) / 10 ^ (3 - floor(log(abs(p_x)))))::text
    end
$$;

-- regate_internal._pct(d): the size of a relative change (or a confidence) as a percentage for messages ('20.9%'),
-- without its sign. It takes the signed value: an argument that is a plain column lets it inline into the checks
-- query (abs(x) as the argument would not, PostgreSQL inlines a function whose parameter is used more than once
-- only for a simple argument).
create or replace function regate_internal._pct(p_d double precision)
returns text
language sql
stable
parallel safe
security invoker
as $$
    select case
        when abs(p_d) = 'Infinity'::float8 then 'an unbounded %'
        -- beyond 1e13 the percentage would overflow a double: say it as a factor
        when abs(p_d) >= 1e13 then btrim(to_char(abs(p_d), '9.999EEEE')) || ' times'
        -- below 0.1% keep 2 significant digits rather than print 0%
        when p_d <> 0 and abs(p_d) < 0.001 then regate_internal._fmt(abs(p_d) * 100) || '%'
        else (round(abs(p_d) * 1000) / 10)::text || '%'
    end
$$;

-- regate_internal._comparison(value, baseline_value, greater_is_better, relative_change, absolute): 'worse than
-- baseline 0.43 by 20.9%', or by the absolute difference ('by 0.09') when `absolute` or the baseline is 0;
-- NULL without a baseline value.
create or replace function regate_internal._comparison(
    p_value double precision,
    p_baseline_value double precision,
    p_greater_is_better boolean,
    p_relative_change double precision,
    p_absolute boolean
)
returns text
language sql
stable
parallel safe
security invoker
as $$
    -- _fmt(p_baseline_value) once: each inlined _fmt is set up on every run of the checks query.
    select case when p_baseline_value is not null then
        case
            when p_value = p_baseline_value then 'equal to'
            when (p_value > p_baseline_value) = p_greater_is_better then 'better than'
            else 'worse than'
        end
        || ' baseline ' || regate_internal._fmt(p_baseline_value)
        || case
            when p_value = p_baseline_value then ''
            when p_baseline_value = 0 then ' by ' || regate_internal._fmt(abs(p_value))
            when p_absolute then ' by ' || regate_internal._fmt(abs(regate_internal._f8_add(p_value, -p_baseline_value)))
            else ' by ' || regate_internal._pct(p_relative_change)
        end
    end
$$;

-- regate_internal._passed_message(metric, value, baseline_value, greater_is_better, relative_change): the sentence
-- of a check that passed, e.g. 'accuracy 0.7834 passes (better than baseline 0.78 by 0.4%)'.
create or replace function regate_internal._passed_message(
    p_metric text,
    p_value double precision,
    p_baseline_value double precision,
    p_greater_is_better boolean,
    p_relative_change double precision
)
returns text
language sql
stable
parallel safe
security invoker
as $$
    select format(
        '%s %s passes%s', p_metric, regate_internal._fmt(p_value),
        coalesce(
            ' (' || regate_internal._comparison(p_value, p_baseline_value, p_greater_is_better, p_relative_change, false)
            || ')',
            ''
        )
    )
$$;

-- regate_internal._unpassed_message_slow(...): the sentence of a check that did not pass (missing, invalid,
-- no_baseline, failed), e.g. 'eval_loss 0.52 is worse than baseline 0.43 by 20.9%, tolerance 5%'. PL/pgSQL on
-- purpose: a query sets up every expression of its plan on every run, used or not; PL/pgSQL sets up an expression
-- only when it runs it. These sentences (most of the sentence code: three comparisons, each with several _fmt and
-- _pct) are therefore kept out of the checks query: measured, 8% of a completion's instructions with 20 passing
-- checks; a check that does not pass pays one call (the gate's rare case).
create or replace function regate_internal._unpassed_message_slow(
    p_metric text,
    p_outcome text,
    p_failed text[],
    p_value double precision,
    p_baseline_value double precision,
    p_greater_is_better boolean,
    p_threshold double precision,
    p_min_absolute_change double precision,
    p_min_relative_change double precision,
    p_relative_change double precision
)
returns text
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_parts text [] := '{}';
begin
    -- One statement per case: PL/pgSQL sets up only the expressions it runs, once per transaction.
    if p_outcome = 'missing' then
        return format('%s was not logged (no value to check)', p_metric);
    elsif p_outcome = 'invalid' then
        return format('%s is %s, not a finite number', p_metric, p_value);
    elsif p_outcome = 'no_baseline' then
        return format('%s is required but has no active baseline', p_metric);
    end if;
    if 'threshold' = any(p_failed) then
        v_parts := v_parts || format(
            'is %s the threshold %s (%s is better)',
            case when p_greater_is_better then 'below' else 'above' end, regate_internal._fmt(p_threshold),
            case when p_greater_is_better then 'higher' else 'lower' end
        );
    end if;
    if 'min_absolute_change' = any(p_failed) then
        v_parts := v_parts || format(
            case
                when p_min_absolute_change > 0 then 'is %s, but must improve on it by at least %s'
                when p_min_absolute_change = 0 then 'is %s, and must not be worse%s'
                else 'is %s, tolerance %s'
            end,
            regate_internal._comparison(p_value, p_baseline_value, p_greater_is_better, p_relative_change, true),
            case when p_min_absolute_change = 0 then '' else regate_internal._fmt(abs(p_min_absolute_change)) end
        );
    end if;
    if 'min_relative_change' = any(p_failed) then
        v_parts := v_parts || format(
            case
                when p_baseline_value = 0 and p_min_relative_change >= 0
                    then 'is %s, but must be better than a baseline of 0%s'
                when p_baseline_value = 0 then 'is %s, and must not be worse than a baseline of 0%s'
                when p_min_relative_change > 0 then 'is %s, but must improve on it by at least %s'
                when p_min_relative_change = 0 then 'is %s, and must not be worse%s'
                else 'is %s, tolerance %s'
            end,
            regate_internal._comparison(p_value, p_baseline_value, p_greater_is_better, p_relative_change, false),
            case
                when p_baseline_value = 0 or p_min_relative_change = 0 then ''
                else regate_internal._pct(p_min_relative_change)
            end
        );
    end if;
    return format('%s %s %s', p_metric, regate_internal._fmt(p_value), array_to_string(v_parts, '; '));
end;
$$;

-- regate_internal._check_message(...): the sentence explaining one check: regate_internal._passed_message inline
-- (the common case), the others by regate_internal._unpassed_message_slow.
create or replace function regate_internal._check_message(
    p_metric text,
    p_outcome text,
    p_failed text[],
    p_value double precision,
    p_baseline_value double precision,
    p_greater_is_better boolean,
    p_threshold double precision,
    p_min_absolute_change double precision,
    p_min_relative_change double precision,
    p_relative_change double precision
)
returns text
language sql
stable
parallel safe
security invoker
as $$
    select case
        when p_outcome = 'passed' then regate_internal._passed_message(
            p_metric, p_value, p_baseline_value, p_greater_is_better, p_relative_change
        )
        else regate_internal._unpassed_message_slow(
            p_metric, p_outcome, p_failed, p_value, p_baseline_value, p_greater_is_better, p_threshold,
            p_min_absolute_change, p_min_relative_change, p_relative_change
        )
    end
$$;

-- regate_internal._check_json(...): one element of validation_results.checks, from a baseline's fields, the observed
-- value and its step. Callers pin extra_float_digits = 3 (bit-exact numbers).
create or replace function regate_internal._check_json(
    p_baseline_id bigint,
    p_metric text,
    p_severity text,
    p_greater_is_better boolean,
    p_baseline_value double precision,
    p_threshold double precision,
    p_min_absolute_change double precision,
    p_min_relative_change double precision,
    p_outcome text,
    p_failed text[],
    p_value double precision,
    p_step bigint,
    p_relative_change double precision
)
returns jsonb
language sql
stable
parallel safe
security invoker
as $$
    -- The keys in jsonb's own order (shorter first, then bytewise): the object's sort finds them sorted.
    select jsonb_build_object(
        'step', p_step,
        'message', regate_internal._check_message(
            p_metric, p_outcome, p_failed, p_value, p_baseline_value, p_greater_is_better, p_threshold,
            p_min_absolute_change, p_min_relative_change, p_relative_change
        ),
        'outcome', p_outcome,
        'observed', regate_internal._float8_jsonb(p_value),
        'severity', p_severity,
        'threshold', p_threshold,
        'baseline_id', p_baseline_id,
        'metric_name', p_metric,
        'baseline_value', p_baseline_value,
        'failed_criteria', to_jsonb(p_failed),
        'greater_is_better', p_greater_is_better,
        'min_absolute_change', p_min_absolute_change,
        'min_relative_change', p_min_relative_change
    )
$$;

-- regate_internal._reference_message(message, reference, metric, on_missing): the sentence of a check whose
-- reference is a champion or a rolling median: "baseline" becomes what the reference is, and where it came from
-- is said; for an unresolved reference, why, and what it counts as.
create or replace function regate_internal._reference_message(
    p_message text, p_reference jsonb, p_metric text, p_on_missing text
)
returns text
language sql
immutable
parallel safe
security invoker
as $$
    select case
        when p_reference is null then p_message
        when not (p_reference ->> 'resolved')::boolean then format(
            '%s: no reference: %s (on_missing_reference: %s)', p_metric, p_reference ->> 'reason', p_on_missing
        )
        else
            replace(
                replace(p_message, 'a baseline of ', r.label || ' '), ' baseline ', ' ' || r.label || ' '
            ) || r.source
    end
    from (
        select
            case p_reference ->> 'kind' when 'champion' then 'the champion''s' else 'the rolling median' end as label,
            case p_reference ->> 'kind'
                when 'champion' then format(
                    ' (champion in %s: job %s)', p_reference ->> 'environment', p_reference ->> 'job_id'
                )
                else format(' (median of %s accepted runs)', p_reference ->> 'runs')
            end as source
    ) as r
$$;

-- regate_internal._regression_p(mean, stddev, n, reference, greater_is_better, threshold, min_absolute_change,
-- min_relative_change): over repeated runs, the one-sided p-value of "the runs are worse than the point where the
-- criteria are just met" (Student-t, n - 1 degrees of freedom): small when the regression is significant. A check
-- fails at confidence c exactly when this p-value is below (1 - c) / 2. NULL without a criterion to test.
create or replace function regate_internal._regression_p(
    p_mean double precision,
    p_stddev double precision,
    p_n integer,
    p_reference double precision,
    p_greater_is_better boolean,
    p_threshold double precision,
    p_min_absolute_change double precision,
    p_min_relative_change double precision
)
returns double precision
language sql
immutable
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select case
        when b.bound is null or p_mean is null or p_n < 2 then null
        when p_stddev = 0 then case when (p_mean < b.bound) = p_greater_is_better then 0 else 1 end
        else regate_internal._t_cdf(
            case when p_greater_is_better then p_mean - b.bound else b.bound - p_mean end
            / (p_stddev / sqrt(p_n)),
            p_n - 1
        )
    end
    from (
        select case
            when p_greater_is_better then greatest(
                p_threshold, p_reference + p_min_absolute_change, p_reference + p_min_relative_change * abs(p_reference)
            )
            else least(
                p_threshold, p_reference - p_min_absolute_change, p_reference - p_min_relative_change * abs(p_reference)
            )
        end as bound
    ) as b
$$;

-- regate_internal._round_sig(x, digits): x rounded to `digits` significant digits (the half-width of an
-- interval is shown with two: "0.871 ± 0.0028").
create or replace function regate_internal._round_sig(p_x double precision, p_digits integer)
returns double precision
language sql
immutable
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select case
        when p_x is null or p_x = 0 or p_x = 'NaN'::float8 or abs(p_x) = 'Infinity'::float8 then p_x
        else round(p_x::numeric, p_digits - 1 - floor(log(abs(p_x)::numeric))::integer)::double precision
    end
$$;

-- regate_internal._group_message(metric, outcome, interval, confidence, worse_message, better_message): the
-- sentence of a check over repeated runs: the mean with the half-width of its interval and n, and the decision
-- ("passes at the worse end", "significantly worse", "inconclusive") with the point check that decided it.
create or replace function regate_internal._group_message(
    p_metric text,
    p_outcome text,
    p_n integer,
    p_mean double precision,
    p_ci_low double precision,
    p_ci_high double precision,
    p_confidence double precision,
    p_worse_message text,
    p_better_message text
)
returns text
language sql
immutable
parallel safe
security invoker
as $$
    select case p_outcome
        when 'invalid' then format('%s has a value that is not a finite number among its %s runs', p_metric, p_n)
        when 'passed' then format(
            '%s passes at the worse end of its %s interval: %s', h.head, regate_internal._pct(p_confidence),
            p_worse_message
        )
        when 'failed' then format(
            '%s is significantly worse: even the better end of its %s interval fails: %s', h.head,
            regate_internal._pct(p_confidence), p_better_message
        )
        else format(
            '%s is inconclusive: the worse end of its %s interval fails (%s), the better end passes', h.head,
            regate_internal._pct(p_confidence), p_worse_message
        )
    end
    from (
        select format(
            '%s %s ± %s (n=%s)', p_metric, regate_internal._fmt(p_mean),
            regate_internal._fmt(regate_internal._round_sig((p_ci_high - p_ci_low) / 2, 2)), p_n
        ) as head
    ) as h
$$;

-- regate_internal._group_check(baseline, metric, runs, reference): the check of one metric over repeated runs
-- (two or more values): n, mean, stddev, the interval of the mean at the baseline's confidence, the one-sided
-- p-value of the regression, and the decision: invalid (a run is not finite), passed (the criteria hold at the
-- interval's worse end), failed (they fail even at its better end) or inconclusive, with its failed criteria and
-- its sentence. PL/pgSQL, so that the checks query plans none of this for the single runs it mostly sees.
create or replace function regate_internal._group_check(
    p_baseline regate.model_baselines, p_metric text, p_runs double precision[], p_reference double precision
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    g record;
    v_worse double precision;
    v_better double precision;
    w record;
    b record;
    v_outcome text;
begin
    g := regate_internal._mean_interval(p_runs, p_baseline.confidence);
    if g.mean is null then
        return jsonb_build_object(
            'n', g.n, 'outcome', 'invalid', 'failed_criteria', '[]'::jsonb,
            'message', regate_internal._group_message(p_metric, 'invalid', g.n, null, null, null, null, null, null)
        );
    end if;
    v_worse := case when p_baseline.greater_is_better then g.ci_low else g.ci_high end;
    v_better := case when p_baseline.greater_is_better then g.ci_high else g.ci_low end;
    select x.* into w from regate_internal._evaluate_check(
        v_worse, p_reference, p_baseline.greater_is_better, p_baseline.threshold, p_baseline.min_absolute_change,
        p_baseline.min_relative_change
    ) as x;
    select x.* into b from regate_internal._evaluate_check(
        v_better, p_reference, p_baseline.greater_is_better, p_baseline.threshold, p_baseline.min_absolute_change,
        p_baseline.min_relative_change
    ) as x;
    v_outcome := case when w.outcome = 'passed' then 'passed' when b.outcome = 'failed' then 'failed' else 'inconclusive' end;
    return jsonb_build_object(
        'observed', regate_internal._float8_jsonb(g.mean),
        'n', g.n,
        'mean', regate_internal._float8_jsonb(g.mean),
        'stddev', regate_internal._float8_jsonb(g.stddev),
        'ci_low', regate_internal._float8_jsonb(g.ci_low),
        'ci_high', regate_internal._float8_jsonb(g.ci_high),
        'confidence', p_baseline.confidence,
        'p_value', regate_internal._regression_p(
            g.mean, g.stddev, g.n, p_reference, p_baseline.greater_is_better, p_baseline.threshold,
            p_baseline.min_absolute_change, p_baseline.min_relative_change
        ),
        'outcome', v_outcome,
        'failed_criteria', to_jsonb(case v_outcome when 'failed' then b.failed_criteria
            when 'inconclusive' then w.failed_criteria else '{}'::text[] end),
        'message', regate_internal._group_message(
            p_metric, v_outcome, g.n, g.mean, g.ci_low, g.ci_high, p_baseline.confidence,
            regate_internal._check_message(
                p_metric, w.outcome, w.failed_criteria, v_worse, p_reference, p_baseline.greater_is_better,
                p_baseline.threshold, p_baseline.min_absolute_change, p_baseline.min_relative_change, w.relative_change
            ),
            regate_internal._check_message(
                p_metric, b.outcome, b.failed_criteria, v_better, p_reference, p_baseline.greater_is_better,
                p_baseline.threshold, p_baseline.min_absolute_change, p_baseline.min_relative_change, b.relative_change
            )
        )
    );
end;
$$;

-- regate_internal._check_record(check, baseline, metric, outcome, reference, support, runs): the record of a check
-- that is more than a fixed baseline's single run: the outcome, the statistics of repeated runs, the reference,
-- the family and support, the Benjamini-Hochberg mark, and the sentence. PL/pgSQL, so that the checks query does
-- not carry (and set up on every run) an expression it rarely needs.
create or replace function regate_internal._check_record(
    p_check jsonb,
    p_baseline regate.model_baselines,
    p_metric text,
    p_outcome text,
    p_reference jsonb,
    p_support jsonb,
    p_runs jsonb
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    return p_check || coalesce(p_runs - 'message', '{}'::jsonb) || jsonb_build_object('outcome', p_outcome)
        || case when p_baseline.reference = 'fixed' then '{}'::jsonb
            else jsonb_build_object('reference', p_reference - 'resolved') end
        || case when p_baseline.metric_name = p_metric then '{}'::jsonb
            else jsonb_build_object('family', p_baseline.metric_name) end
        || case when p_support is null then '{}'::jsonb else jsonb_build_object('support', p_support) end
        || case when p_baseline.benjamini_hochberg then jsonb_build_object('fdr', 'benjamini_hochberg')
            else '{}'::jsonb end
        || jsonb_build_object('message', regate_internal._reference_message(
            case
                when p_outcome = 'insufficient_support' then format(
                    '%s: skipped, its support %s is %s, below min_support %s', p_metric, p_support ->> 'metric',
                    coalesce(p_support ->> 'value', 'not logged'), regate_internal._fmt(p_baseline.min_support)
                )
                when p_runs is null or p_outcome = 'no_reference' then p_check ->> 'message'
                else p_runs ->> 'message'
            end,
            case when p_baseline.reference = 'fixed' then null else p_reference end, p_metric,
            p_baseline.on_missing_reference
        ));
end;
$$;

-- regate_internal._complex_check(baseline, metric, metrics, steps, job_id): the check of one metric (the
-- baseline's, or a member of its family) by a baseline that is more than a fixed one on a single run: a champion or
-- rolling reference (regate_internal._reference; unresolved: no_reference), a family member's support
-- (insufficient_support), repeated runs (regate_internal._group_check). Returns {check_json, outcome, effect}.
-- PL/pgSQL, so that the checks query stays small for the fixed baselines it mostly sees.
create or replace function regate_internal._complex_check(
    p_baseline regate.model_baselines, p_metric text, p_metrics jsonb, p_steps jsonb, p_job_id uuid
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
set extra_float_digits = 3
as $$
declare
    v_raw jsonb := p_metrics -> p_metric;
    v_value double precision;
    v_runs double precision [];
    v_step bigint := (p_steps ->> p_metric)::bigint;
    v_ref jsonb;
    v_reference double precision := p_baseline.baseline_value;
    v_support jsonb;
    v_group jsonb;
    e record;
    v_outcome text;
    v_check jsonb;
begin
    if jsonb_typeof(v_raw) = 'array' then
        v_value := regate_internal._jsonb_float8(v_raw -> 0);
        if jsonb_array_length(v_raw) > 1 then
            v_runs := array(
                select regate_internal._jsonb_float8(a.value)
                from jsonb_array_elements(v_raw) with ordinality as a (value, i)
                order by a.i
            );
        end if;
    else
        v_value := regate_internal._jsonb_float8(v_raw);
    end if;
    if p_baseline.reference <> 'fixed' then
        v_ref := regate_internal._reference(p_baseline, p_job_id, p_metric);
        v_reference := regate_internal._jsonb_float8(v_ref -> 'value');
    end if;
    if p_baseline.support_metric is not null then
        v_support := regate_internal._support(p_baseline, p_metric, p_metrics);
    end if;
    select x.outcome, x.failed_criteria, x.relative_change into e
    from regate_internal._evaluate_check(
        v_value, v_reference, p_baseline.greater_is_better, p_baseline.threshold, p_baseline.min_absolute_change,
        p_baseline.min_relative_change
    ) as x;
    if v_runs is not null then
        v_group := regate_internal._group_check(p_baseline, p_metric, v_runs, v_reference);
    end if;
    v_outcome := case
        when
            v_value is not null and v_support is not null
            and not coalesce((v_support ->> 'value')::double precision >= p_baseline.min_support, false)
            then 'insufficient_support'
        when v_value is not null and v_ref is not null and not (v_ref ->> 'resolved')::boolean then 'no_reference'
        when v_group is not null then v_group ->> 'outcome'
        else e.outcome
    end;
    v_check := regate_internal._check_json(
        p_baseline.id, p_metric, p_baseline.severity, p_baseline.greater_is_better, v_reference, p_baseline.threshold,
        p_baseline.min_absolute_change, p_baseline.min_relative_change, e.outcome, e.failed_criteria, v_value, v_step,
        e.relative_change
    );
    return jsonb_build_object(
        'check_json', regate_internal._check_record(
            v_check, p_baseline, p_metric, v_outcome, v_ref, v_support, v_group
        ),
        'outcome', v_outcome,
        'effect', case v_outcome
            when 'passed' then 'pass'
            when 'insufficient_support' then 'pass'
            when 'no_reference' then p_baseline.on_missing_reference
            when 'inconclusive' then 'inconclusive'
            else 'fail'
        end
    );
end;
$$;

-- regate_internal._checks(model, version, metrics_to_validate, metrics, steps, job_id): the checks of every
-- applicable baseline against final metrics (name -> value) and their steps (name -> step), in (metric,
-- severity) order: one query, one snapshot. A fixed baseline of one metric on a single run takes the lean path,
-- its check functions inlined into the query; any other (a champion or rolling reference, a family member, a
-- support count, repeated runs, Benjamini-Hochberg) is checked by regate_internal._complex_check. A family baseline
-- (metric_name ending in /*) checks each member (regate_internal._family_members). `effect` is what the check
-- counts as: pass, warn, fail or inconclusive.
create or replace function regate_internal._checks(
    p_model_name text, p_model_version text, p_only text[], p_metrics jsonb, p_steps jsonb, p_job_id uuid
)
returns table (check_json jsonb, metric_name text, severity text, outcome text, effect text)
language sql
stable
security invoker
as $$
    select
        case when k.lean then c.check_json else (x.cx -> 'check_json') end,
        mm.name,
        b.severity,
        case when k.lean then e.outcome else x.cx ->> 'outcome' end,
        case when not k.lean then x.cx ->> 'effect' when e.outcome = 'passed' then 'pass' else 'fail' end
    from regate_internal._applicable_baselines(p_model_name, p_model_version, p_only) as b
    -- the metrics the baseline covers: its own, or each member of its family
    cross join lateral unnest(
        case
            when right(b.metric_name, 2) = '/*'
                then array(select f.name from regate_internal._family_members(b, p_metrics, p_job_id) as f (name))
            else array[b.metric_name]
        end
    ) as mm (name)
    cross join lateral (
        select
            b.reference = 'fixed' and right(b.metric_name, 2) <> '/*' and b.support_metric is null
            and not b.benjamini_hochberg and coalesce(jsonb_typeof(p_metrics -> mm.name), '') <> 'array' as lean
    ) as k
    -- offset 0 fences: each value is computed once per baseline instead of once per reference.
    cross join lateral (
        select
            regate_internal._jsonb_float8(p_metrics -> mm.name) as value,
            (p_steps ->> mm.name)::bigint as step
        offset 0
    ) as v
    cross join lateral (
        select x.outcome, x.failed_criteria, x.relative_change
        from regate_internal._evaluate_check(
            v.value, b.baseline_value, b.greater_is_better, b.threshold, b.min_absolute_change,
            b.min_relative_change
        ) as x
        offset 0
    ) as e
    cross join lateral (
        select case when not k.lean then regate_internal._complex_check(b, mm.name, p_metrics, p_steps, p_job_id) end
            as cx
        offset 0
    ) as x
    cross join lateral (
        select regate_internal._check_json(
            b.id, mm.name, b.severity, b.greater_is_better, b.baseline_value, b.threshold,
            b.min_absolute_change, b.min_relative_change, e.outcome, e.failed_criteria, v.value, v.step,
            e.relative_change
        ) as check_json
        offset 0
    ) as c
    order by mm.name, b.severity
$$;

-- regate_internal._unbaselined_check(metric, outcome, value, step): a critical check that no baseline stands behind:
-- a required metric without baseline ('no_baseline') or a required metric that was not logged ('missing').
create or replace function regate_internal._unbaselined_check(
    p_metric text, p_outcome text, p_value double precision, p_step bigint
)
returns jsonb
language sql
stable
parallel safe
security invoker
as $$
    select regate_internal._check_json(
        null, p_metric, 'critical', null, null, null, null, null, p_outcome, '{}', p_value, p_step, null
    )
$$;
