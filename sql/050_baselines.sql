-- Baselines: the rules a baseline must follow, which baselines apply to a job, the direction of a metric from
-- its name, and the admin-only functions that create baselines (superseding the previous active one).
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG004  a baseline breaks a rule
--   RG007  greater_is_better cannot be inferred from the metric name
--   RG008  no such job (create_baselines_from_job)
--   22023  deactivate_baseline of a baseline that does not exist
--   42501  a non-admin called create_baseline, create_baselines_from_job or deactivate_baseline

-- Trigger function: a baseline must be usable (RG004, naming the field and the rule). On insert, created_by is
-- the session's identity, whatever the client sent.
create or replace function regate_internal._baselines_check()
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
    elsif new.metric_name like '%/*' and length(new.metric_name) < 3 then
        v_problem := format('metric_name %L: a family needs a name before /* (e.g. accuracy/*)', new.metric_name);
    elsif (new.min_support is null) <> (new.support_metric is null) then
        v_problem := 'min_support and support_metric go together (e.g. min_support => 100, support_metric => ''n/*'')';
    elsif new.support_metric is not null and new.metric_name not like '%/*' then
        v_problem := 'min_support is only for a metric family (a metric_name ending in /*)';
    elsif new.support_metric is not null and (new.support_metric not like '%/*' or length(new.support_metric) < 3) then
        v_problem := format('support_metric must be a family of counts ending in /* (e.g. n/*), got %L', new.support_metric);
    elsif new.min_support < 0 or new.min_support = 'NaN'::float8 or new.min_support = 'Infinity'::float8 then
        v_problem := format('min_support must be a finite number >= 0, got %s', new.min_support);
    elsif new.benjamini_hochberg and new.metric_name not like '%/*' then
        v_problem := 'benjamini_hochberg is only for a metric family (a metric_name ending in /*)';
    elsif new.confidence is null or not (new.confidence > 0 and new.confidence < 1) then
        v_problem := format('confidence must be between 0 and 1 (exclusive), e.g. 0.95, got %s', new.confidence);
    elsif new.reference is null or new.reference not in ('fixed', 'champion', 'rolling') then
        v_problem := format('reference must be ''fixed'', ''champion'' or ''rolling'', got %L', new.reference);
    elsif new.on_missing_reference is null or new.on_missing_reference not in ('pass', 'warn', 'fail') then
        v_problem := format(
            'on_missing_reference must be ''pass'', ''warn'' or ''fail'', got %L', new.on_missing_reference
        );
    elsif
        new.reference = 'fixed' and new.baseline_value is null
        and num_nonnulls(new.min_absolute_change, new.min_relative_change) > 0
    then
        v_problem := 'baseline_value is required when min_absolute_change or min_relative_change is set';
    elsif new.reference <> 'fixed' and new.baseline_value is not null then
        v_problem := format(
            'baseline_value must be NULL for a %s reference: the reference value is resolved at each validation',
            new.reference
        );
    elsif new.reference <> 'champion' and new.environment is not null then
        v_problem := 'environment is only for a champion reference';
    elsif new.reference = 'champion' and btrim(coalesce(new.environment, '')) = '' then
        v_problem := 'environment (e.g. production) is required for a champion reference';
    elsif new.reference <> 'rolling' and num_nonnulls(new.window_size, new.min_runs) > 0 then
        v_problem := 'window_size and min_runs are only for a rolling reference';
    elsif new.reference = 'rolling' and (new.window_size is null or new.window_size < 1) then
        v_problem := format('window_size must be at least 1 for a rolling reference, got %s', new.window_size);
    elsif new.reference = 'rolling' and (new.min_runs is null or new.min_runs not between 1 and new.window_size) then
        v_problem := format(
            'min_runs must be between 1 and window_size (%s) for a rolling reference, got %s', new.window_size,
            new.min_runs
        );
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
    if tg_op = 'INSERT' then
        new.created_by := regate.current_identity();
    elsif new.created_by is distinct from old.created_by then
        raise exception using errcode = 'RG004', message = format(
            'invalid baseline for %s/%s: created_by is set by the database and cannot change', new.model_name,
            new.metric_name
        );
    end if;
    return new;
end;
$$;

