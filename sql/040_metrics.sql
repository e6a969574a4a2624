-- Metrics: what a metric key and value may be, the ingest trigger that refuses bad metrics and feeds
-- regate_internal._metric_candidates, and the final metrics of a job.
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG001  a metric key or value is not acceptable
--   RG002  metrics logged for a job that is already completed
--   RG010  the ingest trigger function fired where regate-db did not attach it

-- regate_internal._metric_value_problem(key, value): NULL when (key, value) is an acceptable named metric, else a
-- sentence naming the key and the rule. Accepted: a non-empty key, and a number that fits a double, or one of
-- the strings "NaN", "Infinity", "-Infinity".
create or replace function regate_internal._metric_value_problem(p_key text, p_value jsonb)
returns text
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_number numeric;
begin
    if p_key is null or btrim(p_key) = '' then
        return 'metric names must be non-empty';
    end if;
    case coalesce(jsonb_typeof(p_value), 'null')
        when 'number' then
            v_number := p_value::numeric;
            -- Only extreme magnitudes can fall outside a double: test those by converting, in a
            -- subtransaction that ordinary values never pay for.
            if abs(v_number) > 1e300 or (v_number <> 0 and abs(v_number) < 1e-300) then
                begin
                    perform v_number::float8;
                exception when numeric_value_out_of_range then
                    return format(
                        'metric %s: %s is beyond double precision', p_key,
                        case when length(p_value::text) > 40 then to_char(v_number, '9.99EEEE') else p_value::text end
                    );
                end;
            end if;
            return null;
        when 'string' then
            if p_value #>> '{}' in ('NaN', 'Infinity', '-Infinity') then
                return null;
            end if;
        else
            null;
    end case;
    return format(
        'metric %s must be a number or one of the strings "NaN", "Infinity", "-Infinity", got %s %s',
        p_key, coalesce(jsonb_typeof(p_value), 'SQL NULL'), coalesce(p_value::text, '')
    );
end;
$$;

-- The fixed metric columns of local_training_metrics, in the order final metrics list them.
create or replace function regate_internal._metric_columns()
returns text[]
language sql
immutable
parallel safe
security invoker
as $$
    select array['epoch', 'train_loss', 'eval_loss', 'perplexity', 'learning_rate', 'grad_norm']
$$;

-- regate_internal._reserved_metric_keys(): the names a key of `metrics` may not take: every column of
-- local_training_metrics (the metric columns are logged in their own columns). tests/test_rules.py proves the list
-- equals the table's columns.
create or replace function regate_internal._reserved_metric_keys()
returns text[]
language sql
immutable
parallel safe
security invoker
as $$
    select array['id', 'job_id', 'step', 'metrics', 'recorded_at'] || regate_internal._metric_columns()
$$;

-- regate_internal._column_metrics(row): the fixed metric columns of a metric row that are not NULL, as (name, value).
-- Plain SQL, so that it inlines into the ingest trigger's queries.
create or replace function regate_internal._column_metrics(p_row regate.local_training_metrics)
returns table (metric_name text, value double precision)
language sql
immutable
parallel safe
security invoker
as $$
    select
        v.metric_name,
        v.value
    from (
        values
        ('epoch', p_row.epoch),
        ('train_loss', p_row.train_loss),
        ('eval_loss', p_row.eval_loss),
        ('perplexity', p_row.perplexity),
        ('learning_rate', p_row.learning_rate),
        ('grad_norm', p_row.grad_norm)
    ) as v (metric_name, value)
    where v.value is not null
$$;

-- regate_internal._checked_metric(job, step, key, value): the value of a named metric as a double; raises RG001 naming
-- the key and the rule when the key or the value is not acceptable. The slow path of regate_internal._metric_value.
create or replace function regate_internal._checked_metric(p_job_id uuid, p_step bigint, p_key text, p_value jsonb)
returns double precision
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_problem text;
begin
    if p_key = any(regate_internal._reserved_metric_keys()) then
        v_problem := format(
            'metric %s: "%s" is a column of regate.local_training_metrics; log it in that column, not in metrics',
            p_key, p_key
        );
    else
        v_problem := regate_internal._metric_value_problem(p_key, p_value);
    end if;
    if v_problem is not null then
        raise exception using
            errcode = 'RG001',
            message = 'invalid metrics: ' || v_problem,
            detail = format('job %s, step %s', p_job_id, p_step);
    end if;
    return regate_internal._jsonb_float8(p_value);
