-- Alerts: an outbox (regate.alerts) written in the transaction of the event, numbered and notified when that
-- transaction commits. Kinds: blocked and error (a verdict), first_failure (the first failed or blocked verdict of
-- a model), override (an override or its confirmation), policy_changed, gates_switched. A passed verdict sends
-- none; a rolled-back transaction sends nothing.
--
-- Numbering at commit: a deferred trigger takes a lock held until commit, numbers the transaction's alerts
-- (regate_internal.alert_ids) and sends NOTIFY regate_alerts with {"id", "kind", "model", "job", "result"}. Alerts
-- are therefore numbered in commit order: a consumer that has read every id up to n never finds a smaller one
-- later. The lock is taken at commit only, so it cannot take part in a deadlock with the transaction's work. A
-- transaction that makes the trigger fire early (SET CONSTRAINTS ALL IMMEDIATE) and then idles delays the others by
-- at most 2 s each; their alerts then stay unnumbered (never numbered out of order) until the next numbering.
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG010  a trigger regate-db did not install sits on regate.alerts

-- regate_internal._alert(kind, model_name, job_id, result_id, owner_id, details): write an alert into the outbox
-- (numbered and notified when the transaction commits). Called by the trigger functions below, as the owner.
create or replace function regate_internal._alert(
    p_kind text, p_model_name text, p_job_id uuid, p_result_id bigint, p_owner_id text, p_details jsonb
)
returns void
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform regate_internal._assert_trusted_triggers(array['regate.alerts'::regclass], false);
    insert into regate.alerts (kind, model_name, job_id, validation_result_id, owner_id, details)
    values (p_kind, p_model_name, p_job_id, p_result_id, p_owner_id, coalesce(p_details, '{}'::jsonb));
end;
$$;

-- regate_internal._claim_first_failure(model_name, result_id): record the verdict as the model's first failed or
-- blocked one, unless one is recorded already; whether it was. It never waits for another transaction: while a
-- concurrent transaction that recorded the model's first failure has not ended, that one is first (at most 10 ms
-- are spent finding out), and a status update never fails or stalls for the alert's sake. Should that transaction
-- roll back, the model's next failed verdict becomes its first_failure. Under REPEATABLE READ, a first failure
-- committed after the snapshot was taken is found by the unique index (a serialization failure, caught here).
create or replace function regate_internal._claim_first_failure(p_model_name text, p_result_id bigint)
returns boolean
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
set lock_timeout = '10ms'
as $$
begin
    if exists (select from regate_internal.first_failures as f where f.model_name = p_model_name) then
        return false;
    end if;
    begin
        insert into regate_internal.first_failures (model_name, validation_result_id)
        values (p_model_name, p_result_id)
        on conflict (model_name) do nothing;
        return found;
    exception when lock_not_available or serialization_failure then
        return false;
    end;
end;
$$;

-- Trigger function (after insert on regate.validation_results, of a verdict that failed, blocked or is an error):
-- alert error or blocked, and first_failure for the first failed or blocked verdict of the model. SECURITY
-- DEFINER (the outbox is written by regate-db only), so it refuses to fire anywhere else (RG010).
create or replace function regate_internal._results_alert()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_relid <> 'regate.validation_results'::regclass or tg_level <> 'ROW' or tg_when <> 'AFTER' then
        perform regate_internal._misfired('_results_alert', tg_relid);
    end if;
    if new.status = 'error' or new.blocked then
        perform regate_internal._alert(
            case when new.status = 'error' then 'error' else 'blocked' end,
            new.model_name, new.job_id, new.id, new.owner_id,
            jsonb_strip_nulls(jsonb_build_object(
                'status', new.status, 'blocked', new.blocked, 'source', new.source,
                'model_version', new.model_version, 'error_sqlstate', new.error_sqlstate,
                'failed_metrics', (
                    select jsonb_agg(distinct c.value ->> 'metric_name')
                    from jsonb_array_elements(new.checks) as c (value)
                    where c.value ->> 'outcome' is distinct from 'passed'
                )
            ))
        );
    end if;
    -- A verdict of a job (a completion or its re-validation): run_gate without a job is a CI step's check, which
    -- raises its own blocked alert but does not decide which failure of the model came first.
    if (new.status = 'failed' or new.blocked) and new.job_id is not null then
        if regate_internal._claim_first_failure(new.model_name, new.id) then
            perform regate_internal._alert(
                'first_failure', new.model_name, new.job_id, new.id, new.owner_id,
                jsonb_build_object('status', new.status, 'blocked', new.blocked)
            );
        end if;
    end if;
    return null;
end;
$$;

-- Trigger function (after insert on regate.gate_overrides): alert override. SECURITY DEFINER, refuses to fire
-- anywhere else (RG010).
create or replace function regate_internal._overrides_alert()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_job regate.local_training_jobs;
begin
    if tg_relid <> 'regate.gate_overrides'::regclass or tg_level <> 'ROW' or tg_when <> 'AFTER' then
        perform regate_internal._misfired('_overrides_alert', tg_relid);
    end if;
    select j.* into v_job from regate.local_training_jobs as j where j.id = new.job_id;
    perform regate_internal._alert(
        'override', v_job.model_name, new.job_id, new.validation_result_id, v_job.owner_id,
        jsonb_strip_nulls(jsonb_build_object(
            'override_id', new.id, 'reason', left(new.reason, 200), 'overridden_by', new.overridden_by,
            'expires_at', new.expires_at, 'requires_confirmation', new.requires_confirmation
        ))
    );
    return null;
