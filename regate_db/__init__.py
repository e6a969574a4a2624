"""regate-db: regression gates for ML training, enforced by PostgreSQL itself."""

from regate_db.client import AsyncClient, Check, Client, Verdict, VerdictRecord
from regate_db.errors import GateError, RegateError

__version__ = "0.2.0.dev0"

__all__ = ["AsyncClient", "Check", "Client", "GateError", "RegateError", "Verdict", "VerdictRecord", "__version__"]
