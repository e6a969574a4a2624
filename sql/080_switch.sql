-- The kill switch: the admins' global switch (regate.disable_gates / enable_gates, recorded in
-- regate.gate_switch_events), and an admin's audited skip of the gate for one transaction
-- (regate.skip_gates_in_transaction). Nothing session-scoped: through a transaction pooler, a session setting
-- would leak to the next client of the same server connection.
--
-- Error codes raised here (see docs/sql-reference.md):
--   42501  a non-admin tried to switch or skip the gates
--   22023  disable_gates or skip_gates_in_transaction without a reason

-- regate_internal._gates_on(): whether the gate runs for this completion: the global switch is on, and no admin
-- skipped the gate for this transaction. The skip is honoured only when the transaction's own id is recorded in
-- regate_internal.gate_skips: the setting regate.skip_xact alone, which any client can set, is only a hint that
-- saves the lookup in every other transaction.
create or replace function regate_internal._gates_on()
returns boolean
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
-- PL/pgSQL, not SQL: it runs on every completion, and PostgreSQL before 18 re-plans a SQL function per call.
declare
    v_skip text := pg_catalog.current_setting('regate.skip_xact', true);
begin
    if
        v_skip is not null and v_skip <> ''
        and v_skip = pg_catalog.pg_current_xact_id_if_assigned()::text
        and exists (select from regate_internal.gate_skips as s where s.xact_id = v_skip::xid8)
    then
        return false;
    end if;
    return coalesce((select e.enabled from regate.gate_switch_events as e order by e.id desc limit 1), true);
end;
$$;

-- regate.gate_status(): the global switch: enabled, and who changed it when and why (NULLs if never).
create or replace function regate.gate_status(
    out enabled boolean, out changed_by text, out changed_at timestamptz, out reason text
)
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(e.enabled, true), e.changed_by, e.changed_at, e.reason
    from (select 1) as one
    left join lateral (
        select g.enabled, g.changed_by, g.changed_at, g.reason
        from regate.gate_switch_events as g order by g.id desc limit 1
    ) as e on true
$$;

-- regate_internal._flip_gates(enabled, reason): record a flip of the global switch (called by the definer
-- functions below). Raises 42501 for non-admins.
create or replace function regate_internal._flip_gates(p_enabled boolean, p_reason text)
returns regate.gate_switch_events
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row regate.gate_switch_events;
begin
    perform regate_internal._require_admin(format('switch the gates %s', case when p_enabled then 'on' else 'off' end));
    perform regate_internal._assert_trusted_triggers(array['regate.gate_switch_events'::regclass], true);
    -- One flip at a time, so that "already on/off" is decided on the latest state.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('regate.gate_switch'));
    select g.* into v_row from regate.gate_switch_events as g order by g.id desc limit 1;
    if coalesce(v_row.enabled, true) = p_enabled then
        v_row.enabled := p_enabled;  -- never flipped: no row, the switch is on
        raise notice 'regression gates are already %, nothing changed',
            case when p_enabled then 'enabled' else 'disabled' end;
        return v_row;
    end if;
    insert into regate.gate_switch_events (enabled, reason)
    values (p_enabled, p_reason)
    returning * into v_row;
    return v_row;
end;
$$;

-- regate.disable_gates(reason text): switch the gate off for every job (the rollback step). Admins only;
-- the reason is required. Completed jobs then get validation_status 'not_run' and no result.
create or replace function regate.disable_gates(reason text)
returns regate.gate_switch_events
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if reason is null or btrim(reason) = '' then
        raise exception using
            errcode = '22023', message = 'disable_gates: reason must be a non-empty text saying why';
    end if;
    return regate_internal._flip_gates(false, reason);
end;
$$;

-- regate.enable_gates(reason text default null): switch the gate back on. Admins only.
create or replace function regate.enable_gates(reason text default null)
returns regate.gate_switch_events
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    select regate_internal._flip_gates(true, reason)
$$;

-- regate.skip_gates_in_transaction(reason text) returns bigint: admins only. Completions later in the current
-- transaction are not validated (validation_status 'not_run'), as with the kill switch, and nothing outside this
-- transaction is affected, also behind a transaction pooler. The skip is recorded with the login, the time and
-- the reason (regate_internal.gate_skips; returns its id); a rolled-back transaction leaves no record, and
-- skipped nothing that lasted. Raises 22023 without a reason, 42501 for non-admins.
create or replace function regate.skip_gates_in_transaction(reason text)
returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_id bigint;
begin
    perform regate_internal._require_admin('skip the gates');
    if reason is null or btrim(reason) = '' then
        raise exception using
            errcode = '22023', message = 'skip_gates_in_transaction: reason must be a non-empty text saying why';
    end if;
    insert into regate_internal.gate_skips (xact_id, reason) values (pg_current_xact_id(), reason)
    returning id into v_id;
    perform set_config('regate.skip_xact', pg_current_xact_id()::text, true);
    return v_id;
end;
$$;
