-- 0003_security: the privilege boundary, tenancy and verdict integrity (docs/security.md).
-- * Schema regate_internal holds what no client may touch, whatever is granted on schema regate: the latest-value
--   candidates of ingest, the settings of the identity mode, the transaction-scoped skips of admins. It is never
--   granted to anyone; every migrate resets its privileges.
-- * Jobs record their owner (the database's identity of the session, set on insert, immutable); verdicts
--   record whose they are and who caused them. Row-level security (sql/130_rls.sql) keys on these columns.
-- * Admin policies per model (regate.gate_policies): a job's config may only tighten an enforcing policy.

create schema if not exists regate_internal;

comment on schema regate_internal is
'regate-db internals: never granted to anyone; managed by regate-db migrate.';

revoke all on schema regate_internal from public;

-- The ingest candidates move out of reach of broad grants on schema regate. Until the repeatable files of this
-- version are applied (the next transaction of the same migrate), the functions of 0.1.0 still name
-- regate._metric_candidates: a view keeps them working; sql/900_cleanup.sql drops it.
-- squawk-ignore ban-set-schema
alter table regate._metric_candidates set schema regate_internal;
create view regate._metric_candidates as select * from regate_internal._metric_candidates;
revoke all on regate._metric_candidates from public;

-- Identity mode: 'login' (the owner of a row is session_user) or 'gateway' (for the listed gateway logins, the
-- end user named by a claim of request.jwt.claims). One row.
create table regate_internal.settings (
    singleton boolean primary key default true,
    identity_mode text not null default 'login',
    gateway_roles text[] not null default '{}',
    identity_claim text not null default 'sub',
    updated_by text not null default session_user,
    updated_at timestamptz not null default now(),
    constraint settings_singleton check (singleton),
    constraint settings_identity_mode_valid check (identity_mode in ('login', 'gateway'))
);

insert into regate_internal.settings default values;

-- An admin's transaction-scoped skip of the gate (regate.skip_gates_in_transaction): the transaction it covers
-- and why. Rolled back with its transaction; a committed one is the audit record.
create table regate_internal.gate_skips (
    id bigint generated always as identity primary key,
    xact_id xid8 not null,
    reason text not null,
    skipped_by text not null default session_user,
    skipped_at timestamptz not null default now()
);

create index gate_skips_xact_idx on regate_internal.gate_skips (xact_id);

-- Owners of jobs: set by the database (trigger _010_identity_on_insert), never by the client; the default only
-- documents it.
alter table regate.local_training_jobs alter column owner_id set default session_user;

-- Verdicts: whose verdict it is (row-level security), who caused it, and the policy that applied.
alter table regate.validation_results
add column owner_id text,
add column caused_by text,
add column end_user text,
add column policy_id bigint,
add column policy_version bigint;

alter table regate.validation_results alter column caused_by set default session_user;

-- Not concurrently: the runner applies a migration in one transaction. Completions wait while it is built.
-- squawk-ignore require-concurrent-index-creation
create index validation_results_owner_idx on regate.validation_results (owner_id, id);

-- Backfill the owner of earlier verdicts from their jobs (append-only trigger paused for this one statement).
alter table regate.validation_results disable trigger user;
update regate.validation_results as r
set owner_id = j.owner_id
from regate.local_training_jobs as j
where r.job_id = j.id;
alter table regate.validation_results enable trigger user;

-- The kill switch also records transaction-scoped skips' absence: its rows are global flips only. Who flipped it
-- is the login (session_user), as before.

-- Admin policies: the rollout stages. model_name NULL is the default row for models without their own.
create table regate.gate_policies (
    id bigint generated always as identity primary key,
    model_name text,
    enable_gates boolean,
    block_on_critical_failures boolean,
    require_baselines boolean,
    fail_open boolean,
    metrics_to_validate text[],
    enforce boolean,
    version bigint not null default 1,  -- noqa: RF04
    updated_by text not null default session_user,
    updated_at timestamptz not null default now(),
    constraint gate_policies_model_name_not_blank check (btrim(model_name) <> '')
);

create unique index gate_policies_model_idx on regate.gate_policies (model_name) nulls not distinct;

comment on table regate.gate_policies is
'Admin gate policies per model (model_name NULL: the default). Written by regate.set_policy only.';

create table regate.gate_policy_history (
    id bigint generated always as identity primary key,
    policy_id bigint not null,
    model_name text,
    version bigint not null,  -- noqa: RF04
    old_values jsonb,
    new_values jsonb not null,
    changed_by text not null default session_user,
    changed_at timestamptz not null default now()
);

comment on table regate.gate_policy_history is
'Every change of regate.gate_policies: who, when, the old and the new values. Append-only.';

revoke all on regate.gate_policies from public;
revoke all on regate.gate_policy_history from public;