-- regate_internal._applicable_baselines(model, version, metrics): the active baselines of the model whose version is
-- the given one or NULL (all versions); for the same (metric, severity) the version-specific one wins. Limited
-- to `metrics` when it is not NULL. Plain SQL, so that it inlines into regate_internal._checks; callers are SECURITY
-- DEFINER functions that pin search_path.
create or replace function regate_internal._applicable_baselines(p_model_name text, p_model_version text, p_metrics text[])
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

-- regate_internal._lower_is_better_name(metric): whether the name unambiguously means lower is better: the whole name or
-- its last word is loss, perplexity, wer or cer ('loss', 'eval_loss', 'val/wer', 'evalLoss'), so that
-- 'answer' or 'balancer' do not count.
create or replace function regate_internal._lower_is_better_name(p_metric text)
returns boolean
language sql
immutable
parallel safe
security invoker
as $$
    select p_metric ~* '(^|[^a-z0-9])(loss|perplexity|wer|cer)$'
        or p_metric ~ '[a-z0-9](Loss|Perplexity|Wer|WER|Cer|CER)$'
$$;

-- regate_internal._infer_greater_is_better(metric): false for names that unambiguously mean lower is better
-- (_lower_is_better_name); raises RG007 for every other name.
create or replace function regate_internal._infer_greater_is_better(p_metric text)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if regate_internal._lower_is_better_name(p_metric) then
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

-- regate_internal._create_baseline(...): insert a baseline and deactivate the previous active one with the same
-- (model, version, metric, severity) in the same transaction. Shared by create_baseline and
-- create_baselines_from_job, which check that the caller is an admin.
create or replace function regate_internal._create_baseline(
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
    p_source_job_id uuid,
    p_reference jsonb default '{}'::jsonb
)
returns regate.model_baselines
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row regate.model_baselines;
begin
    perform regate_internal._assert_trusted_triggers(array['regate.model_baselines'::regclass], true);
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
        min_absolute_change, min_relative_change, severity, description, source_job_id, reference, environment,
        window_size, min_runs, on_missing_reference, confidence, min_support, support_metric, benjamini_hochberg
    )
    values (
        p_model_name, p_model_version, p_metric_name, p_baseline_value,
        coalesce(p_greater_is_better, regate_internal._infer_greater_is_better(p_metric_name)), p_threshold,
        p_min_absolute_change, p_min_relative_change, p_severity, p_description, p_source_job_id,
        coalesce(p_reference ->> 'reference', 'fixed'), p_reference ->> 'environment',
        (p_reference ->> 'window_size')::bigint, (p_reference ->> 'min_runs')::bigint,
        coalesce(p_reference ->> 'on_missing_reference', 'warn'),
        coalesce((p_reference ->> 'confidence')::double precision, 0.95),
        (p_reference ->> 'min_support')::double precision, p_reference ->> 'support_metric',
        coalesce((p_reference ->> 'benjamini_hochberg')::boolean, false)
    )
    returning * into v_row;
    return v_row;
end;
$$;

