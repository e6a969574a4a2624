"""Importers: a run's metric history from a file (a Trainer's ``trainer_state.json``, JSON lines, CSV) into a
regate job, all or nothing.

    from regate_db.importers import import_trainer_state

    result = import_trainer_state("postgresql://trainer@db/ml", "out/trainer_state.json",
                                  model="sentiment-bert", complete=True)
    print(result.rows, result.final["eval_loss"], result.verdict.status)

Every importer works in two phases. It first reads and checks the **whole** source (:func:`parse_trainer_state`,
:func:`parse_jsonl`, :func:`parse_csv`, :func:`regate_db.integrations.mlflow.read_run`) into :class:`Events`:
one event per entry, line or row, in the source's order, its names mapped to regate's (see below). A source that
cannot be imported raises :class:`MetricImportError` with one line naming the problem, before anything is sent.
:func:`import_events` then sends every row in **one transaction** (created job, metric rows, completion): a
refusal by the database leaves nothing behind, not even the job it created.

Names. In every format, a name that is a metric column of ``regate.local_training_metrics`` (``epoch``,
``train_loss``, ``eval_loss``, ``perplexity``, ``learning_rate``, ``grad_norm``) goes into that column and every other
name into the row's ``metrics`` object; ``step`` is the row's step; the other column names (``id``, ``job_id``,
``metrics``, ``recorded_at``) are refused. ``rename`` (``--rename OLD=NEW``) renames the source's names first.
The Trainer's names (:func:`hf_metrics`, shared with :class:`regate_db.integrations.huggingface.RegateCallback`)
add two rules: ``loss`` (the Trainer's per-step training loss) becomes ``train_loss``, and in the end-of-training
summary (the entry with ``train_runtime`` and no ``loss``) the run's *average* ``train_loss`` becomes
``train_loss_mean``, so that it never overwrites the last per-step ``train_loss``.

Values. JSON numbers (any size that fits a double, integers kept exactly), bare ``NaN``/``Infinity``/``-Infinity``
and the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; in CSV whatever Python's ``int()`` or ``float()``
reads (``nan``, ``inf``, ``1e-3``); a JSON ``null`` or an empty CSV cell is "not logged". Any other value (a string,
a list, an object, a boolean) is not a number: it is left out and counted per name in :attr:`Events.skipped`, or
refused with ``strict=True``. A number beyond double precision is refused.

Order. Entries that share a step become separate rows at that step, sent in the source's order; the database
numbers rows in order of arrival, and a job's final value of a metric is the one from the row with the highest
(step, arrival) where it is present: the last entry at the highest step that logged it, as in the file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from regate_db import release
from regate_db.client import Client, Verdict
from regate_db.errors import JobNotFoundError, RegateError

__all__ = [
    "RESERVED_NAMES",
    "SUMMARY_TRAIN_LOSS",
    "Event",
    "Events",
    "ImportResult",
    "MetricImportError",
    "NewJob",
    "Progress",
    "hf_metrics",
    "import_csv",
    "import_events",
    "import_jsonl",
    "import_trainer_state",
    "is_trainer_summary",
    "map_metrics",
    "parse_csv",
    "parse_jsonl",
    "parse_rename",
    "parse_trainer_state",
]

Number = int | float
#: ``progress(done, total)``: called as rows are sent (or, for an MLflow run, as its metrics are read).
Progress = Callable[[int, int], None]

#: Columns of ``regate.local_training_metrics`` that are not metrics: a source's name may not become one of them.
RESERVED_NAMES = ("id", "job_id", "metrics", "recorded_at")
#: The name under which the Trainer's end-of-training summary stores the run's average training loss.
SUMMARY_TRAIN_LOSS = "train_loss_mean"
#: Rows per INSERT (and per progress update).
CHUNK_ROWS = 5000

_MAX_STEP = 2**63 - 1
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class MetricImportError(RegateError):
    """A source that cannot be imported (malformed, a step that is not a non-negative integer, a name regate
    cannot store, a number beyond double precision, a non-number under ``strict``): one line naming the problem.
    Nothing was sent."""


class _NotANumber:
    """The value of a name that is present but not a number (a string, a list, ...)."""


NOT_A_NUMBER = _NotANumber()


@dataclass(frozen=True)
class Event:
    """One row to import: a step, its metrics under regate's names, and where it came from (for messages)."""

    step: int
    metrics: dict[str, Number]
    where: str


