"""Follow the alerts outbox (``regate.alerts``): catch up from a cursor, LISTEN for new alerts, deliver each one.

The outbox is the source of truth. An alert row gets its ``id`` when its transaction commits, in commit order, and
a ``NOTIFY regate_alerts`` at the same moment. The notification is only a wake-up call: :class:`Watcher` always
reads the rows themselves (``where id > cursor order by id``), so a notification that was missed (the connection
dropped, the listener was not running) costs nothing but latency; ``poll`` re-reads the outbox even without one.

Delivery is at-least-once and in id order:

* the cursor (the last delivered id) advances only after a delivery succeeded, and with a state file it is written
  there (atomically: a temporary file, then ``os.replace``) before the next alert is delivered;
* an alert whose hook failed is retried (with backoff) and never skipped; with ``once`` the run stops instead, and
  the next run delivers it again;
* a process killed between a hook's success and the write of the state file delivers that alert again next time;
* within one run no id is delivered twice (each successful delivery moves the cursor past it).

The ``regate-db watch`` command (:data:`watch_cmd`) is a thin shell over :class:`Watcher`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
import psycopg
from psycopg.rows import dict_row

from regate_db.clikit import Options, connect_from, db_options, echo_err, json_option, resolve
from regate_db.errors import RegateError
from regate_db.gates import require_schema

CHANNEL = "regate_alerts"
KINDS = ("blocked", "error", "first_failure", "override", "policy_changed", "gates_switched")
MAX_BACKOFF = 60.0
BATCH = 500
COLUMNS = "id, kind, model_name, job_id, validation_result_id, details, created_at"


class WatchError(RegateError):
    """The watcher cannot go on (its state file is unreadable, the outbox is not there, ...)."""


class HookFailedError(RegateError):
    """With ``once``: the hook failed for an alert, which stays undelivered (the next run delivers it again)."""

    exit_code = 1


# --- alerts ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One row of ``regate.alerts``."""

    id: int
    kind: str
    model_name: str | None
    job_id: uuid.UUID | None
    validation_result_id: int | None
    details: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alert:
        details = row.get("details")
        return cls(
            id=int(row["id"]),
            kind=str(row["kind"]),
            model_name=row.get("model_name"),
            job_id=row.get("job_id"),
            validation_result_id=row.get("validation_result_id"),
            details=details if isinstance(details, dict) else ({} if details is None else {"value": details}),
            created_at=row["created_at"],
        )

    def as_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready values: what ``--json`` prints and what a hook reads on stdin."""
        return {
            "id": self.id,
            "kind": self.kind,
            "model_name": self.model_name,
            "job_id": str(self.job_id) if self.job_id is not None else None,
            "validation_result_id": self.validation_result_id,
            "details": self.details,
            "created_at": self.created_at.isoformat(),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), default=_json_default, separators=(",", ":"))

    def line(self) -> str:
        """One readable line: ``#12 2026-12-02 10:00:01 blocked         model=fraud job=... result=7 status=...``."""
        at = self.created_at.astimezone() if self.created_at.tzinfo else self.created_at
        parts = [f"#{self.id}", f"{at:%Y-%m-%d %H:%M:%S}", f"{self.kind:<14}"]
        if self.model_name is not None:
            parts.append(f"model={self.model_name}")
        if self.job_id is not None:
            parts.append(f"job={self.job_id}")
        if self.validation_result_id is not None:
            parts.append(f"result={self.validation_result_id}")
        summary = summarize(self.details)
        if summary:
            parts.append(summary)
        return " ".join(parts)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def summarize(details: dict[str, Any], limit: int = 160) -> str:
    """The details of an alert as ``key=value`` pairs on one line (nested values as compact JSON), cut at
    ``limit`` characters."""
    parts: list[str] = []
    for key, value in details.items():
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, str):
            text = value if value and not any(c.isspace() for c in value) else json.dumps(value)
        else:
            text = json.dumps(value, default=_json_default, separators=(",", ":"))
        parts.append(f"{key}={text}")
    out = " ".join(parts)
    return out if len(out) <= limit else out[: limit - 1] + "…"


