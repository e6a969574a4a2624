"""Importers (issue 11 part 4): a Trainer's trainer_state.json, JSON lines, CSV and an MLflow run become metric rows
of a job, all or nothing, through `regate-db import ...` (real processes) and the Python functions, against a
real database: the key mapping, the end-of-training summary, NaN/Infinity, huge numbers, entries sharing a step in
file order, malformed sources (one error line, nothing imported), a verdict in two commands, the progress bar."""

from __future__ import annotations

import fcntl
import json
import math
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from regate_db.errors import InvalidMetricError
from regate_db.importers import (
    Event,
    Events,
    MetricImportError,
    NewJob,
    hf_metrics,
    import_csv,
    import_events,
    import_jsonl,
    import_trainer_state,
    is_trainer_summary,
    parse_trainer_state,
)
from tests.helpers import REPO, complete, new_job, run

Conn = psycopg.Connection[Any]
Proc = subprocess.CompletedProcess[str]
Cli = Callable[..., Proc]

DATA = REPO / "tests" / "data"
COMPLETE_RUN = DATA / "trainer_state_complete.json"
DIVERGED_RUN = DATA / "trainer_state_diverged.json"
CHECKPOINT = DATA / "trainer_state_checkpoint.json"
MODEL = "importer-bert"

ROWS_SQL = (
    "select step, epoch, train_loss, eval_loss, learning_rate, grad_norm, metrics"
    " from regate.local_training_metrics where job_id = %s order by id"
)


@pytest.fixture
def rg(db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str]) -> Cli:
    """Run `regate-db ARGS --dsn <the test's database>`."""

    def call(*args: str) -> Proc:
        return run(regate_cmd, cli_env, *args, "--dsn", db_dsn)

    return call


