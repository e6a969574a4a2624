-- Metrics: what a metric key and value may be, the ingest trigger that refuses bad metrics and records where a job's
-- metrics are (regate_internal.metric_spans, metric_names), and the final metrics of a job.
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

-- regate_internal._suspicious_values(metrics): false when every value of a metrics object is surely a number well
-- within a double, in one jsonpath test. It takes each value's .abs(), which is an error for anything but a number:
-- silent, the error makes the result NULL, which counts as suspicious (`is not false`); that is cheaper than asking
-- each value's .type(). The strings "NaN", "Infinity", "-Infinity" (rare) are suspicious here, and the exact rules
-- accept them. Plain SQL, so that it inlines into the ingest trigger's queries.
create or replace function regate_internal._suspicious_values(p_metrics jsonb)
returns boolean
language sql
immutable
parallel safe
security invoker
as $$
    select jsonb_path_exists(p_metrics, 'strict $.*.abs() ? (@ >= 1e300 || (@ <= 1e-300 && @ != 0))', '{}', true)
    is not false
$$;

-- regate_internal._suspicious_metrics(metrics): false when every key and value of a metrics object surely keeps the
-- rules (a non-blank key that is not a column of local_training_metrics; a number well within a double: see
-- regate_internal._suspicious_values); true sends the object to the exact rules of regate_internal._checked_metric
-- (so the messages are theirs). tests/test_rules.py proves the reserved names here equal
-- regate_internal._reserved_metric_keys(), and that the fast and the exact tests agree. Plain SQL, so that it
-- inlines into the ingest trigger's queries.
create or replace function regate_internal._suspicious_metrics(p_metrics jsonb)
returns boolean
language sql
immutable
parallel safe
security invoker
as $$
    select
        p_metrics ?| array[
            '', 'id', 'job_id', 'step', 'metrics', 'recorded_at', 'epoch', 'train_loss', 'eval_loss', 'perplexity',
            'learning_rate', 'grad_norm'
        ]
        or regate_internal._suspicious_values(p_metrics)
$$;

