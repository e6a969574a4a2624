-- Meta: what regate-db itself reports about the installed schema.

-- regate.schema_version(): the latest applied versioned migration ('0001', ...), NULL before the first.
create or replace function regate.schema_version()
returns text
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select max(m.version) from regate.schema_migrations as m
$$;

comment on function regate.schema_version() is
'The latest applied versioned migration of regate-db, NULL before the first.';