@dataclass
class Events:
    """A whole source, read and checked, ready for :func:`import_events`."""

    source: str
    format: str
    events: list[Event]
    #: source name -> how many of its values were left out because they are not numbers
    skipped: dict[str, int] = field(default_factory=dict)
    #: entries, lines or rows with nothing to import (no metric, or only values that are not numbers)
    empty: int = 0
    #: trainer-state: how many end-of-training summary entries the file has (0 for a checkpoint's state)
    summary_entries: int = 0
    #: things a person should know about the source (a run that stopped early, ...)
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.events)

    @property
    def steps(self) -> list[int]:
        """The distinct steps, ascending."""
        return sorted({e.step for e in self.events})

    @property
    def metric_names(self) -> list[str]:
        return sorted({name for e in self.events for name in e.metrics})


@dataclass(frozen=True)
class NewJob:
    """A job for :func:`import_events` to create (in the import's transaction)."""

    model_name: str
    version: str | None = None
    config: Mapping[str, Any] | None = None


@dataclass
class ImportResult:
    """What an import did."""

    job_id: uuid.UUID
    created: bool
    source: str
    format: str
    rows: int
    steps: list[int]
    metrics: list[str]
    #: the job's final metrics after the import (``regate.extract_final_metrics``: what the gate judges)
    final: dict[str, Any]
    skipped: dict[str, int]
    empty: int
    summary_entries: int
    notes: list[str]
    #: the gate's verdict, when the import completed the job
    verdict: Verdict | None = None

    def to_json(self) -> dict[str, Any]:
        """The summary ``regate-db import ... --json`` prints."""
        verdict: dict[str, Any] | None = None
        if self.verdict is not None:
            verdict = {"status": self.verdict.status, "blocked": self.verdict.blocked, "message": self.verdict.message}
            verdict["record"] = release.jsonable(self.verdict.record) if self.verdict.record else None
        summary: dict[str, Any] = release.jsonable(
            {
                "job_id": self.job_id,
                "created": self.created,
                "source": self.source,
                "format": self.format,
                "rows": self.rows,
                "steps": {
                    "count": len(self.steps),
                    "first": self.steps[0] if self.steps else None,
                    "last": self.steps[-1] if self.steps else None,
                },
                "metrics": self.metrics,
                "final": self.final,
                "skipped": self.skipped,
                "empty": self.empty,
                "summary_entries": self.summary_entries,
                "notes": self.notes,
                "completed": self.verdict is not None,
                "verdict": verdict,
            }
        )
        return summary


# --- values and names -----------------------------------------------------------------------------------------


def number(value: Any) -> Number | _NotANumber | None:
    """``value`` as a metric value: an int or float, None for "not logged" (JSON null), or NOT_A_NUMBER.
    0-d tensors and numpy scalars count as numbers (``.item()``); a bool does not."""
    if value is None:
        return None
    if isinstance(value, bool):
        return NOT_A_NUMBER
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return _NON_FINITE.get(value, NOT_A_NUMBER)
    item = getattr(value, "item", None)
    if callable(item):  # a tensor or numpy array of one element
        try:
            inner = item()
        except (TypeError, ValueError, RuntimeError):  # more than one element
            return NOT_A_NUMBER
        if isinstance(inner, numbers.Real) and not isinstance(inner, bool):
            return number(inner)
    return NOT_A_NUMBER


def text_number(cell: str | None) -> Number | _NotANumber | None:
    """A CSV cell as a metric value: None when empty, else what ``int()`` or ``float()`` reads, else NOT_A_NUMBER."""
    if cell is None or not cell.strip():
        return None
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        return float(cell)
    except ValueError:
        return NOT_A_NUMBER


