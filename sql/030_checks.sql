-- Checks: one baseline against one observed value, with MLflow 3.17's MetricThreshold semantics (extended to
-- negative change criteria = tolerated regressions), IEEE 754 arithmetic, and a sentence a person understands.
-- Also the baselines' own rules and the functions that create them.
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
strict
parallel safe
security invoker
as $$
    select case
        when abs(p_a) < 4.49423283715579e+307 and abs(p_b) < 4.49423283715579e+307 then p_a + p_b
        when p_a = 'NaN'::float8 or p_b = 'NaN'::float8 or abs(p_a) = 'Infinity'::float8
            or abs(p_b) = 'Infinity'::float8 then p_a + p_b
        else (
            select case when abs(h.v) >= 8.98846567431158e+307 then sign(h.v) * 'Infinity'::float8 else h.v * 2 end
            from (
                select
                    case when abs(p_a) < 1 then 0 else p_a * 0.5 end
                    + case when abs(p_b) < 1 then 0 else p_b * 0.5 end as v
            ) as h
        )
    end
$$;

-- regate._f8_div(n, d): n / d as IEEE 754 computes it (d finite and non-zero): +/-Infinity on overflow, 0 on
-- underflow, where PostgreSQL's float8 / raises. Ordinary magnitudes never enter the subtransaction.
create or replace function regate._f8_div(p_n double precision, p_d double precision)
returns double precision
language plpgsql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if p_n = 0 or abs(p_n) = 'Infinity'::float8 or p_n = 'NaN'::float8
        or (abs(p_n) between 1e-30 and 1e290 and abs(p_d) between 1e-10 and 1e290) then
        return p_n / p_d;
    end if;
    begin
        return p_n / p_d;
    exception when numeric_value_out_of_range then
        return case
            when abs(p_n) > abs(p_d) then sign(p_n) * sign(p_d) * 'Infinity'::float8
            else 0::float8
        end;
    end;
end;
$$;

-- regate._evaluate_check(value, baseline_value, greater_is_better, threshold, min_absolute_change,
-- min_relative_change): the outcome of one check ('passed', 'failed', 'missing' when value is NULL,
-- 'invalid' when it is NaN or infinite), the criteria that failed, and the relative change d when computed.
create or replace function regate._evaluate_check(
    p_value double precision,
    p_baseline_value double precision,
    p_greater_is_better boolean,
    p_threshold double precision,
    p_min_absolute_change double precision,
    p_min_relative_change double precision,
    out outcome text,
    out failed_criteria text[],
    out relative_change double precision
)
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_bound double precision;
    v_pass boolean;
begin
    failed_criteria := '{}';
    if p_value is null then
        outcome := 'missing';
        return;
    end if;
    -- NaN sorts above every number in PostgreSQL (NaN >= t is true): guard before any comparison.
    if p_value = 'NaN'::float8 or abs(p_value) = 'Infinity'::float8 then
        outcome := 'invalid';
        return;
    end if;
    if p_threshold is not null then
        if p_greater_is_better then v_pass := p_value >= p_threshold; else v_pass := p_value <= p_threshold; end if;
        if not v_pass then
            failed_criteria := failed_criteria || 'threshold'::text;
        end if;
    end if;
    if p_min_absolute_change is not null then
        if p_greater_is_better then
            v_bound := regate._f8_add(p_baseline_value, p_min_absolute_change);
            v_pass := p_value >= v_bound;
        else
            v_bound := regate._f8_add(p_baseline_value, -p_min_absolute_change);
            v_pass := p_value <= v_bound;
        end if;
        if not v_pass then
            failed_criteria := failed_criteria || 'min_absolute_change'::text;
        end if;
    end if;
    if p_min_relative_change is not null then
        if p_baseline_value = 0 then
            -- MLflow's fallback: strictly better by 1e-10; a tolerated regression (r < 0): no worse.
            if p_min_relative_change >= 0 then
                if p_greater_is_better then v_pass := p_value >= 1e-10; else v_pass := p_value <= -1e-10; end if;
            else
                if p_greater_is_better then v_pass := p_value >= 0; else v_pass := p_value <= 0; end if;
            end if;
        else
            if p_greater_is_better then
                relative_change := regate._f8_div(regate._f8_add(p_value, -p_baseline_value), abs(p_baseline_value));
            else
                relative_change := regate._f8_div(regate._f8_add(p_baseline_value, -p_value), abs(p_baseline_value));
            end if;
            v_pass := relative_change >= p_min_relative_change;
        end if;
        if not v_pass then
            failed_criteria := failed_criteria || 'min_relative_change'::text;
        end if;
    end if;
    outcome := case when cardinality(failed_criteria) = 0 then 'passed' else 'failed' end;
