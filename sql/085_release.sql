-- Release control: whether a job may deploy, the deployment guard, and the admins' audited overrides (with the
-- four-eyes rule of a policy). The database is the release authority: a row of regate.deployments exists only
-- for a job that may deploy, whoever inserts it (admins and superusers included); the way past a refusal is an
-- override.
--
-- A job may deploy when it is completed and its current verdict (validation_result_id) does not refuse it: not
-- blocked, and not a validation error while the model's policy now fails closed; or when an override in effect
-- names that verdict. A job the gate did not run for (validation_status 'not_run': the kill switch, the plan's
-- rollback path) may deploy; a completed job without any verdict may not.
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG008  a deployment or override_gate names a job that does not exist (or, for a deployment, is not the
--          session's own)
--   RG010  a trigger regate-db did not install sits on regate.deployments, regate.gate_overrides or regate.alerts
--   RG012  a deployment was refused: the message says why, the hint how to override
--   22023  a deployment without an environment; override_gate without a reason, with an expiry in the past, or for a job that may deploy;
--          confirm_override of an override that needs no confirmation, expired, or was confirmed already
--   42501  a non-admin overrides or confirms, or the admin who overrode confirms

-- regate_internal._override_in_effect(job_id, validation_result_id): the id of the newest override in effect for
-- that verdict of the job (not expired; confirmed by a second admin when it had to be), else NULL.
create or replace function regate_internal._override_in_effect(p_job_id uuid, p_result_id bigint)
returns bigint
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select o.id
    from regate.gate_overrides as o
    where
        o.job_id = p_job_id
        and o.validation_result_id is not distinct from p_result_id
        and (o.expires_at is null or o.expires_at > pg_catalog.now())
        and (
            not o.requires_confirmation
            or exists (select from regate.gate_override_confirmations as c where c.override_id = o.id)
        )
    order by o.id desc
    limit 1
$$;

-- regate_internal._failing_summary(checks): the failing checks of a verdict in words ("accuracy: 0.8 < 0.9 ...";
-- their messages), for the refusal of a deployment.
create or replace function regate_internal._failing_summary(p_checks jsonb)
returns text
language sql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(
        string_agg(coalesce(c.value ->> 'message', c.value ->> 'metric_name'), '; ' order by c.ordinality),
        'no check failed'
    )
    from jsonb_array_elements(coalesce(p_checks, '[]'::jsonb)) with ordinality as c (value, ordinality)
    where c.value ->> 'outcome' is distinct from 'passed' and c.value ->> 'severity' is distinct from 'warning'
$$;

-- regate_internal._deployment_decision(job_id, environment): whether the job may deploy: `refusal` is NULL when
-- it may, else the sentence why; `override_id` the override that allows it, if one does. The job must be visible
-- to the session (its own, or any for an admin). Reads the job's current verdict and the policy of its model.
create or replace function regate_internal._deployment_decision(
    p_job_id uuid,
    p_environment text,
    out refusal text,
    out override_id bigint,
    out job regate.local_training_jobs,
    out verdict regate.validation_results
)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_how constant text := 'an admin may override it: select regate.override_gate(''%s'', reason => ''...'')';
begin
    if p_environment is not null and btrim(p_environment) = '' then
        refusal := 'environment must be a non-empty name';
        return;
    end if;
    select j.* into job from regate.local_training_jobs as j where j.id = p_job_id;
    if job.id is null or not regate_internal._may_see(job.owner_id) then
        job := null;
        refusal := format('no training job with id %s', p_job_id);
        return;
    end if;
    if job.status <> 'completed' then
        refusal := format('job %s is %s, not completed: only a completed job may deploy', job.id, job.status);
        return;
    end if;
    if job.validation_status = 'not_run' then
        return;  -- the gate was switched off for it: the kill switch is the rollback path
    end if;
    if job.validation_result_id is null then
        override_id := regate_internal._override_in_effect(job.id, null);
        if override_id is null and job.run_group is not null then
            refusal := format(
                'job %s is a run of group %s (%s runs expected), which has no verdict yet: it is validated when its '
                'last run completes, or now with regate.validate_run_group(''%s''); or ' || v_how,
                job.id, job.run_group, job.run_group_size, job.run_group, job.id
            );
        elsif override_id is null then
            refusal := format(
                'job %s has no verdict (completed while regate-db did not run): validate it with '
                'regate.validate_training_results(''%s''), or ' || v_how, job.id, job.id, job.id
            );
        end if;
        return;
    end if;
    select r.* into verdict from regate.validation_results as r where r.id = job.validation_result_id;
    if verdict.blocked then
        refusal := format(
            'job %s of model %s is blocked by its verdict #%s: %s; ' || v_how, job.id, job.model_name, verdict.id,
            case verdict.status
                when 'error' then format(
                    'it failed closed after a validation error (SQLSTATE %s: %s)', verdict.error_sqlstate,
                    verdict.error_message
                )
                when 'no_baselines' then 'no baseline applies and requireBaselines is on'
                else 'critical checks failed: ' || regate_internal._failing_summary(verdict.checks)
            end,
            job.id
        );
    elsif
        verdict.status = 'error'
        and not coalesce(
            ((regate_internal._effective(job.config, job.model_name)).config #>> '{regressionGateConfig,failOpen}')::boolean,
            false
        )
    then
        refusal := format(
            'job %s of model %s has a validation error as its verdict #%s (SQLSTATE %s: %s) and the model''s gate '
            'policy fails closed; validate it again with regate.validate_training_results(''%s''), or ' || v_how,
            job.id, job.model_name, verdict.id, verdict.error_sqlstate, verdict.error_message, job.id, job.id
        );
    end if;
    if refusal is not null then
        override_id := regate_internal._override_in_effect(job.id, verdict.id);
        if override_id is not null then
            refusal := null;
        end if;
    end if;
end;
$$;

-- regate.deployment_refusal(job_id uuid, environment text default null) returns text: NULL when the job may
-- deploy (to that environment), else the sentence why not and how to override. A job that does not exist or is
-- not the session's own (for a non-admin) is refused as "no training job".
create or replace function regate.deployment_refusal(job_id uuid, environment text default null)
returns text
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
    select d.refusal
    from regate_internal._deployment_decision(deployment_refusal.job_id, deployment_refusal.environment) as d
$$;

-- regate.deployment_allowed(job_id uuid, environment text default null) returns boolean: whether the job may
-- deploy: it is completed and its current verdict is not blocked (nor a validation error under a fail-closed
-- policy), or an override in effect names that verdict; a 'not_run' job may deploy.
create or replace function regate.deployment_allowed(job_id uuid, environment text default null)
returns boolean
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
    select d.refusal is null
    from regate_internal._deployment_decision(deployment_allowed.job_id, deployment_allowed.environment) as d
$$;

-- Trigger function (before insert on regate.deployments): refuse (RG012) unless the job may deploy; fill in what
-- the database knows (model, version, the verdict and the override that allowed it, who and when). SECURITY
-- DEFINER (it reads the policy of the model), so it refuses to fire anywhere else (RG010).
create or replace function regate_internal._deployments_guard()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v record;
begin
    if tg_relid <> 'regate.deployments'::regclass or tg_level <> 'ROW' or tg_when <> 'BEFORE' then
        perform regate_internal._misfired('_deployments_guard', tg_relid);
    end if;
    -- A trigger someone else attached to regate.deployments would run as every deployer, admins included.
    perform regate_internal._assert_trusted_triggers(array['regate.deployments'::regclass], false);
    if new.environment is null or btrim(new.environment) = '' then
        raise exception using errcode = '22023', message = format(
            'deployment: environment must be a non-empty name such as production, got %L', new.environment
        );
    end if;
    -- A job that changes at the same time (an admin reopening or re-validating it) waits, or makes this wait.
    perform from regate.local_training_jobs as j where j.id = new.job_id and regate_internal._may_see(j.owner_id)
    for share;
    v := regate_internal._deployment_decision(new.job_id, new.environment);
    if (v.job).id is null then
        raise exception using errcode = 'RG008', message = format('no training job with id %s', new.job_id);
    elsif v.refusal is not null then
        raise exception using
            errcode = 'RG012',
            message = 'deployment refused: ' || v.refusal,
            hint = case
                when (v.job).status is distinct from 'completed' then 'Complete the job first: only its verdict decides.'
                else 'The verdict decides; admins record an override (regate.override_gate, audited) to deploy anyway.'
            end;
    end if;
    new.model_name := (v.job).model_name;
    new.model_version := (v.job).model_version;
    new.validation_result_id := (v.job).validation_result_id;
    new.validation_status := (v.job).validation_status;
    new.override_id := v.override_id;
    new.deployed_by := session_user;
    new.deployed_at := pg_catalog.now();
    return new;
end;
$$;

-- regate.deploy(job_id uuid, environment text, notes text default null) returns regate.deployments: record a
-- deployment of the job to the environment (an insert into regate.deployments): refused with RG012 unless the job
-- may deploy. The latest deployment per (model, environment) is its champion (regate.champions).
create or replace function regate.deploy(job_id uuid, environment text, notes text default null)
returns regate.deployments
language sql
security invoker
set search_path = pg_catalog, pg_temp
as $$
    insert into regate.deployments (job_id, environment, notes)
    values (deploy.job_id, deploy.environment, deploy.notes)
    returning *
$$;

-- regate.override_gate(job_id uuid, reason text, expires_at timestamptz default null) returns
-- regate.gate_overrides: admins only. Let the job deploy although its current verdict refuses it: records who,
-- when, why, which verdict and until when. Covers that verdict only: a later verdict that refuses again needs a
-- new override. Under a policy with override_requires_second_admin it takes effect once a second admin confirms
-- it (regate.confirm_override).
create or replace function regate.override_gate(job_id uuid, reason text, expires_at timestamptz default null)
returns regate.gate_overrides
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v record;
    v_row regate.gate_overrides;
    v_confirm boolean;
begin
    perform regate_internal._require_admin('override a gate');
    if reason is null or btrim(reason) = '' then
        raise exception using errcode = '22023', message = 'override_gate: reason must be a non-empty text saying why';
    end if;
    if expires_at is not null and expires_at <= pg_catalog.now() then
        raise exception using errcode = '22023', message = format(
            'override_gate: expires_at %s is not in the future', expires_at
        );
    end if;
    perform regate_internal._assert_trusted_triggers(
        array['regate.gate_overrides'::regclass, 'regate.alerts'::regclass], true
    );
    perform from regate.local_training_jobs as j where j.id = override_gate.job_id for share;
    if not found then
        raise exception using errcode = 'RG008', message = format('no training job with id %s', override_gate.job_id);
    end if;
    v := regate_internal._deployment_decision(override_gate.job_id, null);
    if v.refusal is null then
        raise exception using errcode = '22023', message = format(
            'override_gate: job %s may deploy already%s: nothing to override', override_gate.job_id,
            case when v.override_id is not null then format(' (override #%s is in effect)', v.override_id) else '' end
        );
    elsif (v.job).status is distinct from 'completed' then
        raise exception using errcode = '22023', message = 'override_gate: ' || v.refusal;
    end if;
    select coalesce(
        (select p.override_requires_second_admin from regate.gate_policies as p where p.model_name = (v.job).model_name),
        (select p.override_requires_second_admin from regate.gate_policies as p where p.model_name is null),
        false
    ) into v_confirm;
    insert into regate.gate_overrides (job_id, validation_result_id, reason, expires_at, requires_confirmation)
    values (override_gate.job_id, (v.job).validation_result_id, override_gate.reason, override_gate.expires_at, v_confirm)
    returning * into v_row;
    if v_confirm then
        raise notice 'override #% takes effect when a second admin confirms it: select regate.confirm_override(%)',
            v_row.id, v_row.id;
    else
        -- an overridden run is accepted: a rolling reference may use it
        perform regate_internal._note_acceptance(
            (v.job).id, (v.job).model_name, (v.job).model_version, (v.job).completed_at, true
        );
    end if;
    return v_row;
end;
$$;

-- regate.confirm_override(override_id bigint) returns regate.gate_override_confirmations: admins only, and not the
-- admin who overrode (the four-eyes rule). The override takes effect now (until it expires).
create or replace function regate.confirm_override(override_id bigint)
returns regate.gate_override_confirmations
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_override regate.gate_overrides;
    v_row regate.gate_override_confirmations;
begin
    perform regate_internal._require_admin('confirm an override');
    perform regate_internal._assert_trusted_triggers(
        array['regate.gate_override_confirmations'::regclass, 'regate.alerts'::regclass], true
    );
    select o.* into v_override from regate.gate_overrides as o where o.id = confirm_override.override_id for share;
    if v_override.id is null then
        raise exception using errcode = '22023', message = format(
            'confirm_override: no override with id %s', confirm_override.override_id
        );
    elsif not v_override.requires_confirmation then
        raise exception using errcode = '22023', message = format(
            'confirm_override: override #%s needs no confirmation: it is in effect', v_override.id
        );
    elsif v_override.overridden_by = session_user then
        raise exception using errcode = '42501', message = format(
            'confirm_override: override #%s was made by %s: a second, different admin must confirm it',
            v_override.id, session_user
        );
    elsif v_override.expires_at <= pg_catalog.now() then
        raise exception using errcode = '22023', message = format(
            'confirm_override: override #%s expired at %s', v_override.id, v_override.expires_at
        );
    elsif exists (select from regate.gate_override_confirmations as c where c.override_id = v_override.id) then
        raise exception using errcode = '22023', message = format(
            'confirm_override: override #%s is confirmed already', v_override.id
        );
    end if;
    insert into regate.gate_override_confirmations (override_id) values (v_override.id) returning * into v_row;
    perform regate_internal._note_acceptance(j.id, j.model_name, j.model_version, j.completed_at, true)
    from regate.local_training_jobs as j
    where j.id = v_override.job_id and j.validation_result_id is not distinct from v_override.validation_result_id;
    return v_row;
end;
$$;
