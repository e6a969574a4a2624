"""Run a guide the way a reader would: every ```bash, ```python and ```sql block of a Markdown file, in order, on
one freshly migrated database.

* ```sql blocks follow tests/test_docs.py (``-- expect-error: NNNNN``, ``-- => a | b`` rows).
* ```bash blocks run with ``bash -euo pipefail`` in a scratch folder shared by the whole guide (files a block
  writes are there for the next), with ``REGATE_DATABASE_URL`` naming the database and this checkout's
  ``regate-db`` first on ``PATH``. A first line ``# expect-exit: N`` expects exit status N (default 0); lines
  ``# => text`` are texts the block's output (stdout and stderr) must contain.
* ```python blocks run as a script (``python -c``) in the same folder and environment, ``# => text`` likewise.
* A block whose opening fence carries ``no-run`` (```` ```bash no-run ````) is shown, not run: the guide says why
  next to it (e.g. it needs a service the test does not start). Output blocks are ```text.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import REPO
from tests.test_docs import Block, run_block

LANGUAGES = ("bash", "python", "sql")


@dataclass(frozen=True)
class GuideBlock:
    path: Path
    line: int
    language: str
    body: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    def marks(self, prefix: str) -> list[str]:
        return [line.strip()[len(prefix) :] for line in self.body.splitlines() if line.strip().startswith(prefix)]


def guide_blocks(path: Path) -> list[GuideBlock]:
    """The runnable fenced blocks of ``path``, in order."""
    blocks: list[GuideBlock] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = lines[i].strip()
        if fence.startswith("```") and fence[3:].strip():
            info = fence[3:].split()
            start, body = i, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"{path.name}:{start + 1}: unterminated block"
            if info[0] in LANGUAGES and "no-run" not in info[1:]:
                blocks.append(GuideBlock(path, start + 1, info[0], "\n".join(body)))
        i += 1
    return blocks


def _sql_block(block: GuideBlock) -> Block:
    from tests.test_docs import EXPECT_ERROR_RE, EXPECT_ROW_PREFIX

    lines = block.body.splitlines()
    match = EXPECT_ERROR_RE.match(lines[0].strip()) if lines else None
    rows = [line.strip()[len(EXPECT_ROW_PREFIX) :] for line in lines if line.strip().startswith("-- =>")]
    return Block(block.path, block.line, block.body, match.group(1) if match else None, rows or None)


def guide_env(dsn: str) -> dict[str, str]:
    """What a reader's shell has: the database in REGATE_DATABASE_URL, this checkout's regate-db on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k not in ("DATABASE_URL",)}
    env["REGATE_DATABASE_URL"] = dsn
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "160"
    return env


def run_guide(path: Path, db: psycopg.Connection[Any], dsn: str, workdir: Path) -> list[GuideBlock]:
    """Run every block of the guide in order; the blocks run."""
    blocks = guide_blocks(path)
    env = guide_env(dsn)
    for block in blocks:
        if block.language == "sql":
            run_block(db, _sql_block(block))
            continue
        expected_exit = int((block.marks("# expect-exit:") or ["0"])[0])
        command = (
            ["bash", "-euo", "pipefail", "-c", block.body]
            if block.language == "bash"
            else [sys.executable, "-c", block.body]
        )
        proc = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False, stdin=None
        )
        output = proc.stdout + proc.stderr
        if proc.returncode != expected_exit:
            pytest.fail(
                f"{block.where}: exit status {proc.returncode}, expected {expected_exit}\n{block.body}\n--- output:\n"
                f"{output}"
            )
        for text in block.marks("# => "):
            assert text in output, f"{block.where}: the output lacks {text!r}\n--- output:\n{output}"
    return blocks
