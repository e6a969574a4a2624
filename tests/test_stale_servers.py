"""scripts/stop-stale-servers.sh stops the embedded server of a killed test session, and only that.

A real pytest session (this suite's conftest, its own test root) starts an embedded server and sleeps; the script
must leave it alone while the session runs, and stop it and remove its folder once the session was SIGKILLed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests import conftest
from tests.helpers import REPO

SCRIPT = REPO / "scripts" / "stop-stale-servers.sh"

SLEEPING_TEST = """
import os, pathlib, time

def test_hold_the_server(pg_server):
    pathlib.Path(os.environ["READY_FILE"]).write_text("ready")
    time.sleep(300)
"""


def _postmaster_pid(session: Path) -> int:
    return int((session / "pgdata" / "postmaster.pid").read_text().splitlines()[0])


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _stop_stale(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGATE_TEST_ROOT": str(root), "PY": sys.executable}
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_stale_server_of_a_killed_session_is_stopped_and_a_live_one_kept(tmp_path: Path) -> None:
    # A test root of its own (inside the shared one, owned by this session) so that the script sees nobody else's.
    root = Path(tempfile.mkdtemp(prefix="stale-servers-test-", dir=conftest.test_root()))
    conftest._write_owner(root)
    (tmp_path / "test_sleeping.py").write_text(SLEEPING_TEST)
    ready = tmp_path / "ready"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REGATE_TEST_DSN", "REGATE_EXPECT_SERVER_MAJOR", "PYTEST_ADDOPTS")
    }
    env.update(REGATE_TEST_ROOT=str(root), READY_FILE=str(ready))
    # this suite's conftest as a plugin, nothing else of its configuration
    pytest_args = ["-q", "-p", "tests.conftest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)]
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", *pytest_args, str(tmp_path / "test_sleeping.py")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not ready.exists():
            if child.poll() is not None:
                pytest.fail(f"the sleeping session ended early:\n{child.stdout.read() if child.stdout else ''}")
            assert time.monotonic() < deadline, "the sleeping session did not start its server within 90 s"
            time.sleep(0.2)
        (session,) = root.glob("session-*")
        assert (session / "owner.pid").read_text().split()[0] == str(child.pid)
        postmaster = _postmaster_pid(session)
        assert _running(postmaster)

        kept = _stop_stale(root)
        assert _running(postmaster), f"the script stopped the server of a live session: {kept.stderr}"
        assert (session / "pgdata" / "postmaster.pid").exists()
        assert kept.returncode == 0, kept.stderr
        assert f"keeping {session}: its owner, pid {child.pid}, is running" in kept.stderr

        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert _running(postmaster), "a SIGKILLed session leaks its server (the reason for the script)"

        stopped = _stop_stale(root)
        assert stopped.returncode == 0, stopped.stderr
        assert not _running(postmaster), stopped.stderr
        assert not session.exists(), stopped.stderr
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        if child.stdout:
            child.stdout.close()
        _stop_stale(root)
        shutil.rmtree(root, ignore_errors=True)