-- regate_internal._jsonb_union(jsonb): the union of JSON objects (the later value wins for a key): the ingest
-- trigger gathers the metric names of many rows with it, one per (job, span), without listing each row's names.
-- (noqa: sqlfluff reads CREATE AGGREGATE name(args) ( as a function call.)
create or replace aggregate regate_internal._jsonb_union(jsonb) (  -- noqa: LT01
    sfunc = pg_catalog.jsonb_concat,
    stype = jsonb,
    initcond = '{}'
);

-- regate_internal._column_names(row): the names of the fixed metric columns of a metric row that are not NULL, as
-- an array. Plain SQL, so that it inlines into the ingest trigger's query as one expression.
create or replace function regate_internal._column_names(p_row regate.local_training_metrics)
returns text[]
language sql
immutable
parallel safe
security invoker
as $$
    select array_remove(array[
        case when p_row.epoch is not null then 'epoch' end,
        case when p_row.train_loss is not null then 'train_loss' end,
        case when p_row.eval_loss is not null then 'eval_loss' end,
        case when p_row.perplexity is not null then 'perplexity' end,
        case when p_row.learning_rate is not null then 'learning_rate' end,
        case when p_row.grad_norm is not null then 'grad_norm' end
    ], null)
$$;

-- regate_internal._row_metric_names(row): the names of the metrics a metric row logs: its fixed metric columns
-- that are not NULL and the keys of metrics. Plain SQL, so that it inlines into the ingest trigger's query.
create or replace function regate_internal._row_metric_names(p_row regate.local_training_metrics)
returns setof text
language sql
immutable
parallel safe
security invoker
as $$
    select k.key from jsonb_object_keys(p_row.metrics) as k (key)
    union all
    select f.metric_name from regate_internal._column_metrics(p_row) as f
$$;

-- Trigger function (after insert, per statement): refuse bad metrics (RG001) and metrics of completed jobs
-- (RG002), and record in regate_internal.metric_spans / metric_names the metric names that the new rows log for
-- the first time within their span of 1024 steps (a trainer logs the same names step after step: most statements
-- record nothing). The jobs are locked FOR SHARE: a concurrent completion waits for this insert to commit (and then
-- validates with its rows), or this insert waits for the completion and is refused; a verdict never goes silently
-- stale. Nothing is remembered between statements: every statement reads the jobs and the spans it logs into, so
-- no state a client can write or roll back (settings, savepoints) can let a row into a completed job or keep a
-- name from its span.
-- SECURITY DEFINER (it reads and writes regate_internal), so it refuses to fire anywhere but where regate-db
-- attached it, and while a trigger regate-db did not install sits on the table (RG010; checked at every
-- statement, see below). Row-level security has already refused rows of other owners' jobs (WITH CHECK).
create or replace function regate_internal._metrics_after_insert()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_completed uuid;
    v_is_completed boolean;
    v_suspicious boolean;
    v_only_ours boolean;
    -- the (job, span)s whose names no single row of metric_spans covers yet, each with its names as the keys of
    -- a JSON object (the rows' metrics keys and the names of the fixed columns they set); NULL when there is none.
    -- A one-row statement only says whether its names are new (v_row_new): its query stays small (the executor
    -- sets up every expression of a query on every run, used or not), and PL/pgSQL expands every array it assigns.
    v_row_new boolean;
    v_job_ids uuid[];
    v_spans bigint[];
    v_names jsonb[];
begin
    if tg_relid <> 'regate.local_training_metrics'::regclass or tg_level <> 'STATEMENT' or tg_op <> 'INSERT' then
        perform regate_internal._misfired('_metrics_after_insert', tg_relid);
    end if;
    -- A statement of one row (a trainer logging as it goes; executemany sends one statement per row) takes one
    -- query: lock its job FOR SHARE and read its status, test its values (one jsonpath test), and test whether its
    -- metric names are recorded for its (job, span). A statement of more rows gets no row here (the test of a
    -- second row comes first and gates the rest) and takes the set-based query below, which locks its jobs in id
    -- order.
    select
        j.status = 'completed',
        regate_internal._suspicious_metrics(n.metrics),
        not exists (
            select from regate_internal.metric_spans as s
            where
                s.job_id = n.job_id and s.span = n.step / 1024
                and n.metrics - s.seen = '{}'::jsonb and regate_internal._column_names(n) <@ s.seen
        ),
        n.job_id,
        coalesce(
            (select true from regate.local_training_metrics as m where false),
            regate_internal._only_regate_triggers_when_planned(
                array['regate.local_training_metrics'::regclass, 'regate.local_training_jobs'::regclass], false
            )
        )
    into v_is_completed, v_suspicious, v_row_new, v_completed, v_only_ours
    from new_rows as n
    inner join regate.local_training_jobs as j on n.job_id = j.id
    where not exists (select from new_rows offset 1)
    for share of j;
    if not found then
        -- Set-based, per (job, span): one pass over the rows gathers each group's names (the union of its rows'
        -- metrics objects, regate_internal._jsonb_union, and whether any row sets each fixed column) and tests
        -- its rows' values; the keys are tested once per group, on the union (a key is in the union exactly when
        -- a row logs it), and so is whether a span row covers the group's names. Not row by row and name by name:
        -- a COPY of 10,000 rows into new spans costs ~1.3 µs per row for its names.
        with groups as materialized (
            select
                n.job_id,
                n.step / 1024 as span,
                regate_internal._jsonb_union(n.metrics) as metrics,
                bool_or(regate_internal._suspicious_values(n.metrics)) as suspicious,
                bool_or(n.epoch is not null) as epoch,
                bool_or(n.train_loss is not null) as train_loss,
                bool_or(n.eval_loss is not null) as eval_loss,
                bool_or(n.perplexity is not null) as perplexity,
                bool_or(n.learning_rate is not null) as learning_rate,
                bool_or(n.grad_norm is not null) as grad_norm
            from new_rows as n
            group by n.job_id, n.step / 1024
        ),

        named as (
            select
                g.job_id,
                g.span,
                g.suspicious or regate_internal._suspicious_metrics(g.metrics) as suspicious,
                g.metrics || jsonb_object(c.names, c.names) as names
            from groups as g
            cross join lateral (
                select array_remove(array[
                    case when g.epoch then 'epoch' end,
                    case when g.train_loss then 'train_loss' end,
                    case when g.eval_loss then 'eval_loss' end,
                    case when g.perplexity then 'perplexity' end,
                    case when g.learning_rate then 'learning_rate' end,
                    case when g.grad_norm then 'grad_norm' end
                ], null) as names
            ) as c
        ),

        uncovered as (
            select
                g.job_id,
                g.span,
                g.names
            from named as g
            where not exists (
                select from regate_internal.metric_spans as s
                where s.job_id = g.job_id and s.span = g.span and g.names - s.seen = '{}'::jsonb
            )
        )

        select
            (
                select j.id
                from (
                    select
                        j.id,
                        j.status
                    from regate.local_training_jobs as j
                    where j.id in (select g.job_id from groups as g)
                    order by j.id
                    for share of j
                    offset 0  -- a fence: the filter below must not reach this query, which locks every job
                ) as j
                where j.status = 'completed'
                limit 1
            ),
            exists (select from named as g where g.suspicious),
            (select array_agg(u.job_id) from uncovered as u),
            (select array_agg(u.span) from uncovered as u),
            (select array_agg(u.names) from uncovered as u),
            coalesce(
                (select true from regate.local_training_metrics as m, regate.local_training_jobs as j where false),
                regate_internal._only_regate_triggers_when_planned(
                    array['regate.local_training_metrics'::regclass, 'regate.local_training_jobs'::regclass], false
                )
            )
        into v_completed, v_suspicious, v_job_ids, v_spans, v_names, v_only_ours;
        v_is_completed := v_completed is not null;
    end if;
    -- A foreign trigger on these tables would run as every tenant who logs metrics: refuse to log next to one
    -- (before any other refusal). While only regate-db's triggers sit on them, the answer is a constant of this
    -- session's cached plan of the query above (see regate_internal._only_regate_triggers_when_planned: any
    -- change to the tables' triggers re-plans it), so every statement is checked at no cost; otherwise the exact
    -- check runs. Nothing a client can set takes part.
    if not v_only_ours then
        perform regate_internal._assert_trusted_triggers(
            array['regate.local_training_metrics'::regclass, 'regate.local_training_jobs'::regclass], false
        );
    end if;
    if v_is_completed then
        raise exception using
            errcode = 'RG002',
            message = format('job %s is completed: its metrics are final and were validated', v_completed),
            hint = 'Log metrics before setting status to completed (or move the job out of completed first).';
    end if;
    if v_suspicious then  -- the exact rules, and their messages
        perform regate_internal._checked_metric(n.job_id, n.step, e.key, e.value)
        from new_rows as n
        cross join lateral jsonb_each(n.metrics) as e
        where regate_internal._suspicious_metrics(n.metrics);
    end if;
    if v_row_new then
        select
            array[n.job_id],
            array[n.step / 1024],
            array[n.metrics || jsonb_object(regate_internal._column_names(n), regate_internal._column_names(n))]
        into v_job_ids, v_spans, v_names
        from new_rows as n;
    elsif v_names is null then
        return null;
    end if;
    -- Record the names of each (job, span) that no single row of metric_spans covers yet: a new row with them and
    -- every name already recorded for that (job, span), so that from now on one row covers the span (what the
    -- tests above look for); and the names new to their job. A name is recorded only once it kept the key rules:
    -- a blank key (only spaces; the empty key is suspicious above) is never recorded, so it always comes here and
    -- is refused, naming the first step that logs it. Nothing here is unique, so no insert waits for another
    -- session's.
    with named as (
        select
            g.job_id,
            g.span,
            array(
                select k.metric_name
                from jsonb_object_keys(g.names) as k (metric_name)
                where
                    btrim(k.metric_name) <> ''
                    or regate_internal._checked_metric(
                        g.job_id,
                        (
                            select min(n.step) from new_rows as n
                            where n.job_id = g.job_id and n.step / 1024 = g.span and n.metrics ? k.metric_name
                        ),
                        k.metric_name,
                        null
                    ) is null
            ) as names
        from unnest(v_job_ids, v_spans, v_names) as g (job_id, span, names)
    ),

    spans as (
        insert into regate_internal.metric_spans (job_id, span, seen)
        select
            g.job_id,
            g.span,
            array(
                select u.metric_name from unnest(g.names) as u (metric_name)
                union
                select x.metric_name
                from regate_internal.metric_spans as s
                cross join lateral unnest(s.seen) as x (metric_name)
                where s.job_id = g.job_id and s.span = g.span
                order by 1
            )
        from named as g
        where not exists (
            select from regate_internal.metric_spans as s
            where s.job_id = g.job_id and s.span = g.span and s.seen @> g.names
        )
        returning job_id, seen
    )

    insert into regate_internal.metric_names (job_id, metric_name)
    select distinct
        s.job_id,
        x.metric_name
    from spans as s
    cross join lateral unnest(s.seen) as x (metric_name)
    where not exists (
        select from regate_internal.metric_names as m
        where m.job_id = s.job_id and m.metric_name = x.metric_name
    );
    return null;