# --- the cursor ------------------------------------------------------------------------------------------------


def read_state(path: Path) -> int | None:
    """The last delivered id recorded in ``path``, or None when the file does not exist.

    The file holds ``{"last_delivered_id": N}`` (what :func:`write_state` writes) or just the number.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WatchError(f"cannot read the state file {path}: {exc.strerror or exc}") from exc
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            value = value.get("last_delivered_id")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(value)
    except ValueError as exc:
        raise WatchError(
            f'the state file {path} does not hold a last delivered alert id ({{"last_delivered_id": N}}):'
            " fix or remove it"
        ) from exc
    return value


def write_state(path: Path, last_id: int) -> None:
    """Record ``last_id`` in ``path`` atomically: a reader (or a crash) sees the old content or the new one."""
    payload = json.dumps({"last_delivered_id": last_id, "updated_at": datetime.now().astimezone().isoformat()})
    directory = path.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise WatchError(f"cannot write the state file {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w") as f:
            f.write(payload + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- delivery --------------------------------------------------------------------------------------------------


def run_hook(command: str, alert: Alert) -> int:
    """Run ``command`` through the shell with the alert's JSON on stdin and REGATE_ALERT_* in the environment,
    its stdout sent to our stderr; return its exit status."""
    env = {
        **os.environ,
        "REGATE_ALERT_ID": str(alert.id),
        "REGATE_ALERT_KIND": alert.kind,
        "REGATE_ALERT_MODEL": alert.model_name or "",
        "REGATE_ALERT_JOB": str(alert.job_id) if alert.job_id is not None else "",
    }
    sys.stdout.flush()
    sys.stderr.flush()
    # The hook's output goes to stderr: stdout carries the alerts only (one per line, for a pipe or --json).
    proc = subprocess.run(
        command, shell=True, input=alert.to_json() + "\n", text=True, env=env, stdout=sys.stderr, check=False
    )
    return proc.returncode


@dataclass
class Watcher:
    """Deliver the alerts of the outbox after ``cursor``, in id order, at least once.

    ``connect`` opens a new connection (autocommit; called again after the connection dropped). ``emit`` receives
    each alert first (to print it), then ``hook`` (a shell command) runs with its JSON on stdin; the delivery
    succeeded when it exits 0. ``kinds`` filters and ``since`` skips the alerts created before it (the cursor
    moves past the alerts they leave out). ``state`` is the file that remembers the cursor.
    """

    connect: Callable[[], psycopg.Connection[Any]]
    emit: Callable[[Alert], None]
    cursor: int = 0
    hook: str | None = None
    kinds: frozenset[str] = frozenset()
    since: datetime | None = None
    state: Path | None = None
    poll: float = 30.0
    backoff: float = 1.0
    log: Callable[[str], None] = echo_err
    sleep: Callable[[float], None] = time.sleep
    delivered: int = 0
    _persisted: int | None = field(default=None, repr=False)
    _backend: int | None = field(default=None, repr=False)  # the server process of the last catch-up

    # -- one pass over the outbox

    def catch_up(self, conn: psycopg.Connection[Any], *, once: bool = False) -> int:
        """Deliver every alert after the cursor, in id order; return how many were delivered.

        First numbers the committed alerts that are still unnumbered (their transaction waited too long for the
        numbering lock; ``regate.number_alerts()``), so that they are not left for the next alert to number."""
        count = 0
        # prepare=False: never a server-side prepared statement, whatever the connection's prepare_threshold (a
        # transaction pooler may run the next poll on another server connection, where it does not exist).
        row = conn.execute("select regate.number_alerts(), pg_catalog.pg_backend_pid()", prepare=False).fetchone()
        self._backend = int(row[1]) if row is not None else None
        while True:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(
                    f"select {COLUMNS} from regate.alerts where id > %s order by id limit %s",
                    (self.cursor, BATCH),
                    prepare=False,
                )
                rows = cur.fetchall()
            for row in rows:
                alert = Alert.from_row(row)
                if alert.id <= self.cursor:  # impossible with `id > cursor order by id`; never go back
                    continue
                if self._wanted(alert):
                    self._deliver(alert, once=once)
                    count += 1
                    self.cursor = alert.id
                    self._persist()  # after each delivery, before the next one
                else:
                    self.cursor = alert.id
            if len(rows) < BATCH:
                self._persist()  # past a filtered-out tail, so that the next run does not read it again
                return count

    def _wanted(self, alert: Alert) -> bool:
        if self.kinds and alert.kind not in self.kinds:
            return False
        return self.since is None or alert.created_at >= self.since

    def _persist(self) -> None:
        if self.state is not None and self._persisted != self.cursor:
            write_state(self.state, self.cursor)
            self._persisted = self.cursor

    def _deliver(self, alert: Alert, *, once: bool) -> None:
        self.emit(alert)
        delay = self.backoff
        while self.hook is not None:
            status = run_hook(self.hook, alert)
            if status == 0:
                break
            reason = f"exit status {status}" if status > 0 else f"killed by signal {-status}"
            if once:
                raise HookFailedError(
                    f"the hook failed for alert #{alert.id} ({reason}); it stays undelivered"
                    + (f" ({self.state} still says #{read_state(self.state)})" if self.state is not None else "")
                )
            self.log(f"watch: the hook failed for alert #{alert.id} ({reason}); retrying in {delay:g} s")
            self.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
        self.delivered += 1

    # -- the loop

    def run_once(self) -> int:
        """Catch up and return the number of alerts delivered (``--once``)."""
        with self.connect() as conn:
            return self.catch_up(conn, once=True)

    def run(self) -> None:
        """Catch up, then deliver alerts as they come, until KeyboardInterrupt.

        The first connection must succeed (a wrong DSN is an error, not an outage). When the connection drops
        later (a server restart), reconnect with backoff for ever, then LISTEN again and catch up from the cursor.
        """
        conn = self.connect()
        while True:
            try:
                with conn:
                    self._follow(conn)
            except psycopg.Error as exc:
                if not (conn.broken or conn.closed):
                    raise  # the server answered: an error of ours or of the schema, not an outage
                self.log(f"watch: connection lost ({_first_line(exc)}); reconnecting")
            conn = self._reconnect()

    def _reconnect(self) -> psycopg.Connection[Any]:
        delay = self.backoff
        while True:
            self.sleep(delay)
            try:
                conn = self.connect()
            except (RegateError, psycopg.OperationalError) as exc:
                delay = min(delay * 2, MAX_BACKOFF)
                self.log(f"watch: cannot reconnect ({_first_line(exc)}); next try in {delay:g} s")
                continue
            self.log(f"watch: reconnected; catching up after alert #{self.cursor}")
            return conn

    def _follow(self, conn: psycopg.Connection[Any]) -> None:
        # LISTEN before the catch-up: an alert that commits in between is not missed. In a transaction of its own,
        # to learn which server process listens. Through a transaction pooler no notification arrives (the LISTEN
        # stays with a server connection that serves other clients) and only polling finds the alerts; a poll on
        # another server process than the LISTEN's proves such a pooler, and watch says so once.
        with conn.transaction():
            conn.execute(f"listen {CHANNEL}")
            row = conn.execute("select pg_catalog.pg_backend_pid()", prepare=False).fetchone()
        listener = int(row[0]) if row is not None else None
        warned = False
        self.catch_up(conn)
        while True:
            if not warned and self._backend is not None and self._backend != listener:
                warned = True
                self.log(
                    f"watch: LISTEN ran on server process {listener}, this poll on {self._backend}: a transaction"
                    " pooler (e.g. PgBouncer pool_mode = transaction) is between watch and PostgreSQL, so"
                    f" notifications do not arrive and alerts come by polling, every {self.poll:g} s. Connect watch"
                    " to PostgreSQL directly (or through a session pool) to get them at once (docs/poolers.md)."
                )
            woken = [_notified_id(n.payload) for n in conn.notifies(timeout=self.poll, stop_after=1)]
            if woken and all(i is not None and i <= self.cursor for i in woken):
                continue  # alerts the last catch-up delivered already
            self.catch_up(conn)  # notified, or the poll period passed (covers a missed notification)


def _notified_id(payload: str) -> int | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    alert_id = value.get("id") if isinstance(value, dict) else None
    return alert_id if isinstance(alert_id, int) else None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# --- where to start --------------------------------------------------------------------------------------------


def newest_id(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("select coalesce(max(id), 0) from regate.alerts").fetchone()
    return int(row[0]) if row is not None else 0


def check_outbox(conn: psycopg.Connection[Any]) -> None:
    """Raise a clear error when the database has no ``regate.alerts`` (an older schema: run migrate) or the login
    may not read it."""
    require_schema(conn)
    row = conn.execute(
        "select exists (select from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n"
        " on n.oid = c.relnamespace where n.nspname = 'regate' and c.relname = 'alerts')"
    ).fetchone()
    if row is None or not row[0]:
        raise WatchError(
            f"the regate schema in {conn.info.dbname} has no alerts outbox (regate.alerts): run regate-db migrate"
        )
    try:
        conn.execute("select from regate.alerts limit 0")
    except psycopg.errors.InsufficientPrivilege as exc:
        raise WatchError(
            f"permission denied: role {conn.info.user} cannot read regate.alerts; ask an admin to grant it the"
            f" reader level: select regate.grant_usage('{conn.info.user}', 'reader')"
        ) from exc


# --- the command -----------------------------------------------------------------------------------------------


def _connector(dsn: str, source: str) -> Callable[[], psycopg.Connection[Any]]:
    def connect() -> psycopg.Connection[Any]:
        # keepalives: a listener on a dead TCP connection would otherwise wait for ever (ignored on Unix sockets)
        conn = connect_from(
            dsn,
            source,
            autocommit=True,
            application_name="regate-db watch",
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        return conn

    return connect


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM ends watch like Ctrl-C: cleanly, exit status 0


if TYPE_CHECKING:
    _ParamType = click.ParamType[datetime]
else:
    _ParamType = click.ParamType  # generic only since click 8.5; regate-db supports 8.1


class _DateTime(_ParamType):
    """An ISO 8601 date or date and time, aware (local time when it names no offset)."""

    name = "datetime"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = datetime.fromisoformat(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a date or date and time (ISO 8601, e.g. 2026-12-01T10:00)", param, ctx)
        return parsed if parsed.tzinfo is not None else parsed.astimezone()


WATCH_HELP = """Print each alert of the outbox (regate.alerts) as it arrives; run a hook per alert with --exec.

