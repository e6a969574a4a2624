-- References: where a baseline's reference value comes from when a job is validated. 'fixed' is baseline_value;
-- 'champion' the final value of the same metric of the model's current champion in the baseline's environment
-- (the latest row of regate.deployments for that model and environment); 'rolling' the median of the metric's
-- final values over the model's last window_size accepted runs (regate_internal.accepted_runs: passed, warning or
-- overridden; never blocked, failed or error), at least min_runs of them, the job under validation excluded.
-- A reference that cannot be resolved makes the check's outcome no_reference (060_checks.sql).
--
-- Error codes raised here: none.

-- regate_internal._final_value(job_id, metric): the final value of one metric of a job (highest step, then latest
-- row), NULL when the job never logged it.
create or replace function regate_internal._final_value(p_job_id uuid, p_metric text)
returns double precision
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
set enable_bitmapscan = off  -- backward index scans, as in regate_internal._final_metrics
set enable_sort = off
as $$
    select f.value from regate_internal._final_value_row(p_job_id, p_metric) as f
$$;

-- regate_internal._reference(baseline, job_id, metric): the reference of a champion or rolling baseline for the
-- job under validation and one metric (the baseline's, or a member of its family), as jsonb: kind, resolved (boolean), value (when resolved), and where it came from (the champion's
-- job_id and environment; the rolling window's runs and job ids), or the reason it could not be resolved.
create or replace function regate_internal._reference(p_baseline regate.model_baselines, p_job_id uuid, p_metric text)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_job uuid;
    v_value double precision;
    v_jobs uuid [];
    v_values double precision [];
begin
    if p_baseline.reference = 'champion' then
        select d.job_id into v_job
        from regate.deployments as d
        where d.model_name = p_baseline.model_name and d.environment = p_baseline.environment
        order by d.id desc
        limit 1;
        if v_job is null then
            return jsonb_build_object(
                'kind', 'champion', 'environment', p_baseline.environment, 'resolved', false,
                'reason', format('%s has no champion in %s yet', p_baseline.model_name, p_baseline.environment)
            );
        end if;
        v_value := regate_internal._final_value(v_job, p_metric);
        if v_value is null or v_value = 'NaN'::float8 or abs(v_value) = 'Infinity'::float8 then
            return jsonb_build_object(
                'kind', 'champion', 'environment', p_baseline.environment, 'job_id', v_job, 'resolved', false,
                'reason', format(
                    'the champion in %s (job %s) has %s %s', p_baseline.environment, v_job,
                    case when v_value is null then 'no' else 'a non-finite' end, p_metric
                )
            );
        end if;
        return jsonb_build_object(
            'kind', 'champion', 'environment', p_baseline.environment, 'job_id', v_job, 'resolved', true,
            'value', regate_internal._float8_jsonb(v_value)
        );
    end if;
    -- rolling: the newest accepted runs of the model (and version), each with a finite final value of the metric
    select coalesce(array_agg(w.job_id order by w.completed_at desc, w.job_id), '{}'),
        coalesce(array_agg(w.value order by w.completed_at desc, w.job_id), '{}')
    into v_jobs, v_values
    from (
        select a.job_id, a.completed_at, regate_internal._final_value(a.job_id, p_metric) as value
        from regate_internal.accepted_runs as a
        where
            a.model_name = p_baseline.model_name
            and (p_baseline.model_version is null or a.model_version = p_baseline.model_version)
            and a.job_id is distinct from p_job_id
        order by a.completed_at desc, a.job_id
        limit p_baseline.window_size
    ) as w
    where w.value is not null and w.value <> 'NaN'::float8 and abs(w.value) <> 'Infinity'::float8;
    if cardinality(v_values) < p_baseline.min_runs then
        return jsonb_build_object(
            'kind', 'rolling', 'window', p_baseline.window_size, 'min_runs', p_baseline.min_runs,
            'runs', cardinality(v_values), 'job_ids', to_jsonb(v_jobs), 'resolved', false,
            'reason', format(
                'the rolling median needs %s accepted run(s) of %s with a finite %s, found %s',
                p_baseline.min_runs, p_baseline.model_name, p_metric, cardinality(v_values)
            )
        );
    end if;
    select percentile_cont(0.5) within group (order by v) into v_value from unnest(v_values) as v;
    return jsonb_build_object(
        'kind', 'rolling', 'window', p_baseline.window_size, 'min_runs', p_baseline.min_runs,
        'runs', cardinality(v_values), 'job_ids', to_jsonb(v_jobs), 'resolved', true,
        'value', regate_internal._float8_jsonb(v_value)
    );
end;
$$;

-- regate_internal._note_acceptance(job_id, model_name, model_version, completed_at, accepted): keep
-- regate_internal.accepted_runs in step with a job's verdict: a completed job whose verdict is accepted (passed,
-- warning, or overridden) is a run a rolling reference may use; any other state removes it.
create or replace function regate_internal._note_acceptance(
    p_job_id uuid, p_model_name text, p_model_version text, p_completed_at timestamptz, p_accepted boolean
)
returns void
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if p_accepted and p_completed_at is not null then
        insert into regate_internal.accepted_runs as a (job_id, model_name, model_version, completed_at)
        values (p_job_id, p_model_name, p_model_version, p_completed_at)
        on conflict (job_id) do update
        set model_name = excluded.model_name, model_version = excluded.model_version,
            completed_at = excluded.completed_at;
    else
        delete from regate_internal.accepted_runs as a where a.job_id = p_job_id;
    end if;
