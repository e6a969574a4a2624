"""What the test modules share: the checkout they test, and the statements that every test of a job repeats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.abc import Params, QueryNoTemplate

Conn = psycopg.Connection[Any]

REPO = Path(__file__).resolve().parent.parent


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
