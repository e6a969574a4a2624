-- Identity and trust: who the session is (the owner of the rows it writes), who is an admin, and the checks
-- that SECURITY DEFINER code makes before it acts: the caller's rights, and that no trigger it did not install
-- sits on a table it is about to write (that trigger would run with the owner's rights).
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG010  a trigger regate-db did not install sits on a table the gate writes: the gate refuses to run
--   42501  a non-admin called an admin-only function
--   22023  set_identity_mode with a bad argument

-- regate_internal._schema_owner(): the role that owns schema regate (and so every regate-db object).
create or replace function regate_internal._schema_owner()
returns oid
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select n.nspowner from pg_catalog.pg_namespace as n where n.nspname = 'regate'
$$;

-- regate.is_admin() returns boolean: whether the session's login is a regate admin: a superuser, a member of
-- regate_admin, or a member of the role that owns schema regate. session_user, not current_user: SET ROLE and
-- SECURITY DEFINER cannot lend it. The one admin check of regate-db. Row-level security and guards running as
-- the caller use it, so it calls nothing in regate_internal.
create or replace function regate.is_admin()
returns boolean
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
-- PL/pgSQL, not SQL: row-level security calls it once per statement, and PostgreSQL before 18 re-plans a SQL
-- function with SET clauses per call.
begin
    return coalesce((select r.rolsuper from pg_catalog.pg_roles as r where r.rolname = session_user), false)
        or coalesce((
            select pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER')
            from pg_catalog.pg_roles as r where r.rolname = 'regate_admin'
        ), false)
        or pg_catalog.pg_has_role(
            session_user, (select n.nspowner from pg_catalog.pg_namespace as n where n.nspname = 'regate'), 'MEMBER'
        );
end;
$$;

-- regate.current_identity() returns text: who the session is for regate-db: the login (session_user), or, in
-- gateway mode and only for the admin-listed gateway logins, the end user named by the configured claim of
-- request.jwt.claims (NULL when the claim is missing: such a session owns nothing and may write nothing).
create or replace function regate.current_identity()
returns text
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_settings regate_internal.settings;
    v_claims jsonb;
begin
    select s.* into v_settings from regate_internal.settings as s;
    if v_settings.identity_mode is distinct from 'gateway' or not session_user = any(v_settings.gateway_roles) then
        return session_user;
    end if;
    begin
        v_claims := nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb;
    exception when others then
        return null;  -- claims that are not JSON identify nobody
    end;
    return nullif(pg_catalog.btrim(v_claims ->> v_settings.identity_claim), '');
end;
$$;

-- regate_internal._require_admin(action): raise 42501 unless the session is a regate admin.
create or replace function regate_internal._require_admin(p_action text)
returns void
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if not regate.is_admin() then
        raise exception using
            errcode = '42501',
            message = format(
                'permission denied: only a regate admin (a member of regate_admin, a member of the owner of schema '
                'regate, or a superuser) may %s', p_action
            );
    end if;
end;
$$;

-- regate_internal._may_see(owner_id): whether the session may see and act on a row owned by owner_id: its own,
-- or any for an admin. Definer code checks it explicitly (row-level security does not bind a superuser owner).
create or replace function regate_internal._may_see(p_owner_id text)
returns boolean
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    return p_owner_id = regate.current_identity() or regate.is_admin();
end;
$$;

-- regate_internal._assert_trusted_triggers(tables): raise RG010 when a table regate-db is about to write from
-- SECURITY DEFINER code carries a trigger whose function regate-db did not install (outside regate_internal) and
-- that the owner of schema regate does not own: that trigger would run with the owner's rights. A grant of
-- TRIGGER (part of GRANT ALL) lets a role attach its own function; this check makes such a trigger harmless.
create or replace function regate_internal._assert_trusted_triggers(p_tables regclass[])
returns void
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_trigger text;
begin
    select format('trigger %I on %s (function %s, owned by %s)', t.tgname, t.tgrelid::regclass, p.oid::regproc,
        pg_catalog.pg_get_userbyid(p.proowner))
    into v_trigger
    from pg_catalog.pg_trigger as t
    inner join pg_catalog.pg_proc as p on t.tgfoid = p.oid
    where
        t.tgrelid = any(p_tables)
        and not t.tgisinternal
        and p.pronamespace <> 'regate_internal'::regnamespace
        and p.proowner <> regate_internal._schema_owner()
    limit 1;
    if v_trigger is not null then
        raise exception using
            errcode = 'RG010',
            message = format('regate-db refuses to run: %s was not installed by regate-db', v_trigger),
            detail = 'It would run with the rights of the owner of schema regate whenever the gate writes there.',
            hint = 'Drop the trigger, or have the owner of schema regate own its function. Do not grant TRIGGER '
            || 'on regate tables.';
    end if;
end;
$$;

-- regate.set_identity_mode(mode text, gateway_roles text[], claim text): admins only. 'login' (default): the
-- owner of what a session writes is its login. 'gateway': for sessions whose login is one of gateway_roles
-- (e.g. PostgREST's authenticator), the end user named by request.jwt.claims ->> claim; every other login is
-- still itself. Returns the settings now in force as {"identity_mode", "gateway_roles", "identity_claim"}.
-- Raises 22023 for an unknown mode or gateway role.
create or replace function regate.set_identity_mode(
    mode text, gateway_roles text[] default '{}', claim text default 'sub'
)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_variable
declare
    v_missing text;
begin
    perform regate_internal._require_admin('change the identity mode');
    if mode is null or mode not in ('login', 'gateway') then
        raise exception using errcode = '22023', message = format(
            'set_identity_mode: mode must be ''login'' or ''gateway'', got %L', mode
        );
    end if;
    if mode = 'gateway' and coalesce(cardinality(gateway_roles), 0) = 0 then
        raise exception using errcode = '22023', message =
            'set_identity_mode: gateway mode needs gateway_roles, the logins of the gateway (e.g. authenticator)';
    end if;
    select string_agg(g.name, ', ') into v_missing
    from unnest(coalesce(gateway_roles, '{}')) as g (name)
    where not exists (select from pg_catalog.pg_roles as r where r.rolname = g.name);
    if v_missing is not null then
        raise exception using errcode = '22023', message = format(
            'set_identity_mode: no such role: %s', v_missing
        );
    end if;
    if claim is null or pg_catalog.btrim(claim) = '' then
        raise exception using errcode = '22023', message = 'set_identity_mode: claim must be a non-empty name';
    end if;
    perform regate_internal._assert_trusted_triggers(array['regate_internal.settings'::regclass]);
    update regate_internal.settings as s
    set
        identity_mode = mode,
        gateway_roles = case when mode = 'gateway' then gateway_roles else '{}' end,
        identity_claim = claim,
        updated_by = session_user,
        updated_at = now();
    return (
        select jsonb_build_object(
            'identity_mode', s.identity_mode, 'gateway_roles', to_jsonb(s.gateway_roles),
            'identity_claim', s.identity_claim
        )
        from regate_internal.settings as s
    );
end;
$$;