end;
$$;

-- regate_internal._row_value(metric, epoch, train_loss, eval_loss, perplexity, learning_rate, grad_norm, metrics):
-- the value a metric row holds for a metric (a fixed column, or a key of `metrics`), NULL when it holds none; and
-- regate_internal._row_logs(...): whether it holds one. They take the row's columns, not the row, so that they inline
-- into an index scan's filter as plain column references.
create or replace function regate_internal._row_value(
    p_metric text,
    p_epoch double precision,
    p_train_loss double precision,
    p_eval_loss double precision,
    p_perplexity double precision,
    p_learning_rate double precision,
    p_grad_norm double precision,
    p_metrics jsonb
)
returns double precision
language sql
immutable
parallel safe
security invoker
as $$
    select case p_metric
        when 'epoch' then p_epoch
        when 'train_loss' then p_train_loss
        when 'eval_loss' then p_eval_loss
        when 'perplexity' then p_perplexity
        when 'learning_rate' then p_learning_rate
        when 'grad_norm' then p_grad_norm
        else regate_internal._jsonb_float8(p_metrics -> p_metric)
    end
$$;

create or replace function regate_internal._row_logs(
    p_metric text,
    p_epoch double precision,
    p_train_loss double precision,
    p_eval_loss double precision,
    p_perplexity double precision,
    p_learning_rate double precision,
    p_grad_norm double precision,
    p_metrics jsonb
)
returns boolean
language sql
immutable
parallel safe
security invoker
as $$
    select case p_metric
        when 'epoch' then p_epoch is not null
        when 'train_loss' then p_train_loss is not null
        when 'eval_loss' then p_eval_loss is not null
        when 'perplexity' then p_perplexity is not null
        when 'learning_rate' then p_learning_rate is not null
        when 'grad_norm' then p_grad_norm is not null
        else p_metrics ? p_metric
    end
