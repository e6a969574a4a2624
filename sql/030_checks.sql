-- Checks: one baseline against one observed value, with MLflow 3.17's MetricThreshold semantics (extended to
-- negative change criteria = tolerated regressions), IEEE 754 arithmetic, and a sentence a person understands.
-- Also the baselines' own rules and the functions that create them.
--
-- The check functions are plain SQL without SET clauses on purpose: the planner inlines them into the one
-- query that builds all checks of a verdict (regate._checks), which keeps a validation of 20 baselines cheap.
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG004  a baseline breaks a rule
--   RG007  greater_is_better cannot be inferred from the metric name
--   RG008  no such job

-- regate._f8_add(a, b): a + b as IEEE 754 computes it: an overflow gives +/-Infinity where PostgreSQL's
-- float8 + raises. Below 2^1022 the sum cannot overflow; above it, halving both is exact and overflow of the
-- half-sum (|h| >= 2^1023) is overflow of the sum.
create or replace function regate._f8_add(p_a double precision, p_b double precision)
returns double precision
language sql
immutable
parallel safe
security invoker
as $$
    select case
        when abs(p_a) < 4.49423283715579e+307 and abs(p_b) < 4.49423283715579e+307 then p_a + p_b
        when p_a = 'NaN'::float8 or p_b = 'NaN'::float8 or abs(p_a) = 'Infinity'::float8
            or abs(p_b) = 'Infinity'::float8 then p_a + p_b
        when
            abs(
                case when abs(p_a) < 1 then 0 else p_a * 0.5 end + case when abs(p_b) < 1 then 0 else p_b * 0.5 end
            ) >= 8.98846567431158e+307
            then sign(p_a) * 'Infinity'::float8
        else (case when abs(p_a) < 1 then 0 else p_a * 0.5 end + case when abs(p_b) < 1 then 0 else p_b * 0.5 end) * 2
    end
$$;

-- regate._f8_div_slow(n, d): n / d for magnitudes where PostgreSQL's float8 / may raise: +/-Infinity on
-- overflow, 0 on underflow, as IEEE 754 gives them. Only regate._f8_div calls it, for extreme inputs.
create or replace function regate._f8_div_slow(p_n double precision, p_d double precision)
returns double precision
language plpgsql
immutable
parallel safe
security invoker
as $$
begin
    return p_n / p_d;
exception when numeric_value_out_of_range then
    return case when abs(p_n) > abs(p_d) then sign(p_n) * sign(p_d) * 'Infinity'::float8 else 0::float8 end;
end;
$$;

-- regate._f8_div(n, d): n / d as IEEE 754 computes it (d finite and non-zero). Ordinary magnitudes are divided
-- directly; only extreme ones take the subtransaction of _f8_div_slow.
create or replace function regate._f8_div(p_n double precision, p_d double precision)
returns double precision
language sql
immutable
parallel safe
security invoker
as $$
    select case
        when p_n = 0 or abs(p_n) = 'Infinity'::float8 or p_n = 'NaN'::float8
            or (abs(p_n) between 1e-30 and 1e290 and abs(p_d) between 1e-10 and 1e290) then p_n / p_d
        else regate._f8_div_slow(p_n, p_d)
    end
$$;


