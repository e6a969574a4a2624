"""The release-control commands of ``regate-db``: baselines, validate, gate, history, show, stats, deploy,
champions, overrides and policies. Argument parsing and output only: the work is done by
:mod:`regate_db.release`, and every decision by the database.

Output: readable tables on stdout (``rich``; a fixed wide layout when stdout is not a terminal, so nothing is cut
in pipes and logs), or ``--json``: one JSON document on stdout and nothing else. Errors: one line on stderr
(``error: ...``), printed by :func:`regate_db.cli.main`.

Exit codes: 0 success (a gate that passes or only warns); 1 the answer is "no": a verdict that blocks
(``validate``, ``gate``) or a deployment the database refused (``deploy``, RG012); 2 an error (bad arguments, no
database, permission denied, an unknown id, ...).
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from regate_db import release
from regate_db.clikit import Options, connection, db_options, json_option

EXIT_BLOCKED = 1

# --- output ---------------------------------------------------------------------------------------------------


def _console() -> Console:
    tty = sys.stdout.isatty()
    # Not a terminal (a pipe, a CI log, a test): a fixed, generous width, so that no cell is wrapped or cut.
    return Console(width=None if tty else 1000, no_color=not tty, highlight=False, soft_wrap=False)


def fmt(value: Any) -> str:
    """A cell: '-' for NULL, compact numbers and timestamps, lists joined by commas, JSON for objects."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S%z}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return json.dumps(release.jsonable(value), separators=(", ", ": "))
    return str(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    """Print a table (or '(none)' under the title when there are no rows)."""
    rows = list(rows)
    if title:
        click.echo(title + (" (none)" if not rows else ""))
    if not rows:
        if not title:
            click.echo("(none)")
        return
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, highlight=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*(Text(fmt(v)) for v in r))
    _console().print(t)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(release.jsonable(value), indent=2, allow_nan=False))


def _job(text: str) -> uuid.UUID:
    return release.parse_job_id(text)


