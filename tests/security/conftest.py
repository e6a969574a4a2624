"""Fixtures for the hostile test suite: real login roles over real connections, as an attacker would connect."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

Conn = psycopg.Connection[Any]


class Logins:
    """Creates login roles (granted a regate level) in the test's database; drops them after the test."""

    def __init__(self, admin: Conn, dsn: str) -> None:
        self.admin = admin
        self.dsn = dsn
        self.names: list[str] = []
        self.conns: list[Conn] = []

    def role(self, level: str | None = "writer", prefix: str = "rg_sec") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.admin.execute(f"create role {name} login password 'pw-{name}'")
        self.names.append(name)
        if level:
            self.admin.execute("select regate.grant_usage(%s, %s)", (name, level))
        return name

    def connect(self, name: str, *, autocommit: bool = True) -> Conn:
        conn = psycopg.connect(
            conninfo.make_conninfo(self.dsn, user=name, password=f"pw-{name}"), autocommit=autocommit
        )
        self.conns.append(conn)
        return conn

    def login(self, level: str | None = "writer") -> tuple[str, Conn]:
        name = self.role(level)
        return name, self.connect(name)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        for name in self.names:
            self.admin.execute(f"drop owned by {name} cascade")
            self.admin.execute(f"drop role {name}")


@pytest.fixture
def logins(db: Conn, db_dsn: str) -> Iterator[Logins]:
    made = Logins(db, db_dsn)
    yield made
    made.close()


def refused(conn: Conn, sqlstate: str, sql: str, params: Any = None) -> psycopg.Error:
    """Run sql on conn and assert it fails with exactly this SQLSTATE; returns the error."""
    with pytest.raises(psycopg.Error) as err:
        conn.execute(sql, params)
    assert err.value.sqlstate == sqlstate, f"expected {sqlstate}, got {err.value.sqlstate}: {err.value}"
    return err.value


def new_job(conn: Conn, model: str = "secure-model", status: str = "running", config: str = "{}") -> str:
    row = conn.execute(
        "insert into regate.local_training_jobs (model_name, status, config) values (%s, %s, %s::jsonb) returning id",
        (model, status, config),
    ).fetchone()
    assert row is not None
    return str(row[0])


def log(conn: Conn, job: str, step: int, **metrics: float) -> None:
    conn.execute(
        "insert into regate.local_training_metrics (job_id, step, eval_loss) values (%s, %s, %s)",
        (job, step, metrics.get("eval_loss")),
    )


def complete(conn: Conn, job: str) -> tuple[str, int | None]:
    row = conn.execute(
        "update regate.local_training_jobs set status = 'completed' where id = %s"
        " returning validation_status, validation_result_id",
        (job,),
    ).fetchone()
    assert row is not None, f"job {job} not visible to this role"
    return row[0], row[1]


@pytest.fixture
def baseline(db: Conn) -> Callable[..., None]:
    """A critical eval_loss baseline (0.40, at most 5% worse) for secure-model, created by the admin."""

    def make(model: str = "secure-model") -> None:
        db.execute(
            "select regate.create_baseline(model_name => %s, metric_name => 'eval_loss', baseline_value => 0.40,"
            " min_relative_change => -0.05)",
            (model,),
        )

    make()
    return make
