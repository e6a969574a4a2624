"""A comparable snapshot of everything regate-db installs: used to prove upgrade == fresh install.

It covers every schema whose name starts with ``regate`` (``regate`` today; any other, such as a
``regate_internal``, without editing this file) and the roles whose names start with ``regate``.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from regate_db.migrate import BOOTSTRAP_SQL
from regate_db.resources import Source

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
        select n.nspname, p.oid::regprocedure::text,
               case when p.prokind = 'a' then (  -- pg_get_functiondef refuses aggregates
                   select format('aggregate: sfunc %s, stype %s, initcond %s', a.aggtransfn, a.aggtranstype::regtype,
                                 a.agginitval)
                   from pg_aggregate a where a.aggfnoid = p.oid
               ) else pg_get_functiondef(p.oid) end,
               p.prosecdef, p.proconfig::text,
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


# Every object in the regate* schemas that a file has to create by name: functions and procedures, tables, views,
# sequences (not those an identity or serial column makes), triggers (not those behind constraints), policies and
# types (not the row types of tables, array types or the multirange of a range). Rows: kind, schema, name, label.
OBJECTS = f"""
    select 'function', n.nspname, p.proname, p.oid::regprocedure::text
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where {SCHEMAS}
    union all
    select case c.relkind when 'r' then 'table' when 'p' then 'table' when 'v' then 'view'
               when 'm' then 'materialized view' when 'S' then 'sequence' when 'f' then 'foreign table' end,
           n.nspname, c.relname, c.oid::regclass::text
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where {SCHEMAS} and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
      and not (c.relkind = 'S' and exists (
          select from pg_depend d
          where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.refclassid = 'pg_class'::regclass
            and d.refobjsubid > 0 and d.deptype in ('a', 'i')))
    union all
    select 'trigger', n.nspname, t.tgname, format('%I on %s', t.tgname, c.oid::regclass)
    from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
    where {SCHEMAS} and not t.tgisinternal
    union all
    select 'policy', n.nspname, p.polname, format('%I on %s', p.polname, c.oid::regclass)
    from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
    where {SCHEMAS}
    union all
    select 'type', n.nspname, t.typname, t.oid::regtype::text
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
    where {SCHEMAS} and t.typtype <> 'm'
      and (t.typrelid = 0 or (select c.relkind from pg_class c where c.oid = t.typrelid) = 'c')
      and not exists (select from pg_type e where e.typarray = t.oid)
    order by 1, 2, 3, 4"""


def objects(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str, str]]:
    """(kind, schema, name, label) of every object in the regate* schemas that a file creates by name."""
    return [(str(k), str(s), str(n), str(label)) for k, s, n, label in conn.execute(OBJECTS).fetchall()]


def shipped_text(source: Source) -> str:
    """All the SQL regate-db ships: versioned and repeatable files, and the runner's bootstrap."""
    return "\n".join([BOOTSTRAP_SQL, *(f.text for f in source.versioned()), *(f.text for f in source.repeatable())])


def orphans(conn: psycopg.Connection[Any], text: str) -> list[str]:
    """The objects of the regate* schemas whose name appears nowhere in ``text`` (as a whole identifier): left
    behind by a rename, or created under a name no file spells out."""
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", text)}
    quoted = set(re.findall(r'"((?:[^"]|"")+)"', text))
    return [
        f"{kind} {label}"
        for kind, _, name, label in objects(conn)
        if name not in words and name.replace('"', '""') not in quoted
    ]