def parse_step(value: Any, where: str) -> int:
    """A step: a non-negative integer (``10``, ``10.0``, ``"10"``); MetricImportError naming ``where`` otherwise."""
    step: Any = value
    if isinstance(value, str):
        parsed = text_number(value)
        step = value if isinstance(parsed, _NotANumber) or parsed is None else parsed
    if isinstance(step, float) and math.isfinite(step) and step.is_integer():
        step = int(step)
    if isinstance(step, bool) or not isinstance(step, int):
        raise MetricImportError(f"{where}: step must be a non-negative integer, got {value!r}")
    if step < 0:
        raise MetricImportError(f"{where}: step {step} is negative (steps start at 0)")
    if step > _MAX_STEP:
        raise MetricImportError(f"{where}: step {step} is beyond the bigint range of regate's steps")
    return step


def _check_value(name: str, value: Number, where: str) -> Number:
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            raise MetricImportError(f"{where}: {name} is beyond double precision ({str(value)[:20]}...)") from None
    return value


def _target_name(name: str, where: str) -> str:
    if not name.strip():
        raise MetricImportError(f"{where}: a metric name is empty")
    if name == "step":
        raise MetricImportError(f"{where}: 'step' is the row's step, not a metric name: rename it (--rename step=NEW)")
    if name in RESERVED_NAMES:
        raise MetricImportError(
            f"{where}: {name!r} is a column of regate.local_training_metrics, not a metric name: rename it"
            f" (--rename {name}=NEW)"
        )
    return name


def map_metrics(
    items: Iterable[tuple[str, Any]],
    where: str,
    *,
    skipped: Counter[str],
    strict: bool = False,
    name_of: Callable[[str], str] = lambda name: name,
    value_of: Callable[[Any], Number | _NotANumber | None] = number,
) -> dict[str, Number]:
    """The metrics of one entry under regate's names (``name_of`` maps a source name; the metric columns keep
    theirs, every other name goes into ``metrics``). Values that are not numbers are counted in ``skipped`` (or
    refused with ``strict``); two source names that map to one name are refused."""
    out: dict[str, Number] = {}
    origin: dict[str, str] = {}
    for key, raw in items:
        value = value_of(raw)
        if value is None:
            continue
        if isinstance(value, _NotANumber):
            if strict:
                raise MetricImportError(
                    f"{where}: {key} is not a number ({type(raw).__name__} {_short(raw)}), and strict mode refuses"
                    " what is not a number"
                )
            skipped[key] += 1
            continue
        name = _target_name(name_of(key), where)
        if name in out:
            raise MetricImportError(f"{where}: {origin[name]} and {key} would both be stored as {name}")
        out[name] = _check_value(key, value, where)
        origin[name] = key
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_trainer_summary(entry: Mapping[str, Any]) -> bool:
    """True for the Trainer's end-of-training summary: the entry with ``train_runtime`` and no ``loss``
    (``train_runtime``, ``train_samples_per_second``, ``total_flos``, the average ``train_loss``, ...). Per-step
    entries log ``loss`` (with ``include_num_input_tokens_seen`` they carry ``train_runtime`` too)."""
    return "train_runtime" in entry and "loss" not in entry


def _hf_name(summary: bool) -> Callable[[str], str]:
    def name_of(key: str) -> str:
        if key == "loss":
            return "train_loss"
        if summary and key == "train_loss":
            return SUMMARY_TRAIN_LOSS
        return key

    return name_of


def hf_metrics(
    logs: Mapping[str, Any],
    where: str,
    *,
    skipped: Counter[str],
    strict: bool = False,
    rename: Mapping[str, str] | None = None,
) -> dict[str, Number]:
    """The metrics of one Trainer log entry (a ``log_history`` entry or the ``logs`` of ``on_log``) under regate's
    names: ``loss`` -> ``train_loss``; ``eval_loss``, ``learning_rate``, ``grad_norm``, ``epoch`` -> their columns;
    in the end-of-training summary (:func:`is_trainer_summary`) ``train_loss`` -> ``train_loss_mean``; every other
    numeric name into ``metrics`` as it is. ``step`` is not a metric and is ignored here."""
    renamed = _renamed(logs, rename)
    summary = is_trainer_summary(dict(renamed))
    return map_metrics(
        ((k, v) for k, v in renamed if k != "step"), where, skipped=skipped, strict=strict, name_of=_hf_name(summary)
    )


def _renamed(entry: Mapping[str, Any], rename: Mapping[str, str] | None) -> list[tuple[str, Any]]:
    if not rename:
        return list(entry.items())
    return [(rename.get(str(k), str(k)), v) for k, v in entry.items()]


