-- Retention: the admins' purge of raw metric rows (regate.purge_metrics, regate-db purge). For each finished job
-- older than a cutoff it deletes the metric rows that carry none of the job's final values, in calls of bounded
-- size. It keeps, for every metric of the job, the row its final value comes from (highest step, then highest id:
-- the rule of regate_internal._final_metrics), and the job's entries of regate_internal.metric_names and
-- metric_spans (which still lead to those rows), so that regate.extract_final_metrics, re-validation,
-- promotion to baselines, champion and rolling references and run groups answer exactly as before. It never
-- deletes a job, a verdict, a baseline or anything else.
--
-- The metrics table stays append-only for everyone (RG003, regate_internal._metrics_append_only): the guard lets a
-- delete through only in the transaction that regate_internal.metric_purges.purging_xact names for that job, and
-- regate_internal._purge_job sets it before its delete and clears it after, inside one call of a SECURITY DEFINER
-- function. Nothing a client can write (settings, its own tables, arguments) opens that door.
--
-- Error codes raised here (see docs/sql-reference.md):
--   42501  a non-admin called purge_metrics or purge_metrics_preview
--   22023  completed_before not in the past, a blank model_name, batch_jobs or batch_rows below 1

-- regate_internal._finished_at(status, completed_at, updated_at): when a job finished, for retention: a completed
-- job at completed_at (updated_at if an admin cleared it), a failed or cancelled one at its last change
-- (updated_at); NULL for a job that has not finished (pending, queued, running), which no purge touches. Plain SQL
-- so that it inlines into the queries that pick jobs.
create or replace function regate_internal._finished_at(
    p_status text, p_completed_at timestamptz, p_updated_at timestamptz
)
returns timestamptz
language sql
immutable
parallel safe
security invoker
as $$
    select case
        when p_status = 'completed' then coalesce(p_completed_at, p_updated_at)
        when p_status in ('failed', 'cancelled') then p_updated_at
    end
$$;

-- regate_internal._final_rows(job_id): for each metric of the job, where its final value comes from: the metric
-- name, the step and the id of the metric row (highest step, then highest row id: the rule of
-- regate_internal._final_metrics, by the same lookup). Index lookups only. Several metrics may come from one row.
create or replace function regate_internal._final_rows(p_job_id uuid)
returns table (metric_name text, step bigint, metric_id bigint)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
set enable_bitmapscan = off  -- backward index scans, as in regate_internal._final_metrics
set enable_sort = off
as $$
begin
    return query
    select
        n.metric_name,
        f.step,
        f.metric_id
    from (
        select distinct m.metric_name
        from regate_internal.metric_names as m
        where m.job_id = p_job_id
    ) as n
    cross join lateral regate_internal._final_value_row(p_job_id, n.metric_name) as f;
end;
$$;

-- regate_internal._check_purge(function, completed_before, model_name, batch_jobs, batch_rows): raise 42501 unless
-- the session is a regate admin, 22023 for a cutoff that is not in the past (NULL included), a blank model_name, or
-- a batch size below 1; the messages name the function.
create or replace function regate_internal._check_purge(
    p_function text, p_completed_before timestamptz, p_model_name text, p_batch_jobs integer, p_batch_rows bigint
)
returns void
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform regate_internal._require_admin(
        case when p_function = 'purge_metrics' then 'purge metrics' else 'preview a purge of metrics' end
    );
    if p_completed_before is null or not p_completed_before < now() then
        raise exception using
            errcode = '22023',
            message = format(
                '%s: completed_before must be a time in the past, got %s', p_function,
                coalesce(p_completed_before::text, 'NULL')
            ),
            hint = 'Jobs that finished before it are purged, e.g. completed_before => now() - interval ''90 days''.';
    end if;
    if p_model_name is not null and btrim(p_model_name) = '' then
        raise exception using
            errcode = '22023',
            message = format('%s: model_name must be NULL (every model) or a non-empty name', p_function);
    end if;
    if p_batch_jobs is null or p_batch_jobs < 1 then
        raise exception using
            errcode = '22023',
            message = format(
                '%s: batch_jobs must be at least 1, got %s', p_function, coalesce(p_batch_jobs::text, 'NULL')
            );
    end if;
    if p_batch_rows is null or p_batch_rows < 1 then
        raise exception using
            errcode = '22023',
            message = format(
                '%s: batch_rows must be at least 1, got %s', p_function, coalesce(p_batch_rows::text, 'NULL')
            );
    end if;
