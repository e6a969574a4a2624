"""The release-control commands (`regate-db baseline|validate|gate|history|show|stats|deploy|champions|override|
confirm-override|overrides|policy`) as a user runs them: real processes against a real database, human output
and --json, exit codes, one line on stderr for every error, --dsn after the subcommand."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

from tests.helpers import complete, log, new_job, run

Proc = subprocess.CompletedProcess[str]
Cli = Callable[..., Proc]


@pytest.fixture
def rg(db_dsn: str, cli_env: dict[str, str], regate_cmd: list[str]) -> Cli:
    """Run `regate-db ARGS --dsn <the test's database>` (the options after the subcommand)."""

    def call(*args: str, dsn: str = db_dsn, stdin: str | None = None) -> Proc:
        if stdin is None:
            return run(regate_cmd, cli_env, *args, "--dsn", dsn)
        return subprocess.run(
            [*regate_cmd, *args, "--dsn", dsn], env=cli_env, input=stdin, capture_output=True, text=True, timeout=180
        )

    return call


def ok(proc: Proc) -> Proc:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def js(proc: Proc) -> Any:
    """The JSON document on stdout of a successful --json run (nothing else may be on stdout)."""
    return json.loads(ok(proc).stdout)


def one_error_line(proc: Proc, code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def login(db: psycopg.Connection[Any], db_dsn: str) -> Iterator[Callable[[str], tuple[str, str]]]:
    """Make a login role granted a regate level ('writer', 'admin'); returns (name, DSN). Dropped after the test."""
    names: list[str] = []

    def make(level: str) -> tuple[str, str]:
        name = f"rg_cli_{uuid.uuid4().hex[:8]}"
        db.execute(f"create role {name} login password 'pw-{name}'")
        names.append(name)
        db.execute("select regate.grant_usage(%s, %s)", (name, level))
        return name, conninfo.make_conninfo(db_dsn, user=name, password=f"pw-{name}")

    yield make
    for name in names:
        db.execute(f"drop owned by {name} cascade")
        db.execute(f"drop role {name}")


def _trained_job(db: psycopg.Connection[Any], eval_loss: float, *, block: bool = False, model: str = "bert") -> str:
    job = new_job(db, model, config={"blockOnCriticalFailures": True} if block else {})
    log(db, job, 1, eval_loss=eval_loss + 0.2)
    log(db, job, 2, eval_loss=eval_loss, metrics={"accuracy": 0.9})
    complete(db, job)
    return str(job)


def test_baseline_create_list_deactivate(rg: Cli) -> None:
    created = ok(rg("baseline", "create", "bert", "eval_loss", "--value", "0.4", "--min-relative-change", "-0.05"))
    assert created.stdout.startswith("created baseline ")
    assert "bert" in created.stdout and "eval_loss" in created.stdout and "critical" in created.stdout
    first_id = int(created.stdout.split()[2].rstrip(":"))

    data = js(
        rg(
            "baseline",
            "create",
            "bert",
            "accuracy",
            "--value",
            "0.85",
            "--greater-is-better",
            "--threshold",
            "0.8",
            "--severity",
            "warning",
            "--model-version",
            "v2",
            "--description",
            "floor",
            "--json",
        )
    )
    assert data["metric_name"] == "accuracy" and data["greater_is_better"] is True and data["severity"] == "warning"
    assert (data["model_version"], data["threshold"], data["description"], data["is_active"]) == (
        "v2",
        0.8,
        "floor",
        True,
    )

    # A new baseline of the same key supersedes the first one.
    second = js(rg("baseline", "create", "bert", "eval_loss", "--value", "0.38", "--threshold", "0.5", "--json"))
    listed = js(rg("baseline", "list", "--model", "bert", "--json"))
    assert {(b["metric_name"], b["id"]) for b in listed} == {("accuracy", data["id"]), ("eval_loss", second["id"])}
    every = js(rg("baseline", "list", "--all", "--json"))
    assert {b["id"]: b["is_active"] for b in every} == {first_id: False, data["id"]: True, second["id"]: True}
    table = ok(rg("baseline", "list"))
    assert "metric name" in table.stdout and "accuracy" in table.stdout and "0.38" in table.stdout
    assert "(none)" in ok(rg("baseline", "list", "--model", "no-such-model")).stdout
    assert js(rg("baseline", "list", "--model", "no-such-model", "--json")) == []

    off = ok(rg("baseline", "deactivate", str(second["id"])))
    assert off.stdout.strip() == f"deactivated baseline {second['id']} (bert eval_loss, critical)"
    again = js(rg("baseline", "deactivate", str(second["id"]), "--json"))
    assert again["changed"] is False and again["baseline"]["is_active"] is False
    assert "already inactive; nothing changed" in ok(rg("baseline", "deactivate", str(second["id"]))).stdout
    assert one_error_line(rg("baseline", "deactivate", "999999")) == (
        "error: no baseline with id 999999 (regate-db baseline list --all shows them)"
    )

    # The database's rules, one line each.
    line = one_error_line(rg("baseline", "create", "bert", "f1", "--value", "0.9", "--greater-is-better"))
    assert line.endswith("[RG004]")
    line = one_error_line(rg("baseline", "create", "bert", "f1", "--value", "0.9", "--threshold", "0.8"))
    assert "cannot infer greater_is_better for metric f1" in line and line.endswith("[RG007]")
    assert rg("baseline", "create", "bert", "f1", "--severity", "fatal").returncode == 2  # click's usage error


def test_baseline_promote(db: psycopg.Connection[Any], rg: Cli) -> None:
    job = _trained_job(db, 0.3)
    promoted = ok(rg("baseline", "promote", job))
    assert promoted.stdout.startswith(f"promoted 1 metric(s) of job {job} to baselines")
    assert "skipped accuracy: direction unknown" in promoted.stdout
    data = js(
        rg("baseline", "promote", job, "--higher-is-better", "accuracy", "--min-relative-change", "-0.1", "--json")
    )
    got = {
        b["metric_name"]: (b["baseline_value"], b["greater_is_better"], b["min_relative_change"])
        for b in data["baselines"]
    }
    assert got == {"accuracy": (0.9, True, -0.1), "eval_loss": (0.3, False, -0.1)}
    assert data["skipped"] == []
    only = js(rg("baseline", "promote", job, "--metric", "eval_loss", "--severity", "warning", "--json"))
    assert [(b["metric_name"], b["severity"]) for b in only["baselines"]] == [("eval_loss", "warning")]
    missing = one_error_line(rg("baseline", "promote", job, "--metric", "f1"))
    assert missing == f"error: job {job} has no metric f1 to promote [RG004]"
    unknown = str(uuid.uuid4())
    assert one_error_line(rg("baseline", "promote", unknown)) == f"error: no training job with id {unknown} [RG008]"
    assert one_error_line(rg("baseline", "promote", "not-a-uuid")) == (
        "error: 'not-a-uuid' is not a job id (a UUID such as 0190c2a4-...)"
    )


def test_validate_and_show(db: psycopg.Connection[Any], rg: Cli) -> None:
    db.execute(
        "select regate.create_baseline(model_name => 'bert', metric_name => 'eval_loss', baseline_value => 0.4,"
        " min_relative_change => -0.05)"
    )
    good = _trained_job(db, 0.39)
    passed = ok(rg("validate", good))
    assert passed.stdout.startswith("verdict ") and ": PASSED, not blocking (job " in passed.stdout
    assert "eval_loss" in passed.stdout and "critical" in passed.stdout and "passed" in passed.stdout
    verdict = js(rg("validate", good, "--json"))
    assert (verdict["status"], verdict["blocked"], verdict["source"], verdict["job_id"]) == (
        "passed",
        False,
        "manual",
        good,
    )
    assert [c["metric_name"] for c in verdict["checks"]] == ["eval_loss"] and verdict["checks"][0]["message"]

    bad = _trained_job(db, 0.6, block=True)
    blocked = rg("validate", bad)
    assert blocked.returncode == 1, blocked.stderr
    assert ": FAILED, BLOCKED (deployment refused)" in blocked.stdout
    assert blocked.stderr.startswith("blocked: verdict ") and "(eval_loss)" in blocked.stderr
    blocked_json = rg("validate", bad, "--json")
    assert blocked_json.returncode == 1 and json.loads(blocked_json.stdout)["blocked"] is True

    warn_only = _trained_job(db, 0.6)
    failed = rg("validate", warn_only)
    assert failed.returncode == 0 and ": FAILED, not blocking" in failed.stdout

    unknown = str(uuid.uuid4())
    assert one_error_line(rg("validate", unknown)) == f"error: no training job with id {unknown} [RG008]"
    assert rg("validate", unknown, "--json").stdout == ""

    shown = ok(rg("show", bad))
    lines = shown.stdout.splitlines()
    assert lines[0] == f"job {bad}"
    assert "  model:     bert" in lines and "  status:    completed" in lines and "  gate:      blocked" in lines
    assert any(line.startswith("verdict ") and "FAILED, BLOCKED" in line for line in lines)
    assert "checks:" in lines and "verdicts:" in lines
    report = js(rg("show", bad, "--json"))
    assert report["job"]["validation_status"] == "blocked" and report["verdict"]["blocked"] is True
    assert [v["source"] for v in report["verdicts"]] == ["auto", "manual", "manual"]
    assert report["verdict"]["checks"][0]["outcome"] == "failed"
    assert one_error_line(rg("show", unknown)) == f"error: no training job with id {unknown} [RG008]"

    history = js(rg("history", "--model", "bert", "--limit", "3", "--json"))
    assert len(history) == 3 and history[0]["job_id"] == warn_only and history[0]["source"] == "manual"
    assert len(js(rg("history", "--json"))) == 8  # 3 verdicts of good and of bad, 2 of warn_only
    table = ok(rg("history", "--limit", "3")).stdout
    assert "source" in table and table.count(warn_only) == 2 and table.count(bad) == 1
    assert rg("history", "--limit", "0").returncode == 2


def test_gate(db: psycopg.Connection[Any], rg: Cli, tmp_path: Any) -> None:
    db.execute(
        "select regate.create_baseline(model_name => 'bert', metric_name => 'eval_loss', baseline_value => 0.4,"
        " min_relative_change => -0.05)"
    )
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"eval_loss": 0.39, "accuracy": 0.9}')
    bad.write_text('{"eval_loss": 0.7}')
    passed = ok(rg("gate", "bert", "--metrics", str(good)))
    assert ": PASSED, not blocking (model bert, source gate)" in passed.stdout and passed.stderr == ""

    blocked = rg("gate", "bert", "--metrics", str(bad), "--model-version", "v3")
    assert blocked.returncode == 1
    assert ": FAILED, BLOCKED (deployment refused) (model bert version v3, source gate)" in blocked.stdout
    assert blocked.stderr.startswith("blocked: verdict ")
    warn = rg("gate", "bert", "--metrics", str(bad), "--warn-only", "--json")
    assert warn.returncode == 0 and json.loads(warn.stdout)["status"] == "failed"

    piped = rg("gate", "bert", "--metrics", "-", "--require", "f1", "--json", stdin='{"eval_loss": 0.39}')
    assert piped.returncode == 1
    outcomes = {c["metric_name"]: c["outcome"] for c in json.loads(piped.stdout)["checks"]}
    assert outcomes == {"eval_loss": "passed", "f1": "missing"}
    nan = rg("gate", "bert", "--metrics", "-", "--json", stdin='{"eval_loss": NaN}')
    assert nan.returncode == 1 and json.loads(nan.stdout)["metrics"] == {"eval_loss": "NaN"}

    job = _trained_job(db, 0.39)
    linked = js(rg("gate", "bert", "--metrics", str(good), "--job", job, "--json"))
    assert linked["job_id"] == job and linked["source"] == "gate"

    assert one_error_line(rg("gate", "bert", "--metrics", "-", stdin="[1, 2]")) == (
        "error: --metrics <stdin>: must be a JSON object of metric name -> number, got list"
    )
    assert one_error_line(rg("gate", "bert", "--metrics", "-", stdin="{oops")).startswith(
        "error: --metrics <stdin>: not valid JSON"
    )
    line = one_error_line(rg("gate", "bert", "--metrics", "-", stdin='{"eval_loss": "low"}'))
    assert line.startswith("error: invalid current_metrics: ") and line.endswith("[RG001]")
    missing_file = rg("gate", "bert", "--metrics", str(tmp_path / "nope.json"))
    assert missing_file.returncode == 2 and "No such file or directory" in missing_file.stderr


def test_policy_set_show_history(rg: Cli) -> None:
    created = ok(rg("policy", "set", "bert", "--block", "--require-baselines", "--metrics", "eval_loss, f1"))
    assert created.stdout.startswith("policy of model bert is now version 1")
    row = js(rg("policy", "set", "bert", "--enforce", "--fail-closed", "--json"))
    assert (row["version"], row["enforce"], row["fail_open"], row["block_on_critical_failures"]) == (
        2,
        True,
        False,
        True,
    )
    assert row["metrics_to_validate"] == ["eval_loss", "f1"]
    row = js(
        rg("policy", "set", "bert", "--inherit", "require_baselines", "--inherit", "metrics_to_validate", "--json")
    )
    assert (row["require_baselines"], row["metrics_to_validate"], row["version"]) == (None, None, 3)
    ok(rg("policy", "set", "--default", "--warn-only", "--disable-gates"))

    view = js(rg("policy", "show", "bert", "--json"))
    assert [p["model_name"] for p in view["policies"]] == [None, "bert"]
    assert view["effective_config"] == {
        "enableRegressionGates": False,
        "blockOnCriticalFailures": True,
        "regressionGateConfig": {
            "requireBaselines": False,
            "metricsToValidate": None,
            "failOpen": False,
            "inconclusiveFails": False,
        },
    }
    shown = ok(rg("policy", "show", "bert")).stdout
    assert "policies:" in shown and "(default)" in shown and '"blockOnCriticalFailures": true' in shown
    other = js(rg("policy", "show", "other-model", "--json"))
    assert other["effective_config"]["blockOnCriticalFailures"] is False
    assert len(js(rg("policy", "show", "--json"))["policies"]) == 2

    history = js(rg("policy", "history", "bert", "--json"))
    assert [h["version"] for h in history] == [1, 2, 3] and history[0]["old_values"] is None
    table = ok(rg("policy", "history", "bert")).stdout
    assert "enforce: - -> yes" in table and "require_baselines: yes -> -" in table
    assert [h["model_name"] for h in js(rg("policy", "history", "--default", "--json"))] == [None]

    usage = rg("policy", "set", "--block")
    assert usage.returncode == 2 and "give MODEL, or --default" in usage.stderr
    assert one_error_line(rg("policy", "set", "  ", "--block")).endswith("[RG005]")


def test_admin_commands_as_a_writer(
    db: psycopg.Connection[Any], rg: Cli, login: Callable[[str], tuple[str, str]]
) -> None:
    name, dsn = login("writer")
    admin_only = (
        "error: permission denied: only a regate admin (a member of regate_admin, a member of the owner of schema"
        " regate, or a superuser) may {} (connected as " + name + ")"
    )
    baseline = js(rg("baseline", "create", "bert", "eval_loss", "--value", "0.4", "--threshold", "0.5", "--json"))
    assert one_error_line(rg("baseline", "create", "bert", "eval_loss", "--threshold", "0.5", dsn=dsn)) == (
        admin_only.format("create baselines")
    )
    assert one_error_line(rg("baseline", "deactivate", str(baseline["id"]), dsn=dsn)) == (
        admin_only.format("deactivate baselines")
    )
    assert one_error_line(rg("policy", "set", "bert", "--block", dsn=dsn)) == admin_only.format("set a gate policy")
    # Reading is allowed; the writer's own job is validated, another owner's does not exist for it.
    assert [b["id"] for b in js(rg("baseline", "list", "--json", dsn=dsn))] == [baseline["id"]]
    theirs = _trained_job(db, 0.45)
    assert one_error_line(rg("validate", theirs, dsn=dsn)) == f"error: no training job with id {theirs} [RG008]"
    with psycopg.connect(dsn, autocommit=True) as mine:
        job = _trained_job(mine, 0.45)
    assert js(rg("validate", job, "--json", dsn=dsn))["status"] == "passed"


def test_help_has_an_example_for_every_command(cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    top = ok(run(regate_cmd, cli_env, "--help")).stdout
    commands = [
        ["baseline", "create"], ["baseline", "list"], ["baseline", "promote"], ["baseline", "deactivate"],
        ["validate"], ["gate"], ["history"], ["show"], ["stats"], ["deploy"], ["champions"], ["override"],
        ["confirm-override"], ["overrides"], ["policy", "set"], ["policy", "show"], ["policy", "history"],
    ]  # fmt: skip
    for args in commands:
        assert args[0] in top
        proc = ok(run(regate_cmd, cli_env, *args, "--help"))
        assert "Example" in proc.stdout and "--dsn" in proc.stdout, args
        assert f"regate-db {' '.join(args)}" in proc.stdout, args
        assert "%%" not in proc.stdout, args  # click does not %-format help texts
        if args[0] not in ("baseline", "policy"):
            assert "--json" in proc.stdout, args
    assert "Exit status: 0" in ok(run(regate_cmd, cli_env, "gate", "--help")).stdout
    for args in (
        ["migrate"], ["status"], ["demo"], ["gates", "off"], ["gates", "on"], ["gates", "status"], ["uninstall"],
    ):  # fmt: skip
        assert "--dsn" in ok(run(regate_cmd, cli_env, *args, "--help")).stdout, args


def test_deploy_override_champions_stats(
    db: psycopg.Connection[Any], rg: Cli, login: Callable[[str], tuple[str, str]]
) -> None:
    db.execute(
        "select regate.create_baseline(model_name => 'bert', metric_name => 'eval_loss', baseline_value => 0.4,"
        " min_relative_change => -0.05)"
    )
    good, bad = _trained_job(db, 0.39), _trained_job(db, 0.6, block=True)
    deployed = ok(rg("deploy", good, "--env", "production", "--notes", "release 1"))
    assert deployed.stdout.startswith(f"deployed job {good} (bert) to production: deployment ")
    assert deployed.stdout.rstrip().endswith("verdict passed")
    staging = js(rg("deploy", good, "--env", "staging", "--json"))
    assert (staging["environment"], staging["validation_status"], staging["override_id"]) == ("staging", "passed", None)

    refused = rg("deploy", bad, "--env", "production")
    line = one_error_line(refused, code=1)
    assert line.startswith(f"error: deployment refused: job {bad} of model bert is blocked by its verdict #")
    assert "eval_loss" in line and "an admin may override it" in line and line.endswith("[RG012]")
    assert refused.stdout == "" and rg("deploy", bad, "--env", "production", "--json").stdout == ""
    assert one_error_line(rg("deploy", good, "--env", " ")) == (
        "error: deployment: environment must be a non-empty name such as production, got ' '"
    )
    # An unknown job (or another owner's) is an error, not a refusal: RG008, exit 2.
    unknown = str(uuid.uuid4())
    assert one_error_line(rg("deploy", unknown, "--env", "production")) == (
        f"error: no training job with id {unknown} [RG008]"
    )

    # An override under the four-eyes rule: in effect once a second admin confirms it.
    ok(rg("policy", "set", "bert", "--second-admin"))
    assert js(rg("policy", "show", "bert", "--json"))["policies"][-1]["override_requires_second_admin"] is True
    line = one_error_line(rg("override", bad, "--reason", "  "))
    assert line == "error: override_gate: reason must be a non-empty text saying why"
    assert "is not in the future" in one_error_line(rg("override", bad, "--reason", "x", "--expires", "2020-01-01"))
    assert "neither an ISO date" in one_error_line(rg("override", bad, "--reason", "x", "--expires", "soon"))
    assert "nothing to override" in one_error_line(rg("override", good, "--reason", "x"))
    made = ok(rg("override", bad, "--reason", "INC-7: eval set fixed", "--expires", "3d"))
    override_id = int(made.stdout.split()[1])
    assert made.stdout.startswith(f"override {override_id} of job {bad}: NOT in effect (awaiting a second admin:")
    assert f"regate-db confirm-override {override_id}" in made.stdout and ", expires 20" in made.stdout
    assert one_error_line(rg("deploy", bad, "--env", "production"), code=1).endswith("[RG012]")
    assert "a second, different admin must confirm it" in one_error_line(rg("confirm-override", str(override_id)))

    writer, writer_dsn = login("writer")
    assert one_error_line(rg("override", bad, "--reason", "mine now", dsn=writer_dsn)) == (
        "error: permission denied: only a regate admin (a member of regate_admin, a member of the owner of schema"
        f" regate, or a superuser) may override the gate (connected as {writer})"
    )
    # Overrides are readable by every reader (no row-level security); in_effect is unknown for another's job.
    assert [(o["id"], o["in_effect"]) for o in js(rg("overrides", "--json", dsn=writer_dsn))] == [(override_id, None)]
    admin, admin_dsn = login("admin")
    confirmed = js(rg("confirm-override", str(override_id), "--json", dsn=admin_dsn))
    assert (confirmed["confirmed_by"], confirmed["in_effect"], confirmed["reason"]) == (
        admin,
        True,
        "INC-7: eval set fixed",
    )
    assert "confirmed already" in one_error_line(rg("confirm-override", str(override_id), dsn=admin_dsn))
    assert "no override with id 999999" in one_error_line(rg("confirm-override", "999999", dsn=admin_dsn))

    via = js(rg("deploy", bad, "--env", "production", "--json"))
    assert via["override_id"] == override_id and via["validation_status"] == "blocked"
    listed = js(rg("overrides", "--job", bad, "--json"))
    assert [(o["id"], o["in_effect"]) for o in listed] == [(override_id, True)]
    assert "INC-7: eval set fixed" in ok(rg("overrides")).stdout

    champions = js(rg("champions", "--json"))
    assert {(c["environment"], c["job_id"], c["override_id"]) for c in champions} == {
        ("production", bad, override_id),
        ("staging", good, None),
    }
    assert [c["job_id"] for c in js(rg("champions", "--model", "bert", "--env", "staging", "--json"))] == [good]
    assert js(rg("champions", "--model", "other", "--json")) == []
    table = ok(rg("champions")).stdout
    assert "production" in table and bad in table

    report = js(rg("show", bad, "--json"))
    assert [d["environment"] for d in report["deployments"]] == ["production"]
    assert [o["id"] for o in report["overrides"]] == [override_id]
    shown = ok(rg("show", bad)).stdout
    assert "deployments:" in shown and "INC-7: eval set fixed" in shown and "(none)" not in shown

    stats = js(rg("stats", "--json"))
    by_model = {s["model_name"]: s for s in stats}
    assert set(by_model) == {"bert", None}
    assert (by_model["bert"]["validations"], by_model["bert"]["passed"], by_model["bert"]["blocked"]) == (2, 1, 1)
    assert by_model["bert"]["overrides"] == 1 and by_model["bert"]["pass_rate"] == 0.5
    assert [s["model_name"] for s in js(rg("stats", "--model", "bert", "--json"))] == ["bert"]
    assert js(rg("stats", "--since", "1h", "--by-day", "--json"))[0]["day"] is not None
    assert [s["validations"] for s in js(rg("stats", "--until", "1d", "--json"))] == [0] or js(
        rg("stats", "--until", "1d", "--json")
    ) == []
    table = ok(rg("stats", "--by-day")).stdout
    assert "pass_rate" in table and "*" in table and "bert" in table
    assert "neither an ISO date" in one_error_line(rg("stats", "--since", "yesterday"))


def test_deactivate_as_a_regate_admin(rg: Cli, login: Callable[[str], tuple[str, str]]) -> None:
    _, dsn = login("admin")
    created = js(rg("baseline", "create", "bert", "eval_loss", "--threshold", "0.5", "--json", dsn=dsn))
    # a member of regate_admin who is not the schema owner deactivates through regate.deactivate_baseline
    off = js(rg("baseline", "deactivate", str(created["id"]), "--json", dsn=dsn))
    assert off["changed"] is True and off["baseline"]["is_active"] is False
    assert js(rg("baseline", "deactivate", str(created["id"]), "--json"))["changed"] is False


def test_baseline_create_with_a_champion_or_rolling_reference(rg: Cli) -> None:
    champion = js(
        rg(
            "baseline",
            "create",
            "bert",
            "accuracy",
            "--greater-is-better",
            "--min-relative-change",
            "-0.01",
            "--reference",
            "champion",
            "--environment",
            "production",
            "--json",
        )
    )
    assert (champion["reference"], champion["environment"], champion["on_missing_reference"]) == (
        "champion",
        "production",
        "warn",
    )
    rolling = js(
        rg(
            "baseline",
            "create",
            "bert",
            "f1",
            "--greater-is-better",
            "--min-relative-change",
            "-0.02",
            "--reference",
            "rolling",
            "--window",
            "10",
            "--min-runs",
            "3",
            "--on-missing-reference",
            "pass",
            "--json",
        )
    )
    assert (rolling["reference"], rolling["window_size"], rolling["min_runs"]) == ("rolling", 10, 3)
    line = one_error_line(
        rg(
            "baseline",
            "create",
            "bert",
            "recall",
            "--greater-is-better",
            "--threshold",
            "0.5",
            "--reference",
            "champion",
        )
    )
    assert "environment (e.g. production) is required for a champion reference" in line and line.endswith("[RG004]")
    assert "rolling" in ok(rg("baseline", "list", "--model", "bert")).stdout


def test_baseline_create_for_a_family_with_support(rg: Cli) -> None:
    made = js(
        rg(
            "baseline",
            "create",
            "bert",
            "accuracy/*",
            "--value",
            "0.9",
            "--greater-is-better",
            "--min-absolute-change",
            "-0.02",
            "--min-support",
            "100",
            "--support-metric",
            "n/*",
            "--benjamini-hochberg",
            "--confidence",
            "0.9",
            "--json",
        )
    )
    assert (made["metric_name"], made["min_support"], made["support_metric"]) == ("accuracy/*", 100, "n/*")
    assert made["benjamini_hochberg"] is True and made["confidence"] == 0.9
