-- Alerts: an outbox (regate.alerts) written in the transaction of the event, numbered and notified when that
-- transaction commits. Kinds: blocked and error (a verdict), first_failure (the first failed or blocked verdict of
-- a model), override (an override or its confirmation), policy_changed, gates_switched. A passed verdict sends
-- none; a rolled-back transaction sends nothing.
--
-- Numbering at commit: a deferred trigger takes a lock held until commit, numbers the transaction's alerts
-- (regate_internal.alert_ids) and sends NOTIFY regate_alerts with {"id", "kind", "model", "job", "result"}. Alerts
-- are therefore numbered in commit order: a consumer that has read every id up to n never finds a smaller one
-- later. The lock is taken at commit only, so it cannot take part in a deadlock with the transaction's work.
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG010  a trigger regate-db did not install sits on regate.alerts

-- Trigger function (after insert on the tables whose rows are events): write the alert of the row, if it is one.
-- SECURITY DEFINER (the outbox is written by regate-db only), so it refuses to fire anywhere else (RG010).
create or replace function regate_internal._event_alert()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_job regate.local_training_jobs;
    v_override regate.gate_overrides;
    v_first boolean := false;
begin
    if
        tg_relid not in (
            'regate.validation_results'::regclass, 'regate.gate_overrides'::regclass,
            'regate.gate_override_confirmations'::regclass, 'regate.gate_policy_history'::regclass,
            'regate.gate_switch_events'::regclass
        )
        or tg_level <> 'ROW' or tg_when <> 'AFTER' or tg_op <> 'INSERT'
    then
        perform regate_internal._misfired('_event_alert', tg_relid);
    end if;
    perform regate_internal._assert_trusted_triggers(array['regate.alerts'::regclass], false);
    if tg_relid = 'regate.validation_results'::regclass then
        if new.status = 'error' or new.blocked then
            insert into regate.alerts (kind, model_name, job_id, validation_result_id, owner_id, details)
            values (
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
        if new.status = 'failed' or new.blocked then
            insert into regate_internal.first_failures (model_name, validation_result_id)
            values (new.model_name, new.id)
            on conflict (model_name) do nothing;
            v_first := found;
            if v_first then
                insert into regate.alerts (kind, model_name, job_id, validation_result_id, owner_id, details)
                values (
                    'first_failure', new.model_name, new.job_id, new.id, new.owner_id,
                    jsonb_build_object('status', new.status, 'blocked', new.blocked)
                );
            end if;
        end if;
    elsif tg_relid = 'regate.gate_overrides'::regclass then
        select j.* into v_job from regate.local_training_jobs as j where j.id = new.job_id;
        insert into regate.alerts (kind, model_name, job_id, validation_result_id, owner_id, details)
        values (
            'override', v_job.model_name, new.job_id, new.validation_result_id, v_job.owner_id,
            jsonb_strip_nulls(jsonb_build_object(
                'override_id', new.id, 'reason', left(new.reason, 200), 'overridden_by', new.overridden_by,
                'expires_at', new.expires_at, 'requires_confirmation', new.requires_confirmation
            ))
        );
    elsif tg_relid = 'regate.gate_override_confirmations'::regclass then
        select o.* into v_override from regate.gate_overrides as o where o.id = new.override_id;
        select j.* into v_job from regate.local_training_jobs as j where j.id = v_override.job_id;
        insert into regate.alerts (kind, model_name, job_id, validation_result_id, owner_id, details)
        values (
            'override', v_job.model_name, v_override.job_id, v_override.validation_result_id, v_job.owner_id,
            jsonb_build_object(
                'override_id', v_override.id, 'confirmed', true, 'confirmed_by', new.confirmed_by,
                'overridden_by', v_override.overridden_by
            )
        );
    elsif tg_relid = 'regate.gate_policy_history'::regclass then
        insert into regate.alerts (kind, model_name, details)
        values (
            'policy_changed', new.model_name,
            jsonb_build_object(
                'policy_id', new.policy_id, 'version', new.version, 'changed_by', new.changed_by,
                'default_policy', new.model_name is null
            )
        );
    else
        insert into regate.alerts (kind, details)
        values (
            'gates_switched',
            jsonb_strip_nulls(jsonb_build_object(
                'enabled', new.enabled, 'changed_by', new.changed_by, 'reason', left(new.reason, 200)
            ))
        );
    end if;
    return null;
end;
$$;

-- Trigger function (deferred constraint trigger after insert on regate.alerts: fires when the transaction
-- commits): number the alert in commit order and notify channel regate_alerts. SECURITY DEFINER (the numbering
-- sequence is internal), so it refuses to fire anywhere else (RG010).
create or replace function regate_internal._alerts_number()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_id bigint;
begin
    if tg_relid <> 'regate.alerts'::regclass or tg_level <> 'ROW' or tg_when <> 'AFTER' then
        perform regate_internal._misfired('_alerts_number', tg_relid);
    end if;
    -- Held until the end of the commit: alerts of transactions that commit later get larger numbers.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('regate.alerts'));
    v_id := pg_catalog.nextval('regate_internal.alert_ids');
    update regate.alerts as a set id = v_id where a.seq = new.seq;
    perform pg_catalog.pg_notify(
        'regate_alerts',
        jsonb_build_object(
            'id', v_id, 'kind', new.kind, 'model', new.model_name, 'job', new.job_id,
            'result', new.validation_result_id
        )::text
    );
    return null;
end;
$$;