end;
$$;

-- regate_internal._purge_job(job_id, completed_before, max_rows): delete, of one job that the caller holds locked,
-- at most max_rows metric rows that carry none of its final values; record it in regate_internal.metric_purges
-- (complete when none is left). Returns (rows deleted, complete, rows kept: NULL unless complete).
-- The door of the append-only guard is open only from the upsert of metric_purges to the update right after the
-- delete of the metric rows: for that one statement.
create or replace function regate_internal._purge_job(
    p_job_id uuid,
    p_completed_before timestamptz,
    p_max_rows bigint,
    out rows_deleted bigint,
    out complete boolean,
    out rows_kept bigint
)
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_ids bigint [];
begin
    -- What stays: the row of every metric's final value. The job is locked by the caller (no new rows can commit
    -- for it meanwhile), and the kept rows never change: every statement below agrees on them.
    select coalesce(array_agg(f.metric_id), '{}') into v_ids
    from regate_internal._final_rows(p_job_id) as f;

    -- Open the door for this job, in this transaction.
    insert into regate_internal.metric_purges as p (job_id, completed_before, purging_xact)
    values (p_job_id, p_completed_before, pg_current_xact_id())
    on conflict (job_id) do update
    set completed_before = excluded.completed_before, purging_xact = excluded.purging_xact;

    -- By ctid (a TID scan, no index descent per row): the rows were found by this statement's own snapshot, which
    -- keeps them from being pruned, and nothing else deletes a locked job's rows.
    delete from regate.local_training_metrics as m
    where m.ctid = any(array(
        select d.ctid
        from regate.local_training_metrics as d
        where d.job_id = p_job_id and d.id <> all(v_ids)
        limit p_max_rows
    ));
    get diagnostics rows_deleted = row_count;

    -- Close it before anything else runs.
    update regate_internal.metric_purges as p
    set purging_xact = null
    where p.job_id = p_job_id;

    complete := not exists (
        select from regate.local_training_metrics as d
        where d.job_id = p_job_id and d.id <> all(v_ids)
    );
    if complete then
        select count(distinct k.id) into rows_kept from unnest(v_ids) as k (id);
    end if;
    update regate_internal.metric_purges as p
    set
        rows_deleted = p.rows_deleted + _purge_job.rows_deleted,
        complete = _purge_job.complete,
        rows_kept = _purge_job.rows_kept,
        purged_by = session_user,
        purged_at = case when _purge_job.complete then now() end
    where p.job_id = p_job_id;
end;
$$;

-- regate.purge_metrics(completed_before, model_name, batch_jobs, batch_rows) returns (jobs_purged, rows_deleted,
-- rows_kept, jobs_remaining): one batch of the retention purge. Takes the oldest finished jobs
-- (completed, failed, cancelled: regate_internal._finished_at) that finished before completed_before, of model_name
-- (NULL: every model), whose purge is not complete, at most batch_jobs of them, and deletes their metric rows that
-- carry no final value, at most batch_rows rows per call: a job larger than that is finished by the next calls. rows_kept counts the
-- rows kept of the jobs whose purge completed in this call. Jobs are locked FOR NO KEY UPDATE SKIP LOCKED: a job a
-- trainer is logging into or someone is changing is skipped (and counted in jobs_remaining), never waited for;
-- while a job is purged, an insert of metrics for it or an update of it waits for this transaction. Takes no table
-- locks beyond those of any DELETE. Call it until jobs_remaining is 0, each call in its own transaction (regate-db
-- purge does).
-- Raises 42501 for non-admins, 22023 for bad arguments.
create or replace function regate.purge_metrics(
    completed_before timestamptz,
    model_name text default null,
    batch_jobs integer default 100,
    batch_rows bigint default 100000,
    out jobs_purged integer,
    out rows_deleted bigint,
    out rows_kept bigint,
    out jobs_remaining bigint
)
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_jobs uuid [];
    v_job uuid;
    v_done record;
