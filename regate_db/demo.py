"""The demo behind ``regate-db demo``: baselines, two simulated training runs, the verdicts PostgreSQL gives, and
challengers of the champion judged over 5 seeds each.

Everything here is a function that takes a connection, so the demo can run against any database with the
schema installed; the command only picks the database and prints. Each run uses fresh job ids and run groups, and
``regate.create_baseline`` supersedes the previous baselines, so the demo can be run again and again.
"""

from __future__ import annotations

import json
import math
import textwrap
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click
import psycopg
from psycopg.types.json import Jsonb

from regate_db import gates
from regate_db.migrate import make_plan, migrate

MODEL = "sentiment-bert"
STEPS = tuple(range(100, 1001, 100))
STEPS_PER_EPOCH = 250
BLOCKING_CONFIG: dict[str, Any] = {"blockOnCriticalFailures": True}


@dataclass(frozen=True)
class DemoBaseline:
    """One baseline of the demo model, as passed to ``regate.create_baseline``."""

    metric_name: str
    baseline_value: float
    greater_is_better: bool
    severity: str = "critical"
    threshold: float | None = None
    min_absolute_change: float | None = None
    min_relative_change: float | None = None

    def criterion(self) -> str:
        """The rule in words, for the baselines table."""
        if self.threshold is not None:
            return f"{'at least' if self.greater_is_better else 'at most'} {_num(self.threshold)}"
        if self.min_relative_change is not None:
            return f"at most {_num(-self.min_relative_change * 100)}% worse than {_num(self.baseline_value)}"
        assert self.min_absolute_change is not None
        return f"at most {_num(-self.min_absolute_change)} worse than {_num(self.baseline_value)}"


# The accepted reference of the model: what its current production version scored.
BASELINES: tuple[DemoBaseline, ...] = (
    DemoBaseline("eval_loss", 0.42, greater_is_better=False, min_relative_change=-0.05),
    DemoBaseline("accuracy", 0.91, greater_is_better=True, threshold=0.89),
    DemoBaseline("f1", 0.90, greater_is_better=True, min_absolute_change=-0.02),
    DemoBaseline("perplexity", round(math.exp(0.42), 4), greater_is_better=False, min_relative_change=-0.05,
                 severity="warning"),
)  # fmt: skip


@dataclass(frozen=True)
class RunProfile:
    """A simulated training run: where its metrics start and where they end after the last step."""

    label: str
    model_version: str
    train_loss: float
    eval_loss: float
    accuracy: float
    f1: float


GOOD_RUN = RunProfile("good run", "2.1.0", train_loss=0.31, eval_loss=0.405, accuracy=0.915, f1=0.904)
# Overfits: a lower training loss, but every eval metric is worse.
REGRESSED_RUN = RunProfile("regressed run", "2.2.0", train_loss=0.22, eval_loss=0.48, accuracy=0.874, f1=0.887)
START = {"train_loss": 1.25, "eval_loss": 1.1, "accuracy": 0.55, "f1": 0.5}

# Act 4: the next version's challengers are judged against the champion in production, on accuracy only, each on the
# mean of 5 seeds. The champion baseline is version-specific, so it does not supersede the fixed accuracy baseline
# that acts 1-2 use (one active baseline per model, version, metric and severity).
CHALLENGER_VERSION = "3.0.0"
CHAMPION_TOLERANCE = 0.005  # at most this much below the champion's accuracy
CHALLENGER_CONFIG: dict[str, Any] = {
    "blockOnCriticalFailures": True,
    "regressionGateConfig": {"metricsToValidate": ["accuracy"]},
}


@dataclass(frozen=True)
class Challenger:
    """A training configuration run with 5 seeds: the final accuracy of each (fixed, so the output never changes)."""

    label: str
    accuracy: tuple[float, ...]


CHALLENGERS: tuple[Challenger, ...] = (
    Challenger("winner", (0.921, 0.927, 0.924, 0.929, 0.924)),  # clearly above the champion
    Challenger("loser", (0.881, 0.886, 0.884, 0.887, 0.882)),  # significantly below
    Challenger("inconclusive", (0.894, 0.921, 0.903, 0.917, 0.905)),  # slightly below on average, wide spread
)


@dataclass(frozen=True)
class Check:
    """One row of ``regate.validation_checks``."""

    metric_name: str
    severity: str
    observed: float | str | None
    baseline_value: float | None
    outcome: str
    message: str


@dataclass
class Verdict:
    """What completing a job returned, and the verdict row behind it."""

    label: str
    job_id: uuid.UUID
    validation_status: str
    validation_result_id: int | None
    result_status: str | None = None
    blocked: bool = False
    duration_ms: float | None = None
    checks: list[Check] = field(default_factory=list)


