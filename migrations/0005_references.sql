-- 0005_references: baselines whose reference is resolved when a job is validated (docs/sql-reference.md,
-- regate.model_baselines): the final value of the model's champion in an environment, or the median of its last
-- accepted runs. A fixed baseline (the default) is unchanged. `confidence`: the level of the interval of the mean
-- when a check gets repeated runs.
-- * regate_internal.accepted_runs: the completed jobs whose verdict was accepted (passed, warning, or overridden),
--   per model, maintained by the gate: what a rolling reference reads, whoever owns the jobs (row-level security
--   hides other owners' jobs from the code that validates).

alter table regate.model_baselines
add column reference text not null default 'fixed',
add column environment text,
add column window_size bigint,
add column min_runs bigint,
add column on_missing_reference text not null default 'warn',
add column confidence double precision not null default 0.95;

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