def parse_rename(pairs: Sequence[str]) -> dict[str, str]:
    """``["loss=train_loss", "val_loss=eval_loss"]`` as a mapping; MetricImportError for a malformed pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise MetricImportError(f"--rename {pair!r}: expected OLD=NEW, e.g. --rename val_loss=eval_loss")
        if old in out:
            raise MetricImportError(f"--rename: {old} is renamed twice")
        out[old] = new
    return out


# --- JSON -----------------------------------------------------------------------------------------------------


class _Refused(ValueError):
    pass


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: json would read it as Infinity
        raise _Refused(f"the number {text} is beyond double precision")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _load_json(text: str, where: str) -> Any:
    try:
        return json.loads(text, parse_float=_json_float, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise MetricImportError(
            f"{where}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except ValueError as exc:  # _Refused, or an integer of more than 4300 digits
        raise MetricImportError(f"{where}: {exc}") from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


# --- trainer_state.json ---------------------------------------------------------------------------------------


def parse_trainer_state(
    text: str,
    source: str = "trainer_state.json",
    *,
    strict: bool = False,
    rename: Mapping[str, str] | None = None,
) -> Events:
    """A Hugging Face Trainer's ``trainer_state.json``: one event per ``log_history`` entry, at its ``step``, in
    file order, under the names of :func:`hf_metrics`. MetricImportError for a file that is not one, an entry
    without a step or with a step that is not a non-negative integer (naming the entry)."""
    state = _load_json(text, source)
    if not isinstance(state, dict):
        raise MetricImportError(
            f"{source}: expected a JSON object (a Trainer's trainer_state.json), got {_kind(state)}"
        )
    if "log_history" not in state:
        raise MetricImportError(f"{source}: no log_history: is this a Trainer's trainer_state.json?")
    history = state["log_history"]
    if not isinstance(history, list):
        raise MetricImportError(f"{source}: log_history must be an array of entries, got {_kind(history)}")
    skipped: Counter[str] = Counter()
    events: list[Event] = []
    empty = summaries = 0
    for i, entry in enumerate(history):
        where = f"{source}: log_history[{i}]"
        if not isinstance(entry, dict):
            raise MetricImportError(f"{where} must be an object, got {_kind(entry)}")
        renamed = dict(_renamed(entry, rename))
        if "step" not in renamed:
            raise MetricImportError(f"{where} has no step")
        step = parse_step(renamed["step"], where)
        where = f"{where} (step {step})"
        summaries += is_trainer_summary(renamed)
        metrics = hf_metrics(renamed, where, skipped=skipped, strict=strict)
        if metrics:
            events.append(Event(step, metrics, where))
        else:
            empty += 1
    return Events(source, "trainer-state", events, dict(skipped), empty, summaries, _trainer_notes(state, summaries))


def _trainer_notes(state: Mapping[str, Any], summaries: int) -> list[str]:
    notes: list[str] = []
    global_step, max_steps = state.get("global_step"), state.get("max_steps")
    if (
        isinstance(global_step, int)
        and isinstance(max_steps, int)
        and not isinstance(global_step, bool)
        and 0 < global_step < max_steps
    ):
        notes.append(f"the run stopped at step {global_step} of {max_steps} (max_steps)")
    if not summaries:
        notes.append("no end-of-training summary: a checkpoint's state, or a run that did not finish")
    return notes


# --- JSON lines and CSV ---------------------------------------------------------------------------------------


def _plain_event(
    row: Mapping[str, Any],
    where: str,
    *,
    skipped: Counter[str],
    strict: bool,
    rename: Mapping[str, str] | None,
    value_of: Callable[[Any], Number | _NotANumber | None] = number,
) -> Event | None:
    renamed = dict(_renamed(row, rename))
    if "step" not in renamed or renamed["step"] in (None, ""):
        raise MetricImportError(f"{where} has no step")
    step = parse_step(renamed["step"], where)
    where = f"{where} (step {step})"
    metrics = map_metrics(
        ((k, v) for k, v in renamed.items() if k != "step"), where, skipped=skipped, strict=strict, value_of=value_of
    )
    return Event(step, metrics, where) if metrics else None


def parse_jsonl(
    text: str, source: str = "metrics.jsonl", *, strict: bool = False, rename: Mapping[str, str] | None = None
) -> Events:
    """JSON lines: one object per line with ``step`` and metrics (``{"step": 10, "eval_loss": 0.4}``); blank
    lines are ignored. Names as they are (the metric columns to their columns, the rest into ``metrics``)."""
    skipped: Counter[str] = Counter()
    events: list[Event] = []
    empty = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}: line {lineno}"
        obj = _load_json(line, where)
        if not isinstance(obj, dict):
            raise MetricImportError(f"{where} must be a JSON object, got {_kind(obj)}")
        event = _plain_event(obj, where, skipped=skipped, strict=strict, rename=rename)
        if event is None:
            empty += 1
        else:
            events.append(event)
    if not events and not empty:
        raise MetricImportError(f"{source}: no events (an empty file)")
    return Events(source, "jsonl", events, dict(skipped), empty)


def parse_csv(
    text: str, source: str = "metrics.csv", *, strict: bool = False, rename: Mapping[str, str] | None = None
) -> Events:
    """CSV with a header row: a ``step`` column and one column per metric; an empty cell is "not logged", a cell
    is read with ``int()`` or ``float()`` (``nan``, ``inf`` and ``-inf`` included)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise MetricImportError(f"{source}: no header row (an empty file)")
        header = [h.strip() for h in header]
        renamed = [(rename or {}).get(h, h) for h in header]
        if "step" not in renamed:
            raise MetricImportError(f"{source}: the header has no step column (columns: {', '.join(header)})")
        seen: set[str] = set()
        for name in header:
            if not name:
                raise MetricImportError(f"{source}: the header has an empty column name")
            if name in seen:
                raise MetricImportError(f"{source}: the header has the column {name} twice")
            seen.add(name)
        skipped: Counter[str] = Counter()
        events: list[Event] = []
        empty = 0
        for cells in reader:
            where = f"{source}: line {reader.line_num}"
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if len(cells) != len(header):
                raise MetricImportError(f"{where} has {len(cells)} cells, the header {len(header)}")
            event = _plain_event(
                dict(zip(header, cells, strict=True)),
                where,
                skipped=skipped,
                strict=strict,
                rename=rename,
                value_of=text_number,
            )
            if event is None:
                empty += 1
            else:
                events.append(event)
    except csv.Error as exc:
        raise MetricImportError(f"{source}: not valid CSV: {exc}") from None
    return Events(source, "csv", events, dict(skipped), empty)