$$;

-- regate_internal._final_value_row(job_id, metric): the final value of one metric of a job (from the row with the
-- highest (step, id) where it is present and not NULL), its step and that row's id; no row when the job never
-- logged it. One backward index scan within the newest span (1024 steps) that holds the metric: its cost is
-- bounded by the rows of one span, however long the job and however long ago the metric was last logged.
create or replace function regate_internal._final_value_row(p_job_id uuid, p_metric text)
returns table (value double precision, step bigint, metric_id bigint)
language sql
stable
security invoker
as $$
    select
        regate_internal._row_value(p_metric, m.epoch, m.train_loss, m.eval_loss, m.perplexity, m.learning_rate, m.grad_norm, m.metrics),
        m.step,
        m.id
    from (
        -- a backward scan of the job's spans that stops at the newest one holding the metric (order by + limit:
        -- max() would let the planner read every span of the job, ~1,000 for a 1M-step job, for every metric)
        select s.span
        from regate_internal.metric_spans as s
        where s.job_id = p_job_id and p_metric = any(s.seen)
        order by s.span desc
        limit 1
    ) as s
    cross join lateral (
        select m.*
        from regate.local_training_metrics as m
        where
            m.job_id = p_job_id
            and m.step >= s.span * 1024
            and m.step <= s.span * 1024 + 1023
            and regate_internal._row_logs(p_metric, m.epoch, m.train_loss, m.eval_loss, m.perplexity, m.learning_rate, m.grad_norm, m.metrics)
        order by m.step desc, m.id desc
        limit 1
    ) as m
