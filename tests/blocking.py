"""Helpers for tests that need a second session to wait on a lock held by the first."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg


class Blocked:
    """A call made in a thread on `conn`, which is expected to wait for a lock held by another transaction."""

    def __init__(
        self, observer: psycopg.Connection[Any], conn: psycopg.Connection[Any], fn: Any, *args: Any, **kwargs: Any
    ) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, conn, *args), kwargs=kwargs)
        self.thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = observer.execute(
                "select wait_event_type from pg_stat_activity where pid = %s", [conn.info.backend_pid]
            ).fetchone()
            if row is not None and row[0] == "Lock":
                return
            if not self.thread.is_alive():
                self.join()  # the call's own error, if it raised one
                raise AssertionError("the second session's call returned without waiting for a lock")
            time.sleep(0.01)
        raise AssertionError("the second session never waited for a lock")

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            self.result = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised by join()
            self.error = exc

    def join(self) -> Any:
        self.thread.join(10)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.result
