"""What the test modules share: the checkout they test, and the statements that every test of a job repeats."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.abc import Params, QueryNoTemplate
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]

REPO = Path(__file__).resolve().parent.parent


def run(cmd: list[str], env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run `cmd` (e.g. the regate_cmd fixture) with `args` in `env`, capturing its output, whatever its exit code."""
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def new_job(
    db: Conn,
    model: str = "gpt-small",
    *,
    version: str | None = None,
    status: str = "running",
    config: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    """Insert a training job (running, with an empty config, unless told otherwise); return its id."""
    row = db.execute(
        "insert into regate.local_training_jobs (model_name, model_version, status, config)"
        " values (%s, %s, %s, %s) returning id",
        (model, version, status, Jsonb(config or {})),
    ).fetchone()
    assert row is not None and isinstance(row[0], uuid.UUID)
    return row[0]


def log(db: Conn, job: uuid.UUID, step: int, metrics: Mapping[str, Any] | None = None, **columns: float | None) -> int:
    """Insert one metric row: the fixed columns (train_loss, eval_loss, ...) as keyword arguments, any other named
    metric in `metrics` (jsonb); return its id."""
    names = ["job_id", "step", *columns, "metrics"]
    row = db.execute(
        sql.SQL("insert into regate.local_training_metrics ({}) values ({}) returning id").format(
            sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(sql.Placeholder() * len(names))
        ),
        [job, step, *columns.values(), Jsonb(metrics or {})],
    ).fetchone()
    assert row is not None
    return int(row[0])


def complete(db: Conn, job: uuid.UUID) -> tuple[str | None, int | None]:
    """Set the job's status to completed, as a client does: the gate validates it in that statement. Return the
    job's (validation_status, validation_result_id) after it."""
    row = db.execute(
        "update regate.local_training_jobs set status = 'completed' where id = %s"
        " returning validation_status, validation_result_id",
        (job,),
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def refused(
    db: Conn, sqlstate: str | tuple[str, ...], query: QueryNoTemplate, params: Params | None = None
) -> psycopg.Error:
    """Run `query` and assert that it fails with `sqlstate` (or one of several); return the error to check its
    message."""
    expected = (sqlstate,) if isinstance(sqlstate, str) else sqlstate
    with pytest.raises(psycopg.Error) as err:
        db.execute(query, params)
    assert err.value.sqlstate in expected, f"expected {sqlstate}, got {err.value.sqlstate}: {err.value}"
    return err.value


def message(err: psycopg.Error) -> str:
    """The primary message of a server error, without severity, detail or hint."""
    return err.diag.message_primary or ""


# The final metrics of a job recomputed from its raw rows alone (the rule
# that the gate's final metrics keep): per metric, the value of the row with the highest (step, id) that carries it.
FINALS_FROM_RAW_ROWS = """
select jsonb_object_agg(f.name, f.value)::text
from (
    select distinct on (k.name) k.name, k.value
    from regate.local_training_metrics as m
    cross join lateral (
        select c.name, regate_internal._float8_jsonb(c.value) as value
        from (values ('epoch', m.epoch), ('train_loss', m.train_loss), ('eval_loss', m.eval_loss),
                     ('perplexity', m.perplexity), ('learning_rate', m.learning_rate), ('grad_norm', m.grad_norm))
             as c (name, value)
        where c.value is not null
        union all
        select e.key, regate_internal._float8_jsonb(regate_internal._jsonb_float8(e.value))
        from jsonb_each(m.metrics) as e
    ) as k
    where m.job_id = %s
    order by k.name, m.step desc, m.id desc
) as f
"""
