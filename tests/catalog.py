"""A comparable snapshot of everything regate-db installs: used to prove upgrade == fresh install."""

from __future__ import annotations

from typing import Any

import psycopg

# Each query returns sorted rows describing one kind of object in schema regate (and the roles it owns).
QUERIES: dict[str, str] = {
    "schemas": """
        select n.nspname, pg_get_userbyid(n.nspowner) is not null, n.nspacl::text,
               obj_description(n.oid, 'pg_namespace')
        from pg_namespace n where n.nspname = 'regate'""",
    "relations": """
        select c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity, c.relacl::text,
               obj_description(c.oid, 'pg_class'), c.reloptions::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'regate' order by 1""",
    "columns": """
        select c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attacl::text,
               col_description(c.oid, a.attnum)
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where n.nspname = 'regate' and a.attnum > 0 and not a.attisdropped
        order by 1, 3""",
    "constraints": """
        select c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid), k.condeferrable, k.condeferred,
               k.convalidated
        from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'regate' order by 1, 2""",
    "indexes": """
        select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'regate' order by 1""",
    "functions": """
        select p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.prosecdef, p.proconfig::text,
               p.provolatile, p.proacl::text, obj_description(p.oid, 'pg_proc')
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'regate' order by 1""",
    "triggers": """
        select c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
        from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'regate' and not t.tgisinternal order by 1, 2""",
    "views": """
        select c.relname, pg_get_viewdef(c.oid, true)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'regate' and c.relkind in ('v', 'm') order by 1""",
    "policies": """
        select p.tablename, p.policyname, p.permissive, p.roles::text, p.cmd, p.qual, p.with_check
        from pg_policies p where p.schemaname = 'regate' order by 1, 2""",
    "types": """
        select t.typname, t.typtype, pg_catalog.format_type(t.oid, null),
               (select string_agg(e.enumlabel, ',' order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid)
        from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where n.nspname = 'regate' and t.typtype in ('e', 'd', 'c')
          and not exists (select from pg_class c where c.reltype = t.oid)
        order by 1""",
    "roles": """
        select r.rolname, r.rolcanlogin, r.rolinherit, r.rolbypassrls
        from pg_roles r where r.rolname like 'regate%' order by 1""",
    "default_privileges": """
        select d.defaclobjtype, d.defaclacl::text
        from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace
        where n.nspname = 'regate' order by 1, 2""",
}


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every catalog fact above, as plain rows (schema_migrations' *contents* are not part of it)."""
    return {name: conn.execute(query).fetchall() for name, query in QUERIES.items()}
