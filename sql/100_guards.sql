-- Guards: the trigger functions that keep the tables honest whoever writes them (110_triggers.sql attaches
-- them). Guards that only look at the row run as the caller (SECURITY INVOKER) and call only pg_catalog and
-- regate's public functions; those that read other rows or call internals are SECURITY DEFINER and refuse to fire
-- anywhere but where regate-db attached them.
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG003  metric rows are append-only
--   RG005  a job's config breaks a rule
--   RG006  verdicts are append-only; a job with verdicts cannot be deleted
--   RG009  validation_status / validation_result_id written by someone other than the gate
--   RG010  a SECURITY DEFINER trigger function fired where regate-db did not attach it
--   RG011  a job's owner changed, or a completed job's gate inputs changed or it left completed (non-admin)
--   42501  a table that only regate-db's functions write was written directly; a session without identity;
--          an update or delete of an append-only record of release control

-- Trigger function: the owner of a job is the session's identity (regate.current_identity()), set on insert
-- whatever the client sent, and never changes.
create or replace function regate_internal._jobs_identity()
returns trigger
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_op = 'INSERT' then
        new.owner_id := regate.current_identity();
        if new.owner_id is null then
            raise exception using errcode = '42501', message =
                'permission denied: this session has no identity (gateway mode without the end user''s claim)';
        end if;
    elsif new.owner_id is distinct from old.owner_id then
        raise exception using
            errcode = 'RG011',
            message = format('owner_id of job %s is set by the database and cannot change', old.id);
    end if;
    return new;
end;
$$;

-- Trigger function (before update of a completed job): its gate inputs (model_name, model_version, config) are
-- frozen and only an admin may move it out of completed, so that a tenant cannot re-roll its verdict.
create or replace function regate_internal._jobs_frozen()
returns trigger
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_what text;
begin
    if new.status is distinct from 'completed' then
        v_what := format('moving it out of completed (to %s)', new.status);
    elsif new.model_name is distinct from old.model_name or new.model_version is distinct from old.model_version then
        v_what := 'changing its model_name or model_version';
    elsif new.config is distinct from old.config then
        v_what := 'changing its config';
    elsif new.run_group is distinct from old.run_group or new.run_group_size is distinct from old.run_group_size then
        v_what := 'changing its run group';
    end if;
    if v_what is not null and not regate.is_admin() then
        raise exception using
            errcode = 'RG011',
            message = format('job %s is completed and validated: %s is for admins only', old.id, v_what),
            hint = 'Start a new job for a new run; an admin may reopen a job.';
    end if;
    return new;
end;
$$;

-- Trigger function: refuse a job whose config breaks a rule (RG005, naming the key and the rule).
create or replace function regate_internal._jobs_check_config()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_relid <> 'regate.local_training_jobs'::regclass then
        perform regate_internal._misfired('_jobs_check_config', tg_relid);
    end if;
    perform regate_internal._check_config(new.config);
    return new;
end;
$$;

-- Trigger function: updated_at on every update, completed_at when a job enters completed.
create or replace function regate_internal._jobs_timestamps()
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

-- Trigger function: a job's gate columns (validation_status, validation_result_id) are written by the gate
-- only (RG009), so a client cannot turn 'blocked' into 'passed'. Runs as the caller: inside regate-db's own
-- SECURITY DEFINER functions current_user is the owner of schema regate, who may write them, as may an admin
-- (a repair).
create or replace function regate_internal._jobs_guard_verdict()
returns trigger
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if
        current_user = (
            select pg_catalog.pg_get_userbyid(n.nspowner) from pg_catalog.pg_namespace as n where n.nspname = 'regate'
        )
        or regate.is_admin()
    then
        return new;
    end if;
    raise exception using
        errcode = 'RG009',
        message = format(
            'validation_status and validation_result_id of job %s are written by the regression gate only', new.id
        ),
        hint = 'Complete the job (status = ''completed''); an admin may re-validate it '
        || '(regate.validate_training_results).';
end;
$$;