\b
Alerts: blocked, error, first_failure (a model's first failed or blocked verdict), override,
policy_changed, gates_switched. watch LISTENs on channel regate_alerts and reads every alert from
the outbox table in id (commit) order; it also re-reads the outbox every --poll seconds, and after a
lost connection (a server restart) it reconnects with backoff and catches up where it stopped.

\b
Where it starts: --state FILE when the file exists (the last delivered id), else --since-id N
(the alerts after N; 0 = all) or --since DATETIME (the alerts created at/after it), else the alerts
to come (with --once: all of them).

\b
Delivery is at-least-once, in id order: with --state the last delivered id is written to FILE
(atomically) after each alert was printed and its hook exited 0. A hook that fails (non-zero exit) is
retried with backoff (1 s doubling up to 60 s) until it succeeds, never skipped; with --once watch
stops at that alert instead and exits 1. A hook therefore sees an alert again after a crash: use
REGATE_ALERT_ID to drop duplicates where it matters. Ctrl-C or SIGTERM ends watch with status 0.

\b
The hook runs through the shell with the alert as one JSON object on stdin
({"id", "kind", "model_name", "job_id", "validation_result_id", "details", "created_at"}) and
REGATE_ALERT_ID, REGATE_ALERT_KIND, REGATE_ALERT_MODEL, REGATE_ALERT_JOB in its environment; its
output goes to stderr, so that stdout carries the alerts only.

\b
Examples:
  regate-db watch                                    print alerts as they arrive
  regate-db watch --once --since 2026-12-01          what happened since December 1st
  regate-db watch --once --json --since-id 0 | jq .  every alert, one JSON object per line
  regate-db watch --kind blocked --kind error --state ~/.regate-watch.state \\
    --exec 'curl -fsS -H "Content-Type: application/json" "$SLACK_WEBHOOK_URL" \\
      -d "{\\"text\\": \\"regate: $REGATE_ALERT_KIND #$REGATE_ALERT_ID $REGATE_ALERT_MODEL\\"}"'
  regate-db watch --once --state /var/lib/regate/watch.state --exec /usr/local/bin/page-me
                                                     from cron: deliver what is new, exit

More, with an e-mail hook: docs/alerts.md.
"""


@click.command("watch", help=WATCH_HELP, short_help="Print alerts as they arrive; run a hook per alert (--exec).")
@click.option("--since-id", type=click.IntRange(min=0), metavar="N", help="Start after alert N (0: all alerts).")
@click.option(
    "--since",
    type=_DateTime(),
    metavar="DATETIME",
    help="Start with the first alert created at or after DATETIME (ISO 8601: 2026-12-01, 2026-12-01T10:00, "
    "2026-12-01 10:00:00+01:00; local time unless it has an offset).",
)
@click.option(
    "--state",
    "state",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Remember the last delivered alert id in FILE (created when missing); when FILE exists it says where to "
    "start, and --since-id/--since are ignored.",
)
@click.option(
    "--exec",
    "hook",
    metavar="CMD",
    help="Run CMD through the shell per alert, the alert's JSON on stdin; it must exit 0 for the alert to count as "
    "delivered.",
)
@click.option("--once", is_flag=True, help="Catch up, print, exit (cron jobs, scripts).")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(KINDS),
    metavar="KIND",
    help="Only alerts of this kind (repeatable): " + ", ".join(KINDS) + ".",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.01),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Re-read the outbox this often even without a notification.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="First delay before retrying a failed hook or reconnecting; doubles up to 60 s.",
)
@db_options
@json_option
@click.pass_obj
def watch_cmd(
    opts: Options,
    since_id: int | None,
    since: datetime | None,
    state: Path | None,
    hook: str | None,
    once: bool,
    kinds: Sequence[str],
    poll: float,
    backoff: float,
) -> None:
    if since_id is not None and since is not None:
        raise click.UsageError("give --since-id or --since, not both")
    start_from_state = read_state(state) if state is not None else None
    connect = _connector(*resolve(opts))
    with connect() as conn:
        check_outbox(conn)
        if start_from_state is not None:
            cursor, since = start_from_state, None
        elif since_id is not None:
            cursor = since_id
        elif since is not None or once:
            cursor = 0
        else:
            cursor = newest_id(conn)
    if state is not None and start_from_state is None:
        write_state(state, cursor)

    emit = _emitter(opts.json)
    watcher = Watcher(
        connect=connect,
        emit=emit,
        cursor=cursor,
        hook=hook,
        kinds=frozenset(kinds),
        since=since,
        state=state,
        poll=poll,
        backoff=backoff,
    )
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if once:
            watcher.run_once()
            return
        echo_err(f"watch: waiting for alerts after #{cursor} (Ctrl-C to stop)")
        watcher.run()
    except KeyboardInterrupt:
        echo_err(f"watch: stopped; last delivered alert #{watcher.cursor}")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _emitter(as_json: bool) -> Callable[[Alert], None]:
    def emit(alert: Alert) -> None:
        click.echo(alert.to_json() if as_json else alert.line())
        sys.stdout.flush()

    return emit


def alerts_after(conn: psycopg.Connection[Any], cursor: int = 0, kinds: Iterable[str] = ()) -> list[Alert]:
    """The alerts after ``cursor`` in id order (of ``kinds`` only, when given): a one-shot read for scripts."""
    out: list[Alert] = []
    Watcher(connect=lambda: conn, emit=out.append, cursor=cursor, kinds=frozenset(kinds)).catch_up(conn)
    return out