# --- sending --------------------------------------------------------------------------------------------------

Target = str | psycopg.Connection[Any]


@contextmanager
def _connection(target: Target) -> Iterator[psycopg.Connection[Any]]:
    if isinstance(target, psycopg.Connection):
        yield target
        return
    from regate_db.connect import connect

    conn = connect(target, autocommit=True, prepare_threshold=None)
    try:
        yield conn
    finally:
        conn.close()


def import_events(
    target: Target,
    events: Events,
    *,
    job_id: uuid.UUID | str | None = None,
    new_job: NewJob | None = None,
    complete: bool = False,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportResult:
    """Send ``events`` into the job ``job_id`` (or a job made from ``new_job``) in one transaction: the job's
    creation, every row (one INSERT per ``chunk_rows``, in the events' order), reading the final metrics and, with
    ``complete``, the completion that runs the gate. Any refusal rolls all of it back. ``target`` is a DSN or a
    psycopg connection (inside your own transaction the import is a savepoint of it)."""
    if (job_id is None) == (new_job is None):
        raise ValueError("give exactly one of job_id and new_job")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    with _connection(target) as conn:
        client = Client(conn, buffer_size=chunk_rows + 1)  # flushed by hand, once per chunk
        try:
            with conn.transaction():
                if new_job is not None:
                    job = client.create_job(new_job.model_name, new_job.version, new_job.config)
                else:
                    job = release.parse_job_id(str(job_id)) if not isinstance(job_id, uuid.UUID) else job_id
                    _require_job(conn, job)
                total, done = events.rows, 0
                for start in range(0, total, chunk_rows):
                    for event in events.events[start : start + chunk_rows]:
                        client.log_metrics_dict(job, event.step, event.metrics)
                    done += client.flush()
                    if progress is not None:
                        progress(done, total)
                final = _final_metrics(conn, job)
                verdict = client.complete_job(job) if complete else None
        except psycopg.Error as exc:
            raise release.translate_error(conn, exc, "import metrics") from exc
    return ImportResult(
        job_id=job,
        created=new_job is not None,
        source=events.source,
        format=events.format,
        rows=done,
        steps=events.steps,
        metrics=events.metric_names,
        final=final,
        skipped=events.skipped,
        empty=events.empty,
        summary_entries=events.summary_entries,
        notes=events.notes,
        verdict=verdict,
    )


def _require_job(conn: psycopg.Connection[Any], job: uuid.UUID) -> None:
    if conn.execute("select from regate.local_training_jobs where id = %s", (job,)).fetchone() is None:
        raise JobNotFoundError(f"no training job with id {job} (or not one of yours)", "RG008")


def _final_metrics(conn: psycopg.Connection[Any], job: uuid.UUID) -> dict[str, Any]:
    row = conn.execute("select regate.extract_final_metrics(%s)", (job,)).fetchone()
    return dict(row[0]) if row is not None and row[0] else {}


def read_text(path: str | Path) -> tuple[str, str]:
    """The text of ``path`` (``-``: standard input) and the name to use in messages; MetricImportError when it
    cannot be read."""
    if str(path) == "-":
        return sys.stdin.read(), "<stdin>"
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8-sig"), str(path)  # -sig: a CSV saved by Excel starts with a BOM
    except FileNotFoundError:
        raise MetricImportError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise MetricImportError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise MetricImportError(f"{path}: cannot read it: {exc.strerror or exc}") from None


def _job_args(
    job_id: uuid.UUID | str | None, model: str | None, version: str | None, config: Mapping[str, Any] | None
) -> tuple[uuid.UUID | str | None, NewJob | None]:
    if (job_id is None) == (model is None):
        raise ValueError("give exactly one of job_id (an existing job) and model (a new job)")
    return job_id, NewJob(model, version, config) if model is not None else None


def _import_file(
    parse: Callable[..., Events],
    target: Target,
    path: str | Path,
    job_id: uuid.UUID | str | None,
    model: str | None,
    version: str | None,
    config: Mapping[str, Any] | None,
    complete: bool,
    strict: bool,
    rename: Mapping[str, str] | None,
    progress: Progress | None,
) -> ImportResult:
    job, new_job = _job_args(job_id, model, version, config)
    text, source = read_text(path)
    events = parse(text, source, strict=strict, rename=rename)
    return import_events(target, events, job_id=job, new_job=new_job, complete=complete, progress=progress)


def import_trainer_state(
    target: Target,
    path: str | Path,
    job_id: uuid.UUID | str | None = None,
    *,
    model: str | None = None,
    version: str | None = None,
    config: Mapping[str, Any] | None = None,
    complete: bool = False,
    strict: bool = False,
    rename: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import a Trainer's ``trainer_state.json`` into the job ``job_id``, or into a new job of ``model`` (with
    ``version`` and gate ``config``); ``complete`` completes the job in the same transaction and returns the
    verdict in :attr:`ImportResult.verdict`. See :func:`parse_trainer_state` and the module doc for the names."""
    return _import_file(
        parse_trainer_state, target, path, job_id, model, version, config, complete, strict, rename, progress
    )


def import_jsonl(
    target: Target,
    path: str | Path,
    job_id: uuid.UUID | str | None = None,
    *,
    model: str | None = None,
    version: str | None = None,
    config: Mapping[str, Any] | None = None,
    complete: bool = False,
    strict: bool = False,
    rename: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """:func:`import_trainer_state` for a JSON-lines file (:func:`parse_jsonl`)."""
    return _import_file(parse_jsonl, target, path, job_id, model, version, config, complete, strict, rename, progress)


def import_csv(
    target: Target,
    path: str | Path,
    job_id: uuid.UUID | str | None = None,
    *,
    model: str | None = None,
    version: str | None = None,
    config: Mapping[str, Any] | None = None,
    complete: bool = False,
    strict: bool = False,
    rename: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """:func:`import_trainer_state` for a CSV file (:func:`parse_csv`)."""
    return _import_file(parse_csv, target, path, job_id, model, version, config, complete, strict, rename, progress)
