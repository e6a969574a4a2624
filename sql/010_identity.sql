-- Identity and trust: who the session is (the owner of the rows it writes), who is an admin, and the checks
-- that SECURITY DEFINER code makes before it acts: the caller's rights, and that no trigger it did not install
-- sits on a table it is about to write (that trigger would run with the owner's rights).
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG010  a trigger regate-db did not install sits on a table the gate writes: the gate refuses to run; a
--          regate-db trigger function fired where regate-db did not attach it
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
-- regate_admin, or a member of the role that owns schema regate; never a gateway login in gateway mode (its end
-- users are tenants, whatever roles the gateway itself may reach). session_user, not current_user: SET ROLE and
-- SECURITY DEFINER cannot lend it. The one admin check of regate-db; row-level security calls it once per
-- statement.
create or replace function regate.is_admin()
returns boolean
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
-- PL/pgSQL, not SQL: PostgreSQL before 18 re-plans a SQL function with SET clauses per call. One expression, so one
-- query (four queries cost ~28 µs per call; row-level security calls it on every statement of a tenant). No
-- pg_roles: the view joins pg_authid with pg_db_role_setting, and its two lookups were half of this function's
-- instructions. A superuser needs no test of its own: PostgreSQL counts a superuser a member of every role
-- (pg_has_role ... 'MEMBER' is true), so of the schema owner. to_regrole: NULL, not an error, when the install
-- could not create regate_admin.
begin
    return
        not exists (
            select from regate_internal.settings as s
            where s.identity_mode = 'gateway' and session_user = any(s.gateway_roles)
        )
        and (
            coalesce(pg_catalog.pg_has_role(session_user, pg_catalog.to_regrole('regate_admin'), 'MEMBER'), false)
            or pg_catalog.pg_has_role(
                session_user, (select n.nspowner from pg_catalog.pg_namespace as n where n.nspname = 'regate'),
                'MEMBER'
            )
        );
end;
$$;

-- regate.current_identity() returns text: who the session is for regate-db: the login (session_user), or, in
-- gateway mode and only for the admin-listed gateway logins, 'jwt:' followed by the end user named by the
-- configured claim of request.jwt.claims (NULL when the claim is missing: such a session owns nothing and may
-- write nothing). The prefix keeps end users and logins apart: an end user whose claim is a login's name is not
-- that login.
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
    return 'jwt:' || nullif(pg_catalog.btrim(v_claims ->> v_settings.identity_claim), '');
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

-- regate_internal._misfired(function, relid): raise RG010: a SECURITY DEFINER trigger function of regate-db fired
-- on a table, or at a time, where regate-db did not attach it (only its owner could have attached it).
create or replace function regate_internal._misfired(p_function text, p_relid oid)
returns void
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    raise exception using errcode = 'RG010', message = format(
        'regate_internal.%s fires only where regate-db attached it, not on %s', p_function, p_relid::regclass
    );
end;
$$;

-- regate_internal._assert_trusted_triggers(tables, schemas): raise RG010 when a table regate-db is about to write from
-- SECURITY DEFINER code carries a trigger whose function regate-db did not install (outside regate_internal) and
-- that the owner of schema regate does not own: that trigger would run with the owner's rights. A grant of
-- TRIGGER (part of GRANT ALL) lets a role attach its own function; this check makes such a trigger harmless to
-- the gate. With `schemas`, also RG010 when anyone but the owner may CREATE in schema regate or regate_internal
-- (GRANT ALL on the schema): such a role could add an overload of a regate function that an admin's call would
-- resolve to (the gate's paths check it; the ingest path, which calls no function by name, does not).
create or replace function regate_internal._assert_trusted_triggers(p_tables regclass[], p_schemas boolean)
returns void
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
-- Runs on every completion and once per ingest transaction: one catalog scan when all is well (and a look at the
-- schemas' privileges with `schemas`), no join re-planned per call.
declare
    v_functions oid [];
    v_regate pg_catalog.pg_namespace;
    v_internal oid;
    v_trigger text;
    v_create text;
begin
    -- Two simple lookups rather than one join: with the tables as a parameter, a join re-plans on every call.
    -- The first one settles the common case alone: every trigger on the tables calls a function of
    -- regate_internal, whose name prints qualified by that schema (search_path is pg_catalog, pg_temp). No other
    -- schema can print so: an identifier with a dot in it prints quoted. A catalog cache lookup per trigger
    -- instead of an index scan of pg_proc.
    select array_agg(t.tgfoid) filter (where not pg_catalog.starts_with(t.tgfoid::regproc::text, 'regate_internal.'))
    into v_functions
    from pg_catalog.pg_trigger as t
    where t.tgrelid = any(p_tables) and not t.tgisinternal;
    if v_functions is null and not p_schemas then
        return;
    end if;
    select n.* into v_regate from pg_catalog.pg_namespace as n where n.nspname = 'regate';
    v_internal := 'regate_internal'::regnamespace;
    if v_functions is not null and exists (
        select from pg_catalog.pg_proc as f
        where f.oid = any(v_functions) and f.pronamespace <> v_internal and f.proowner <> v_regate.nspowner
    ) then
        select format('trigger %I on %s (function %s, owned by %s)', t.tgname, t.tgrelid::regclass,
            t.tgfoid::regproc, pg_catalog.pg_get_userbyid(f.proowner))
        into v_trigger
        from pg_catalog.pg_trigger as t
        inner join pg_catalog.pg_proc as f on t.tgfoid = f.oid
        where
            t.tgrelid = any(p_tables) and not t.tgisinternal
            and f.pronamespace <> v_internal and f.proowner <> v_regate.nspowner
        limit 1;
    end if;
    if p_schemas then
        select format(
            'role %s may create objects in schema %s',
            case when a.grantee = 0 then 'public' else pg_catalog.pg_get_userbyid(a.grantee) end, n.nspname
        )
        into v_create
        from pg_catalog.pg_namespace as n
        cross join lateral pg_catalog.aclexplode(n.nspacl) as a
        where
            n.oid in (v_regate.oid, v_internal)
            and n.nspacl is not null
            and a.privilege_type = 'CREATE'
            and a.grantee <> n.nspowner
        limit 1;
    end if;
    if v_create is not null then
        raise exception using
            errcode = 'RG010',
            message = format('regate-db refuses to run: %s', v_create),
            detail = 'It could add an overload of a regate function that an admin''s call would run.',
            hint = 'Revoke it: revoke create on schema regate, regate_internal from ...; regate-db migrate revokes it.';
    end if;
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

-- regate_internal._only_regate_triggers_when_planned(tables, schemas): whether every trigger on `tables` calls a
-- function of regate_internal (nothing but regate-db's own triggers: the common case) and, with `schemas`, nobody
-- but the owner may CREATE in schema regate or regate_internal. IMMUTABLE on purpose, though it reads the catalog:
-- callers pass constants in a query that names every table of `tables` in its FROM, so the planner evaluates it
-- once, when it plans that query, and the answer stays in the session's cached plan. CREATE, DROP or ALTER
-- TRIGGER on one of those tables invalidates that plan, and so does any change to a schema (GRANT CREATE
-- included): the next execution evaluates it again. False sends the caller to the exact check,
-- regate_internal._assert_trusted_triggers, which also says what is wrong; a trigger whose function is anywhere
-- else always gets it, so the cached answer never rests on who owns a function. Never call it where a stale
-- answer could matter without such a plan.
create or replace function regate_internal._only_regate_triggers_when_planned(p_tables regclass[], p_schemas boolean)
returns boolean
language sql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select
        not exists (
            select
            from pg_catalog.pg_trigger as t
            where
                t.tgrelid = any(p_tables)
                and not t.tgisinternal
                and not pg_catalog.starts_with(t.tgfoid::regproc::text, 'regate_internal.')
        )
        and not (
            p_schemas and exists (
                select
                from pg_catalog.pg_namespace as n
                cross join lateral pg_catalog.aclexplode(n.nspacl) as a
                where
                    n.nspname in ('regate', 'regate_internal')
                    and a.privilege_type = 'CREATE'
                    and a.grantee <> n.nspowner
            )
        )
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
    from unnest(coalesce(set_identity_mode.gateway_roles, '{}')) as g (name)
    where not exists (select from pg_catalog.pg_roles as r where r.rolname = g.name);
    if v_missing is not null then
        raise exception using errcode = '22023', message = format(
            'set_identity_mode: no such role: %s', v_missing
        );
    end if;
    if claim is null or pg_catalog.btrim(claim) = '' then
        raise exception using errcode = '22023', message = 'set_identity_mode: claim must be a non-empty name';
    end if;
    perform regate_internal._assert_trusted_triggers(array['regate_internal.settings'::regclass], true);
    update regate_internal.settings as s
    set
        identity_mode = set_identity_mode.mode,
        gateway_roles = case
            when set_identity_mode.mode = 'gateway' then set_identity_mode.gateway_roles else '{}'
        end,
        identity_claim = set_identity_mode.claim,
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

-- regate.security_problems() returns table (problem text, fix text): admins only. What weakens the boundary of
-- this installation, each with the statement that mends it: a superuser owner; CREATE on regate's schemas, any
-- privilege on regate_internal, TRIGGER, TRUNCATE or REFERENCES on regate's tables, or privileges on its sequences
-- held by anyone but the owner; triggers regate-db did not install on its tables; objects in regate's schemas that
-- the owner does not own; functions PUBLIC may execute. No rows: nothing found. regate-db migrate reports them.
create or replace function regate.security_problems()
returns table (problem text, fix text)
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_owner oid := regate_internal._schema_owner();
begin
    perform regate_internal._require_admin('list the security problems');
    return query
    with grants as (
        select
            case when a.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(a.grantee)) end as grantee,
            a.privilege_type,
            c.relkind,
            c.oid::regclass::text as object_name,
            c.relnamespace::regnamespace::text as schema_name
        from pg_class as c
        cross join lateral aclexplode(c.relacl) as a
        where
            c.relnamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)
            and a.grantee <> c.relowner
    )

    select
        format('schema regate is owned by superuser %s', pg_get_userbyid(v_owner)),
        'install as a dedicated NOLOGIN owner: regate-db migrate --owner regate_owner (docs/security.md)'
    where (select r.rolsuper from pg_roles as r where r.oid = v_owner)
    union all
    select
        format('%s may create objects in schema %s', x.grantee, n.nspname),
        format('revoke create on schema %s from %s', n.nspname, x.grantee)
    from pg_namespace as n
    cross join lateral (
        select
            case when a.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(a.grantee)) end as grantee,
            a.privilege_type
        from aclexplode(n.nspacl) as a
        where a.grantee <> n.nspowner
    ) as x
    where
        n.nspname in ('regate', 'regate_internal')
        and (x.privilege_type = 'CREATE' or n.nspname = 'regate_internal')
    union all
    select
        format('%s holds %s on %s', g.grantee, string_agg(g.privilege_type, ', ' order by g.privilege_type),
            g.object_name),
        format(
            'revoke %s on %s %s from %s', string_agg(g.privilege_type, ', ' order by g.privilege_type),
            case when g.relkind = 'S' then 'sequence' else 'table' end, g.object_name, g.grantee
        )
    from grants as g
    where
        g.schema_name = 'regate_internal'
        or g.relkind = 'S'
        or g.privilege_type in ('TRIGGER', 'TRUNCATE', 'REFERENCES')
    group by g.grantee, g.object_name, g.relkind
    union all
    select
        format('trigger %I on %s runs %s, which regate-db did not install', t.tgname, t.tgrelid::regclass,
            p.oid::regprocedure),
        format('drop trigger %I on %s', t.tgname, t.tgrelid::regclass)
    from pg_trigger as t
    inner join pg_proc as p on t.tgfoid = p.oid
    inner join pg_class as c on t.tgrelid = c.oid
    where
        c.relnamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)
        and not t.tgisinternal
        and p.pronamespace <> 'regate_internal'::regnamespace
        and p.proowner <> v_owner
    union all
    select
        format('function %s is owned by %s, not by the owner of schema regate', p.oid::regprocedure,
            pg_get_userbyid(p.proowner)),
        format('drop function %s', p.oid::regprocedure)
    from pg_proc as p
    where p.pronamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace) and p.proowner <> v_owner
    union all
    select
        format('%s is owned by %s, not by the owner of schema regate', c.oid::regclass, pg_get_userbyid(c.relowner)),
        format('alter table %s owner to %s (or drop it)', c.oid::regclass, quote_ident(pg_get_userbyid(v_owner)))
    from pg_class as c
    where
        c.relnamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)
        and c.relowner <> v_owner and c.relkind in ('r', 'p', 'v', 'm', 'S')
    union all
    select
        format('PUBLIC may execute %s', p.oid::regprocedure),
        format('revoke execute on function %s from public', p.oid::regprocedure)
    from pg_proc as p
    where
        p.pronamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)
        and (p.proacl is null or exists (select from aclexplode(p.proacl) as a where a.grantee = 0));
end;
$$;