$$;

-- regate_internal._final_metrics(job_id): the job's final metrics (name -> value, as in extract_final_metrics)
-- and the step each came from (name -> step); NULLs when the job logged nothing. Index lookups only: the job's
-- metric names, then one bounded lookup each (regate_internal._final_value_row). Callers are regate-db's
-- SECURITY DEFINER functions, which check that the session may see the job.
create or replace function regate_internal._final_metrics(p_job_id uuid, out metrics jsonb, out steps jsonb)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
set extra_float_digits = 3
-- The cached (generic) plan must read each lookup by a backward index scan that stops at its first row: with the
-- job as a parameter the planner expects a job to have a span or two, and would otherwise fetch all of them
-- (~1,000 for a 1M-step job) and sort them, for every metric (measured: 1M-row completions 2.3x the 1k-row ones).
set enable_bitmapscan = off
set enable_sort = off
as $$
-- PL/pgSQL, not SQL: it runs on every completion, and PostgreSQL before 18 re-plans a SQL function per call.
begin
    -- The job's newest rows, read once: a metric that one of them holds has its final value there, in the newest
    -- of them that holds it (they are a prefix of the job's rows in (step, id) order). Only a metric none of them
    -- holds takes its own bounded lookup (regate_internal._final_value_row). One backward scan for most metrics
    -- instead of one each: a btree scan checks every entry of the index page it starts on (~200 of this table),
    -- which made the lookups 17% of a completion's instructions.
    with recent as materialized (
        select m.epoch, m.train_loss, m.eval_loss, m.perplexity, m.learning_rate, m.grad_norm, m.metrics, m.step, m.id
        from regate.local_training_metrics as m
        where m.job_id = p_job_id
        order by m.step desc, m.id desc
        limit 32
    )

    select
        jsonb_object_agg(n.metric_name, regate_internal._float8_jsonb(f.value)),
        jsonb_object_agg(n.metric_name, f.step)
    from (
        select distinct m.metric_name
        from regate_internal.metric_names as m
        where m.job_id = p_job_id
    ) as n
    left join lateral (
        select
            regate_internal._row_value(n.metric_name, w.epoch, w.train_loss, w.eval_loss, w.perplexity, w.learning_rate, w.grad_norm, w.metrics) as value,
            w.step
        from recent as w
        where regate_internal._row_logs(n.metric_name, w.epoch, w.train_loss, w.eval_loss, w.perplexity, w.learning_rate, w.grad_norm, w.metrics)
        order by w.step desc, w.id desc
        limit 1
    ) as w on true
    -- offset 0: the value becomes a plain column, so that _float8_jsonb inlines (an argument that is an expression
    -- used several times in its body would keep it from inlining: a function call per metric)
    cross join lateral (
        select
            w.value,
            w.step
        where w.step is not null
        union all
        select
            r.value,
            r.step
        from regate_internal._final_value_row(p_job_id, n.metric_name) as r
        where w.step is null
        offset 0
    ) as f
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