@dataclass
class DemoResult:
    """Both modes of the demo: warn-only first, then blocking."""

    warn_only: list[Verdict]
    blocking: list[Verdict]
    deployed: uuid.UUID | None = None
    refusal: str | None = None
    challengers: list[Verdict] = field(default_factory=list)


class Reporter:
    """Where the demo writes: lines, and one progress line per run that is rewritten in place on a terminal."""

    def __init__(self, echo: Callable[..., Any] = click.echo, *, live: bool = False, pace: float = 0.04) -> None:
        self._echo = echo
        self.live = live
        self.pace = pace if live else 0.0

    def line(self, text: str = "") -> None:
        self._echo(text)

    def progress(self, text: str, *, done: bool) -> None:
        if self.live:
            self._echo("\r\x1b[2K" + text, nl=done)
            if not done:
                time.sleep(self.pace)  # slow enough to watch the steps go by
        elif done:
            self._echo(text)


def _num(x: float | str | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.4g}"


def _curve(start: float, end: float, step: int) -> float:
    """A training curve that moves fast first and reaches ``end`` exactly at the last step."""
    left = 1 - step / STEPS[-1]
    return round(end + (start - end) * left * left, 4)


def install_schema(conn: psycopg.Connection[Any]) -> str:
    """Migrate the database; a one-line account of what was done."""
    result = migrate(conn)
    plan = make_plan(conn)
    conn.commit()
    if not result.changed:
        state = "up to date"
    elif result.plan.schema_version is None:
        state = "installed"
    else:
        state = "upgraded" if result.applied else "updated"
    major, minor = divmod(conn.info.server_version, 10000)
    return f"schema regate {plan.schema_version} {state} in {conn.info.dbname} (PostgreSQL {major}.{minor})"