def _rows_table(rows: list[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> None:
    table(columns, ([r.get(c) for c in columns] for r in rows), title=title)


def _conn(opts: Options) -> Any:
    return connection(opts)


def _autocommit(conn: Any) -> None:
    conn.autocommit = True


# --- verdicts -------------------------------------------------------------------------------------------------


def _verdict_line(v: release.Verdict) -> str:
    what = f"model {v.model_name}" + (f" version {v.model_version}" if v.model_version else "")
    job = f"job {v.job_id}, " if v.job_id else ""
    state = "BLOCKED (deployment refused)" if v.blocked else "not blocking"
    return f"verdict {v.id}: {v.status.upper()}, {state} ({job}{what}, source {v.source})"


def print_checks(checks: Sequence[release.Check], *, title: str | None = "checks:") -> None:
    table(
        ["metric", "severity", "outcome", "observed", "baseline", "message"],
        ([c.metric_name, c.severity, c.outcome, c.observed, c.baseline_value, c.message] for c in checks),
        title=title,
    )


def print_verdict(v: release.Verdict) -> None:
    click.echo(_verdict_line(v))
    if v.error_message:
        click.echo(f"  error: {v.error_message}" + (f" [{v.error_sqlstate}]" if v.error_sqlstate else ""))
    print_checks(v.checks)


# --- baselines ------------------------------------------------------------------------------------------------

BASELINE_COLUMNS = (
    "id",
    "model_name",
    "model_version",
    "metric_name",
    "reference",
    "baseline_value",
    "greater_is_better",
    "threshold",
    "min_absolute_change",
    "min_relative_change",
    "severity",
    "is_active",
    "created_by",
    "created_at",
)


def _baselines_table(baselines: Sequence[release.Baseline], *, title: str | None = None) -> None:
    headers = [c.replace("_", " ").replace("greater is better", "higher better") for c in BASELINE_COLUMNS]
    table(headers, ([getattr(b, c) for c in BASELINE_COLUMNS] for b in baselines), title=title)


@click.group("baseline", short_help="Create, list, promote and deactivate baselines (writing: admins only).")
def baseline_group() -> None:
    """The accepted reference values a model's jobs are checked against.

    \b
    Examples:
      regate-db baseline create sentiment-bert eval_loss --value 0.42 --min-relative-change -0.05
      regate-db baseline create sentiment-bert accuracy --value 0.91 --greater-is-better --threshold 0.88
      regate-db baseline list --model sentiment-bert
      regate-db baseline promote 0190c2a4-7d1e-7000-8000-000000000001 --min-relative-change -0.05
      regate-db baseline deactivate 17
    """


@baseline_group.command("create")
@click.argument("model")
@click.argument("metric")
@click.option(
    "--value", "value", type=float, metavar="V", help="The accepted value (required with a change criterion)."
)
@click.option(
    "--greater-is-better/--lower-is-better",
    "greater_is_better",
    default=None,
    help="Direction. Default: inferred for names ending in loss, perplexity, wer, cer (lower is better).",
)
@click.option("--threshold", type=float, help="The value must be >= it (higher is better) or <= it.")
@click.option("--min-absolute-change", type=float, help="Beat the value by at least this; negative: tolerated loss.")
@click.option("--min-relative-change", type=float, help="The same, relative to |value| (-0.05: at most 5% worse).")
@click.option("--severity", type=click.Choice(["critical", "warning"]), default="critical", show_default=True)
@click.option("--model-version", metavar="VERSION", help="Only for this version of the model (default: all).")
@click.option("--description", metavar="TEXT")
@click.option(
    "--reference",
    type=click.Choice(["fixed", "champion", "rolling"]),
    default="fixed",
    show_default=True,
    help="Compare with --value (fixed), the model's champion in --environment, or the median of its last "
    "--window accepted runs.",
)
@click.option("--environment", metavar="ENV", help="With --reference champion: whose champion (e.g. production).")
@click.option("--window", "window_size", type=int, metavar="K", help="With --reference rolling: the last K runs.")
@click.option("--min-runs", type=int, metavar="N", help="With --reference rolling: fewer runs is no reference.")
@click.option(
    "--on-missing-reference",
    type=click.Choice(["pass", "warn", "fail"]),
    default="warn",
    show_default=True,
    help="What a check without a resolvable reference (no champion yet, too few runs) counts as.",
)
@click.option(
    "--confidence",
    type=float,
    default=0.95,
    show_default=True,
    help="Level of the interval of the mean when a check gets repeated runs.",
)
@click.option("--min-support", type=float, metavar="N", help="Family only: skip slices with fewer examples than N.")
@click.option("--support-metric", metavar="FAMILY", help="Family only: where the slice counts are, e.g. n/*.")
@click.option(
    "--benjamini-hochberg", is_flag=True, help="Family only: control false discoveries among slices over repeated runs."
)
@db_options
@json_option
@click.pass_obj
def baseline_create(
    opts: Options,
    model: str,
    metric: str,
    value: float | None,
    greater_is_better: bool | None,
    threshold: float | None,
    min_absolute_change: float | None,
    min_relative_change: float | None,
    severity: str,
    model_version: str | None,
    description: str | None,
    reference: str,
    environment: str | None,
    window_size: int | None,
    min_runs: int | None,
    on_missing_reference: str,
    confidence: float,
    min_support: float | None,
    support_metric: str | None,
    benjamini_hochberg: bool,
) -> None:
    """Create the active baseline of MODEL for METRIC (admins only); the previous active one is deactivated.

    \b
    Examples:
      # eval_loss may be at most 5% worse than 0.42
      regate-db baseline create sentiment-bert eval_loss --value 0.42 --min-relative-change -0.05
      # accuracy at most 1% below the champion in production
      regate-db baseline create sentiment-bert accuracy --greater-is-better --min-relative-change -0.01 \\
          --reference champion --environment production
      # f1 at most 2% below the median of the last 10 accepted runs (once there are 3)
      regate-db baseline create sentiment-bert f1 --greater-is-better --min-relative-change -0.02 \\
          --reference rolling --window 10 --min-runs 3
      # every language slice accuracy/lang=... at most 2 points below 0.9, slices under 100 examples skipped
      regate-db baseline create sentiment-bert 'accuracy/*' --value 0.9 --greater-is-better \\
          --min-absolute-change -0.02 --min-support 100 --support-metric 'n/*'
    """
    with _conn(opts) as conn:
        _autocommit(conn)
        b = release.create_baseline(
            conn,
            model,
            metric,
            value,
            greater_is_better=greater_is_better,
            threshold=threshold,
            min_absolute_change=min_absolute_change,
            min_relative_change=min_relative_change,
            severity=severity,
            model_version=model_version,
            description=description,
            reference=reference,
            environment=environment,
            window_size=window_size,
            min_runs=min_runs,
            on_missing_reference=on_missing_reference,
            confidence=confidence,
            min_support=min_support,
            support_metric=support_metric,
            benjamini_hochberg=benjamini_hochberg,
        )
    if opts.json:
        emit_json(b)
        return
    click.echo(f"created baseline {b.id}: {b.model_name} {b.metric_name} ({b.severity})")
    _baselines_table([b])


@baseline_group.command("list")
@click.option("--model", metavar="MODEL", help="Only this model's baselines.")
@click.option("--all", "include_inactive", is_flag=True, help="Include inactive (superseded) baselines.")
@db_options
@json_option
@click.pass_obj
def baseline_list(opts: Options, model: str | None, include_inactive: bool) -> None:
    """List the active baselines (all of them with --all).

    \b
    Example:
      regate-db baseline list --model sentiment-bert --all
    """
    with _conn(opts) as conn:
        baselines = release.list_baselines(conn, model, include_inactive=include_inactive)
    if opts.json:
        emit_json(baselines)
        return
    _baselines_table(baselines)


@baseline_group.command("promote")
@click.argument("job_id")
@click.option("--metric", "metrics", multiple=True, metavar="NAME", help="Promote only this metric (repeatable).")
@click.option(
    "--min-relative-change",
    type=float,
    help="Criterion relative to the promoted value (-0.05: at most 5% worse). Default: the value is a threshold.",
)
@click.option("--severity", type=click.Choice(["critical", "warning"]), default="critical", show_default=True)
@click.option("--higher-is-better", "higher", multiple=True, metavar="NAME", help="Direction of a metric (repeatable).")
@click.option("--lower-is-better", "lower", multiple=True, metavar="NAME", help="Direction of a metric (repeatable).")
@db_options
@json_option
@click.pass_obj
def baseline_promote(
    opts: Options,
    job_id: str,
    metrics: tuple[str, ...],
    min_relative_change: float | None,
    severity: str,
    higher: tuple[str, ...],
    lower: tuple[str, ...],
) -> None:
    """Promote the final metrics of JOB_ID to baselines of its model (admins only).

    Without --metric, metrics that are not finite or whose direction is unknown (give it with
    --higher-is-better NAME) are skipped, and listed.

    \b
    Example:
      regate-db baseline promote 0190c2a4-7d1e-7000-8000-000000000001 --metric eval_loss --min-relative-change -0.05
    """
    directions = {**{m: True for m in higher}, **{m: False for m in lower}}
    with _conn(opts) as conn:
        _autocommit(conn)
        result = release.promote_job(
            conn,
            _job(job_id),
            list(metrics) or None,
            min_relative_change=min_relative_change,
            severity=severity,
            directions=directions,
        )
    if opts.json:
        emit_json(result)
        return
    click.echo(f"promoted {len(result.baselines)} metric(s) of job {job_id} to baselines")
    if result.baselines:
        _baselines_table(result.baselines)
    for s in result.skipped:
        click.echo(f"  {s}")


@baseline_group.command("deactivate")
@click.argument("baseline_id", type=int)
@db_options
@json_option
@click.pass_obj
def baseline_deactivate(opts: Options, baseline_id: int) -> None:
    """Deactivate baseline BASELINE_ID (admins only): it is no longer checked, and kept as history.

    \b
    Example:
      regate-db baseline deactivate 17
    """
    with _conn(opts) as conn:
        _autocommit(conn)
        b, changed = release.deactivate_baseline(conn, baseline_id)
    if opts.json:
        emit_json({"baseline": b, "changed": changed})
        return
    what = f"baseline {b.id} ({b.model_name} {b.metric_name}, {b.severity})"
    click.echo(f"deactivated {what}" if changed else f"{what} was already inactive; nothing changed")


# --- validate, gate -------------------------------------------------------------------------------------------


@click.command("validate")
@click.argument("job_id")
@db_options
@json_option
@click.pass_obj
def validate_cmd(opts: Options, job_id: str) -> None:
    """Validate JOB_ID now against its model's baselines and print the verdict and every check.

    The verdict is recorded (source 'manual'). An admin's validation of a completed job also becomes the job's
    verdict; anyone else's is a recorded re-check.

    Exit status: 0 when the verdict does not block (passed, warning, no_baselines, or failed under a warn-only
    config), 1 when it blocks deployment, 2 on error.

    \b
    Example:
      regate-db validate 0190c2a4-7d1e-7000-8000-000000000001 --json
    """
    with _conn(opts) as conn:
        _autocommit(conn)
        verdict = release.validate_job(conn, _job(job_id))
    _finish_verdict(opts, verdict)


def _finish_verdict(opts: Options, verdict: release.Verdict) -> None:
    if opts.json:
        emit_json(verdict)
    else:
        print_verdict(verdict)
    if verdict.blocked:
        failing = ", ".join(c.metric_name for c in verdict.failing) or verdict.status
        click.echo(f"blocked: verdict {verdict.id} of {verdict.model_name} blocks deployment ({failing})", err=True)
        sys.exit(EXIT_BLOCKED)


@click.command("gate")
@click.argument("model")
@click.option(
    "--metrics",
    "metrics_file",
    required=True,
    type=click.File("r"),
    metavar="FILE.json",
    help='A JSON object of metric name -> number ({"eval_loss": 0.41}); - reads stdin.',
)
@click.option("--model-version", metavar="VERSION")
@click.option("--require", "required", multiple=True, metavar="METRIC", help="Fail when METRIC is missing.")
@click.option("--warn-only", is_flag=True, help="Report a critical failure without blocking (exit 0).")
@click.option("--job", "job_id", metavar="JOB_ID", help="Link the verdict to this (your) job.")
@db_options
@json_option
@click.pass_obj
def gate_cmd(
    opts: Options,
    model: str,
    metrics_file: Any,
    model_version: str | None,
    required: tuple[str, ...],
    warn_only: bool,
    job_id: str | None,
) -> None:
    """The explicit gate (a CI or workflow step): check the metrics in FILE.json against MODEL's baselines.

    The verdict is recorded (source 'gate'). A critical failure blocks unless --warn-only (an enforcing policy
    of the model may block anyway).

    Exit status: 0 passed (also warning, no_baselines, and failures with --warn-only), 1 blocked, 2 error.

    \b
    Examples:
      regate-db gate sentiment-bert --metrics eval.json --require eval_loss
      python evaluate.py | regate-db gate sentiment-bert --metrics - --json
    """
    text = metrics_file.read()
    metrics = release.metrics_from_json(text, "--metrics " + getattr(metrics_file, "name", "FILE"))
    with _conn(opts) as conn:
        _autocommit(conn)
        verdict = release.run_gate(
            conn,
            model,
            metrics,
            model_version=model_version,
            block_on_failure=not warn_only,
            required_metrics=list(required) or None,
            job_id=_job(job_id) if job_id else None,
        )
    _finish_verdict(opts, verdict)


# --- history, show, stats -------------------------------------------------------------------------------------

HISTORY_COLUMNS = ("id", "created_at", "job_id", "model_name", "model_version", "status", "blocked", "source")


@click.command("history")
@click.option("--model", metavar="MODEL", help="Only this model's verdicts.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many, newest first.")
@db_options
@json_option
@click.pass_obj
def history_cmd(opts: Options, model: str | None, limit: int) -> None:
    """The newest verdicts you may see (regate.validation_history), newest first.

    \b
    Example:
      regate-db history --model sentiment-bert --limit 5
    """
    with _conn(opts) as conn:
        rows = release.history(conn, model, limit=limit)
    if opts.json:
        emit_json(rows)
        return
    _rows_table(rows, (*HISTORY_COLUMNS, "check_count", "caused_by"))


@click.command("show")
@click.argument("job_id")
@db_options
@json_option
@click.pass_obj
def show_cmd(opts: Options, job_id: str) -> None:
    """Everything about JOB_ID: the job, its verdict and checks, every verdict, deployments and overrides.

    \b
    Example:
      regate-db show 0190c2a4-7d1e-7000-8000-000000000001
    """
    with _conn(opts) as conn:
        report = release.show_job(conn, _job(job_id))
    if opts.json:
        emit_json(report)
        return
    j = report.job
    click.echo(f"job {j['id']}")
    for label, key in (
        ("model", "model_name"),
        ("version", "model_version"),
        ("status", "status"),
        ("gate", "validation_status"),
        ("owner", "owner_id"),
        ("created", "created_at"),
        ("completed", "completed_at"),
    ):
        click.echo(f"  {label + ':':<11}{fmt(j[key])}")
    if report.purge is not None:
        p = report.purge
        state = "" if p["complete"] else ", partly (a later purge finishes it)"
        click.echo(
            f"  {'history:':<11}purged {fmt(p['purged_at'])} by {p['purged_by']}{state}: {p['rows_deleted']} metric"
            f" rows removed, {p['rows_kept']} kept (the rows of its final values)"
        )
    if report.verdict is None:
        click.echo("verdict: none (the job has not been validated)")
    else:
        click.echo(_verdict_line(report.verdict))
        if report.verdict.error_message:
            click.echo(f"  error: {report.verdict.error_message}")
        print_checks(report.verdict.checks)
    _rows_table(report.verdicts, ("id", "created_at", "status", "blocked", "source", "caused_by"), title="verdicts:")
    _rows_table(
        report.deployments,
        ("id", "environment", "deployed_at", "deployed_by", "validation_status", "override_id", "notes"),
        title="deployments:",
    )
    _rows_table(
        report.overrides,
        ("id", "reason", "overridden_by", "created_at", "expires_at", "confirmed_by", "in_effect"),
        title="overrides:",
    )


STATS_COLUMNS = (
    "validations",
    "passed",
    "warning",
    "failed",
    "blocked",
    "errors",
    "no_baselines",
    "not_run",
    "overrides",
    "pass_rate",
    "override_rate",
    "error_rate",
    "last_validation_at",
)


@click.command("stats")
@click.option("--model", metavar="MODEL", help="Only this model (no overall row).")
@click.option("--since", metavar="WHEN", help="From this date/time (2026-03-01) or this long ago (7d, 12h).")
@click.option("--until", metavar="WHEN", help="Up to this date/time or this long ago.")
@click.option("--by-day", is_flag=True, help="One row per model and day.")
@db_options
@json_option
@click.pass_obj
def stats_cmd(opts: Options, model: str | None, since: str | None, until: str | None, by_day: bool) -> None:
    """Gate statistics per model, and overall (model '*'): verdicts, pass, override and error rates.

    \b
    Examples:
      regate-db stats --since 7d
      regate-db stats --model sentiment-bert --since 2026-03-01 --by-day --json
    """
    since_at = release.parse_when(since, future=False) if since else None
    until_at = release.parse_when(until, future=False) if until else None
    with _conn(opts) as conn:
        rows = release.gate_stats(conn, model, since=since_at, until=until_at, by_day=by_day)
    if opts.json:
        emit_json(rows)
        return
    shown = [{**r, "model_name": r["model_name"] if r["model_name"] is not None else "*"} for r in rows]
    _rows_table(shown, ("model_name", *(("day",) if by_day else ()), *STATS_COLUMNS))


# --- deployments, champions, overrides ------------------------------------------------------------------------


@click.command("deploy")
@click.argument("job_id")
@click.option("--env", "environment", required=True, metavar="ENV", help="The environment (production, staging...).")
@click.option("--notes", metavar="TEXT")
@db_options
@json_option
@click.pass_obj
def deploy_cmd(opts: Options, job_id: str, environment: str, notes: str | None) -> None:
    """Record the deployment of JOB_ID to ENV: the database refuses it (RG012) unless the job may deploy.

    Exit status: 0 deployed, 1 refused (the reason is the error line: the verdict blocks, or the job is not
    completed; an admin may `regate-db override` it), 2 other errors.

    \b
    Example:
      regate-db deploy 0190c2a4-7d1e-7000-8000-000000000001 --env production --notes "release 2026-03"
    """
    with _conn(opts) as conn:
        _autocommit(conn)
        row = release.deploy(conn, _job(job_id), environment, notes)
    if opts.json:
        emit_json(row)
        return
    via = f", by override {row['override_id']}" if row.get("override_id") else ""
    click.echo(
        f"deployed job {row['job_id']} ({row['model_name']}) to {row['environment']}: deployment {row['id']},"
        f" verdict {fmt(row['validation_status'])}{via}"
    )


@click.command("champions")
@click.option("--model", metavar="MODEL")
@click.option("--env", "environment", metavar="ENV")
@db_options
@json_option
@click.pass_obj
def champions_cmd(opts: Options, model: str | None, environment: str | None) -> None:
    """The champion of each model and environment: its latest deployment.

    \b
    Example:
      regate-db champions --env production
    """
    with _conn(opts) as conn:
        rows = release.champions(conn, model, environment)
    if opts.json:
        emit_json(rows)
        return
    _rows_table(
        rows,
        (
            "model_name",
            "environment",
            "job_id",
            "model_version",
            "validation_status",
            "override_id",
            "deployment_id",
            "deployed_at",
            "deployed_by",
        ),
    )


OVERRIDE_COLUMNS = (
    "id",
    "job_id",
    "reason",
    "overridden_by",
    "created_at",
    "expires_at",
    "requires_confirmation",
    "confirmed_by",
    "in_effect",
)


def _override_line(row: dict[str, Any]) -> str:
    state = "in effect" if row.get("in_effect") else "NOT in effect"
    if row.get("requires_confirmation") and not row.get("confirmed_by"):
        state += " (awaiting a second admin: regate-db confirm-override " + str(row["id"]) + ")"
    expires = f", expires {fmt(row['expires_at'])}" if row.get("expires_at") else ""
    return f"override {row['id']} of job {row['job_id']}: {state}{expires}"


@click.command("override")
@click.argument("job_id")
@click.option("--reason", required=True, metavar="TEXT", help="Why the refusal is overridden (required; recorded).")
@click.option(
    "--expires",
    metavar="WHEN",
    help="When the override ends: an ISO datetime (2026-03-01T18:00:00+00:00) or a duration (2h, 3d).",
)
@db_options
@json_option
@click.pass_obj
def override_cmd(opts: Options, job_id: str, reason: str, expires: str | None) -> None:
    """Override the verdict that refuses the deployment of JOB_ID (admins only; audited).

    Under a policy with the four-eyes rule the override is in effect only once another admin confirms it:
    `regate-db confirm-override OVERRIDE_ID`. `regate-db overrides` lists them. (Overriding and confirming are
    two commands, not subcommands of one, because `override JOB_ID` takes a job id.)

    \b
    Example:
      regate-db override 0190c2a4-7d1e-7000-8000-000000000001 --reason "INC-7: eval set fixed" --expires 2h
    """
    expires_at = release.parse_when(expires, future=True) if expires else None
    with _conn(opts) as conn:
        _autocommit(conn)
        row = release.override_gate(conn, _job(job_id), reason, expires_at)
    if opts.json:
        emit_json(row)
        return
    click.echo(_override_line(row))


@click.command("confirm-override")
@click.argument("override_id", type=int)
@db_options
@json_option
@click.pass_obj
def confirm_override_cmd(opts: Options, override_id: int) -> None:
    """Confirm override OVERRIDE_ID as a second admin (four-eyes rule; not the admin who overrode).

    \b
    Example:
      regate-db confirm-override 3
    """
    with _conn(opts) as conn:
        _autocommit(conn)
        row = release.confirm_override(conn, override_id)
    if opts.json:
        emit_json(row)
        return
    click.echo(f"confirmed by {row['confirmed_by']}: " + _override_line(row))


@click.command("overrides")
@click.option("--job", "job_id", metavar="JOB_ID", help="Only this job's overrides.")
@db_options
@json_option
@click.pass_obj
def overrides_cmd(opts: Options, job_id: str | None) -> None:
    """List overrides (regate.override_status) and whether each is in effect.

    \b
    Example:
      regate-db overrides --job 0190c2a4-7d1e-7000-8000-000000000001
    """
    with _conn(opts) as conn:
        rows = release.override_list(conn, job_id=_job(job_id) if job_id else None)
    if opts.json:
        emit_json(rows)
        return
    _rows_table(rows, OVERRIDE_COLUMNS)


# --- policies -------------------------------------------------------------------------------------------------

POLICY_COLUMNS = ("model_name", *release.POLICY_SETTINGS, "version", "updated_by", "updated_at")
INHERITABLE = release.POLICY_SETTINGS  # every setting of a policy may inherit


@click.group("policy", short_help="Set and show the admins' gate policies, per model and default.")
def policy_group() -> None:
    """The admins' gate policies: the gate config of a model's jobs (or of every model: the default policy).

    \b
    Examples:
      regate-db policy set sentiment-bert --block --enforce
      regate-db policy set --default --fail-closed --metrics eval_loss,accuracy
      regate-db policy show sentiment-bert
      regate-db policy history sentiment-bert
    """


def _model_or_default(model: str | None, default: bool) -> str | None:
    if default and model:
        raise click.UsageError("give MODEL or --default, not both")
    if not default and not model:
        raise click.UsageError("give MODEL, or --default for the default policy")
    return model


@policy_group.command("set")
@click.argument("model", required=False)
@click.option("--default", "default", is_flag=True, help="Change the default policy (every model without its own).")
@click.option("--enable-gates/--disable-gates", default=None, help="enableRegressionGates.")
@click.option("--block/--warn-only", "block", default=None, help="blockOnCriticalFailures.")
@click.option("--require-baselines/--no-require-baselines", default=None, help="requireBaselines.")
@click.option("--fail-open/--fail-closed", default=None, help="failOpen: does a validation error let the job pass?")
@click.option("--metrics", metavar="A,B", help="metricsToValidate, comma-separated.")
@click.option("--enforce/--no-enforce", default=None, help="Enforce: a job's config may only tighten the policy.")
@click.option(
    "--second-admin/--no-second-admin",
    "second_admin",
    default=None,
    help="Four-eyes rule: an override is in effect only once a second admin confirms it.",
)
@click.option(
    "--inconclusive-fails/--inconclusive-warns",
    "inconclusive_fails",
    default=None,
    help="inconclusiveFails: does an inconclusive check over repeated runs fail (or only warn)?",
)
@click.option(
    "--inherit",
    "inherit",
    multiple=True,
    type=click.Choice(INHERITABLE),
    help="Set this setting back to inherit (from the default policy, or the built-in default); repeatable.",
)
@db_options
@json_option
@click.pass_obj
def policy_set(
    opts: Options,
    model: str | None,
    default: bool,
    enable_gates: bool | None,
    block: bool | None,
    require_baselines: bool | None,
    fail_open: bool | None,
    metrics: str | None,
    enforce: bool | None,
    second_admin: bool | None,
    inconclusive_fails: bool | None,
    inherit: tuple[str, ...],
) -> None:
    """Change the gate policy of MODEL (or --default); settings not given stay as they are (admins only).

    \b
    Example:
      regate-db policy set sentiment-bert --block --require-baselines --enforce --inherit fail_open
    """
    target = _model_or_default(model, default)
    metric_list = [m.strip() for m in metrics.split(",")] if metrics is not None else None
    with _conn(opts) as conn:
        _autocommit(conn)
        row = release.set_policy(
            conn,
            target,
            reset=inherit,
            enable_gates=enable_gates,
            block_on_critical_failures=block,
            require_baselines=require_baselines,
            fail_open=fail_open,
            metrics_to_validate=metric_list,
            enforce=enforce,
            override_requires_second_admin=second_admin,
            inconclusive_fails=inconclusive_fails,
        )
    if opts.json:
        emit_json(row)
        return
    click.echo(f"policy of {_policy_name(row['model_name'])} is now version {row['version']}")
    _policies_table([row])


def _policy_name(model: str | None) -> str:
    return f"model {model}" if model is not None else "the default policy"


def _policies_table(rows: list[dict[str, Any]]) -> None:
    columns = [c for c in POLICY_COLUMNS if not rows or c in rows[0]]
    shown = [{**r, "model_name": r["model_name"] if r["model_name"] is not None else "(default)"} for r in rows]
    _rows_table(shown, columns)


@policy_group.command("show")
@click.argument("model", required=False)
@db_options
@json_option
@click.pass_obj
def policy_show(opts: Options, model: str | None) -> None:
    """Show the policies (MODEL: the default policy and the model's) and the effective gate config of a job
    with an empty config (of MODEL, or of a model without a policy).

    \b
    Example:
      regate-db policy show sentiment-bert --json
    """
    with _conn(opts) as conn:
        view = release.show_policy(conn, model)
    if opts.json:
        emit_json(view)
        return
    click.echo("policies:" + (" none (built-in defaults)" if not view.policies else ""))
    if view.policies:
        _policies_table(view.policies)
    who = f"a job of {model}" if model else "a job of a model without its own policy"
    click.echo(f"effective config of {who} (with an empty config):")
    click.echo(json.dumps(view.effective_config, indent=2))


@policy_group.command("history")
@click.argument("model", required=False)
@click.option("--default", "default", is_flag=True, help="Only the default policy's history.")
@db_options
@json_option
@click.pass_obj
def policy_history_cmd(opts: Options, model: str | None, default: bool) -> None:
    """Every change of the policies (of MODEL, or the default policy), oldest first (admins).

    \b
    Example:
      regate-db policy history sentiment-bert
    """
    if default and model:
        raise click.UsageError("give MODEL or --default, not both")
    with _conn(opts) as conn:
        rows = release.policy_history(conn, model, default_only=default)
    if opts.json:
        emit_json(rows)
        return
    table(
        ["id", "policy", "version", "changed_by", "changed_at", "changes"],
        (
            [
                r["id"],
                r["model_name"] if r["model_name"] is not None else "(default)",
                r["version"],
                r["changed_by"],
                r["changed_at"],
                "; ".join(f"{k}: {fmt(o)} -> {fmt(n)}" for k, (o, n) in release.changed_settings(r).items())
                or "(no change)",
            ]
            for r in rows
        ),
    )


COMMANDS: tuple[click.Command, ...] = (
    baseline_group,
    validate_cmd,
    gate_cmd,
    history_cmd,
    show_cmd,
    stats_cmd,
    deploy_cmd,
    champions_cmd,
    override_cmd,
    confirm_override_cmd,
    overrides_cmd,
    policy_group,
)


def register(group: click.Group, commands: Iterable[click.Command] = COMMANDS) -> None:
    """Add the release-control commands to the ``regate-db`` group."""
    for command in commands:
        group.add_command(command)
