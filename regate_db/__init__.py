"""regate-db: regression gates for ML training, enforced by PostgreSQL itself."""

from regate_db.errors import RegateError

__version__ = "0.2.0.dev0"

__all__ = ["RegateError", "__version__"]
