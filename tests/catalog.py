"""A comparable snapshot of everything regate-db installs: used to prove upgrade == fresh install.

It covers every schema whose name starts with ``regate`` (``regate`` today; any other, such as a
``regate_internal``, without editing this file) and the roles whose names start with ``regate``.
"""

from __future__ import annotations

from typing import Any

import psycopg

# The schemas a snapshot covers: every one whose name starts with "regate".
SCHEMAS = "n.nspname like 'regate%'"

# Each query returns sorted rows describing one kind of object in those schemas (and the regate* roles). Rows
# start with the schema's name: an object that sits in another schema than in a fresh install is a difference.
QUERIES: dict[str, str] = {
    "schemas": f"""
        select n.nspname, pg_get_userbyid(n.nspowner) is not null, n.nspacl::text,
               obj_description(n.oid, 'pg_namespace')
        from pg_namespace n where {SCHEMAS} order by 1""",
    "relations": f"""
        select n.nspname, c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
               c.relacl::text, obj_description(c.oid, 'pg_class'), c.reloptions::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where {SCHEMAS} order by 1, 2""",
    "columns": f"""
        select n.nspname, c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attacl::text,
               col_description(c.oid, a.attnum)
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where {SCHEMAS} and a.attnum > 0 and not a.attisdropped
        order by 1, 2, 4""",
    "constraints": f"""
        select n.nspname, c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid), k.condeferrable,
               k.condeferred, k.convalidated
        from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
        where {SCHEMAS} order by 1, 2, 3""",
    "indexes": f"""
        select n.nspname, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
        where {SCHEMAS} order by 1, 2""",
    "sequences": f"""
        select n.nspname, c.relname, format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmax,
               s.seqmin, s.seqcache, s.seqcycle
        from pg_sequence s join pg_class c on c.oid = s.seqrelid join pg_namespace n on n.oid = c.relnamespace
        where {SCHEMAS} order by 1, 2""",
    "functions": f"""
        select n.nspname, p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.prosecdef, p.proconfig::text,
               p.provolatile, p.proacl::text, obj_description(p.oid, 'pg_proc')
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where {SCHEMAS} order by 1, 2""",
    "triggers": f"""
        select n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
        from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
        where {SCHEMAS} and not t.tgisinternal order by 1, 2, 3""",
    "views": f"""
        select n.nspname, c.relname, pg_get_viewdef(c.oid, true)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where {SCHEMAS} and c.relkind in ('v', 'm') order by 1, 2""",
    "policies": """
        select p.schemaname, p.tablename, p.policyname, p.permissive, p.roles::text, p.cmd, p.qual, p.with_check
        from pg_policies p where p.schemaname like 'regate%' order by 1, 2, 3""",
    # Enums, domains (with their constraints), ranges and base types; composite types are relations (relkind c)
    # and array types come with their element type.
    "types": f"""
        select n.nspname, t.typname, t.typtype, pg_catalog.format_type(t.oid, null),
               (select string_agg(e.enumlabel, ',' order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid),
               format_type(nullif(t.typbasetype, 0), t.typtypmod), t.typnotnull, t.typdefault,
               (select string_agg(k.conname || ' ' || pg_get_constraintdef(k.oid), ', ' order by k.conname)
                from pg_constraint k where k.contypid = t.oid)
        from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where {SCHEMAS} and t.typtype in ('b', 'd', 'e', 'r', 'm')
          and not exists (select from pg_type e where e.typarray = t.oid)
        order by 1, 2""",
    "roles": """
        select r.rolname, r.rolcanlogin, r.rolinherit, r.rolbypassrls
        from pg_roles r where r.rolname like 'regate%' order by 1""",
    "default_privileges": f"""
        select n.nspname, d.defaclobjtype, d.defaclacl::text
        from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace
        where {SCHEMAS} order by 1, 2, 3""",
}


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every catalog fact above, as plain rows (schema_migrations' *contents* are not part of it)."""
    return {name: conn.execute(query).fetchall() for name, query in QUERIES.items()}