end;
$$;

-- regate._fmt(x): a number for messages: 4 significant digits, no trailing zeros.
create or replace function regate._fmt(p_x double precision)
returns text
language sql
immutable
strict
parallel safe
security invoker
as $$
    select case
        when p_x = 'NaN'::float8 or abs(p_x) = 'Infinity'::float8 then p_x::text
        when p_x = 0 then '0'
        when abs(p_x) < 1e-4 or abs(p_x) >= 1e15 then to_char(p_x, 'FM9.999EEEE')
        else rtrim(rtrim(round(p_x::numeric, greatest(0, 3 - floor(log(abs(p_x)))::int))::text, '0'), '.')
    end
$$;

-- regate._pct(d): a relative change as a percentage for messages ('20.9%').
create or replace function regate._pct(p_d double precision)
returns text
language sql
immutable
strict
parallel safe
security invoker
as $$
    select case
        when abs(p_d) = 'Infinity'::float8 then 'an unbounded %'
        else regate._fmt(round((p_d * 100)::numeric, 1)::float8) || '%'
    end
$$;

-- regate._check_message(...): the sentence explaining one check.
create or replace function regate._check_message(
    p_metric text,
    p_outcome text,
    p_failed text[],
    p_value double precision,
    p_baseline_value double precision,
    p_greater_is_better boolean,
    p_threshold double precision,
    p_min_absolute_change double precision,
    p_min_relative_change double precision
)
returns text
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_diff double precision;
    v_rel double precision;
    v_cmp text;
    v_clauses text[] := '{}';
    v_direction text := case when p_greater_is_better then 'higher is better' else 'lower is better' end;
begin
    if p_outcome = 'missing' then
        return format('%s was not logged (no value to check)', p_metric);
    elsif p_outcome = 'invalid' then
        return format('%s is %s, not a finite number', p_metric, p_value);
    elsif p_outcome = 'no_baseline' then
        return format('%s is required but has no active baseline', p_metric);
    end if;
    if p_baseline_value is not null then
        v_diff := regate._f8_add(p_value, -p_baseline_value);
        if not p_greater_is_better then
            v_diff := -v_diff;
        end if;
        v_rel := case when p_baseline_value <> 0 then regate._f8_div(v_diff, abs(p_baseline_value)) end;
        v_cmp := case
            when v_diff > 0 then format('better than baseline %s by ', regate._fmt(p_baseline_value))
            when v_diff < 0 then format('worse than baseline %s by ', regate._fmt(p_baseline_value))
            else format('equal to baseline %s', regate._fmt(p_baseline_value))
        end || case
            when v_diff = 0 then ''
            when v_rel is not null then regate._pct(abs(v_rel))
            else regate._fmt(abs(v_diff))
        end;
    end if;
    if 'threshold' = any(p_failed) then
        v_clauses := v_clauses || format(
            'is %s the threshold %s (%s)',
            case when p_greater_is_better then 'below' else 'above' end, regate._fmt(p_threshold), v_direction
        );
    end if;
    if 'min_absolute_change' = any(p_failed) then
        v_clauses := v_clauses || case
            when p_min_absolute_change > 0 then format(
                'is %s, but must improve on it by at least %s', v_cmp, regate._fmt(p_min_absolute_change)
            )
            when p_min_absolute_change = 0 then format('is %s, and must not be worse', v_cmp)
            else format('is %s, tolerance %s', v_cmp, regate._fmt(-p_min_absolute_change))
        end;
    end if;
    if 'min_relative_change' = any(p_failed) then
        v_clauses := v_clauses || case
            when p_baseline_value = 0 and p_min_relative_change >= 0 then format(
                'is %s, but must be better than a baseline of 0', v_cmp
            )
            when p_baseline_value = 0 then format('is %s, and must not be worse than a baseline of 0', v_cmp)
            when p_min_relative_change > 0 then format(
                'is %s, but must improve on it by at least %s', v_cmp, regate._pct(p_min_relative_change)
            )
            when p_min_relative_change = 0 then format('is %s, and must not be worse', v_cmp)
            else format('is %s, tolerance %s', v_cmp, regate._pct(-p_min_relative_change))
        end;
    end if;
    if cardinality(v_clauses) = 0 then
        return format(
            '%s %s passes%s', p_metric, regate._fmt(p_value),
            case when v_cmp is not null then ' (' || v_cmp || ')' else '' end
        );
    end if;
    return format('%s %s %s', p_metric, regate._fmt(p_value), array_to_string(v_clauses, '; '));
