-- 0004_release: release control (docs/release-control.md). The database becomes the release authority:
-- * regate.deployments: a deployment is a row the database refuses (RG012) unless the job may deploy; the latest
--   deployment per (model, environment) is its champion (view regate.champions).
-- * regate.gate_overrides (+ confirmations for the four-eyes rule): admins' audited way past a refusal.
-- * regate.alerts: an outbox written in the transaction of the event, notified on channel regate_alerts at commit.
-- * regate.gate_policies.override_requires_second_admin: the four-eyes rule per policy.

alter table regate.gate_policies add column override_requires_second_admin boolean;

create table regate.gate_overrides (
    id bigint generated always as identity primary key,
    job_id uuid not null references regate.local_training_jobs (id),
    validation_result_id bigint references regate.validation_results (id),
    reason text not null,
    overridden_by text not null default session_user,
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    requires_confirmation boolean not null default false,
    constraint gate_overrides_reason_not_blank check (btrim(reason) <> '')
);

create index gate_overrides_job_idx on regate.gate_overrides (job_id, validation_result_id);

comment on table regate.gate_overrides is
'Admins'' overrides of a verdict that refuses deployment: who, when, why, until when. Append-only.';

create table regate.gate_override_confirmations (
    override_id bigint primary key references regate.gate_overrides (id),
    confirmed_by text not null default session_user,
    confirmed_at timestamptz not null default now()
);

comment on table regate.gate_override_confirmations is
'The second admin''s confirmation of an override under the four-eyes rule. Append-only.';

create table regate.deployments (
    id bigint generated always as identity primary key,
    job_id uuid not null references regate.local_training_jobs (id),
    model_name text not null,
    model_version text,
    environment text not null,
    validation_result_id bigint references regate.validation_results (id),
    validation_status text,
    override_id bigint references regate.gate_overrides (id),
    deployed_by text not null default session_user,
    deployed_at timestamptz not null default now(),
    notes text,
    constraint deployments_environment_not_blank check (btrim(environment) <> '')
);

create index deployments_champion_idx on regate.deployments (model_name, environment, id);
create index deployments_job_idx on regate.deployments (job_id);

comment on table regate.deployments is
'Deployments of completed jobs per environment; refused (RG012) unless regate.deployment_allowed. Append-only.';

-- The outbox: id is assigned when the transaction commits (in commit order), so that a consumer reading ids in
-- order never skips an alert that committed later with a smaller number. NULL only inside its own transaction.
create table regate.alerts (
    seq bigint generated always as identity primary key,
    id bigint unique,
    kind text not null,
    model_name text,
    job_id uuid,
    validation_result_id bigint,
    owner_id text,
    details jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    constraint alerts_kind_valid check (
        kind in ('blocked', 'error', 'first_failure', 'override', 'policy_changed', 'gates_switched')
    )
);

comment on table regate.alerts is
'Alerts outbox: written in the transaction of the event, numbered (id) and notified (regate_alerts) at commit.';

create sequence regate_internal.alert_ids as bigint;

revoke all on regate.gate_overrides from public;
revoke all on regate.gate_override_confirmations from public;
revoke all on regate.deployments from public;
revoke all on regate.alerts from public;

-- The first failed or blocked verdict of each model (alert first_failure): one row per model, whoever's verdict
-- it was (row-level security hides other owners' verdicts from the code that raises the alert). Earlier verdicts
-- count: a model that failed before this release has had its first failure.
create table regate_internal.first_failures (
    model_name text primary key,
    validation_result_id bigint not null,
    created_at timestamptz not null default now()
);

insert into regate_internal.first_failures (model_name, validation_result_id)
select
    r.model_name,
    min(r.id) as validation_result_id
from regate.validation_results as r
where r.status = 'failed' or r.blocked
group by r.model_name;
