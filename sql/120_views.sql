-- Views over the verdicts. Re-created as a whole on every change (drop first: columns may move). Every view is
-- security_invoker: it shows what the querying role may see of the tables below it (row-level security: its
-- own rows; an admin's: all).
--
-- Error codes raised here: none.

drop view if exists regate.validation_checks;
drop view if exists regate.validation_history;

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
    c.value ->> 'message' as message
from regate.validation_results as r
cross join lateral jsonb_array_elements(r.checks) with ordinality as c (value, ordinality);

comment on view regate.validation_checks is 'One row per check of every verdict, with its result, job and model.';
