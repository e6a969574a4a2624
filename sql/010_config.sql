-- Gate configuration: the job config keys, the effective config, and the admin-only kill switch.
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG005  a gate key of a job's config has the wrong type
--   42501  a non-admin tried to flip the kill switch
--   22023  disable_gates without a reason

-- regate._gate_config_problem(config): NULL when the gate keys of a job config are well-typed, else a
-- sentence naming the key and the rule. Other keys (training parameters) are not looked at.
create or replace function regate._gate_config_problem(p_config jsonb)
returns text
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_gc jsonb;
    v_key text;
    v_item jsonb;
begin
    if p_config is null or jsonb_typeof(p_config) <> 'object' then
        return format('config must be a JSON object, got %s', coalesce(jsonb_typeof(p_config), 'NULL'));
    end if;
    foreach v_key in array array['enableRegressionGates', 'blockOnCriticalFailures'] loop
        if p_config ? v_key and jsonb_typeof(p_config -> v_key) <> 'boolean' then
            return format('config.%s must be a boolean (true or false), got %s', v_key, p_config -> v_key);
        end if;
    end loop;
    if not p_config ? 'regressionGateConfig' then
        return null;
    end if;
    v_gc := p_config -> 'regressionGateConfig';
    if jsonb_typeof(v_gc) <> 'object' then
        return format('config.regressionGateConfig must be a JSON object, got %s', v_gc);
    end if;
    foreach v_key in array array['requireBaselines', 'failOpen'] loop
        if v_gc ? v_key and jsonb_typeof(v_gc -> v_key) <> 'boolean' then
            return format(
                'config.regressionGateConfig.%s must be a boolean (true or false), got %s', v_key, v_gc -> v_key
            );
        end if;
    end loop;
    -- metricsToValidate: null (or absent) means every baselined metric.
    if v_gc ? 'metricsToValidate' and jsonb_typeof(v_gc -> 'metricsToValidate') <> 'null' then
        if jsonb_typeof(v_gc -> 'metricsToValidate') <> 'array' then
            return format(
                'config.regressionGateConfig.metricsToValidate must be an array of metric names, got %s',
                v_gc -> 'metricsToValidate'
            );
        end if;
        for v_item in select e.value from jsonb_array_elements(v_gc -> 'metricsToValidate') as e loop
            if jsonb_typeof(v_item) <> 'string' or btrim(v_item #>> '{}') = '' then
                return format(
                    'config.regressionGateConfig.metricsToValidate must hold non-empty strings, got %s', v_item
                );
            end if;
        end loop;
    end if;
    return null;
end;
$$;

-- regate.effective_config(config jsonb) returns jsonb: the gate config a job runs with: the built-in
-- defaults overridden by the job's gate keys. Raises RG005 when a gate key has the wrong type.
create or replace function regate.effective_config(config jsonb)
returns jsonb
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_problem text := regate._gate_config_problem(coalesce(config, '{}'::jsonb));
    v_gc jsonb := coalesce(config -> 'regressionGateConfig', '{}'::jsonb);
begin
    if v_problem is not null then
        raise exception using errcode = 'RG005', message = v_problem;
    end if;
    return jsonb_build_object(
        'enableRegressionGates', coalesce((config ->> 'enableRegressionGates')::boolean, true),
        'blockOnCriticalFailures', coalesce((config ->> 'blockOnCriticalFailures')::boolean, false),
        'regressionGateConfig', jsonb_build_object(
            'requireBaselines', coalesce((v_gc ->> 'requireBaselines')::boolean, false),
            'metricsToValidate', coalesce(v_gc -> 'metricsToValidate', 'null'::jsonb),
            'failOpen', coalesce((v_gc ->> 'failOpen')::boolean, true)
        )
    );
end;
$$;

-- Trigger function: refuse a job whose config has mistyped gate keys (RG005, naming the key).
create or replace function regate._jobs_check_config()
returns trigger
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_problem text := regate._gate_config_problem(new.config);
begin
    if v_problem is not null then
        raise exception using
            errcode = 'RG005',
            message = v_problem,
            hint = 'Gate keys: enableRegressionGates, blockOnCriticalFailures (booleans); regressionGateConfig: '
            || '{requireBaselines, failOpen (booleans), metricsToValidate (array of names)}.';
    end if;
    return new;
end;
$$;

drop trigger if exists _050_check_config on regate.local_training_jobs;
create trigger _050_check_config
before insert or update of config on regate.local_training_jobs
for each row execute function regate._jobs_check_config();

-- regate._is_gate_admin(): whether the session's login may switch the gate off: a superuser, or a member of
-- the role that owns schema regate. session_user, not current_user: SECURITY DEFINER cannot lend it.
create or replace function regate._is_gate_admin()
returns boolean
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select coalesce((select r.rolsuper from pg_catalog.pg_roles as r where r.rolname = session_user), false)
        or pg_catalog.pg_has_role(
            session_user,
            (select n.nspowner from pg_catalog.pg_namespace as n where n.nspname = 'regate'),
            'MEMBER'
        )
$$;

-- regate._gates_on(): whether the gate runs for this session: the global switch is on, and the session has
-- not turned it off with SET regate.enabled = off (honoured for admins only; anyone else's setting is ignored).
create or replace function regate._gates_on()
returns boolean
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
-- PL/pgSQL, not SQL: it runs on every completion, and PostgreSQL before 18 re-plans a SQL function per call.
begin
    return coalesce(
        (select e.enabled from regate.gate_switch_events as e order by e.id desc limit 1), true
    )
    and not (
        lower(coalesce(pg_catalog.current_setting('regate.enabled', true), 'on')) in ('off', 'false', '0', 'no')
        and regate._is_gate_admin()
    );
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

-- regate._flip_gates(enabled, reason): record a flip of the global switch. Raises 42501 for non-admins.
create or replace function regate._flip_gates(p_enabled boolean, p_reason text)
returns regate.gate_switch_events
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row regate.gate_switch_events;
begin
    if not regate._is_gate_admin() then
        raise exception using
            errcode = '42501',
            message = format(
                'permission denied: only a superuser or the owner of schema regate may switch the gates %s',
                case when p_enabled then 'on' else 'off' end
            );
    end if;
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
    return regate._flip_gates(false, reason);
end;
$$;

-- regate.enable_gates(reason text default null): switch the gate back on. Admins only.
create or replace function regate.enable_gates(reason text default null)
returns regate.gate_switch_events
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    select regate._flip_gates(true, reason)
$$;

revoke all on function regate._flip_gates(boolean, text) from public;
