"""Removing regate-db from a database: ``regate-db uninstall``.

Drops the schemas ``regate`` and ``regate_internal`` (every table, view, function and trigger regate-db installed,
and every job, metric, baseline and verdict in them) in one transaction, under the migrate runner's advisory lock
so that it never races a concurrent migrate. Objects of the user's outside those schemas that depend on them (a
view over ``regate.validation_results``, a foreign key to ``regate.local_training_jobs``, a trigger calling a
regate function) make it refuse, naming them, unless ``cascade`` (then they are dropped too, and named).

What it cannot drop, because it is cluster-wide and another database on the server may use it, it lists: the roles
``regate_reader``, ``regate_writer`` and ``regate_admin`` and the logins that are their members, with the
statements that remove them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from regate_db.errors import RegateError, SchemaNotInstalledError
from regate_db.migrate import LOCK_KEY

SCHEMAS = ("regate", "regate_internal")
ROLES = ("regate_reader", "regate_writer", "regate_admin")

# Objects outside regate-db's schemas whose dependency on an object inside them (a table, view, function, type,
# or the schema itself) would make DROP SCHEMA ... CASCADE drop them too. Automatic and internal dependencies
# (a table's own rowtype, an index) are the dropped objects' own parts.
_DEPENDENTS_SQL = """
with ours as (
    select n.oid from pg_catalog.pg_namespace as n where n.nspname = any(%(schemas)s)
),
objects as (
    select 'pg_catalog.pg_class'::regclass as classid, c.oid as objid
    from pg_catalog.pg_class as c where c.relnamespace in (select ours.oid from ours)
    union all
    select 'pg_catalog.pg_proc'::regclass, p.oid
    from pg_catalog.pg_proc as p where p.pronamespace in (select ours.oid from ours)
    union all
    select 'pg_catalog.pg_type'::regclass, t.oid
    from pg_catalog.pg_type as t where t.typnamespace in (select ours.oid from ours)
),
dependents as (
    -- a view's dependency is its rewrite rule's: name the view
    select distinct
        case when d.classid = 'pg_catalog.pg_rewrite'::regclass then 'pg_catalog.pg_class'::regclass else d.classid end
            as classid,
        case when d.classid = 'pg_catalog.pg_rewrite'::regclass then r.ev_class else d.objid end as objid,
        case when d.classid = 'pg_catalog.pg_rewrite'::regclass then 0 else d.objsubid end as objsubid
    from pg_catalog.pg_depend as d
    inner join objects on d.refclassid = objects.classid and d.refobjid = objects.objid
    left join pg_catalog.pg_rewrite as r on d.classid = 'pg_catalog.pg_rewrite'::regclass and r.oid = d.objid
    where d.deptype in ('n', 'a')
)
select o.type, o.identity
from dependents as x
cross join lateral pg_catalog.pg_identify_object(x.classid, x.objid, x.objsubid) as o
-- the table a column default, policy, trigger or constraint belongs to: its schema is the object's
left join pg_catalog.pg_attrdef as ad on x.classid = 'pg_catalog.pg_attrdef'::regclass and ad.oid = x.objid
left join pg_catalog.pg_policy as pol on x.classid = 'pg_catalog.pg_policy'::regclass and pol.oid = x.objid
left join pg_catalog.pg_trigger as tg on x.classid = 'pg_catalog.pg_trigger'::regclass and tg.oid = x.objid
left join pg_catalog.pg_constraint as con on x.classid = 'pg_catalog.pg_constraint'::regclass and con.oid = x.objid
left join pg_catalog.pg_class as rel on rel.oid = coalesce(ad.adrelid, pol.polrelid, tg.tgrelid, con.conrelid)
left join pg_catalog.pg_namespace as reln on reln.oid = rel.relnamespace
where coalesce(o.schema, reln.nspname, '') <> all(%(schemas)s)
order by o.type, o.identity
"""


@dataclass(frozen=True)
class UninstallPlan:
    """What uninstalling would drop, what depends on it, and what stays (cluster-wide roles)."""

    database: str
    schema_version: str | None
    counts: dict[str, int]
    dependents: list[str]
    roles: dict[str, list[str]] = field(default_factory=dict)

    def leftover_statements(self) -> list[str]:
        """SQL that removes what uninstall leaves: the roles, once no other database of the server uses them."""
        if not self.roles:
            return []
        members = sorted({m for ms in self.roles.values() for m in ms})
        roles = ", ".join(r for r in reversed(ROLES) if r in self.roles)
        statements = [f"revoke {roles} from {', '.join(members)};"] if members else []
        statements.append(f"drop role {roles};")
        return statements


def plan_uninstall(conn: psycopg.Connection[Any]) -> UninstallPlan:
    """The :class:`UninstallPlan` of the connected database; :class:`SchemaNotInstalledError` when there is none."""
    row = conn.execute(
        "select to_regprocedure('regate.schema_version()') is not null,"
        " (select count(*) from pg_catalog.pg_namespace where nspname = any(%s))",
        (list(SCHEMAS),),
    ).fetchone()
    assert row is not None
    if not row[1]:
        raise SchemaNotInstalledError(f"regate-db is not installed in {conn.info.dbname}: nothing to uninstall")
    version = None
    if row[0]:
        found = conn.execute("select regate.schema_version()").fetchone()
        version = found[0] if found else None
    counts: dict[str, int] = {}
    for table, label in (
        ("regate.local_training_jobs", "jobs"),
        ("regate.local_training_metrics", "metric rows"),
        ("regate.model_baselines", "baselines"),
        ("regate.validation_results", "verdicts"),
    ):
        exists = conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()
        if exists and exists[0]:
            # approximate for the big metrics table would mislead: count them (once, at uninstall)
            counted = conn.execute(f"select count(*) from {table}").fetchone()
            counts[label] = int(counted[0]) if counted else 0
    dependents = [f"{t} {i}" for t, i in conn.execute(_DEPENDENTS_SQL, {"schemas": list(SCHEMAS)}).fetchall()]
    roles: dict[str, list[str]] = {}
    for name, members in conn.execute(
        "select r.rolname, coalesce(array_agg(m.rolname order by m.rolname) filter (where m.rolname is not null),"
        " '{}') from pg_catalog.pg_roles as r"
        " left join pg_catalog.pg_auth_members as am on am.roleid = r.oid"
        " left join pg_catalog.pg_roles as m on m.oid = am.member and m.rolname <> all(%s)"
        " where r.rolname = any(%s) group by r.rolname",
        (list(ROLES), list(ROLES)),
    ).fetchall():
        roles[name] = list(members)
    return UninstallPlan(conn.info.dbname, version, counts, dependents, roles)


class DependentObjectsError(RegateError):
    """Objects outside regate-db's schemas depend on them: uninstall refuses without ``cascade``."""


def uninstall(conn: psycopg.Connection[Any], *, cascade: bool = False) -> UninstallPlan:
    """Drop regate-db's schemas in one transaction; the plan it carried out. Refuses (nothing dropped) when
    objects of the user's depend on them, unless ``cascade``. Needs the schemas' owner (or a superuser)."""
    with conn.transaction():
        conn.execute("select pg_catalog.pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        plan = plan_uninstall(conn)
        if plan.dependents and not cascade:
            raise DependentObjectsError(
                f"{len(plan.dependents)} object(s) outside regate-db's schemas depend on them: "
                + "; ".join(plan.dependents)
                + " — drop them first, or pass --cascade to drop them with regate-db"
            )
        try:
            conn.execute("drop schema if exists regate, regate_internal cascade")
        except psycopg.errors.InsufficientPrivilege as exc:
            raise RegateError(
                f"permission denied: only the owner of schemas regate and regate_internal (or a superuser) may"
                f" uninstall regate-db (connected as {conn.info.user}): {exc.diag.message_primary}"
            ) from exc
    return plan