-- Trigger function: a job with verdicts cannot be deleted (RG006): the audit trail stays.
create or replace function regate_internal._jobs_keep_verdicts()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_count bigint;
begin
    if tg_relid <> 'regate.local_training_jobs'::regclass then
        perform regate_internal._misfired('_jobs_keep_verdicts', tg_relid);
    end if;
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

-- Trigger function (after delete of a job): remove its entries of regate_internal.metric_names and metric_spans
-- (which have no foreign key, whose check would cost ingest a lookup per entry) and its purge record.
create or replace function regate_internal._jobs_forget_candidates()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_relid <> 'regate.local_training_jobs'::regclass then
        perform regate_internal._misfired('_jobs_forget_candidates', tg_relid);
    end if;
    delete from regate_internal.metric_names as n where n.job_id = old.id;
    delete from regate_internal.metric_spans as s where s.job_id = old.id;
    delete from regate_internal.metric_purges as p where p.job_id = old.id;  -- a purged job's record goes with it
    return null;
end;
$$;

-- Trigger function: metric rows are append-only (RG003). Two deletes are allowed: the cascade from deleting their
-- job (which itself is refused while the job has verdicts): then the job is already gone; and the retention purge
-- (sql/075_retention.sql), while regate_internal.metric_purges names this transaction for the row's job, which
-- only regate-db's own purge writes, and only for the span of its delete statement.
create or replace function regate_internal._metrics_append_only()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_relid <> 'regate.local_training_metrics'::regclass then
        perform regate_internal._misfired('_metrics_append_only', tg_relid);
    end if;
    if tg_op = 'DELETE' and exists (
        select from regate_internal.metric_purges as p
        where p.job_id = old.job_id and p.purging_xact = pg_catalog.pg_current_xact_id()
    ) then
        return old;
    end if;
    if tg_op = 'DELETE' and not exists (select from regate.local_training_jobs as j where j.id = old.job_id) then
        return old;
    end if;
    raise exception using
        errcode = 'RG003',
        message = format(
            'regate.local_training_metrics is append-only: %s of metric row %s (job %s) refused',
            lower(tg_op), old.id, old.job_id
        ),
        hint = 'Log a new row (a later step) instead; deleting a job without verdicts removes its metrics.';
end;
$$;

-- Trigger function: verdicts are append-only (RG006).
create or replace function regate_internal._results_append_only()
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

-- Trigger function (before update or delete): the audit records of release control (deployments, overrides and
-- their confirmations) are append-only for everyone, the schema's owner included (42501); the first argument says
-- what to do instead.
create or replace function regate_internal._append_only()
returns trigger
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    raise exception using
        errcode = '42501',
        message = format('%I.%I is append-only: %s refused', tg_table_schema, tg_table_name, lower(tg_op)),
        hint = tg_argv[0];
end;
$$;

-- Trigger function (before truncate): refused, with the SQLSTATE of its first argument (RG003 for metrics,
-- RG006 for verdicts, 42501 for the other tables).
create or replace function regate_internal._refuse_truncate()
returns trigger
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    raise exception using
        errcode = tg_argv[0],
        message = format(
            case when tg_argv[0] = '42501' then 'permission denied: %I.%I cannot be truncated'
            else '%I.%I is append-only: truncate refused' end,
            tg_table_schema, tg_table_name
        );
end;
$$;

-- Trigger function: a table that regate-db's functions write (verdicts, policies, the kill switch, baselines)
-- accepts a direct write only from the owner of schema regate (which is what those SECURITY DEFINER functions
-- run as), or, when the first argument is 'admin', from a regate admin; 42501 otherwise, naming the function to
-- use (the second argument). A GRANT ALL on the table therefore lends no write.
create or replace function regate_internal._guard_writes()
returns trigger
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if
        current_user = (
            select pg_catalog.pg_get_userbyid(n.nspowner) from pg_catalog.pg_namespace as n where n.nspname = 'regate'
        )
        or (tg_argv[0] = 'admin' and regate.is_admin())
    then
        return case when tg_op = 'DELETE' then old else new end;
    end if;
    raise exception using
        errcode = '42501',
        message = format(
            'permission denied: %I.%I is written by regate-db''s functions only (%s)', tg_table_schema, tg_table_name,
            tg_argv[1]
        );
end;
$$;