-- regate._evaluate_check(value, baseline_value, greater_is_better, threshold, min_absolute_change,
-- min_relative_change): one row: the outcome of one check ('passed', 'failed', 'missing' when value is NULL,
-- 'invalid' when it is NaN or infinite), the criteria that failed (in the order threshold,
-- min_absolute_change, min_relative_change), and the relative change d = (c - b) / |b| (higher is better) or
-- (b - c) / |b| in IEEE 754 arithmetic (NULL when b is 0 or NULL, or the value is missing or invalid).
-- NaN sorts above every number in PostgreSQL (NaN >= t is true): invalid values never reach a comparison.
-- The `offset 0` fences make each intermediate value computed once, not once per reference.
create or replace function regate._evaluate_check(
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
            case when p_baseline_value <> 0 then regate._f8_div(n.num, abs(p_baseline_value)) end as d
        from (
            select
                case
                    when p_greater_is_better then regate._f8_add(p_value, -p_baseline_value)
                    else regate._f8_add(p_baseline_value, -p_value)
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
                    when p_greater_is_better then p_value >= regate._f8_add(p_baseline_value, p_min_absolute_change)
                    else p_value <= regate._f8_add(p_baseline_value, -p_min_absolute_change)
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

-- regate._fmt(x): a number for messages: 4 significant digits below 1000, whole numbers above, scientific
-- notation for the very small and very large.
create or replace function regate._fmt(p_x double precision)
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

-- regate._pct(d): a relative change as a percentage for messages ('20.9%').
create or replace function regate._pct(p_d double precision)
returns text
language sql
stable
parallel safe
security invoker
as $$
    select case
        when abs(p_d) = 'Infinity'::float8 then 'an unbounded %'
        -- beyond 1e13 the percentage would overflow a double: say it as a factor
        when abs(p_d) >= 1e13 then btrim(to_char(p_d, '9.999EEEE')) || ' times'
        -- below 0.1% keep 2 significant digits rather than print 0%
        when p_d <> 0 and abs(p_d) < 0.001 then regate._fmt(p_d * 100) || '%'
        else (round(p_d * 1000) / 10)::text || '%'
    end
$$;

-- regate._comparison(value, baseline_value, greater_is_better, relative_change, absolute): 'worse than
-- baseline 0.43 by 20.9%', or by the absolute difference ('by 0.09') when `absolute` or the baseline is 0;
-- NULL without a baseline value.
create or replace function regate._comparison(
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
    select case
        when p_baseline_value is null then null
        when p_value = p_baseline_value then 'equal to baseline ' || regate._fmt(p_baseline_value)
        else
            case when (p_value > p_baseline_value) = p_greater_is_better then 'better' else 'worse' end
            || ' than baseline ' || regate._fmt(p_baseline_value) || ' by '
            || case
                when p_baseline_value = 0 then regate._fmt(abs(p_value))
                when p_absolute then regate._fmt(abs(regate._f8_add(p_value, -p_baseline_value)))
                else regate._pct(abs(p_relative_change))
            end
    end
$$;

-- regate._check_message(...): the sentence explaining one check, e.g.
-- 'eval_loss 0.52 is worse than baseline 0.43 by 20.9%, tolerance 5%'.
create or replace function regate._check_message(
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
    select case p_outcome
        when 'missing' then format('%s was not logged (no value to check)', p_metric)
        when 'invalid' then format('%s is %s, not a finite number', p_metric, p_value)
        when 'no_baseline' then format('%s is required but has no active baseline', p_metric)
        when 'passed' then format(
            '%s %s passes%s', p_metric, regate._fmt(p_value),
            coalesce(
                ' (' || regate._comparison(p_value, p_baseline_value, p_greater_is_better, p_relative_change, false)
                || ')',
                ''
            )
        )
        else format('%s %s %s', p_metric, regate._fmt(p_value), array_to_string(array[
            case when 'threshold' = any(p_failed) then format(
                'is %s the threshold %s (%s is better)',
                case when p_greater_is_better then 'below' else 'above' end, regate._fmt(p_threshold),
                case when p_greater_is_better then 'higher' else 'lower' end
            ) end,
            case when 'min_absolute_change' = any(p_failed) then format(
                case
                    when p_min_absolute_change > 0 then 'is %s, but must improve on it by at least %s'
                    when p_min_absolute_change = 0 then 'is %s, and must not be worse%s'
                    else 'is %s, tolerance %s'
                end,
                regate._comparison(p_value, p_baseline_value, p_greater_is_better, p_relative_change, true),
                case when p_min_absolute_change = 0 then '' else regate._fmt(abs(p_min_absolute_change)) end
            ) end,
            case when 'min_relative_change' = any(p_failed) then format(
                case
                    when p_baseline_value = 0 and p_min_relative_change >= 0
                        then 'is %s, but must be better than a baseline of 0%s'
                    when p_baseline_value = 0 then 'is %s, and must not be worse than a baseline of 0%s'
                    when p_min_relative_change > 0 then 'is %s, but must improve on it by at least %s'
                    when p_min_relative_change = 0 then 'is %s, and must not be worse%s'
                    else 'is %s, tolerance %s'
                end,
                regate._comparison(p_value, p_baseline_value, p_greater_is_better, p_relative_change, false),
                case
                    when p_baseline_value = 0 or p_min_relative_change = 0 then ''
                    else regate._pct(abs(p_min_relative_change))
                end
            ) end
        ], '; '))
    end
$$;

-- regate._check_json(...): one element of validation_results.checks, from a baseline's fields, the observed
-- value and its step. Callers pin extra_float_digits = 3 (bit-exact numbers).
create or replace function regate._check_json(
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
    select jsonb_build_object(
        'baseline_id', p_baseline_id,
        'metric_name', p_metric,
        'severity', p_severity,
        'greater_is_better', p_greater_is_better,
        'baseline_value', p_baseline_value,
        'threshold', p_threshold,
        'min_absolute_change', p_min_absolute_change,
        'min_relative_change', p_min_relative_change,
        'outcome', p_outcome,
        'failed_criteria', to_jsonb(p_failed),
        'observed', regate._float8_jsonb(p_value),
        'step', p_step,
        'message', regate._check_message(
            p_metric, p_outcome, p_failed, p_value, p_baseline_value, p_greater_is_better, p_threshold,
            p_min_absolute_change, p_min_relative_change, p_relative_change
        )
    )
$$;

-- regate._applicable_baselines(model, version, metrics): the active baselines of the model whose version is
-- the given one or NULL (all versions); for the same (metric, severity) the version-specific one wins. Limited
-- to `metrics` when it is not NULL. Plain SQL, so that it inlines into regate._checks; callers are SECURITY
-- DEFINER functions that pin search_path.
create or replace function regate._applicable_baselines(p_model_name text, p_model_version text, p_metrics text[])
returns setof regate.model_baselines
language sql
stable
security invoker
as $$
    select distinct on (b.metric_name, b.severity) b.*
    from regate.model_baselines as b
    where
        b.is_active
        and b.model_name = p_model_name
        and (b.model_version = p_model_version or b.model_version is null)
        and (p_metrics is null or b.metric_name = any(p_metrics))
    order by b.metric_name, b.severity, b.model_version nulls last
$$;

-- regate._checks(model, version, metrics_to_validate, metrics, steps): the checks of every applicable baseline
-- against final metrics (name -> value) and their steps (name -> step), in (metric, severity) order: one
-- query, one snapshot, the check functions inlined into it.
create or replace function regate._checks(
    p_model_name text, p_model_version text, p_only text[], p_metrics jsonb, p_steps jsonb
)
returns table (check_json jsonb, metric_name text, severity text, outcome text)
language sql
stable
security invoker
as $$
    select
        regate._check_json(
            b.id, b.metric_name, b.severity, b.greater_is_better, b.baseline_value, b.threshold,
            b.min_absolute_change, b.min_relative_change, e.outcome, e.failed_criteria, v.value, v.step,
            e.relative_change
        ),
        b.metric_name,
        b.severity,
        e.outcome
    from regate._applicable_baselines(p_model_name, p_model_version, p_only) as b
    -- offset 0 fences: each value is computed once per baseline instead of once per reference.
    cross join lateral (
        select
            regate._jsonb_float8(p_metrics -> b.metric_name) as value,
            (p_steps ->> b.metric_name)::bigint as step
        offset 0
    ) as v
    cross join lateral (
        select x.outcome, x.failed_criteria, x.relative_change
        from regate._evaluate_check(
            v.value, b.baseline_value, b.greater_is_better, b.threshold, b.min_absolute_change,
            b.min_relative_change
        ) as x
        offset 0
    ) as e
    order by b.metric_name, b.severity
$$;

-- regate._unbaselined_check(metric, outcome, value, step): a critical check that no baseline stands behind:
-- a required metric without baseline ('no_baseline') or a required metric that was not logged ('missing').
create or replace function regate._unbaselined_check(
    p_metric text, p_outcome text, p_value double precision, p_step bigint
)
returns jsonb
language sql
stable
parallel safe
security invoker
as $$
    select regate._check_json(
        null, p_metric, 'critical', null, null, null, null, null, p_outcome, '{}', p_value, p_step, null
    )
$$;

-- Trigger function: a baseline must be usable (RG004, naming the field and the rule).
create or replace function regate._baselines_check()
returns trigger
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_problem text;
    v_field text;
    v_value double precision;
begin
    if btrim(coalesce(new.model_name, '')) = '' then
        v_problem := 'model_name must be a non-empty name';
    elsif btrim(coalesce(new.metric_name, '')) = '' then
        v_problem := 'metric_name must be a non-empty name';
    elsif new.model_version is not null and btrim(new.model_version) = '' then
        v_problem := 'model_version must be NULL (all versions) or a non-empty version';
    elsif new.greater_is_better is null then
        v_problem := 'greater_is_better must be true (higher is better) or false (lower is better), not NULL';
    elsif new.severity is null or new.severity not in ('critical', 'warning') then
        v_problem := format('severity must be ''critical'' or ''warning'', got %L', new.severity);
    elsif num_nulls(new.threshold, new.min_absolute_change, new.min_relative_change) = 3 then
        v_problem := 'at least one of threshold, min_absolute_change, min_relative_change must be set';
    elsif new.baseline_value is null and num_nonnulls(new.min_absolute_change, new.min_relative_change) > 0 then
        v_problem := 'baseline_value is required when min_absolute_change or min_relative_change is set';
    end if;
    if v_problem is null then
        foreach v_field in array array['baseline_value', 'threshold', 'min_absolute_change', 'min_relative_change']
        loop
            v_value := case v_field
                when 'baseline_value' then new.baseline_value
                when 'threshold' then new.threshold
                when 'min_absolute_change' then new.min_absolute_change
                else new.min_relative_change
            end;
            if v_value = 'NaN'::float8 or abs(v_value) = 'Infinity'::float8 then
                v_problem := format('%s must be a finite number, got %s', v_field, v_value);
                exit;
            end if;
        end loop;
    end if;
    if v_problem is not null then
        raise exception using
            errcode = 'RG004',
            message = format('invalid baseline for %s/%s: %s', new.model_name, new.metric_name, v_problem);
    end if;
    return new;
end;
$$;

drop trigger if exists _100_check on regate.model_baselines;
create trigger _100_check
before insert or update on regate.model_baselines
for each row execute function regate._baselines_check();

-- regate._lower_is_better_name(metric): whether the name unambiguously means lower is better: the whole name or
-- its last word is loss, perplexity, wer or cer ('loss', 'eval_loss', 'val/wer', 'evalLoss'), so that
-- 'answer' or 'balancer' do not count.
create or replace function regate._lower_is_better_name(p_metric text)
returns boolean
language sql
immutable
parallel safe
security invoker
as $$
    select p_metric ~* '(^|[^a-z0-9])(loss|perplexity|wer|cer)$'
        or p_metric ~ '[a-z0-9](Loss|Perplexity|Wer|WER|Cer|CER)$'
$$;

-- regate._infer_greater_is_better(metric): false for names that unambiguously mean lower is better
-- (_lower_is_better_name); raises RG007 for every other name.
create or replace function regate._infer_greater_is_better(p_metric text)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if regate._lower_is_better_name(p_metric) then
        return false;
    end if;
    raise exception using
        errcode = 'RG007',
        message = format(
            'cannot infer greater_is_better for metric %s: pass greater_is_better => true (higher is better) '
            'or false (lower is better)', p_metric
        ),
        hint = 'Pass greater_is_better => true or false; only names whose last word is loss, perplexity, wer or '
        || 'cer are inferred (lower is better).';
end;
$$;

-- regate._create_baseline(...): insert a baseline and deactivate the previous active one with the same
-- (model, version, metric, severity) in the same transaction. Shared by create_baseline and
-- create_baselines_from_job.
create or replace function regate._create_baseline(
    p_model_name text,
    p_metric_name text,
    p_baseline_value double precision,
    p_greater_is_better boolean,
    p_threshold double precision,
    p_min_absolute_change double precision,
    p_min_relative_change double precision,
    p_severity text,
    p_model_version text,
    p_description text,
    p_source_job_id uuid
)
returns regate.model_baselines
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row regate.model_baselines;
begin
    -- Two concurrent calls for one key would both deactivate nothing and then collide on the unique index.
    perform pg_advisory_xact_lock(
        hashtext(concat_ws(chr(31), 'regate.baseline', p_model_name, p_model_version, p_metric_name, p_severity))
    );
    update regate.model_baselines as b
    set is_active = false
    where
        b.is_active
        and b.model_name = p_model_name
        and b.model_version is not distinct from p_model_version
        and b.metric_name = p_metric_name
        and b.severity = p_severity;
    insert into regate.model_baselines (
        model_name, model_version, metric_name, baseline_value, greater_is_better, threshold,
        min_absolute_change, min_relative_change, severity, description, source_job_id
    )
    values (
        p_model_name, p_model_version, p_metric_name, p_baseline_value,
        coalesce(p_greater_is_better, regate._infer_greater_is_better(p_metric_name)), p_threshold,
        p_min_absolute_change, p_min_relative_change, p_severity, p_description, p_source_job_id
    )
    returning * into v_row;
    return v_row;
end;
$$;

-- regate.create_baseline(model_name, metric_name, ...) returns regate.model_baselines: the new active
-- baseline; the previous active one with the same key is deactivated (history is kept). greater_is_better
-- may be omitted for names ending in loss, perplexity, wer or cer (lower is better); otherwise RG007.
-- Raises RG004 when the baseline breaks a rule.
create or replace function regate.create_baseline(
    model_name text,
    metric_name text,
    baseline_value double precision default null,
    greater_is_better boolean default null,
    threshold double precision default null,
    min_absolute_change double precision default null,
    min_relative_change double precision default null,
    severity text default 'critical',
    model_version text default null,
    description text default null
)
returns regate.model_baselines
language sql
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select regate._create_baseline(
        create_baseline.model_name, create_baseline.metric_name, create_baseline.baseline_value,
        create_baseline.greater_is_better, create_baseline.threshold, create_baseline.min_absolute_change,
        create_baseline.min_relative_change, create_baseline.severity, create_baseline.model_version,
        create_baseline.description, null
    )
$$;

-- regate.create_baselines_from_job(job_id, metric_names, min_relative_change, severity, directions) returns
-- setof regate.model_baselines: promote the job's finite final metrics to baselines of its model (all
-- versions). With min_relative_change the criterion is relative to the promoted value, else the value becomes
-- a threshold (no worse than this job). Directions come from `directions` ({"accuracy": true}) or the name;
-- listed metric_names must exist, be finite and have a known direction (RG004, RG007); without a list, metrics
-- that are not finite or whose direction is unknown are skipped with a NOTICE. Raises RG008 for an unknown job.
create or replace function regate.create_baselines_from_job(
    job_id uuid,
    metric_names text[] default null,
    min_relative_change double precision default null,
    severity text default 'critical',
    directions jsonb default '{}'::jsonb
)
returns setof regate.model_baselines
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_job regate.local_training_jobs;
    v_final record;
    v_metric record;
    v_gib boolean;
    v_name text;
begin
    select j.* into v_job from regate.local_training_jobs as j where j.id = create_baselines_from_job.job_id;
    if not found then
        raise exception using errcode = 'RG008', message = format('no training job with id %s', $1);
    end if;
    if directions is null or jsonb_typeof(directions) <> 'object' then
        raise exception using
            errcode = 'RG004', message = 'directions must be a JSON object of metric name -> true/false';
    end if;
    for v_name in select d.key from jsonb_each(directions) as d where jsonb_typeof(d.value) <> 'boolean' loop
        raise exception using
            errcode = 'RG004',
            message = format('directions.%s must be true (higher is better) or false (lower is better)', v_name);
    end loop;
    v_final := regate._final_metrics(v_job.id);
    foreach v_name in array coalesce(metric_names, '{}') loop
        if v_final.metrics is null or not v_final.metrics ? v_name then
            raise exception using
                errcode = 'RG004', message = format('job %s has no metric %s to promote', v_job.id, v_name);
        elsif jsonb_typeof(v_final.metrics -> v_name) <> 'number' then
            raise exception using
                errcode = 'RG004',
                message = format('metric %s of job %s is %s, not finite: it cannot become a baseline',
                    v_name, v_job.id, v_final.metrics ->> v_name);
        end if;
    end loop;
    for v_metric in
        select m.key as name, regate._jsonb_float8(m.value) as value
        from jsonb_each(coalesce(v_final.metrics, '{}'::jsonb)) as m
        where metric_names is null or m.key = any(metric_names)
        order by m.key
    loop
        if v_metric.value = 'NaN'::float8 or abs(v_metric.value) = 'Infinity'::float8 then
            raise notice 'skipped %: % is not finite', v_metric.name, v_metric.value;
            continue;
        end if;
        if directions ? v_metric.name then
            v_gib := (directions ->> v_metric.name)::boolean;
        elsif metric_names is null and not regate._lower_is_better_name(v_metric.name) then
            raise notice 'skipped %: direction unknown (give it in directions)', v_metric.name;
            continue;
        else
            v_gib := regate._infer_greater_is_better(v_metric.name);
        end if;
        return next regate._create_baseline(
            v_job.model_name, v_metric.name, v_metric.value, v_gib,
            case when min_relative_change is null then v_metric.value end,
            null, min_relative_change, severity, null,
            format('promoted from job %s', v_job.id), v_job.id
        );
    end loop;
end;
$$;
