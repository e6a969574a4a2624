-- The explicit functions: validate a job now, the gate node for workflow engines, and granting a login its
-- level of use. Each checks the caller itself: EXECUTE grants are a convenience, never the boundary.
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG001  run_gate's current_metrics are not acceptable
--   RG008  no such job, or not the caller's (the same error, so that a job's existence does not leak)
--   42501  validation against another model by a non-admin; grant_usage by a non-admin
--   22023  grant_usage with an unknown level or role

-- regate.validate_training_results(job_id uuid, model_name text, model_version text) returns
-- regate.validation_results: validate the job's final metrics now (source 'manual') against its model's
-- baselines and record the verdict. An admin's validation of a completed job also updates its gate columns
-- (validation_status, validation_result_id); anyone else's is a recorded re-check that leaves them as they are,
-- so that a tenant cannot re-roll its own verdict. model_name / model_version name another model to validate
-- against (admins only; that verdict is never put on the job). Raises RG008 for an unknown job or another
-- owner's, 42501 for another model by a non-admin.
create or replace function regate.validate_training_results(
    job_id uuid, model_name text default null, model_version text default null
)
returns regate.validation_results
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_job regate.local_training_jobs;
    v_other_model boolean;
    v_eff record;
    v_result regate.validation_results;
begin
    -- Visibility first, then the lock: a row of another owner is never locked.
    if not exists (
        select from regate.local_training_jobs as j
        where j.id = validate_training_results.job_id and regate_internal._may_see(j.owner_id)
    ) then
        raise exception using errcode = 'RG008', message = format(
            'no training job with id %s', validate_training_results.job_id
        );
    end if;
    select j.* into v_job
    from regate.local_training_jobs as j
    where j.id = validate_training_results.job_id
    for no key update;
    v_other_model := validate_training_results.model_name is not null and (
        validate_training_results.model_name, validate_training_results.model_version
    ) is distinct from (v_job.model_name, v_job.model_version);
    if v_other_model then
        perform regate_internal._require_admin('validate a job against another model');
    end if;
    v_eff := regate_internal._effective(v_job.config, coalesce(validate_training_results.model_name, v_job.model_name));
    v_result := regate_internal._gate(
        regate_internal._verdict(
            v_job.id,
            coalesce(validate_training_results.model_name, v_job.model_name),
            case when v_other_model then validate_training_results.model_version else v_job.model_version end,
            v_eff.config, v_eff.policy_id, v_eff.policy_version, 'manual', v_job.owner_id
        ),
        null, null
    );
    if v_job.status = 'completed' and not v_other_model and regate.is_admin() then
        update regate.local_training_jobs as j
        set
            validation_status = regate_internal._job_validation_status(v_result, v_eff.config),
            validation_result_id = v_result.id
        where j.id = v_job.id;
        perform regate_internal._note_acceptance(
            v_job.id, v_job.model_name, v_job.model_version, v_job.completed_at,
            regate_internal._job_validation_status(v_result, v_eff.config) in ('passed', 'warning')
        );
    end if;
    return v_result;
end;
$$;

