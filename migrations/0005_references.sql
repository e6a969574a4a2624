-- 0005_references: baselines whose reference is resolved when a job is validated (docs/sql-reference.md,
-- regate.model_baselines): the final value of the model's champion in an environment, or the median of its last
-- accepted runs. A fixed baseline (the default) is unchanged. `confidence`: the level of the interval of the mean
-- when a check gets repeated runs. A metric_name ending in '/*' is a family (per-slice metrics such as
-- accuracy/lang=de); min_support and support_metric skip slices whose sibling count is too small;
-- benjamini_hochberg controls the false discoveries among a family's members checked over repeated runs.
-- * regate_internal.accepted_runs: the completed jobs whose verdict was accepted (passed, warning, or overridden),
--   per model, maintained by the gate: what a rolling reference reads, whoever owns the jobs (row-level security
--   hides other owners' jobs from the code that validates).

alter table regate.model_baselines
add column reference text not null default 'fixed',
add column environment text,
add column window_size bigint,
add column min_runs bigint,
add column on_missing_reference text not null default 'warn',
add column confidence double precision not null default 0.95,
add column min_support double precision,
add column support_metric text,
add column benjamini_hochberg boolean not null default false;

-- inconclusiveFails: an inconclusive check over repeated runs counts as a failure of its severity (NULL: inherit).
alter table regate.gate_policies add column inconclusive_fails boolean;

create table regate_internal.accepted_runs (
    job_id uuid primary key,
    model_name text not null,
    model_version text,
    completed_at timestamptz not null
);

create index accepted_runs_model_idx on regate_internal.accepted_runs (model_name, completed_at desc);

insert into regate_internal.accepted_runs (job_id, model_name, model_version, completed_at)
select
    j.id,
    j.model_name,
    j.model_version,
    j.completed_at
from regate.local_training_jobs as j
where
    j.status = 'completed'
    and j.completed_at is not null
    and (
        j.validation_status in ('passed', 'warning')
        or exists (
            select from regate.gate_overrides as o
            where o.job_id = j.id and o.validation_result_id is not distinct from j.validation_result_id
        )
    );

-- Repeated runs: a job may belong to a run group of an expected size; when its last run completes, the group
-- gets one verdict (source 'group', job_id NULL, run_group set) over the interval of the runs' mean, and every
-- run of the group gets it as its own.
alter table regate.local_training_jobs
add column run_group text,
add column run_group_size bigint;

-- Both columns are new and NULL in every row: validating the constraint finds nothing to refuse. The runner
-- applies a migration in one transaction, so NOT VALID + VALIDATE would not shorten the lock.
alter table regate.local_training_jobs
-- squawk-ignore constraint-missing-not-valid
add constraint local_training_jobs_run_group_valid check (
    (run_group is null and run_group_size is null)
    or (btrim(run_group) <> '' and run_group_size >= 2)
);

-- Not concurrently: the runner applies a migration in one transaction.
-- squawk-ignore require-concurrent-index-creation
create index local_training_jobs_run_group_idx on regate.local_training_jobs (model_name, run_group)
where run_group is not null;

alter table regate.validation_results add column run_group text;

-- A wider rule replaces the narrower one: every existing row satisfies it.
-- squawk-ignore ban-drop-constraint
alter table regate.validation_results drop constraint validation_results_source_valid;
alter table regate.validation_results
-- squawk-ignore constraint-missing-not-valid
add constraint validation_results_source_valid check (source in ('auto', 'manual', 'gate', 'group'));