def ok(proc: Proc) -> Proc:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def one_error_line(proc: Proc, code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def rows(db: Conn, job: uuid.UUID | str) -> list[tuple[Any, ...]]:
    return db.execute(ROWS_SQL, (job,)).fetchall()


def final(db: Conn, job: uuid.UUID | str) -> dict[str, Any]:
    row = db.execute("select regate.extract_final_metrics(%s)", (job,)).fetchone()
    assert row is not None
    return dict(row[0] or {})


def counts(db: Conn) -> tuple[int, int]:
    row = db.execute(
        "select (select count(*) from regate.local_training_jobs), (select count(*) from regate.local_training_metrics)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def the_job(db: Conn, model: str = MODEL) -> uuid.UUID:
    (job,) = [r[0] for r in db.execute("select id from regate.local_training_jobs where model_name = %s", (model,))]
    assert isinstance(job, uuid.UUID)
    return job


def trainer_state(tmp_path: Path, log_history: Any, name: str = "trainer_state.json", **state: Any) -> Path:
    """A trainer_state.json as the Trainer writes it (json.dumps, indent 2, sorted keys, bare NaN)."""
    content = {"epoch": 1.0, "global_step": 0, "log_history": log_history, "max_steps": 0, **state}
    path = tmp_path / name
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    return path


# --- trainer_state.json ----------------------------------------------------------------------------------------


def test_every_log_history_entry_becomes_a_row_at_its_step(db: Conn, db_dsn: str) -> None:
    result = import_trainer_state(db_dsn, COMPLETE_RUN, model=MODEL, version="2.0")
    assert result.created and (result.rows, len(result.steps)) == (10, 6)
    assert (result.steps[0], result.steps[-1], result.summary_entries) == (50, 300, 1)
    got = rows(db, result.job_id)
    # the first train entry: loss -> train_loss, the rest to their columns, nothing else
    assert got[0] == (50, 0.5, 0.6931, None, 1.6667e-05, 1.9124, {})
    # the eval entry of step 100 is its own row, after the train entry of that step
    assert got[2][:6] == (100, 1.0, None, 0.4815, None, None)
    assert got[2][6] == {
        "eval_accuracy": 0.8475,
        "eval_f1": 0.8461,
        "eval_runtime": 4.2173,
        "eval_samples_per_second": 237.118,
        "eval_steps_per_second": 14.82,
    }
    # the end-of-training summary: its average train_loss is train_loss_mean, the train_loss column stays NULL
    assert got[-1][:6] == (300, 3.0, None, None, None, None)
    assert got[-1][6] == {
        "train_loss_mean": 0.4539,
        "train_runtime": 311.4027,
        "total_flos": 2.145786457344e19,
        "train_samples_per_second": 15.414,
        "train_steps_per_second": 0.963,
    }
    # so the final train_loss is the last per-step one, not the average
    metrics = final(db, result.job_id)
    assert (metrics["train_loss"], metrics["train_loss_mean"], metrics["eval_loss"]) == (0.3288, 0.4539, 0.4127)
    assert result.final == metrics and result.final["eval_accuracy"] == 0.8925
    assert "train_loss_mean" in result.metrics and "loss" not in result.metrics
    job = db.execute("select model_name, model_version, status from regate.local_training_jobs").fetchone()
    assert job == (MODEL, "2.0", "running")


def test_entries_sharing_a_step_are_imported_in_file_order(db: Conn, db_dsn: str, tmp_path: Path) -> None:
    history = [
        {"epoch": 1.0, "loss": 0.9, "step": 10},
        {"epoch": 1.0, "eval_loss": 0.5, "eval_accuracy": 0.7, "step": 10},
        {"epoch": 1.0, "eval_loss": 0.4, "step": 10},  # a second evaluation at the same step (another eval set)
    ]
    forward = import_trainer_state(db_dsn, trainer_state(tmp_path, history), model=MODEL)
    assert [r[0] for r in rows(db, forward.job_id)] == [10, 10, 10]
    assert [r[3] for r in rows(db, forward.job_id)] == [None, 0.5, 0.4]
    # the final value is the last entry at the highest step that logged it: the file's order decides
    assert (forward.final["eval_loss"], forward.final["eval_accuracy"]) == (0.4, 0.7)
    backward = import_trainer_state(db_dsn, trainer_state(tmp_path, history[::-1], "reversed.json"), model=MODEL)
    assert backward.final["eval_loss"] == 0.5


def test_a_diverged_run_keeps_nan_and_infinity(db: Conn, db_dsn: str) -> None:
    assert "NaN" in DIVERGED_RUN.read_text() and "Infinity" in DIVERGED_RUN.read_text()  # bare, as the Trainer writes
    result = import_trainer_state(db_dsn, DIVERGED_RUN, model=MODEL)
    got = rows(db, result.job_id)
    assert got[1][5] == math.inf and math.isnan(got[2][3]) and math.isnan(got[3][2])
    assert got[-1][6]["train_loss_mean"] == "NaN"  # inside metrics, as regate stores NaN
    assert result.final["train_loss"] == "NaN" and result.final["eval_loss"] == "NaN"
    assert result.final["grad_norm"] == "NaN" and result.final["learning_rate"] == 2e-05


def test_numbers_beyond_integer_range_are_kept_exactly(db: Conn, db_dsn: str, tmp_path: Path) -> None:
    history = [
        {"epoch": 1.0, "loss": 0.3, "step": 5},
        {"epoch": 1.0, "step": 5, "total_flos": 21457864573440000000, "train_loss": 0.4, "train_runtime": 9.5},
    ]
    result = import_trainer_state(db_dsn, trainer_state(tmp_path, history), model=MODEL)
    row = db.execute(
        "select metrics ->> 'total_flos' from regate.local_training_metrics"
        " where job_id = %s and metrics ? 'total_flos'",
        (result.job_id,),
    ).fetchone()
    assert row == ("21457864573440000000",)
    assert result.final["total_flos"] == 21457864573440000000


def test_a_run_stopped_early_imports_and_says_so(db: Conn, rg: Cli) -> None:
    proc = ok(rg("import", "trainer-state", "--model", MODEL, "--complete", str(CHECKPOINT)))
    assert "imported 6 rows at 4 steps (100 to 400)" in proc.stdout
    assert "note: the run stopped at step 400 of 1000 (max_steps)" in proc.stdout
    assert "note: no end-of-training summary" in proc.stdout
    assert "validation_status passed" in proc.stdout and "NO_BASELINES, not blocking" in proc.stdout
    job = the_job(db)
    assert final(db, job)["train_loss"] == 0.5 and final(db, job)["eval_loss"] == 0.6


def test_values_that_are_not_numbers_are_left_out_and_counted(db: Conn, rg: Cli, tmp_path: Path) -> None:
    history = [
        {"epoch": 1.0, "loss": 0.7, "step": 10},
        {"eval_loss": 0.5, "eval_report": "ok", "eval_confusion": [[5, 1], [2, 7]], "eval_flag": True, "step": 10},
        {"eval_report": "only text", "step": 20},  # nothing numeric: no row
        {"eval_loss": None, "step": 30},  # null is "not logged"
    ]
    path = trainer_state(tmp_path, history)
    proc = ok(rg("import", "trainer-state", "--model", MODEL, str(path), "--json"))
    summary = json.loads(proc.stdout)
    assert summary["skipped"] == {"eval_report": 2, "eval_confusion": 1, "eval_flag": 1}
    assert (summary["rows"], summary["empty"]) == (2, 2)
    assert proc.stderr.strip() == (
        "warning: left out 4 values that are not numbers (--strict refuses them):"
        " eval_confusion (1), eval_flag (1), eval_report (2)"
    )
    assert rows(db, summary["job_id"])[1][6] == {}  # eval_loss is a column; nothing else was numeric
    # --strict refuses the file, naming the entry and the value
    line = one_error_line(rg("import", "trainer-state", "--model", "strict-model", "--strict", str(path)))
    assert "log_history[1] (step 10): eval_confusion is not a number (list [[5, 1], [2, 7]])" in line
    assert counts(db) == (1, 2)


MALFORMED = [
    pytest.param('{"log_history": [{"loss": 0.5, "step": 1},\n  {"loss": 0.4, "st', "not valid JSON: ", id="cut-off"),
    pytest.param('{"log_history": [{"loss": 0.5, "step": 1},]}', "at line 1, column 43", id="trailing-comma"),
    pytest.param('{"global_step": 10, "max_steps": 10}', "no log_history", id="no-log-history"),
    pytest.param('[{"loss": 0.5, "step": 1}]', "expected a JSON object", id="not-an-object"),
    pytest.param('{"log_history": {"loss": 0.5}}', "log_history must be an array", id="log-history-not-a-list"),
    pytest.param(
        '{"log_history": [{"loss": 0.5, "step": 1}, {"epoch": 1.0, "loss": 0.4}]}',
        "log_history[1] has no step",
        id="entry-without-step",
    ),
    pytest.param(
        '{"log_history": [{"loss": 0.5, "step": 1}, {"loss": 0.4, "step": -20}]}',
        "log_history[1]: step -20 is negative",
        id="negative-step",
    ),
    pytest.param(
        '{"log_history": [{"loss": 0.5, "step": 2.5}]}', "step must be a non-negative integer, got 2.5", id="half-step"
    ),
    pytest.param('{"log_history": [{"loss": 0.5, "loss": 0.4, "step": 1}]}', "'loss' appears twice", id="dup-key"),
    pytest.param('{"log_history": [{"loss": 1e400, "step": 1}]}', "1e400 is beyond double precision", id="1e400"),
    pytest.param(
        '{"log_history": [{"loss": 0.5, "train_loss": 0.4, "step": 1}]}',
        "loss and train_loss would both be stored as train_loss",
        id="two-names-one-column",
    ),
    pytest.param('{"log_history": [{"id": 3, "step": 1}]}', "'id' is a column of regate", id="reserved-name"),
    pytest.param('{"log_history": [{"loss": 1, "step": 9223372036854775808}]}', "beyond the bigint", id="huge-step"),
]


@pytest.mark.parametrize(("content", "message"), MALFORMED)
def test_a_malformed_file_is_one_error_and_nothing_is_imported(
    db: Conn, rg: Cli, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "trainer_state.json"
    path.write_text(content)
    line = one_error_line(rg("import", "trainer-state", "--model", MODEL, "--complete", str(path)))
    assert line.startswith(f"error: {path}") and message in line, line
    assert counts(db) == (0, 0)


def test_a_database_refusal_leaves_nothing_behind(db: Conn, db_dsn: str) -> None:
    """Rows go in chunks (one COPY each), all in one transaction: a refusal in the third chunk undoes the first two
    chunks and the job the import created."""
    good = [Event(step, {"train_loss": 1.0 / step}, f"row {step}") for step in range(1, 6)]
    bad = Event(6, {"recorded_at": 1.0}, "row 6")  # the database's RG001: a column name inside metrics
    events = Events("handmade", "jsonl", [*good, bad])
    with pytest.raises(InvalidMetricError, match="recorded_at"):
        import_events(db_dsn, events, new_job=NewJob(MODEL), chunk_rows=2)
    assert counts(db) == (0, 0)
    # the same into an existing job: its earlier rows stay, none of the import's
    job = new_job(db, MODEL)
    import_events(db_dsn, Events("first", "jsonl", good[:1]), job_id=job)
    with pytest.raises(InvalidMetricError):
        import_events(db_dsn, events, job_id=job, chunk_rows=2)
    assert counts(db) == (1, 1)


def test_importing_into_a_completed_or_unknown_job_is_refused(db: Conn, rg: Cli) -> None:
    job = new_job(db, MODEL)
    complete(db, job)
    line = one_error_line(rg("import", "trainer-state", str(job), str(COMPLETE_RUN)))
    assert "is completed" in line and line.endswith("[RG002]")
    line = one_error_line(rg("import", "trainer-state", str(uuid.uuid4()), str(COMPLETE_RUN)))
    assert "no training job with id" in line and line.endswith("[RG008]")
    assert counts(db) == (1, 0)


def test_a_trainer_state_becomes_a_verdict_in_two_commands(db: Conn, rg: Cli) -> None:
    ok(rg("baseline", "create", MODEL, "eval_loss", "--value", "0.42", "--min-relative-change", "-0.05"))
    ok(
        rg(
            "baseline",
            "create",
            MODEL,
            "eval_accuracy",
            "--value",
            "0.88",
            "--greater-is-better",
            "--threshold",
            "0.88",
        )
    )
    proc = ok(rg("import", "trainer-state", "--model", MODEL, "--complete", str(COMPLETE_RUN)))
    job = the_job(db)
    assert f"imported 10 rows at 6 steps (50 to 300) from {COMPLETE_RUN} into new job {job} of model {MODEL}" in (
        proc.stdout
    )
    assert f"completed job {job}: validation_status passed" in proc.stdout
    assert "PASSED, not blocking" in proc.stdout and "eval_loss 0.4127 passes" in proc.stdout

    # the diverged run, in blocking mode: NaN fails, the verdict blocks, exit 1
    proc = rg(
        "import", "trainer-state", "--model", MODEL, "--config", '{"blockOnCriticalFailures": true}',
        "--complete", str(DIVERGED_RUN), "--json",
    )  # fmt: skip
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    summary = json.loads(proc.stdout)
    assert summary["completed"] and summary["verdict"]["status"] == "blocked" and summary["verdict"]["blocked"]
    outcomes = {c["metric_name"]: c["outcome"] for c in summary["verdict"]["record"]["checks"]}
    assert outcomes == {"eval_loss": "invalid", "eval_accuracy": "missing"}  # eval_loss is NaN
    assert proc.stderr.startswith(f"blocked: the verdict on job {summary['job_id']} blocks deployment (")
    row = db.execute(
        "select status, validation_status, config from regate.local_training_jobs where id = %s",
        (summary["job_id"],),
    ).fetchone()
    assert row == ("completed", "blocked", {"blockOnCriticalFailures": True})


def test_the_json_summary(db: Conn, rg: Cli) -> None:
    job = new_job(db, MODEL)
    summary = json.loads(ok(rg("import", "trainer-state", str(job), str(COMPLETE_RUN), "--json")).stdout)
    assert summary["job_id"] == str(job) and not summary["created"] and not summary["completed"]
    assert (summary["format"], summary["rows"], summary["summary_entries"]) == ("trainer-state", 10, 1)
    assert summary["steps"] == {"count": 6, "first": 50, "last": 300}
    assert summary["metrics"] == sorted(
        [
            "epoch", "train_loss", "eval_loss", "learning_rate", "grad_norm", "eval_accuracy", "eval_f1",
            "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "train_loss_mean", "train_runtime",
            "total_flos", "train_samples_per_second", "train_steps_per_second",
        ]
    )  # fmt: skip
    assert summary["final"]["train_loss"] == 0.3288 and summary["final"]["total_flos"] == 2.145786457344e19
    assert summary["verdict"] is None and summary["skipped"] == {} and summary["notes"] == []


def test_usage_errors(db: Conn, rg: Cli) -> None:
    for args in (
        ("import", "trainer-state", str(uuid.uuid4()), str(COMPLETE_RUN), "--model", MODEL),
        ("import", "trainer-state", str(COMPLETE_RUN)),
        ("import", "trainer-state", str(COMPLETE_RUN), "--config", "{}"),
    ):
        proc = rg(*args)
        assert proc.returncode == 2 and "Error:" in proc.stderr, proc.stderr
    assert "not valid JSON" in one_error_line(rg("import", "csv", "--model", MODEL, "--config", "{", "x.csv"))
    assert "must be a JSON object" in one_error_line(rg("import", "csv", "--model", MODEL, "--config", "[]", "x.csv"))
    assert "no such file" in one_error_line(rg("import", "csv", "--model", MODEL, "missing.csv"))
    line = one_error_line(rg("import", "trainer-state", "--model", MODEL, "--rename", "loss", str(COMPLETE_RUN)))
    assert "expected OLD=NEW" in line
    assert "is not a job id" in one_error_line(rg("import", "jsonl", "not-a-job", "x.jsonl"))
    assert counts(db) == (0, 0)


# --- JSON lines and CSV ---------------------------------------------------------------------------------------


def test_jsonl(db: Conn, rg: Cli, db_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        '{"step": 1, "train_loss": 0.9, "accuracy": 0.5}\n'
        "\n"
        '{"step": 2, "train_loss": NaN, "val_loss": "Infinity", "tokens": 21457864573440000000, "note": "warm"}\n'
        '{"step": 2, "val_loss": 0.41, "accuracy": null}\n'
    )
    job = new_job(db, MODEL)
    proc = ok(rg("import", "jsonl", str(job), str(path), "--rename", "val_loss=eval_loss", "--json"))
    summary = json.loads(proc.stdout)
    assert (summary["rows"], summary["skipped"]) == (3, {"note": 1})
    got = rows(db, job)
    assert got[0] == (1, None, 0.9, None, None, None, {"accuracy": 0.5})
    assert math.isnan(got[1][2]) and got[1][3] == math.inf and got[1][6] == {"tokens": 21457864573440000000}
    assert got[2][:4] == (2, None, None, 0.41) and got[2][6] == {}
    assert summary["final"] == {
        "train_loss": "NaN",
        "eval_loss": 0.41,
        "accuracy": 0.5,
        "tokens": 21457864573440000000,
    }
    # errors name the line
    path.write_text('{"step": 1, "loss": 0.5}\n{"loss": 0.4}\n')
    assert "metrics.jsonl: line 2 has no step" in one_error_line(rg("import", "jsonl", "--model", MODEL, str(path)))
    path.write_text('{"step": 1, "loss": 0.5}\n[1, 2]\n')
    assert "line 2 must be a JSON object" in one_error_line(rg("import", "jsonl", "--model", MODEL, str(path)))
    # and the Python function
    path.write_text('{"step": 7, "eval_loss": 0.3}\n')
    assert import_jsonl(db_dsn, path, model="py-model").final == {"eval_loss": 0.3}
    assert counts(db) == (2, 4)


def test_csv(db: Conn, rg: Cli, db_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text(
        "step,epoch,train_loss,val_loss,accuracy,tokens,phase\n"
        "0,0,2.3,,,,warmup\n"
        "100,1,nan,inf,0.81,21457864573440000000,train\n"
        "100,1,,0.52,-inf,,\n"
        "200,2,0.4,0.47,0.86,,\n"
    )
    proc = ok(rg("import", "csv", "--model", MODEL, "--rename", "val_loss=eval_loss", str(path), "--json"))
    summary = json.loads(proc.stdout)
    assert (summary["rows"], summary["skipped"], summary["steps"]["count"]) == (4, {"phase": 2}, 3)
    got = rows(db, summary["job_id"])
    assert got[0] == (0, 0.0, 2.3, None, None, None, {})  # empty cells: not logged
    assert math.isnan(got[1][2]) and got[1][3] == math.inf
    assert got[1][6] == {"accuracy": 0.81, "tokens": 21457864573440000000}
    assert got[2][6] == {"accuracy": "-Infinity"} and got[3][6] == {"accuracy": 0.86}
    assert summary["final"]["eval_loss"] == 0.47 and summary["final"]["train_loss"] == 0.4
    for content, message in (
        ("epoch,loss\n1,0.5\n", "the header has no step column (columns: epoch, loss)"),
        ("step,loss\n1,0.5,7\n", "line 2 has 3 cells, the header 2"),
        ("step,loss,loss\n1,0.5,0.4\n", "the header has the column loss twice"),
        ("step,loss\n-1,0.5\n", "line 2: step -1 is negative"),
        ("step,loss\nten,0.5\n", "line 2: step must be a non-negative integer, got 'ten'"),
        ("", "no header row"),
    ):
        path.write_text(content)
        assert message in one_error_line(rg("import", "csv", "--model", "bad", str(path)))
    path.write_text("step,accuracy\n3,0.9\n")
    assert import_csv(db_dsn, path, model="py-model", complete=True).verdict is not None
    assert counts(db) == (2, 5)


# --- MLflow ---------------------------------------------------------------------------------------------------


@pytest.fixture
def mlflow_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A finished MLflow run in a local file store: (tracking URI, run id), logged with MLflow's own API."""
    mlflow_tracking = pytest.importorskip("mlflow.tracking")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store in maintenance mode
    uri = (tmp_path / "mlruns").as_uri()
    client = mlflow_tracking.MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("importer"))
    run_id = run.info.run_id
    for step, (loss, lr) in enumerate([(0.9, 1e-3), (0.6, 8e-4), (0.45, 6e-4)]):
        client.log_metric(run_id, "train_loss", loss, step=step * 100, timestamp=1000 + step)
        client.log_metric(run_id, "learning_rate", lr, step=step * 100, timestamp=1000 + step)
    client.log_metric(run_id, "val_loss", 0.52, step=200, timestamp=2000)
    client.log_metric(run_id, "val_loss", 0.47, step=200, timestamp=2001)  # evaluated twice at one step
    client.log_metric(run_id, "accuracy", math.nan, step=100, timestamp=1500)
    client.log_metric(run_id, "accuracy", 0.83, step=200, timestamp=2002)
    client.set_terminated(run_id)
    return uri, run_id


def test_an_mlflow_run_every_metric_every_step(db: Conn, db_dsn: str, mlflow_run: tuple[str, str]) -> None:
    from regate_db.integrations.mlflow import import_run, read_run

    uri, run_id = mlflow_run
    events = read_run(run_id, tracking_uri=uri, rename={"val_loss": "eval_loss"})
    assert [e.step for e in events.events] == [0, 100, 200, 200]
    assert events.events[0].metrics == {"learning_rate": 1e-3, "train_loss": 0.9}
    assert math.isnan(events.events[1].metrics.pop("accuracy"))
    assert events.events[1].metrics == {"learning_rate": 8e-4, "train_loss": 0.6}
    assert events.events[2].metrics == {"accuracy": 0.83, "learning_rate": 6e-4, "train_loss": 0.45, "eval_loss": 0.52}
    assert events.events[3].metrics == {"eval_loss": 0.47}
    result = import_run(db_dsn, run_id, tracking_uri=uri, model=MODEL, rename={"val_loss": "eval_loss"})
    assert result.rows == 4 and result.final == {
        "accuracy": 0.83,
        "eval_loss": 0.47,  # the later of the two values at step 200, as MLflow's latest
        "learning_rate": 6e-4,
        "train_loss": 0.45,
    }
    assert rows(db, result.job_id)[1][6] == {"accuracy": "NaN"}


def test_regate_db_import_mlflow(
    db: Conn, rg: Cli, mlflow_run: tuple[str, str], monkeypatch: pytest.MonkeyPatch, cli_env: dict[str, str]
) -> None:
    uri, run_id = mlflow_run
    cli_env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    proc = ok(rg("import", "mlflow", "--model", MODEL, run_id, "--tracking-uri", uri, "--complete"))
    job = the_job(db)
    assert f"imported 4 rows at 3 steps (0 to 200) from mlflow run {run_id} into new job {job}" in proc.stdout
    assert "validation_status passed" in proc.stdout and "NO_BASELINES" in proc.stdout
    assert final(db, job)["val_loss"] == 0.47
    line = one_error_line(rg("import", "mlflow", "--model", MODEL, "0" * 32, "--tracking-uri", uri))
    assert line.startswith(f"error: mlflow run {'0' * 32}: ") and "not found" in line.lower()
    assert counts(db) == (1, 4)


def test_without_mlflow(monkeypatch: pytest.MonkeyPatch, cli_env: dict[str, str]) -> None:
    """regate-db never imports mlflow until a run is read, and without it says what to install."""
    code = "import sys, regate_db.cli, regate_db.integrations.mlflow; print('mlflow' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
    from regate_db.integrations.mlflow import read_run

    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # as if it were not installed
    with pytest.raises(MetricImportError, match="needs mlflow: pip install mlflow-skinny"):
        read_run("0" * 32)


# --- the progress bar -----------------------------------------------------------------------------------------


def _run_with_tty_stderr(cmd: list[str], env: dict[str, str]) -> tuple[int, str, bytes]:
    """Run `cmd` with stdout piped and stderr on a pseudo-terminal: (exit code, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    terminal = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        terminal += chunk
    out = proc.stdout.read() if proc.stdout else ""
    code = proc.wait(timeout=120)
    os.close(master)
    return code, out, bytes(terminal)


def test_a_long_import_shows_a_progress_bar_on_a_terminal_only(
    db: Conn, db_dsn: str, regate_cmd: list[str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text("".join(f'{{"step": {i}, "train_loss": {1 / (i + 1)}}}\n' for i in range(12_000)))
    cmd = [*regate_cmd, "import", "jsonl", "--model", MODEL, str(path), "--dsn", db_dsn]
    code, out, terminal = _run_with_tty_stderr(cmd, cli_env)
    assert code == 0 and "imported 12000 rows" in out, (out, terminal)
    assert b"importing long.jsonl" in terminal and b"/12000" in terminal, terminal
    # not a terminal: nothing on stderr
    proc = ok(run(regate_cmd, cli_env, "import", "jsonl", "--model", "second", str(path), "--dsn", db_dsn))
    assert proc.stderr == ""
    assert counts(db) == (2, 24_000)


def test_the_summary_entry_is_the_one_with_train_runtime_and_no_loss() -> None:
    """With include_num_input_tokens_seen the Trainer adds train_runtime to every per-step entry: those keep their
    loss as train_loss; only the end-of-training summary's train_loss is the average."""
    skipped: Counter[str] = Counter()
    per_step = {"loss": 0.5, "train_runtime": 12.0, "train_tokens_per_second": 900.0, "num_input_tokens_seen": 4096}
    assert not is_trainer_summary(per_step)
    assert hf_metrics(per_step, "x", skipped=skipped) == {
        "train_loss": 0.5,
        "train_runtime": 12.0,
        "train_tokens_per_second": 900.0,
        "num_input_tokens_seen": 4096,
    }
    summary = {"train_runtime": 30.0, "total_flos": 1.5e18, "train_loss": 0.61, "epoch": 3.0, "step": 90}
    assert is_trainer_summary(summary)
    assert hf_metrics(summary, "x", skipped=skipped) == {
        "train_runtime": 30.0,
        "total_flos": 1.5e18,
        "train_loss_mean": 0.61,
        "epoch": 3.0,
    }
    # a train_loss the user logs in an ordinary entry is the train_loss column
    assert hf_metrics({"train_loss": 0.4}, "x", skipped=skipped) == {"train_loss": 0.4}
    assert not skipped


def test_a_csv_saved_with_a_byte_order_mark(db: Conn, db_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("step,eval_loss\r\n5,0.4\r\n".encode("utf-8-sig"))
    assert import_csv(db_dsn, path, model=MODEL).final == {"eval_loss": 0.4}


def test_parsing_reads_the_whole_file_before_anything_is_sent() -> None:
    """The parse is all or nothing on its own: a problem in the last entry refuses the file (no connection needed)."""
    text = COMPLETE_RUN.read_text().replace('"step": 300,\n      "total_flos"', '"step": -1,\n      "total_flos"')
    with pytest.raises(MetricImportError, match=r"log_history\[9\]: step -1 is negative"):
        parse_trainer_state(text, "edited.json")