-- regate.run_gate(model_name, current_metrics, model_version, block_on_failure, required_metrics, job_id)
-- returns regate.validation_results: the explicit gate for workflow engines. Validates current_metrics
-- ({"name": number | "NaN" | "Infinity" | "-Infinity"}, or an array of them, one per run; RG001 otherwise)
-- against the model's baselines (two or more runs: the interval of their mean decides);
-- required metrics missing from current_metrics fail; source 'gate'; blocked = a critical failure and
-- block_on_failure (an enforcing policy of the model may block anyway). The verdict belongs to job_id's owner
-- when given (the caller's own job; RG008 otherwise), else to the caller; it never changes a job's gate columns.
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
    v_owner text;
    v_eff record;
begin
    if current_metrics is null or jsonb_typeof(current_metrics) <> 'object' then
        raise exception using
            errcode = 'RG001',
            message = format(
                'current_metrics must be a JSON object of metric name -> number, got %s',
                coalesce(jsonb_typeof(current_metrics), 'NULL')
            );
    end if;
    -- a value may be an array of numbers, one per run (repeated runs: the check decides on their mean's interval)
    select p.problem into v_problem
    from jsonb_each(current_metrics) as e
    cross join lateral (
        select case
            when jsonb_typeof(e.value) <> 'array' then regate_internal._metric_value_problem(e.key, e.value)
            when jsonb_array_length(e.value) = 0 then format(
                'metric %s: an array of runs must hold at least one value', e.key
            )
            else (
                select regate_internal._metric_value_problem(e.key, a.value)
                from jsonb_array_elements(e.value) as a (value)
                where regate_internal._metric_value_problem(e.key, a.value) is not null
                limit 1
            )
        end as problem
    ) as p
    where p.problem is not null
    limit 1;
    if v_problem is not null then
        raise exception using errcode = 'RG001', message = 'invalid current_metrics: ' || v_problem;
    end if;
    if btrim(coalesce(run_gate.model_name, '')) = '' then
        raise exception using errcode = 'RG001', message = 'model_name must be a non-empty name';
    end if;
    if run_gate.job_id is not null then
        select j.owner_id into v_owner
        from regate.local_training_jobs as j
        where j.id = run_gate.job_id and regate_internal._may_see(j.owner_id);
        if not found then
            raise exception using errcode = 'RG008', message = format('no training job with id %s', run_gate.job_id);
        end if;
    end if;
    v_eff := regate_internal._effective(
        jsonb_build_object('blockOnCriticalFailures', coalesce(run_gate.block_on_failure, true)), run_gate.model_name
    );
    return regate_internal._gate(
        regate_internal._verdict(
            run_gate.job_id, run_gate.model_name, run_gate.model_version, v_eff.config, v_eff.policy_id,
            v_eff.policy_version, 'gate', coalesce(v_owner, regate.current_identity())
        ),
        current_metrics,
        run_gate.required_metrics
    );
end;
$$;

-- regate.grant_usage(role name, level text) returns text: admins only. Grants the login `role` membership of
-- regate_reader, regate_writer or regate_admin (level 'reader', 'writer' or 'admin') and returns the GRANT it
-- ran. Raises 22023 for an unknown level or role, 42501 for non-admins (or when the owner of schema regate may
-- not grant that role: then run the returned GRANT as the role's admin).
create or replace function regate.grant_usage(role name, level text)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_sql text;
begin
    perform regate_internal._require_admin('grant usage of regate');
    if level is null or level not in ('reader', 'writer', 'admin') then
        raise exception using errcode = '22023', message = format(
            'grant_usage: level must be ''reader'', ''writer'' or ''admin'', got %L', level
        );
    end if;
    if not exists (select from pg_catalog.pg_roles as r where r.rolname = grant_usage.role) then
        raise exception using errcode = '22023', message = format('grant_usage: no such role: %s', grant_usage.role);
    end if;
    v_sql := format('grant %I to %I', 'regate_' || level, grant_usage.role);
    begin
        execute v_sql;
    exception when insufficient_privilege or undefined_object then
        raise exception using errcode = '42501', message = format(
            'grant_usage: the owner of schema regate may not grant regate_%s (%s)', level, sqlerrm
        ), hint = format('Run as a role that administers regate_%s: %s;', level, v_sql);
    end;
    return v_sql;
end;
$$;

-- regate.validate_run_group(run_group text, model_name text default null) returns regate.validation_results:
-- validate the completed runs of a run group of the caller's (an admin's: anyone's) now, however many there are
-- (a group whose last run will never come): one verdict over the interval of their mean (source 'group'). The
-- runs get it as their own when they have no verdict yet (an admin's call: all of them). Raises RG008 when no
-- completed run of that group is visible, 22023 when the group has runs of several models and model_name is NULL.
create or replace function regate.validate_run_group(run_group text, model_name text default null)
returns regate.validation_results
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_job regate.local_training_jobs;
    v_models text [];
    v_eff record;
begin
    select array_agg(distinct j.model_name) into v_models
    from regate.local_training_jobs as j
    where
        j.run_group = validate_run_group.run_group and j.status = 'completed'
        and (validate_run_group.model_name is null or j.model_name = validate_run_group.model_name)
        and regate_internal._may_see(j.owner_id);
    if v_models is null then
        raise exception using errcode = 'RG008', message = format(
            'no completed run of group %s%s', validate_run_group.run_group,
            coalesce(' of model ' || validate_run_group.model_name, '')
        );
    elsif cardinality(v_models) > 1 then
        raise exception using errcode = '22023', message = format(
            'validate_run_group: group %s has runs of the models %s: name one (model_name)',
            validate_run_group.run_group, array_to_string(v_models, ', ')
        );
    end if;
    select j.* into v_job
    from regate.local_training_jobs as j
    where
        j.run_group = validate_run_group.run_group and j.model_name = v_models[1] and j.status = 'completed'
        and regate_internal._may_see(j.owner_id)
    order by j.completed_at desc, j.id
    limit 1;
    v_eff := regate_internal._effective(v_job.config, v_job.model_name);
    return regate_internal._group_gate(v_job, v_eff.config, v_eff.policy_id, v_eff.policy_version, true);
end;
$$;