begin
    perform regate_internal._check_purge(
        'purge_metrics', purge_metrics.completed_before, purge_metrics.model_name, purge_metrics.batch_jobs,
        purge_metrics.batch_rows
    );
    perform regate_internal._assert_trusted_triggers(array[
        'regate.local_training_metrics'::regclass, 'regate_internal.metric_purges'::regclass
    ], true);
    jobs_purged := 0;
    rows_deleted := 0;
    rows_kept := 0;
    select coalesce(array_agg(s.id order by s.finished_at, s.id), '{}') into v_jobs
    from (
        select
            j.id,
            regate_internal._finished_at(j.status, j.completed_at, j.updated_at) as finished_at
        from regate.local_training_jobs as j
        where
            regate_internal._finished_at(j.status, j.completed_at, j.updated_at) < purge_metrics.completed_before
            and (purge_metrics.model_name is null or j.model_name = purge_metrics.model_name)
            and not exists (select from regate_internal.metric_purges as p where p.job_id = j.id and p.complete)
        order by 2, j.id
        limit purge_metrics.batch_jobs
        for no key update of j skip locked
    ) as s;
    foreach v_job in array v_jobs loop
        exit when purge_metrics.rows_deleted >= purge_metrics.batch_rows;
        v_done := regate_internal._purge_job(
            v_job, purge_metrics.completed_before, purge_metrics.batch_rows - purge_metrics.rows_deleted
        );
        purge_metrics.rows_deleted := purge_metrics.rows_deleted + v_done.rows_deleted;
        if v_done.complete then
            jobs_purged := jobs_purged + 1;
            purge_metrics.rows_kept := purge_metrics.rows_kept + v_done.rows_kept;
        end if;
    end loop;
    select count(*) into jobs_remaining
    from regate.local_training_jobs as j
    where
        regate_internal._finished_at(j.status, j.completed_at, j.updated_at) < purge_metrics.completed_before
        and (purge_metrics.model_name is null or j.model_name = purge_metrics.model_name)
        and not exists (select from regate_internal.metric_purges as p where p.job_id = j.id and p.complete);
end;
$$;

-- regate.purge_metrics_preview(completed_before, model_name) returns (jobs, rows_to_delete, rows_to_keep): what
-- regate.purge_metrics with the same arguments would do, called until done: the jobs it would purge, the metric
-- rows it would delete and those it would keep. Reads only (regate-db purge --dry-run). Raises 42501 for
-- non-admins, 22023 for bad arguments.
create or replace function regate.purge_metrics_preview(
    completed_before timestamptz,
    model_name text default null,
    out jobs bigint,
    out rows_to_delete bigint,
    out rows_to_keep bigint
)
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    perform regate_internal._check_purge(
        'purge_metrics_preview', purge_metrics_preview.completed_before, purge_metrics_preview.model_name, 1, 1
    );
    select count(*), coalesce(sum(t.total - k.kept), 0), coalesce(sum(k.kept), 0)
    into jobs, rows_to_delete, rows_to_keep
    from regate.local_training_jobs as j
    cross join lateral (
        select count(*) as total from regate.local_training_metrics as m where m.job_id = j.id
    ) as t
    cross join lateral (
        select count(distinct f.metric_id) as kept from regate_internal._final_rows(j.id) as f
    ) as k
    where
        regate_internal._finished_at(j.status, j.completed_at, j.updated_at) < purge_metrics_preview.completed_before
        and (purge_metrics_preview.model_name is null or j.model_name = purge_metrics_preview.model_name)
        and not exists (select from regate_internal.metric_purges as p where p.job_id = j.id and p.complete);
end;
$$;

-- regate.metrics_purge_status(job_id) returns (complete, purged_at, purged_by, completed_before, rows_deleted,
-- rows_kept): whether the job's raw metric rows were purged (complete), or are being purged (complete false), by
-- whom and when, under which cutoff, how many rows went and how many stayed (the rows of its final values); all
-- NULL when they were never purged, and when there is no such job or it is not the session's (an admin sees every
-- job). Any reader may call it.
create or replace function regate.metrics_purge_status(
    job_id uuid,
    out complete boolean,
    out purged_at timestamptz,
    out purged_by text,
    out completed_before timestamptz,
    out rows_deleted bigint,
    out rows_kept bigint
)
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
    select p.complete, p.purged_at, p.purged_by, p.completed_before, p.rows_deleted, p.rows_kept
    from regate.local_training_jobs as j
    inner join regate_internal.metric_purges as p on j.id = p.job_id
    where j.id = metrics_purge_status.job_id and regate_internal._may_see(j.owner_id)
$$;