def create_baselines(
    conn: psycopg.Connection[Any], model: str = MODEL, baselines: Sequence[DemoBaseline] = BASELINES
) -> list[int]:
    """Create the demo model's baselines (superseding earlier ones with the same key); their ids."""
    ids = []
    with conn.transaction():
        for b in baselines:
            row = conn.execute(
                "select (regate.create_baseline("
                " model_name => %s, metric_name => %s, baseline_value => %s, greater_is_better => %s,"
                " threshold => %s, min_absolute_change => %s, min_relative_change => %s, severity => %s,"
                " description => 'regate-db demo')).id",
                (
                    model,
                    b.metric_name,
                    b.baseline_value,
                    b.greater_is_better,
                    b.threshold,
                    b.min_absolute_change,
                    b.min_relative_change,
                    b.severity,
                ),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
    return ids


def simulate_run(
    conn: psycopg.Connection[Any],
    profile: RunProfile,
    *,
    config: dict[str, Any] | None = None,
    model: str = MODEL,
    on_step: Callable[[uuid.UUID, int, dict[str, float]], None] | None = None,
) -> uuid.UUID:
    """Create a running job and log a training event and an evaluation event at every step; the job's id.

    Each step is committed on its own, as a trainer logging live would.
    """
    job_id = uuid.uuid4()
    with conn.transaction():
        conn.execute(
            "insert into regate.local_training_jobs (id, model_name, model_version, status, config)"
            " values (%s, %s, %s, 'running', %s)",
            (job_id, model, profile.model_version, Jsonb({"learning_rate": 5e-5, "epochs": 4, **(config or {})})),
        )
    for step in STEPS:
        train_loss = _curve(START["train_loss"], profile.train_loss, step)
        eval_loss = _curve(START["eval_loss"], profile.eval_loss, step)
        evals = {
            "accuracy": _curve(START["accuracy"], profile.accuracy, step),
            "f1": _curve(START["f1"], profile.f1, step),
        }
        with conn.transaction():
            conn.execute(
                "insert into regate.local_training_metrics"
                " (job_id, step, epoch, train_loss, learning_rate, grad_norm, eval_loss, perplexity, metrics)"
                " values (%s, %s, %s, %s, %s, %s, null, null, '{}'), (%s, %s, %s, null, null, null, %s, %s, %s)",
                (
                    job_id,
                    step,
                    step / STEPS_PER_EPOCH,
                    train_loss,
                    5e-5 * (1 - step / STEPS[-1]),
                    round(0.6 + 1.4 * (1 - step / STEPS[-1]), 3),
                    job_id,
                    step,
                    step / STEPS_PER_EPOCH,
                    eval_loss,
                    round(math.exp(eval_loss), 4),
                    Jsonb(evals),
                ),
            )
        if on_step is not None:
            on_step(job_id, step, {"train_loss": train_loss, "eval_loss": eval_loss, **evals})
    return job_id


def complete_job(conn: psycopg.Connection[Any], job_id: uuid.UUID, label: str = "") -> Verdict:
    """Mark the job completed: the trigger validates it in the same statement. The verdict with its checks."""
    with conn.transaction():
        row = conn.execute(
            "update regate.local_training_jobs set status = 'completed' where id = %s"
            " returning validation_status, validation_result_id",
            (job_id,),
        ).fetchone()
    assert row is not None, f"no job {job_id}"
    verdict = Verdict(label=label, job_id=job_id, validation_status=row[0], validation_result_id=row[1])
    if verdict.validation_result_id is None:
        return verdict
    result = conn.execute(
        "select status, blocked, duration_ms from regate.validation_results where id = %s",
        (verdict.validation_result_id,),
    ).fetchone()
    assert result is not None
    verdict.result_status, verdict.blocked, verdict.duration_ms = result
    verdict.checks = [
        Check(*r)
        for r in conn.execute(
            "select metric_name, severity, observed, baseline_value, outcome, message"
            " from regate.validation_checks where result_id = %s order by check_index",
            (verdict.validation_result_id,),
        )
    ]
    return verdict


def checks_table(checks: Sequence[Check], indent: str = "    ") -> list[str]:
    """The checks as an aligned table (plain text; outcomes styled, which click drops when not on a terminal)."""
    header = ("metric", "severity", "observed", "baseline", "outcome", "message")
    rows = [(c.metric_name, c.severity, _num(c.observed), _num(c.baseline_value), c.outcome, c.message) for c in checks]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def fmt(cells: Sequence[str], styled: bool) -> str:
        out = []
        for i, cell in enumerate(cells[:-1]):
            padded = cell.ljust(widths[i])
            if styled and i == 4:
                padded = click.style(padded, fg="green" if cell == "passed" else "red", bold=cell != "passed")
            out.append(padded)
        return indent + "  ".join([*out, cells[-1]])

    return [click.style(fmt(header, False), dim=True), *(fmt(r, True) for r in rows)]


STATUS_COLOURS = {"passed": "green", "warning": "yellow", "failed": "red", "blocked": "red", "error": "red"}


def verdict_line(v: Verdict) -> str:
    """One line: the job's validation_status and the verdict behind it."""
    status = click.style(v.validation_status, fg=STATUS_COLOURS.get(v.validation_status), bold=True)
    head = f"  {v.label}: validation_status = {status}"
    if v.validation_result_id is None:
        return head + "  (the gate did not run: it is switched off, see regate-db gates status)"
    passed = sum(c.outcome == "passed" for c in v.checks)
    blocked = click.style("BLOCKED", fg="red", bold=True) if v.blocked else "not blocked"
    took = f" in {v.duration_ms:.1f} ms" if v.duration_ms is not None else ""
    return f"{head}  (result #{v.validation_result_id}{took}: {passed}/{len(v.checks)} checks passed, {blocked})"


def _progress_text(label: str, job_id: uuid.UUID, step: int, values: dict[str, float], width: int) -> str:
    shown = "  ".join(f"{k} {_num(values[k])}" for k in ("train_loss", "eval_loss", "accuracy"))
    return f"  training {label.ljust(width)}  job {str(job_id)[:8]}  step {step:>4}/{STEPS[-1]}  {shown}"


def run_mode(
    conn: psycopg.Connection[Any],
    out: Reporter,
    *,
    config: dict[str, Any] | None,
    profiles: Sequence[RunProfile] = (GOOD_RUN, REGRESSED_RUN),
    show_checks: str = "all",
) -> list[Verdict]:
    """Simulate the runs under one job config, complete them, and print their verdicts."""
    width = max(len(p.label) for p in profiles)
    job_ids = []
    for profile in profiles:

        def on_step(job_id: uuid.UUID, step: int, values: dict[str, float], label: str = profile.label) -> None:
            out.progress(_progress_text(label, job_id, step, values, width), done=step == STEPS[-1])

        job_ids.append(simulate_run(conn, profile, config=config, on_step=on_step))
    out.line(
        "  completing both: update regate.local_training_jobs set status = 'completed' ... returning validation_status"
    )
    verdicts = []
    for profile, job_id in zip(profiles, job_ids, strict=True):
        verdict = complete_job(conn, job_id, profile.label)
        verdicts.append(verdict)
        out.line(verdict_line(verdict))
        checks = verdict.checks if show_checks == "all" else [c for c in verdict.checks if c.outcome != "passed"]
        if checks:
            for line in checks_table(checks):
                out.line(line)
    return verdicts


def run_demo(conn: psycopg.Connection[Any], out: Reporter | None = None) -> DemoResult:
    """The whole demo on ``conn`` (which it migrates first and then uses in autocommit mode, without server-side
    prepared statements, so that it also runs through a transaction pooler such as PgBouncer)."""
    out = out or Reporter()
    out.line(click.style(f"regate-db demo: regression gates for model {MODEL}", bold=True))
    out.line(install_schema(conn))
    conn.autocommit = True
    conn.prepare_threshold = None
    switch = gates.gate_status(conn)
    if not switch.enabled:
        out.line(
            click.style(
                f"note: the gates are switched off (by {switch.changed_by}: {switch.reason}); "
                "jobs will show not_run. Switch them on with: regate-db gates on",
                fg="yellow",
            )
        )
    create_baselines(conn)
    out.line()
    out.line(f"baselines of {MODEL} (regate.create_baseline; earlier ones with the same key are superseded):")
    rows = [
        (b.metric_name, b.severity, "higher is better" if b.greater_is_better else "lower is better", b.criterion())
        for b in BASELINES
    ]
    header = ("metric", "severity", "direction", "criterion")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for i, r in enumerate([header, *rows]):
        text = "  " + "  ".join([*(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)), r[3]])
        out.line(click.style(text, dim=True) if i == 0 else text)

    out.line()
    out.line(
        click.style("1. warn-only (the default job config): a regression is recorded, nothing is blocked", bold=True)
    )
    warn_only = run_mode(conn, out, config=None)

    out.line()
    out.line(
        click.style(
            f"2. blocking (job config {json.dumps(BLOCKING_CONFIG)}): the regressed model is blocked", bold=True
        )
    )
    blocking = run_mode(conn, out, config=BLOCKING_CONFIG, show_checks="failing")

    out.line()
    out.line(click.style("3. deployment: the database refuses to deploy the blocked model", bold=True))
    deployed, refusal = deploy_both(conn, out, blocking)

    out.line()
    out.line(
        click.style(
            "4. champion vs challengers: 5 seeds each (a run group), one verdict on the 95% interval of their mean",
            bold=True,
        )
    )
    challengers = challenge_champion(conn, out)

    out.line()
    out.line("Every verdict is a row; see them with:")
    out.line(f"  select * from regate.validation_history where model_name = '{MODEL}';")
    return DemoResult(
        warn_only=warn_only, blocking=blocking, deployed=deployed, refusal=refusal, challengers=challengers
    )