end;
$$;

-- regate_internal._family_members(baseline, metrics, job_id): the metrics a check of the baseline covers: its own
-- metric_name, or for a family (a name ending in /*) every member: each metric of `metrics` (the candidate's) with
-- the family's prefix, and for a champion reference each member the champion has (missing in the candidate: a
-- `missing` check). The support family's members are never members of the checked family.
create or replace function regate_internal._family_members(
    p_baseline regate.model_baselines, p_metrics jsonb, p_job_id uuid
)
returns setof text
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_prefix text;
    v_champion uuid;
begin
    if right(p_baseline.metric_name, 2) <> '/*' then
        return next p_baseline.metric_name;
        return;
    end if;
    v_prefix := left(p_baseline.metric_name, -1);
    if p_baseline.reference = 'champion' then
        select d.job_id into v_champion
        from regate.deployments as d
        where d.model_name = p_baseline.model_name and d.environment = p_baseline.environment
        order by d.id desc
        limit 1;
    end if;
    return query
    select k.name
    from (
        select m.key as name from jsonb_object_keys(coalesce(p_metrics, '{}'::jsonb)) as m (key)
        union
        select c.metric_name
        from regate_internal.metric_names as c
        where v_champion is not null and c.job_id = v_champion and left(c.metric_name, length(v_prefix)) = v_prefix
    ) as k
    where left(k.name, length(v_prefix)) = v_prefix and length(k.name) > length(v_prefix)
    order by k.name;
    if not found then
        return next p_baseline.metric_name;  -- no member logged: the family itself is missing
    end if;
end;
$$;

-- regate_internal._support(baseline, metric, metrics): for a member of a family baseline with min_support, the
-- member's support count from the candidate's sibling count metric (support_metric's prefix + the member's slice;
-- the smallest over repeated runs), as jsonb {"metric", "value"} (value NULL when not logged); NULL otherwise.
create or replace function regate_internal._support(p_baseline regate.model_baselines, p_metric text, p_metrics jsonb)
returns jsonb
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select case when p_baseline.support_metric is not null then
        jsonb_build_object('metric', s.name, 'value', (
            select min(regate_internal._jsonb_float8(v.value))
            from jsonb_array_elements(
                case jsonb_typeof(p_metrics -> s.name) when 'array' then p_metrics -> s.name
                else jsonb_build_array(p_metrics -> s.name) end
            ) as v (value)
            where jsonb_typeof(v.value) in ('number', 'string')
        ))
    end
    from (
        select left(p_baseline.support_metric, -1)
            || substr(p_metric, length(p_baseline.metric_name)) as name
    ) as s
$$;
