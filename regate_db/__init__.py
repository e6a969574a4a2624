"""regate-db: regression gates for ML training, enforced by PostgreSQL itself."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from regate_db.errors import GateError, RegateError

__version__ = "0.2.0.dev0"

if TYPE_CHECKING:
    from regate_db.client import AsyncClient, Check, Client, Verdict, VerdictRecord

# The client (and psycopg behind it) is imported on first use: the pytest plugin loads this package in every
# pytest run of an environment that has regate-db installed, and should cost nothing there.
_LAZY = {name: "regate_db.client" for name in ("AsyncClient", "Check", "Client", "Verdict", "VerdictRecord")}

__all__ = ["AsyncClient", "Check", "Client", "GateError", "RegateError", "Verdict", "VerdictRecord", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'regate_db' has no attribute {name!r}")