def deploy_both(
    conn: psycopg.Connection[Any], out: Reporter, verdicts: Sequence[Verdict]
) -> tuple[uuid.UUID | None, str | None]:
    """Deploy each job of the blocking mode to production: the passed one becomes the champion, the blocked one is
    refused by the database (RG012). Returns the deployed job and the refusal's message."""
    deployed: uuid.UUID | None = None
    refusal: str | None = None
    for verdict in verdicts:
        prefix = f"  select regate.deploy('{str(verdict.job_id)[:8]}...', 'production')  -- {verdict.label}: "
        try:
            conn.execute("select regate.deploy(%s, 'production')", (verdict.job_id,))
        except psycopg.Error as exc:
            if exc.sqlstate != "RG012":
                raise
            refusal = exc.diag.message_primary or str(exc)
            out.line(prefix + click.style(f"refused [{exc.sqlstate}]", fg="red", bold=True))
            shown = refusal.split("; an admin may override")[0].replace(str(verdict.job_id), str(verdict.job_id)[:8])
            for line in textwrap.wrap(shown, width=112, initial_indent="    ", subsequent_indent="      "):
                out.line(line)
            continue
        deployed = verdict.job_id
        out.line(prefix + click.style("deployed", fg="green", bold=True))
    row = conn.execute(
        "select job_id from regate.champions where model_name = %s and environment = 'production'", (MODEL,)
    ).fetchone()
    if row is not None:
        out.line(f"  champion in production (regate.champions): job {str(row[0])[:8]}")
    out.line("  an admin may still let it through, audited: select regate.override_gate(job_id, reason => '...')")
    return deployed, refusal


def _short_ids(text: str, *job_ids: uuid.UUID | None) -> str:
    """The text with each of the job ids shortened to its first 8 characters, as the demo shows them."""
    for job_id in job_ids:
        if job_id is not None:
            text = text.replace(str(job_id), str(job_id)[:8])
    return text