-- regate.create_baseline(model_name, metric_name, ...) returns regate.model_baselines: the new active
-- baseline; the previous active one with the same key is deactivated (history is kept). greater_is_better
-- may be omitted for names ending in loss, perplexity, wer or cer (lower is better); otherwise RG007.
-- reference: 'fixed' (baseline_value), 'champion' (the final value of the metric of the model's current champion in
-- `environment`) or 'rolling' (the median over the model's last `window_size` accepted runs, at least `min_runs`);
-- on_missing_reference ('pass', 'warn' or 'fail') says what a check whose reference cannot be resolved counts as;
-- confidence is the level of the interval of the mean when the check gets repeated runs (default 0.95). A
-- metric_name ending in /* is a family: each member the job logged is its own check; with min_support and
-- support_metric (a family of counts, e.g. n/*), members whose count is below min_support are skipped;
-- benjamini_hochberg: a member's significant regression over repeated runs must survive the Benjamini-Hochberg
-- procedure over the family's members.
-- Raises RG004 when the baseline breaks a rule, 42501 unless the session is a regate admin.
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
    description text default null,
    reference text default 'fixed',
    environment text default null,
    window_size integer default null,
    min_runs integer default null,
    on_missing_reference text default 'warn',
    confidence double precision default 0.95,
    min_support double precision default null,
    support_metric text default null,
    benjamini_hochberg boolean default false
)
returns regate.model_baselines
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    perform regate_internal._require_admin('create baselines');
    return regate_internal._create_baseline(
        create_baseline.model_name, create_baseline.metric_name, create_baseline.baseline_value,
        create_baseline.greater_is_better, create_baseline.threshold, create_baseline.min_absolute_change,
        create_baseline.min_relative_change, create_baseline.severity, create_baseline.model_version,
        create_baseline.description, null,
        jsonb_build_object(
            'reference', create_baseline.reference, 'environment', create_baseline.environment,
            'window_size', create_baseline.window_size, 'min_runs', create_baseline.min_runs,
            'on_missing_reference', create_baseline.on_missing_reference, 'confidence', create_baseline.confidence,
            'min_support', create_baseline.min_support, 'support_metric', create_baseline.support_metric,
            'benjamini_hochberg', create_baseline.benjamini_hochberg
        )
    );
end;
$$;

-- regate.create_baselines_from_job(job_id, metric_names, min_relative_change, severity, directions) returns
-- setof regate.model_baselines: promote the job's finite final metrics to baselines of its model (all
-- versions). With min_relative_change the criterion is relative to the promoted value, else the value becomes
-- a threshold (no worse than this job). Directions come from `directions` ({"accuracy": true}) or the name;
-- listed metric_names must exist, be finite and have a known direction (RG004, RG007); without a list, metrics
-- that are not finite or whose direction is unknown are skipped with a NOTICE. Admins only (42501). Raises RG008
-- for an unknown job.
create or replace function regate.create_baselines_from_job(
    job_id uuid,
    metric_names text[] default null,
    min_relative_change double precision default null,
    severity text default 'critical',
    directions jsonb default '{}'::jsonb
)
returns setof regate.model_baselines
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_job regate.local_training_jobs;
    v_final record;
    v_metric record;
    v_gib boolean;
    v_name text;
begin
    perform regate_internal._require_admin('create baselines');
    select j.* into v_job from regate.local_training_jobs as j where j.id = create_baselines_from_job.job_id;
    if not found then
        raise exception using errcode = 'RG008', message = format(
            'no training job with id %s', create_baselines_from_job.job_id
        );
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
    v_final := regate_internal._final_metrics(v_job.id);
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
        select m.key as name, regate_internal._jsonb_float8(m.value) as value
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
        elsif metric_names is null and not regate_internal._lower_is_better_name(v_metric.name) then
            raise notice 'skipped %: direction unknown (give it in directions)', v_metric.name;
            continue;
        else
            v_gib := regate_internal._infer_greater_is_better(v_metric.name);
        end if;
        return next regate_internal._create_baseline(
            v_job.model_name, v_metric.name, v_metric.value, v_gib,
            case when min_relative_change is null then v_metric.value end,
            null, min_relative_change, severity, null,
            format('promoted from job %s', v_job.id), v_job.id
        );
    end loop;
end;
$$;

-- regate.deactivate_baseline(baseline_id bigint) returns regate.model_baselines: admins only. The baseline stops
-- applying to completions from now on (is_active false); it stays, with the verdicts that cite it. Raises 22023
-- when no baseline has that id; deactivating an inactive one changes nothing (NOTICE).
create or replace function regate.deactivate_baseline(baseline_id bigint)
returns regate.model_baselines
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row regate.model_baselines;
begin
    perform regate_internal._require_admin('deactivate a baseline');
    perform regate_internal._assert_trusted_triggers(array['regate.model_baselines'::regclass], true);
    select b.* into v_row from regate.model_baselines as b where b.id = deactivate_baseline.baseline_id for update;
    if v_row.id is null then
        raise exception using errcode = '22023', message = format(
            'deactivate_baseline: no baseline with id %s', deactivate_baseline.baseline_id
        );
    elsif not v_row.is_active then
        raise notice 'baseline % (%/%) is inactive already', v_row.id, v_row.model_name, v_row.metric_name;
        return v_row;
    end if;
    update regate.model_baselines as b set is_active = false where b.id = v_row.id returning b.* into v_row;
    return v_row;
end;
$$;
