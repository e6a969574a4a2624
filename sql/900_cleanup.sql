-- Cleanup: drop what earlier releases defined and these files no longer do (renamed or moved functions, their
-- triggers, compatibility views), so that an upgraded database equals a fresh install. Runs after every
-- definition and before 990_privileges.sql (whose GRANTs touch every function), in the same transaction as the
-- files before it: every object those files (re)created carries this transaction's id as its
-- catalog row's xmin; an object of regate-db's schemas that does not was not defined by this release.
-- Tables and sequences are data and are never dropped here (versioned migrations drop them).
--
-- Error codes raised here: none (a user object that depends on a dropped function makes migrate fail, naming
-- it, and nothing is changed).

do $$
declare
    v_xid text := (pg_catalog.pg_current_xact_id()::text::numeric % 4294967296)::text;
    v record;
begin
    for v in
        -- triggers whose function lives in regate-db's schemas (a user's own triggers are not ours to drop)
        select format('drop trigger %I on %s', t.tgname, t.tgrelid::regclass) as sql, 1 as pass
        from pg_catalog.pg_trigger as t
        inner join pg_catalog.pg_proc as p on t.tgfoid = p.oid
        inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
        where not t.tgisinternal and n.nspname in ('regate', 'regate_internal') and t.xmin::text <> v_xid
        union all
        select format('drop policy %I on %s', pol.polname, pol.polrelid::regclass), 1
        from pg_catalog.pg_policy as pol
        inner join pg_catalog.pg_class as c on pol.polrelid = c.oid
        where c.relnamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace) and pol.xmin::text <> v_xid
        union all
        select format('drop view %s', c.oid::regclass), 2
        from pg_catalog.pg_class as c
        where
            c.relnamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace)
            and c.relkind = 'v' and c.xmin::text <> v_xid
        union all
        select format('drop routine %s', p.oid::regprocedure), 3  -- a function or an aggregate
        from pg_catalog.pg_proc as p
        where p.pronamespace in ('regate'::regnamespace, 'regate_internal'::regnamespace) and p.xmin::text <> v_xid
        order by pass
    loop
        raise notice 'regate-db: %, no longer defined', v.sql;
        execute v.sql;
    end loop;
end;
$$;