def run_group(
    conn: psycopg.Connection[Any], challenger: Challenger, *, model: str = MODEL, config: dict[str, Any] | None = None
) -> Verdict:
    """Create one job per seed in a new run group (``run_group_size`` = the number of seeds), log each one's final
    accuracy, and complete them one by one: the last completion validates the group. Its verdict, which every run of
    the group shares."""
    group = f"demo-{challenger.label}-{uuid.uuid4().hex[:8]}"
    job_ids = [uuid.uuid4() for _ in challenger.accuracy]
    with conn.transaction():
        for seed, (job_id, accuracy) in enumerate(zip(job_ids, challenger.accuracy, strict=True), start=1):
            conn.execute(
                "insert into regate.local_training_jobs"
                " (id, model_name, model_version, status, config, run_group, run_group_size)"
                " values (%s, %s, %s, 'running', %s, %s, %s)",
                (
                    job_id,
                    model,
                    CHALLENGER_VERSION,
                    Jsonb({"learning_rate": 5e-5, "epochs": 4, "seed": seed, **(config or {})}),
                    group,
                    len(job_ids),
                ),
            )
            conn.execute(
                "insert into regate.local_training_metrics (job_id, step, epoch, metrics) values (%s, %s, %s, %s)",
                (job_id, STEPS[-1], STEPS[-1] / STEPS_PER_EPOCH, Jsonb({"accuracy": accuracy})),
            )
    for job_id in job_ids[:-1]:
        complete_job(conn, job_id, challenger.label)  # waits for its group: no verdict yet
    return complete_job(conn, job_ids[-1], challenger.label)


def challenge_champion(conn: psycopg.Connection[Any], out: Reporter) -> list[Verdict]:
    """Act 4: a champion baseline on accuracy, and three challengers of 5 seeds each; their group verdicts."""
    with conn.transaction():
        conn.execute(
            "select regate.create_baseline(model_name => %s, model_version => %s, metric_name => 'accuracy',"
            " greater_is_better => true, min_absolute_change => %s, reference => 'champion',"
            " environment => 'production', description => 'regate-db demo: no worse than production')",
            (MODEL, CHALLENGER_VERSION, -CHAMPION_TOLERANCE),
        )
    row = conn.execute(
        "select c.job_id, (regate.extract_final_metrics(c.job_id) ->> 'accuracy')::float8"
        " from regate.champions as c where c.model_name = %s and c.environment = 'production'",
        (MODEL,),
    ).fetchone()
    champion, champion_accuracy = (row[0], row[1]) if row is not None else (None, None)
    shown = f"job {str(champion)[:8]}, accuracy {_num(champion_accuracy)}" if champion else "none yet"
    out.line(f"  baseline of {MODEL} {CHALLENGER_VERSION} (reference => 'champion', environment => 'production'):")
    out.line(f"    accuracy at most {_num(CHAMPION_TOLERANCE)} below the champion in production ({shown})")
    out.line(f"  job config {json.dumps(CHALLENGER_CONFIG)}")
    width = max(len(c.label) for c in CHALLENGERS)
    for challenger in CHALLENGERS:
        seeds = "  ".join(_num(a) for a in challenger.accuracy)
        out.line(f"  {challenger.label.ljust(width)}  accuracy of seeds 1-{len(challenger.accuracy)}: {seeds}")
    out.line("  completing each group's 5 runs one by one: the last completion validates the group")
    verdicts = []
    for challenger in CHALLENGERS:
        verdict = run_group(conn, challenger, config=CHALLENGER_CONFIG)
        verdicts.append(verdict)
        out.line(group_verdict_line(verdict))
        for check in verdict.checks:
            for line in textwrap.wrap(
                _short_ids(check.message, champion), width=112, initial_indent="    ", subsequent_indent="      "
            ):
                out.line(line)
    return verdicts


def group_verdict_line(v: Verdict) -> str:
    """One line: the validation_status the group's runs share, and each check's outcome."""
    status = click.style(v.validation_status, fg=STATUS_COLOURS.get(v.validation_status), bold=True)
    head = f"  {v.label}: validation_status = {status}"
    if v.validation_result_id is None:
        return head + "  (the gate did not run: it is switched off, see regate-db gates status)"
    outcomes = ", ".join(f"{c.metric_name} {c.outcome}" for c in v.checks)
    blocked = click.style("BLOCKED", fg="red", bold=True) if v.blocked else "not blocked"
    took = f" in {v.duration_ms:.1f} ms" if v.duration_ms is not None else ""
    return f"{head}  (result #{v.validation_result_id}{took} for the group: {outcomes}, {blocked})"
