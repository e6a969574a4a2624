"""Exceptions raised by regate-db's Python side.

Every error a user can cause ends as a :class:`RegateError` whose message is one clear line; the CLI prints
that line and exits with :attr:`RegateError.exit_code` (``--debug`` shows the traceback as well).
"""

from __future__ import annotations


class RegateError(Exception):
    """Base class: a failure with a message meant for a person."""

    exit_code = 2


class NoDatabaseError(RegateError):
    """No database was given (no --dsn, no environment variable, no --embedded)."""


class ConnectError(RegateError):
    """The server could not be reached, or refused the login."""


class UnsupportedServerError(RegateError):
    """The server is older than the oldest PostgreSQL regate-db supports."""


class SchemaNotInstalledError(RegateError):
    """The database has no regate schema yet."""


class MigrationError(RegateError):
    """A migration could not be planned or applied."""


class DriftError(MigrationError):
    """An applied migration file was edited after it ran."""


class EmbeddedError(RegateError):
    """The embedded PostgreSQL server could not be used."""
