-- Privileges: the roles, what each may use, and nothing for anyone else. Re-applied by every migrate, after
-- every function was (re)created, so that no function is ever executable by PUBLIC and the internals stay out
-- of reach whatever was granted or defaulted before.
--
--   regate_reader  reads its own jobs, metrics, verdicts and alerts, the baselines, policies, deployments and
--                  overrides; the read functions
--   regate_writer  a reader that writes its own jobs and metrics, validates, gates and deploys them
--   regate_admin   everything: baselines, policies, overrides, the kill switch, other owners' rows
--
-- Error codes raised here: none (a role that cannot be created is a WARNING saying what to run).

-- The roles, cluster-wide: a second database on the same server reuses them. A concurrent migrate of another
-- database may create one first (duplicate_object, or unique_violation on pg_authid); an installer without
-- CREATEROLE gets a warning saying what to create, and the grants below skip the missing role.
do $$
declare
    v_role text;
begin
    foreach v_role in array array['regate_reader', 'regate_writer', 'regate_admin'] loop
        if not exists (select from pg_catalog.pg_roles as r where r.rolname = v_role) then
            begin
                execute format('create role %I nologin', v_role);
            exception
                when duplicate_object or unique_violation then
                    null;
                when insufficient_privilege then
                    raise warning 'regate-db could not create role % (%)', v_role, sqlerrm
                        using hint = format(
                            'Create it as a role with CREATEROLE: CREATE ROLE %I NOLOGIN; then run regate-db migrate '
                            '--reapply.', v_role
                        );
            end;
        end if;
    end loop;
end;
$$;

-- Nothing for PUBLIC; regate_internal for nobody but its owner, whatever was granted or defaulted. In schema
-- regate, nobody but the owner may CREATE (an overload of a regate function would catch an admin's call), hold
-- TRIGGER, TRUNCATE or REFERENCES on a table (a trigger of one's own runs as whoever writes the table), or use a
-- sequence (setval); the other grants stay, as admins made them (row-level security and the write guards bind
-- them).
revoke all on schema regate from public;
revoke all on all functions in schema regate from public;
revoke all on all functions in schema regate_internal from public;

do $$
declare
    v_owner oid := (select n.nspowner from pg_catalog.pg_namespace as n where n.nspname = 'regate_internal');
    v record;
begin
    for v in
        select format('revoke all on schema regate_internal from %s', a.grantee_name) as sql
        from pg_catalog.pg_namespace as n
        cross join lateral (
            select case when x.grantee = 0 then 'public' else quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) end
            from pg_catalog.aclexplode(n.nspacl) as x
            where x.grantee <> v_owner
        ) as a (grantee_name)
        where n.nspname = 'regate_internal'
        union all
        select format(
            'revoke all on %s %s from %s', case c.relkind when 'S' then 'sequence' else 'table' end, c.oid::regclass,
            a.grantee_name
        )
        from pg_catalog.pg_class as c
        cross join lateral (
            select case when x.grantee = 0 then 'public' else quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) end
            from pg_catalog.aclexplode(c.relacl) as x
            where x.grantee <> c.relowner
        ) as a (grantee_name)
        where c.relnamespace = 'regate_internal'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'S')
        union all
        select format('revoke all on function %s from %s', p.oid::regprocedure, a.grantee_name)
        from pg_catalog.pg_proc as p
        cross join lateral (
            select case when x.grantee = 0 then 'public' else quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) end
            from pg_catalog.aclexplode(p.proacl) as x
            where x.grantee <> p.proowner
        ) as a (grantee_name)
        where p.pronamespace = 'regate_internal'::regnamespace
        union all
        select format('revoke create on schema regate from %s', a.grantee_name)
        from pg_catalog.pg_namespace as n
        cross join lateral (
            select case when x.grantee = 0 then 'public' else quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) end
            from pg_catalog.aclexplode(n.nspacl) as x
            where x.grantee <> v_owner and x.privilege_type = 'CREATE'
        ) as a (grantee_name)
        where n.nspname = 'regate'
        union all
        select distinct format(
            'revoke %s on %s %s from %s', case when c.relkind = 'S' then 'all' else 'trigger, truncate, references' end,
            case c.relkind when 'S' then 'sequence' else 'table' end, c.oid::regclass, a.grantee_name
        )
        from pg_catalog.pg_class as c
        cross join lateral (
            select
                case when x.grantee = 0 then 'public' else quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) end,
                x.privilege_type
            from pg_catalog.aclexplode(c.relacl) as x
            where x.grantee <> c.relowner
        ) as a (grantee_name, privilege_type)
        where
            c.relnamespace = 'regate'::regnamespace
            and (c.relkind = 'S' or a.privilege_type in ('TRIGGER', 'TRUNCATE', 'REFERENCES'))
    loop
        execute v.sql;
    end loop;
    -- Functions the owner creates later are not executable by PUBLIC either (only for a dedicated owner role:
    -- a superuser's defaults are the whole server's business).
    if not (select r.rolsuper from pg_catalog.pg_roles as r where r.rolname = current_user) then
        alter default privileges revoke execute on functions from public;
    end if;
end;
$$;

-- The documented API, per role (a role that does not exist is skipped: see the warning above).
do $$
declare
    v_reader constant text [] := array[
        'grant usage on schema regate to %I',
        'grant select on regate.local_training_jobs, regate.local_training_metrics, regate.model_baselines, '
        || 'regate.validation_results, regate.gate_policies, regate.validation_history, regate.validation_checks, '
        || 'regate.deployments, regate.champions, regate.gate_overrides, regate.gate_override_confirmations, '
        || 'regate.override_status, regate.blocked_jobs, regate.gate_stats, regate.alerts to %I',
        'grant execute on function regate.current_identity(), regate.is_admin(), regate.schema_version(), '
        || 'regate.gate_status(), regate.extract_final_metrics(uuid), regate.effective_config(jsonb, text), '
        || 'regate.should_block_deployment(regate.validation_results, jsonb), regate.deployment_allowed(uuid, text), '
        || 'regate.deployment_refusal(uuid, text), regate.gate_stats_for(timestamptz, timestamptz, boolean), '
        || 'regate.number_alerts(), regate.metrics_purge_status(uuid) to %I'
    ];
    v_writer constant text [] := array[
        'grant insert, update, delete on regate.local_training_jobs to %I',
        'grant insert on regate.local_training_metrics to %I',
        'grant insert (job_id, environment, notes) on regate.deployments to %I',
        'grant execute on function regate.validate_training_results(uuid, text, text), '
        || 'regate.run_gate(text, jsonb, text, boolean, text [], uuid), regate.deploy(uuid, text, text), '
        || 'regate.validate_run_group(text, text) to %I'
    ];
    v_admin constant text [] := array[
        'grant select on regate.gate_policy_history, regate.gate_switch_events to %I',
        'grant execute on all functions in schema regate to %I'
    ];
    v_grants jsonb := jsonb_build_object(
        'regate_reader', to_jsonb(v_reader),
        'regate_writer', to_jsonb(v_reader || v_writer),
        'regate_admin', to_jsonb(v_reader || v_writer || v_admin)
    );
    v_role text;
    v_sql text;
begin
    for v_role in select k from jsonb_object_keys(v_grants) as k loop
        if exists (select from pg_catalog.pg_roles as r where r.rolname = v_role) then
            for v_sql in select jsonb_array_elements_text(v_grants -> v_role) loop
                execute format(v_sql, v_role);
            end loop;
        end if;
    end loop;
end;
$$;
