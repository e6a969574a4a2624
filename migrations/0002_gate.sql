-- 0002_gate: the regression gate's tables.
-- Jobs, their metric events, the latest value of every metric per job (maintained on ingest), the models'
-- baselines, the append-only verdicts, and the admin-only kill switch. Functions and triggers live in sql/.

create table regate.local_training_jobs (
    id uuid primary key default gen_random_uuid(),
    owner_id text not null default current_user,
    model_name text not null,
    model_version text,
    status text not null default 'pending',
    config jsonb not null default '{}'::jsonb,
    validation_status text,
    validation_result_id bigint,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    completed_at timestamptz,
    constraint local_training_jobs_model_name_not_blank check (btrim(model_name) <> ''),
    constraint local_training_jobs_model_version_not_blank check (btrim(model_version) <> ''),
    constraint local_training_jobs_status_valid check (
        status in ('pending', 'queued', 'running', 'completed', 'failed', 'cancelled')
    ),
    constraint local_training_jobs_config_is_object check (jsonb_typeof(config) = 'object'),
    constraint local_training_jobs_validation_status_valid check (
        validation_status in ('not_run', 'passed', 'warning', 'failed', 'blocked', 'error')
    )
);

comment on table regate.local_training_jobs is
'Training jobs. When a row turns completed, the gate validates it against its model''s baselines.';

create index local_training_jobs_model_idx on regate.local_training_jobs (model_name, model_version);

create table regate.local_training_metrics (
    id bigint generated always as identity primary key,
    job_id uuid not null references regate.local_training_jobs (id) on delete cascade,
    step bigint not null,
    epoch double precision,
    train_loss double precision,
    eval_loss double precision,
    perplexity double precision,
    learning_rate double precision,
    grad_norm double precision,
    metrics jsonb not null default '{}'::jsonb,
    recorded_at timestamptz not null default now(),
    constraint local_training_metrics_step_not_negative check (step >= 0),
    constraint local_training_metrics_metrics_is_object check (jsonb_typeof(metrics) = 'object')
);

comment on table regate.local_training_metrics is
'One row per logged training or evaluation event. Append-only.';

create index local_training_metrics_job_step_idx on regate.local_training_metrics (job_id, step, id);

-- Candidates for the latest value of each metric of each job: every insert statement adds, per (job, metric)
-- it logged, its own latest row; nothing is ever updated, so ingest takes no row locks here and cannot
-- deadlock. regate.extract_final_metrics reads the newest candidate of each metric by index lookups (a skip scan
-- over metric names), so its cost does not grow with the number of metric rows.
-- No foreign key on purpose: its check would run once per candidate row on the ingest path; the trigger
-- _900_forget_candidates on local_training_jobs removes a deleted job's candidates.
create table regate._metric_candidates (
    job_id uuid not null,
    metric_name text not null,
    step bigint not null,
    metric_id bigint not null,
    value double precision not null,
    primary key (job_id, metric_name, step, metric_id)
);

comment on table regate._metric_candidates is
'Internal: per insert statement, the latest (highest step, then id) non-null value of each metric it logged.';

create table regate.model_baselines (
    id bigint generated always as identity primary key,
    model_name text not null,
    model_version text,
    metric_name text not null,
    baseline_value double precision,
    greater_is_better boolean,
    threshold double precision,
    min_absolute_change double precision,
    min_relative_change double precision,
    severity text not null default 'critical',
    is_active boolean not null default true,
    description text,
    source_job_id uuid references regate.local_training_jobs (id) on delete set null,
    created_by text not null default current_user,
    created_at timestamptz not null default now()
);

comment on table regate.model_baselines is
'Accepted reference values and criteria per (model, optional version, metric, severity).';

create unique index model_baselines_one_active_idx
on regate.model_baselines (model_name, model_version, metric_name, severity) nulls not distinct
where is_active;

create table regate.validation_results (
    id bigint generated always as identity primary key,
    job_id uuid,
    model_name text not null,
    model_version text,
    status text not null,
    blocked boolean not null default false,
    metrics jsonb,
    checks jsonb not null default '[]'::jsonb,
    config jsonb not null default '{}'::jsonb,
    source text not null,
    error_sqlstate text,
    error_message text,
    duration_ms double precision,
    created_at timestamptz not null default clock_timestamp(),
    constraint validation_results_job_fk foreign key (job_id)
    references regate.local_training_jobs (id) deferrable initially deferred,
    constraint validation_results_status_valid check (
        status in ('passed', 'warning', 'failed', 'no_baselines', 'error')
    ),
    constraint validation_results_source_valid check (source in ('auto', 'manual', 'gate'))
);

comment on table regate.validation_results is
'Append-only verdicts: one row per validation run, with the metrics, checks and config it used.';

create index validation_results_job_idx on regate.validation_results (job_id, id);
create index validation_results_created_idx on regate.validation_results (created_at, id);

alter table regate.local_training_jobs
add constraint local_training_jobs_validation_result_fk foreign key (validation_result_id)
references regate.validation_results (id);

-- Every flip of the global kill switch, newest last: the current state is the latest row (none: enabled).
create table regate.gate_switch_events (
    id bigint generated always as identity primary key,
    enabled boolean not null,
    reason text,
    changed_by text not null default session_user,
    changed_at timestamptz not null default now()
);

comment on table regate.gate_switch_events is
'Admin-only history of regate.disable_gates / regate.enable_gates: who, when, why.';

revoke all on regate.gate_switch_events from public;
revoke all on regate._metric_candidates from public;