end;
$$;

-- regate_internal._metric_value(job, step, key, value): the value of a named metric as a double, or RG001. Plain SQL so
-- that it inlines into the ingest trigger's queries: ordinary keys and values pass a cheap test, only the rest
-- meets the exact rules of regate_internal._checked_metric.
create or replace function regate_internal._metric_value(p_job_id uuid, p_step bigint, p_key text, p_value jsonb)
returns double precision
language sql
immutable
parallel safe
security invoker
as $$
    select case
        when
            btrim(p_key) <> ''
            and p_key <> all(regate_internal._reserved_metric_keys())
            and case jsonb_typeof(p_value)
                when 'number' then abs(p_value::numeric) between 1e-300 and 1e300 or p_value::numeric = 0
                when 'string' then p_value #>> '{}' in ('NaN', 'Infinity', '-Infinity')
                else false
            end
            then regate_internal._jsonb_float8(p_value)
        else regate_internal._checked_metric(p_job_id, p_step, p_key, p_value)
    end
$$;

-- Trigger function (after insert, per statement): refuse bad metrics (RG001) and metrics of completed jobs
-- (RG002), then add the new rows' latest values to regate_internal._metric_candidates. The jobs are locked FOR
-- SHARE, in id order: a concurrent completion waits for this insert to commit (and then validates with its rows),
-- or this insert waits for the completion and is refused; a verdict never goes silently stale.
-- SECURITY DEFINER (it writes regate_internal), so it refuses to fire anywhere but where regate-db attached it,
-- and while a trigger regate-db did not install sits on the table (RG010). Row-level security has already
-- refused rows of other owners' jobs (WITH CHECK of the insert).
create or replace function regate_internal._metrics_after_insert()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_job record;
begin
    if tg_relid <> 'regate.local_training_metrics'::regclass or tg_level <> 'STATEMENT' or tg_op <> 'INSERT' then
        perform regate_internal._misfired('_metrics_after_insert', tg_relid);
    end if;
    perform regate_internal._assert_trusted_triggers(
        array['regate.local_training_metrics'::regclass, 'regate.local_training_jobs'::regclass], false
    );
    for v_job in
        select j.id, j.status
        from regate.local_training_jobs as j
        where j.id in (select n.job_id from new_rows as n)
        order by j.id
        for share of j
    loop
        if v_job.status = 'completed' then
            raise exception using
                errcode = 'RG002',
                message = format('job %s is completed: its metrics are final and were validated', v_job.id),
                hint = 'Log metrics before setting status to completed (or move the job out of completed first).';
        end if;
    end loop;

    -- A few rows (a trainer logging as it goes): every value is a candidate, no aggregation needed. Counting
    -- stops at 9 rows (a statement of 1M rows is not counted to the end); up to 8 rows the aggregation below
    -- costs more than the few extra candidate rows it would save (measured: docs/performance.md).
    if (select count(*) from (select from new_rows limit 9) as s) <= 8 then
        insert into regate_internal._metric_candidates (job_id, metric_name, value, step, metric_id)
        select
            n.job_id,
            v.metric_name,
            v.value,
            n.step,
            n.id
        from new_rows as n
        cross join lateral (
            select
                f.metric_name,
                f.value
            from regate_internal._column_metrics(n) as f
            union all
            select
                e.key,
                regate_internal._metric_value(n.job_id, n.step, e.key, e.value)
            from jsonb_each(n.metrics) as e
        ) as v (metric_name, value)
        where v.value is not null;
        return null;
    end if;
    -- A batch: only each (job, metric)'s latest value among the new rows, without sorting every (row, metric)
    -- pair: first the highest step of each (job, metric) (hash aggregates), then, among the few rows at that
    -- step, the highest id that carries the metric. Inserted, never updated: no row locks, no deadlocks.
    insert into regate_internal._metric_candidates (job_id, metric_name, value, step, metric_id)
    select distinct on (c.job_id, c.metric_name)
        c.job_id,
        c.metric_name,
        c.value,
        c.step,
        c.id
    from (
        select
            k.job_id,
            k.metric_name,
            n.step,
            n.id,
            case k.metric_name
                when 'epoch' then n.epoch
                when 'train_loss' then n.train_loss
                when 'eval_loss' then n.eval_loss
                when 'perplexity' then n.perplexity
                when 'learning_rate' then n.learning_rate
                when 'grad_norm' then n.grad_norm
                else regate_internal._jsonb_float8(n.metrics -> k.metric_name)
            end as value
        from (
            select
                n.job_id,
                e.key as metric_name,
                max(n.step) as step
            from new_rows as n
            cross join lateral jsonb_each(n.metrics) as e
            -- every value passes the rules here (RG001), whether or not it ends up a candidate
            where regate_internal._metric_value(n.job_id, n.step, e.key, e.value) is not null
            group by n.job_id, e.key
            union all
            select
                n.job_id,
                f.metric_name,
                max(n.step) as step
            from new_rows as n
            cross join lateral regate_internal._column_metrics(n) as f
            group by n.job_id, f.metric_name
        ) as k
        inner join new_rows as n on k.job_id = n.job_id and k.step = n.step
    ) as c
    where c.value is not null
    order by c.job_id asc, c.metric_name asc, c.id desc;
    return null;
