"""Install cost: a fresh migrate, a no-op migrate, and cloning a migrated template (what each test pays)."""

from __future__ import annotations

import uuid

import psycopg

from bench.common import DB_PREFIX, Figure, Sizes, checked, median, timed_ms, with_db
from regate_db.migrate import migrate


def run(maintenance: str, sizes: Sizes) -> list[Figure]:
    admin = psycopg.connect(maintenance, autocommit=True)
    names: list[str] = []

    def new_db(template: str | None = None) -> str:
        name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
        admin.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
        names.append(name)
        return name

    def fresh() -> None:
        with psycopg.connect(with_db(maintenance, new_db()), autocommit=True) as conn:
            migrate(conn)

    def noop() -> None:
        with psycopg.connect(with_db(maintenance, template), autocommit=True) as conn:
            migrate(conn)

    try:
        template = new_db()
        with psycopg.connect(with_db(maintenance, template), autocommit=True) as conn:
            migrate(conn)
        repeat = sizes.migrate_repeat
        fresh_ms = median([timed_ms(fresh) for _ in range(repeat)])
        noop_ms = median([timed_ms(noop) for _ in range(repeat)])
        clone_ms = median([timed_ms(lambda: new_db(template)) for _ in range(repeat)])
    finally:
        for name in names:
            admin.execute(f'drop database if exists "{name}" with (force)')
        admin.close()
    return [
        Figure("migrate: fresh install (create database + migrate)", fresh_ms, "ms"),
        Figure("migrate: no-op run", noop_ms, "ms"),
        checked("migrate: no-op / fresh", noop_ms / fresh_ms, "ratio", "<= 0.5"),
        Figure("test database clone (create database ... template)", clone_ms, "ms"),
    ]