end;
$$;

-- Trigger function (after insert on regate.gate_override_confirmations): alert override (confirmed). SECURITY
-- DEFINER, refuses to fire anywhere else (RG010).
create or replace function regate_internal._confirmations_alert()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_override regate.gate_overrides;
    v_job regate.local_training_jobs;
begin
    if tg_relid <> 'regate.gate_override_confirmations'::regclass or tg_level <> 'ROW' or tg_when <> 'AFTER' then
        perform regate_internal._misfired('_confirmations_alert', tg_relid);
    end if;
    select o.* into v_override from regate.gate_overrides as o where o.id = new.override_id;
    select j.* into v_job from regate.local_training_jobs as j where j.id = v_override.job_id;
    perform regate_internal._alert(
        'override', v_job.model_name, v_override.job_id, v_override.validation_result_id, v_job.owner_id,
        jsonb_build_object(
            'override_id', v_override.id, 'confirmed', true, 'confirmed_by', new.confirmed_by,
            'overridden_by', v_override.overridden_by
        )
    );
    return null;
end;
$$;

-- Trigger function (after insert on regate.gate_policy_history): alert policy_changed. SECURITY DEFINER, refuses
-- to fire anywhere else (RG010).
create or replace function regate_internal._policy_alert()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_relid <> 'regate.gate_policy_history'::regclass or tg_level <> 'ROW' or tg_when <> 'AFTER' then
        perform regate_internal._misfired('_policy_alert', tg_relid);
    end if;
    perform regate_internal._alert(
        'policy_changed', new.model_name, null, null, null,
        jsonb_build_object(
            'policy_id', new.policy_id, 'version', new.version, 'changed_by', new.changed_by,
            'default_policy', new.model_name is null
        )
    );
    return null;
end;
$$;

-- Trigger function (after insert on regate.gate_switch_events): alert gates_switched. SECURITY DEFINER, refuses
-- to fire anywhere else (RG010).
create or replace function regate_internal._switch_alert()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_relid <> 'regate.gate_switch_events'::regclass or tg_level <> 'ROW' or tg_when <> 'AFTER' then
        perform regate_internal._misfired('_switch_alert', tg_relid);
    end if;
    perform regate_internal._alert(
        'gates_switched', null, null, null, null,
        jsonb_strip_nulls(jsonb_build_object(
            'enabled', new.enabled, 'changed_by', new.changed_by, 'reason', left(new.reason, 200)
        ))
    );
    return null;
end;
$$;

-- regate_internal._number_alerts(wait): number, in insertion order, every alert this transaction can see that has
-- no number yet (its own, and those of committed transactions that could not number theirs), and notify each;
-- only under the numbering lock, waited for at most `wait`. Returns how many it numbered, or NULL without the lock.
create or replace function regate_internal._number_alerts(p_wait interval)
returns integer
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_deadline constant timestamptz := pg_catalog.clock_timestamp() + p_wait;
    v record;
    v_row record;
    v_count integer := 0;
begin
    -- Held until this transaction ends: alerts numbered by a transaction that commits later get larger numbers.
    while not pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('regate.alerts')) loop
        if pg_catalog.clock_timestamp() > v_deadline then
            return null;
        end if;
        perform pg_catalog.pg_sleep(0.005);
    end loop;
    for v in select p.seq from regate.alerts as p where p.id is null order by p.seq for update loop
        update regate.alerts as a set id = pg_catalog.nextval('regate_internal.alert_ids')
        where a.seq = v.seq
        returning a.id, a.kind, a.model_name, a.job_id, a.validation_result_id into v_row;
        v_count := v_count + 1;
        perform pg_catalog.pg_notify(
            'regate_alerts',
            jsonb_build_object(
                'id', v_row.id, 'kind', v_row.kind, 'model', v_row.model_name, 'job', v_row.job_id,
                'result', v_row.validation_result_id
            )::text
        );
    end loop;
    return v_count;
end;
$$;

-- Trigger function (deferred constraint trigger after insert on regate.alerts: fires when the transaction
-- commits): number the transaction's alerts in commit order and notify channel regate_alerts. The wait for the
-- numbering lock is bounded: a transaction that numbers its alerts before its commit (SET CONSTRAINTS ALL
-- IMMEDIATE) and then idles must not stall every other alert. After 2 s this transaction's alerts stay unnumbered
-- (a WARNING says so); the next transaction that numbers, or regate.number_alerts(), numbers and notifies them.
-- SECURITY DEFINER (the numbering sequence is internal), so it refuses to fire anywhere else (RG010).
create or replace function regate_internal._alerts_number()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if tg_relid <> 'regate.alerts'::regclass or tg_level <> 'ROW' or tg_when <> 'AFTER' then
        perform regate_internal._misfired('_alerts_number', tg_relid);
    end if;
    if regate_internal._number_alerts(interval '2 seconds') is null then
        raise warning 'regate-db: alert % left unnumbered: another transaction has held the numbering lock for 2 s '
            '(it numbered its alerts before its commit); the next alert or regate.number_alerts() numbers it',
            new.seq;
    end if;
    return null;
end;
$$;

-- regate.number_alerts() returns integer: number and notify the committed alerts that are still unnumbered
-- (their transaction could not take the numbering lock in time); watchers call it before they read the outbox.
-- Returns how many it numbered; NULL when the lock stayed busy for 2 s (try again).
create or replace function regate.number_alerts()
returns integer
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    select regate_internal._number_alerts(interval '2 seconds')
$$;
