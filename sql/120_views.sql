-- Views over the verdicts. Re-created as a whole on every change (drop first: columns may move). Every view is
-- security_invoker: it shows what the querying role may see of the tables below it (row-level security: its
-- own rows; an admin's: all).
--
-- Error codes raised here: none.

drop view if exists regate.validation_checks;
drop view if exists regate.validation_history;
drop view if exists regate.champions;
drop view if exists regate.override_status;
drop view if exists regate.blocked_jobs;
drop view if exists regate.gate_stats;

-- regate.gate_stats_for(since timestamptz default null, until timestamptz default null, by_day boolean default
-- false): the gate's figures over verdicts created in [since, until): per model and overall (model_name NULL);
-- with by_day, per model and day and overall per day (the day in the session's time zone). The verdicts are
-- counted by status (validations = passed + warning + failed + no_baselines + errors); blocked counts the
-- verdicts that blocked, whatever their status and whether or not they were overridden later; not_run the jobs
-- completed while the gate was off for them; overrides the overrides recorded. Rates: pass_rate = passed /
-- validations, override_rate = overrides / verdicts that failed or blocked (the false-positive signal),
-- error_rate = errors / validations (NULL when the denominator is 0). What the session may see: its own
-- verdicts, an admin's all.
create or replace function regate.gate_stats_for(
    since timestamptz default null, until timestamptz default null, by_day boolean default false
)
returns table (
    model_name text,
    day date,
    validations bigint,
    passed bigint,
    warning bigint,
    failed bigint,
    no_baselines bigint,
    errors bigint,
    blocked bigint,
    not_run bigint,
    overrides bigint,
    pass_rate double precision,
    override_rate double precision,
    error_rate double precision,
    last_validation_at timestamptz
)
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    with events as (
        select
            r.model_name, r.created_at as at, 'verdict' as what, r.status, r.blocked
        from regate.validation_results as r
        where
            (gate_stats_for.since is null or r.created_at >= gate_stats_for.since)
            and (gate_stats_for.until is null or r.created_at < gate_stats_for.until)
        union all
        select j.model_name, j.completed_at, 'not_run', null, false
        from regate.local_training_jobs as j
        where
            j.validation_status = 'not_run'
            and (gate_stats_for.since is null or j.completed_at >= gate_stats_for.since)
            and (gate_stats_for.until is null or j.completed_at < gate_stats_for.until)
        union all
        select j.model_name, o.created_at, 'override', null, false
        from regate.gate_overrides as o
        inner join regate.local_training_jobs as j on o.job_id = j.id
        where
            (gate_stats_for.since is null or o.created_at >= gate_stats_for.since)
            and (gate_stats_for.until is null or o.created_at < gate_stats_for.until)
    ),
    counted as (
        select
            e.model_name,
            case when gate_stats_for.by_day then e.at::date end as day,
            count(*) filter (where e.what = 'verdict') as validations,
            count(*) filter (where e.status = 'passed') as passed,
            count(*) filter (where e.status = 'warning') as warning,
            count(*) filter (where e.status = 'failed') as failed,
            count(*) filter (where e.status = 'no_baselines') as no_baselines,
            count(*) filter (where e.status = 'error') as errors,
            count(*) filter (where e.blocked) as blocked,
            count(*) filter (where e.what = 'not_run') as not_run,
            count(*) filter (where e.what = 'override') as overrides,
            count(*) filter (where e.status = 'failed' or e.blocked) as failed_or_blocked,
            max(e.at) filter (where e.what = 'verdict') as last_validation_at,
            grouping(e.model_name) as overall
        from events as e
        group by grouping sets (
            (e.model_name, case when gate_stats_for.by_day then e.at::date end),
            (case when gate_stats_for.by_day then e.at::date end)
        )
    )
    select
        c.model_name, c.day, c.validations, c.passed, c.warning, c.failed, c.no_baselines, c.errors, c.blocked,
        c.not_run, c.overrides,
        c.passed::double precision / nullif(c.validations, 0),
        c.overrides::double precision / nullif(c.failed_or_blocked, 0),
        c.errors::double precision / nullif(c.validations, 0),
        c.last_validation_at
    from counted as c
    order by c.overall, c.model_name, c.day
$$;

-- regate.validation_history: every verdict with its owner, who caused it, and its job's status, newest first.
create view regate.validation_history with (security_invoker = true) as
select
    r.id,
    r.created_at,
    r.job_id,
    r.model_name,
    r.model_version,
    r.owner_id,
    r.caused_by,
    r.end_user,
    j.status as job_status,
    j.validation_status as job_validation_status,
    r.status,
    r.blocked,
    r.source,
    jsonb_array_length(r.checks) as check_count,
    r.metrics,
    r.checks,
    r.config,
    r.error_sqlstate,
    r.error_message,
    r.duration_ms
from regate.validation_results as r
left join regate.local_training_jobs as j on r.job_id = j.id
order by r.created_at desc, r.id desc;

comment on view regate.validation_history is
'Every verdict with its owner, who caused it, and its job''s status, newest first.';

-- regate.validation_checks: one row per check of every verdict.
create view regate.validation_checks with (security_invoker = true) as
select
    r.id as result_id,
    r.job_id,
    r.model_name,
    r.model_version,
    r.created_at,
    r.status as result_status,
    c.ordinality as check_index,
    (c.value ->> 'baseline_id')::bigint as baseline_id,
    c.value ->> 'metric_name' as metric_name,
    c.value ->> 'severity' as severity,
    (c.value ->> 'greater_is_better')::boolean as greater_is_better,
    (c.value ->> 'baseline_value')::float8 as baseline_value,
    (c.value ->> 'threshold')::float8 as threshold,
    (c.value ->> 'min_absolute_change')::float8 as min_absolute_change,
    (c.value ->> 'min_relative_change')::float8 as min_relative_change,
    c.value ->> 'outcome' as outcome,
    array(select jsonb_array_elements_text(c.value -> 'failed_criteria')) as failed_criteria,
    c.value -> 'observed' as observed,
    (c.value ->> 'step')::bigint as step,
    c.value ->> 'message' as message,
    c.value ->> 'family' as family,  -- noqa: RF04
    c.value -> 'reference' as reference,
    (c.value ->> 'n')::integer as n,
    (c.value ->> 'mean')::float8 as mean,
    (c.value ->> 'stddev')::float8 as stddev,
    (c.value ->> 'ci_low')::float8 as ci_low,
    (c.value ->> 'ci_high')::float8 as ci_high,
    (c.value ->> 'confidence')::float8 as confidence,
    (c.value ->> 'p_value')::float8 as p_value,
    c.value -> 'support' as support  -- noqa: RF04
from regate.validation_results as r
cross join lateral jsonb_array_elements(r.checks) with ordinality as c (value, ordinality);

comment on view regate.validation_checks is 'One row per check of every verdict, with its result, job and model.';

-- regate.champions: per (model, environment), the latest deployment: the job in production (or staging, ...).
-- Every deployment was allowed when it was made (refused ones are never rows); deploying an earlier job again
-- rolls back to it.
create view regate.champions with (security_invoker = true) as
select distinct on (d.model_name, d.environment)
    d.model_name,
    d.environment,
    d.job_id,
    d.model_version,
    d.validation_status,
    d.validation_result_id,
    d.override_id,
    d.id as deployment_id,
    d.deployed_at,
    d.deployed_by,
    d.notes
from regate.deployments as d
order by d.model_name asc, d.environment asc, d.id desc;

comment on view regate.champions is 'Per model and environment, the latest deployment: its champion.';

-- regate.override_status: every override, its confirmation, and whether it is in effect now (not expired,
-- confirmed when it had to be, and its verdict is still its job's current one; NULL when the job is not visible).
create view regate.override_status with (security_invoker = true) as
select
    o.id,
    o.job_id,
    o.validation_result_id,
    o.reason,
    o.overridden_by,
    o.created_at,
    o.expires_at,
    o.requires_confirmation,
    c.confirmed_by,
    c.confirmed_at,
    case
        when j.id is null then null
        else
            (o.expires_at is null or o.expires_at > now())
            and (not o.requires_confirmation or c.override_id is not null)
            and (j.validation_result_id is not distinct from o.validation_result_id)
    end as in_effect
from regate.gate_overrides as o
left join regate.gate_override_confirmations as c on o.id = c.override_id
left join regate.local_training_jobs as j on o.job_id = j.id
order by o.id desc;

comment on view regate.override_status is 'Every override, its confirmation, and whether it is in effect now.';

-- regate.blocked_jobs: completed jobs whose deployment is refused now, why, and the failing checks of their
-- verdict (regate.deployment_refusal for each completed job that has no passing verdict).
create view regate.blocked_jobs with (security_invoker = true) as
select
    j.id as job_id,
    j.model_name,
    j.model_version,
    j.owner_id,
    j.completed_at,
    j.validation_status,
    j.validation_result_id,
    x.reason,
    coalesce(f.checks, '[]'::jsonb) as failing_checks
from regate.local_training_jobs as j
cross join lateral regate.deployment_refusal(j.id) as x (reason)
left join regate.validation_results as r on j.validation_result_id = r.id
left join lateral (
    select jsonb_agg(c.value order by c.ordinality) as checks
    from jsonb_array_elements(r.checks) with ordinality as c (value, ordinality)
    where c.value ->> 'outcome' is distinct from 'passed'
) as f on true
where
    j.status = 'completed'
    and (j.validation_status is null or j.validation_status in ('blocked', 'error'))
    and x.reason is not null
order by j.completed_at desc, j.id asc;

comment on view regate.blocked_jobs is 'Completed jobs whose deployment is refused now, why, and their failing checks.';

-- regate.gate_stats: regate.gate_stats_for() over all time: one row per model and an overall row (model_name NULL).
create view regate.gate_stats with (security_invoker = true) as
select
    s.model_name,
    s.validations,
    s.passed,
    s.warning,
    s.failed,
    s.no_baselines,
    s.errors,
    s.blocked,
    s.not_run,
    s.overrides,
    s.pass_rate,
    s.override_rate,
    s.error_rate,
    s.last_validation_at
from regate.gate_stats_for() as s;

comment on view regate.gate_stats is 'Gate figures per model and overall (model_name NULL), all time.';
