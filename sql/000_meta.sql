-- Meta: what regate-db reports about the installed schema, and the public signatures that changed since an
-- earlier release (dropped here, before the files below create their successors, so that no call is ambiguous
-- while the files are applied). Everything else that a release stopped defining is dropped by 900_cleanup.sql.
--
-- Error codes raised here: none.

drop function if exists regate.effective_config(jsonb);

-- regate.schema_version(): the latest applied versioned migration ('0001', ...), NULL before the first.
-- Definer: the bookkeeping lives in regate_internal, which no client may read.
create or replace function regate.schema_version()
returns text
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
    select max(m.version) from regate_internal.schema_migrations as m
$$;

comment on function regate.schema_version() is
'The latest applied versioned migration of regate-db, NULL before the first.';