end;
$$;

-- regate_internal._final_metrics(job_id): the job's final metrics (name -> value, as in extract_final_metrics)
-- and the step each came from (name -> step); NULLs when the job logged nothing. Index lookups only. Callers are
-- regate-db's SECURITY DEFINER functions, which check that the session may see the job.
create or replace function regate_internal._final_metrics(p_job_id uuid, out metrics jsonb, out steps jsonb)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
set extra_float_digits = 3
as $$
-- PL/pgSQL, not SQL: it runs on every completion, and PostgreSQL before 18 re-plans a SQL function per call.
begin
    -- A skip scan over the job's metric names (one index lookup each), then the newest candidate per name.
    with recursive names as (
        (
            select c.metric_name
            from regate_internal._metric_candidates as c
            where c.job_id = p_job_id
            order by c.metric_name
            limit 1
        )
        union all
        select (
            select c.metric_name
            from regate_internal._metric_candidates as c
            where c.job_id = p_job_id and c.metric_name > n.metric_name
            order by c.metric_name
            limit 1
        )
        from names as n
        where n.metric_name is not null
    )

    select
        jsonb_object_agg(n.metric_name, regate_internal._float8_jsonb(l.value)),
        jsonb_object_agg(n.metric_name, l.step)
    from names as n
    cross join lateral (
        select
            c.value,
            c.step
        from regate_internal._metric_candidates as c
        where c.job_id = p_job_id and c.metric_name = n.metric_name
        order by c.step desc, c.metric_id desc
        limit 1
    ) as l
    where n.metric_name is not null
    into metrics, steps;
end;
$$;

-- regate.extract_final_metrics(job_id uuid) returns jsonb: every metric of the job (fixed columns under their
-- own names, plus every key of metrics) with its value from the row with the highest (step, id) where it is
-- present and not NULL. NaN and infinities come back as strings. NULL when the job has no metric rows, and when
-- there is no such job or it is not the session's (an admin sees every job): the two look the same.
create or replace function regate.extract_final_metrics(job_id uuid)
returns jsonb
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
    select f.metrics
    from regate.local_training_jobs as j
    cross join lateral regate_internal._final_metrics(j.id) as f
    where j.id = extract_final_metrics.job_id and regate_internal._may_see(j.owner_id)
$$;
