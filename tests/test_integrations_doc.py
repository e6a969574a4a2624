"""docs/integrations.md: every shell command and Python snippet runs, in order, on one fresh database, and prints
what the page shows.

Conventions of the page:
* a fenced block whose info string has ``file=PATH`` is a file the examples read: written (relative to a scratch
  working directory) before anything runs;
* every line of a ```sh block is a ``regate-db`` command, run as a real process with ``REGATE_DATABASE_URL`` set to
  the test's database; ``# exit N`` at its end is the exit status it must have (else 0);
* every ```python block runs in this process (``print`` captured), against the same database;
* a ```text block right after a ```sh or ```python block (only blank lines between) is exactly what it printed
  (stdout, then stderr): job ids (any UUID) read as the page's ``0190c2a4-...``, trailing blanks ignored.

The page's placeholders are replaced before running: the DSN ``postgresql://trainer@db/ml``, the job id (the last
job a command printed), the MLflow run id and tracking URI (a run this test logs into a local file store with
MLflow's API). ``transformers`` and ``lightning`` are the fakes of tests/test_integrations.py, which call the
callback and the logger as the real frameworks do.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import REPO, run
from tests.test_integrations import FakeArgs, FakeLightningTrainer, FakeTrainer

DOC = REPO / "docs" / "integrations.md"
DOC_DSN = "postgresql://trainer@db/ml"
DOC_JOB = "0190c2a4-7d1e-7000-8000-000000000001"
DOC_RUN = "3f2b9c0e5d6a4b7c8d9e0f1a2b3c4d5e"
DOC_URI = "http://mlflow.internal:5000"
UUID_RE = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
EXIT_RE = re.compile(r"#\s*exit\s+(\d+)\s*$")


@dataclass(frozen=True)
class Fence:
    info: str
    body: str
    start: int  # line of the opening fence, 0-based
    end: int  # line of the closing fence

    @property
    def lang(self) -> str:
        return self.info.split()[0] if self.info else ""

    @property
    def file(self) -> str | None:
        match = re.search(r"\bfile=(\S+)", self.info)
        return match.group(1) if match else None


def fences(path: Path) -> list[Fence]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Fence] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("```") and lines[i].strip() != "```":
            start, info = i, lines[i][3:].strip()
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            assert i < len(lines), f"{path.name}:{start + 1}: unterminated block"
            found.append(Fence(info, "\n".join(lines[start + 1 : i]), start, i))
        i += 1
    return found


def expected_output(blocks: list[Fence], index: int, lines: list[str]) -> str | None:
    """The ```text block right after blocks[index], if any."""
    if index + 1 >= len(blocks) or blocks[index + 1].lang != "text":
        return None
    following = blocks[index + 1]
    if any(line.strip() for line in lines[blocks[index].end + 1 : following.start]):
        return None
    return following.body


def normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in UUID_RE.sub(DOC_JOB, text).strip("\n").splitlines())


def fake_frameworks() -> dict[str, types.ModuleType]:
    """``transformers`` and ``lightning`` as the page's snippets use them, backed by the fakes."""
    transformers = types.ModuleType("transformers")

    def training_arguments(output_dir: str = "out", **kwargs: Any) -> FakeArgs:
        known = {k: v for k, v in kwargs.items() if k in ("max_steps", "logging_steps", "eval_steps", "save_steps")}
        return FakeArgs(**{"steps_per_epoch": 100, "save_steps": 100, **known}, output_dir=output_dir)

    transformers.TrainingArguments = training_arguments  # type: ignore[attr-defined]
    transformers.Trainer = FakeTrainer  # type: ignore[attr-defined]

    lightning = types.ModuleType("lightning")

    def trainer(max_epochs: int = 1, logger: Any = None, **_: Any) -> FakeLightningTrainer:
        return FakeLightningTrainer(logger, epochs=max_epochs, val_losses=(0.45, 0.41, 0.39)[-max_epochs:])

    lightning.Trainer = trainer  # type: ignore[attr-defined]
    return {"transformers": transformers, "lightning": lightning}


@pytest.fixture
def mlflow_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The page's MLflow run, logged with MLflow's API into a local file store: (tracking URI, run id)."""
    mlflow_tracking = pytest.importorskip("mlflow.tracking")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    client = mlflow_tracking.MlflowClient(tracking_uri=uri)
    run_id: str = client.create_run(client.create_experiment("docs")).info.run_id
    for i, (loss, lr) in enumerate([(0.9, 1e-3), (0.6, 8e-4), (0.45, 6e-4)]):
        client.log_metric(run_id, "train_loss", loss, step=i * 100, timestamp=1000 + i)
        client.log_metric(run_id, "learning_rate", lr, step=i * 100, timestamp=1000 + i)
    client.log_metric(run_id, "val_loss", 0.41, step=200, timestamp=2000)
    client.log_metric(run_id, "val_loss", 0.39, step=200, timestamp=2001)
    client.set_terminated(run_id)
    return uri, run_id


def test_the_page_states_the_rules() -> None:
    text = DOC.read_text(encoding="utf-8")
    for rule in (
        "| Trainer only: `loss` | `train_loss` |",
        "| Trainer only: `train_loss` of the end-of-training summary | `train_loss_mean` |",
        "the entry with `train_runtime` and no\n`loss`",
        "**left out and counted**",
        "the last entry at the\nhighest step that logged it",
        "not even the new job",
    ):
        assert rule in text, rule
    for heading in ("## Importers", "## Hugging Face Trainer", "## PyTorch Lightning", "### An MLflow run"):
        assert heading in text.splitlines(), heading


def test_every_example_runs_and_prints_what_the_page_shows(
    db: psycopg.Connection[Any],
    db_dsn: str,
    cli_env: dict[str, str],
    regate_cmd: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_run: tuple[str, str],
) -> None:
    uri, run_id = mlflow_run
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    env = {**cli_env, "REGATE_DATABASE_URL": db_dsn, "MLFLOW_ALLOW_FILE_STORE": "true"}
    for name, module in fake_frameworks().items():
        monkeypatch.setitem(sys.modules, name, module)

    lines = DOC.read_text(encoding="utf-8").splitlines()
    blocks = fences(DOC)
    for block in blocks:
        if block.file:
            (work / block.file).parent.mkdir(parents=True, exist_ok=True)
            (work / block.file).write_text(block.body + "\n")

    last_job = DOC_JOB
    # the snippets share one namespace, as successive cells do; what they leave undefined is the reader's own
    namespace: dict[str, Any] = {"__name__": "doc", "model": object(), "train_set": [], "eval_set": []}
    namespace.update(train_loader=[], val_loader=[], test_loader=[])
    commands = snippets = 0

    def placeholders(text: str) -> str:
        return text.replace(DOC_JOB, last_job).replace(DOC_RUN, run_id).replace(DOC_URI, uri)

    for index, block in enumerate(blocks):
        if block.file:
            continue
        if block.lang == "sh":
            printed = ""
            for line in filter(str.strip, block.body.splitlines()):
                args = shlex.split(placeholders(line), comments=True)
                assert args[0] == "regate-db", line
                exit_code = EXIT_RE.search(line)
                proc = run(regate_cmd, env, *args[1:])
                assert proc.returncode == (int(exit_code.group(1)) if exit_code else 0), (line, proc.stderr)
                printed += proc.stdout + proc.stderr
                commands += 1
        elif block.lang == "python":
            out = io.StringIO()
            code = placeholders(block.body).replace(f'"{DOC_DSN}"', repr(db_dsn))
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"{DOC.name}:{block.start + 1}", "exec"), namespace)
            printed = out.getvalue()
            snippets += 1
        else:
            continue
        jobs = UUID_RE.findall(printed)
        if jobs:
            last_job = jobs[0]
        shown = expected_output(blocks, index, lines)
        if shown is not None:
            assert normal(printed.replace(run_id, DOC_RUN)) == normal(shown), (
                f"{DOC.name}:{block.start + 1} printed:\n{printed}"
            )
    assert (commands, snippets) == (6, 5)
    # what the examples left in the database: every job completed but the one the CSV example completed later
    statuses = db.execute(
        "select status, validation_status, count(*) from regate.local_training_jobs group by 1, 2 order by 1, 2"
    ).fetchall()
    assert statuses == [("completed", "passed", 7), ("running", None, 1)]
