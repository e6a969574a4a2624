-- Validation: which baselines apply, the verdict, the blocking rule, the completion trigger and the explicit
-- functions. One implementation (regate._gate) serves the trigger, validate_training_results and run_gate.
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG001  run_gate's current_metrics are not acceptable
--   RG006  verdicts are append-only; a job with verdicts cannot be deleted
--   RG008  no such job
--   RG009  validation_status / validation_result_id changed by someone other than the gate

-- regate.should_block_deployment(result regate.validation_results, config jsonb) returns boolean: whether a
-- verdict blocks deployment under a gate config (a job config or an effective one): a critical failure with
-- blockOnCriticalFailures, or a validation error when failOpen is false.
create or replace function regate.should_block_deployment(result regate.validation_results, config jsonb)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_cfg jsonb := regate.effective_config(config);
    v_block boolean := (v_cfg ->> 'blockOnCriticalFailures')::boolean;
begin
    return case (result).status
        when 'error' then not (v_cfg #>> '{regressionGateConfig,failOpen}')::boolean
        when 'failed' then v_block
        when 'no_baselines' then v_block and (v_cfg #>> '{regressionGateConfig,requireBaselines}')::boolean
        else false
    end;
end;
$$;

-- regate._job_validation_status(result, config): the job's validation_status for a verdict.
create or replace function regate._job_validation_status(p_result regate.validation_results, p_config jsonb)
returns text
language sql
immutable
security invoker
as $$
    select case
        when p_result.blocked then 'blocked'
        when p_result.status = 'no_baselines' then
            case when (p_config #>> '{regressionGateConfig,requireBaselines}')::boolean then 'failed' else 'passed' end
        else p_result.status
    end
$$;

-- regate._evaluate(...): the verdict (not yet recorded) for final metrics against the applicable baselines.
-- p_required lists metrics that must be present (run_gate). Data problems become checks, never errors.
create or replace function regate._evaluate(
    p_job_id uuid,
    p_model_name text,
    p_model_version text,
    p_metrics jsonb,
    p_steps jsonb,
    p_config jsonb,
    p_required text[],
    p_source text
)
returns regate.validation_results
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
set extra_float_digits = 3
as $$
declare
    v_gc jsonb := p_config -> 'regressionGateConfig';
    v_require boolean := coalesce((v_gc ->> 'requireBaselines')::boolean, false);
    v_only text[];
    v_result regate.validation_results;
    v_checked text[];
    v_critical_checked text[];
    v_critical_failed boolean;
    v_warning_failed boolean;
    v_extra jsonb;
begin
    if jsonb_typeof(v_gc -> 'metricsToValidate') = 'array' then
        v_only := array(select jsonb_array_elements_text(v_gc -> 'metricsToValidate'));
    end if;
    -- All applicable baselines in one statement: one snapshot; the verdict's inputs come with it.
    select
        coalesce(jsonb_agg(c.check_json), '[]'::jsonb),
        coalesce(array_agg(c.metric_name), '{}'),
        coalesce(array_agg(c.metric_name) filter (where c.severity = 'critical'), '{}'),
        coalesce(bool_or(c.severity = 'critical' and c.outcome <> 'passed'), false),
        coalesce(bool_or(c.severity = 'warning' and c.outcome <> 'passed'), false)
    into v_result.checks, v_checked, v_critical_checked, v_critical_failed, v_warning_failed
    from regate._checks(p_model_name, p_model_version, v_only, p_metrics, p_steps) as c;
    -- Critical checks no baseline stands behind: a listed metric without baseline (requireBaselines), a
    -- metric required by run_gate that was not logged (unless a critical check already fails it).
    if (v_require and v_only is not null) or p_required is not null then
        select coalesce(jsonb_agg(r.check_json order by r.name), '[]'::jsonb)
        into v_extra
        from (
            select
                n.name,
                regate._unbaselined_check(
                    n.name,
                    case when v_require and n.name = any(v_only) then 'no_baseline' else 'missing' end,
                    regate._jsonb_float8(p_metrics -> n.name),
                    (p_steps ->> n.name)::bigint
                ) as check_json
            from (
                select unnest(case when v_require then v_only end) as name
                union
                select unnest(p_required) as name
            ) as n
            where
                (v_require and n.name = any(v_only) and not n.name = any(v_checked))
                or (
                    n.name = any(p_required) and not coalesce(p_metrics ? n.name, false)
                    and not n.name = any(v_critical_checked)
                )
        ) as r;
        v_result.checks := v_result.checks || v_extra;
        v_critical_failed := v_critical_failed or jsonb_array_length(v_extra) > 0;
    end if;
    v_result.status := case
        when jsonb_array_length(v_result.checks) = 0 then 'no_baselines'
        when v_critical_failed then 'failed'
        when v_warning_failed then 'warning'
        else 'passed'
    end;
    v_result.job_id := p_job_id;
    v_result.model_name := p_model_name;
    v_result.model_version := p_model_version;
    v_result.metrics := p_metrics;
    v_result.config := p_config;
    v_result.source := p_source;
    v_result.blocked := regate.should_block_deployment(v_result, p_config);
    return v_result;
end;
$$;

-- regate._record(result, started): insert a verdict, with its duration; returns the stored row.
create or replace function regate._record(p_result regate.validation_results, p_started timestamptz)
returns regate.validation_results
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row regate.validation_results;
begin
    insert into regate.validation_results (
        job_id, model_name, model_version, status, blocked, metrics, checks, config, source, error_sqlstate,
        error_message, duration_ms
    )
    values (
        p_result.job_id, p_result.model_name, p_result.model_version, p_result.status, p_result.blocked,
        p_result.metrics, coalesce(p_result.checks, '[]'::jsonb), p_result.config, p_result.source,
        p_result.error_sqlstate, p_result.error_message,
        extract(epoch from clock_timestamp() - p_started) * 1000
    )
    returning * into v_row;
    return v_row;
end;
$$;

-- regate._gate(job, model, version, metrics, config, required, source): validate and record; the one code
-- path of the trigger and the explicit functions. With p_metrics NULL the job's final metrics are read.
-- Never raises for a failure inside validation: it records an 'error' verdict (blocked when failOpen is
-- false) with the SQLSTATE and message. Its statements wait at most 1 s for a lock (lock_timeout).
create or replace function regate._gate(
    p_job_id uuid,
    p_model_name text,
    p_model_version text,
    p_metrics jsonb,
    p_config jsonb,
    p_required text[],
    p_source text
)
returns regate.validation_results
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set lock_timeout = '1s'
as $$
declare
    v_started timestamptz := clock_timestamp();
    v_metrics jsonb := p_metrics;
    v_steps jsonb;
    v_result regate.validation_results;
begin
    begin
        if p_metrics is null and p_job_id is not null then
            select f.metrics, f.steps into v_metrics, v_steps from regate._final_metrics(p_job_id) as f;
        end if;
        v_result := regate._evaluate(
            p_job_id, p_model_name, p_model_version, v_metrics, v_steps, p_config, p_required, p_source
        );
        return regate._record(v_result, v_started);
    exception when others then
        v_result := null;
        get stacked diagnostics
            v_result.error_sqlstate = returned_sqlstate,
            v_result.error_message = message_text;
        v_result.job_id := p_job_id;
        v_result.model_name := p_model_name;
        v_result.model_version := p_model_version;
        v_result.metrics := v_metrics;
        v_result.config := p_config;
        v_result.source := p_source;
        v_result.status := 'error';
        v_result.blocked := regate.should_block_deployment(v_result, p_config);
        return regate._record(v_result, v_started);
    end;
end;
$$;

-- Trigger function (before insert or update, when a job enters completed): run the gate and put the verdict
-- on the row, so that the completing statement's RETURNING already shows it.
create or replace function regate._jobs_gate()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_cfg jsonb := regate.effective_config(new.config);
    v_result regate.validation_results;
begin
    if not regate._gates_on() or not (v_cfg ->> 'enableRegressionGates')::boolean then
        new.validation_status := 'not_run';
        new.validation_result_id := null;
        return new;
    end if;
    v_result := regate._gate(new.id, new.model_name, new.model_version, null, v_cfg, null, 'auto');
    new.validation_status := regate._job_validation_status(v_result, v_cfg);
    new.validation_result_id := v_result.id;
    return new;
end;
$$;

-- Trigger function: updated_at on every update, completed_at when a job enters completed.
create or replace function regate._jobs_timestamps()
returns trigger
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_op = 'UPDATE' then
        new.updated_at := now();
        if new.status = 'completed' and old.status is distinct from 'completed' then
            new.completed_at := now();
        end if;
    elsif new.status = 'completed' then
        new.completed_at := coalesce(new.completed_at, now());
    end if;
    return new;
end;
$$;

drop trigger if exists _100_timestamps on regate.local_training_jobs;
create trigger _100_timestamps
before insert or update on regate.local_training_jobs
for each row execute function regate._jobs_timestamps();

drop trigger if exists _500_gate_on_insert on regate.local_training_jobs;
create trigger _500_gate_on_insert
before insert on regate.local_training_jobs
for each row when (new.status = 'completed')
execute function regate._jobs_gate();

drop trigger if exists _500_gate_on_update on regate.local_training_jobs;
create trigger _500_gate_on_update
before update on regate.local_training_jobs
for each row when (new.status = 'completed' and old.status is distinct from 'completed')
execute function regate._jobs_gate();

-- Trigger function: a job's gate columns (validation_status, validation_result_id) are written by the gate
-- only (RG009), so a client cannot turn 'blocked' into 'passed'. Runs as the caller: inside regate's own
-- SECURITY DEFINER functions current_user is the schema owner, who (like a superuser) may write them.
create or replace function regate._jobs_guard_verdict()
returns trigger
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if coalesce((select r.rolsuper from pg_catalog.pg_roles as r where r.rolname = current_user), false)
        or pg_catalog.pg_has_role(
            current_user, (select n.nspowner from pg_catalog.pg_namespace as n where n.nspname = 'regate'), 'MEMBER'
        ) then
        return new;
    end if;
    raise exception using
        errcode = 'RG009',
        message = format(
            'validation_status and validation_result_id of job %s are written by the regression gate only', new.id
        ),
        hint = 'Complete the job (status = ''completed'') or call regate.validate_training_results(job_id).';
end;
$$;

drop trigger if exists _400_guard_verdict_on_insert on regate.local_training_jobs;
create trigger _400_guard_verdict_on_insert
before insert on regate.local_training_jobs
for each row when (new.validation_status is not null or new.validation_result_id is not null)
execute function regate._jobs_guard_verdict();

drop trigger if exists _400_guard_verdict_on_update on regate.local_training_jobs;
create trigger _400_guard_verdict_on_update
before update on regate.local_training_jobs
for each row when (
    new.validation_status is distinct from old.validation_status
    or new.validation_result_id is distinct from old.validation_result_id
)
execute function regate._jobs_guard_verdict();

-- Trigger function: a job with verdicts cannot be deleted (RG006): the audit trail stays.
create or replace function regate._jobs_keep_verdicts()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_count bigint;
begin
    select count(*) into v_count from regate.validation_results as r where r.job_id = old.id;
    if v_count > 0 then
        raise exception using
            errcode = 'RG006',
            message = format(
                'job %s has %s validation result(s) and cannot be deleted: verdicts are kept as an audit trail',
                old.id, v_count
            ),
            hint = 'Cancel the job, or leave it: its verdicts reference it.';
    end if;
    return old;
end;
$$;

drop trigger if exists _100_keep_verdicts on regate.local_training_jobs;
create trigger _100_keep_verdicts
before delete on regate.local_training_jobs
for each row execute function regate._jobs_keep_verdicts();

-- Trigger function: verdicts are append-only (RG006).
create or replace function regate._results_append_only()
returns trigger
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    raise exception using
        errcode = 'RG006',
        message = format(
            'regate.validation_results is append-only: %s of result %s refused', lower(tg_op), old.id
        ),
        hint = 'Validate again (regate.validate_training_results) to record a new verdict.';
end;
$$;

drop trigger if exists _100_append_only on regate.validation_results;
create trigger _100_append_only
before update or delete on regate.validation_results
for each row execute function regate._results_append_only();

drop trigger if exists _100_no_truncate on regate.validation_results;
create trigger _100_no_truncate
before truncate on regate.validation_results
for each statement execute function regate._refuse_truncate('RG006');

-- regate.validate_training_results(job_id uuid, model_name text, model_version text) returns
-- regate.validation_results: validate the job's final metrics now (source 'manual') against its model's
-- baselines, or those of model_name/model_version when given; record the verdict, and for a completed job
-- update its gate columns. Raises RG008 for an unknown job.
create or replace function regate.validate_training_results(
    job_id uuid, model_name text default null, model_version text default null
)
returns regate.validation_results
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    v_job regate.local_training_jobs;
    v_cfg jsonb;
    v_result regate.validation_results;
begin
    select j.* into v_job from regate.local_training_jobs as j where j.id = $1 for no key update;
    if not found then
        raise exception using errcode = 'RG008', message = format('no training job with id %s', $1);
    end if;
    v_cfg := regate.effective_config(v_job.config);
    v_result := regate._gate(
        v_job.id,
        coalesce($2, v_job.model_name),
        case when $2 is null then v_job.model_version else $3 end,
        null, v_cfg, null, 'manual'
    );
    if v_job.status = 'completed' then
        update regate.local_training_jobs as j
        set validation_status = regate._job_validation_status(v_result, v_cfg), validation_result_id = v_result.id
        where j.id = v_job.id;
    end if;
    return v_result;
end;
$$;

-- regate.run_gate(model_name, current_metrics, model_version, block_on_failure, required_metrics, job_id)
-- returns regate.validation_results: the explicit gate for workflow engines. Validates current_metrics
-- ({"name": number | "NaN" | "Infinity" | "-Infinity"}; RG001 otherwise) against the model's baselines;
-- required metrics missing from current_metrics fail; source 'gate'; blocked = a critical failure and
-- block_on_failure. Raises RG008 for an unknown job_id.
create or replace function regate.run_gate(
    model_name text,
    current_metrics jsonb,
    model_version text default null,
    block_on_failure boolean default true,
    required_metrics text[] default null,
    job_id uuid default null
)
returns regate.validation_results
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_problem text;
begin
    if current_metrics is null or jsonb_typeof(current_metrics) <> 'object' then
        raise exception using
            errcode = 'RG001',
            message = format(
                'current_metrics must be a JSON object of metric name -> number, got %s',
                coalesce(jsonb_typeof(current_metrics), 'NULL')
            );
    end if;
    select p.problem into v_problem
    from jsonb_each(current_metrics) as e
    cross join lateral (select regate._metric_value_problem(e.key, e.value) as problem) as p
    where p.problem is not null
    limit 1;
    if v_problem is not null then
        raise exception using errcode = 'RG001', message = 'invalid current_metrics: ' || v_problem;
    end if;
    if btrim(coalesce(model_name, '')) = '' then
        raise exception using errcode = 'RG001', message = 'model_name must be a non-empty name';
    end if;
    if
        run_gate.job_id is not null
        and not exists (select from regate.local_training_jobs as j where j.id = run_gate.job_id)
    then
        raise exception using errcode = 'RG008', message = format('no training job with id %s', run_gate.job_id);
    end if;
    return regate._gate(
        run_gate.job_id, run_gate.model_name, run_gate.model_version, current_metrics,
        regate.effective_config(jsonb_build_object('blockOnCriticalFailures', coalesce(block_on_failure, true))),
        required_metrics, 'gate'
    );
end;
$$;
