"""A private PgBouncer in transaction mode in front of the test server, for tests/test_pgbouncer.py.

:func:`start_pgbouncer` runs Debian's ``pgbouncer`` binary as a child process with its own configuration in a
temporary folder: ``pool_mode = transaction``, a small pool (``default_pool_size``, 2 by default) so that client
connections really share server connections, a free port on 127.0.0.1, no Unix socket, and
``max_prepared_statements = 0`` when the version knows that setting (1.21+), so that protocol-level prepared
statements are never rescued by the pooler. Server connections are never reset between clients (transaction mode
runs no ``server_reset_query``): whatever a client leaves in its session, the next client finds.

PgBouncer refuses to run as root: as root it runs as the owner of the server's Unix socket folder (the embedded
server's user) or ``nobody`` (``REGATE_PGBOUNCER_USER`` names another user), the folder is handed to that user, and
a Linux parent-death signal stops it when the test process dies.

:func:`find_pgbouncer` finds the binary (``PGBOUNCER`` names one); as root it installs the Debian package through
``scripts/pgbouncer.sh`` when it is missing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

from tests.helpers import REPO

SCRIPT = REPO / "scripts" / "pgbouncer.sh"
DEBIAN_BINARY = "/usr/sbin/pgbouncer"  # not on a normal user's PATH
PR_SET_PDEATHSIG = 1


class PgBouncerUnavailable(Exception):
    """No pgbouncer binary, and none could be installed (the message says why)."""


def find_pgbouncer() -> str:
    """The pgbouncer binary: ``PGBOUNCER``, on PATH or in /usr/sbin; as root, installed with scripts/pgbouncer.sh
    when missing. Raises :class:`PgBouncerUnavailable` otherwise."""
    given = os.environ.get("PGBOUNCER")
    if given:
        if not os.access(given, os.X_OK):
            raise PgBouncerUnavailable(f"PGBOUNCER={given} is not an executable file")
        return given
    found = shutil.which("pgbouncer") or (DEBIAN_BINARY if os.access(DEBIAN_BINARY, os.X_OK) else None)
    if found:
        return found
    if os.geteuid() != 0:
        raise PgBouncerUnavailable(
            "pgbouncer is not installed and installing it needs root (apt-get install pgbouncer, or set PGBOUNCER "
            "to a pgbouncer binary)"
        )
    proc = subprocess.run(
        [str(SCRIPT)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False
    )
    path = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not os.access(path, os.X_OK):
        tail = " ".join(proc.stderr.strip().splitlines()[-3:])
        raise PgBouncerUnavailable(f"scripts/pgbouncer.sh could not install pgbouncer (exit {proc.returncode}): {tail}")
    return path


def pgbouncer_version(binary: str) -> tuple[int, ...]:
    """``(1, 18, 0)`` from ``pgbouncer --version`` ("PgBouncer 1.18.0")."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    m = re.search(r"PgBouncer (\d+)\.(\d+)(?:\.(\d+))?", out)
    if m is None:
        raise PgBouncerUnavailable(f"{binary} --version says {out.strip()!r}, not 'PgBouncer X.Y.Z'")
    return tuple(int(g or 0) for g in m.groups())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quote(value: str) -> str:
    """A value of a libpq-style connection string in PgBouncer's [databases] section."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class PgBouncer:
    """A running private PgBouncer: connect to ``dsn(dbname)`` instead of the server."""

    binary: str
    version: tuple[int, ...]
    port: int
    user: str
    password: str | None
    pool_size: int
    folder: Path
    proc: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def dsn(self, dbname: str, **extra: Any) -> str:
        """A connection string to ``dbname`` through the pooler."""
        params: dict[str, Any] = {"host": self.host, "port": self.port, "user": self.user, "dbname": dbname}
        if self.password:
            params["password"] = self.password
        params.update(extra)
        return conninfo.make_conninfo(**params)

    def through(self, server_dsn: str) -> str:
        """The pooled equivalent of a DSN to the test server (same database)."""
        dbname = conninfo.conninfo_to_dict(server_dsn).get("dbname")
        assert dbname, server_dsn
        return self.dsn(str(dbname))

    def show(self, what: str) -> list[dict[str, Any]]:
        """``SHOW <what>`` on PgBouncer's admin console (simple query protocol: no parameters)."""
        with psycopg.connect(self.dsn("pgbouncer"), autocommit=True) as admin:
            cur = admin.execute(f"show {what}".encode())
            names = [c.name for c in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child, after it switched user: SIGTERM when the test process dies (a killed run leaks nothing)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _run_as(server_host: str) -> pwd.struct_passwd:
    """Whom PgBouncer runs as when we are root: ``REGATE_PGBOUNCER_USER``, else the owner of the server's socket
    folder (the embedded server's, which only its own user may enter), else ``nobody``."""
    name = os.environ.get("REGATE_PGBOUNCER_USER")
    if name:
        return pwd.getpwnam(name)
    if server_host.startswith("/"):
        owner = pwd.getpwuid(os.stat(server_host).st_uid)
        if owner.pw_uid != 0:
            return owner
    return pwd.getpwnam("nobody")


def start_pgbouncer(
    server_host: str,
    server_port: int,
    user: str,
    password: str | None,
    *,
    pool_size: int = 2,
    binary: str | None = None,
    extra: dict[str, str] | None = None,
) -> PgBouncer:
    """Start a private PgBouncer in transaction mode in front of ``server_host:server_port`` (a host name or the
    folder of the server's Unix socket). Clients log in as ``user`` (with ``password`` when the server needs one:
    PgBouncer then checks it with SCRAM and uses it to log in to the server); every database is reachable."""
    binary = binary or find_pgbouncer()
    version = pgbouncer_version(binary)
    run_as = _run_as(server_host) if os.geteuid() == 0 else None
    last_error = ""
    for _ in range(3):  # the free port may be taken between free_port() and PgBouncer's bind
        folder = Path(tempfile.mkdtemp(prefix="regate-pgbouncer-"))
        port = free_port()
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(port),
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256" if password else "trust",
            "auth_file": str(folder / "userlist.txt"),
            "admin_users": user,
            "pool_mode": "transaction",
            "default_pool_size": str(pool_size),
            "min_pool_size": "0",
            "reserve_pool_size": "0",
            "max_client_conn": "200",
            "max_db_connections": "0",
            "logfile": str(folder / "pgbouncer.log"),
            "pidfile": str(folder / "pgbouncer.pid"),
            "log_connections": "0",
            "log_disconnections": "0",
        }
        if version >= (1, 21):
            settings["max_prepared_statements"] = "0"  # no rescue of protocol-level prepared statements
        settings.update(extra or {})
        lines = ["[databases]", f"* = host={_quote(server_host)} port={server_port}", "", "[pgbouncer]"]
        lines += [f"{k} = {v}" for k, v in settings.items()]
        (folder / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
        # PgBouncer uses the password of the auth file to log in to the server as well.
        (folder / "userlist.txt").write_text(f'"{user}" "{password or ""}"\n')
        if run_as is not None:
            for path in [folder, *folder.iterdir()]:
                os.chown(path, run_as.pw_uid, run_as.pw_gid)
        proc = subprocess.Popen(
            [binary, str(folder / "pgbouncer.ini")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            user=run_as.pw_uid if run_as else None,
            group=run_as.pw_gid if run_as else None,
            extra_groups=[] if run_as else None,
            preexec_fn=_die_with_parent,
        )
        bouncer = PgBouncer(binary, version, port, user, password, pool_size, folder, proc, settings=settings)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return bouncer
            except OSError:
                time.sleep(0.05)
        last_error = bouncer.log().strip()[-2000:] or f"exit status {proc.poll()}"
        bouncer.stop()
    raise RuntimeError(f"PgBouncer did not start: {last_error}")


def backend_pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("select pg_backend_pid()", prepare=False).fetchone()
    assert row is not None
    return int(row[0])