end;
$$;

-- regate._check_json(baseline, value, step): one element of validation_results.checks.
create or replace function regate._check_json(
    p_baseline regate.model_baselines, p_value double precision, p_step bigint
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
set extra_float_digits = 3
as $$
declare
    v_eval record;
begin
    v_eval := regate._evaluate_check(
        p_value, p_baseline.baseline_value, p_baseline.greater_is_better, p_baseline.threshold,
        p_baseline.min_absolute_change, p_baseline.min_relative_change
    );
    return jsonb_build_object(
        'baseline_id', p_baseline.id,
        'metric_name', p_baseline.metric_name,
        'severity', p_baseline.severity,
        'greater_is_better', p_baseline.greater_is_better,
        'baseline_value', p_baseline.baseline_value,
        'threshold', p_baseline.threshold,
        'min_absolute_change', p_baseline.min_absolute_change,
        'min_relative_change', p_baseline.min_relative_change,
        'outcome', v_eval.outcome,
        'failed_criteria', to_jsonb(v_eval.failed_criteria),
        'observed', regate._float8_jsonb(p_value),
        'step', p_step,
        'message', regate._check_message(
            p_baseline.metric_name, v_eval.outcome, v_eval.failed_criteria, p_value, p_baseline.baseline_value,
            p_baseline.greater_is_better, p_baseline.threshold, p_baseline.min_absolute_change,
            p_baseline.min_relative_change
        )
    );
end;
$$;

-- regate._unbaselined_check(metric, outcome, value, step): a critical check that no baseline stands behind:
-- a required metric without baseline ('no_baseline') or a required metric that was not logged ('missing').
create or replace function regate._unbaselined_check(
    p_metric text, p_outcome text, p_value double precision, p_step bigint
)
returns jsonb
language sql
stable
security invoker
set extra_float_digits = 3
as $$
    select jsonb_build_object(
        'baseline_id', null, 'metric_name', p_metric, 'severity', 'critical', 'greater_is_better', null,
        'baseline_value', null, 'threshold', null, 'min_absolute_change', null, 'min_relative_change', null,
        'outcome', p_outcome, 'failed_criteria', '[]'::jsonb, 'observed', regate._float8_jsonb(p_value),
        'step', p_step,
        'message', regate._check_message(p_metric, p_outcome, '{}', p_value, null, null, null, null, null)
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

-- regate._infer_greater_is_better(metric): false for names that are unambiguously lower-is-better (ending in
-- loss, perplexity, wer or cer); raises RG007 for every other name.
create or replace function regate._infer_greater_is_better(p_metric text)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if lower(p_metric) ~ '(loss|perplexity|wer|cer)$' then
        return false;
    end if;
    raise exception using
        errcode = 'RG007',
        message = format('cannot infer greater_is_better for metric %s', p_metric),
        hint = 'Pass greater_is_better => true (higher is better) or false (lower is better).';
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
        elsif metric_names is null and lower(v_metric.name) !~ '(loss|perplexity|wer|cer)$' then
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
